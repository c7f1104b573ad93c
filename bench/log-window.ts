/**
 * The log lines of a private containerd (and its shims, which log through it) whose time falls in a window, for the
 * benches that show where a checkpoint's or a restore's time goes.
 */
import { readFileSync } from "node:fs";

/** Lines of `logPath` timed in [from, to] and matching `filter`, each with its offset from `from` in ms. */
export function logWindow(logPath: string, from: Date, to: Date, filter = /shim|cryo|checkpoint|restore|criu|took|Create|Start|task|runtime/i): string[] {
  const out: string[] = [];
  for (const line of readFileSync(logPath, "utf8").split("\n")) {
    const m = /time="?([0-9T:.Z+-]+)"?/.exec(line);
    if (!m) continue;
    const t = new Date(m[1]!);
    if (t < from || t > to) continue;
    if (!filter.test(line)) continue;
    out.push(`${String(t.getTime() - from.getTime()).padStart(6)} ms  ${line.replace(/^time="?[0-9T:.Z+-]+"? /, "").slice(0, 400)}`);
  }
  return out;
}
