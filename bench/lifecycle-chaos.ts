// Chaos run (not a test): seeded random lifecycles through ctr against a private containerd with cryo (or, with
// --runtime io.containerd.runc.v2, runc's shim for comparison), phase by phase under each CRYO_SHIM_GROUPING:
// run -d (with and without -t, group and grouping annotations), exec (with and without -t, short, stdin, long-running),
// kill of execs and tasks with several signals (and --all), pause/resume, metrics, ps, task rm / containers rm,
// run --rm with piped stdin; disruptions: ctr SIGKILLed at a random moment, a shim daemon SIGKILLed, containerd
// SIGTERMed or SIGKILLed and restarted on the same directory. After each round: every task ctr lists is in the state
// shown (its init alive or gone, its freezer THAWED or FROZEN) and the exit statuses match (SIGNAL N -> 128+N,
// `exit K` -> K); after each phase, with everything removed: no daemon, process, mount, cgroup, runc state or bundle
// left, and the phase's long-lived daemon holds as many descriptors as at the start. Ops depend on the seed and on
// what happened (a disrupted op's outcome is not predicted), so a timing-dependent failure may need a few runs.
// Run as root: node_modules/.bin/bun bench/lifecycle-chaos.ts --seed N [--rounds 8] [--phases per-pod,per-container,per-namespace]
//   [--disrupt ctr,shim,ctrd-term,ctrd-kill] [--runtime RUNTIME] [--prefix chaos] [--log-dir DIR]; CHAOS_DISRUPT_P (0.35)
// sets how often a round is disrupted, CHAOS_VERBOSE=1 prints the log. Exits 1 when an invariant failed.
import { existsSync, readdirSync, readFileSync, readlinkSync, rmSync, statSync } from "node:fs";
import { startPrivateContainerd, PrivateContainerd, ensureTestImage, testImage, waitFor } from "../test/harness/index.ts";
import { shimDaemonPids } from "../test/harness/shim-daemons.ts";
import { cgroupsLeft, chaosArgs, chaosLog, cryoSocketFilesLeft, freezerState, killContainerd, runcStateLeft, parseTaskList, stopPhaseContainerd, procState, runCtr, seeded, sleep, snapshotDir, type CtrCall, type CtrResult } from "./chaos-common.ts";

const { SEED, ROUNDS, PHASES, RUNTIME, DISRUPT, LOG, NS, DIR } = chaosArgs({ rounds: "6", disrupt: "ctr,shim,ctrd-term,ctrd-kill", prefix: "chaos" });
const { ri, pick, chance } = seeded(SEED);
rmSync(LOG.replace(/\.log$/, "-containerd.log"), { force: true });
const { log, fail, failures, saveCtrdLog } = chaosLog(LOG, SEED, DIR);

type St = "RUNNING" | "PAUSED" | "STOPPED" | "CREATED";
interface Ctr {
  id: string;
  init: "sleep" | "trap" | "exit3";
  tty: boolean;
  certain: boolean;
  state?: St;
  exit?: number;
  execs: Map<string, { p: Promise<Res>; killed?: number; certain: boolean }>;
  /** Its init ends on its own (`sleep 2; exit 3`). */
  selfExit?: boolean;
  /** A disruption reached it: its exit status is not predicted. */
  disturbed?: boolean;
}
const model = new Map<string, Ctr>();
let seq = 0;
let pc: PrivateContainerd;
let env: Record<string, string> = {};
/** Set while containerd is being disrupted in this round: replies of that round may fail with it. */
let ctrdDisrupted = false;
let shimDisrupted = false;

type Res = CtrResult;
const inflight = new Set<Bun.Subprocess>();
/** Runs ctr (chaos-common runCtr); killAfter: SIGKILL it after that many ms (a disruption). */
async function ctr(args: string[], o: CtrCall = {}): Promise<Res> {
  const r = await runCtr({ address: pc.address, namespace: NS, fifoDir: pc.layout.fifo, defaultTimeoutMs: 60_000, inflight, log }, args, o);
  log(`ctr ${args.join(" ")} -> ${r.code}${r.killed ? " (killed)" : ""} ${r.err.trim().split("\n").pop()?.slice(0, 200) ?? ""}`);
  return r;
}

