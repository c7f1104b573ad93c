// Chaos run (not a test): seeded rounds of what a kubelet sends to containerd's CRI plugin, against one private
// containerd with both RuntimeClass handlers (cryo -> io.containerd.cryo.v2, runc -> io.containerd.runc.v2), one
// handler per run: run it once with --handler cryo and once with --handler runc on the same seed and compare the two
// records (--compare). Each round's plan is drawn from the seed alone (never from what happened), so both handlers get
// the same calls in the same order: new pods (RunPodSandbox, then CreateContainer/StartContainer of 1-3 containers:
// long-running ones that exit 0 on SIGTERM or ignore it, one that exits on its own with a known code, one limited to
// 32 MiB that fills 128 MiB and is OOM-killed), then per pod, concurrently as the kubelet's pod workers do: ExecSync
// (short; with a timeout that expires; a caller that gives up early), ContainerStatus/ListContainers/ListPodSandbox/
// PodSandboxStatus, ContainerStats/ListContainerStats, UpdateContainerResources, StopContainer (timeout 0 or 1-2 s),
// RemoveContainer, a restart in the same sandbox (the next attempt after the exit), StopPodSandbox+RemovePodSandbox.
// Disruptions (seeded, one per disrupted round): the pod's shim daemon SIGKILLed (found by its -address), a
// container's init or the pod's pause SIGKILLed from outside, containerd SIGTERMed or SIGKILLed and started again on the same
// directories, a CRI call abandoned after a short deadline.
// After each round, once things settle (up to --settle ms): every container CRI lists is in a state its processes
// agree with (RUNNING <=> init alive; EXITED with an exit code and a finish time; READY sandbox <=> pause alive),
// ContainerStats answers for every running one, and a container no disruption reached ends as planned (exit code K;
// 137 and OOMKilled; 0 after a SIGTERM it traps; 137 after a SIGKILL from outside or a stop with timeout 0). At the
// end of each phase, every pod removed: no sandbox or container listed, no shim daemon of this containerd, no process
// in the pods' cgroup parent, no mount naming the containerd's directory or an id of the run, no cgroup left in any
// hierarchy, no runc state of the run's ids, no /run/cryo/s file of this run's daemons. The slowest call of each
// method is printed; a call past --bound ms is a failure.
// Run as root: node_modules/.bin/bun bench/cri-chaos.ts --handler cryo|runc --seed N [--rounds 20] [--phases per-pod]
//   [--disrupt shim,init,pause,ctrd-term,ctrd-kill,abandon] [--prefix cri-chaos] [--log-dir DIR] [--settle 20000] [--bound 60000]
//   node_modules/.bin/bun bench/cri-chaos.ts --compare A.json B.json   (the records both runs wrote beside their logs)
// CHAOS_DISRUPT_P (0.4) sets how often a round is disrupted; CHAOS_VERBOSE=1 prints the log; --phases names
// CRYO_SHIM_GROUPING values, one phase each (runc's shim ignores them). Exits 1 when an invariant failed.
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { create } from "@bufbuild/protobuf";
import { ContainerState, NamespaceMode, PodSandboxConfigSchema, PodSandboxState, type PodSandboxConfig } from "../src/gen/k8s/runtime/v1/api_pb.ts";
import { Code, CryoError, codeName } from "../src/errors.ts";
import {
  connectCri,
  criPauseImage,
  ensureCriImages,
  removeCgroupParent,
  shimProcesses,
  startPrivateContainerd,
  testImage,
  waitFor,
  type CriClient,
  type PrivateContainerd,
} from "../test/harness/index.ts";
import { callTimes, cgroupsLeft, chaosArgs, chaosLog, cryoSocketFilesLeft, killContainerd, procState, stopPhaseContainerd, processesInCgroup, runcStateLeft, seeded, sleep, snapshotDir } from "./chaos-common.ts";

const argv = process.argv.slice(2);
if (argv[0] === "--compare") {
  compare(argv[1]!, argv[2]!);
  process.exit(0);
}

const { SEED, ROUNDS, PHASES, DISRUPT, PREFIX, arg } = chaosArgs({ rounds: "20", disrupt: "shim,init,pause,ctrd-term,ctrd-kill,abandon", prefix: "cri-chaos", phases: "per-pod" });
const HANDLER = arg("--handler", "cryo");
if (HANDLER !== "cryo" && HANDLER !== "runc") throw new Error(`--handler cryo|runc, not ${HANDLER}`);
const SHIM = HANDLER === "cryo" ? "containerd-shim-cryo-v2" : "containerd-shim-runc-v2";
const SETTLE_MS = Number(arg("--settle", "20000"));
const BOUND_MS = Number(arg("--bound", "60000"));
const DISRUPT_P = Number(process.env.CHAOS_DISRUPT_P ?? "0.4");
const TAG = `${PREFIX}-${HANDLER}-${SEED}`;
const LOG = arg("--log", join(arg("--log-dir", tmpdir()), `${TAG}.log`));
const RECORD = LOG.replace(/\.log$/, ".json");
/** The containerd's directory (short: its ttrpc socket path must fit in 108 bytes). */
const DIR = join(tmpdir(), `${TAG}-ctd`);
/** Every pod's cgroup parent (one directory per hierarchy, removed at the end): what is left under it is the run's. */
const CGROUP_PARENT = TAG;
const LOGROOT = join(tmpdir(), `${TAG}-logs`);
const { log, fail, failures, counts, count, saveCtrdLog } = chaosLog(LOG, SEED, DIR);
const times = callTimes(BOUND_MS);
const hostNetwork = { network: NamespaceMode.NODE, pid: NamespaceMode.CONTAINER, ipc: NamespaceMode.POD };

