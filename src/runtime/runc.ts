/**
 * The runc driver: container lifecycle through runc's command line (runc 1.1).
 *
 * Every command runs as `runc --root R --log L --log-format json [--systemd-cgroup] [--debug] <cmd>`
 * with Bun.spawn. A nonzero exit becomes a CryoError carrying the last error line of runc's log
 * (see runc-errors.ts). `create` and `exec --detach` return once runc has exited: by then the pid
 * file is written, the process is reparented to us (when we are a child subreaper), and a console
 * socket holds the pty master.
 */
import { existsSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
// zod/mini: the same validation as zod, loaded and built faster (every shim daemon loads this module at start).
import * as z from "zod/mini";
import { Code, CryoError, deadlineExceeded, failedPrecondition, invalidArgument, unknown } from "../errors.ts";
import { assertValidContainerId } from "./container-errors.ts";
import { stringifyPreciseJson } from "../sys/precise-json.ts";
import { lastRuncError, runcError } from "./runc-errors.ts";
import { lazySchema, parseDetail } from "./schema-detail.ts";

/** One stdio slot for runc (and so for the container process in non-terminal mode): an fd, or /dev/null. */
export type Stdio = number | "ignore" | "inherit";

/** Options every runc call accepts: cancellation and a deadline (the caller's context). */
export interface CallOptions {
  /** Abort runc (SIGKILL) when this signal fires: CANCELLED. */
  signal?: AbortSignal;
  /** Kill runc (SIGKILL) after this many ms: DEADLINE_EXCEEDED. Defaults to the driver's timeoutMs. */
  timeoutMs?: number;
}

/** Options of createRunc. */
export interface RuncOptions {
  /** runc binary name or path (default "runc"; containerd's BinaryName option). */
  binary?: string;
  /** runc's state root (`--root`), e.g. /run/containerd/runc/<namespace>. */
  root: string;
  /** `--systemd-cgroup`: cgroupsPath is slice:prefix:name. */
  systemdCgroup?: boolean;
  /** `--debug`: debug records go to the log. */
  debug?: boolean;
  /** A persistent log file (containerd's runc shim uses <bundle>/log.json); default: one temp file per call, removed after. */
  logPath?: string;
  /** Default deadline per call in ms (none when omitted). */
  timeoutMs?: number;
  /** Extra environment for runc (XDG_RUNTIME_DIR and the like). */
  env?: Record<string, string>;
}

/** Options of create. */
export interface CreateOptions extends CallOptions {
  /** Where runc writes init's pid (`--pid-file`). */
  pidFile: string;
  /** `--console-socket`: the path of a ConsoleSocket; for terminal containers (process.terminal true). */
  consoleSocket?: string;
  /** runc's stdin, stdout, stderr, which init inherits in non-terminal mode (default "ignore": /dev/null). */
  stdio?: [Stdio, Stdio, Stdio] | "ignore";
  /** `--no-pivot`. */
  noPivot?: boolean;
  /** `--no-new-keyring`. */
  noNewKeyring?: boolean;
  /**
   * NOTIFY_SOCKET for runc: it mounts a directory of its state (<root>/<id>/notify) at /run/notify in the
   * container and sets NOTIFY_SOCKET=/run/notify/notify.sock in the process's environment; the caller serves
   * that socket (`runc start` is run without the variable, so it neither binds it nor waits for READY=1).
   */
  notifySocket?: string;
}

/** Options of exec (always detached: runc returns once the process is started). */
export interface ExecOptions extends CallOptions {
  pidFile: string;
  consoleSocket?: string;
  stdio?: [Stdio, Stdio, Stdio] | "ignore";
}

// The schemas are built on first use (lazySchema): a daemon's start builds none of them, its first Create only runc's options.

/**
 * An integer of 0 to 2^bits-1, a number or (beyond 2^53, from parsePreciseJson) a bigint: what runc's Go struct field
 * takes. Anything else reached runc, which failed the exec with UNKNOWN "json: cannot unmarshal number -1 into Go
 * struct field User.user.uid of type uint32" (found by bench/ttrpc-fuzz.ts).
 */
function unsigned(bits: 32 | 64) {
  const max = (1n << BigInt(bits)) - 1n;
  const error = `must be an integer from 0 to ${max}`;
  return z.union([z.number(), z.bigint()], { error }).check(
    z.refine(
      (v) => {
        if (typeof v === "number" && !Number.isInteger(v)) return false;
        const b = BigInt(v);
        return b >= 0n && b <= max;
      },
      { error },
    ),
  );
}

/**
 * The exec process spec's schema. `shape` checks only the types, as Go's json.Unmarshal into specs.Process does at
 * containerd's runc shim's Exec (a uid of -1 fails there); the full one adds what runc exec itself refuses at Start
 * (no args, a relative cwd).
 */
function buildProcessSpecSchema(shape = false) {
  const strings = z.optional(z.array(z.string()));
  const args = z.array(z.string(), { error: (iss) => (iss.input === undefined || iss.input === null ? "must not be empty" : "must be a list of strings") });
  return z.looseObject({
    // The messages say what runc's exec says ("args must not be empty"), not zod's "expected array, received undefined".
    // containerd marshals an empty args list away (omitempty), so a missing one is an empty one (CRI ExecSync of []).
    args: shape ? z.optional(z.array(z.string(), { error: "must be a list of strings" })) : args.check(z.minLength(1, { error: "must not be empty" })),
    cwd: shape ? z.optional(z.string()) : z.string().check(z.startsWith("/")),
    env: z.optional(z.array(z.string())),
    terminal: z.optional(z.boolean()),
    user: z.optional(z.looseObject({ uid: unsigned(32), gid: unsigned(32), umask: z.optional(unsigned(32)), additionalGids: z.optional(z.array(unsigned(32))) })),
    consoleSize: z.optional(z.looseObject({ height: unsigned(64), width: unsigned(64) })),
    rlimits: z.optional(z.array(z.looseObject({ type: z.string(), hard: unsigned(64), soft: unsigned(64) }))),
    capabilities: z.optional(z.looseObject({ bounding: strings, effective: strings, inheritable: strings, permitted: strings, ambient: strings })),
    noNewPrivileges: z.optional(z.boolean()),
    oomScoreAdj: z.optional(z.number().check(z.int())),
    apparmorProfile: z.optional(z.string()),
    selinuxLabel: z.optional(z.string()),
  });
}

/** An OCI runtime-spec process (the fields validated here; the rest is passed through to runc). */
export const processSpecSchema = lazySchema(() => buildProcessSpecSchema());
const processShapeSchema = lazySchema(() => buildProcessSpecSchema(true));

/**
 * An exec's process spec at Exec: INVALID_ARGUMENT for a field of the wrong type or out of its Go type's range, as
 * containerd's runc shim refuses it at Exec (UNKNOWN "json: cannot unmarshal ..."); cryo accepted it and failed the
 * Start instead (found by bench/ttrpc-fuzz.ts). What runc exec refuses (no args, a relative cwd) still fails the Start.
 */
export function checkExecProcessShape(id: string, processSpec: Record<string, unknown>): void {
  const parsed = parseDetail(processShapeSchema(), processSpec);
  if (!parsed.ok) throw invalidArgument(`exec process for container ${id}`, { detail: parsed.detail });
}

/** An OCI process spec for exec. */
export type ProcessSpec = z.input<ReturnType<typeof buildProcessSpecSchema>>;

function buildRuncCliStateSchema() {
  return z.looseObject({
    ociVersion: z.string(),
    id: z.string(),
    pid: z.number().check(z.int()),
    status: z.enum(["creating", "created", "running", "pausing", "paused", "stopped", "unknown"]),
    bundle: z.string(),
    rootfs: z.string(),
    created: z.string(),
    annotations: z.nullish(z.record(z.string(), z.string())),
    owner: z.optional(z.string()),
  });
}

/** What `runc state` prints (the OCI state plus runc's owner/created). */
export const runcCliStateSchema = lazySchema(buildRuncCliStateSchema);

/** Parsed `runc state` output. */
export type RuncCliState = z.infer<ReturnType<typeof buildRuncCliStateSchema>>;

/** `runc ps --format json`: pids, or null when there are none. */
const runcPsSchema = lazySchema(() => z.nullable(z.array(z.number().check(z.int()))));

/** The options of createRunc. */
const runcOptionsSchema = lazySchema(() =>
  z.object({
    binary: z._default(z.string().check(z.minLength(1)), "runc"),
    root: z.string().check(z.minLength(1)),
    systemdCgroup: z._default(z.boolean(), false),
    debug: z._default(z.boolean(), false),
    logPath: z.optional(z.string().check(z.minLength(1))),
    timeoutMs: z.optional(z.number().check(z.positive())),
    env: z.optional(z.record(z.string(), z.string())),
  }),
);

/** The runc driver. Every method rejects with a classified CryoError. */
export interface Runc {
  /** The state root this driver uses. */
  readonly root: string;
  /** `runc create`: sets the container up and starts init, stopped before the user process (status created). */
  create(id: string, bundle: string, options: CreateOptions): Promise<void>;
  /** `runc start`: lets init exec the user process. */
  start(id: string, options?: CallOptions): Promise<void>;
  /** `runc exec --detach --process <temp process.json>`: starts another process in the container. */
  exec(id: string, process: ProcessSpec, options: ExecOptions): Promise<void>;
  /** `runc kill [--all] id SIG`: signal is a number or a name ("KILL", "SIGTERM"). */
  kill(id: string, signal: number | string, options?: CallOptions & { all?: boolean }): Promise<void>;
  /**
   * `runc delete [--force]`, run in `cwd` when given and present (the bundle: the working directory the container's
   * poststop hooks get, as its other hooks get it from `runc create` and `start`).
   */
  delete(id: string, options?: CallOptions & { force?: boolean; cwd?: string }): Promise<void>;
  /** `runc ps --format json`: the pids of the container's processes (host pid namespace). */
  ps(id: string, options?: CallOptions): Promise<number[]>;
  /** `runc state`: the container's state as runc reports it. */
  state(id: string, options?: CallOptions): Promise<RuncCliState>;
  /** `runc pause` (freezes the cgroup). */
  pause(id: string, options?: CallOptions): Promise<void>;
  /** `runc resume`. */
  resume(id: string, options?: CallOptions): Promise<void>;
  /** `runc update -r -`: resources is an OCI LinuxResources object, sent on stdin. */
  update(id: string, resources: Record<string, unknown>, options?: CallOptions): Promise<void>;
}

/**
 * runc's environment: the shim's, with the driver's extra variables, and without NOTIFY_SOCKET. containerd run by
 * systemd as a notify service (its unit's Type=notify) keeps systemd's socket in its environment, and its shims
 * inherit it. runc given one proxies it into the container (a mount at /run/notify and the variable in the
 * process's environment), and `runc start` then waits for the container to send READY=1 (or to exit): a
 * container that never does stays CREATED, its Start never answered (seen here with cryo before; containerd's
 * go-runc leaves the variable out for the same reason).
 */
export function runcEnv(env: Record<string, string | undefined>, extra: Record<string, string> | undefined): Record<string, string | undefined> {
  const out = { ...env, ...extra };
  delete out.NOTIFY_SOCKET;
  return out;
}

/** Creates a runc driver for one state root. */
export function createRunc(options: RuncOptions): Runc {
  const opts = parseDetail(runcOptionsSchema(), options);
  if (!opts.ok) throw invalidArgument("runc options", { detail: opts.detail });
  const o = opts.data;

  interface RunSpec {
    command: string;
    id: string;
    args: string[];
    stdio?: [Stdio, Stdio, Stdio] | "ignore";
    /** True for create/exec: runc's stdio becomes the container process's. */
    containerStdio?: boolean;
    stdin?: Uint8Array;
    capture?: boolean;
    call?: CallOptions;
    /** Variables for this call only (NOTIFY_SOCKET). */
    env?: Record<string, string>;
    /** runc's working directory (the shim's, `/`, otherwise). */
    cwd?: string;
  }

  async function run(spec: RunSpec): Promise<string> {
    const logFile = o.logPath ?? join(tmpdir(), `cryo-runc-${crypto.randomUUID()}.log`);
    const logStart = o.logPath ? fileSize(o.logPath) : 0;
    const argv = [o.binary, "--root", o.root, "--log", logFile, "--log-format", "json"];
    if (o.systemdCgroup) argv.push("--systemd-cgroup");
    if (o.debug) argv.push("--debug");
    argv.push(spec.command, ...spec.args);

    // create/exec hand runc's stdio to the container process: those slots are the caller's. Other
    // commands get stdout captured when they print, and stderr captured as a fallback reason.
    const slots = spec.stdio === undefined || spec.stdio === "ignore" ? (["ignore", "ignore", "ignore"] as const) : spec.stdio;
    const stdin = spec.stdin !== undefined ? spec.stdin : slots[0];
    const stdout = spec.capture ? "pipe" : slots[1];
    const stderr = spec.containerStdio ? slots[2] : "pipe";

    let timedOut = false;
    let aborted = false;
    let proc: ReturnType<typeof Bun.spawn>;
    try {
      proc = Bun.spawn(argv, {
        stdio: [stdin as never, stdout as never, stderr as never],
        env: { ...runcEnv(process.env, o.env), ...spec.env },
        ...(spec.cwd !== undefined ? { cwd: spec.cwd } : {}),
      });
    } catch (err) {
      if (!o.logPath) rmSync(logFile, { force: true });
      // A binary that is not there or cannot be executed (the runtime options' binary_name: a FIFO, a plain file) is the
      // host's or the options' state, not an unknown failure (it was UNKNOWN: found by bench/ttrpc-fuzz.ts).
      // A name longer than the kernel takes (ENAMETOOLONG) is the options' own fault whatever the host holds.
      const code = (err as { code?: string }).code;
      const make =
        code === "ENAMETOOLONG" ? invalidArgument : code === "ENOENT" || code === "EACCES" || code === "ENOEXEC" || code === "ENOTDIR" || code === "ELOOP" ? failedPrecondition : unknown;
      throw make(`runc ${spec.command} ${spec.id}`, { detail: `cannot run ${o.binary}: ${(err as Error).message}`, cause: err });
    }
    const timeoutMs = spec.call?.timeoutMs ?? o.timeoutMs;
    const timer = timeoutMs !== undefined ? setTimeout(() => ((timedOut = true), proc.kill("SIGKILL")), timeoutMs) : undefined;
    const onAbort = (): void => {
      aborted = true;
      proc.kill("SIGKILL");
    };
    spec.call?.signal?.addEventListener("abort", onAbort, { once: true });
    if (spec.call?.signal?.aborted) onAbort();
    try {
      const [out, err] = await Promise.all([
        spec.capture ? new Response(proc.stdout as ReadableStream).text() : "",
        spec.containerStdio ? "" : new Response(proc.stderr as ReadableStream).text(),
      ]);
      const code = await proc.exited;
      const context = `runc ${spec.command} ${spec.id}`.trim();
      if (timedOut) throw deadlineExceeded(context, { detail: `runc killed after ${timeoutMs} ms` });
      if (aborted) throw new CryoError(Code.CANCELLED, `${context}: context canceled`);
      if (code !== 0) {
        const logText = readFrom(logFile, logStart);
        const line = lastRuncError(logText) ?? lastLine(err) ?? `exit status ${code}`;
        throw runcError(spec.command, spec.id, line);
      }
      return out;
    } finally {
      if (timer !== undefined) clearTimeout(timer);
      spec.call?.signal?.removeEventListener("abort", onAbort);
      if (!o.logPath) rmSync(logFile, { force: true });
    }
  }

  function checkId(id: string): void {
    assertValidContainerId(id);
  }

  return {
    root: o.root,

    async create(id, bundle, c) {
      checkId(id);
      const args = ["--bundle", bundle, "--pid-file", c.pidFile];
      if (c.consoleSocket !== undefined) args.push("--console-socket", c.consoleSocket);
      if (c.noPivot) args.push("--no-pivot");
      if (c.noNewKeyring) args.push("--no-new-keyring");
      const env = c.notifySocket !== undefined ? { NOTIFY_SOCKET: c.notifySocket } : undefined;
      await run({ command: "create", id, args: [...args, id], stdio: c.stdio, containerStdio: true, call: c, ...(env ? { env } : {}) });
    },

    async start(id, c) {
      checkId(id);
      await run({ command: "start", id, args: [id], call: c });
    },


    async exec(id, processSpec, c) {
      checkId(id);
      const parsed = parseDetail(processSpecSchema(), processSpec);
      if (!parsed.ok) throw invalidArgument(`exec process for container ${id}`, { detail: parsed.detail });
      // In the container's state directory, which `runc delete` removes whole: a shim killed during the call left the
      // file in /tmp for good (a helper session's kill-during-exec runs left twelve); /tmp when runc has no state for id.
      const stateDir = join(o.root, id);
      const file = join(existsSync(stateDir) ? stateDir : tmpdir(), `cryo-process-${crypto.randomUUID()}.json`);
      writeFileSync(file, stringifyPreciseJson(parsed.data), { mode: 0o600 });
      try {
        const args = ["--process", file, "--detach", "--pid-file", c.pidFile];
        if (c.consoleSocket !== undefined) args.push("--console-socket", c.consoleSocket);
        await run({ command: "exec", id, args: [...args, id], stdio: c.stdio, containerStdio: true, call: c });
      } finally {
        rmSync(file, { force: true });
      }
    },

    async kill(id, signal, c) {
      checkId(id);
      const sig = typeof signal === "number" ? String(signal) : signal.replace(/^SIG/i, "").toUpperCase();
      // 0 checks that the process is there (kill(2)), as containerd's runc shim passes it on to runc.
      if (typeof signal === "number" && (!Number.isInteger(signal) || signal < 0 || signal > 64)) {
        throw invalidArgument(`signal ${signal}`);
      }
      await run({ command: "kill", id, args: [...(c?.all ? ["--all"] : []), id, sig], call: c });
    },

    async delete(id, c) {
      checkId(id);
      const cwd = c?.cwd !== undefined && existsSync(c.cwd) ? c.cwd : undefined;
      await run({ command: "delete", id, args: [...(c?.force ? ["--force"] : []), id], call: c, ...(cwd !== undefined ? { cwd } : {}) });
    },

    async ps(id, c) {
      checkId(id);
      const out = await run({ command: "ps", id, args: ["--format", "json", id], capture: true, call: c });
      return parseOutput(runcPsSchema(), out, `runc ps ${id}`) ?? [];
    },

    async state(id, c) {
      checkId(id);
      const out = await run({ command: "state", id, args: [id], capture: true, call: c });
      return parseOutput(runcCliStateSchema(), out, `runc state ${id}`);
    },

    async pause(id, c) {
      checkId(id);
      await run({ command: "pause", id, args: [id], call: c });
    },

    async resume(id, c) {
      checkId(id);
      await run({ command: "resume", id, args: [id], call: c });
    },

    async update(id, resources, c) {
      checkId(id);
      const body = new TextEncoder().encode(JSON.stringify(resources));
      await run({ command: "update", id, args: ["--resources", "-", id], stdin: body, call: c });
    },
  };
}

/** Reads the pid runc wrote to a pid file. */
export function readPidFile(path: string): number {
  let text: string;
  try {
    text = readFileSync(path, "utf8").trim();
  } catch (err) {
    throw CryoError.from(err, (err as { code?: string }).code === "ENOENT" ? Code.NOT_FOUND : Code.UNKNOWN).wrap(`pid file ${path}`);
  }
  const pid = Number(text);
  if (!Number.isInteger(pid) || pid <= 0) throw invalidArgument(`pid file ${path}`, { detail: `holds ${JSON.stringify(text)}` });
  return pid;
}

function parseOutput<T extends z.ZodMiniType>(schema: T, out: string, context: string): z.infer<T> {
  let json: unknown;
  try {
    json = JSON.parse(out);
  } catch (err) {
    throw unknown(context, { detail: `output is not JSON: ${out.slice(0, 200)}`, cause: err });
  }
  const r = parseDetail(schema, json);
  if (!r.ok) throw unknown(context, { detail: `unexpected output: ${r.detail}` });
  return r.data;
}

function fileSize(path: string): number {
  try {
    return statSync(path).size;
  } catch {
    return 0;
  }
}

function readFrom(path: string, start: number): string {
  try {
    const buf = readFileSync(path);
    return buf.subarray(Math.min(start, buf.length)).toString("utf8");
  } catch {
    return "";
  }
}

function lastLine(text: string): string | undefined {
  const lines = text.split("\n").map((l) => l.trim()).filter((l) => l !== "");
  return lines.at(-1);
}