/** ctr 1.6's task rm exits 0 and warns "task X exit with non-zero exit code N". */
const rmExit = (r: Res) => (r.code !== 0 ? -r.code : Number(/exit code (\d+)/.exec(r.err)?.[1] ?? 0));
async function taskList(): Promise<Map<string, { pid: number; status: string }>> {
  return parseTaskList((await ctr(["task", "ls"])).out);
}
async function containerList(): Promise<string[]> {
  const r = await ctr(["containers", "ls", "-q"]);
  return r.out.split("\n").filter((x) => x);
}

const SIG: Record<string, number> = { SIGKILL: 9, SIGTERM: 15, SIGINT: 2, SIGHUP: 1, SIGUSR1: 10, SIGQUIT: 3 };

function initCmd(kind: Ctr["init"]): string[] {
  if (kind === "sleep") return ["sleep", "100000"];
  if (kind === "trap") return ["sh", "-c", "trap 'exit 5' TERM; while true; do sleep 0.2; done"];
  return ["sh", "-c", "sleep 2; exit 3"];
}

// ---------- operations ----------
type Op = { name: string; target?: string; run: (killAfter?: number) => Promise<void> };

function uncertain(id: string, why: string) {
  const c = model.get(id);
  if (c) c.disturbed = true;
  if (c && c.certain) {
    c.certain = false;
    log(`uncertain ${id}: ${why}`);
  }
}
const live = (st?: St) => st === "RUNNING" || st === "PAUSED";

function opRunD(): Op {
  const id = `c${SEED}-${++seq}`;
  const tty = chance(0.3);
  const init: Ctr["init"] = pick(["sleep", "sleep", "trap", "exit3"] as const);
  const ann: string[] = [];
  if (chance(0.6)) ann.push("--annotation", `io.containerd.runc.v2.group=g${ri(3)}`);
  if (chance(0.25)) ann.push("--annotation", `io.cryo.shim.grouping=${pick(["per-pod", "per-container", "per-namespace", "namespace"])}`);
  return {
    name: `run-d ${id}`,
    target: id,
    run: async (killAfter) => {
      const c: Ctr = { id, init, tty, certain: killAfter === undefined, execs: new Map() };
      model.set(id, c);
      const r = await ctr(["run", "-d", ...(tty ? ["-t"] : []), "--runtime", RUNTIME, ...ann, testImage, id, ...initCmd(init)], { killAfter, tty });
      if (r.killed) return uncertain(id, "ctr killed");
      if (r.code !== 0) {
        if (c.certain && !ctrdDisrupted && !shimDisrupted) fail(`run -d ${id} exit ${r.code}: ${r.err.trim()} ${r.out.trim()}`);
        uncertain(id, "run -d failed");
        return;
      }
      c.state = "RUNNING";
      if (init === "exit3") {
        c.exit = 3;
        c.state = undefined; // it stops on its own; checked at rm
        c.certain = false;
        c.selfExit = true;
      }
    },
  };
}