// ---------- the plan: drawn from the seed only ----------
type Kind = "trap" | "stubborn" | "exit" | "oom";
type OpKind = "exec" | "exec-timeout" | "exec-giveup" | "status" | "stats" | "update" | "stop" | "remove" | "restart" | "remove-pod";
interface PlannedOp {
  kind: OpKind;
  /** The container's name in the pod (c0, c1, ...). */
  target?: string;
  /** StopContainer's timeout; ExecSync's exit code. */
  n?: number;
}
interface PlannedPod {
  key: string;
  containers: { name: string; kind: Kind; exit?: number }[];
}
type Disruption = "shim" | "init" | "pause" | "ctrd-term" | "ctrd-kill" | "abandon";
interface RoundPlan {
  newPods: PlannedPod[];
  ops: Map<string, PlannedOp[]>;
  disrupt?: { kind: Disruption; pod: string; container: string; afterMs: number; deadlineMs: number };
}

/** What the plan knows of each pod: its containers' names and kinds, and which are (planned) gone. */
const planned = new Map<string, { containers: Map<string, { kind: Kind; exit?: number }> }>();
let podSeq = 0;

function planRound(round: number): RoundPlan {
  const { ri, pick, chance } = seeded(SEED * 7919 + round * 104729 + 17);
  const plan: RoundPlan = { newPods: [], ops: new Map() };
  const want = planned.size === 0 ? 1 + ri(2) : planned.size < 3 && chance(0.5) ? 1 : 0;
  for (let i = 0; i < want; i++) {
    const key = `p${++podSeq}`;
    const n = 1 + ri(3);
    const containers: PlannedPod["containers"] = [];
    for (let j = 0; j < n; j++) {
      const kind = pick(["trap", "trap", "stubborn", "exit", "oom"] as const);
      containers.push({ name: `c${j}`, kind, ...(kind === "exit" ? { exit: 1 + ri(9) } : {}) });
    }
    plan.newPods.push({ key, containers });
    planned.set(key, { containers: new Map(containers.map((c) => [c.name, { kind: c.kind, exit: c.exit }])) });
  }
  for (const [key, pod] of planned) {
    const ops: PlannedOp[] = [];
    const names = [...pod.containers.keys()];
    for (let i = 0, n = 1 + ri(4); i < n && names.length > 0; i++) {
      const kind = pick(["exec", "exec", "exec-timeout", "exec-giveup", "status", "status", "stats", "update", "stop", "stop", "remove", "restart", "restart", "remove-pod"] as const);
      if (kind === "remove-pod") {
        if (plan.newPods.some((p) => p.key === key) || !chance(0.5)) continue;
        ops.push({ kind });
        planned.delete(key);
        break;
      }
      const target = pick(names);
      ops.push({ kind, target, n: kind === "stop" ? pick([0, 0, 1, 2]) : kind === "exec" ? ri(4) : undefined });
    }
    plan.ops.set(key, ops);
  }
  if (chance(DISRUPT_P) && DISRUPT.length > 0) {
    const keys = [...plan.ops.keys()];
    const pod = keys.length > 0 ? pick(keys) : (plan.newPods[0]?.key ?? "p1");
    const names = [...(planned.get(pod)?.containers.keys() ?? ["c0"])];
    plan.disrupt = { kind: pick(DISRUPT) as Disruption, pod, container: pick(names), afterMs: ri(1500), deadlineMs: 5 + ri(300) };
  }
  return plan;
}

// ---------- what is there: the model the invariants check ----------
interface Ctr {
  name: string;
  kind: Kind;
  attempt: number;
  id?: string;
  /** The exit status (or `or`, the other outcome of a race the run does not decide) and reason it must end with. */
  want?: { exit: number; or?: number; reason?: string };
  /** When StartContainer answered (performance.now()). */
  startedAt?: number;
  /** Its init was SIGKILLed from outside (the init disruption): the kernel ends every exec in its PID namespace. */
  initKilled?: boolean;
  /** A disruption reached it (or a call about it failed): its end is not predicted. */
  disturbed?: boolean;
}
interface Pod {
  key: string;
  id?: string;
  config: PodSandboxConfig;
  containers: Map<string, Ctr>;
  /** Earlier attempts still listed (the kubelet keeps the last one or two). */
  old: Ctr[];
  disturbed?: boolean;
  removed?: boolean;
}
const pods = new Map<string, Pod>();
/** Every sandbox and container id of the run (for leftover mounts and runc state). */
const ids = new Set<string>();
let pc: PrivateContainerd;
let cri: CriClient;
let ctrdDown = false;
/** One line per outcome, per round, without ids: what --compare compares between handlers. */
const record: { round: number; disrupt?: string; lines: string[] }[] = [];
let current: { round: number; disrupt?: string; lines: string[] };
const note = (s: string) => current.lines.push(s);

function codeOf(err: unknown): string {
  return err instanceof CryoError ? codeName(err.code) : "THROWN";
}

