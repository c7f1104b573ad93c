import { deadlineExceeded, unavailable } from "../errors.ts";

/** What a finished `ctr` run printed and how it exited. */
export interface CtrResult {
  stdout: string;
  stderr: string;
  exitCode: number;
}

/** Options for one `ctr` run. */
export interface CtrOptions {
  /** containerd namespace (`ctr --namespace`); default "default". */
  namespace?: string;
  /** Bytes or text written to ctr's stdin, then closed. */
  stdin?: string | Uint8Array;
  /** Kill ctr and fail with DEADLINE_EXCEEDED after this long (default 60 s). */
  timeoutMs?: number;
  /** Environment for ctr (default: this process's). */
  env?: Record<string, string | undefined>;
}

/** The ctr binary used for every call (Debian installs it as /usr/bin/ctr). */
export const ctrBinary = "ctr";

/** Runs `ctr --address <address> --namespace <ns> ...args` and collects its output; never throws on a non-zero exit. */
export async function runCtr(address: string, args: readonly string[], options: CtrOptions = {}): Promise<CtrResult> {
  const argv = [ctrBinary, "--address", address, "--namespace", options.namespace ?? "default", ...args];
  let proc: Bun.Subprocess<"pipe", "pipe", "pipe">;
  try {
    proc = Bun.spawn(argv, { stdin: "pipe", stdout: "pipe", stderr: "pipe", env: options.env ?? process.env });
  } catch (err) {
    throw unavailable(`run ${ctrBinary}`, { cause: err, detail: String(err) });
  }
  if (options.stdin !== undefined) proc.stdin.write(options.stdin);
  await proc.stdin.end();
  const timeoutMs = options.timeoutMs ?? 60_000;
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    proc.kill("SIGKILL");
  }, timeoutMs);
  try {
    const [stdout, stderr, exitCode] = await Promise.all([
      new Response(proc.stdout).text(),
      new Response(proc.stderr).text(),
      proc.exited,
    ]);
    if (timedOut) {
      throw deadlineExceeded(`ctr ${args.join(" ")}`, { detail: `no answer within ${timeoutMs} ms; stderr: ${stderr.trim()}` });
    }
    return { stdout, stderr, exitCode };
  } finally {
    clearTimeout(timer);
  }
}
