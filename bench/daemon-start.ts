// Benchmark (not a test): how fast a new shim daemon is ready. Launches containerd-shim-cryo-v2 with no
// action (the daemon), with the flags and environment `start` gives it (daemonArgs, daemonEnv), a temp
// bundle and a temp socket bound and listening before the exec and handed over as fd 3 (as start.ts
// does), and measures from exec:
//   - answered: a ttrpc State for an unknown id, sent right after the exec, comes back NOT_FOUND
//     (modules loaded, service registered, the queued connection accepted);
//   - connectable (only with --no-listen-fd, where the daemon binds the socket itself): the socket
//     accepts a connection (polled every ~1 ms);
//   - create (with --create): a first Create answered. Its bundle has no rootfs, so runc fails at once
//     and nothing is left behind; what it measures is what a daemon loads for its first Create (runtime
//     options, config, admission) plus one failing `runc create`.
// and the daemon's CPU time (user+sys) up to "answered" and "create": /proc/<pid>/stat utime+stime
// (clock ticks, coarse) and the sum of /proc/<pid>/task/*/schedstat run times (ns, live threads only).
//
// Run as root (runc): node_modules/.bin/bun bench/daemon-start.ts [--runs N] [--create] [--no-listen-fd]
//   [--bin LABEL=PATH ...]   (default: build=build/bin/containerd-shim-cryo-v2)
//   [--env K=V ...]          extra daemon environment, e.g. --env 'BUN_OPTIONS=--smol --cpu-prof-md --cpu-prof-dir=/tmp/p'
// Several --bin are run interleaved (run i of each binary back to back, order rotating), so machine
// load drifts hit all of them alike. One warm-up launch per binary is not counted.
import { create, toBinary } from "@bufbuild/protobuf";
import { closeSync, existsSync, mkdirSync, mkdtempSync, openSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { loadavg, tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { Code, CryoError } from "../src/errors.ts";
import { OptionsSchema } from "../src/gen/containerd/runc/options/oci_pb.ts";
import { Task } from "../src/gen/containerd/runtime/task/v2/shim_pb.ts";
import { close as closeFd } from "../src/sys/fd.ts";
import { listenUnixSocket } from "../src/sys/console-socket.ts";
import { daemonEnv, LISTEN_FD_ENV } from "../src/shim/daemon-env.ts";
import { daemonArgs, type ShimFlags } from "../src/shim/flags.ts";
import { GROUP_KEY_ENV } from "../src/shim/grouping-seal.ts";
import { LINGER_ENV } from "../src/shim/socket-lock.ts";
import { connect, type Client } from "../src/ttrpc/index.ts";

const args = process.argv.slice(2);
const flagValues = (name: string): string[] => args.flatMap((a, i) => (a === name && args[i + 1] !== undefined ? [args[i + 1]!] : []));
const RUNS = Number(flagValues("--runs")[0] ?? 21);
const CREATE = args.includes("--create");
const LISTEN_FD = !args.includes("--no-listen-fd");
const bins = (flagValues("--bin").length > 0 ? flagValues("--bin") : ["build=build/bin/containerd-shim-cryo-v2"]).map((s) => {
  const eq = s.indexOf("=");
  return eq > 0 ? { label: s.slice(0, eq), path: resolve(s.slice(eq + 1)) } : { label: s, path: resolve(s) };
});
for (const b of bins) if (!existsSync(b.path)) throw new Error(`no binary ${b.path}`);

const NAMESPACE = "cryo-bench-ds";
const CLK_TCK = 100; // Linux USER_HZ
const work = mkdtempSync(join(tmpdir(), "cryo-bench-ds-"));

interface Sample {
  connectable?: number;
  answered: number;
  cpuAnsweredTicksMs: number;
  cpuAnsweredSchedMs: number;
  create?: number;
  cpuCreateSchedMs?: number;
}

/** user+sys of the whole process from /proc/<pid>/stat, in ms (10 ms resolution). */
function statCpuMs(pid: number): number {
  const s = readFileSync(`/proc/${pid}/stat`, "utf8");
  const f = s.slice(s.lastIndexOf(")") + 2).split(" ");
  return ((Number(f[11]) + Number(f[12])) * 1000) / CLK_TCK; // fields 14 and 15 (utime, stime)
}

/** Run time of the process's live threads from schedstat, in ms (ns resolution). */
function schedCpuMs(pid: number): number {
  let ns = 0;
  for (const t of readdirSync(`/proc/${pid}/task`)) {
    try {
      ns += Number(readFileSync(`/proc/${pid}/task/${t}/schedstat`, "utf8").split(" ")[0]);
    } catch {
      // the thread ended meanwhile
    }
  }
  return ns / 1e6;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function runOnce(bin: string, n: number): Promise<Sample> {
  const dir = mkdtempSync(join(work, `run${n}-`));
  const bundle = join(dir, "bundle");
  mkdirSync(bundle);
  // No rootfs directory: runc create fails at once (only with --create).
  writeFileSync(join(bundle, "config.json"), JSON.stringify({ ociVersion: "1.0.2", process: { args: ["true"], cwd: "/" }, root: { path: "rootfs" }, linux: {} }));
  const socket = join(dir, "s.sock");
  const id = `ds-${process.pid}-${n}`;
  const flags: ShimFlags = {
    action: "",
    namespace: NAMESPACE,
    id,
    address: "",
    ttrpcAddress: "",
    publishBinary: "",
    bundle,
    socket: "",
    debug: false,
    version: false,
    info: false,
    help: false,
    maxShimVersion: 0,
  };
  const env: Record<string, string | undefined> = { ...process.env };
  delete env.CRYO_CONFIG;
  for (const kv of flagValues("--env")) env[kv.slice(0, kv.indexOf("="))] = kv.slice(kv.indexOf("=") + 1);
  const logPath = join(dir, "log");
  const logFd = openSync(logPath, "w");
  const listenFd = LISTEN_FD ? listenUnixSocket(socket, { mode: 0o600 }) : undefined;
  const extraEnv: Record<string, string> = { TTRPC_ADDRESS: "", GRPC_ADDRESS: "", NAMESPACE, [LINGER_ENV]: "0", [GROUP_KEY_ENV]: id };
  if (listenFd !== undefined) extraEnv[LISTEN_FD_ENV] = "3";
  const t0 = performance.now();
  const proc = Bun.spawn([bin, ...daemonArgs(flags, socket)], {
    cwd: bundle,
    env: daemonEnv(env, extraEnv),
    stdio: listenFd !== undefined ? ["ignore", logFd, logFd, listenFd] : ["ignore", logFd, logFd],
  });
  if (listenFd !== undefined) closeFd(listenFd);
  closeSync(logFd);
  let client: Client | undefined;
  try {
    let connectable: number | undefined;
    if (listenFd !== undefined) {
      client = await connect(socket); // queued in the backlog until the daemon accepts
    } else {
      for (;;) {
        if (proc.exitCode !== null) throw new Error(`daemon exited ${proc.exitCode}: ${readFileSync(logPath, "utf8")}`);
        if (existsSync(socket)) {
          try {
            client = await connect(socket);
            connectable = performance.now() - t0;
            break;
          } catch {
            // bound, not listening yet
          }
        }
        if (performance.now() - t0 > 10_000) throw new Error("daemon not listening after 10 s");
        await sleep(1);
      }
    }
    try {
      await client.call(Task, "state", { id: "no-such-container" }, { timeoutMs: 10_000, namespace: NAMESPACE });
      throw new Error("State of an unknown id did not fail");
    } catch (err) {
      if (!(err instanceof CryoError) || err.code !== Code.NOT_FOUND) throw err;
    }
    const answered = performance.now() - t0;
    const sample: Sample = { connectable, answered, cpuAnsweredTicksMs: statCpuMs(proc.pid), cpuAnsweredSchedMs: schedCpuMs(proc.pid) };
    if (CREATE) {
      const options = { typeUrl: "containerd.runc.v1.Options", value: toBinary(OptionsSchema, create(OptionsSchema, { root: join(dir, "runc") })) };
      try {
        await client.call(Task, "create", { id, bundle, options }, { timeoutMs: 10_000, namespace: NAMESPACE });
        throw new Error("Create without a rootfs succeeded");
      } catch (err) {
        if (!(err instanceof CryoError)) throw err;
      }
      sample.create = performance.now() - t0;
      sample.cpuCreateSchedMs = schedCpuMs(proc.pid);
    }
    return sample;
  } finally {
    client?.close();
    proc.kill("SIGTERM");
    const killer = setTimeout(() => proc.kill("SIGKILL"), 5000);
    await proc.exited;
    clearTimeout(killer);
    rmSync(dir, { recursive: true, force: true });
  }
}

const quantile = (xs: number[], q: number) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.ceil(q * s.length) - 1)]!;
};
const fmt = (xs: number[]) => `${quantile(xs, 0.5).toFixed(1)} / ${quantile(xs, 0.9).toFixed(1)}`;