/** One CRI call through the current client, timed; rejects with the call's CryoError. */
async function call<T>(method: string, what: string, f: (c: CriClient) => Promise<T>): Promise<T> {
  if (ctrdDown) await waitFor(() => !ctrdDown, { timeoutMs: 60_000 }).catch(() => {});
  const t0 = performance.now();
  try {
    return await f(cri);
  } finally {
    times.add(method, performance.now() - t0, what);
  }
}

/** A call whose outcome goes into the record as `label: ok|CODE`; returns the result or undefined. */
async function outcome<T>(label: string, method: string, f: (c: CriClient) => Promise<T>, o: { timeoutMs?: number } = {}): Promise<T | undefined> {
  try {
    const r = await call(method, label, f);
    note(`${label}: ok`);
    log(`${label}: ok`);
    return r;
  } catch (err) {
    note(`${label}: ${codeOf(err)}`);
    log(`${label}: ${codeOf(err)} ${String((err as Error).message).slice(0, 300)}`);
    // the client's own deadline (grpc.ts: "no answer within"), not containerd's answer DEADLINE_EXCEEDED to an
    // ExecSync whose timeout expired
    if (o.timeoutMs === undefined && /no answer within/.test(String((err as Error).message))) fail(`${label}: no answer within the client's bound: ${(err as Error).message}`);
    return undefined;
  }
}

function containerCommand(kind: Kind, exit?: number): string[] {
  if (kind === "trap") return ["sh", "-c", "trap 'exit 0' TERM; while true; do sleep 0.2; done"];
  // sh as PID 1 ignores a SIGTERM it has no trap for: a stop with a timeout ends in SIGKILL
  if (kind === "stubborn") return ["sh", "-c", "while true; do sleep 0.2; done"];
  if (kind === "exit") return ["sh", "-c", `sleep 1; exit ${exit}`];
  return ["/bin/memhog", "128", "/tmp/counter"];
}

async function createContainer(pod: Pod, c: Ctr, timeoutMs?: number): Promise<void> {
  const label = `${pod.key}/${c.name}#${c.attempt}`;
  const created = await outcome(`create ${label}`, "CreateContainer", (k) =>
    k.runtime.createContainer(
      {
        podSandboxId: pod.id!,
        sandboxConfig: pod.config,
        config: {
          metadata: { name: c.name, attempt: c.attempt },
          image: { image: testImage },
          command: containerCommand(c.kind, planned.get(pod.key)?.containers.get(c.name)?.exit ?? c.want?.exit),
          logPath: `${c.name}-${c.attempt}.log`,
          labels: { "h43b/kind": c.kind },
          linux: { ...(c.kind === "oom" ? { resources: { memoryLimitInBytes: 32n << 20n } } : {}), securityContext: { namespaceOptions: hostNetwork } },
        },
      },
      { timeoutMs: timeoutMs ?? 120_000 },
    ),
    { timeoutMs },
  );
  if (created === undefined) {
    c.disturbed = true;
    // an abandoned create may still have made it: the kubelet lists and removes it later; the run does at the check
    return;
  }
  c.id = created.containerId;
  ids.add(c.id);
  const started = await outcome(`start ${label}`, "StartContainer", (k) => k.runtime.startContainer({ containerId: c.id! }, { timeoutMs: timeoutMs ?? 120_000 }), { timeoutMs });
  if (started === undefined) c.disturbed = true;
  c.startedAt = performance.now();
  if (c.kind === "exit") c.want = { exit: planned.get(pod.key)?.containers.get(c.name)?.exit ?? -1 };
  if (c.kind === "oom") c.want = { exit: 137, reason: "OOMKilled" };
}

async function runPod(p: PlannedPod): Promise<void> {
  const name = `${TAG}-${p.key}`;
  const config = create(PodSandboxConfigSchema, {
    metadata: { name, uid: `${TAG}-${p.key}`, namespace: "h43b", attempt: 0 },
    logDirectory: join(LOGROOT, name),
    linux: { cgroupParent: `/${CGROUP_PARENT}`, securityContext: { namespaceOptions: hostNetwork } },
  });
  const pod: Pod = { key: p.key, config, containers: new Map(), old: [] };
  pods.set(p.key, pod);
  const r = await outcome(`run-pod ${p.key}`, "RunPodSandbox", (k) => k.runtime.runPodSandbox({ config, runtimeHandler: HANDLER }, { timeoutMs: 120_000 }));
  if (r === undefined) {
    pod.disturbed = true;
    return;
  }
  pod.id = r.podSandboxId;
  ids.add(pod.id);
  for (const c of p.containers) {
    const ctr: Ctr = { name: c.name, kind: c.kind, attempt: 0 };
    pod.containers.set(c.name, ctr);
    await createContainer(pod, ctr);
  }
}

/**
 * What a StopContainer with that timeout ends a container with: an init that had ended keeps its status (an earlier
 * want stays); one that ends on its own (exit, oom) races the stop, so its status is not predicted.
 */
function stopped(c: Ctr, timeout: number): void {
  if (c.kind === "exit" || c.kind === "oom") {
    c.want = undefined;
    return;
  }
  // a SIGTERM that comes before the shell has set its trap is ignored (it is PID 1), and the stop ends in SIGKILL
  const early = c.startedAt === undefined || performance.now() - c.startedAt < 1500;
  c.want ??= timeout === 0 || c.kind === "stubborn" ? { exit: 137 } : { exit: 0, ...(early ? { or: 137 } : {}) };
}

