// Benchmark (not a test): the cryo shim against containerd's runc shim (io.containerd.runc.v2), in
// the same run, through ctr and one private containerd.
//   - `ctr run --rm IMAGE id true` latency, sequential: median and p90 of N runs
//   - 20 parallel `ctr run --rm`: wall time until all 20 returned
//   - shim memory with 1 and with 20 running containers: RSS, PSS and private bytes summed over every
//     shim process of this containerd (/proc/<pid>/smaps_rollup), cryo's standby daemon included (shown as
//     "+1" in the process count)
// cryo runs with each grouping policy (annotation io.cryo.shim.grouping): per-container, per-pod
// (pods of 5 containers, annotation io.containerd.runc.v2.group, which runc's shim honours too) and
// per-namespace. Runs interleave the runtimes so that machine load drifts hit all of them alike.
//
// Run as root: node_modules/.bin/bun bench/shim.ts [--runs N] [--skip-memory] [--skip-latency] [--only NAME]
// CRYO_BENCH_BIN_DIR=dir runs the cryo binaries of dir (default: build/bin, as the tests do).
// --baseline FILE also runs FILE, another build of the cryo shim (e.g. an older commit's), as runtime
// io.containerd.cryobase.v2 with per-container grouping (--baseline-grouping G: another), for a before/after
// comparison in one run.
import { copyFileSync, mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { defaultBinDir } from "../src/containerd/index.ts";
import { ensureTestImage, startPrivateContainerd, testImage, uniqueId, waitFor, type PrivateContainerd } from "../test/harness/index.ts";

const args = process.argv.slice(2);
const flagValue = (name: string): string | undefined => {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : undefined;
};
const RUNS = Number(flagValue("--runs") ?? 15);
const PARALLEL = 20;
const POD_SIZE = 5;

/** One runtime configuration under test. */
interface Variant {
  name: string;
  runtime: string;
  /** Extra `ctr run` flags for container number i. */
  flags(i: number): string[];
  /** argv[0] suffix of its shim processes. */
  shimBinary: string;
  /** Whether `ctr run --rm` latency is measured (runc's shim races with itself when pod members come and go). */
  latency: boolean;
}

const podFlags = (i: number) => ["--annotation", `io.containerd.runc.v2.group=pod-${Math.floor(i / POD_SIZE)}`];
const cryo = (grouping: string, extra: (i: number) => string[] = () => []): Variant => ({
  name: `cryo ${grouping}`,
  runtime: "io.containerd.cryo.v2",
  flags: (i) => ["--annotation", `io.cryo.shim.grouping=${grouping}`, ...extra(i)],
  shimBinary: "containerd-shim-cryo-v2",
  latency: true,
});
const allVariants: Variant[] = [
  { name: "runc per-container", runtime: "io.containerd.runc.v2", flags: () => [], shimBinary: "containerd-shim-runc-v2", latency: true },
  // containerd's runc shim exits on Shutdown while a `start` for the same group may have just handed
  // out its address ("ttrpc: closed" on Create): only its memory is measured per pod.
  { name: "runc per-pod", runtime: "io.containerd.runc.v2", flags: podFlags, shimBinary: "containerd-shim-runc-v2", latency: false },
  cryo("per-container"),
  cryo("per-pod", podFlags),
  cryo("per-namespace"),
];
const baseline = flagValue("--baseline");
// --baseline-grouping G: the baseline runs with grouping G (default per-container). Two builds sharing one
// containerd namespace and a per-namespace (or per-pod) group would share one daemon: give each build its own
// CRYO_SHIM_SOCKET_DIR then (e.g. a wrapper that sets it and execs the build, as FILE and in CRYO_BENCH_BIN_DIR).
const baselineGrouping = flagValue("--baseline-grouping") ?? "per-container";
if (baseline) {
  allVariants.push({
    name: `cryo-base ${baselineGrouping === "per-container" ? "per-cont." : baselineGrouping}`,
    runtime: "io.containerd.cryobase.v2",
    flags: () => ["--annotation", `io.cryo.shim.grouping=${baselineGrouping}`],
    shimBinary: "containerd-shim-cryobase-v2",
    latency: true,
  });
}
// --only SUBSTRING keeps the variants whose name contains it (e.g. --only namespace).
const only = flagValue("--only");
const variants = only ? allVariants.filter((v) => v.name.includes(only)) : allVariants;

function loadavg(): string {
  return readFileSync("/proc/loadavg", "utf8").split(" ").slice(0, 3).join(" ");
}

function quantile(xs: number[], q: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(q * s.length))] ?? NaN;
}

/** Shim processes of this containerd (their command line carries its address). */
function shimPids(pc: PrivateContainerd, binary: string, which: "daemons" | "standby" = "daemons"): number[] {
  const pids: number[] = [];
  for (const p of readdirSync("/proc")) {
    if (!/^\d+$/.test(p)) continue;
    try {
      const argv = readFileSync(`/proc/${p}/cmdline`, "utf8").split("\0");
      // cryo's standby daemon (src/shim/standby.ts) serves no container: counted apart.
      if (argv[0]?.endsWith(binary) && argv.includes(pc.address) && argv.includes("__standby") === (which === "standby")) pids.push(Number(p));
    } catch {
      // gone
    }
  }
  return pids;
}

