// Benchmark (not a test): exec into a running container, cryo's shim against containerd's runc shim
// (io.containerd.runc.v2), in the same run, through ctr and one private containerd. This is what a
// Kubernetes exec probe or `kubectl exec` costs the runtime.
//   - `ctr task exec --exec-id X ID true`, sequential: median and p90 of N execs per runtime, the runtimes
//     interleaved exec by exec so that load drifts hit both alike
//   - 10 such execs at once into one container: wall time until all returned (median of N/5 rounds)
// Prints numbers; asserts nothing.
//
// Run as root: node_modules/.bin/bun bench/exec.ts [--runs N]
// CRYO_BENCH_BIN_DIR=dir runs the cryo binaries of dir (default: build/bin, as the tests do).
import { loadavg } from "node:os";
import { ensureTestImage, startPrivateContainerd, testImage, uniqueId } from "../test/harness/index.ts";

const args = process.argv.slice(2);
const runsAt = args.indexOf("--runs");
const RUNS = runsAt >= 0 ? Number(args[runsAt + 1]) : 30;
const PARALLEL = 10;

const runtimes = [
  { name: "runc", runtime: "io.containerd.runc.v2" },
  { name: "cryo", runtime: "io.containerd.cryo.v2" },
] as const;

const binDir = process.env.CRYO_BENCH_BIN_DIR;
const pc = await startPrivateContainerd({ namespace: uniqueId("benchexec"), ...(binDir ? { binDir } : {}) });
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const p90 = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(xs.length * 0.9))]!;

try {
  await ensureTestImage(pc);
  const ids = new Map<string, string>();
  for (const r of runtimes) {
    const id = uniqueId(`exec-${r.name}`);
    await pc.ctrOk(["run", "-d", "--runtime", r.runtime, testImage, id, "sleep", "100000"], { timeoutMs: 60_000 });
    ids.set(r.name, id);
  }
  const exec = async (name: string): Promise<number> => {
    const started = performance.now();
    await pc.ctrOk(["task", "exec", "--exec-id", uniqueId("x"), ids.get(name)!, "true"], { timeoutMs: 60_000 });
    return performance.now() - started;
  };
  // Warm-up: the first exec of each shim loads what exec needs.
  for (const r of runtimes) await exec(r.name);
  console.log(`# ${new Date().toISOString()} load ${loadavg().map((l) => l.toFixed(2)).join(" ")}, ${RUNS} sequential execs and ${Math.max(1, Math.floor(RUNS / 5))} rounds of ${PARALLEL} parallel per runtime`);
  const sequential = new Map<string, number[]>(runtimes.map((r) => [r.name, []]));
  for (let i = 0; i < RUNS; i++) {
    for (const r of i % 2 === 0 ? runtimes : [...runtimes].reverse()) sequential.get(r.name)!.push(await exec(r.name));
  }
  const parallel = new Map<string, number[]>(runtimes.map((r) => [r.name, []]));
  for (let i = 0; i < Math.max(1, Math.floor(RUNS / 5)); i++) {
    for (const r of i % 2 === 0 ? runtimes : [...runtimes].reverse()) {
      const started = performance.now();
      await Promise.all(Array.from({ length: PARALLEL }, () => exec(r.name)));
      parallel.get(r.name)!.push(performance.now() - started);
    }
  }
  const base = runtimes[0].name;
  console.log("runtime | exec median ms | exec p90 ms | ratio (median) | 10 parallel ms (median) | ratio");
  for (const r of runtimes) {
    const s = sequential.get(r.name)!;
    const p = parallel.get(r.name)!;
    console.log(
      [r.name, median(s).toFixed(1), p90(s).toFixed(1), (median(s) / median(sequential.get(base)!)).toFixed(2), median(p).toFixed(0), (median(p) / median(parallel.get(base)!)).toFixed(2)].join(" | "),
    );
  }
  console.log(`# load at the end ${loadavg().map((l) => l.toFixed(2)).join(" ")}`);
  for (const id of ids.values()) {
    await pc.ctr(["task", "kill", "-s", "KILL", id]);
    await pc.ctr(["task", "rm", "-f", id]);
    await pc.ctr(["containers", "rm", id]);
  }
} finally {
  await pc.stop();
}
