/**
 * The CRIU helper process: runs one libcriu call per process, off the caller's event loop.
 *
 * Entered through worker-main.ts (from source) or the `__criu` argument of a compiled cryo binary.
 * This module's imports are the helper's whole start-up cost: it uses no zod and no protobuf (wire.ts checks
 * the lines by hand; see there for why that is enough), and the compiled entry imports it directly, not
 * index.ts (which brings the client, stats and inspection with their protobuf code).
 *
 * Everything here is synchronous on purpose: libcriu blocks this thread for the whole call and calls
 * the notify callback on it, so messages are written with writeSync and replies read with readSync.
 */
import { closeSync, copyFileSync, mkdirSync, openSync, readFileSync, readSync, writeFileSync, writeSync } from "node:fs";
import { join, resolve } from "node:path";
import type { Pointer } from "bun:ffi";
import { joinFile } from "../cgroups/join-file.ts";
import { Code, CryoError } from "../errors.ts";
import { clearCloexec, takeFdFromProcess } from "../sys/index.ts";
import { applyOptions } from "./apply-options.ts";
import { renderConfigFile } from "./config-file.ts";
import { CRIU_HELPER_WARM_ENV } from "./helper-env.ts";
import { loadLibCriu, type LibCriu } from "./libcriu.ts";
import { criuVersionFromLog, readCriuLogErrors } from "./log.ts";
import type { CriuOpts } from "./options.ts";
import type { CallingMessage, HelperRequest, NotifyMessage, ResultMessage } from "./protocol.ts";
import { checkHelperRequest, checkReply } from "./wire.ts";

/** Reads newline-terminated lines from fd 0, synchronously. */
function createLineReader(fd: number): () => string | undefined {
  let buffered = "";
  const chunk = Buffer.alloc(64 * 1024);
  return () => {
    for (;;) {
      const nl = buffered.indexOf("\n");
      if (nl >= 0) {
        const line = buffered.slice(0, nl);
        buffered = buffered.slice(nl + 1);
        return line;
      }
      let n: number;
      try {
        n = readSync(fd, chunk, 0, chunk.length, null);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === "EAGAIN") continue;
        throw err;
      }
      if (n === 0) {
        const rest = buffered;
        buffered = "";
        return rest.length > 0 ? rest : undefined;
      }
      buffered += chunk.toString("utf8", 0, n);
    }
  };
}

function send(msg: CallingMessage | NotifyMessage | ResultMessage): void {
  const line = Buffer.from(`${JSON.stringify(msg)}\n`);
  let off = 0;
  while (off < line.length) off += writeSync(1, line, off);
}


/** CRIU's version through libcriu (a `criu swrk` round trip), or undefined when that fails. */
function criuVersionOf(lib: LibCriu): number | undefined {
  const h = lib.newOpts();
  try {
    const v = lib.fn.criu_local_get_version(h);
    return v > 0 ? v : undefined;
  } finally {
    lib.fn.criu_local_free_opts(h);
  }
}

/** Runs the helper: one request from stdin, messages to stdout; returns the process exit code. */
export function runCriuHelper(): number {
  const spawned = performance.now();
  const readLine = createLineReader(0);
  let request: HelperRequest | undefined;
  try {
    // A warm helper does its start-up work (modules, libcriu) before the request arrives.
    const lib = process.env[CRIU_HELPER_WARM_ENV] === "1" ? loadLibCriu() : undefined;
    let line = readLine();
    // A warm helper taken for a restore may first be told to join the container's cgroups, while its caller
    // still works the restore out: the cgroup moves (10-15 ms here, the kernel's RCU grace period) then overlap
    // that work. A failure is reported with the request that needs the cgroups.
    const joined = new Set<string>();
    let joinError: CryoError | undefined;
    const joinDirs = joinMessage(line);
    if (joinDirs) {
      for (const dir of joinDirs) {
        try {
          writeFileSync(joinFile(dir), `${process.pid}\n`);
          joined.add(dir);
        } catch (err) {
          joinError = new CryoError(Code.FAILED_PRECONDITION, `criu restore: join cgroup ${dir}: failed precondition: ${(err as Error).message}`, { cause: err });
          break;
        }
      }
      line = readLine();
    }
    const started = performance.now();
    if (line === undefined) throw new CryoError(Code.INVALID_ARGUMENT, "criu helper: no request on stdin: invalid argument");
    let json: unknown;
    try {
      json = JSON.parse(line);
    } catch (err) {
      throw new CryoError(Code.INVALID_ARGUMENT, `criu helper request: invalid argument: not JSON: ${(err as Error).message}`);
    }
    request = checkHelperRequest(json);
    const loaded = lib ?? loadLibCriu();
    if (joinError && request.joinCgroups?.length) throw joinError;
    const result = perform(loaded, request, readLine, started, joined);
    // A dump's metadata records CRIU's version: taken from the line CRIU logs at its start (log level 3
    // and up), else asked here (one `criu swrk` round trip, ~10 ms, on the dump's critical path) rather
    // than by a second helper; the client asks only until it knows.
    const version = result.ok && request.reportVersion ? ((result.logFile ? criuVersionFromLog(result.logFile) : undefined) ?? criuVersionOf(loaded)) : undefined;
    if (version !== undefined) result.criuVersion = version;
    result.idleMs = started - spawned;
    send(result);
    return 0;
  } catch (err) {
    const e = CryoError.from(err);
    send({
      type: "result",
      ok: false,
      op: request?.op ?? "check",
      rc: -1,
      errno: 0,
      code: e.code,
      message: e.message,
      logErrors: [],
      durationMs: performance.now() - spawned,
    });
    return 1;
  }
}