/** Runs one planned op of a pod; `deadline` (ms) abandons its main call that early (the abandon disruption). */
async function runOp(pod: Pod, op: PlannedOp, deadline?: number): Promise<void> {
  if (pod.id === undefined || pod.removed) return;
  const c = op.target !== undefined ? pod.containers.get(op.target) : undefined;
  const label = `${op.kind} ${pod.key}${c ? `/${c.name}#${c.attempt}` : ""}${op.n !== undefined ? ` n=${op.n}` : ""}${deadline !== undefined ? " (abandoned)" : ""}`;
  const o = deadline !== undefined ? { timeoutMs: deadline } : {};
  if (deadline !== undefined) {
    if (c) c.disturbed = true;
    count("abandoned calls");
  }
  if (op.kind === "remove-pod") {
    pod.removed = true;
    await outcome(`${label} stop`, "StopPodSandbox", (k) => k.runtime.stopPodSandbox({ podSandboxId: pod.id! }, { timeoutMs: deadline ?? 120_000 }), o);
    const r = await outcome(`${label} remove`, "RemovePodSandbox", (k) => k.runtime.removePodSandbox({ podSandboxId: pod.id! }, { timeoutMs: 120_000 }));
    if (r !== undefined) pods.delete(pod.key);
    return;
  }
  if (c === undefined) return;
  if (c.id === undefined) {
    // removed (or never made): a restart makes the next attempt, as the kubelet does for a container it still wants
    if (op.kind === "restart") {
      const next: Ctr = { name: c.name, kind: c.kind, attempt: c.attempt + 1 };
      pod.containers.set(c.name, next);
      await createContainer(pod, next, deadline);
    }
    return;
  }
  const containerId = c.id;
  switch (op.kind) {
    case "exec": {
      const r = await outcome(label, "ExecSync", (k) => k.runtime.execSync({ containerId, cmd: ["sh", "-c", `echo out-${op.n}; exit ${op.n}`], timeout: 10n }, { timeoutMs: deadline ?? 60_000 }), o);
      if (r !== undefined) note(`${label} -> exit ${r.exitCode} out ${JSON.stringify(new TextDecoder().decode(r.stdout))}`);
      // in the container that fills its memory, the exec may be the one the OOM killer takes; an init killed under it
      // takes the exec with it
      if (r !== undefined && c.kind !== "oom" && !c.initKilled && (r.exitCode !== op.n || new TextDecoder().decode(r.stdout) !== `out-${op.n}\n`)) fail(`${label}: exit ${r.exitCode} stdout ${JSON.stringify(new TextDecoder().decode(r.stdout))}`);
      break;
    }
    case "exec-timeout":
      // a probe whose command outlives its timeout (1 s)
      await outcome(label, "ExecSync", (k) => k.runtime.execSync({ containerId, cmd: ["sleep", "3"], timeout: 1n }, { timeoutMs: deadline ?? 60_000 }), o);
      break;
    case "exec-giveup":
      // the caller gives up after 300 ms on an exec that would take 3 s
      await outcome(label, "ExecSync", (k) => k.runtime.execSync({ containerId, cmd: ["sleep", "3"], timeout: 30n }, { timeoutMs: deadline ?? 300 }), { timeoutMs: 300 });
      break;
    case "status": {
      const s = await outcome(label, "ContainerStatus", (k) => k.runtime.containerStatus({ containerId }, { timeoutMs: deadline ?? 60_000 }), o);
      if (s !== undefined) note(`${label} -> ${ContainerState[s.status?.state ?? 0]}`);
      await outcome(`${label} list`, "ListContainers", (k) => k.runtime.listContainers({ filter: { podSandboxId: pod.id! } }, { timeoutMs: 60_000 }));
      await outcome(`${label} list-pods`, "ListPodSandbox", (k) => k.runtime.listPodSandbox({}, { timeoutMs: 60_000 }));
      await outcome(`${label} pod-status`, "PodSandboxStatus", (k) => k.runtime.podSandboxStatus({ podSandboxId: pod.id! }, { timeoutMs: 60_000 }));
      break;
    }
    case "stats":
      await outcome(label, "ContainerStats", (k) => k.runtime.containerStats({ containerId }, { timeoutMs: deadline ?? 60_000 }), o);
      await outcome(`${label} list`, "ListContainerStats", (k) => k.runtime.listContainerStats({ filter: { podSandboxId: pod.id! } }, { timeoutMs: 60_000 }));
      break;
    case "update":
      await outcome(label, "UpdateContainerResources", (k) => k.runtime.updateContainerResources({ containerId, linux: { cpuShares: 512n, memoryLimitInBytes: c.kind === "oom" ? 32n << 20n : 256n << 20n } }, { timeoutMs: deadline ?? 60_000 }), o);
      break;
    case "stop": {
      const r = await outcome(label, "StopContainer", (k) => k.runtime.stopContainer({ containerId, timeout: BigInt(op.n!) }, { timeoutMs: deadline ?? 120_000 }), o);
      if (r !== undefined) stopped(c, op.n!);
      break;
    }
    case "remove": {
      const r = await outcome(label, "RemoveContainer", (k) => k.runtime.removeContainer({ containerId }, { timeoutMs: deadline ?? 120_000 }), o);
      if (r !== undefined) c.id = undefined;
      break;
    }
    case "restart": {
      // the kubelet's restart: once the container has exited (it stops a running one first, as for a failed liveness
      // probe), the next attempt in the same sandbox; it keeps the exited one listed for a while
      const s = await outcome(`${label} status`, "ContainerStatus", (k) => k.runtime.containerStatus({ containerId }, { timeoutMs: 60_000 }));
      if (s?.status?.state === ContainerState.CONTAINER_RUNNING || s?.status?.state === ContainerState.CONTAINER_CREATED) {
        const r = await outcome(`${label} stop`, "StopContainer", (k) => k.runtime.stopContainer({ containerId, timeout: 1n }, { timeoutMs: deadline ?? 120_000 }), o);
        if (r !== undefined) stopped(c, 1);
      }
      for (const x of pod.old.splice(0)) {
        if (x.id !== undefined) await outcome(`${label} remove-old`, "RemoveContainer", (k) => k.runtime.removeContainer({ containerId: x.id! }, { timeoutMs: 120_000 }));
      }
      pod.old.push(c);
      const next: Ctr = { name: c.name, kind: c.kind, attempt: c.attempt + 1 };
      pod.containers.set(c.name, next);
      await createContainer(pod, next, deadline);
      break;
    }
  }
}