function opExec(): Op | undefined {
  const cs = [...model.values()].filter((c) => c.certain && c.state === "RUNNING");
  if (cs.length === 0) return undefined;
  const c = pick(cs);
  const eid = `e${++seq}`;
  const kind = pick(["exit", "echo", "long", "long", "stdin"] as const);
  const tty = chance(0.3) && kind !== "stdin";
  return {
    name: `exec ${kind} ${c.id}/${eid}${tty ? " -t" : ""}`,
    target: c.id,
    run: async (killAfter) => {
      const k = ri(7) + 1;
      const args = ["task", "exec", ...(tty ? ["-t"] : []), "--exec-id", eid, c.id];
      if (kind === "exit") {
        const r = await ctr([...args, "sh", "-c", `exit ${k}`], { killAfter, tty });
        if (!r.killed && c.certain && r.code !== k) fail(`exec ${c.id}/${eid} 'exit ${k}' -> ${r.code}: ${r.err.trim()}`);
      } else if (kind === "echo") {
        const r = await ctr([...args, "echo", `hello-${eid}`], { killAfter, tty });
        if (!r.killed && c.certain && (r.code !== 0 || !r.out.includes(`hello-${eid}`))) fail(`exec echo ${c.id}/${eid} -> ${r.code} out=${JSON.stringify(r.out)} ${r.err.trim()}`);
      } else if (kind === "stdin") {
        const r = await ctr(["task", "exec", "--exec-id", eid, c.id, "sh", "-c", `head -n 1; exit ${k}`], { killAfter, stdin: `data-${eid}\n` });
        if (!r.killed && c.certain && (r.code !== k || r.out !== `data-${eid}\n`)) fail(`exec stdin ${c.id}/${eid} -> ${r.code} out=${JSON.stringify(r.out)} ${r.err.trim()}`);
      } else {
        // long-running: left in the background, killed later by opKillExec or with its container
        const p = ctr([...args, "sleep", "100000"], { killAfter, tty, timeoutMs: 600_000 });
        c.execs.set(eid, { p, certain: killAfter === undefined });
        await sleep(300);
      }
    },
  };
}

function opKillExec(): Op | undefined {
  const cs = [...model.values()].filter((c) => c.certain && c.state === "RUNNING" && [...c.execs.values()].some((e) => e.killed === undefined));
  if (cs.length === 0) return undefined;
  const c = pick(cs);
  const [eid, e] = pick([...c.execs.entries()].filter(([, e]) => e.killed === undefined));
  const sig = pick(["SIGTERM", "SIGKILL", "SIGINT", "SIGHUP", "SIGUSR1"]);
  return {
    name: `kill-exec ${c.id}/${eid} ${sig}`,
    target: c.id,
    run: async (killAfter) => {
      e.killed = SIG[sig];
      const r = await ctr(["task", "kill", "--exec-id", eid, "-s", sig, c.id], { killAfter });
      if (r.killed) return uncertain(c.id, "ctr kill-exec killed");
      if (r.code !== 0) {
        if (c.certain && e.certain) fail(`kill exec ${c.id}/${eid}: ${r.code} ${r.err.trim()}`);
        return;
      }
      const res = await Promise.race([e.p, sleep(15000).then(() => undefined)]);
      if (res === undefined) return fail(`exec ${c.id}/${eid} not ended 15 s after ${sig}`);
      // with a tty the exec's sleep is behind a terminal; the code is still 128+N
      if (c.certain && e.certain && !res.killed && res.code !== 128 + SIG[sig]!) fail(`exec ${c.id}/${eid} killed by ${sig}: ctr exit ${res.code} (want ${128 + SIG[sig]!}) ${res.err.trim()}`);
      c.execs.delete(eid);
    },
  };
}

function opPause(): Op | undefined {
  const cs = [...model.values()].filter((c) => c.certain && (c.state === "RUNNING" || c.state === "PAUSED"));
  if (cs.length === 0) return undefined;
  const c = pick(cs);
  const verb = c.state === "RUNNING" ? "pause" : "resume";
  return {
    name: `${verb} ${c.id}`,
    target: c.id,
    run: async (killAfter) => {
      const r = await ctr(["task", verb, c.id], { killAfter });
      if (r.killed) return uncertain(c.id, `ctr ${verb} killed`);
      if (r.code !== 0) return c.certain ? fail(`${verb} ${c.id}: ${r.code} ${r.err.trim()}`) : undefined;
      c.state = verb === "pause" ? "PAUSED" : "RUNNING";
    },
  };
}