/** Summed RSS, PSS and private memory (KiB) of pids. */
function memory(pids: number[]): { rss: number; pss: number; priv: number } {
  const sum = { rss: 0, pss: 0, priv: 0 };
  for (const pid of pids) {
    let text: string;
    try {
      text = readFileSync(`/proc/${pid}/smaps_rollup`, "utf8");
    } catch {
      continue;
    }
    const field = (name: string) => Number(new RegExp(`^${name}:\\s+(\\d+) kB`, "m").exec(text)?.[1] ?? 0);
    sum.rss += field("Rss");
    sum.pss += field("Pss");
    sum.priv += field("Private_Clean") + field("Private_Dirty");
  }
  return sum;
}

async function runRm(pc: PrivateContainerd, v: Variant, i: number): Promise<number> {
  const id = uniqueId("bench");
  const t = performance.now();
  const r = await pc.ctr(["run", "--rm", "--runtime", v.runtime, ...v.flags(i), testImage, id, "true"], { timeoutMs: 120_000 });
  const ms = performance.now() - t;
  if (r.exitCode !== 0) throw new Error(`${v.name}: ctr run --rm ${id}: exit ${r.exitCode}: ${r.stderr.trim()}`);
  return ms;
}

const mib = (kib: number) => (kib / 1024).toFixed(1);
const fmt = (ms: number) => ms.toFixed(0).padStart(6);

// With a baseline, containerd gets a bin dir holding both shims (it finds a shim by runtime name).
let binDir = process.env.CRYO_BENCH_BIN_DIR || undefined;
let tempBinDir: string | undefined;
if (baseline) {
  tempBinDir = mkdtempSync(join(tmpdir(), "cryo-bench-bin-"));
  copyFileSync(join(binDir ?? defaultBinDir() ?? "build/bin", "containerd-shim-cryo-v2"), join(tempBinDir, "containerd-shim-cryo-v2"));
  copyFileSync(baseline, join(tempBinDir, "containerd-shim-cryobase-v2"));
  binDir = tempBinDir;
}
const pc = await startPrivateContainerd({ namespace: uniqueId("benchshim"), binDir });
try {
  await ensureTestImage(pc);
  console.log(`load average at start: ${loadavg()} (${navigator.hardwareConcurrency} CPUs)`);

  if (!args.includes("--skip-latency")) {
    // Warm up every runtime once (page cache, containerd's first shim of a kind).
    const timed = variants.filter((v) => v.latency);
    for (const v of timed) await runRm(pc, v, 0);
    const seq = new Map<string, number[]>(timed.map((v) => [v.name, []]));
    for (let n = 0; n < RUNS; n++) for (const v of timed) seq.get(v.name)!.push(await runRm(pc, v, n));
    const par = new Map<string, number[]>(timed.map((v) => [v.name, []]));
    for (let n = 0; n < 3; n++) {
      for (const v of timed) {
        const t = performance.now();
        await Promise.all(Array.from({ length: PARALLEL }, (_, i) => runRm(pc, v, i)));
        par.get(v.name)!.push(performance.now() - t);
      }
    }
    console.log(`\nctr run --rm ... true: ${RUNS} sequential runs each; ${PARALLEL} in parallel, 3 rounds (median wall time of the round)`);
    console.log(`${"runtime".padEnd(22)} ${"median".padStart(6)} ${"p90".padStart(6)} ${"20 par".padStart(8)}   (ms)`);
    for (const v of timed) {
      const s = seq.get(v.name)!;
      console.log(`${v.name.padEnd(22)} ${fmt(quantile(s, 0.5))} ${fmt(quantile(s, 0.9))} ${fmt(quantile(par.get(v.name)!, 0.5)).padStart(8)}`);
    }
    console.log(`load average after latency runs: ${loadavg()}`);
  }

  if (!args.includes("--skip-memory")) {
    console.log(`\nshim memory (summed over shim processes, MiB)`);
    console.log(`${"runtime".padEnd(22)} ${"n".padStart(3)} ${"procs".padStart(5)} ${"RSS".padStart(7)} ${"PSS".padStart(7)} ${"private".padStart(8)}`);
    for (const v of variants) {
      const ids: string[] = [];
      try {
        for (const n of [1, PARALLEL]) {
          while (ids.length < n) {
            const id = uniqueId("benchmem");
            await pc.ctrOk(["run", "-d", "--runtime", v.runtime, ...v.flags(ids.length), testImage, id, "sleep", "100000"], { timeoutMs: 120_000 });
            ids.push(id);
          }
          // Let start-up garbage settle the way a long-running shim would (a few GC cycles).
          await Bun.sleep(2000);
          const pids = shimPids(pc, v.shimBinary);
          const standby = shimPids(pc, v.shimBinary, "standby");
          const m = memory([...pids, ...standby]);
          const procs = `${pids.length}${standby.length > 0 ? `+${standby.length}` : ""}`;
          console.log(`${v.name.padEnd(22)} ${String(n).padStart(3)} ${procs.padStart(5)} ${mib(m.rss).padStart(7)} ${mib(m.pss).padStart(7)} ${mib(m.priv).padStart(8)}`);
        }
      } finally {
        await Promise.all(ids.map((id) => pc.ctr(["task", "kill", "--signal", "SIGKILL", id])));
        for (const id of ids) {
          // task rm succeeds once the killed task has stopped
          await waitFor(async () => (await pc.ctr(["task", "rm", id])).exitCode === 0, { timeoutMs: 30_000, what: `task rm ${id}` });
          await pc.ctrOk(["containers", "rm", id]);
        }
        await waitFor(() => shimPids(pc, v.shimBinary).length === 0, { timeoutMs: 30_000, what: `${v.name} shims gone` });
      }
    }
  }
  console.log(`\nload average at end: ${loadavg()}`);
} finally {
  await pc.stop();
  if (tempBinDir) rmSync(tempBinDir, { recursive: true, force: true });
}
