import { chmodSync, closeSync, existsSync, mkdirSync, mkdtempSync, openSync, readdirSync, readFileSync, realpathSync, rmSync, rmdirSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { basename, dirname, join, resolve } from "node:path";
import { z } from "zod";
import { Code, CryoError, alreadyExists, deadlineExceeded, failedPrecondition, fsError, invalidArgument, notFound, unavailable } from "../errors.ts";
import { argValue, processAlive, processesWithArg, removeNamespaceLeftovers, unmountUnder } from "./cleanup.ts";
import { CONFIG_HEADER_PREFIX, configHeader, renderContainerdConfig } from "./config.ts";
import { type CtrOptions, type CtrResult, ctrBinary, runCtr } from "./ctr.ts";
import { type ContainerdLayout, containerdLayout, maxSocketPath } from "./layout.ts";

const startOptionsSchema = z.object({
  dir: z.string().min(1).optional(),
  binDir: z.string().min(1).optional(),
  namespace: z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._-]*$/).optional(),
  logLevel: z.enum(["trace", "debug", "info", "warn", "error"]).optional(),
  startTimeoutMs: z.number().int().positive().optional(),
  detached: z.boolean().optional(),
  /** The CRI plugin's sandbox ("pause") image, e.g. a local image when no registry is reachable. */
  sandboxImage: z.string().min(1).optional(),
  /** Extra environment for containerd, which its shims inherit (e.g. CRYO_CONFIG). */
  env: z.record(z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/), z.string()).optional(),
  /**
   * Run containerd (and so its shims, runc and CRIU) in a mount namespace of its own that looks like a cgroup v2
   * host (V2_HOST_SCRIPT): tests of the v2 paths on a hybrid host. Not with `detached`.
   */
  cgroupV2Host: z.boolean().optional(),
});

/**
 * Makes the mount namespace `unshare --mount --propagation private` gave look like a pure cgroup v2 host, then
 * execs its arguments (containerd keeps the pid): every cgroup and cgroup2 mount is unmounted in it (the
 * host's stay), and the cgroup2 hierarchy is mounted at /sys/fs/cgroup. On a hybrid host its controllers are
 * those not bound to a v1 hierarchy (here only hugetlb), so no memory, pids or cpu limits; freezing
 * (cgroup.freeze), cpu.stat, cgroup.procs and cgroup.events are there. The kernel still lists the processes' v1
 * memberships in /proc/<pid>/cgroup, which a real v2 host does not.
 */
const V2_HOST_SCRIPT = [
  "set -e",
  `awk '{ for (i = 7; i <= NF; i++) if ($i == "-") { if ($(i+1) == "cgroup" || $(i+1) == "cgroup2") print $5; break } }' /proc/self/mountinfo | sort -r | while read -r m; do umount -l "$m"; done`,
  "mount -t cgroup2 cgroup2 /sys/fs/cgroup",
  'exec "$@"',
].join("\n");

/** Options for startPrivateContainerd. */
export type StartPrivateContainerdOptions = z.input<typeof startOptionsSchema>;

/** Options for PrivateContainerd.stop. */
export interface StopOptions {
  /** Kill and delete every task and container first (default true), so no shim or container outlives containerd. */
  cleanup?: boolean;
  /** Remove the directory afterwards (default true). Only cryo's own entries are removed; the dir itself only if then empty. */
  removeDir?: boolean;
  /** How long to wait after SIGTERM before SIGKILL (default 10 s). */
  termTimeoutMs?: number;
  /**
   * Stop containerd only (default false): its tasks, their shims, its root, state and mounts stay, so that the
   * same directory started again serves them (containerd reconnects to the running shims).
   */
  keepContainers?: boolean;
}

/**
 * The containerd binary: `$CRYO_CONTAINERD` (a path, e.g. another containerd version's build, whose directory then
 * comes before the system's on containerd's PATH), else `containerd` from the PATH below (Debian installs it as
 * /usr/bin/containerd).
 */