function opKill(): Op | undefined {
  const cs = [...model.values()].filter((c) => c.certain && c.state === "RUNNING");
  if (cs.length === 0) return undefined;
  const c = pick(cs);
  const all = chance(0.3);
  const sig = c.init === "trap" ? pick(["SIGTERM", "SIGKILL"]) : pick(["SIGKILL", "SIGKILL", "SIGTERM", "SIGHUP"]);
  return {
    name: `kill ${all ? "--all " : ""}${sig} ${c.id}`,
    target: c.id,
    run: async (killAfter) => {
      const r = await ctr(["task", "kill", ...(all ? ["--all"] : []), "-s", sig, c.id], { killAfter });
      if (r.killed) return uncertain(c.id, "ctr kill killed");
      if (r.code !== 0) return c.certain ? fail(`kill ${c.id}: ${r.code} ${r.err.trim()}`) : undefined;
      if (sig === "SIGKILL") {
        c.state = "STOPPED";
        c.exit = 137;
      } else if (c.init === "trap" && sig === "SIGTERM") {
        // the shell runs its trap once the current `sleep 0.2` is over
        await waitFor(async () => (await taskList()).get(c.id)?.status !== "RUNNING", { timeoutMs: 5000 }).catch(() => {});
        c.state = "STOPPED";
        c.exit = 5;
      } else if (all) {
        // --all delivers to every process; sleep (init, SIG_DFL) ignores TERM/HUP from outside its pid ns, but
        // exec'd processes die; keep state
        for (const e of c.execs.values()) e.certain = false;
      }
      if (c.state === "STOPPED") for (const e of c.execs.values()) e.certain = false;
    },
  };
}

function opInfo(): Op | undefined {
  const cs = [...model.values()].filter((c) => c.certain && live(c.state));
  if (cs.length === 0) return undefined;
  const c = pick(cs);
  const what = pick(["metrics", "ps"]);
  return {
    name: `${what} ${c.id}`,
    target: c.id,
    run: async (killAfter) => {
      const r = await ctr(["task", what, c.id], { killAfter });
      if (!r.killed && c.certain && r.code !== 0) fail(`${what} ${c.id}: ${r.code} ${r.err.trim()}`);
    },
  };
}

function opRm(): Op | undefined {
  const cs = [...model.values()].filter((c) => c.state === "STOPPED" || c.selfExit || !c.certain);
  if (cs.length === 0) return undefined;
  const c = pick(cs);
  return {
    name: `rm ${c.id}`,
    target: c.id,
    run: async (killAfter) => {
      if (c.init === "exit3") {
        // wait for it to have stopped on its own
        await waitFor(async () => (await taskList()).get(c.id)?.status !== "RUNNING", { timeoutMs: 15000 }).catch(() => {});
      }
      const tl = await taskList();
      const t = tl.get(c.id);
      if (t !== undefined && t.status !== "STOPPED") {
        if (c.certain) fail(`rm ${c.id}: expected STOPPED, ctr task ls says ${t.status}`);
        if (t.status === "PAUSED") await ctr(["task", "resume", c.id]);
        // make it stop
        await ctr(["task", "kill", "-s", "SIGKILL", c.id]);
        await waitFor(async () => (await taskList()).get(c.id)?.status !== "RUNNING", { timeoutMs: 15000 }).catch(() => {});
        c.exit = undefined;
      }
      if (t !== undefined || !c.certain) {
        const r = await ctr(["task", "rm", c.id], { killAfter });
        if (r.killed) return uncertain(c.id, "ctr task rm killed");
        const want = c.exit;
        if (t !== undefined && want !== undefined && (c.certain || c.selfExit) && !ctrdDisrupted && rmExit(r) !== want) fail(`task rm ${c.id}: exit ${rmExit(r)}, want ${want} ${r.err.trim()}`);
      }
      const r2 = await ctr(["containers", "rm", c.id], { killAfter: killAfter === undefined ? undefined : 0 });
      if (r2.killed) return uncertain(c.id, "ctr containers rm killed");
      if (r2.code !== 0 && !/not found/.test(r2.err)) return ctrdDisrupted ? uncertain(c.id, "containers rm failed") : fail(`containers rm ${c.id}: ${r2.code} ${r2.err.trim()}`);
      model.delete(c.id);
    },
  };
}