/** This process's cgroups as CRIU cgroup roots (controller list -> path; "" is the unified hierarchy). */
function ownCgroupRoots(): { controller: string; path: string }[] {
  const roots: { controller: string; path: string }[] = [];
  for (const line of readFileSync("/proc/self/cgroup", "utf8").split("\n")) {
    const m = /^(\d+):([^:]*):(.*)$/.exec(line);
    if (!m) continue;
    roots.push({ controller: m[2]!, path: m[3]! });
  }
  return roots;
}

/** Copies CRIU's log and stats files from the work dir into dir (those that exist; same dir: nothing to do). */
function copyLogs(workDir: string, names: string[], dir: string): void {
  if (resolve(dir) === resolve(workDir)) return;
  for (const name of names) {
    try {
      copyFileSync(join(workDir, name), join(dir, name));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "ENOENT") throw CryoError.from(err).wrap(`criu: copy ${name} into ${dir}`);
    }
  }
}

/** The dirs of a `{"op":"join","dirs":[...]}` line (a restore's cgroups, sent ahead of its request), or undefined for any other line. */
function joinMessage(line: string | undefined): string[] | undefined {
  if (line === undefined || !line.startsWith('{"op":"join"')) return undefined;
  let msg: unknown;
  try {
    msg = JSON.parse(line);
  } catch {
    return undefined;
  }
  const dirs = (msg as { dirs?: unknown }).dirs;
  if (!Array.isArray(dirs) || !dirs.every((d) => typeof d === "string" && d.startsWith("/"))) throw new CryoError(Code.INVALID_ARGUMENT, "criu helper: join: invalid argument: dirs must be absolute paths");
  return dirs as string[];
}