// ---------- disruptions ----------
async function restartContainerd(sig: "SIGTERM" | "SIGKILL"): Promise<void> {
  ctrdDown = true;
  await killContainerd(pc, sig, log, saveCtrdLog);
  cri.close();
  pc = await startPrivateContainerd({ dir: DIR, sandboxImage: criPauseImage, env: ctrdEnv });
  cri = connectCri(pc.address);
  ctrdDown = false;
  log(`containerd restarted ${pc.pid}`);
}

/** The verbose status's pid of a container or sandbox (0 when not known). */
function infoPid(info: Record<string, string>): number {
  try {
    return (JSON.parse(info.info ?? "{}") as { pid?: number }).pid ?? 0;
  } catch {
    return 0;
  }
}

async function disrupt(d: NonNullable<RoundPlan["disrupt"]>): Promise<void> {
  const pod = pods.get(d.pod);
  count(`disruption ${d.kind}`);
  if (d.kind === "ctrd-term" || d.kind === "ctrd-kill") {
    for (const p of pods.values()) {
      p.disturbed = true;
      for (const c of p.containers.values()) c.disturbed = true;
    }
    return restartContainerd(d.kind === "ctrd-term" ? "SIGTERM" : "SIGKILL");
  }
  if (pod?.id === undefined) return log(`disrupt ${d.kind}: pod ${d.pod} not there`);
  if (d.kind === "pause") {
    // the sandbox's own init: CRI marks the pod NOTREADY, its containers run on (each has its own PID namespace)
    const s = await cri.runtime.podSandboxStatus({ podSandboxId: pod.id, verbose: true }).catch(() => undefined);
    const pid = s ? infoPid(s.info) : 0;
    if (s?.status?.state !== PodSandboxState.SANDBOX_READY || pid <= 0) return log(`disrupt pause: pod ${d.pod} not ready`);
    log(`SIGKILL pause ${pid} of ${d.pod}`);
    pod.disturbed = true;
    try {
      process.kill(pid, "SIGKILL");
    } catch {
      // gone already
    }
    return;
  }
  if (d.kind === "shim") {
    const s = await cri.runtime.podSandboxStatus({ podSandboxId: pod.id, verbose: true }).catch(() => undefined);
    const pausePid = s ? infoPid(s.info) : 0;
    const daemons = shimProcesses(SHIM, pc.address);
    // the pod's daemon: the pause's parent
    const ppid = pausePid > 0 ? parentOf(pausePid) : 0;
    const daemon = daemons.find((x) => x.pid === ppid);
    if (daemon === undefined) return log(`disrupt shim: no daemon of pod ${d.pod} (pause ${pausePid}, parent ${ppid})`);
    log(`SIGKILL shim ${daemon.pid} of ${d.pod}`);
    // every pod the daemon served (one, unless the grouping puts more in one daemon)
    for (const p of pods.values()) {
      p.disturbed = true;
      for (const c of p.containers.values()) c.disturbed = true;
    }
    process.kill(daemon.pid, "SIGKILL");
    return;
  }
  const c = pod.containers.get(d.container);
  if (c?.id === undefined) return log(`disrupt ${d.kind}: container ${d.pod}/${d.container} not there`);
  if (d.kind === "init") {
    const s = await cri.runtime.containerStatus({ containerId: c.id, verbose: true }).catch(() => undefined);
    const pid = s ? infoPid(s.info) : 0;
    if (s?.status?.state !== ContainerState.CONTAINER_RUNNING || pid <= 0) return log(`disrupt init: ${d.pod}/${d.container} not running`);
    log(`SIGKILL init ${pid} of ${d.pod}/${d.container}`);
    c.initKilled = true;
    try {
      process.kill(pid, "SIGKILL");
    } catch {
      return;
    }
    // one that ends on its own races the kill; one stopped before keeps its status
    if (c.kind === "exit" || c.kind === "oom") c.want = undefined;
    else c.want ??= { exit: 137, reason: "Error" };
  }
}

// ---------- invariants ----------
/**
 * What is inconsistent now (empty when every listed container and sandbox agrees with its processes and every
 * container no disruption reached has ended as planned), and the states seen (for the record).
 */