function opRunRm(): Op {
  const id = `r${SEED}-${++seq}`;
  const k = ri(6);
  const withStdin = chance(0.6);
  const ann = chance(0.5) ? ["--annotation", `io.containerd.runc.v2.group=g${ri(3)}`] : [];
  return {
    name: `run --rm ${id}`,
    run: async (killAfter) => {
      const cmd = withStdin ? ["sh", "-c", `head -n 3; exit ${k}`] : ["sh", "-c", `echo out-${id}; exit ${k}`];
      const r = await ctr(["run", "--rm", "--runtime", RUNTIME, ...ann, testImage, id, ...cmd], { killAfter, stdin: withStdin ? `in-${id}\n`.repeat(3) : undefined });
      if (r.killed || ((ctrdDisrupted || shimDisrupted) && (r.code !== k || /ctr:/.test(r.err)))) {
        model.set(id, { id, init: "sleep", tty: false, certain: false, execs: new Map() });
        return;
      }
      const want = withStdin ? `in-${id}\n`.repeat(3) : `out-${id}\n`;
      if (r.code !== k || r.out !== want) fail(`run --rm ${id}: exit ${r.code} (want ${k}) out=${JSON.stringify(r.out)} ${r.err.trim()}`);
      if (!(await containerList()).includes(id)) return;
      // ctr ignores a failed removal of the container (containerd killed meanwhile)
      if (ctrdDisrupted) model.set(id, { id, init: "sleep", tty: false, certain: false, execs: new Map() });
      else fail(`run --rm ${id}: container still listed`);
    },
  };
}

// ---------- disruptions ----------
async function restartContainerd(sig: "SIGTERM" | "SIGKILL") {
  ctrdDisrupted = true;
  // every ctr attached to an exec loses its connection with containerd
  for (const c of model.values()) for (const e of c.execs.values()) e.certain = false;
  await killContainerd(pc, sig, log, saveCtrdLog);
  pc = await startPrivateContainerd({ dir: DIR, namespace: NS, env });
  log(`containerd restarted ${pc.pid}`);
}

async function killShim() {
  const pids = shimDaemonPids(pc.address);
  if (pids.length === 0) return;
  const p = pick(pids);
  const args = readFileSync(`/proc/${p}/cmdline`, "utf8").split("\0");
  log(`SIGKILL shim ${p} ${args.join(" ")}`);
  shimDisrupted = true;
  process.kill(p, "SIGKILL");
  for (const c of model.values()) {
    uncertain(c.id, `shim ${p} killed`);
    for (const e of c.execs.values()) e.certain = false;
  }
}

// ---------- invariants ----------
async function checkTasks(where: string) {
  const tl = await taskList();
  for (const [id, t] of tl) {
    const c = model.get(id);
    if (t.status === "RUNNING" || t.status === "PAUSED") {
      const ps = procState(t.pid);
      if (ps === undefined || ps === "Z") fail(`${where}: ${id} ${t.status} but pid ${t.pid} is ${ps ?? "gone"}`);
      const fz = freezerState(t.pid);
      if (t.status === "RUNNING" && fz !== undefined && fz !== "THAWED") fail(`${where}: ${id} RUNNING but freezer ${fz}`);
      if (t.status === "PAUSED" && fz !== "FROZEN") fail(`${where}: ${id} PAUSED but freezer ${fz}`);
    } else if (t.status === "STOPPED") {
      const ps = procState(t.pid);
      if (t.pid > 0 && ps !== undefined && ps !== "Z") {
        // pid could be reused; check it is in our namespace's cgroup
        const cg = (() => { try { return readFileSync(`/proc/${t.pid}/cgroup`, "utf8"); } catch { return ""; } })();
        if (cg.includes(`/${NS}/`)) fail(`${where}: ${id} STOPPED but pid ${t.pid} alive (${ps})`);
      }
    } else if (t.status !== "CREATED") {
      fail(`${where}: ${id} status ${t.status}`);
    }
    if (c && c.certain && c.state !== undefined && c.state !== t.status) fail(`${where}: ${id} model ${c.state} but ctr says ${t.status}`);
  }
  for (const c of model.values()) {
    if (c.certain && live(c.state) && !tl.has(c.id)) fail(`${where}: ${c.id} model ${c.state} but not in ctr task ls`);
    // resync uncertain ones
    if (!c.certain) {
      const t = tl.get(c.id);
      c.state = t?.status as St | undefined;
      c.exit = c.init === "exit3" && !c.disturbed ? 3 : undefined;
      c.selfExit = c.init === "exit3";
      // known again from ctr task ls (its exit status not), unless it is gone
      if (t !== undefined && t.status !== "STOPPED" && c.init !== "exit3") {
        c.certain = true;
        log(`certain again ${c.id}: ${t.status}`);
      }
    }
  }
}

