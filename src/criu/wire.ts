/**
 * The helper protocol's lines, checked by hand (no zod): the helper process loads this instead of the
 * zod schemas of protocol.ts/options.ts, whose import and construction were most of its start-up time
 * (zod 4-10 ms, the schemas 8-30 ms of a 30-55 ms start, load-dependent; docs/criu.md "Helper start").
 *
 * Trust: every line checked here is an internal message between two processes of the same binary over
 * a private pipe (the caller spawned the helper and holds both ends). The input that crosses a trust
 * boundary, the caller's `CriuOpts`, is validated with zod (`criuOptsSchema`) by the client before any
 * helper sees it (client.ts). The helper still checks every field's type and range here, so that a bug
 * or version skew fails with INVALID_ARGUMENT instead of reaching libcriu's setters with a wrong value,
 * and it re-checks the one security-relevant invariant: configExtra names (they become lines of CRIU's
 * configuration file). test/unit/criu/wire.test.ts keeps this in step with the zod schemas.
 */
import { Code, CryoError } from "../errors.ts";
import type { CriuOpts } from "./options.ts";
import type { HelperMessage, HelperRequest, ReplyMessage } from "./protocol.ts";

/** The marker argument that makes the cryo binaries run as the CRIU helper. */
export const CRIU_HELPER_ARG = "__criu";

/** Operations the helper performs. */
export const HELPER_OPS = ["dump", "pre-dump", "restore", "check", "version", "features"] as const;

/** Notify actions CRIU sends (criu/action-scripts.c). */
export const NOTIFY_ACTIONS = [
  "pre-stream",
  "pre-dump",
  "post-dump",
  "pre-restore",
  "post-restore",
  "network-lock",
  "network-unlock",
  "setup-namespaces",
  "post-setup-namespaces",
  "pre-resume",
  "post-resume",
  "orphan-pts-master",
  "status-ready",
  "query-ext-files",
] as const;

/** Cgroup manage modes (`--manage-cgroups=MODE`). */
export const CGROUP_MODES = ["ignore", "none", "props", "soft", "full", "strict", "default"] as const;
/** Namespaces a restore can join (`--join-ns`). */
export const JOIN_NS = ["net", "ipc", "uts", "mnt", "pid", "user", "cgroup", "time"] as const;
/** configExtra option names: what may become a line of CRIU's configuration file. */
export const CONFIG_EXTRA_NAME = /^[a-z][a-z0-9-]*$/;

/** A check throws a message naming the path of the first bad value. */
type Check = (v: unknown, path: string) => void;

class Bad extends Error {}
const bad = (path: string, what: string): never => {
  throw new Bad(`${path}: expected ${what}`);
};

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === "object" && v !== null && !Array.isArray(v);
const str =
  (min = 0, max = Infinity): Check =>
  (v, p) => {
    if (typeof v !== "string" || v.length < min || v.length > max) bad(p, `a string of ${min}..${max} characters`);
  };
const bool: Check = (v, p) => {
  if (typeof v !== "boolean") bad(p, "a boolean");
};
const int =
  (min = -Number.MAX_SAFE_INTEGER, max = Number.MAX_SAFE_INTEGER): Check =>
  (v, p) => {
    if (typeof v !== "number" || !Number.isSafeInteger(v) || v < min || v > max) bad(p, `an integer in ${min}..${max}`);
  };
const num: Check = (v, p) => {
  if (typeof v !== "number" || !Number.isFinite(v)) bad(p, "a number");
};
const oneOf =
  (values: readonly string[]): Check =>
  (v, p) => {
    if (typeof v !== "string" || !values.includes(v)) bad(p, `one of ${values.join(", ")}`);
  };
const arr =
  (item: Check): Check =>
  (v, p) => {
    if (!Array.isArray(v)) return bad(p, "an array");
    v.forEach((x, i) => item(x, `${p}[${i}]`));
  };
/** An object with these fields (absent = optional unless listed in required); other keys: rejected when strict. */
const obj =
  (fields: Record<string, Check>, required: readonly string[] = [], strict = false): Check =>
  (v, p) => {
    if (!isObject(v)) return bad(p, "an object");
    for (const k of required) if (v[k] === undefined) bad(`${p}.${k}`, "a value");
    for (const [k, x] of Object.entries(v)) {
      const check = fields[k];
      if (!check) {
        if (strict) bad(`${p}.${k}`, "no such field");
        continue;
      }
      if (x !== undefined) check(x, `${p}.${k}`);
    }
  };
const record =
  (key: RegExp, value: Check): Check =>
  (v, p) => {
    if (!isObject(v)) return bad(p, "an object");
    for (const [k, x] of Object.entries(v)) {
      if (!key.test(k)) bad(`${p}[${JSON.stringify(k)}]`, `a name matching ${key}`);
      value(x, `${p}.${k}`);
    }
  };
const either =
  (...checks: Check[]): Check =>
  (v, p) => {
    const errors: string[] = [];
    for (const c of checks) {
      try {
        c(v, p);
        return;
      } catch (err) {
        errors.push((err as Error).message);
      }
    }
    throw new Bad(errors.join(" or "));
  };
const literalTrue: Check = (v, p) => {
  if (v !== true) bad(p, "true");
};

const key = str(1, 4096);
const s1 = str(1);

