// Benchmark (not a test): one cryo daemon under an exec flood. Containers share one daemon (per-namespace grouping);
// a flood of exec cycles (Exec, Start, Wait, Delete: what CRI's ExecSync and `ctr task exec` send) goes straight to
// the daemon's socket over several connections, while a prober asks the daemon about a quiet container (State, Pids,
// one exec cycle) and about a flooded one (State, Kill with signal 0), one call after the other. Printed: each
// probe's latency before and during the flood (median, p90, max), the flood's wall time and failures, and the most
// the daemon held meanwhile (RSS, open fds, runc processes running at once under it).
//
// Run as root: node_modules/.bin/bun bench/shim-flood.ts [--execs 200] [--flooded 1] [--connections 20]
//   --flooded N spreads the execs over N containers (execs/N each); the quiet container is one more.
//   --state N floods State calls instead: N of them, all sent at once over the connections by bench/flood-client.ts in a
//   process of its own.
//   --slots N runs the daemon with a config file of `[shim] max_parallel_execs = N` (CRYO_CONFIG).
// CRYO_BENCH_BIN_DIR=dir runs the cryo binaries of dir (default: build/bin, as the tests do).
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { create } from "@bufbuild/protobuf";
import { AnySchema } from "@bufbuild/protobuf/wkt";
import { Task as TaskV2 } from "../src/gen/containerd/runtime/task/v2/shim_pb.ts";
import { connect } from "../src/ttrpc/index.ts";
import { ensureTestImage, shimDaemonPids, startPrivateContainerd, testImage, uniqueId } from "../test/harness/index.ts";

const args = process.argv.slice(2);
const flag = (name: string, def: number): number => {
  const i = args.indexOf(name);
  return i >= 0 ? Number(args[i + 1]) : def;
};
const EXECS = flag("--execs", 200);
const FLOODED = flag("--flooded", 1);
const CONNECTIONS = flag("--connections", 20);
const RUNTIME = "io.containerd.cryo.v2";

const quantile = (xs: number[], q: number) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(q * xs.length))] ?? NaN;
const row = (name: string, xs: number[]) =>
  `${name.padEnd(28)} n=${String(xs.length).padStart(4)}  median ${quantile(xs, 0.5).toFixed(1).padStart(7)}  p90 ${quantile(xs, 0.9).toFixed(1).padStart(7)}  max ${Math.max(...xs).toFixed(1).padStart(7)} ms`;

const execSpec = (argv: string[]) =>
  create(AnySchema, { typeUrl: "types.containerd.io/opencontainers/runtime-spec/1/Process", value: new TextEncoder().encode(JSON.stringify({ args: argv, cwd: "/", env: ["PATH=/bin:/usr/bin"], user: { uid: 0, gid: 0 } })) });

/** Children of pid whose command is runc (the daemon runs runc directly). */
function runcChildren(pid: number): number {
  let n = 0;
  for (const p of readdirSync("/proc").filter((x) => /^\d+$/.test(x))) {
    try {
      const stat = readFileSync(`/proc/${p}/stat`, "utf8");
      const ppid = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
      if (ppid === pid && stat.includes("(runc")) n++;
    } catch {}
  }
  return n;
}
const rssKiB = (pid: number) => Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, "utf8"))?.[1] ?? NaN);
const fds = (pid: number) => readdirSync(`/proc/${pid}/fd`).length;

const SLOTS = flag("--slots", 0);
const STATES = flag("--state", 0);
const configDir = mkdtempSync(join(tmpdir(), "cryo-flood-"));
const configFile = join(configDir, "config.toml");
writeFileSync(configFile, SLOTS > 0 ? `[shim]\nmax_parallel_execs = ${SLOTS}\n` : "");