const baseline = { cryoS: new Set(snapshotDir("/run/cryo/s")), tmp: new Set(snapshotDir("/tmp").filter((f) => f.startsWith("cryo-"))) };

async function removeAll(keep?: string) {
  for (const c of model.values()) for (const e of c.execs.values()) e.certain = false;
  for (let i = 0; i < 3; i++) {
    const tl = await taskList();
    if (keep !== undefined) tl.delete(keep);
    for (const [id, t] of tl) {
      if (t.status === "PAUSED") await ctr(["task", "resume", id]);
      if (t.status !== "STOPPED") await ctr(["task", "kill", "--all", "-s", "SIGKILL", id]);
    }
    for (const [id] of tl) {
      await waitFor(async () => (await taskList()).get(id)?.status !== "RUNNING", { timeoutMs: 10000 }).catch(() => {});
      const r = await ctr(["task", "rm", "-f", id]);
      const c = model.get(id);
      if (c && c.certain && c.exit !== undefined && c.state === "STOPPED" && rmExit(r) !== c.exit) fail(`cleanup task rm ${id}: exit ${rmExit(r)}, want ${c.exit}`);
    }
    for (const id of await containerList()) if (id !== keep) await ctr(["containers", "rm", id]);
    if ((await containerList()).filter((x) => x !== keep).length === 0) break;
  }
  for (const id of [...model.keys()]) if (id !== keep) model.delete(id);
  // the background execs' ctrs end when their process does
  await Promise.race([Promise.all([...inflight].map((p) => p.exited)), sleep(15000)]);
  for (const p of inflight) {
    log(`ctr still running after removal: ${p.pid}`);
    p.kill("SIGKILL");
  }
}

