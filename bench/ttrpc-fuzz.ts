// Benchmark-style run (not a test): a seeded, structure-aware fuzz of a shim daemon's ttrpc surface.
//
// A private containerd (per-namespace grouping) runs one real container, the witness, through ctr; its daemon also
// serves a target container the fuzzer creates itself straight over the socket (recreated when a request ends it).
// Each seed then sends --requests requests to that daemon:
//  - messages of every containerd.task.v2.Task / v3.Task method built from the generated descriptors, with field
//    values drawn from hostile pools (identifiers, strings, numbers, paths to /proc, /sys, devices, FIFOs, links),
//    and Any fields (runtime options, Update resources, Exec spec, Checkpoint options) with wrong type URLs, garbage
//    or truncated bytes, or valid types with hostile values;
//  - exec cycles on the target (Exec with a hostile process spec and stdio, Start, ResizePty, CloseIO, Kill, Wait,
//    Delete) and Create cycles (a fresh valid bundle and id with one hostile field: rootfs mounts, a stdio path or URI,
//    runtime options, a checkpoint or parent path; then Start, State, Kill, Wait, Delete when it was made);
//  - the same messages mutated on the wire (truncated, bytes flipped, unknown and duplicated fields, wrong wire types);
//  - frames written raw (random bytes, bad lengths, even/zero/old stream ids, data and unknown frame types, unknown
//    services and methods, a huge declared length, a request that is not a ttrpc.Request).
// After every request: the daemon is alive and answers State of the witness (RUNNING, same pid) within 3 s. Every
// answer's code is counted; INTERNAL, UNKNOWN, an unexpected DEADLINE_EXCEEDED, a dropped connection, and a success
// on a request the fuzzer marked invalid are findings. Every --check requests: the witness's bundle files, host files
// the paths name, names with the run's marker anywhere in /tmp, /run, /, /etc, /dev/shm, cgroup directories in every
// hierarchy under the namespace, and mounts; the daemon's fds and RSS are sampled.
//
// Run as root: node_modules/.bin/bun bench/ttrpc-fuzz.ts [--seeds 10] [--start 1] [--requests 300] [--check 25] [--out file.json]
import { lstatSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from "node:fs";
import { createConnection } from "node:net";
import { join, resolve } from "node:path";
import { create, fromBinary, toBinary, type DescField, type DescMessage } from "@bufbuild/protobuf";
import { AnySchema } from "@bufbuild/protobuf/wkt";
import { Code, CryoError, codeName as lowerCodeName } from "../src/errors.ts";
import { CreateOptionsSchema as LinuxCreateOptionsSchema } from "../src/gen/containerd/linux/runctypes/runc_pb.ts";
import { CheckpointOptionsSchema as RuncCheckpointOptionsSchema, OptionsSchema as RuncOptionsSchema } from "../src/gen/containerd/runc/options/oci_pb.ts";
import { Task as TaskV2 } from "../src/gen/containerd/runtime/task/v2/shim_pb.ts";
import { Task as TaskV3 } from "../src/gen/containerd/runtime/task/v3/shim_pb.ts";
import { OptionsSchema as CriOptionsSchema } from "../src/gen/containerd/runtimeoptions/v1/api_pb.ts";
import { Status } from "../src/gen/containerd/types/task/task_pb.ts";
import { CheckpointOptionsSchema as CryoCheckpointOptionsSchema, RuntimeOptionsSchema } from "../src/gen/cryo/v1/options_pb.ts";
import { RequestSchema, ResponseSchema } from "../src/gen/ttrpc/request_pb.ts";
import { connect, type Client } from "../src/ttrpc/index.ts";
import { removeNamespaceLeftovers } from "../src/containerd/cleanup.ts";
import { ensureTestImage, processAlive, startPrivateContainerd, testImage, uniqueId } from "../test/harness/index.ts";

const args = process.argv.slice(2);
const flag = (name: string, def: number): number => {
  const i = args.indexOf(name);
  return i >= 0 ? Number(args[i + 1]) : def;
};
const SEEDS = flag("--seeds", 10);
const START = flag("--start", 1);
const REQUESTS = flag("--requests", 300);
const CHECK_EVERY = flag("--check", 25);
const OUT = (() => {
  const i = args.indexOf("--out");
  return i >= 0 ? args[i + 1] : undefined;
})();
const RUNTIME = "io.containerd.cryo.v2";
const codeName = (c: Code) => lowerCodeName(c).toUpperCase();

// ---------------------------------------------------------------------------------------------------------------
// Seeded randomness.
function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
let rnd = mulberry32(1);
const int = (n: number) => Math.floor(rnd() * n);
const chance = (p: number) => rnd() < p;
const pick = <T>(xs: readonly T[]): T => xs[int(xs.length)]!;
const bytes = (n: number) => Uint8Array.from({ length: n }, () => int(256));
const enc = (s: string) => new TextEncoder().encode(s);

/** A pool value and whether it alone makes the request invalid (a success with it is a finding). */
interface V<T> {
  v: T;
  bad: boolean;
  tag: string;
}
const ok = <T>(v: T, tag: string): V<T> => ({ v, bad: false, tag });
const bad = <T>(v: T, tag: string): V<T> => ({ v, bad: true, tag });

// ---------------------------------------------------------------------------------------------------------------
// The run's world.
const MARK = `fzq${process.pid}`;
const ns = uniqueId("fzfuzz");
const work = mkdtempSync(`/tmp/fz-fuzz-`);
const hostDir = mkdtempSync(`/tmp/fz-host-`); // host files that paths name (outside any bundle); must stay untouched
const hostFile = join(hostDir, "hostfile");
writeFileSync(hostFile, "ORIGINAL");
const hostStamp = () => {
  const s = statSync(hostFile);
  return `${readFileSync(hostFile, "utf8")}|${s.mtimeMs}|${s.size}`;
};
const fifo = join(work, "a-fifo");
Bun.spawnSync(["mkfifo", fifo]);
const linkToHost = join(work, "link-to-hostfile");
symlinkSync(hostFile, linkToHost);
const linkToHostDir = join(work, "link-to-hostdir");
symlinkSync(hostDir, linkToHostDir);
const linkToDevZero = join(work, "link-to-dev-zero");
symlinkSync("/dev/zero", linkToDevZero);
const fifoDir = join(work, "fifo-dir");
mkdirSync(fifoDir);
Bun.spawnSync(["mkfifo", join(fifoDir, "descriptors.json")]);
const fifoBundle = join(work, "fifo-bundle");
mkdirSync(fifoBundle);
Bun.spawnSync(["mkfifo", join(fifoBundle, "config.json")]);
const ckptDir = join(work, "ckpt");
mkdirSync(ckptDir);

const stats = new Map<string, Map<string, number>>(); // method -> code -> count
const samples = new Map<string, string[]>(); // "method code" -> messages
interface Finding {
  seed: number;
  n: number;
  kind: string;
  method: string;
  detail: string;
  request: string;
}
const findings: Finding[] = [];
let total = 0;

function count(method: string, code: string, message: string): void {
  total++;
  const m = stats.get(method) ?? new Map<string, number>();
  m.set(code, (m.get(code) ?? 0) + 1);
  stats.set(method, m);
  const key = `${method} ${code}`;
  const s = samples.get(key) ?? [];
  const short = message.slice(0, 240);
  if (s.length < 6 && !s.includes(short)) s.push(short);
  samples.set(key, s);
}

const show = (x: unknown): string =>
  JSON.stringify(x, (_k, v) => (typeof v === "bigint" ? `${v}n` : v instanceof Uint8Array ? `<${v.length} bytes: ${Buffer.from(v.subarray(0, 48)).toString("hex")}>` : typeof v === "string" && v.length > 200 ? `${v.slice(0, 60)}…(${v.length} chars)` : v));

// ---------------------------------------------------------------------------------------------------------------
// Value pools.
const idPool = (): V<string>[] => [
  bad("", "empty"),
  bad("/", "slash"),
  bad("..", "dotdot"),
  bad(`../${MARK}-id`, "traverse"),
  bad(`a/b`, "a/b"),
  bad("a\0b", "nul"),
  bad("x".repeat(77), "77 chars"),
  bad("x".repeat(70_000), "70k chars"),
  bad("é-ü", "unicode"),
  bad("😀", "emoji"),
  bad("a..b", "a..b"),
  bad("-a", "-a"),
  bad(" a", "space"),
  bad("a\n", "newline"),
  ok("A".repeat(76), "76 chars unknown"),
  ok(`${MARK}-missing`, "unknown"),
];
const strPool = (): V<string>[] => [ok("", "empty"), ok("x".repeat(200_000), "200k"), ok("\u0000\u0001\uffff", "controls"), ok("😀".repeat(100), "emoji"), ok("a", "a")];
const nx = () => `/tmp/${MARK}-nx-${int(1000)}/sub`;
const pathPool = (): V<string>[] => [
  bad("", "empty"),
  bad(`tmp/${MARK}-rel`, "relative"),
  bad(`../../${MARK}-rel`, "traversing relative"),
  ok(`/tmp/../tmp/${MARK}-nx-dotdot/x`, "traversing absolute nx"),
  ok("/proc/self/fd/0", "/proc/self/fd/0"),
  ok("/proc/version", "/proc/version"),
  ok("/proc/1/root", "/proc/1/root"),
  ok("/sys/kernel/uevent_seqnum", "sysfs file"),
  ok("/sys/fs/cgroup", "cgroup root"),
  ok("/dev/null", "/dev/null"),
  ok("/dev/zero", "/dev/zero"),
  ok("/dev/full", "/dev/full"),
  ok(fifo, "fifo"),
  ok(linkToHost, "link to host file"),
  ok(linkToHostDir, "link to host dir"),
  ok(linkToDevZero, "link to /dev/zero"),
  ok(hostFile, "host file"),
  ok(hostDir, "host dir"),
  ok(fifoDir, "dir with fifo"),
  ok(nx(), "nonexistent"),
  ok(`/${"a".repeat(5000)}`, "5000-char component"),
  ok(`/tmp/${"d/".repeat(3000)}x`, "deep"),
  bad(`/tmp/${MARK}\0nul`, "nul"),
  ok("/", "root"),
];
const stdioPool = (): V<string>[] => [
  ...pathPool().filter((p) => p.tag !== "empty" && p.tag !== "relative" && p.tag !== "traversing relative"),
  ok("", "none"),
  ok(`file://${hostFile}`, "file:// host file"),
  ok(`file://${fifo}`, "file:// fifo"),
  ok("file:///dev/full", "file:// /dev/full"),
  ok(`file://relative/${MARK}`, "file:// relative"),
  ok("binary:///bin/true", "binary:// true"),
  ok(`binary://${MARK}-relative`, "binary:// relative"),
  ok("binary:///nonexistent-fz", "binary:// missing"),
  ok("fifo://x", "unknown scheme"),
  ok("file://", "file:// empty"),
  ok("%zz://", "bad uri"),
];
const u32Pool = [0, 1, 2, 9, 15, 19, 64, 65, 255, 1000, 65535, 65536, 2 ** 31 - 1, 2 ** 31, 2 ** 32 - 1];
const i32Pool = [0, 1, -1, 2, 99, -(2 ** 31), 2 ** 31 - 1];
const u64Pool = [0n, 1n, 2n ** 63n - 1n, 2n ** 64n - 1n, 4096n];
const i64Pool = [0n, -1n, 1n, -(2n ** 63n), 2n ** 63n - 1n];

// ---------------------------------------------------------------------------------------------------------------
// Any fields.
const anyOf = (typeUrl: string, value: Uint8Array) => create(AnySchema, { typeUrl, value });

/** A message of `schema` with every field drawn from the pools (strings by name: paths, ids). */
function randomMessage(schema: DescMessage, depth = 0): { msg: Record<string, unknown>; bad: string[] } {
  const out: Record<string, unknown> = {};
  const flags: string[] = [];
  for (const f of schema.fields) {
    if (!chance(0.45)) continue;
    const one = () => {
      const r = randomField(f, depth);
      if (r.bad) flags.push(`${f.name}:${r.tag}`);
      return r.v;
    };
    if (f.fieldKind === "list") out[f.localName] = Array.from({ length: int(4) }, one);
    else if (f.fieldKind === "map") out[f.localName] = Object.fromEntries(Array.from({ length: int(3) }, () => [pick(["", "a", "x".repeat(300), "😀"]), f.mapKind === "scalar" ? randomScalar(f.scalar, f.name).v : f.mapKind === "enum" ? int(5) : undefined]).filter(([, v]) => v !== undefined));
    else out[f.localName] = one();
  }
  return { msg: out, bad: flags };
}
function randomScalar(scalar: number, name: string): V<unknown> {
  switch (scalar) {
    case 9: {
      // string
      if (/path|dir|bundle|root|checkpoint|parent|image|work|source|target|config|binary|socket|file/i.test(name)) return pick(pathPool());
      if (/^std/.test(name)) return pick(stdioPool());
      if (/id$/.test(name)) return pick(idPool());
      return pick(strPool());
    }
    case 8:
      return ok(chance(0.5), "bool");
    case 13:
    case 7:
      return ok(pick(u32Pool), "u32");
    case 5:
    case 15:
    case 17:
      return ok(pick(i32Pool), "i32");
    case 4:
    case 6:
      return ok(pick(u64Pool), "u64");
    case 3:
    case 16:
    case 18:
      return ok(pick(i64Pool), "i64");
    case 12:
      return ok(bytes(int(40)), "bytes");
    case 1:
    case 2:
      return ok(pick([0, -1, 1e308, NaN, Infinity]), "float");
    default:
      return ok(undefined, "?");
  }
}
function randomField(f: DescField, depth: number): V<unknown> {
  if (f.fieldKind === "scalar" || (f.fieldKind === "list" && f.listKind === "scalar")) return randomScalar(f.scalar!, f.name);
  if (f.fieldKind === "enum" || (f.fieldKind === "list" && f.listKind === "enum")) return ok(pick([0, 1, 2, 3, 7, 99, -1, 2 ** 31 - 1]), "enum");
  const m = f.fieldKind === "message" ? f.message : f.fieldKind === "list" ? f.message! : undefined;
  if (!m) return ok(undefined, "?");
  if (m.typeName === "google.protobuf.Any") return ok(randomAny(pick(["options", "resources", "spec", "stats"])).any, "any");
  if (m.typeName === "google.protobuf.Timestamp") return ok({ seconds: pick(i64Pool), nanos: pick(i32Pool) }, "ts");
  if (depth > 3) return ok(undefined, "depth");
  const r = randomMessage(m, depth + 1);
  return { v: create(m, r.msg as never), bad: r.bad.length > 0, tag: r.bad.join(",") };
}

/** Hostile OCI JSON for Update's resources and Exec's spec. */
function hostileJson(kind: "resources" | "spec"): string {
  const deep = (n: number): unknown => (n === 0 ? 1 : { a: deep(n - 1) });
  const num = () => pick<unknown>([-1, -(2 ** 63), 2 ** 64, 1.5, "100", null, true, [], {}, 1e400, 0, 2 ** 53 + 1]);
  if (kind === "resources") {
    return pick<() => string>([
      () => JSON.stringify({ memory: { limit: num(), swap: num(), reservation: num(), kernel: num() } }),
      () => JSON.stringify({ cpu: { shares: num(), quota: num(), period: num(), cpus: pick(["999-1000", "a", "", "0-", "0,0,0"]), mems: pick(["9", "x"]), realtimeRuntime: num() } }),
      () => JSON.stringify({ pids: { limit: num() } }),
      () => JSON.stringify({ blockIO: { weight: num(), throttleReadBpsDevice: [{ major: num(), minor: num(), rate: num() }] } }),
      () => JSON.stringify({ devices: [{ allow: num(), type: pick(["z", "a", ""]), major: num(), access: pick(["rwmx", "", "r"]) }] }),
      () => JSON.stringify({ hugepageLimits: [{ pageSize: pick(["2MB", "../x", "", "1TB"]), limit: num() }] }),
      () => JSON.stringify({ unified: { [pick(["../../x", "memory.max", "cgroup.procs", "a/b", ""])]: pick(["1", "max", "\n", "0"]) } }),
      () => JSON.stringify(deep(pick([10, 1000, 5000]))),
      () => `{"memory":{"limit":${"1".repeat(400)}}}`,
      () => pick(["null", "[]", "1", '"s"', "{", "{\"memory\":", "\u0000"]),
      () => JSON.stringify({ memory: { limit: 1 << 30 }, [`${MARK}x`.repeat(20000)]: 1 }),
    ])();
  }
  return pick<() => string>([
    () => JSON.stringify({ args: pick([[], [""], ["/nonexistent"], "sh", null, ["true"]]), cwd: "/", env: ["PATH=/bin"], user: { uid: 0, gid: 0 } }),
    () => JSON.stringify({ args: ["true"], cwd: pick(["", "relative", "/nonexistent", "/proc/1/root"]), user: { uid: num(), gid: num(), additionalGids: [num()] } }),
    () => JSON.stringify({ args: ["true"], cwd: "/", terminal: true, consoleSize: { height: num(), width: num() } }),
    () => JSON.stringify({ args: ["true"], cwd: "/", rlimits: [{ type: pick(["RLIMIT_NOFILE", "RLIMIT_BOGUS", ""]), hard: num(), soft: num() }] }),
    () => JSON.stringify({ args: ["true"], cwd: "/", capabilities: { bounding: ["CAP_BOGUS", 7] }, apparmorProfile: `${MARK}-missing`, selinuxLabel: "x:y:z", noNewPrivileges: num(), oomScoreAdj: num() }),
    () => JSON.stringify({ args: ["true"], cwd: "/", env: pick([null, "PATH", [1, 2], ["\u0000=x"]]), user: pick([null, "root", { uid: "0" }]) }),
    () => JSON.stringify(deep(pick([10, 1000, 5000]))),
    () => pick(["null", "[]", "1", '"s"', "{", "{\"args\":", "\u0000", ""]),
  ])();
}

/** An Any for one of the request's Any fields, or something wearing its name. */
function randomAny(kind: string): { any: ReturnType<typeof anyOf>; bad: boolean; tag: string } {
  const garbage = () => bytes(int(64) + 1);
  const wrongUrl = () => pick(["", "x", "type.googleapis.com/", "/", "containerd.runc.v1.Nope", "a".repeat(10000), `types.containerd.io/${"../".repeat(10)}x`]);
  const r = int(10);
  if (r === 0) return { any: anyOf(wrongUrl(), chance(0.5) ? garbage() : new Uint8Array()), bad: true, tag: "wrong type url" };
  if (kind === "options" || kind === "stats") {
    const schema = pick([RuncOptionsSchema, RuntimeOptionsSchema, CriOptionsSchema, LinuxCreateOptionsSchema, RuncCheckpointOptionsSchema, CryoCheckpointOptionsSchema]);
    const url = chance(0.5) ? schema.typeName : `type.googleapis.com/${schema.typeName}`;
    if (r === 1) return { any: anyOf(url, garbage()), bad: false, tag: `${schema.typeName} garbage` };
    const m = randomMessage(schema);
    const value = toBinary(schema, create(schema, m.msg as never));
    if (r === 2 && value.length > 1) return { any: anyOf(url, value.subarray(0, int(value.length - 1) + 1)), bad: false, tag: `${schema.typeName} truncated` };
    return { any: anyOf(url, value), bad: m.bad.length > 0, tag: `${schema.typeName} ${m.bad.join(",")}` };
  }
  const url = kind === "resources" ? "types.containerd.io/opencontainers/runtime-spec/1/LinuxResources" : "types.containerd.io/opencontainers/runtime-spec/1/Process";
  if (r === 1) return { any: anyOf(url, garbage()), bad: true, tag: "garbage json" };
  return { any: anyOf(url, enc(hostileJson(kind === "resources" ? "resources" : "spec"))), bad: false, tag: `hostile ${kind} json` };
}

// ---------------------------------------------------------------------------------------------------------------
// Daemon, witness, target.
const pc = await startPrivateContainerd({ namespace: ns, env: { CRYO_SHIM_GROUPING: "per-namespace" } });
const witness = uniqueId("fzwit");
let socket = "";
let shimPid = 0;
let witnessPid = 0;
let client: Client | undefined;

/** A Task v2 call's answer as the fuzz counts it: "OK", or the status code's name and the message. */
async function taskOutcome(method: string, req: unknown, timeoutMs: number): Promise<{ code: string; message: string }> {
  try {
    await client!.call(TaskV2, method as "state", req as never, { namespace: ns, timeoutMs });
    return { code: "OK", message: "" };
  } catch (e) {
    const err = CryoError.from(e);
    return { code: codeName(err.code), message: err.message };
  }
}
let ctl: Client | undefined;
let baseSpec: Record<string, any>;
const created = new Set<string>(); // ids of containers the fuzzer made over the socket (target and Creates that succeeded)
let target = "";
let targetN = 0;
let bundleN = 0;

const witnessBundle = () => join(pc.state, "io.containerd.runtime.v2.task", ns, witness);
const witnessFiles = ["config.json", "init.pid", "cryo-runtime.json", "address"];
const witnessSnapshot = () => JSON.stringify({ files: readdirSync(witnessBundle()).sort(), contents: witnessFiles.map((f) => { try { return readFileSync(join(witnessBundle(), f), "utf8"); } catch { return null; } }) });

function makeBundle(id: string): string {
  const b = join(work, `b-${id}`);
  mkdirSync(b, { recursive: true });
  const spec = structuredClone(baseSpec);
  spec.linux.cgroupsPath = `/${ns}/${id}`;
  writeFileSync(join(b, "config.json"), JSON.stringify(spec));
  return b;
}
const ctlCall = (method: string, req: Record<string, unknown>, timeoutMs = 30_000) => ctl!.call(TaskV2, method as "state", req as never, { namespace: ns, timeoutMs }) as Promise<any>;

async function removeCreated(id: string): Promise<void> {
  // A paused container cannot be deleted: two runs left their target paused, its runc state and cgroups behind.
  await ctlCall("resume", { id }).catch(() => {});
  await ctlCall("kill", { id, signal: 9 }).catch(() => {});
  await ctlCall("wait", { id }, 10_000).catch(() => {});
  await ctlCall("delete", { id }, 60_000).catch(() => {});
  const st = await ctlCall("state", { id }).catch((e: unknown) => CryoError.from(e));
  if (st instanceof CryoError && st.code === Code.NOT_FOUND) created.delete(id);
}

async function ensureTarget(): Promise<void> {
  if (target) {
    const st = await ctlCall("state", { id: target }).catch(() => undefined);
    if (st?.status === Status.RUNNING) return;
    // Paused: resumed; anything else: removed and replaced.
    if (st?.status === Status.PAUSED && (await ctlCall("resume", { id: target }).then(() => true, () => false))) return;
    await removeCreated(target);
  }
  target = `fztarget${++targetN}`;
  const b = makeBundle(target);
  await ctlCall("create", { id: target, bundle: b, rootfs: [], stdin: "", stdout: "", stderr: "", terminal: false });
  created.add(target);
  await ctlCall("start", { id: target });
}

// ---------------------------------------------------------------------------------------------------------------
// Watch list.
const scanRoots: [string, number][] = [["/tmp", 1], ["/run", 4], ["/", 1], ["/etc", 1], ["/dev/shm", 1], ["/var/run", 1], ["/root", 1]];
function markedNames(): string[] {
  const found: string[] = [];
  const walk = (d: string, depth: number) => {
    let names: string[];
    try {
      names = readdirSync(d);
    } catch {
      return;
    }
    for (const n of names) {
      const p = d === "/" ? `/${n}` : `${d}/${n}`;
      if (p === work || p === hostDir || p.startsWith("/proc") || p.startsWith("/sys")) continue;
      if (n.includes(MARK)) found.push(p);
      if (depth > 1) {
        try {
          if (lstatSync(p).isDirectory()) walk(p, depth - 1);
        } catch {}
      }
    }
  };
  for (const [r, d] of scanRoots) walk(r, d);
  return [...new Set(found)].sort();
}
function cgroupChildren(): string[] {
  const out: string[] = [];
  for (const h of readdirSync("/sys/fs/cgroup")) {
    const d = join("/sys/fs/cgroup", h, ns);
    try {
      for (const c of readdirSync(d, { withFileTypes: true })) if (c.isDirectory()) out.push(`${h}/${c.name}`);
    } catch {}
    try {
      for (const c of readdirSync(join("/sys/fs/cgroup", h))) if (c.includes(MARK)) out.push(`${h}/${c}`);
    } catch {}
  }
  return out.sort();
}
const markedMounts = () => readFileSync("/proc/self/mountinfo", "utf8").split("\n").filter((l) => l.includes(MARK) || l.includes(work) || l.includes(hostDir));
const fds = () => readdirSync(`/proc/${shimPid}/fd`).length;
const rssKiB = () => Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${shimPid}/status`, "utf8"))?.[1] ?? NaN);
const samplesFdRss: { n: number; fds: number; rssKiB: number }[] = [];

let baseline = { witness: "", host: "", marked: [] as string[], cgroupRootFiles: [] as string[] };
function watchCheck(seed: number, n: number, lastReq: string): void {
  const report = (kind: string, detail: string) => findings.push({ seed, n, kind, method: "(watch)", detail, request: lastReq });
  const w = witnessSnapshot();
  if (w !== baseline.witness) {
    report("witness bundle changed", w);
    baseline.witness = w;
  }
  const h = hostStamp();
  if (h !== baseline.host) {
    report("host file changed", h);
    baseline.host = h;
  }
  const m = markedNames();
  const fresh = m.filter((x) => !baseline.marked.includes(x));
  if (fresh.length > 0) report("marked names appeared outside the fuzzer's dirs", fresh.join(" "));
  baseline.marked = m;
  const cg = cgroupChildren().filter((c) => ![witness, ...created].some((id) => c.endsWith(`/${id}`)));
  if (cg.length > 0) report("cgroups of no container", cg.join(" "));
  // Files in the cgroup root (a tmpfs on a v1 host, which holds only the hierarchies): a Checkpoint once dumped there.
  try {
    const files = readdirSync("/sys/fs/cgroup", { withFileTypes: true }).filter((e) => !e.isDirectory() && !e.isSymbolicLink()).map((e) => e.name);
    const freshFiles = files.filter((f) => !baseline.cgroupRootFiles.includes(f));
    if (freshFiles.length > 0) report("files in /sys/fs/cgroup", freshFiles.join(" "));
    baseline.cgroupRootFiles = files;
  } catch {}
  const mounts = markedMounts();
  if (mounts.length > 0) report("mounts left", mounts.join(" | "));
}

// ---------------------------------------------------------------------------------------------------------------
// Requests.
const methods = Object.values(TaskV2.method).map((m) => m.localName);
const readOnly = new Set(["state", "pids", "stats", "connect"]);
const expectedCodes = new Set<string>(["INVALID_ARGUMENT", "NOT_FOUND", "FAILED_PRECONDITION", "ALREADY_EXISTS", "UNIMPLEMENTED", "OUT_OF_RANGE", "RESOURCE_EXHAUSTED", "PERMISSION_DENIED"]);

interface Built {
  method: string;
  req: Record<string, unknown>;
  namespace: string | undefined;
  bad: string[];
  /** A Wait of a running process: its DEADLINE_EXCEEDED is the expected answer. */
  mayBlock: boolean;
  timeoutMs: number;
}

function buildRequest(): Built {
  const method = pick(methods);
  const m = (TaskV2.method as Record<string, { input: DescMessage; localName: string }>)[method] ?? Object.values(TaskV2.method).find((x) => x.localName === method)!;
  const schema = m.input;
  const badFields: string[] = [];
  const req: Record<string, unknown> = {};
  // Ids: mostly the target's, sometimes a hostile one, the witness for read-only methods.
  const idChoice = int(20);
  let id: V<string>;
  if (idChoice < 13) id = method === "create" ? ok(`fzc${++bundleN}`, "fresh id") : ok(target, "target");
  else if (idChoice < 15 && readOnly.has(method)) id = ok(witness, "witness");
  else id = pick(idPool());
  req.id = id.v;
  if (id.bad) badFields.push(`id:${id.tag}`);
  // Fields of the schema, typed by the descriptor.
  for (const f of schema.fields) {
    if (f.localName === "id") continue;
    if (f.localName === "execId") {
      const e = chance(0.7) ? pick([ok("", "none"), ok(`fzexec${int(4)}`, "fzexec")]) : pick(idPool());
      req.execId = e.v;
      if (e.bad && (e.v !== "" || method === "exec")) badFields.push(`execId:${e.tag}`);
      continue;
    }
    if (f.fieldKind === "message" && f.message.typeName === "google.protobuf.Any") {
      if (chance(0.85)) {
        const a = randomAny(f.localName);
        req[f.localName] = a.any;
        if (a.bad) badFields.push(`${f.localName}:${a.tag}`);
      }
      continue;
    }
    if (method === "kill" && f.localName === "signal") {
      req.signal = pick(u32Pool);
      if ((req.signal as number) > 64) badFields.push(`signal ${req.signal}`);
      continue;
    }
    if (method === "create" && f.localName === "bundle") {
      const b = chance(0.5) ? ok(makeBundle(`fzc${++bundleN}`), "fresh bundle") : chance(0.3) ? ok(fifoBundle, "fifo config.json") : pick(pathPool());
      req.bundle = b.v;
      if (b.bad) badFields.push(`bundle:${b.tag}`);
      continue;
    }
    if (method === "create" && f.localName === "rootfs") {
      if (chance(0.4)) {
        req.rootfs = Array.from({ length: 1 + int(3) }, () => ({
          type: pick(["bind", "proc", "sysfs", "tmpfs", "overlay", "none", "", "no-such-fs", "../x", "x".repeat(300)]),
          source: pick(pathPool()).v,
          target: pick(["", "..", "../../etc", "/etc", `/tmp/${MARK}-target`, "a\0b"]),
          options: Array.from({ length: int(4) }, () => pick(["rbind", "ro", "rw", "remount", "bind", "lowerdir=/", `upperdir=/tmp/${MARK}-up`, "workdir=..", "size=1k", "nosuid", "x=y", "", "loop", "private", "rshared", "mode=0777", "\0"])),
        }));
      }
      continue;
    }
    if (method === "create" && f.localName === "checkpoint") {
      if (chance(0.3)) {
        const c = pick(pathPool());
        req.checkpoint = c.v;
        if (c.bad && c.v !== "") badFields.push(`checkpoint:${c.tag}`);
      }
      continue;
    }
    if (method === "checkpoint" && f.localName === "path") {
      const p = chance(0.15) ? ok(join(ckptDir, `c${int(1e9)}`), "fresh dir") : pick(pathPool());
      req.path = p.v;
      if (p.bad) badFields.push(`path:${p.tag}`);
      continue;
    }
    if (!chance(0.7)) continue;
    const one = () => randomField(f, 0);
    if (f.fieldKind === "list") req[f.localName] = Array.from({ length: int(4) }, () => one().v);
    else if (f.fieldKind === "map") req[f.localName] = Object.fromEntries(Array.from({ length: int(3) }, () => [pick(["", "a", "x".repeat(300)]), pick(strPool()).v]));
    else {
      const r = one();
      req[f.localName] = r.v;
    }
  }
  // A destructive method is never sent to the witness (it only gets read-only ones and invalid Kills).
  if (req.id === witness && !readOnly.has(method)) req.id = target;
  if (method === "kill" && chance(0.1) && (req.signal as number) > 64) req.id = witness;
  // Namespace: the test's, mostly.
  const nsChoice = int(12);
  let namespace: string | undefined = ns;
  if (nsChoice === 0) namespace = undefined;
  else if (nsChoice === 1) namespace = "fzother";
  else if (nsChoice === 2) {
    const n = pick(idPool());
    namespace = n.v;
    if (n.bad) badFields.push(`namespace:${n.tag}`);
  }
  // Shutdown{now} with the daemon serving containers is ignored (containerd's runc shim does the same): fine.
  const mayBlock = method === "wait" || method === "checkpoint" || method === "create" || method === "start" || method === "delete" || method === "pause";
  return { method, req, namespace, bad: badFields, mayBlock, timeoutMs: method === "wait" ? 1_500 : 60_000 };
}

/** Mutates an encoded message on the wire. */
function wireMutate(b: Uint8Array): { bytes: Uint8Array; tag: string } {
  const r = int(7);
  switch (r) {
    case 0:
      return { bytes: b.subarray(0, int(b.length + 1)), tag: "truncated" };
    case 1: {
      const c = b.slice();
      for (let i = 0; i < 1 + int(4) && c.length > 0; i++) c[int(c.length)] = int(256);
      return { bytes: c, tag: "flipped" };
    }
    case 2: // unknown field 99 (varint), 100 (length-delimited)
      return { bytes: Uint8Array.from([...b, 0x98, 0x06, 0x2a, 0xa2, 0x06, 0x03, 0x61, 0x62, 0x63]), tag: "unknown fields" };
    case 3:
      return { bytes: Uint8Array.from([...b, ...b]), tag: "duplicated" };
    case 4: // field 1 (id) as a varint, field 2 as fixed64, field 1 as a group start
      return { bytes: Uint8Array.from(pick([[0x08, 0x01, ...b], [...b, 0x11, 1, 2, 3, 4, 5, 6, 7, 8], [0x0b, ...b], [0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f]])), tag: "wrong wire type" };
    case 5:
      return { bytes: bytes(int(200)), tag: "random" };
    default: // a length that runs past the end
      return { bytes: Uint8Array.from([0x0a, 0x7f, ...b.subarray(0, 10)]), tag: "overlong length" };
  }
}

/** Raw frames on a fresh connection; returns the codes of the responses that came back within 1.5 s. */
async function rawFrames(kind: number): Promise<{ tag: string; codes: string[]; closed: boolean }> {
  const header = (len: number, stream: number, type: number, flags = 0) => {
    const h = new Uint8Array(10);
    new DataView(h.buffer).setUint32(0, len >>> 0);
    new DataView(h.buffer).setUint32(4, stream >>> 0);
    h[8] = type;
    h[9] = flags;
    return h;
  };
  const reqBytes = (service: string, method: string, payload: Uint8Array, meta = true) =>
    toBinary(RequestSchema, create(RequestSchema, { service, method, payload, timeoutNano: 5_000_000_000n, metadata: meta ? [{ key: "containerd-namespace-ttrpc", value: ns }] : [] }));
  const state = toBinary(TaskV2.method.state.input, create(TaskV2.method.state.input, { id: target }));
  const frame = (stream: number, type: number, body: Uint8Array, flags = 0) => Uint8Array.from([...header(body.length, stream, type, flags), ...body]);
  let tag = "";
  let chunks: Uint8Array[] = [];
  switch (kind) {
    case 0:
      tag = "random bytes";
      chunks = [bytes(1 + int(300))];
      break;
    case 1:
      tag = "huge declared length, then a valid request";
      chunks = [header(0xffffffff, 1, 1), bytes(64), frame(3, 1, reqBytes(TaskV2.typeName, "State", state))];
      break;
    case 2:
      tag = "4 MiB + 1 declared, partial data, close";
      chunks = [header((4 << 20) + 1, 1, 1), bytes(1000)];
      break;
    case 3:
      tag = "even stream id";
      chunks = [frame(2, 1, reqBytes(TaskV2.typeName, "State", state))];
      break;
    case 4:
      tag = "stream 0, then a lower stream id";
      chunks = [frame(0, 1, reqBytes(TaskV2.typeName, "State", state)), frame(7, 1, reqBytes(TaskV2.typeName, "State", state)), frame(5, 1, reqBytes(TaskV2.typeName, "State", state))];
      break;
    case 5:
      tag = "data frame";
      chunks = [frame(1, 3, bytes(20))];
      break;
    case 6:
      tag = "unknown frame type";
      chunks = [frame(1, pick([0, 4, 9, 255]), bytes(20)), frame(3, 1, reqBytes(TaskV2.typeName, "State", state))];
      break;
    case 7:
      tag = "unknown service";
      chunks = [frame(1, 1, reqBytes(pick(["", "containerd.task.v4.Task", "x".repeat(5000), "containerd.task.v2.Task\0"]), "State", state))];
      break;
    case 8:
      tag = "unknown method";
      chunks = [frame(1, 1, reqBytes(pick([TaskV2.typeName, TaskV3.typeName]), pick(["", "state", "Nope", "State\0", "__proto__", "constructor", "toString", "hasOwnProperty"]), state))];
      break;
    case 9:
      tag = "request not a ttrpc.Request";
      chunks = [frame(1, 1, bytes(1 + int(100)))];
      break;
    case 10:
      tag = "response frame from the client";
      chunks = [frame(1, 2, toBinary(ResponseSchema, create(ResponseSchema, {}))), frame(3, 1, reqBytes(TaskV2.typeName, "State", state))];
      break;
    case 11:
      tag = "frame split in 1-byte chunks";
      chunks = [...frame(1, 1, reqBytes(TaskV2.typeName, "State", state))].map((x) => Uint8Array.of(x));
      break;
    case 12:
      tag = "no namespace metadata, hostile timeout";
      chunks = [frame(1, 1, toBinary(RequestSchema, create(RequestSchema, { service: TaskV2.typeName, method: "State", payload: state, timeoutNano: pick([-1n, 1n, 2n ** 63n - 1n]), metadata: [{ key: "", value: "" }, { key: "containerd-namespace-ttrpc", value: "a/../b" }] })))];
      break;
    default:
      tag = "header then close";
      chunks = [header(100, 1, 1)];
  }
  return await new Promise((resolve) => {
    const sock = createConnection(socket);
    const codes: string[] = [];
    let buf = Buffer.alloc(0);
    let closed = false;
    const finish = () => {
      sock.destroy();
      resolve({ tag, codes, closed });
    };
    sock.on("connect", async () => {
      for (const c of chunks) {
        sock.write(c);
        if (chunks.length > 3) await Bun.sleep(1);
      }
      setTimeout(finish, 1_500);
    });
    sock.on("data", (d) => {
      buf = Buffer.concat([buf, d as Buffer]);
      while (buf.length >= 10) {
        const len = buf.readUInt32BE(0);
        if (buf.length < 10 + len) break;
        const body = buf.subarray(10, 10 + len);
        buf = buf.subarray(10 + len);
        try {
          const r = fromBinary(ResponseSchema, body);
          codes.push(r.status ? codeName(r.status.code as Code) ?? String(r.status.code) : "OK");
          if (r.status && r.status.code !== 0) count(`raw:${tag}`, codeName(r.status.code as Code) ?? String(r.status.code), r.status.message);
          else count(`raw:${tag}`, "OK", "");
        } catch {
          codes.push("undecodable");
        }
      }
    });
    sock.on("close", () => {
      closed = true;
    });
    sock.on("error", () => {
      closed = true;
    });
  });
}

async function stillServes(seed: number, n: number, lastReq: string): Promise<boolean> {
  if (!processAlive(shimPid)) {
    findings.push({ seed, n, kind: "daemon died", method: "", detail: "", request: lastReq });
    return false;
  }
  const t0 = performance.now();
  try {
    const st = await ctlCall("state", { id: witness }, 3_000);
    if (st.status !== Status.RUNNING || st.pid !== witnessPid) findings.push({ seed, n, kind: "witness changed", method: "state", detail: show({ status: st.status, pid: st.pid }), request: lastReq });
  } catch (e) {
    findings.push({ seed, n, kind: "witness State failed", method: "state", detail: `${CryoError.from(e).message} after ${Math.round(performance.now() - t0)} ms`, request: lastReq });
    return !ctl!.closed;
  }
  return true;
}

async function runSeed(seed: number): Promise<boolean> {
  rnd = mulberry32(seed);
  for (let n = 0; n < REQUESTS; n++) {
    if (n % 20 === 0) await ensureTarget();
    const r = rnd();
    let lastReq = "";
    if (r >= 0.16 && r < 0.22) {
      // A Create cycle: a fresh, valid bundle and id with one hostile field, then Start, Kill, Wait, Delete if it was made.
      const id = `fzcc${seed}n${n}`;
      const bundle = makeBundle(id);
      const base: Record<string, unknown> = { id, bundle, rootfs: [], stdin: "", stdout: "", stderr: "", terminal: false, checkpoint: "", parentCheckpoint: "" };
      const which = pick(["rootfs", "stdin", "stdout", "stderr", "options", "checkpoint", "parentCheckpoint"]);
      if (which === "rootfs") {
        base.rootfs = Array.from({ length: 1 + int(2) }, () => ({
          type: pick(["bind", "proc", "sysfs", "tmpfs", "none", "no-such-fs"]),
          source: pick([...pathPool().map((p) => p.v), join(work, "src"), "tmpfs", "proc"]),
          target: "",
          options: Array.from({ length: int(3) }, () => pick(["rbind", "ro", "rw", "bind", "nosuid", "size=1k", "remount", "private", "x=y"])),
        }));
      } else if (which === "options") base.options = randomAny("options").any;
      else if (which === "checkpoint" || which === "parentCheckpoint") base[which] = pick(pathPool()).v;
      else base[which] = pick(stdioPool()).v;
      lastReq = `create cycle ${id} ${which}=${show(base[which])}`;
      let made = false;
      for (const [method, req] of [
        ["create", base],
        ["start", { id }],
        ["state", { id }],
        ["kill", { id, signal: 9 }],
        ["wait", { id }],
        ["delete", { id }],
      ] as const) {
        const outcome = await taskOutcome(method, req, method === "wait" ? 10_000 : 60_000);
        count(`create cycle: ${method}`, outcome.code, outcome.message);
        if (method === "create") {
          if (outcome.code !== "OK") {
            if (!expectedCodes.has(outcome.code)) findings.push({ seed, n, kind: `code ${outcome.code}`, method: "create cycle: create", detail: outcome.message.slice(0, 400), request: lastReq });
            break;
          }
          made = true;
          created.add(id);
        } else if (outcome.code !== "OK" && !expectedCodes.has(outcome.code)) {
          findings.push({ seed, n, kind: `code ${outcome.code}`, method: `create cycle: ${method}`, detail: outcome.message.slice(0, 400), request: lastReq });
        }
      }
      if (made) await removeCreated(id);
      if (readFileSync("/proc/self/mountinfo", "utf8").includes(bundle)) findings.push({ seed, n, kind: "mount left on a bundle", method: "create cycle", detail: bundle, request: lastReq });
    } else if (r >= 0.08 && r < 0.16) {
      // An exec cycle on the target with a hostile process spec and stdio: Exec, Start, Kill, Delete, each answer counted.
      const execId = `fzx${seed}n${n}`;
      const a = randomAny("spec");
      const terminal = chance(0.2);
      const stdio = () => (chance(0.6) ? "" : pick(stdioPool()).v);
      lastReq = `exec cycle ${execId} spec ${a.tag} ${show(a.any.value.length < 300 ? new TextDecoder().decode(a.any.value) : `${a.any.value.length} bytes`)} terminal ${terminal}`;
      for (const [method, req] of [
        ["exec", { id: target, execId, spec: a.any, terminal, stdin: stdio(), stdout: stdio(), stderr: stdio() }],
        ["start", { id: target, execId }],
        ["resizePty", { id: target, execId, width: pick(u32Pool), height: pick(u32Pool) }],
        ["closeIO", { id: target, execId, stdin: true }],
        ["kill", { id: target, execId, signal: 9 }],
        ["wait", { id: target, execId }],
        ["delete", { id: target, execId }],
      ] as const) {
        const outcome = await taskOutcome(method, req, method === "wait" ? 5_000 : 60_000);
        count(`exec cycle: ${method}`, outcome.code, outcome.message);
        // runc's own verdict on the process it could not start (a missing executable), passed on as runc's shim passes
        // it (UNKNOWN, "OCI runtime exec failed: ..."): moby and CRI read the message, not the code.
        const runcExecFailed = method === "start" && outcome.code === "UNKNOWN" && outcome.message.startsWith("OCI runtime exec failed: exec failed: unable to start container process: exec: ");
        if (outcome.code !== "OK" && !expectedCodes.has(outcome.code) && !(outcome.code === "DEADLINE_EXCEEDED" && method === "wait") && !runcExecFailed) {
          findings.push({ seed, n, kind: `code ${outcome.code}`, method: `exec cycle: ${method}`, detail: outcome.message.slice(0, 400), request: lastReq });
        }
        if (method === "exec" && outcome.code !== "OK") break;
      }
    } else if (r < 0.08) {
      const raw = await rawFrames(int(14));
      lastReq = `raw ${raw.tag}`;
      if (raw.codes.some((c) => !expectedCodes.has(c) && c !== "OK")) findings.push({ seed, n, kind: "raw: unexpected code", method: "raw", detail: raw.codes.join(","), request: lastReq });
      if (raw.tag.includes("then a valid request") && raw.codes.length === 0) count(`raw:${raw.tag}`, "(no answer)", "");
      if (raw.codes.length === 0 && !raw.tag.includes("close") && !raw.tag.includes("unknown frame")) count(`raw:${raw.tag}`, "(no answer)", "");
    } else {
      const b = buildRequest();
      const v3 = chance(0.3);
      const service = v3 ? TaskV3 : TaskV2;
      const m = Object.values(service.method).find((x) => x.localName === b.method)!;
      let outcome: { code: string; message: string };
      let wire = "";
      try {
        if (chance(0.15)) {
          const w = wireMutate(toBinary(m.input, create(m.input, b.req as never)));
          wire = w.tag;
          await client!.callRaw(service.typeName, m.name, w.bytes, { namespace: b.namespace, timeoutMs: b.timeoutMs } as never);
        } else {
          await client!.call(service, b.method as "state", b.req as never, { ...(b.namespace === undefined ? {} : { namespace: b.namespace }), timeoutMs: b.timeoutMs });
        }
        outcome = { code: "OK", message: "" };
      } catch (e) {
        const err = CryoError.from(e);
        outcome = { code: codeName(err.code) ?? String(err.code), message: err.message };
      }
      const label = `${v3 ? "v3" : "v2"} ${b.method}${wire ? ` (wire: ${wire})` : ""}`;
      lastReq = `${label} ns=${show(b.namespace)} ${show(b.req)}`;
      count(b.method + (wire ? " (wire)" : ""), outcome.code, outcome.message);
      if (outcome.code === "OK") {
        if (b.method === "create") created.add(b.req.id as string);
        // A checkpoint that succeeded wrote its images where it was asked to: names it made for that are its output.
        if (b.method === "checkpoint") baseline.marked.push(...markedNames().filter((x) => !baseline.marked.includes(x) && (resolve(b.req.path as string) === x || resolve(b.req.path as string).startsWith(`${x}/`))));
        if (b.bad.length > 0 && !wire) findings.push({ seed, n, kind: "success on invalid input", method: label, detail: b.bad.join(" "), request: lastReq });
      } else if (outcome.code === "DEADLINE_EXCEEDED" && b.mayBlock) {
        // A Wait of a running process, or a long operation on the target.
      } else if (!expectedCodes.has(outcome.code)) {
        findings.push({ seed, n, kind: `code ${outcome.code}`, method: label, detail: outcome.message.slice(0, 400), request: lastReq });
      } else if (outcome.message.trim() === "" ) {
        findings.push({ seed, n, kind: "empty message", method: label, detail: outcome.code, request: lastReq });
      }
      if (b.method === "create" && outcome.code === "OK") await removeCreated(b.req.id as string);
      if (client!.closed) {
        findings.push({ seed, n, kind: "client connection closed", method: label, detail: "", request: lastReq });
        client = await connect(socket);
      }
    }
    if (!(await stillServes(seed, n, lastReq))) return false;
    const marked = markedNames();
    const fresh = marked.filter((x) => !baseline.marked.includes(x));
    if (fresh.length > 0) findings.push({ seed, n, kind: "marked names appeared outside the fuzzer's dirs", method: "(watch)", detail: fresh.join(" "), request: lastReq });
    baseline.marked = marked;
    if ((n + 1) % CHECK_EVERY === 0) {
      watchCheck(seed, n, lastReq);
      samplesFdRss.push({ n: total, fds: fds(), rssKiB: rssKiB() });
    }
  }
  return true;
}

// ---------------------------------------------------------------------------------------------------------------
let exitCode = 0;
const started = Date.now();
try {
  await ensureTestImage(pc);
  await pc.ctrOk(["run", "-d", "--runtime", RUNTIME, testImage, witness, "sleep", "1000000"]);
  socket = readFileSync(join(witnessBundle(), "address"), "utf8").trim().replace(/^unix:\/\//, "");
  ctl = await connect(socket);
  client = await connect(socket);
  shimPid = Number((await ctlCall("connect", { id: witness })).shimPid);
  witnessPid = (await ctlCall("state", { id: witness })).pid;
  baseSpec = JSON.parse(readFileSync(join(witnessBundle(), "config.json"), "utf8"));
  baseSpec.root = { path: join(witnessBundle(), "rootfs"), readonly: true };
  baseSpec.process.args = ["sleep", "1000000"];
  baseSpec.process.terminal = false;
  await ensureTarget();
  baseline = { witness: witnessSnapshot(), host: hostStamp(), marked: markedNames(), cgroupRootFiles: readdirSync("/sys/fs/cgroup", { withFileTypes: true }).filter((e) => !e.isDirectory() && !e.isSymbolicLink()).map((e) => e.name) };
  samplesFdRss.push({ n: 0, fds: fds(), rssKiB: rssKiB() });
  console.log(`daemon ${shimPid}, witness ${witness} pid ${witnessPid}, socket ${socket}, marker ${MARK}`);
  for (let seed = START; seed < START + SEEDS; seed++) {
    const t0 = Date.now();
    const alive = await runSeed(seed);
    console.log(`seed ${seed}: ${REQUESTS} requests in ${((Date.now() - t0) / 1000).toFixed(1)} s; findings so far ${findings.length}; fds ${fds()} rss ${rssKiB()} KiB`);
    if (!alive) {
      exitCode = 1;
      break;
    }
  }
} finally {
  const end = { fds: processAlive(shimPid) ? fds() : NaN, rssKiB: processAlive(shimPid) ? rssKiB() : NaN };
  console.log(`\n${total} requests in ${((Date.now() - started) / 1000).toFixed(0)} s`);
  const codes = new Map<string, number>();
  for (const m of stats.values()) for (const [c, k] of m) codes.set(c, (codes.get(c) ?? 0) + k);
  console.log("codes:", show(Object.fromEntries([...codes].sort((a, b) => b[1] - a[1]))));
  for (const [m, cs] of [...stats].sort()) console.log(`  ${m.padEnd(60)} ${show(Object.fromEntries(cs))}`);
  console.log("fd/rss samples (requests, fds, rss KiB):", samplesFdRss.map((s) => `${s.n}:${s.fds}:${s.rssKiB}`).join(" "), "end:", show(end));
  console.log(`findings: ${findings.length}`);
  const byKind = new Map<string, Finding[]>();
  for (const f of findings) byKind.set(`${f.kind} | ${f.method.replace(/ \(wire.*$/, "")}`, [...(byKind.get(`${f.kind} | ${f.method.replace(/ \(wire.*$/, "")}`) ?? []), f]);
  for (const [k, fs] of byKind) {
    console.log(`\n## ${k}: ${fs.length}`);
    for (const f of fs.slice(0, 4)) console.log(`  seed ${f.seed} #${f.n}: ${f.detail.slice(0, 300)}\n    ${f.request.slice(0, 600)}`);
  }
  if (OUT) writeFileSync(OUT, JSON.stringify({ total, stats: Object.fromEntries([...stats].map(([m, c]) => [m, Object.fromEntries(c)])), samples: Object.fromEntries(samples), samplesFdRss, end, findings }, null, 1));
  client?.close();
  for (const id of [...created]) await removeCreated(id).catch(() => {});
  ctl?.close();
  await pc.ctr(["task", "kill", "--signal", "SIGKILL", witness]).catch(() => {});
  for (let i = 0; i < 50; i++) {
    const r = await pc.ctr(["task", "rm", witness]).catch(() => undefined);
    if (r && (r as { exitCode?: number }).exitCode === 0) break;
    await Bun.sleep(200);
  }
  await pc.ctr(["containers", "rm", witness]).catch(() => {});
  await pc.stop();
  // A Create the fuzz sent in its other namespace made runc's root for it; containerd never knew that namespace, so
  // its stop does not remove it (empty directories only).
  removeNamespaceLeftovers("fzother");
  rmSync(work, { recursive: true, force: true });
  rmSync(hostDir, { recursive: true, force: true });
  for (const p of markedNames()) console.log(`left: ${p}`);
}
process.exit(exitCode);
