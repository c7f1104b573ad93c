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
  /**
   * Also give ctr the deadline (`ctr --timeout`): containerd passes it on to the runtime's shim, which then gives
   * up too (a killed ctr alone leaves containerd's call, and the shim's, running). ctr is killed DEADLINE_GRACE_MS
   * after it, if it has not returned by then.
   */
  deadline?: boolean;
  /** Environment for ctr (default: this process's). */
  env?: Record<string, string | undefined>;
  /** Where ctr makes its IO FIFOs (`--fifo-dir` of `run`, `task start` and `task exec`, unless args give one). */
  fifoDir?: string;
}

/** The commands that take `--fifo-dir`, as [command, subcommand] (ctr's aliases included). */
const FIFO_COMMANDS: readonly (readonly [string, string | undefined])[] = [
  ["run", undefined],
  ...["task", "tasks", "t"].flatMap((t) => [[t, "start"], [t, "exec"]] as const),
];

/**
 * args with `--fifo-dir dir` after the command for those that take it, unless args name one already or a log URI
 * (`ctr task exec` refuses the two together: "can't use log-uri with fifo-dir"; a log URI needs no FIFOs).
 */
export function withFifoDir(args: readonly string[], dir: string): string[] {
  const given = (flag: string) => args.some((a) => a === flag || a.startsWith(`${flag}=`));
  if (given("--fifo-dir") || given("--log-uri")) return [...args];
  for (const [command, sub] of FIFO_COMMANDS) {
    if (args[0] !== command) continue;
    if (sub === undefined) return [command, "--fifo-dir", dir, ...args.slice(1)];
    if (args[1] === sub) return [command, sub, "--fifo-dir", dir, ...args.slice(2)];
  }
  return [...args];
}

/** How long after its own deadline (`deadline`) a ctr is killed: time for its deferred calls, and to say why. */
export const DEADLINE_GRACE_MS = 10_000;

/** The ctr binary used for every call (Debian installs it as /usr/bin/ctr). */
export const ctrBinary = "ctr";

/**
 * The `--address` to give ctr for a containerd address an operator wrote, `/x.sock` or `unix:///x.sock`: the socket's
 * path. ctr 1.6 dials any address as a unix socket's path, so `unix:///x.sock` reached it as
 * `unix://unix:///x.sock` and failed after its 10 s dial timeout; ctr 2.x takes both forms.
 */
export function ctrAddress(address: string): string {
  return address.replace(/^unix:\/\//, "");
}

/** Runs `ctr --address <address> --namespace <ns> ...args` and collects its output; never throws on a non-zero exit. */
export async function runCtr(address: string, args: readonly string[], options: CtrOptions = {}): Promise<CtrResult> {
  const timeoutMs = options.timeoutMs ?? 60_000;
  const argv = [
    ctrBinary,
    "--address",
    ctrAddress(address),
    "--namespace",
    options.namespace ?? "default",
    ...(options.deadline ? ["--timeout", `${timeoutMs}ms`] : []),
    ...(options.fifoDir !== undefined ? withFifoDir(args, options.fifoDir) : args),
  ];
  let proc: Bun.Subprocess<"pipe", "pipe", "pipe">;
  try {
    proc = Bun.spawn(argv, { stdin: "pipe", stdout: "pipe", stderr: "pipe", env: options.env ?? process.env });
  } catch (err) {
    throw unavailable(`run ${ctrBinary}`, { cause: err, detail: String(err) });
  }
  if (options.stdin !== undefined) proc.stdin.write(options.stdin);
  await proc.stdin.end();
  let timedOut = false;
  const timer = setTimeout(
    () => {
      timedOut = true;
      proc.kill("SIGKILL");
    },
    timeoutMs + (options.deadline ? DEADLINE_GRACE_MS : 0),
  );
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