async function inconsistencies(): Promise<{ bad: string[]; seen: string[]; pending: number }> {
  const bad: string[] = [];
  const seen: string[] = [];
  /** Containers that end on their own, started less than 3 s ago and still running: waited for, not failed. */
  let pending = 0;
  const list = await call("ListContainers", "check", (k) => k.runtime.listContainers({}, { timeoutMs: 60_000 }));
  const byId = new Map<string, { pod: Pod; c: Ctr }>();
  for (const pod of pods.values()) for (const c of [...pod.containers.values(), ...pod.old]) if (c.id !== undefined) byId.set(c.id, { pod, c });
  for (const item of list.containers) {
    const s = await call("ContainerStatus", "check", (k) => k.runtime.containerStatus({ containerId: item.id, verbose: true }, { timeoutMs: 60_000 })).catch((err: unknown) => err as Error);
    if (s instanceof Error) {
      if (!(s instanceof CryoError && s.code === Code.NOT_FOUND)) bad.push(`status ${item.id}: ${s.message}`);
      continue;
    }
    const st = s.status!;
    const pid = infoPid(s.info);
    const known = byId.get(item.id);
    const name = known ? `${known.pod.key}/${known.c.name}#${known.c.attempt}` : `${item.metadata?.name}#${item.metadata?.attempt} (${item.id.slice(0, 12)})`;
    const alive = pid > 0 && procState(pid) !== undefined && procState(pid) !== "Z" && inOurCgroup(pid);
    if (st.state === ContainerState.CONTAINER_RUNNING) {
      if (!alive) bad.push(`${name} RUNNING but init ${pid} is ${procState(pid) ?? "gone"}`);
      else {
        const stats = await call("ContainerStats", "check", (k) => k.runtime.containerStats({ containerId: item.id }, { timeoutMs: 60_000 })).catch((err: unknown) => err as Error);
        if (stats instanceof Error) bad.push(`${name} RUNNING but ContainerStats: ${stats.message}`);
      }
    } else if (st.state === ContainerState.CONTAINER_EXITED) {
      if (alive) bad.push(`${name} EXITED but init ${pid} is alive (${procState(pid)})`);
      if (st.finishedAt === 0n) bad.push(`${name} EXITED without a finish time`);
      const c = known?.c;
      if (c?.want !== undefined && !c.disturbed && !known!.pod.disturbed) {
        if ((st.exitCode !== c.want.exit && st.exitCode !== c.want.or) || (c.want.reason !== undefined && st.reason !== c.want.reason)) bad.push(`${name} EXITED ${st.exitCode} ${st.reason}, want ${c.want.exit}${c.want.or !== undefined ? ` or ${c.want.or}` : ""} ${c.want.reason ?? ""}`);
      }
    } else if (st.state === ContainerState.CONTAINER_UNKNOWN) {
      bad.push(`${name} UNKNOWN`);
    }
    if (known) seen.push(`check ${name}: ${ContainerState[st.state]}${st.state === ContainerState.CONTAINER_EXITED ? ` ${st.exitCode} ${st.reason}` : ""}`);
    // a container that must end on its own (or was ended) but is still running
    const c = known?.c;
    if (c !== undefined && (c.kind === "exit" || c.kind === "oom") && st.state === ContainerState.CONTAINER_RUNNING && performance.now() - (c.startedAt ?? 0) < 3000) pending++;
    if (c?.want !== undefined && !c.disturbed && !known!.pod.disturbed && st.state === ContainerState.CONTAINER_RUNNING) bad.push(`${name} still RUNNING, want EXITED ${c.want.exit}`);
  }
  const sandboxes = await call("ListPodSandbox", "check", (k) => k.runtime.listPodSandbox({}, { timeoutMs: 60_000 }));
  for (const sb of sandboxes.items) {
    const s = await call("PodSandboxStatus", "check", (k) => k.runtime.podSandboxStatus({ podSandboxId: sb.id, verbose: true }, { timeoutMs: 60_000 })).catch((err: unknown) => err as Error);
    if (s instanceof Error) {
      if (!(s instanceof CryoError && s.code === Code.NOT_FOUND)) bad.push(`pod status ${sb.id}: ${s.message}`);
      continue;
    }
    const pid = infoPid(s.info);
    const alive = pid > 0 && procState(pid) !== undefined && procState(pid) !== "Z" && inOurCgroup(pid);
    const key = [...pods.values()].find((p) => p.id === sb.id)?.key ?? sb.metadata?.name;
    if (s.status?.state === PodSandboxState.SANDBOX_READY && !alive) bad.push(`pod ${key} READY but pause ${pid} is ${procState(pid) ?? "gone"}`);
    if (s.status?.state === PodSandboxState.SANDBOX_NOTREADY && alive) bad.push(`pod ${key} NOTREADY but pause ${pid} is alive`);
    seen.push(`check pod ${key}: ${PodSandboxState[s.status?.state ?? 0]}`);
  }
  return { bad, seen, pending };
}

function parentOf(pid: number): number {
  try {
    return Number(/PPid:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, "utf8"))?.[1] ?? 0);
  } catch {
    return 0;
  }
}

function describeProcess(pid: number): string {
  try {
    const cmd = readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0").join(" ").trim();
    const name = /Name:\s+(\S+)/.exec(readFileSync(`/proc/${pid}/status`, "utf8"))?.[1];
    return `${pid} (${procState(pid)}) ${name} ${cmd}`;
  } catch {
    return `${pid} (gone)`;
  }
}

