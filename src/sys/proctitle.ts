/**
 * setproctitle for Linux: rewrites this process's command line (/proc/<pid>/cmdline, what ps shows) in place.
 *
 * The kernel shows the bytes between the process's arg_start and arg_end (fields 48 and 49 of
 * /proc/self/stat); they are ordinary memory of the process, so they can be overwritten, but not grown.
 * A process that wants a longer title later is started with a padding argument.
 */
import { readFileSync } from "node:fs";
import { toArrayBuffer, type Pointer } from "bun:ffi";

/** Replaces the command line with args (NUL-separated, the rest zeroed); returns false when they do not fit and were cut. */
export function setProcTitle(args: readonly string[]): boolean {
  const stat = readFileSync("/proc/self/stat", "latin1");
  // Fields after the command name, which ends at the last ')': field N is at index N - 3.
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  const start = Number(fields[48 - 3]);
  const end = Number(fields[49 - 3]);
  if (!(start > 0 && end > start)) return false;
  const area = new Uint8Array(toArrayBuffer(start as unknown as Pointer, 0, end - start));
  const text = new TextEncoder().encode(args.join("\0"));
  // The last byte stays NUL: the kernel then shows exactly this area.
  const fits = text.length <= area.length - 1;
  area.fill(0);
  area.set(fits ? text : text.subarray(0, area.length - 1));
  return fits;
}
