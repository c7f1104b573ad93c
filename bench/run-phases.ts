/**
 * Where the time of one `ctr run --rm IMAGE id true` goes, runc's shim against cryo's, in the same run: a private
 * containerd at debug, the runtimes interleaved, and for each run the offset of containerd's event log lines
 * (/containers/create, /tasks/create, /tasks/start, /tasks/exit, /tasks/delete, /containers/delete) from the
 * ctr command's start, and ctr's own end. Prints the medians of each step's span per runtime, and the CPU time
 * (cpuacct) that containerd and everything it started outside the containers' cgroups (shims, their daemons, runc)
 * spent on the run: containerd is moved into a cpuacct cgroup of its own for that. Asserts nothing.
 *
 *   bun bench/run-phases.ts [--runs N] [--grouping per-namespace|per-pod|per-container] [--trace]   (root)
 * --trace prints containerd's and the shims' log lines of each runtime's last run.
 */
import { mkdirSync, readFileSync, rmdirSync, writeFileSync } from "node:fs";
import { loadavg } from "node:os";
import { logWindow } from "./log-window.ts";
import { ensureTestImage, startPrivateContainerd, testImage, uniqueId } from "../test/harness/index.ts";

const args = process.argv.slice(2);
const opt = (name: string) => {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : undefined;
};
const RUNS = Number(opt("--runs") ?? 15);
const grouping = opt("--grouping") ?? "per-namespace";
const trace = args.includes("--trace");
const TOPICS = ["/containers/create", "/tasks/create", "/tasks/start", "/tasks/exit", "/tasks/delete", "/containers/delete"] as const;

const variants = [
  { name: "runc", flags: ["--runtime", "io.containerd.runc.v2"] },
  { name: `cryo ${grouping}`, flags: ["--runtime", "io.containerd.cryo.v2", "--annotation", `io.cryo.shim.grouping=${grouping}`] },
];

const pc = await startPrivateContainerd({ namespace: uniqueId("runphases"), logLevel: "debug", ...(process.env.CRYO_BENCH_BIN_DIR ? { binDir: process.env.CRYO_BENCH_BIN_DIR } : {}) });
// containerd into a cpuacct group of its own: its children (shims, daemons, runc) inherit it.
const cpuGroup = `/sys/fs/cgroup/cpuacct/cryo-runphases-${process.pid}`;
mkdirSync(cpuGroup);
writeFileSync(`${cpuGroup}/cgroup.procs`, String(pc.pid));
const cpuNs = () => Number(readFileSync(`${cpuGroup}/cpuacct.usage`, "utf8"));
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? NaN;

/** The times of the topics' log lines for container id (events carry no id in the line: the first after `from`). */
function eventTimes(from: number): Map<string, number> {
  const out = new Map<string, number>();
  for (const line of readFileSync(pc.layout.log, "utf8").split("\n")) {
    const m = /time="?([0-9T:.Z+-]+)"?.*msg="event (?:published|forwarded)".*topic=(\S+)/.exec(line);
    if (!m) continue;
    const t = new Date(m[1]!).getTime();
    if (t < from || out.has(m[2]!)) continue;
    out.set(m[2]!, t - from);
  }
  return out;
}

try {
  await ensureTestImage(pc);
  console.log(`# ${new Date().toISOString()} load ${loadavg().map((l) => l.toFixed(2)).join(" ")}; ${RUNS} runs each, interleaved`);
  const spans = new Map<string, number[][]>(variants.map((v) => [v.name, []]));
  // One unmeasured run each first (image, daemon and page cache warm).
  for (let r = -1; r < RUNS; r++) {
    for (const v of r % 2 === 0 ? variants : [...variants].reverse()) {
      await Bun.sleep(300); // the previous run's log lines are all in before the next run's window opens
      const id = uniqueId("ph");
      const cpu0 = cpuNs();
      const from = Date.now();
      await pc.ctrOk(["run", "--rm", ...v.flags, testImage, id, "true"], { timeoutMs: 60_000 });
      const end = Date.now() - from;
      await Bun.sleep(100);
      const t = eventTimes(from);
      const marks = [0, ...TOPICS.map((topic) => t.get(topic) ?? NaN), end];
      if (trace && r === RUNS - 1) console.log(`== ${v.name}\n${logWindow(pc.layout.log, new Date(from), new Date(from + end + 50), /./).join("\n")}`);
      if (r >= 0) spans.get(v.name)!.push([...marks.slice(1).map((m, i) => m - marks[i]!), (cpuNs() - cpu0) / 1e6]);
    }
  }
  const names = ["ctr→container create", "→task create", "→task start", "→task exit", "→task delete", "→container delete", "→ctr end"];
  console.log(`step${" ".repeat(22)}${variants.map((v) => v.name.padStart(20)).join("")}   (median ms)`);
  for (let i = 0; i < names.length; i++) console.log(`${names[i]!.padEnd(26)}${variants.map((v) => median(spans.get(v.name)!.map((s) => s[i]!)).toFixed(0).padStart(20)).join("")}`);
  console.log(`${"total".padEnd(26)}${variants.map((v) => median(spans.get(v.name)!.map((s) => s.slice(0, names.length).reduce((a, b) => a + b, 0))).toFixed(0).padStart(20)).join("")}`);
  console.log(`${"CPU (containerd's group)".padEnd(26)}${variants.map((v) => median(spans.get(v.name)!.map((s) => s[names.length]!)).toFixed(1).padStart(20)).join("")}`);
} finally {
  await pc.stop();
  // A lingering per-namespace daemon leaves the group when it exits (its linger, a few seconds).
  for (let i = 0; i < 100 && readFileSync(`${cpuGroup}/cgroup.procs`, "utf8").trim() !== ""; i++) await Bun.sleep(100);
  rmdirSync(cpuGroup);
}