async function checkLeftovers(where: string) {
  const ctrs = await containerList();
  if (ctrs.length) fail(`${where}: containers left: ${ctrs.join(" ")}`);
  // shims of this containerd exit once their containers are gone
  // a daemon that lost its containers without a Shutdown exits on its idle check (30 s, + 30 s for a stale marker)
  const t0 = Date.now();
  await waitFor(() => shimDaemonPids(pc.address).length === 0, { timeoutMs: 75000 }).catch(() => {});
  if (Date.now() - t0 > 5000) log(`${where}: shim daemons took ${Date.now() - t0} ms to exit`);
  const shims = shimDaemonPids(pc.address);
  if (shims.length) fail(`${where}: shim daemons left: ${shims.map((p) => `${p}:${readFileSync(`/proc/${p}/cmdline`, "utf8").split("\0").join(" ")}`).join("; ")}`);
  // processes: anything whose cgroup is under our namespace, runc with our root, any process mentioning our ns
  for (const p of readdirSync("/proc").filter((x) => /^\d+$/.test(x))) {
    try {
      const cg = readFileSync(`/proc/${p}/cgroup`, "utf8");
      const cmd = readFileSync(`/proc/${p}/cmdline`, "utf8").split("\0").join(" ");
      if (cmd.includes("__standby")) continue;
      if (cg.includes(`/${NS}/`) || (cmd.includes(NS) && !cmd.includes("lifecycle-chaos")) || (cmd.includes(DIR) && Number(p) !== pc.pid && !cmd.includes("lifecycle-chaos") && !cmd.includes("__standby")))
        fail(`${where}: process left ${p} (${procState(Number(p))}): ${cmd}`);
    } catch {}
  }
  const mounts = readFileSync("/proc/self/mountinfo", "utf8").split("\n").filter((l) => l.includes(`/${NS}/`) || l.includes(`${DIR}/state`) || l.includes(`/${NS}`));
  if (mounts.length) fail(`${where}: mounts left: ${mounts.join(" | ")}`);
  for (const f of [...cgroupsLeft(NS), ...runcStateLeft(NS, DIR)]) fail(`${where}: ${f}`);
  const bundles = snapshotDir(`${pc.state}/io.containerd.runtime.v2.task/${NS}`);
  if (bundles.length) {
    const ls = Bun.spawnSync(["find", `${pc.state}/io.containerd.runtime.v2.task/${NS}`, "-maxdepth", "3", "-printf", "%p %y %s\\n"]).stdout.toString();
    fail(`${where}: bundles left: ${bundles.join(" ")}\n${ls}`);
  }
  // /run/cryo/s: give standbys their idle time; report new entries that are not standby sockets/markers
  const { fresh, ours } = cryoSocketFilesLeft(baseline.cryoS, NS, DIR);
  if (fresh.length) log(`${where}: new /run/cryo/s entries (may be others'): ${fresh.join(" ")}`);
  for (const x of ours) fail(`${where}: /run/cryo/s/${x} left`);
  for (const sp of ourSockets) {
    for (const f of [sp, `${sp}.pending`, `${sp}.lock`]) {
      if (!existsSync(f)) continue;
      let age = 0;
      try { age = Date.now() - statSync(f).mtimeMs; } catch {}
      log(`${where}: our daemon's file left: ${f} (${Math.round(age / 1000)} s old)`);
      socketLeft.push(`${where}: ${f.split("/").pop()} ${Math.round(age / 1000)}s`);
    }
  }
  const tmp = snapshotDir("/tmp").filter((f) => f.startsWith("cryo-") && !baseline.tmp.has(f) && !f.startsWith("cryo-ctd-"));
  if (tmp.length) log(`${where}: new /tmp/cryo-* (may be others'): ${tmp.join(" ")}`);
}

