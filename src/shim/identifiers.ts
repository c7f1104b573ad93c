/**
 * containerd's identifier rule (pkg/identifiers Validate) for what the shim turns into paths: container ids (runc's
 * state directory, the pending marker beside the socket), exec ids (`<bundle>/.exec-<id>.pid`) and namespaces (runc's
 * root is `<root>/<namespace>`). containerd validates them before it calls a shim; a peer that talks to the socket
 * directly does not, and a `../` in any of them led runc and the daemon outside their directories.
 */
import * as z from "zod/mini";
import { invalidArgument } from "../errors.ts";

/** containerd's maximum identifier length. */
export const MAX_IDENTIFIER_LENGTH = 76;

/** Letters and digits, with single `.`, `_` or `-` between them (containerd's identifierRe). */
export const IDENTIFIER_PATTERN = /^[A-Za-z0-9]+(?:[._-](?:[A-Za-z0-9]+))*$/;

const identifierSchema = z.string().check(
  z.minLength(1, "empty"),
  z.maxLength(MAX_IDENTIFIER_LENGTH, `longer than ${MAX_IDENTIFIER_LENGTH} characters`),
  z.regex(IDENTIFIER_PATTERN, "not letters and digits with single . _ or - between them (containerd's identifier rule)"),
);

/** Returns value when it is a containerd identifier, else throws INVALID_ARGUMENT: `exec id "../x": invalid argument: ...`. */
export function checkIdentifier(what: string, value: string): string {
  const r = identifierSchema.safeParse(value);
  if (r.success) return value;
  // A hostile value can be megabytes long: the message names its start.
  const shown = value.length > MAX_IDENTIFIER_LENGTH + 4 ? `${JSON.stringify(value.slice(0, MAX_IDENTIFIER_LENGTH))}...` : JSON.stringify(value);
  throw invalidArgument(value === "" ? what : `${what} ${shown}`, { detail: r.error.issues[0]!.message });
}