export function containerdBinary(): string {
  return process.env.CRYO_CONTAINERD || "containerd";
}

/** Directories searched after binDir, so criu (/usr/local/sbin) and runc are found by shims. */
const systemPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/** Where `npm run build` puts cryo's binaries, or the directory of the running `cryo` binary. */
export function defaultBinDir(): string | undefined {
  const candidates = [dirname(process.execPath), resolve(import.meta.dir, "../../build/bin")];
  return candidates.find((dir) => existsSync(join(dir, "containerd-shim-cryo-v2")) || existsSync(join(dir, "cryo")));
}

/** Whether pid is a containerd running with the layout's config (`containerd --config <config>`). */
function runsConfig(pid: number, config: string): boolean {
  try {
    const argv = readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0");
    return basename(argv[0] ?? "") === "containerd" && argv.includes(config);
  } catch {
    return false;
  }
}

/**
 * The containerd serving a layout: the pid file's process when it is alive and runs the layout's config (the pid
 * may have been reused), else any process that runs that config (a containerd started again by hand after the
 * one of the pid file died: without it, stop would take the directory for a dead one's and clean it up under a
 * running containerd). Undefined when none does.
 */
function readLivePid(layout: ContainerdLayout): number | undefined {
  let text: string | undefined;
  try {
    text = readFileSync(layout.pidFile, "utf8");
  } catch {
    // none: look for a containerd with the config
  }
  if (text !== undefined) {
    const parsed = z.coerce.number().int().positive().safeParse(text.trim());
    if (!parsed.success) throw invalidArgument(`pid file ${layout.pidFile}`, { detail: `not a pid: ${JSON.stringify(text)}` });
    if (processAlive(parsed.data) && runsConfig(parsed.data, layout.config)) return parsed.data;
  }
  for (const name of readdirSync("/proc")) {
    const pid = Number(name);
    if (Number.isInteger(pid) && pid > 0 && pid !== process.pid && runsConfig(pid, layout.config)) return pid;
  }
  return undefined;
}

/**
 * Refuses a directory whose config.toml is not one `cryo containerd start` wrote for it (its first line says so):
 * stop removes the files of the layout and ends the containerd that runs its config, and start overwrites the
 * config, so neither may take /etc/containerd, or any directory of another's containerd, for a private one's.
 * Returns the layout under the name the config was written for (the same directory named otherwise, through a
 * symlink or /var/run for /run: the containerd runs with that name's config path), or the given one when there is no
 * config yet.
 */
function cryoLayout(layout: ContainerdLayout): ContainerdLayout {
  let first: string;
  try {
    first = readFileSync(layout.config, "utf8").split("\n", 1)[0]!;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return layout;
    throw fsError(`private containerd in ${layout.dir}`, err, layout.config);
  }
  if (first === configHeader(layout)) return layout;
  const named = first.startsWith(CONFIG_HEADER_PREFIX) ? first.slice(CONFIG_HEADER_PREFIX.length) : undefined;
  if (named !== undefined && sameDirectory(named, layout.dir)) return containerdLayout(named);
  throw failedPrecondition(`private containerd in ${layout.dir}`, {
    detail: `${layout.config} was not written by cryo containerd start for this directory (its first line is not "${configHeader(layout)}"): cryo leaves this directory and any containerd running with it alone`,
  });
}

function sameDirectory(a: string, b: string): boolean {
  try {
    return realpathSync(a) === realpathSync(b);
  } catch {
    return false;
  }
}

function tail(path: string, lines = 30): string {
  try {
    return readFileSync(path, "utf8").trimEnd().split("\n").slice(-lines).join("\n");
  } catch {
    return "(no log)";
  }
}

/**
 * A containerd of cryo's own: root, state, sockets, config and log under one directory, started with cryo's
 * binaries first on PATH. Holds the process: stop it (or `await using`) to end containerd, its shims and
 * containers, unmount what is left and remove the directory.
 */