/** Every CriuOpts field and its check (the same rules as options.ts's criuOptsSchema). */
export const CRIU_OPTS_FIELDS: Record<keyof CriuOpts, Check> = {
  imagesDir: s1,
  workDir: s1,
  parentImages: s1,
  pid: int(1),
  root: s1,
  leaveRunning: bool,
  leaveStopped: bool,
  tcpEstablished: bool,
  tcpClose: bool,
  tcpSkipInFlight: bool,
  extUnixSk: bool,
  unixSkInodes: arr(int(0)),
  shellJob: bool,
  fileLocks: bool,
  trackMem: bool,
  autoDedup: bool,
  linkRemap: bool,
  forceIrmap: bool,
  irmapPaths: arr(key),
  evasiveDevices: bool,
  weakSysctls: bool,
  orphanPtsMaster: bool,
  skipFileRwxCheck: bool,
  manageCgroups: bool,
  manageCgroupsMode: oneOf(CGROUP_MODES),
  freezeCgroup: s1,
  cgRoots: arr(obj({ controller: str(), path: key }, ["path"])),
  cgYard: s1,
  cgDumpControllers: arr(s1),
  cgProps: str(),
  cgPropsFile: str(),
  emptyNs: arr(oneOf(["net"])),
  joinNs: arr(obj({ ns: oneOf(JOIN_NS), file: s1, extra: str() }, ["ns", "file"])),
  lsmProfile: s1,
  lsmMountContext: s1,
  extMounts: arr(obj({ key, value: key }, ["key", "value"])),
  autoExtMnt: bool,
  extSharing: bool,
  extMasters: bool,
  external: arr(key),
  vethPairs: arr(obj({ inside: s1, outside: s1 }, ["inside", "outside"])),
  inheritFds: arr(obj({ fd: int(0), key }, ["fd", "key"])),
  skipMounts: arr(key),
  enableFs: arr(s1),
  ghostLimit: int(0),
  timeout: int(1),
  preDumpMode: oneOf(["splice", "read"]),
  networkLock: oneOf(["iptables", "nftables", "skip"]),
  pageServer: obj({ address: s1, port: int(0, 65535) }, ["address", "port"]),
  mntnsCompatMode: bool,
  lazyPages: bool,
  displayStats: bool,
  logLevel: int(0, 4),
  logFile: s1,
  configFile: s1,
  configExtra: record(CONFIG_EXTRA_NAME, either(str(), literalTrue)),
  serviceBinary: s1,
};

const requestCheck = obj(
  {
    op: oneOf(HELPER_OPS),
    opts: obj(CRIU_OPTS_FIELDS, ["imagesDir"], true),
    restoreChild: bool,
    joinCgroups: arr(s1),
    waitFor: arr(oneOf(NOTIFY_ACTIONS)),
    copyLogsTo: s1,
    inheritFrom: int(1),
    notify: bool,
    reportVersion: bool,
  },
  ["op"],
  true,
);

const replyCheck = obj({ type: oneOf(["reply"]), seq: int(), ok: bool, message: str() }, ["type", "seq", "ok"]);

const notifyCheck = obj(
  { type: oneOf(["notify"]), seq: int(), action: str(), pid: int(), wait: bool, fd: int(), helperPid: int() },
  ["type", "seq", "action", "pid", "wait", "helperPid"],
);

const callingCheck = obj({ type: oneOf(["calling"]) }, ["type"]);

const resultCheck = obj(
  {
    type: oneOf(["result"]),
    ok: bool,
    op: oneOf(HELPER_OPS),
    rc: int(),
    errno: int(),
    code: int(),
    message: str(),
    logFile: str(),
    logErrors: arr(str()),
    refusedBy: str(),
    features: obj({ memTrack: bool, lazyPages: bool, pidfdStore: bool }, ["memTrack", "lazyPages", "pidfdStore"]),
    criuVersion: int(1),
    durationMs: num,
    idleMs: num,
  },
  ["type", "ok", "op", "rc", "errno", "logErrors", "durationMs"],
);

function run(check: Check, v: unknown, path: string): string | undefined {
  try {
    check(v, path);
    return undefined;
  } catch (err) {
    if (err instanceof Bad) return err.message;
    throw err;
  }
}

/** The helper's request line (parsed JSON), checked; INVALID_ARGUMENT naming the first bad field otherwise. */
export function checkHelperRequest(v: unknown): HelperRequest {
  const problem = run(requestCheck, v, "request");
  if (problem !== undefined) throw new CryoError(Code.INVALID_ARGUMENT, `criu helper request: invalid argument: ${problem}`);
  return v as HelperRequest;
}

/** Whether a CriuOpts passes the helper's check (undefined) or the first problem found. */
export function criuOptsProblem(v: unknown): string | undefined {
  return run(obj(CRIU_OPTS_FIELDS, ["imagesDir"], true), v, "opts");
}

/** A reply line from the caller (parsed JSON), or undefined when it is not one. */
export function checkReply(v: unknown): ReplyMessage | undefined {
  return run(replyCheck, v, "reply") === undefined ? (v as ReplyMessage) : undefined;
}

/** A line from the helper (parsed JSON): the calling mark, a notify event or the result, or undefined when it is none. */
export function checkHelperMessage(v: unknown): HelperMessage | undefined {
  if (!isObject(v)) return undefined;
  const check = v.type === "notify" ? notifyCheck : v.type === "result" ? resultCheck : v.type === "calling" ? callingCheck : undefined;
  return check && run(check, v, "message") === undefined ? (v as HelperMessage) : undefined;
}
