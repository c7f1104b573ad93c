// Benchmark (not a test): what a kubelet's exec probes see through containerd's CRI plugin, handler cryo against
// handler runc on one private containerd. Several pods (a sandbox and one container each); every container gets a
// fast probe (ExecSync `cat /tmp/ok`, timeout 1 s, every --interval ms), and every second container also a slow one
// (`sleep 2` through sh, timeout 1 s, every second) as liveness/readiness probes do. Optionally one more pod is
// flooded with back-to-back ExecSyncs (--flood N callers) while a quiet pod's ExecSync and ContainerStatus are timed.
// Printed per handler: each kind's latency (median, p90, max) and outcomes (ok, timeout, other errors with their
// text), then what is left once the probes stop: processes in each container besides its init, exec entries the
// shim still lists (`ctr task ps`), and the shim daemons' open fds before and after.
//
// Run as root: node_modules/.bin/bun bench/cri-probes.ts [--handlers cryo,runc] [--pods 4] [--seconds 15]
//   [--interval 300] [--flood 0] [--grouping per-pod|per-namespace]
// --grouping per-namespace sets CRYO_SHIM_GROUPING in containerd's environment (every cryo pod in one daemon).
import { mkdtempSync, readFileSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { create } from "@bufbuild/protobuf";
import { NamespaceMode, PodSandboxConfigSchema } from "../src/gen/k8s/runtime/v1/api_pb.ts";
import { cgroupDirs, connectCri, criNamespace, criPauseImage, ensureCriImages, shimProcesses, startPrivateContainerd, testImage, removeAllPods, removeCgroupParent, uniqueId, type CriClient } from "../test/harness/index.ts";

const args = process.argv.slice(2);
const opt = (name: string, def: string): string => {
  const i = args.indexOf(name);
  return i >= 0 ? (args[i + 1] ?? def) : def;
};
const HANDLERS = opt("--handlers", "cryo,runc").split(",");
const PODS = Number(opt("--pods", "4"));
const SECONDS = Number(opt("--seconds", "15"));
const INTERVAL = Number(opt("--interval", "300"));
const FLOOD = Number(opt("--flood", "0"));
const GROUPING = opt("--grouping", "per-pod");
const SHIMS: Record<string, string> = { cryo: "containerd-shim-cryo-v2", runc: "containerd-shim-runc-v2" };

const quantile = (xs: number[], q: number) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(q * xs.length))] ?? NaN;
const row = (name: string, xs: number[]) =>
  `${name.padEnd(26)} n=${String(xs.length).padStart(4)}  median ${quantile(xs, 0.5).toFixed(1).padStart(7)}  p90 ${quantile(xs, 0.9).toFixed(1).padStart(7)}  max ${Math.max(...xs).toFixed(1).padStart(7)} ms`;
const hostNetwork = { network: NamespaceMode.NODE, pid: NamespaceMode.CONTAINER, ipc: NamespaceMode.POD };

interface Pod {
  podSandboxId: string;
  containerId: string;
  pid: number;
}

async function runPod(cri: CriClient, handler: string, logRoot: string, tag: string): Promise<Pod> {
  const name = uniqueId(`probe-${handler}-${tag}`);
  const sandboxConfig = create(PodSandboxConfigSchema, {
    metadata: { name, uid: crypto.randomUUID(), namespace: "cryo-bench", attempt: 0 },
    logDirectory: join(logRoot, name),
    linux: { cgroupParent: `/cryo-bench-probes`, securityContext: { namespaceOptions: hostNetwork } },
  });
  const { podSandboxId } = await cri.runtime.runPodSandbox({ config: sandboxConfig, runtimeHandler: handler }, { timeoutMs: 120_000 });
  const { containerId } = await cri.runtime.createContainer(
    {
      podSandboxId,
      sandboxConfig,
      config: {
        metadata: { name: "app", attempt: 0 },
        image: { image: testImage },
        command: ["sh", "-c", "trap 'exit 0' TERM; echo ok > /tmp/ok; while true; do sleep 0.2; done"],
        logPath: "app.log",
        linux: { securityContext: { namespaceOptions: hostNetwork } },
      },
    },
    { timeoutMs: 120_000 },
  );
  await cri.runtime.startContainer({ containerId }, { timeoutMs: 120_000 });
  const status = await cri.runtime.containerStatus({ containerId, verbose: true });
  const pid = (JSON.parse(status.info.info ?? "{}") as { pid: number }).pid;
  return { podSandboxId, containerId, pid };
}

/** Outcomes and latencies of one kind of call. */
class Tally {
  readonly ms: number[] = [];
  readonly outcomes = new Map<string, number>();
  add(ms: number, outcome: string): void {
    this.ms.push(ms);
    this.outcomes.set(outcome, (this.outcomes.get(outcome) ?? 0) + 1);
  }
  print(name: string): void {
    console.log(row(name, this.ms));
    for (const [o, n] of this.outcomes) console.log(`    ${String(n).padStart(4)} x ${o}`);
  }
}

async function timed(tally: Tally, call: () => Promise<string>): Promise<void> {
  const t0 = performance.now();
  let outcome: string;
  try {
    outcome = await call();
  } catch (err) {
    outcome = `error: ${String((err as Error).message).replace(/[0-9a-f]{64}/g, "<id>")}`;
  }
  tally.add(performance.now() - t0, outcome);
}