function inOurCgroup(pid: number): boolean {
  try {
    return readFileSync(`/proc/${pid}/cgroup`, "utf8").includes(`/${CGROUP_PARENT}/`);
  } catch {
    return false;
  }
}

const reported = new Set<string>();

/**
 * Checks the invariants until they hold or --settle ms have passed (exit events take their time: a container that has
 * just died reads RUNNING until containerd has handled its exit); what is still wrong then is a failure.
 */
async function checkRound(where: string): Promise<void> {
  const t0 = Date.now();
  let last: { bad: string[]; seen: string[]; pending: number };
  for (;;) {
    last = await inconsistencies().catch((err: unknown) => ({ bad: [`check: ${(err as Error).message}`], seen: [], pending: 0 }));
    if ((last.bad.length === 0 && last.pending === 0) || Date.now() - t0 > SETTLE_MS) break;
    await sleep(250);
  }
  for (const l of last.seen) note(l);
  for (const b of last.bad) {
    note(`FAIL ${b}`);
    // a container left in a wrong state reads the same at every later round: said once
    if (reported.has(b)) continue;
    reported.add(b);
    fail(`${where}: ${b}`);
  }
}

async function removeEverything(): Promise<void> {
  for (let i = 0; i < 3; i++) {
    const list = await call("ListPodSandbox", "cleanup", (k) => k.runtime.listPodSandbox({}, { timeoutMs: 60_000 })).catch(() => undefined);
    if (list === undefined || list.items.length === 0) break;
    for (const sb of list.items) {
      ids.add(sb.id);
      const key = sb.metadata?.name.replace(`${TAG}-`, "");
      await outcome(`cleanup stop-pod ${key}`, "StopPodSandbox", (k) => k.runtime.stopPodSandbox({ podSandboxId: sb.id }, { timeoutMs: 120_000 }));
      await outcome(`cleanup remove-pod ${key}`, "RemovePodSandbox", (k) => k.runtime.removePodSandbox({ podSandboxId: sb.id }, { timeoutMs: 120_000 }));
    }
  }
  // containers whose sandbox is gone (an abandoned create after its pod's removal) are removed by id
  const left = await call("ListContainers", "cleanup", (k) => k.runtime.listContainers({}, { timeoutMs: 60_000 })).catch(() => undefined);
  for (const c of left?.containers ?? []) {
    ids.add(c.id);
    fail(`cleanup: container ${c.metadata?.name}#${c.metadata?.attempt} listed after every pod was removed`);
    await outcome(`cleanup remove ${c.metadata?.name}`, "RemoveContainer", (k) => k.runtime.removeContainer({ containerId: c.id }, { timeoutMs: 120_000 }));
  }
  pods.clear();
  planned.clear();
}

const baselineCryoS = new Set(snapshotDir("/run/cryo/s"));
/** Socket paths of this run's cryo daemons (their -socket argument). */
const ourSockets = new Set<string>();
function recordSockets(): void {
  for (const d of shimProcesses(SHIM, pc.address)) {
    const i = d.argv.indexOf("-socket");
    if (i >= 0) ourSockets.add(d.argv[i + 1]!);
  }
}

async function checkLeftovers(where: string): Promise<void> {
  const sb = await call("ListPodSandbox", "leftovers", (k) => k.runtime.listPodSandbox({}, { timeoutMs: 60_000 }));
  const cs = await call("ListContainers", "leftovers", (k) => k.runtime.listContainers({}, { timeoutMs: 60_000 }));
  if (sb.items.length) fail(`${where}: sandboxes listed: ${sb.items.map((x) => x.metadata?.name).join(" ")}`);
  if (cs.containers.length) fail(`${where}: containers listed: ${cs.containers.map((x) => x.metadata?.name).join(" ")}`);
  // a daemon that lost its containers without a Shutdown exits on its idle check
  const t0 = Date.now();
  await waitFor(() => shimProcesses(SHIM, pc.address).length === 0, { timeoutMs: 75_000 }).catch(() => {});
  if (Date.now() - t0 > 5000) log(`${where}: shim daemons took ${Date.now() - t0} ms to exit`);
  for (const d of shimProcesses(SHIM, pc.address)) fail(`${where}: shim daemon left: ${d.pid} ${d.argv.join(" ")}`);
  await waitFor(() => processesInCgroup(`/${CGROUP_PARENT}/`).length === 0, { timeoutMs: 10_000 }).catch(() => {});
  for (const pid of processesInCgroup(`/${CGROUP_PARENT}/`)) fail(`${where}: process left in the pods' cgroups: ${describeProcess(pid)}; parent ${describeProcess(parentOf(pid))}`);
  const mounts = readFileSync("/proc/self/mountinfo", "utf8")
    .split("\n")
    .filter((l) => l.includes(DIR) || [...ids].some((id) => l.includes(id)));
  if (mounts.length) fail(`${where}: mounts left: ${mounts.join(" | ")}`);
  for (const f of [...cgroupsLeft(CGROUP_PARENT), ...runcStateLeft("k8s.io", DIR, ids)]) fail(`${where}: ${f}`);
  const { ours } = cryoSocketFilesLeft(baselineCryoS, CGROUP_PARENT, DIR);
  for (const x of ours) fail(`${where}: /run/cryo/s/${x} left`);
  for (const sp of ourSockets) for (const f of [sp, `${sp}.pending`, `${sp}.lock`]) if (existsSync(f)) fail(`${where}: our daemon's file left: ${f}`);
}