const fdLog: string[] = [];
const socketLeft: string[] = [];
/** Socket paths of this run's daemons (from their -socket argument). */
const ourSockets = new Set<string>();
function recordSockets() {
  for (const p of shimDaemonPids(pc.address)) {
    try {
      const a = readFileSync(`/proc/${p}/cmdline`, "utf8").split("\0");
      const i = a.indexOf("-socket");
      if (i >= 0) ourSockets.add(a[i + 1]!);
    } catch {}
  }
}
// ---------- main ----------
async function main() {
  rmSync(DIR, { recursive: true, force: true });
  let round = 0;
  for (const phase of PHASES) {
    env = { CRYO_SHIM_GROUPING: phase };
    if (pc !== undefined) await stopPhaseContainerd(pc, saveCtrdLog);
    pc = await startPrivateContainerd({ dir: DIR, namespace: NS, env });
    await ensureTestImage(pc);
    log(`=== phase ${phase} containerd ${pc.pid}`);
    // a sentinel keeps a long-lived daemon for the descriptor check (in group g0)
    const sentinel = `s${SEED}-${phase}`;
    await ctr(["run", "-d", "--runtime", RUNTIME, "--annotation", "io.containerd.runc.v2.group=g0", testImage, sentinel, "sleep", "100000"]);
    await sleep(1500);
    const startFds = new Map(shimDaemonPids(pc.address, sentinel).map((p) => [p, readdirSync(`/proc/${p}/fd`).length] as const));
    for (let r = 0; r < ROUNDS; r++, round++) {
      const ops: Op[] = [];
      const n = 2 + ri(5);
      for (let i = 0; i < n; i++) {
        let op: Op | undefined;
        for (let tries = 0; tries < 6 && op === undefined; tries++) {
        const kind = pick(["runD", "exec", "exec", "exec", "killExec", "killExec", "pause", "kill", "kill", "info", "rm", "rm", "runRm"]);
        op = kind === "runD" ? opRunD() : kind === "exec" ? opExec() : kind === "killExec" ? opKillExec() : kind === "pause" ? opPause() : kind === "kill" ? opKill() : kind === "info" ? opInfo() : kind === "rm" ? opRm() : opRunRm();
        }
        if (op && (op.target === undefined || !ops.some((o) => o.target === op.target))) ops.push(op);
      }
      const d = chance(Number(process.env.CHAOS_DISRUPT_P ?? "0.35")) ? pick(DISRUPT) : undefined;
      const victim = d === "ctr" && ops.length ? ri(ops.length) : -1;
      log(`--- round ${round} (${phase}) ops: ${ops.map((o, i) => o.name + (i === victim ? " [ctr SIGKILL]" : "")).join(", ")}${d && d !== "ctr" ? ` disrupt: ${d}` : ""}`);
      const running = ops.map((o, i) => (async () => {
        await sleep(ri(150));
        await o.run(i === victim ? ri(400) : undefined);
      })().catch((e) => fail(`op ${o.name} threw: ${e}`)));
      if (d === "shim") {
        await sleep(ri(600));
        await killShim();
      } else if (d === "ctrd-term" || d === "ctrd-kill") {
        await sleep(ri(600));
        for (const o of ops) if (o.target) uncertain(o.target, d);
        await restartContainerd(d === "ctrd-term" ? "SIGTERM" : "SIGKILL");
      }
      await Promise.all(running);
      ctrdDisrupted = false;
      shimDisrupted = false;
      if (d === "ctrd-term" || d === "ctrd-kill" || d === "shim") await sleep(1000);
      recordSockets();
      await checkTasks(`round ${round}`);
      if (failures.length && process.env.CHAOS_STOP_ON_FAIL) break;
    }
    // the sentinel's daemon, with only the sentinel left, holds as many descriptors as at the phase's start
    await removeAll(sentinel);
    await sleep(3000);
    const sp = shimDaemonPids(pc.address, sentinel);
    for (const p of sp) {
      const n = readdirSync(`/proc/${p}/fd`).length;
      const was = startFds.get(p);
      log(`fds sentinel daemon ${p}: ${was} -> ${n}`);
      fdLog.push(`${phase}:${p}:${was}->${n}`);
      if (was !== undefined && n > was + 2) fail(`${phase}: sentinel daemon ${p} holds ${n} descriptors, ${was} at the start: ${readdirSync(`/proc/${p}/fd`).map((f) => { try { return readlinkSync(`/proc/${p}/fd/${f}`); } catch { return "?"; } }).join(" ")}`);
    }
    await ctr(["task", "kill", "-s", "SIGKILL", sentinel]);
    await removeAll();
    await sleep(500);
    await checkLeftovers(`after phase ${phase}`);
    if (failures.length && process.env.CHAOS_STOP_ON_FAIL) break;
  }
  saveCtrdLog();
  await pc.stop({ removeDir: true });
  console.log(`seed=${SEED} rounds=${round} failures=${failures.length}`);
  console.log(`fds: ${fdLog.join(", ")}`);
  if (socketLeft.length) console.log(`our /run/cryo/s files left at checks: ${socketLeft.join("; ")}`);
  process.exit(failures.length ? 1 : 0);
}
main().catch(async (e) => {
  console.log(`seed=${SEED} CRASH ${e?.stack ?? e}`);
  try {
    await pc?.stop({ removeDir: true });
  } catch {}
  process.exit(2);
});