function perform(lib: LibCriu, req: HelperRequest, readLine: () => string | undefined, started: number, joined: ReadonlySet<string> = new Set()): ResultMessage {
  const opts: CriuOpts = req.opts ?? { imagesDir: "/tmp" };
  const needsImages = req.op === "dump" || req.op === "pre-dump" || req.op === "restore";
  if (needsImages && !req.opts) throw new CryoError(Code.INVALID_ARGUMENT, `criu ${req.op}: options: invalid argument: imagesDir is required`);
  const workDir = opts.workDir ?? opts.imagesDir;
  const fds: number[] = [];
  let handle: Pointer | undefined;
  let callback: ReturnType<LibCriu["notifyCallback"]> | undefined;
  let refusedBy: string | undefined;
  try {
    const openDir = (dir: string, what: string): number => {
      try {
        const fd = openSync(dir, "r");
        fds.push(fd);
        return fd;
      } catch (err) {
        throw new CryoError(Code.NOT_FOUND, `criu ${what} ${dir}: not found`, { cause: err });
      }
    };
    const imagesFd = needsImages ? openDir(opts.imagesDir, "images dir") : -1;
    if (needsImages && opts.workDir) mkdirSync(opts.workDir, { recursive: true });
    const workFd = needsImages ? (opts.workDir ? openDir(opts.workDir, "work dir") : imagesFd) : -1;

    let configPath: string | undefined;
    const userText = opts.configFile ? readFileSync(opts.configFile, "utf8") : undefined;
    const configText = needsImages ? renderConfigFile(opts, userText) : undefined;
    if (configText !== undefined) {
      configPath = join(workDir, `cryo-${req.op}.conf`);
      writeFileSync(configPath, configText);
    }

    if (req.joinCgroups?.length) {
      for (const dir of req.joinCgroups) {
        if (joined.has(dir)) continue; // joined ahead of the request
        try {
          writeFileSync(joinFile(dir), `${process.pid}\n`);
        } catch (err) {
          throw new CryoError(Code.FAILED_PRECONDITION, `criu ${req.op}: join cgroup ${dir}: failed precondition: ${(err as Error).message}`, { cause: err });
        }
      }
      // CRIU's cgroup roots: the helper's own cgroups (the container's, just joined), but where the caller names one
      // (a controller the helper stays out of).
      const named = new Set((opts.cgRoots ?? []).map((r) => r.controller));
      opts.cgRoots = [...ownCgroupRoots().filter((r) => !named.has(r.controller)), ...(opts.cgRoots ?? [])];
    }

    // A warm helper was started before the caller had these descriptors: copy them from the caller.
    if (req.inheritFrom !== undefined) {
      for (const f of opts.inheritFds ?? []) {
        try {
          f.fd = takeFdFromProcess(req.inheritFrom, f.fd);
        } catch (err) {
          throw CryoError.from(err).wrap(`criu inherit fd ${f.fd} of pid ${req.inheritFrom}: pidfd_getfd`);
        }
        fds.push(f.fd);
      }
    }
    // Bun's startup marks this process's inherited fds 4, 5, ... close-on-exec; libcriu's fork+exec of
    // `criu swrk` would lose them, so the --inherit-fd descriptors are made inheritable first.
    for (const f of opts.inheritFds ?? []) {
      try {
        clearCloexec(f.fd);
      } catch (err) {
        throw CryoError.from(err).wrap(`criu inherit fd ${f.fd}: not an open descriptor of the helper`);
      }
    }

    handle = lib.newOpts();
    const logName = opts.logFile ?? `${req.op}.log`;
    const keep = needsImages ? applyOptions(lib, handle, opts, { imagesFd, workFd, configPath }, logName) : [];
    if (!needsImages && opts.serviceBinary) {
      const b = lib.cstr(opts.serviceBinary);
      keep.push(b);
      lib.fn.criu_local_set_service_binary(handle, b);
    }

    const waitFor = new Set<string>(req.waitFor ?? []);
    let seq = 0;
    callback = lib.notifyCallback((actionPtr, na) => {
      const action = lib.readString(actionPtr);
      const wait = waitFor.has(action);
      const msg: NotifyMessage = { type: "notify", seq: ++seq, action, pid: lib.fn.criu_notify_pid(na), wait, helperPid: process.pid };
      if (action === "orphan-pts-master") msg.fd = lib.fn.criu_get_orphan_pts_master_fd();
      send(msg);
      if (!wait) return 0;
      for (;;) {
        const line = readLine();
        if (line === undefined) {
          refusedBy = `${action} (caller went away)`;
          return -1;
        }
        let json: unknown;
        try {
          json = JSON.parse(line);
        } catch {
          continue;
        }
        const reply = checkReply(json);
        if (!reply || reply.seq !== msg.seq) continue;
        if (reply.ok) return 0;
        refusedBy = action;
        return -1;
      }
    });
    if (needsImages && req.notify !== false) lib.fn.criu_local_set_notify_cb(handle, callback.ptr as Pointer);

    let rc: number;
    let features: ResultMessage["features"];
    // The caller's abort tells "CRIU not started yet" from "CRIU already ended" by this mark (src/criu/client.ts).
    if (needsImages) send({ type: "calling" });
    switch (req.op) {
      case "dump":
        rc = lib.fn.criu_local_dump(handle);
        break;
      case "pre-dump":
        rc = lib.fn.criu_local_pre_dump(handle);
        break;
      case "restore":
        rc = req.restoreChild === false ? lib.fn.criu_local_restore(handle) : lib.fn.criu_local_restore_child(handle);
        break;
      case "check":
        rc = lib.fn.criu_local_check(handle);
        break;
      case "version":
        rc = lib.fn.criu_local_get_version(handle);
        break;
      case "features": {
        const f = new Uint8Array([1, 1, 1]);
        rc = lib.fn.criu_local_feature_check(handle, f, f.length);
        features = { memTrack: f[0] === 1, lazyPages: f[1] === 1, pidfdStore: f[2] === 1 };
        break;
      }
    }
    const errno = lib.errno();
    keep.length = 0; // the call has returned; the strings may go
    const ok = req.op === "restore" || req.op === "version" ? rc > 0 : rc >= 0;
    const logFile = needsImages ? join(workDir, logName) : undefined;
    if (needsImages && req.copyLogsTo) copyLogs(workDir, [logName, `stats-${req.op}`], req.copyLogsTo);
    return {
      type: "result",
      ok,
      op: req.op,
      rc,
      errno,
      logFile,
      logErrors: !ok && logFile ? readCriuLogErrors(logFile) : [],
      refusedBy,
      features: ok ? features : undefined,
      durationMs: performance.now() - started,
    };
  } finally {
    if (handle !== undefined) lib.fn.criu_local_free_opts(handle);
    callback?.close();
    for (const fd of fds) closeSync(fd);
  }
}