export class PrivateContainerd implements AsyncDisposable {
  /** The gRPC socket, for `ctr --address`. */
  readonly address: string;
  /** containerd's ttrpc socket (`<address>.ttrpc`). */
  readonly ttrpcAddress: string;
  /** containerd's root directory. */
  readonly root: string;
  /** containerd's state directory. */
  readonly state: string;
  /** The directory holding everything. */
  readonly dir: string;
  private stopped: Promise<void> | undefined;
  /** Namespaces seen in this containerd, whose per-namespace leftovers (cgroups, runc root) stop removes. */
  private readonly namespacesSeen = new Set<string>();

  private constructor(
    /** Every path of this containerd. */
    readonly layout: ContainerdLayout,
    /** The pid of containerd. */
    readonly pid: number,
    /** The default namespace for ctr calls. */
    readonly namespace: string,
    /** The child process when this process started it (undefined when attached to one started elsewhere). */
    private readonly child: Bun.Subprocess | undefined,
    /** Whether the directory was made by start (a temp dir). */
    private readonly ownsDir: boolean,
  ) {
    this.address = layout.address;
    this.ttrpcAddress = layout.ttrpcAddress;
    this.root = layout.root;
    this.state = layout.state;
    this.dir = layout.dir;
  }

  /** Starts containerd and waits until it answers; see startPrivateContainerd. */
  static async start(input: StartPrivateContainerdOptions = {}): Promise<PrivateContainerd> {
    const parsed = startOptionsSchema.safeParse(input);
    if (!parsed.success) throw invalidArgument("private containerd options", { detail: z.prettifyError(parsed.error) });
    const options = parsed.data;
    // cryo asks containerd through ctr, looked up on the caller's PATH: without it the start cannot succeed, so it
    // is said before anything is made or started (containerd was started, then stopped, and its directory kept).
    if (Bun.which(ctrBinary, { PATH: process.env.PATH ?? "" }) === null) {
      throw notFound(ctrBinary, { detail: `not on PATH (${process.env.PATH ?? ""}): cryo asks containerd through it` });
    }
    const ownsDir = options.dir === undefined;
    const dir = options.dir !== undefined ? resolve(options.dir) : mkdtempSync(join(tmpdir(), "cryo-ctd-"));
    const layout = containerdLayout(dir);
    if (layout.ttrpcAddress.length > maxSocketPath) {
      throw invalidArgument(`directory ${dir}`, { detail: `socket path ${layout.ttrpcAddress} is longer than ${maxSocketPath} bytes` });
    }
    // The directory's files in words when one cannot be made (a DIR that is a file printed `EEXIST: file already
    // exists, mkdir 'DIR'`); nothing has started yet.
    const inDir = <T>(step: () => T): T => {
      try {
        return step();
      } catch (err) {
        throw fsError(`private containerd in ${dir}`, err, dir);
      }
    };
    // What this start makes, removed again when containerd cannot be started at all (a bad $CRYO_CONTAINERD left DIR
    // with its config, tmp and an empty log before).
    const madeDir = ownsDir || !existsSync(dir);
    const made = [layout.config, layout.tmp, layout.log].filter((p) => !existsSync(p));
    const unmake = () => {
      if (madeDir) rmSync(dir, { recursive: true, force: true });
      else for (const p of made) rmSync(p, { recursive: true, force: true });
    };
    inDir(() => mkdirSync(dir, { recursive: true, mode: 0o711 }));
    // mkdtemp makes it 0700: a container in a user namespace (its root another uid on the host) must reach its
    // bundle's rootfs below it, as below containerd's own /run/containerd (0711).
    if (ownsDir) chmodSync(dir, 0o711);
    const running = readLivePid(cryoLayout(layout));
    // Said what to do: use the one that runs, or stop it first (it said "already exists" alone).
    if (running !== undefined) {
      throw alreadyExists(`private containerd in ${dir} (pid ${running})`, {
        detail: `it runs: use it (ctr --address ${layout.address}; \`cryo containerd status --dir ${dir}\`), or \`cryo containerd stop --dir ${dir}\` first`,
      });
    }
    inDir(() => {
      for (const socket of [layout.address, layout.ttrpcAddress]) rmSync(socket, { force: true });
      writeFileSync(layout.config, renderContainerdConfig(layout, { logLevel: options.logLevel, sandboxImage: options.sandboxImage }));
    });

    const binDir = options.binDir ?? defaultBinDir();
    // Another containerd's own directory comes next, so its containerd-shim-runc-v2 (of the same version) is the
    // one it runs: containerd 2.3+ starts shims with its bootstrap protocol, which 1.6's runc shim misreads.
    const containerdDir = process.env.CRYO_CONTAINERD ? dirname(process.env.CRYO_CONTAINERD) : undefined;
    const path = [binDir, containerdDir, systemPath, process.env.PATH].filter((p) => p).join(":");
    // Checkpoint dumps and restore extractions land in the private dir, so stop() removes them with it.
    inDir(() => mkdirSync(layout.tmp, { recursive: true, mode: 0o700 }));
    const env = { ...process.env, ...options.env, PATH: path, XDG_RUNTIME_DIR: layout.tmp };
    let child: Bun.Subprocess;
    // Appended to: a containerd started again in the same directory (after a crash, or `stop --keep-containers`)
    // wrote over the earlier run's log from its first byte, the earlier run's last records left after its own.
    const logFd = inDir(() => openSync(layout.log, "a", 0o600));
    try {
      const argv = [containerdBinary(), "--config", layout.config];
      if (options.cgroupV2Host) argv.unshift("unshare", "--mount", "--propagation", "private", "sh", "-c", V2_HOST_SCRIPT, "sh");
      child = Bun.spawn(argv, {
        stdin: "ignore",
        stdout: logFd,
        stderr: logFd,
        env,
        detached: options.detached ?? false,
      });
    } catch (err) {
      closeSync(logFd);
      unmake();
      // A binary that is not there or may not be run, in words and naming $CRYO_CONTAINERD when that chose it
      // (node's "Error: ENOENT: no such file or directory, posix_spawn '/x'" before).
      const code = (err as NodeJS.ErrnoException).code;
      const what = `start ${containerdBinary()}${process.env.CRYO_CONTAINERD ? " ($CRYO_CONTAINERD)" : ""}`;
      if (code === "ENOENT" || code === "EACCES" || code === "ENOTDIR") throw fsError(what, err, containerdBinary());
      throw unavailable(`start ${containerdBinary()}`, { cause: err, detail: String(err) });
    }
    closeSync(logFd); // containerd has its own
    if (options.detached) child.unref();
    writeFileSync(layout.pidFile, `${child.pid}\n`);
    const pc = new PrivateContainerd(layout, child.pid, options.namespace ?? "default", child, ownsDir);
    try {
      await pc.waitReady(options.startTimeoutMs ?? 30_000);
    } catch (err) {
      await pc.stop({ cleanup: false, removeDir: ownsDir }).catch(() => {});
      throw err;
    }
    return pc;
  }