const ns = uniqueId("flood");
const binDir = process.env.CRYO_BENCH_BIN_DIR;
const pc = await startPrivateContainerd({ namespace: ns, ...(binDir ? { binDir } : {}), env: { CRYO_SHIM_GROUPING: "per-namespace", CRYO_CONFIG: configFile } });
const ids: string[] = [];
try {
  await ensureTestImage(pc);
  const quiet = uniqueId("quiet");
  const flooded = Array.from({ length: FLOODED }, () => uniqueId("flooded"));
  for (const id of [quiet, ...flooded]) {
    await pc.ctrOk(["run", "-d", "--runtime", RUNTIME, testImage, id, "sleep", "100000"]);
    ids.push(id);
  }
  const address = readFileSync(join(pc.state, "io.containerd.runtime.v2.task", ns, quiet, "address"), "utf8").trim().replace(/^unix:\/\//, "");
  const [daemon] = shimDaemonPids(pc.address, address).length > 0 ? shimDaemonPids(pc.address, address) : shimDaemonPids(pc.address);
  if (daemon === undefined) throw new Error("no shim daemon found");
  const clients = await Promise.all(Array.from({ length: CONNECTIONS }, () => connect(address)));
  const prober = await connect(address);
  const call = (c: typeof prober, method: string, req: Record<string, unknown>) =>
    c.call(TaskV2, method as "state", req as never, { namespace: ns, timeoutMs: 600_000 }) as Promise<unknown>;
  let seq = 0;
  const execCycle = async (c: typeof prober, id: string) => {
    const execId = `e${seq++}`;
    await call(c, "exec", { id, execId, spec: execSpec(["true"]), stdin: "", stdout: "", stderr: "", terminal: false });
    const waited = call(c, "wait", { id, execId });
    await call(c, "start", { id, execId });
    await waited;
    await call(c, "delete", { id, execId });
  };
  const timed = async (xs: number[], fn: () => Promise<unknown>) => {
    const t = performance.now();
    await fn();
    xs.push(performance.now() - t);
  };
  type Probes = Record<string, number[]>;
  const probeOnce = async (p: Probes) => {
    await timed((p["quiet State"] ??= []), () => call(prober, "state", { id: quiet }));
    await timed((p["quiet Pids"] ??= []), () => call(prober, "pids", { id: quiet }));
    await timed((p["quiet exec cycle"] ??= []), () => execCycle(prober, quiet));
    await timed((p["flooded State"] ??= []), () => call(prober, "state", { id: flooded[0] }));
    await timed((p["flooded Kill 0"] ??= []), () => call(prober, "kill", { id: flooded[0], signal: 0 }));
  };

  const idle: Probes = {};
  for (let i = 0; i < 15; i++) await probeOnce(idle);
  const base = { rss: rssKiB(daemon), fds: fds(daemon) };

  let peak = { rss: 0, fds: 0, runc: 0 };
  let sampling = true;
  const sampler = (async () => {
    while (sampling) {
      try {
        peak = { rss: Math.max(peak.rss, rssKiB(daemon)), fds: Math.max(peak.fds, fds(daemon)), runc: Math.max(peak.runc, runcChildren(daemon)) };
      } catch {}
      await Bun.sleep(20);
    }
  })();
  let failures = 0;
  const errors = new Map<string, number>();
  const t0 = performance.now();
  let done = 0;
  const stateFlood = async () => {
    const p = Bun.spawn([process.execPath, join(import.meta.dir, "flood-client.ts"), address, ns, flooded[0]!, String(STATES), String(CONNECTIONS)], { stdout: "pipe" });
    const out = JSON.parse(await new Response(p.stdout).text()) as { failed: number };
    if (out.failed > 0) throw new Error(`${out.failed} State calls failed`);
  };
  const flood = Promise.all(
    Array.from({ length: STATES > 0 ? 1 : EXECS }, (_, i) =>
      (STATES > 0 ? stateFlood() : execCycle(clients[i % CONNECTIONS]!, flooded[i % FLOODED]!)).then(
        () => void done++,
        (e: unknown) => {
          failures++;
          const m = String((e as Error).message).slice(0, 120);
          errors.set(m, (errors.get(m) ?? 0) + 1);
        },
      ),
    ),
  );
  let floodMs = NaN;
  void flood.then(() => (floodMs = performance.now() - t0));
  const during: Probes = {};
  await Bun.sleep(100);
  while (Number.isNaN(floodMs)) await probeOnce(during);
  sampling = false;
  await sampler;

  console.log(`${binDir ?? "build/bin"}, slots: ${SLOTS > 0 ? SLOTS : "default"}; load ${readFileSync("/proc/loadavg", "utf8").split(" ").slice(0, 3).join(" ")}; ${STATES > 0 ? `${STATES} State calls` : `${EXECS} exec cycles`} over ${FLOODED} container(s), ${CONNECTIONS} connections; daemon pid ${daemon}`);
  console.log(`flood: ${floodMs.toFixed(0)} ms, ${done} done, ${failures} failed`);
  for (const [m, n] of errors) console.log(`  ${n}x ${m}`);
  console.log(`daemon: RSS ${(base.rss / 1024).toFixed(1)} -> peak ${(peak.rss / 1024).toFixed(1)} MiB; fds ${base.fds} -> peak ${peak.fds}; runc children at once: peak ${peak.runc}`);
  console.log("before the flood:");
  for (const [k, xs] of Object.entries(idle)) console.log(`  ${row(k, xs)}`);
  console.log("during the flood:");
  for (const [k, xs] of Object.entries(during)) console.log(`  ${row(k, xs)}`);
  for (const c of [...clients, prober]) c.close();
} finally {
  await pc.stop();
  rmSync(configDir, { recursive: true, force: true });
}