try {
  console.log(`load ${loadavg().map((x) => x.toFixed(2)).join(" ")} at start; ${RUNS} runs per binary${CREATE ? ", with Create" : ""}${LISTEN_FD ? ", listening fd handed over" : ", the daemon binds"}`);
  for (const b of bins) await runOnce(b.path, -1 - bins.indexOf(b)); // warm-up (page cache)
  const samples = new Map<string, Sample[]>(bins.map((b) => [b.label, []]));
  for (let i = 0; i < RUNS; i++) {
    for (let j = 0; j < bins.length; j++) {
      const b = bins[(i + j) % bins.length]!;
      samples.get(b.label)!.push(await runOnce(b.path, i * bins.length + j));
    }
  }
  console.log(`load ${loadavg().map((x) => x.toFixed(2)).join(" ")} at end`);
  console.log("median / p90, ms from exec");
  const head = ["binary", ...(LISTEN_FD ? [] : ["connectable"]), "State answered", "CPU to answered (schedstat)", "CPU (stat ticks)"];
  if (CREATE) head.push("first Create answered", "CPU to Create (schedstat)");
  console.log(`| ${head.join(" | ")} |`);
  console.log(`|${head.map(() => "---").join("|")}|`);
  for (const b of bins) {
    const s = samples.get(b.label)!;
    const row = [b.label, ...(LISTEN_FD ? [] : [fmt(s.map((x) => x.connectable!))]), fmt(s.map((x) => x.answered)), fmt(s.map((x) => x.cpuAnsweredSchedMs)), fmt(s.map((x) => x.cpuAnsweredTicksMs))];
    if (CREATE) row.push(fmt(s.map((x) => x.create!)), fmt(s.map((x) => x.cpuCreateSchedMs!)));
    console.log(`| ${row.join(" | ")} |`);
  }
} finally {
  rmSync(work, { recursive: true, force: true });
}