  /**
   * Attaches to a private containerd started earlier (e.g. by `cryo containerd start`) in dir. With
   * `{ orDead: true }` a dir whose containerd died is attached too (pid 0), so stop() can clean up after it.
   */
  static attach(dir: string, namespace = "default", options: { orDead?: boolean } = {}): PrivateContainerd {
    const given = containerdLayout(resolve(dir));
    // No config: not a directory of `cryo containerd start` (or stopped and cleaned up already), whatever runs with that path.
    // A directory this user may not read, or a file given for it, is said so (existsSync took both for "not found").
    try {
      statSync(given.config);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === "ENOENT") throw notFound(`private containerd in ${given.dir}`);
      throw fsError(`private containerd in ${given.dir}`, err, given.config);
    }
    const layout = cryoLayout(given);
    const pid = readLivePid(layout);
    if (pid !== undefined) return new PrivateContainerd(layout, pid, namespace, undefined, false);
    if (options.orDead) return new PrivateContainerd(layout, 0, namespace, undefined, false);
    // Its directory is still there (config, log, state): say how to clear it. When shims of its containers run on (it
    // was stopped with --keep-containers, or died under them), `stop` alone read as the fix, and it kills those containers.
    // (A standby daemon, booted ahead for a next container, carries the -address too, but no -id: it serves none.)
    const shims = processesWithArg("-address", layout.address)
      .filter((p) => argValue(p.argv, "-id") !== undefined)
      .map((p) => p.pid);
    if (shims.length > 0) {
      throw notFound(`private containerd in ${layout.dir}`, {
        detail: `it is not running (stopped with --keep-containers, or died), and shims of its containers run on (pid ${shims.join(", ")}): \`cryo containerd start --dir ${layout.dir}\` serves them again; \`cryo containerd stop --dir ${layout.dir}\` ends them and cleans up`,
      });
    }
    throw notFound(`private containerd in ${layout.dir}`, { detail: `it is not running (died or was killed); \`cryo containerd stop --dir ${layout.dir}\` cleans up after it` });
  }

  /** Runs ctr against this containerd (namespace defaults to this instance's; IO FIFOs in its directory, layout.fifo). */
  ctr(args: readonly string[], options: CtrOptions = {}): Promise<CtrResult> {
    return runCtr(this.address, args, { namespace: this.namespace, fifoDir: this.layout.fifo, ...options });
  }

  /** Like ctr, but fails with the command's stderr unless it exits 0; returns stdout. */
  async ctrOk(args: readonly string[], options: CtrOptions = {}): Promise<string> {
    const r = await this.ctr(args, options);
    if (r.exitCode !== 0) {
      throw new CryoError(Code.UNKNOWN, `ctr ${args.join(" ")}: exit ${r.exitCode}: ${r.stderr.trim() || r.stdout.trim()}`);
    }
    return r.stdout;
  }

  /** True while containerd's process exists. */
  get running(): boolean {
    return this.pid > 0 && processAlive(this.pid);
  }

  private async waitReady(timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      if (!this.running) {
        throw unavailable(`private containerd in ${this.dir}`, { detail: `containerd exited during start; log:\n${tail(this.layout.log)}` });
      }
      if (existsSync(this.address)) {
        const r = await runCtr(this.address, ["version"], { timeoutMs: 5_000 }).catch((err: unknown) => {
          // No ctr on PATH does not come right by waiting: said at once (it read "not answering after 30000 ms",
          // with containerd's log showing it serving).
          if ((CryoError.from(err).cause as NodeJS.ErrnoException | undefined)?.code === "ENOENT") {
            throw notFound(ctrBinary, { detail: `not on PATH (${process.env.PATH ?? ""}): cryo asks containerd through it` });
          }
          return undefined;
        });
        if (r?.exitCode === 0) return;
      }
      if (Date.now() > deadline) {
        throw deadlineExceeded(`private containerd in ${this.dir}`, { detail: `not answering after ${timeoutMs} ms; log:\n${tail(this.layout.log)}` });
      }
      await Bun.sleep(100);
    }
  }

  /** Kills and deletes every task and container in every namespace, through containerd. */
  async removeAllContainers(): Promise<void> {
    const nsOut = await runCtr(this.address, ["namespaces", "ls", "-q"], { timeoutMs: 10_000 });
    if (nsOut.exitCode !== 0) return;
    const namespaces = lines(nsOut.stdout);
    for (const namespace of namespaces) {
      this.namespacesSeen.add(namespace);
      const run = (args: string[]) => runCtr(this.address, args, { namespace, timeoutMs: 15_000 }).catch(() => undefined);
      const tasks = await run(["tasks", "ls", "-q"]);
      for (const id of lines(tasks?.stdout)) {
        await run(["tasks", "kill", "--all", "--signal", "SIGKILL", id]);
        await run(["tasks", "delete", "--force", id]);
      }
      const containers = await run(["containers", "ls", "-q"]);
      for (const id of lines(containers?.stdout)) await run(["containers", "delete", id]);
    }
  }

  /** Stops containerd (SIGTERM, then SIGKILL), ends leftover shims, unmounts what is left under the dir and removes it. Idempotent. */
  stop(options: StopOptions = {}): Promise<void> {
    this.stopped ??= this.doStop(options);
    return this.stopped;
  }

  private async doStop(options: StopOptions): Promise<void> {
    if (options.keepContainers) {
      if (this.pid > 0) await this.terminate(this.pid, options.termTimeoutMs ?? 10_000);
      return;
    }
    if ((options.cleanup ?? true) && this.running) await this.removeAllContainers().catch(() => {});
    if (this.pid > 0) await this.terminate(this.pid, options.termTimeoutMs ?? 10_000);
    // Shims started by this containerd carry `-address <our socket>`: they are ours to end.
    for (const shim of processesWithArg("-address", this.address)) {
      const namespace = argValue(shim.argv, "-namespace");
      const id = argValue(shim.argv, "-id");
      if (namespace !== undefined && id !== undefined) {
        const runc = Bun.spawn(["runc", "--root", `/run/containerd/runc/${namespace}`, "delete", "--force", id], { stdout: "ignore", stderr: "ignore" });
        await runc.exited;
      }
      await this.terminate(shim.pid, 2_000);
    }
    // "default" is shared with the system containerd; leave its cgroup alone.
    for (const namespace of this.namespacesSeen) if (namespace !== "default") removeNamespaceLeftovers(namespace);
    const stuck = await unmountUnder(this.dir);
    if (options.removeDir ?? true) {
      if (stuck.length > 0) throw unavailable(`remove ${this.dir}`, { detail: `still mounted: ${stuck.join(", ")}` });
      this.removeDir();
    }
  }

  private removeDir(): void {
    const l = this.layout;
    for (const path of [l.root, l.state, l.opt, l.tmp, l.fifo, l.address, l.ttrpcAddress, l.config, l.log, l.pidFile]) {
      rmSync(path, { recursive: true, force: true });
    }
    if (this.ownsDir) rmSync(this.dir, { recursive: true, force: true });
    else {
      try {
        rmdirSync(this.dir);
      } catch {
        // not empty: someone else's files stay
      }
    }
  }

  private async terminate(pid: number, timeoutMs: number): Promise<void> {
    if (!processAlive(pid)) return this.reap(pid);
    try {
      process.kill(pid, "SIGTERM");
    } catch (err) {
      // Not ours to signal (a user other than containerd's): nothing may be cleaned up under it either.
      if ((err as NodeJS.ErrnoException).code === "EPERM") throw new CryoError(Code.PERMISSION_DENIED, `stop process ${pid} of the private containerd in ${this.dir}: permission denied: run as the user who started it (root)`);
      return this.reap(pid);
    }
    const deadline = Date.now() + timeoutMs;
    while (processAlive(pid) && Date.now() < deadline) await Bun.sleep(50);
    if (processAlive(pid)) {
      try {
        process.kill(pid, "SIGKILL");
      } catch {
        // already gone
      }
      while (processAlive(pid)) await Bun.sleep(20);
    }
    await this.reap(pid);
  }

  private async reap(pid: number): Promise<void> {
    if (this.child !== undefined && pid === this.pid) await this.child.exited;
  }

  /** Same as stop(). */
  async [Symbol.asyncDispose](): Promise<void> {
    await this.stop();
  }
}

function lines(text: string | undefined): string[] {
  return (text ?? "").split("\n").map((s) => s.trim()).filter(Boolean);
}

/** Starts a private containerd (temp dir unless dir is given) with cryo's binaries first on PATH, and waits until it answers. */
export function startPrivateContainerd(options: StartPrivateContainerdOptions = {}): Promise<PrivateContainerd> {
  return PrivateContainerd.start(options);
}