async function loop(until: number, intervalMs: number, body: () => Promise<void>): Promise<void> {
  while (performance.now() < until) {
    const t0 = performance.now();
    await body();
    const rest = intervalMs - (performance.now() - t0);
    if (rest > 0) await Bun.sleep(rest);
  }
}

function fds(pid: number): number {
  try {
    return readdirSync(`/proc/${pid}/fd`).length;
  } catch {
    return -1;
  }
}

/** Processes in the container's cgroup (v1 pids hierarchy, or v2) besides its init. */
function extraProcesses(pod: Pod): string[] {
  const dir = cgroupDirs(pod.pid).find((d) => d.endsWith(`/${pod.containerId}`) && (d.startsWith("/sys/fs/cgroup/pids/") || !d.startsWith("/sys/fs/cgroup/cpu")));
  if (dir === undefined) return ["<no cgroup>"];
  const pids = readFileSync(join(dir, "cgroup.procs"), "utf8").split("\n").filter((l) => l !== "").map(Number);
  return pids.filter((p) => p !== pod.pid).map((p) => {
    try {
      return readFileSync(`/proc/${p}/cmdline`, "utf8").replaceAll("\0", " ").trim() || `[${p}]`;
    } catch {
      return `[${p} gone]`;
    }
  });
}

async function bench(handler: string): Promise<void> {
  const logRoot = mkdtempSync(join(tmpdir(), "cryo-bench-probes-"));
  const env: Record<string, string> = GROUPING === "per-pod" ? {} : { CRYO_SHIM_GROUPING: GROUPING };
  const pc = await startPrivateContainerd({ sandboxImage: criPauseImage, env });
  const cri = connectCri(pc.address);
  try {
    await ensureCriImages(pc, cri);
    const pods: Pod[] = [];
    for (let i = 0; i < PODS; i++) pods.push(await runPod(cri, handler, logRoot, `p${i}`));
    const quiet = FLOOD > 0 ? await runPod(cri, handler, logRoot, "quiet") : undefined;
    const flooded = FLOOD > 0 ? await runPod(cri, handler, logRoot, "flooded") : undefined;
    const shimFds = () => shimProcesses(SHIMS[handler]!, pc.address).map((s) => fds(s.pid));
    const fdsBefore = shimFds();

    const fast = new Tally();
    const slow = new Tally();
    const floodCalls = new Tally();
    const quietExec = new Tally();
    const quietStatus = new Tally();
    const until = performance.now() + SECONDS * 1000;
    const execSync = (containerId: string, cmd: string[], timeout: bigint) => async () => {
      const r = await cri.runtime.execSync({ containerId, cmd, timeout }, { timeoutMs: 60_000 });
      return `exit ${r.exitCode}${r.exitCode !== 0 ? ` (${new TextDecoder().decode(r.stderr).trim()})` : ""}`;
    };
    const jobs: Promise<void>[] = [];
    pods.forEach((pod, i) => {
      jobs.push(loop(until, INTERVAL, () => timed(fast, execSync(pod.containerId, ["cat", "/tmp/ok"], 1n))));
      if (i % 2 === 0) jobs.push(loop(until, 1000, () => timed(slow, execSync(pod.containerId, ["sh", "-c", "sleep 2; echo slow"], 1n))));
    });
    if (flooded !== undefined && quiet !== undefined) {
      for (let i = 0; i < FLOOD; i++) jobs.push(loop(until, 0, () => timed(floodCalls, execSync(flooded.containerId, ["true"], 10n))));
      jobs.push(loop(until, 100, () => timed(quietExec, execSync(quiet.containerId, ["true"], 10n))));
      jobs.push(
        loop(until, 50, () =>
          timed(quietStatus, async () => {
            await cri.runtime.containerStatus({ containerId: quiet.containerId });
            return "ok";
          }),
        ),
      );
    }
    await Promise.all(jobs);
    await Bun.sleep(3000);

    console.log(`\n== handler ${handler}, grouping ${GROUPING}, ${PODS} pods, ${SECONDS} s, fast probe every ${INTERVAL} ms, load ${readFileSync("/proc/loadavg", "utf8").split(" ").slice(0, 3).join(" ")}`);
    fast.print("fast probe (cat, 1 s)");
    slow.print("slow probe (sleep 2, 1 s)");
    if (FLOOD > 0) {
      floodCalls.print(`flood (${FLOOD} callers, true)`);
      quietExec.print("quiet pod ExecSync");
      quietStatus.print("quiet pod ContainerStatus");
    }
    for (const pod of [...pods, ...(quiet ? [quiet] : []), ...(flooded ? [flooded] : [])]) {
      const ps = await pc.ctrOk(["task", "ps", pod.containerId], { namespace: criNamespace });
      const execLines = ps.split("\n").slice(1).filter((l) => l.trim() !== "" && !l.trim().startsWith(String(pod.pid)));
      console.log(`  ${pod.containerId.slice(0, 12)}: extra processes ${JSON.stringify(extraProcesses(pod))}; task ps besides init: ${JSON.stringify(execLines.map((l) => l.trim().replace(/\s+/g, " ")))}`);
    }
    console.log(`  shim fds before ${JSON.stringify(fdsBefore)} after ${JSON.stringify(shimFds())}`);
  } finally {
    await removeAllPods(cri);
    cri.close();
    await pc.stop();
    rmSync(logRoot, { recursive: true, force: true });
    removeCgroupParent("cryo-bench-probes"); // the pods' cgroup parent, which runc made (empty once the pods are gone)
  }
}

for (const handler of HANDLERS) await bench(handler);
