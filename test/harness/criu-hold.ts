/**
 * Holding a CRIU at a point of its run with gdb, for the tests of what an abort does there. The CRIU waits in the open
 * of its log, a FIFO (so that gdb can attach before it touches anything); its log is then drained into a file.
 */
import { existsSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { waitFor } from "./wait-for.ts";

/**
 * Attaches gdb to criu (waiting in the open of its log FIFO, log) with a breakpoint at every function whose name starts
 * with fn, drains the log into drained, and returns once CRIU stopped there. Once CRIU has the FIFO open, the FIFO
 * makes way for a plain file: the CRIU helper copies and reads the log after the call, and would wait for ever in the
 * open of a FIFO nobody writes any more. release() lets CRIU go (a signal sent meanwhile is then delivered). stop is
 * gdb's line for the stop at fn, with its arguments. log() is CRIU's whole log, once CRIU has closed it (it has ended):
 * read at once after the call's answer, the drain could still be behind CRIU's last lines (seen under load: a log that
 * ended at "freezer.state=FREEZING", without CRIU's "Dumping FAILED"). The processes it starts are pushed to started
 * (the caller kills those still running).
 */
export async function holdCriuAt(
  criu: number,
  log: string,
  drained: string,
  fn: string,
  started: Bun.Subprocess[],
): Promise<{ release: () => void; stop: string; log: () => Promise<string> }> {
  const gdb = Bun.spawn(["gdb", "-q", "-nx", "-p", String(criu)], { stdin: "pipe", stdout: "pipe", stderr: "pipe" });
  started.push(gdb);
  let out = "";
  void (async () => {
    for await (const chunk of gdb.stdout) out += new TextDecoder().decode(chunk);
  })();
  gdb.stdin.write(`set pagination off\nset confirm off\nhandle SIGTERM nostop noprint pass\nhandle SIGCHLD nostop noprint pass\nrbreak ^${fn}\ncontinue\n`);
  gdb.stdin.flush();
  await waitFor(() => out.includes("Continuing."), { timeoutMs: 20_000, what: "gdb attached, its breakpoint set" });
  const drain = Bun.spawn(["sh", "-c", `exec cat ${log} > ${drained}`]);
  started.push(drain);
  await waitFor(() => existsSync(drained) && readFileSync(drained, "utf8").length > 0, { timeoutMs: 10_000, what: "CRIU's first log line" });
  rmSync(log);
  writeFileSync(log, "");
  const stop = await waitFor(() => new RegExp(`Breakpoint \\d+, ${fn}[^\\n]*(?=\\n)`).exec(out)?.[0], { timeoutMs: 10_000, what: `CRIU at ${fn}` });
  return {
    release: () => {
      gdb.stdin.write("delete\ndetach\nquit\n");
      gdb.stdin.flush();
    },
    stop,
    // cat ends at the FIFO's end of file: when CRIU, its one writer, has closed it.
    log: async () => {
      await waitFor(() => drain.exitCode !== null || drain.signalCode !== null, { what: "CRIU's log drained to its end (CRIU ended)" });
      return readFileSync(drained, "utf8");
    },
  };
}

/** Whether pid has signal sig pending (process-wide or its own); false once it is gone. */
export function signalPending(pid: number, sig: number): boolean {
  try {
    const status = readFileSync(`/proc/${pid}/status`, "utf8");
    const bit = 1n << BigInt(sig - 1);
    return [...status.matchAll(/^(?:ShdPnd|SigPnd):\s*([0-9a-f]+)$/gm)].some((m) => (BigInt(`0x${m[1]}`) & bit) !== 0n);
  } catch {
    return false;
  }
}