// ---------- main ----------
let ctrdEnv: Record<string, string> = {};

async function main(): Promise<void> {
  rmSync(DIR, { recursive: true, force: true });
  mkdirSync(LOGROOT, { recursive: true });
  let round = 0;
  for (const phase of PHASES) {
    ctrdEnv = { CRYO_SHIM_GROUPING: phase };
    if (pc !== undefined) {
      cri.close();
      await stopPhaseContainerd(pc, saveCtrdLog);
    }
    pc = await startPrivateContainerd({ dir: DIR, sandboxImage: criPauseImage, env: ctrdEnv });
    cri = connectCri(pc.address);
    await ensureCriImages(pc, cri);
    log(`=== phase ${phase} handler ${HANDLER} containerd ${pc.pid}`);
    for (let r = 0; r < ROUNDS; r++, round++) {
      const plan = planRound(round);
      current = { round, ...(plan.disrupt ? { disrupt: plan.disrupt.kind } : {}), lines: [] };
      record.push(current);
      count("rounds");
      const opsText = [...plan.ops.entries()].map(([k, ops]) => `${k}: ${ops.map((o) => `${o.kind}${o.target ? ` ${o.target}` : ""}${o.n !== undefined ? ` n=${o.n}` : ""}`).join(", ")}`).join("; ");
      log(`--- round ${round} (${phase}) new ${plan.newPods.map((p) => `${p.key}[${p.containers.map((c) => c.kind).join(",")}]`).join(" ")} ops ${opsText}${plan.disrupt ? ` disrupt ${JSON.stringify(plan.disrupt)}` : ""}`);
      await Promise.all(plan.newPods.map((p) => runPod(p).catch((err: unknown) => fail(`run-pod ${p.key} threw: ${err}`))));
      const abandon = plan.disrupt?.kind === "abandon" ? plan.disrupt : undefined;
      const running = [...plan.ops.entries()].map(async ([key, ops]) => {
        for (const [i, op] of ops.entries()) {
          const pod = pods.get(key);
          if (pod === undefined) return;
          const deadline = abandon?.pod === key && i === 0 ? abandon.deadlineMs : undefined;
          await runOp(pod, op, deadline).catch((err: unknown) => fail(`op ${op.kind} ${key} threw: ${(err as Error)?.stack ?? err}`));
          count("ops");
        }
      });
      if (plan.disrupt && plan.disrupt.kind !== "abandon") {
        const d = plan.disrupt;
        running.push(sleep(d.afterMs).then(() => disrupt(d).catch((err: unknown) => fail(`disrupt ${d.kind} threw: ${err}`))));
      } else if (abandon) count("disruption abandon");
      await Promise.all(running);
      recordSockets();
      await checkRound(`round ${round}`);
      if (failures.length && process.env.CHAOS_STOP_ON_FAIL) break;
    }
    await removeEverything();
    await checkLeftovers(`after phase ${phase}`);
  }
  saveCtrdLog();
  cri.close();
  await pc.stop({ removeDir: true });
  removeCgroupParent(CGROUP_PARENT);
  rmSync(LOGROOT, { recursive: true, force: true });
  writeFileSync(RECORD, JSON.stringify({ handler: HANDLER, seed: SEED, record, failures, counts }, null, 1));
  console.log(`handler=${HANDLER} seed=${SEED} rounds=${counts.rounds ?? 0} ops=${counts.ops ?? 0} failures=${failures.length} ${Object.entries(counts).filter(([k]) => k.startsWith("disruption")).map(([k, v]) => `${k.replace("disruption ", "")}=${v}`).join(" ")}`);
  for (const line of times.report()) console.log(`  ${line}`);
  for (const o of times.over) fail(`past the bound: ${o}`);
  process.exit(failures.length ? 1 : 0);
}

/** Prints, round by round, the record lines one run has and the other has not. */
function compare(a: string, b: string): void {
  const ra = JSON.parse(readFileSync(a, "utf8")) as { handler: string; record: { round: number; disrupt?: string; lines: string[] }[] };
  const rb = JSON.parse(readFileSync(b, "utf8")) as typeof ra;
  let quiet = 0;
  let disrupted = 0;
  for (const x of ra.record) {
    const y = rb.record.find((r) => r.round === x.round);
    if (y === undefined) continue;
    const only = (p: string[], q: string[]) => p.filter((l) => !q.includes(l));
    const da = only(x.lines, y.lines);
    const db = only(y.lines, x.lines);
    if (da.length === 0 && db.length === 0) continue;
    if (x.disrupt) disrupted++;
    else quiet++;
    console.log(`round ${x.round}${x.disrupt ? ` (disrupted: ${x.disrupt})` : ""}`);
    for (const l of da) console.log(`  ${ra.handler} only: ${l}`);
    for (const l of db) console.log(`  ${rb.handler} only: ${l}`);
  }
  console.log(`rounds differing: ${quiet} undisrupted, ${disrupted} disrupted`);
}

main().catch(async (e) => {
  console.log(`handler=${HANDLER} seed=${SEED} CRASH ${e?.stack ?? e}`);
  saveCtrdLog();
  try {
    await removeEverything();
  } catch {}
  try {
    await pc?.stop({ removeDir: true });
  } catch {}
  removeCgroupParent(CGROUP_PARENT);
  process.exit(2);
});
