/** The one check of a request's terminal against its process spec (Create's bundle, Exec's spec). */
import { invalidArgument } from "../errors.ts";

/**
 * INVALID_ARGUMENT when a request's terminal and its process spec's `terminal` disagree. containerd sets both (ctr -t,
 * CRI's tty); a request sent straight to the socket with one and not the other reached runc, which refused it with
 * UNKNOWN "cannot use console socket if runc will not detach or allocate tty" (found by bench/ttrpc-fuzz.ts).
 */
export function terminalMismatch(context: string, requested: boolean, inSpec: boolean): void {
  if (requested === inSpec) return;
  throw invalidArgument(context, {
    detail: requested ? "the request asks for a terminal but the process spec's terminal is false" : "the process spec's terminal is true but the request asks for none",
  });
}
