// Chaos run (not a test) for checkpoint and restore: seeded random lifecycles through ctr against a private containerd
// with cryo (or, with --runtime io.containerd.runc.v2, runc's shim for comparison), phase by phase under each
// CRYO_SHIM_GROUPING. Its programs are the test image's memhog (a counter at 0 MiB, or some MiB of a pattern it
// verifies itself), some with cryo.checkpoint/lazy-pages=true. Ops: run -d, long-running execs, pause/resume,
// `ctr task checkpoint` (no options reach cryo), `ctr containers checkpoint --task [--rw] [--image]` of running and
// paused containers, `ctr containers restore --live [--rw]` under a new name (original still there) and under the
// original's name after it is gone, the same checkpoint restored twice, checkpoints of restored containers, task and
// container removal, image removal. Disruptions, aimed at a checkpoint or restore in the round, at a random moment:
// ctr SIGKILLed, a shim daemon SIGKILLed, the CRIU helper and/or its criu SIGKILLed, a lazy-pages daemon SIGKILLed,
// containerd SIGTERMed or SIGKILLed and restarted on the same directory.
// Invariants: after a checkpoint that failed, the container is as before (RUNNING and THAWED with its counter
// advancing, or PAUSED and FROZEN), except where ctr itself was killed between its Pause and Resume (containerd's
// client pauses around the checkpoint: counted, both runtimes); a restore that succeeded is RUNNING, its counter
// continues from at least the checkpointed value, and a memhog's pattern verifies (SIGUSR1 -> /tmp/counter.verify);
// a restore that failed leaves no task process, and once its container is removed no mount, cgroup (every hierarchy),
// runc state, bundle, criu or lazy-pages process of it; after every round, the tasks ctr lists are in the state shown;
// after each phase, with everything removed: no daemon, process, mount, cgroup, runc state, bundle, /run/cryo/s file,
// and the sentinel's daemon holds as many descriptors as at the start; containerd's own temp dirs (ctd-checkpoint*,
// ctrd-checkpoint*) are counted and printed, not failed (compare with runc's shim).
// Run as root: node_modules/.bin/bun bench/checkpoint-chaos.ts --seed N [--rounds 8] [--phases per-pod,per-container,per-namespace]
//   [--disrupt ctr,shim,criu,ctrd-term,ctrd-kill] [--runtime RUNTIME] [--prefix ckchaos] [--log-dir DIR];
// CHAOS_DISRUPT_P (0.5) sets how often a round is disrupted, CHAOS_VERBOSE=1 prints the log. Exits 1 when an invariant failed.
import { existsSync, readdirSync, readFileSync, readlinkSync, rmSync } from "node:fs";
import { join } from "node:path";
import { ensureTestImage, readContainerFile, readCounter, startPrivateContainerd, testImage, waitFor, type PrivateContainerd } from "../test/harness/index.ts";
import { cgroupsLeft, chaosArgs, chaosLog, cryoSocketFilesLeft, freezerState, killContainerd, runcStateLeft, parseTaskList, stopPhaseContainerd, procState, runCtr, seeded, sleep, snapshotDir, type CtrCall, type CtrResult } from "./chaos-common.ts";

const { SEED, ROUNDS, PHASES, RUNTIME, DISRUPT, LOG, NS, DIR } = chaosArgs({ rounds: "8", disrupt: "ctr,shim,criu,ctrd-term,ctrd-kill", prefix: "ckchaos" });
const CRYO = RUNTIME === "io.containerd.cryo.v2";
const REF = `localhost/${NS}/ck`;
const { ri, pick, chance } = seeded(SEED);
const { log, fail, failures, counts, count, saveCtrdLog } = chaosLog(LOG, SEED, DIR);

type St = "RUNNING" | "PAUSED" | "STOPPED" | "CREATED";
interface Ctr {
  id: string;
  /** MiB memhog holds (0: a plain counter). */
  mib: number;
  lazy: boolean;
  certain: boolean;
  state?: St;
  /** Restored from this image. */
  from?: string;
  /** The container whose spec this one's is (restores copy their source's spec). */
  root: string;
  execs: Promise<Res>[];
  /** Shares its cgroup with a restored copy (runc's shim): never certain again. */
  shared?: boolean;
}
interface Img {
  ref: string;
  /** The container checkpointed. */
  of: string;
  /** Its container's root (Ctr.root). */
  root: string;
  mib: number;
  lazy: boolean;
  /** Counter value read before the dump (a lower bound for the restored counter). */
  counterAt: number;
  /** The checkpoint answered OK and nothing disrupted it: a restore must succeed. */
  good: boolean;
  /** Made with --rw: only then does restore --rw find a layer (else ctr: "media type not found"). */
  rw: boolean;
  restores: number;
}
const model = new Map<string, Ctr>();
const images = new Map<string, Img>();
let seq = 0;
let pc: PrivateContainerd;
let env: Record<string, string> = {};
let ctrdDisrupted = false;
let shimDisrupted = false;

type Res = CtrResult;
const inflight = new Set<Bun.Subprocess>();
/** Runs ctr (chaos-common runCtr); killAfter: SIGKILL it after that many ms (a disruption); quiet: not logged. */
async function ctr(args: string[], o: CtrCall & { quiet?: boolean } = {}): Promise<Res> {
  const r = await runCtr({ address: pc.address, namespace: NS, fifoDir: pc.layout.fifo, defaultTimeoutMs: 120_000, inflight, log }, args, o);
  if (!o.quiet) log(`ctr ${args.join(" ")} -> ${r.code}${r.killed ? " (killed)" : ""} ${r.err.trim().split("\n").pop()?.slice(0, 300) ?? ""}`);
  return r;
}
async function taskList(): Promise<Map<string, { pid: number; status: string }>> {
  return parseTaskList((await ctr(["task", "ls"], { quiet: true })).out);
}
async function containerList(): Promise<string[]> {
  return (await ctr(["containers", "ls", "-q"], { quiet: true })).out.split("\n").filter((x) => x);
}
async function imageList(): Promise<string[]> {
  return (await ctr(["images", "ls", "-q"], { quiet: true })).out.split("\n").filter((x) => x && x !== testImage);
}

interface Proc {
  pid: number;
  ppid: number;
  comm: string;
  cmd: string;
}
function procs(): Proc[] {
  const out: Proc[] = [];
  for (const p of readdirSync("/proc").filter((x) => /^\d+$/.test(x))) {
    try {
      const s = readFileSync(`/proc/${p}/stat`, "utf8");
      const comm = s.slice(s.indexOf("(") + 1, s.lastIndexOf(")"));
      const ppid = Number(s.slice(s.lastIndexOf(")") + 2).split(" ")[1]);
      out.push({ pid: Number(p), ppid, comm, cmd: readFileSync(`/proc/${p}/cmdline`, "utf8").split("\0").join(" ") });
    } catch {}
  }
  return out;
}
/** Shim daemons (cryo's or runc's) of our containerd, not cryo's standby. */
function shimDaemons(ps = procs()): Proc[] {
  return ps.filter((p) => /containerd-shim-\w+-v2/.test(p.cmd.split(" ")[0] ?? "") && p.cmd.includes(pc.address) && !p.cmd.includes("__standby") && !/ (start|delete)( |$)/.test(p.cmd));
}
/** Descendants of our shim daemons that are not container processes (CRIU helpers, criu, runc, lazy-pages daemons). */
function criuProcs(ps = procs()): { helpers: Proc[]; criu: Proc[]; lazy: Proc[] } {
  const daemons = new Set(shimDaemons(ps).map((p) => p.pid));
  const byPid = new Map(ps.map((p) => [p.pid, p]));
  const under = (p: Proc) => {
    for (let q: Proc | undefined = p, n = 0; q && n < 20; q = byPid.get(q.ppid), n++) if (daemons.has(q.ppid)) return true;
    return false;
  };
  const mine = ps.filter(under);
  return {
    helpers: mine.filter((p) => p.cmd.includes("__criu")),
    criu: mine.filter((p) => p.comm === "criu" && !p.cmd.includes("lazy-pages")),
    lazy: ps.filter((p) => p.comm === "criu" && p.cmd.includes("lazy-pages") && (under(p) || p.cmd.includes(NS))),
  };
}

// ---------- programs ----------
function counter(id: string): number | undefined {
  return readCounter(pc, id);
}
/** Waits until id's counter passes `above`; false when it does not within timeoutMs. */
async function advances(id: string, above: number, timeoutMs = 8000): Promise<boolean> {
  return await waitFor(() => (counter(id) ?? -1) > above, { timeoutMs }).then(() => true, () => false);
}
/** Asks memhog for a verification (SIGUSR1) and waits for its answer in /tmp/counter.verify. */
async function verifyPattern(id: string): Promise<string> {
  const before = readContainerFile(pc, id, "/tmp/counter.verify");
  const r = await ctr(["task", "kill", "-s", "SIGUSR1", id]);
  if (r.code !== 0) return `kill -USR1: ${r.err.trim()}`;
  let got: string | undefined;
  await waitFor(() => {
    got = readContainerFile(pc, id, "/tmp/counter.verify");
    return got !== undefined && got !== before;
  }, { timeoutMs: 15000 }).catch(() => {});
  return got ?? "no answer";
}

// ---------- ops ----------
type Op = { name: string; target?: string; /** Other containers or images the op looks at. */ also?: string[]; ck?: boolean; run: (killAfter?: number) => Promise<void> };

function uncertain(id: string, why: string) {
  const c = model.get(id);
  if (c && c.certain) {
    c.certain = false;
    log(`uncertain ${id}: ${why}`);
  }
}
const live = (st?: St) => st === "RUNNING" || st === "PAUSED";

function opRunD(): Op {
  const id = `k${SEED}-${++seq}`;
  const mib = pick([0, 0, 8, 32, 64, 128]);
  const lazy = chance(0.3);
  return {
    name: `run-d ${id} memhog ${mib}${lazy ? " lazy" : ""}`,
    target: id,
    run: async () => {
      const c: Ctr = { id, mib, lazy, certain: true, root: id, execs: [] };
      model.set(id, c);
      const ann = lazy ? ["--annotation", "cryo.checkpoint/lazy-pages=true"] : [];
      const r = await ctr(["run", "-d", "--runtime", RUNTIME, ...ann, testImage, id, "/bin/memhog", String(mib), "/tmp/counter"]);
      if (r.code !== 0) {
        if (!ctrdDisrupted && !shimDisrupted) fail(`run -d ${id}: ${r.code} ${r.err.trim()}`);
        return uncertain(id, "run -d failed");
      }
      c.state = "RUNNING";
      if (!(await advances(id, 0, 20000))) fail(`run -d ${id}: counter never past 0`);
    },
  };
}

function opExec(): Op | undefined {
  const cs = [...model.values()].filter((c) => c.certain && c.state === "RUNNING");
  if (!cs.length) return undefined;
  const c = pick(cs);
  const eid = `e${++seq}`;
  return {
    name: `exec ${c.id}/${eid}`,
    target: c.id,
    run: async () => {
      c.execs.push(ctr(["task", "exec", "--exec-id", eid, c.id, "sleep", "100000"], { timeoutMs: 900_000 }));
      await sleep(300);
    },
  };
}

function opPause(): Op | undefined {
  const cs = [...model.values()].filter((c) => c.certain && live(c.state));
  if (!cs.length) return undefined;
  const c = pick(cs);
  const verb = c.state === "RUNNING" ? "pause" : "resume";
  return {
    name: `${verb} ${c.id}`,
    target: c.id,
    run: async () => {
      const r = await ctr(["task", verb, c.id]);
      if (r.code !== 0) return c.certain && !ctrdDisrupted && !shimDisrupted ? fail(`${verb} ${c.id}: ${r.code} ${r.err.trim()}`) : uncertain(c.id, `${verb} failed`);
      c.state = verb === "pause" ? "PAUSED" : "RUNNING";
    },
  };
}

/** Removes the checkpoint images of containers whose spec c's is (itself, what it was restored from, copies): containerd 1.6 fails a second checkpoint of a spec it holds ("already exists"). */
async function clearSpecImages(c: Ctr) {
  for (const img of [...images.values()]) {
    if (img.root === c.root) {
      await ctr(["images", "rm", "--sync", img.ref]);
      images.delete(img.ref);
    }
  }
  // ctr task checkpoint's images, and any whose owner we lost
  for (const ref of await imageList()) if (!images.has(ref)) await ctr(["images", "rm", "--sync", ref]);
}

/** After a checkpoint that did not succeed (or was disrupted), the container is as it was. */
async function checkAfterFailedCheckpoint(c: Ctr, before: St, why: string) {
  const t = (await taskList()).get(c.id);
  if (!t) return ctrdDisrupted || shimDisrupted ? uncertain(c.id, "gone after disrupted checkpoint") : fail(`${why}: ${c.id} has no task after a failed checkpoint`);
  if (t.status === "STOPPED") {
    if (ctrdDisrupted || shimDisrupted) return uncertain(c.id, "stopped after disrupted checkpoint");
    if (criuDisrupted) {
      // CRIU SIGKILLed from outside while it held the tree (parasite, ptrace): a task then dies of SIGTRAP (133).
      // CRIU's doing, not the shim's: the same with runc's shim (compare runs)
      const rm = await ctr(["task", "rm", c.id]);
      const code = Number(/exit code (\d+)/.exec(rm.err)?.[1] ?? 0);
      count(`died (exit ${code}) when CRIU was SIGKILLed mid-dump`);
      log(`${c.id}: died with exit ${code} after CRIU was SIGKILLed mid-dump`);
      c.state = undefined;
      c.certain = false;
      if (code !== 133) fail(`${why}: ${c.id} STOPPED with exit ${code} after a failed checkpoint (was ${before})`);
      return;
    }
    return fail(`${why}: ${c.id} STOPPED after a failed checkpoint (was ${before})`);
  }
  if (t.status === "PAUSED" && before === "RUNNING") {
    // containerd's client paused it and was killed before its Resume: containerd's doing, with runc's shim too
    if (why.includes("ctr killed") || why.includes("containerd restarted")) {
      count("left paused by a killed ctr");
      log(`${c.id}: PAUSED after ${why} (ctr's own Pause, no Resume)`);
      c.state = "PAUSED";
      return;
    }
    return fail(`${why}: ${c.id} PAUSED after a failed checkpoint (was RUNNING)`);
  }
  if (t.status !== before) return fail(`${why}: ${c.id} ${t.status} after a failed checkpoint (was ${before})`);
  const fz = freezerState(t.pid);
  if (before === "RUNNING") {
    if (fz !== "THAWED") fail(`${why}: ${c.id} RUNNING but freezer ${fz} after a failed checkpoint`);
    const n = counter(c.id) ?? -1;
    if (!(await advances(c.id, n))) fail(`${why}: ${c.id} counter stuck at ${n} after a failed checkpoint`);
  } else if (fz !== "FROZEN") fail(`${why}: ${c.id} PAUSED but freezer ${fz} after a failed checkpoint`);
}

function opCheckpoint(): Op | undefined {
  const cs = [...model.values()].filter((c) => c.certain && live(c.state));
  if (!cs.length) return undefined;
  const c = pick(cs);
  // ctr containers checkpoint pauses first, and fails on a paused task (ctr's doing): mostly ctr task checkpoint then
  const task = chance(c.state === "PAUSED" ? 0.75 : 0.25);
  const flags = task ? [] : [...(chance(0.4) ? ["--rw"] : []), ...(chance(0.2) ? ["--image"] : [])];
  const ref = `${REF}-${c.id}:${++seq}`;
  return {
    name: task ? `task checkpoint ${c.id}` : `checkpoint --task ${flags.join(" ")} ${c.id} ${c.state}`,
    target: c.id,
    ck: true,
    run: async (killAfter) => {
      await clearSpecImages(c);
      const before = c.state!;
      const at = counter(c.id) ?? 0;
      if (c.lazy && c.from) await sleep(0); // a lazy restore's checkpoint waits for its pages: cryo's doing
      const r = task ? await ctr(["task", "checkpoint", c.id], { killAfter }) : await ctr(["containers", "checkpoint", "--task", ...flags, c.id, ref], { killAfter });
      count(task ? "task checkpoints" : "container checkpoints");
      const disrupted = r.killed || ctrdDisrupted || shimDisrupted || criuDisrupted;
      if (r.code === 0 && !r.killed) {
        count("checkpoints ok");
        if (!task) images.set(ref, { ref, of: c.id, root: c.root, mib: c.mib, lazy: c.lazy, counterAt: at, good: !disrupted, rw: flags.includes("--rw"), restores: 0 });
        const t = (await taskList()).get(c.id);
        // containerd may go down after the answer, before ctr task ls
        const late = disrupted || ctrdDisrupted || shimDisrupted;
        if (!t) return late ? uncertain(c.id, "no task after checkpoint") : fail(`checkpoint ${c.id}: no task after it`);
        if (t.status !== before) return late ? uncertain(c.id, `${t.status} after checkpoint`) : fail(`checkpoint ${c.id}: ${t.status} after it, was ${before}`);
        if (before === "RUNNING") {
          const fz = freezerState(t.pid);
          if (fz !== "THAWED") fail(`checkpoint ${c.id}: RUNNING but freezer ${fz}`);
          const n = counter(c.id) ?? -1;
          if (!(await advances(c.id, n))) fail(`checkpoint ${c.id}: counter stuck at ${n} after it`);
        }
        return;
      }
      count("checkpoints failed");
      if (!task && before === "PAUSED" && /cannot pause a paused container|paused/.test(r.err)) {
        // ctr containers checkpoint pauses first, whatever the state: ctr's doing (runc's shim refuses it too)
        count("containers checkpoint of a paused task refused by ctr's Pause");
        return await checkAfterFailedCheckpoint(c, before, "ctr's own Pause refused");
      }
      if (/already exists|snapshots\/\d+: file exists/.test(r.err)) {
        // containerd 1.6: the spec blob of an earlier checkpoint (one whose ctr was killed, not yet collected) is
        // there, and its Checkpoint fails after the dump (docs/containerd-checkpoint-flow.md 1.8): containerd's
        count("checkpoints failed on containerd's 'already exists'");
        return await checkAfterFailedCheckpoint(c, before, "containerd's already exists");
      }
      if (!disrupted) fail(`checkpoint ${c.id} failed undisrupted: ${r.code} ${r.err.trim()}`);
      else if (!r.killed && !/ctr: /.test(r.err)) fail(`checkpoint ${c.id}: exit ${r.code} without an error: ${r.err.trim()}`);
      if (!task && r.killed && (await imageList()).includes(ref)) images.set(ref, { ref, of: c.id, root: c.root, mib: c.mib, lazy: c.lazy, counterAt: at, good: false, rw: flags.includes("--rw"), restores: 0 });
      log(`checkpoint ${c.id} failed: ${r.err.trim().split("\n").pop()}`);
      await checkAfterFailedCheckpoint(c, before, r.killed ? "ctr killed" : ctrdDisrupted ? "containerd restarted" : shimDisrupted ? "shim killed" : "criu killed");
    },
  };
}

/** What a restore of id left once it failed: task processes, criu, lazy-pages daemons naming it. */
function restoreLeftovers(id: string): string[] {
  const left: string[] = [];
  const ps = procs();
  for (const p of ps) {
    if (p.comm === "criu" && (p.cmd.includes(`/${id}/`) || p.cmd.includes(`/${id} `))) left.push(`criu ${p.pid}: ${p.cmd}`);
    try {
      if (readFileSync(`/proc/${p.pid}/cgroup`, "utf8").includes(`/${NS}/${id}\n`)) left.push(`process ${p.pid} (${p.comm}${p.cmd.includes("__criu") ? " __criu" : ""}) in ${id}'s cgroup`);
    } catch {}
  }
  return left;
}
/** After id is removed: mounts, cgroups, runc state, bundle of it. */
function removedLeftovers(id: string): string[] {
  const left: string[] = [];
  for (const l of readFileSync("/proc/self/mountinfo", "utf8").split("\n")) if (l.includes(`/${NS}/${id}/`) || l.includes(`/${NS}/${id} `)) left.push(`mount ${l.split(" ")[4]}`);
  for (const h of readdirSync("/sys/fs/cgroup")) for (const d of [`/sys/fs/cgroup/${h}/${NS}/${id}`, `/sys/fs/cgroup/${h}/cryo/${NS}/${id}`]) if (existsSync(d)) left.push(`cgroup ${d}`);
  for (const d of [`/run/containerd/runc/${NS}/${id}`, `${DIR}/state/runc/${NS}/${id}`, `${pc.state}/io.containerd.runtime.v2.task/${NS}/${id}`]) if (existsSync(d)) left.push(`dir ${d}`);
  return left;
}

function opRestore(): Op | undefined {
  const imgs = [...images.values()];
  if (!imgs.length) return undefined;
  const img = pick(imgs);
  const origGone = !model.has(img.of);
  const id = origGone && chance(0.6) ? img.of : `${img.of}-r${++seq}`;
  if (model.has(id)) return undefined;
  const rw = img.rw && chance(0.6);
  return {
    name: `restore --live${rw ? " --rw" : ""} ${id} from ${img.ref}${img.lazy ? " lazy" : ""}${img.good ? "" : " (doubtful image)"}${img.restores ? ` (restore #${img.restores + 1})` : ""}`,
    target: id,
    also: [img.of, img.ref],
    ck: true,
    run: async (killAfter) => {
      const c: Ctr = { id, mib: img.mib, lazy: img.lazy, certain: false, from: img.ref, root: img.root, execs: [] };
      model.set(id, c);
      // the source, when it still runs, must not be touched by a restore under another name
      const src = model.get(img.of);
      // runc's shim keeps the source's cgroupsPath for a copy (cryo gives it its own): a kill --all of the copy
      // reaches the source
      if (!CRYO && src && id !== img.of) (uncertain(src.id, "runc: its restored copy shares its cgroup"), (src.shared = true));
      const srcRunning = src?.certain && src.state === "RUNNING";
      const r = await ctr(["containers", "restore", "--live", ...(rw ? ["--rw"] : []), id, img.ref], { killAfter });
      img.restores++;
      count("restores");
      const disrupted = r.killed || ctrdDisrupted || shimDisrupted || criuDisrupted;
      let t = (await taskList()).get(id);
      if (r.killed || ctrdDisrupted) {
        // containerd does not cancel the shim's Start when its caller goes: the restore may still finish
        await waitFor(async () => (t = (await taskList()).get(id))?.status !== "CREATED" || restoreLeftovers(id).length === 0, { timeoutMs: 30000 }).catch(() => {});
        if (t?.status === "RUNNING") count("restores finished after their ctr was killed");
      }
      if ((r.code === 0 || r.killed || ctrdDisrupted) && t?.status === "RUNNING") {
        count("restores ok");
        c.state = "RUNNING";
        c.certain = true;
        if (img.restores > 1) count("second restores ok");
        if (!(await advances(id, img.counterAt - 1, 20000))) {
          const t2 = (await taskList()).get(id);
          if (!disrupted || t2?.status === "RUNNING") fail(`restore ${id}: counter ${counter(id)} not past the checkpointed ${img.counterAt} (task ${t2?.status})`);
          else uncertain(id, "restored but stopped under disruption");
        }
        if (img.mib > 0 && c.certain) {
          const v = await verifyPattern(id);
          if (!/^ok /.test(v) && !ctrdDisrupted && !shimDisrupted) {
            const t2 = (await taskList()).get(id);
            // a lazy restore whose lazy-pages daemon was killed: the shim kills the tree (documented)
            if (disrupted && c.lazy && t2?.status === "STOPPED") (count("lazy restores killed with their daemon"), uncertain(id, "lazy daemon killed"));
            else fail(`restore ${id} (${img.mib} MiB): verify says ${v} (task ${t2?.status})`);
          }
        }
      } else {
        count("restores failed");
        const why = `${r.code}${r.killed ? " killed" : ""} ${r.err.trim().split("\n").pop()}`;
        if (/unable to read checkpoint runtime/.test(r.err)) {
          // an index ctr wrote with an empty io.containerd.checkpoint.runtime (seen once, seed 25, a checkpoint of a
          // restored copy that had answered 0; cause not found): the index is the client's, the shim writes none
          count("restores of an image containerd wrote incomplete");
          img.good = false;
        }
        if (!disrupted && img.good) fail(`restore ${id} of a good image failed undisrupted: ${why}`);
        if (!disrupted && r.code !== 0 && !/ctr: /.test(r.err)) fail(`restore ${id}: exit ${r.code} without an error`);
        if (r.code === 0 && !r.killed && !disrupted) fail(`restore ${id}: ctr exit 0 but task ${t?.status}`);
        log(`restore ${id} failed (${why}); task ${t?.status ?? "none"}`);
        if (t && t.status === "RUNNING") {
          c.state = "RUNNING";
          c.certain = true;
          if (!(await advances(id, img.counterAt - 1, 20000))) fail(`restore ${id} (ctr failed, task RUNNING): counter ${counter(id)} not past ${img.counterAt}`);
        } else {
          // a failed restore: no process of it, and once removed nothing of it
          await waitFor(() => restoreLeftovers(id).length === 0, { timeoutMs: disrupted ? 20000 : 3000 }).catch(() => {});
          let left = restoreLeftovers(id);
          // cryo's CRIU helper, joined to the restore's cgroups at Create, waits there for a Start that containerd
          // never sent (its caller went with a containerd restart): the task is CREATED, and its Delete ends it
          // (checked below and at the phase's end)
          if (t?.status === "CREATED" && left.length && left.every((x) => x.includes(" __criu)"))) {
            count("CRIU helper waiting in a CREATED restore's cgroup for its Start");
            log(`restore ${id}: task CREATED, its prejoined CRIU helper waits: ${left.join("; ")}`);
            left = [];
          }
          if (left.length && !shimDisrupted) fail(`failed restore ${id} (task ${t?.status ?? "none"}) left: ${left.join("; ")}`);
          if (!shimDisrupted && !ctrdDisrupted) {
            await removeOne(id);
            const left2 = removedLeftovers(id);
            if (left2.length) fail(`failed restore ${id}, removed, left: ${left2.join("; ")}`);
          }
        }
      }
      if (srcRunning && src && src.certain) {
        const st = (await taskList()).get(src.id);
        if (st?.status !== "RUNNING") fail(`restore ${id}: its source ${src.id} is ${st?.status} (was RUNNING)`);
        else if (!(await advances(src.id, counter(src.id) ?? -1))) fail(`restore ${id}: its source ${src.id}'s counter stopped`);
      }
    },
  };
}

async function removeOne(id: string) {
  const t = (await taskList()).get(id);
  if (t) {
    if (t.status === "PAUSED") await ctr(["task", "resume", id]);
    if (t.status !== "STOPPED") await ctr(["task", "kill", "--all", "-s", "SIGKILL", id]);
    await waitFor(async () => (await taskList()).get(id)?.status !== "RUNNING", { timeoutMs: 10000 }).catch(() => {});
    await ctr(["task", "rm", "-f", id]);
  }
  await ctr(["containers", "rm", id]);
  const c = model.get(id);
  if (c) await Promise.race([Promise.all(c.execs), sleep(10000)]);
  model.delete(id);
}

function opRm(): Op | undefined {
  const cs = [...model.values()];
  if (!cs.length) return undefined;
  const c = pick(cs);
  return {
    name: `rm ${c.id}`,
    target: c.id,
    run: async () => {
      await removeOne(c.id);
      // runc's shim: restored copies live on in the source's cgroup
      const left = removedLeftovers(c.id).filter((x) => !x.startsWith("cgroup") || CRYO || ![...model.values()].some((o) => o.root === c.root));
      if (left.length && !ctrdDisrupted && !shimDisrupted) fail(`rm ${c.id} left: ${left.join("; ")}`);
    },
  };
}

function opRmImage(): Op | undefined {
  const imgs = [...images.values()];
  if (!imgs.length) return undefined;
  const img = pick(imgs);
  return {
    name: `image rm ${img.ref}`,
    also: [img.ref],
    run: async () => {
      images.delete(img.ref);
      await ctr(["images", "rm", "--sync", img.ref]);
    },
  };
}

function opVerify(): Op | undefined {
  const cs = [...model.values()].filter((c) => c.certain && c.state === "RUNNING");
  if (!cs.length) return undefined;
  const c = pick(cs);
  return {
    name: `verify ${c.id}`,
    target: c.id,
    run: async () => {
      const n = counter(c.id) ?? -1;
      if (!(await advances(c.id, n))) return c.certain ? fail(`verify ${c.id}: counter stuck at ${n}`) : undefined;
      if (c.mib > 0) {
        const v = await verifyPattern(c.id);
        if (!/^ok /.test(v) && c.certain) fail(`verify ${c.id}: ${v}`);
      }
    },
  };
}

// ---------- disruptions ----------
let criuDisrupted = false;
async function restartContainerd(sig: "SIGTERM" | "SIGKILL") {
  ctrdDisrupted = true;
  await killContainerd(pc, sig, log, saveCtrdLog);
  pc = await startPrivateContainerd({ dir: DIR, namespace: NS, env });
  log(`containerd restarted ${pc.pid}`);
}
async function killShim() {
  const ds = shimDaemons();
  if (!ds.length) return;
  // the one running a CRIU helper or criu, when there is one
  const busy = criuProcs();
  const parents = new Set([...busy.helpers, ...busy.criu].map((p) => p.ppid));
  const d = ds.find((p) => parents.has(p.pid)) ?? pick(ds);
  log(`SIGKILL shim ${d.pid} ${d.cmd}`);
  shimDisrupted = true;
  process.kill(d.pid, "SIGKILL");
  for (const c of model.values()) uncertain(c.id, `shim ${d.pid} killed`);
  count("shim kills");
}
/** Waits (up to 4 s) for a CRIU helper at work, criu or a lazy-pages daemon, and SIGKILLs what `what` names. */
async function killCriu(what: "helper" | "criu" | "both" | "lazy") {
  let hit: Proc[] = [];
  await waitFor(() => {
    const c = criuProcs();
    hit = what === "helper" ? c.helpers.filter((h) => c.criu.some((x) => x.ppid === h.pid)) : what === "criu" ? c.criu : what === "lazy" ? c.lazy : [...c.helpers.filter((h) => c.criu.some((x) => x.ppid === h.pid)), ...c.criu];
    if (!CRYO && what !== "lazy") hit = c.criu; // runc: criu under runc
    return hit.length > 0;
  }, { timeoutMs: 4000, intervalMs: 10 }).catch(() => {});
  if (!hit.length) return log(`criu disruption ${what}: nothing to kill`);
  criuDisrupted = true;
  for (const p of hit) {
    log(`SIGKILL ${what} ${p.pid} ${p.comm} ${p.cmd.slice(0, 200)}`);
    try {
      process.kill(p.pid, "SIGKILL");
    } catch {}
  }
  count(`${what} kills`);
}

// ---------- invariants ----------
async function checkTasks(where: string) {
  // A dump still under way (its caller gone, the shim undoing it) has CRIU's tasks ptrace-stopped in a THAWED
  // freezer (CRIU thaws the cgroup once it has seized them): the states are read once no CRIU of ours dumps
  await waitFor(() => criuProcs().criu.length === 0, { timeoutMs: 20000 }).catch(() => log(`${where}: CRIU still running`));
  const tl = await taskList();
  for (const [id, t] of tl) {
    const c = model.get(id);
    if (t.status === "RUNNING" || t.status === "PAUSED") {
      const ps = procState(t.pid);
      if (ps === undefined || ps === "Z") fail(`${where}: ${id} ${t.status} but pid ${t.pid} is ${ps ?? "gone"}`);
      const fz = freezerState(t.pid);
      if (t.status === "RUNNING" && fz !== undefined && fz !== "THAWED") fail(`${where}: ${id} RUNNING but freezer ${fz}`);
      if (t.status === "PAUSED" && fz !== "FROZEN") fail(`${where}: ${id} PAUSED but freezer ${fz}`);
    } else if (t.status === "CREATED") {
      if (t.pid > 0 && procState(t.pid) !== undefined) log(`${where}: ${id} CREATED with pid ${t.pid} alive`);
    } else if (t.status !== "STOPPED") fail(`${where}: ${id} status ${t.status}`);
    if (c && c.certain && c.state !== undefined && c.state !== t.status) {
      // a memhog that found its pattern corrupt exits 2
      fail(`${where}: ${id} model ${c.state} but ctr says ${t.status}`);
    }
  }
  for (const c of model.values()) {
    if (c.certain && live(c.state) && !tl.has(c.id)) fail(`${where}: ${c.id} model ${c.state} but not in ctr task ls`);
    if (!c.certain) {
      const t = tl.get(c.id);
      c.state = t?.status as St | undefined;
      if (t !== undefined && live(c.state) && !c.shared) {
        c.certain = true;
        log(`certain again ${c.id}: ${t.status}`);
      }
    }
  }
}

const baseline = { cryoS: new Set(snapshotDir("/run/cryo/s")) };

async function removeAll(keep?: string) {
  for (let i = 0; i < 3; i++) {
    const tl = await taskList();
    tl.delete(keep ?? "");
    for (const id of tl.keys()) await removeOne(id);
    for (const id of await containerList()) if (id !== keep) await removeOne(id);
    if ((await containerList()).filter((x) => x !== keep).length === 0) break;
  }
  for (const id of [...model.keys()]) if (id !== keep) model.delete(id);
  for (const ref of await imageList()) await ctr(["images", "rm", "--sync", ref]);
  images.clear();
  await Promise.race([Promise.all([...inflight].map((p) => p.exited)), sleep(15000)]);
  for (const p of inflight) {
    log(`ctr still running after removal: ${p.pid}`);
    p.kill("SIGKILL");
  }
}

async function checkLeftovers(where: string) {
  const ctrs = await containerList();
  if (ctrs.length) fail(`${where}: containers left: ${ctrs.join(" ")}`);
  const t0 = Date.now();
  await waitFor(() => shimDaemons().length === 0, { timeoutMs: 75000 }).catch(() => {});
  if (Date.now() - t0 > 5000) log(`${where}: shim daemons took ${Date.now() - t0} ms to exit`);
  const ps = procs();
  const shims = shimDaemons(ps);
  if (shims.length) fail(`${where}: shim daemons left: ${shims.map((p) => `${p.pid}:${p.cmd}`).join("; ")}`);
  for (const p of ps) {
    if (p.cmd.includes("__standby") || p.cmd.includes("checkpoint-chaos") || p.pid === pc.pid) continue;
    let cg = "";
    try {
      cg = readFileSync(`/proc/${p.pid}/cgroup`, "utf8");
    } catch {}
    if (cg.includes(`/${NS}/`) || p.cmd.includes(NS) || p.cmd.includes(DIR)) fail(`${where}: process left ${p.pid} (${procState(p.pid)} ${p.comm}): ${p.cmd}`);
  }
  // CRIU, its helpers and lazy-pages daemons left by this run: whatever holds our directory (cwd, a descriptor)
  for (const p of ps) {
    if (p.comm !== "criu" && !p.cmd.includes("__criu")) continue;
    const held: string[] = [];
    for (const f of ["cwd", ...snapshotDir(`/proc/${p.pid}/fd`).map((x) => `fd/${x}`)]) {
      try {
        const l = readlinkSync(`/proc/${p.pid}/${f}`);
        if (l.includes(DIR) || l.includes(`/${NS}/`)) held.push(l);
      } catch {}
    }
    if (held.length) fail(`${where}: ${p.comm} ${p.pid} left (${p.cmd.slice(0, 120)}), holding ${held.slice(0, 3).join(" ")}`);
  }
  const mounts = readFileSync("/proc/self/mountinfo", "utf8").split("\n").filter((l) => l.includes(`/${NS}/`) || l.includes(`/${NS} `) || l.includes(DIR));
  if (mounts.length) fail(`${where}: mounts left: ${mounts.join(" | ")}`);
  for (const f of [...cgroupsLeft(NS), ...runcStateLeft(NS, DIR)]) fail(`${where}: ${f}`);
  const bundles = snapshotDir(`${pc.state}/io.containerd.runtime.v2.task/${NS}`);
  if (bundles.length) fail(`${where}: bundles left: ${bundles.join(" ")}`);
  for (const x of cryoSocketFilesLeft(baseline.cryoS, NS, DIR).ours) fail(`${where}: /run/cryo/s/${x} left`);
  const ctd = snapshotDir(pc.layout.tmp).filter((x) => /^ctr?d-checkpoint/.test(x));
  if (ctd.length) {
    log(`${where}: containerd temp checkpoint dirs left: ${ctd.join(" ")}`);
    counts["containerd temp checkpoint dirs left"] = (counts["containerd temp checkpoint dirs left"] ?? 0) + ctd.length;
    for (const x of ctd) rmSync(join(pc.layout.tmp, x), { recursive: true, force: true });
  }
  const other = snapshotDir(pc.layout.tmp).filter((x) => !/^ctr?d-checkpoint/.test(x));
  if (other.length) log(`${where}: other entries in containerd's temp dir: ${other.join(" ")}`);
}

const fdLog: string[] = [];
/** ctr's default FIFO directory: `ctr containers restore` has no --fifo-dir, and a ctr killed there leaves its FIFOs. */
const CTR_FIFO_DIR = "/run/containerd/fifo";
const listFifoDirs = (): string[] => {
  try {
    return readdirSync(CTR_FIFO_DIR);
  } catch {
    return [];
  }
};

/** Removes the FIFO directories ctr made during the run (not there at its start) that no process holds open. */
function removeRunFifoDirs(before: ReadonlySet<string>): number {
  const held = new Set<string>();
  for (const pid of readdirSync("/proc").filter((n) => /^\d+$/.test(n))) {
    let fds: string[] = [];
    try {
      fds = readdirSync(`/proc/${pid}/fd`);
    } catch {
      continue;
    }
    for (const fd of fds) {
      try {
        const target = readlinkSync(`/proc/${pid}/fd/${fd}`);
        if (target.startsWith(`${CTR_FIFO_DIR}/`)) held.add(target.slice(CTR_FIFO_DIR.length + 1).split("/")[0]!);
      } catch {
        // closed meanwhile
      }
    }
  }
  let removed = 0;
  for (const name of listFifoDirs()) {
    if (before.has(name) || held.has(name)) continue;
    rmSync(join(CTR_FIFO_DIR, name), { recursive: true, force: true });
    removed++;
  }
  return removed;
}

async function main() {
  const fifoDirsBefore = new Set(listFifoDirs());
  rmSync(DIR, { recursive: true, force: true });
  rmSync(LOG.replace(/\.log$/, "-containerd.log"), { force: true });
  let round = 0;
  let disruptions = 0;
  for (const phase of PHASES) {
    env = { CRYO_SHIM_GROUPING: phase };
    if (pc !== undefined) await stopPhaseContainerd(pc, saveCtrdLog);
    pc = await startPrivateContainerd({ dir: DIR, namespace: NS, env });
    await ensureTestImage(pc);
    log(`=== phase ${phase} containerd ${pc.pid}`);
    const sentinel = `s${SEED}-${phase}`;
    await ctr(["run", "-d", "--runtime", RUNTIME, testImage, sentinel, "sleep", "100000"]);
    await sleep(1500);
    const sentinelDaemon = () => shimDaemons().filter((p) => p.cmd.split(" ").includes(sentinel));
    const startFds = new Map(sentinelDaemon().map((p) => [p.pid, readdirSync(`/proc/${p.pid}/fd`).length] as const));
    // two containers to start with
    for (let i = 0; i < 2; i++) await opRunD().run();
    for (let r = 0; r < ROUNDS; r++, round++) {
      const ops: Op[] = [];
      const n = 1 + ri(3);
      for (let i = 0; i < n; i++) {
        let op: Op | undefined;
        for (let tries = 0; tries < 8 && op === undefined; tries++) {
          const kind = pick(["runD", "exec", "pause", "ck", "ck", "ck", "restore", "restore", "restore", "restore", "rm", "rmImage", "verify"]);
          op = kind === "runD" ? (model.size < 6 ? opRunD() : undefined) : kind === "exec" ? opExec() : kind === "pause" ? opPause() : kind === "ck" ? opCheckpoint() : kind === "restore" ? opRestore() : kind === "rm" ? opRm() : kind === "rmImage" ? opRmImage() : opVerify();
        }
        if (op && !ops.some((o) => [o.target, ...(o.also ?? [])].some((t) => t !== undefined && (t === op.target || op.also?.includes(t)))) && !(op.ck && ops.some((o) => o.ck))) ops.push(op);
      }
      const ckIdx = ops.findIndex((o) => o.ck);
      const d = ckIdx >= 0 && chance(Number(process.env.CHAOS_DISRUPT_P ?? "0.5")) ? pick(DISRUPT) : undefined;
      const lazyOp = ckIdx >= 0 && ops[ckIdx]!.name.startsWith("restore") && ops[ckIdx]!.name.includes(" lazy");
      const criuWhat = d === "criu" ? (lazyOp && chance(0.5) ? "lazy" : pick(["helper", "criu", "both"] as const)) : undefined;
      if (d) disruptions++;
      log(`--- round ${round} (${phase}) ops: ${ops.map((o, i) => o.name + (i === ckIdx && d === "ctr" ? " [ctr SIGKILL]" : "")).join(", ")}${d && d !== "ctr" ? ` disrupt: ${d}${criuWhat ? ` ${criuWhat}` : ""}` : ""}`);
      const running = ops.map((o, i) => (async () => {
        if (i !== ckIdx) await sleep(ri(150));
        await o.run(i === ckIdx && d === "ctr" ? (chance(0.7) ? ri(500) : ri(2000)) : undefined);
      })().catch((e) => fail(`op ${o.name} threw: ${e?.stack ?? e}`)));
      if (d === "shim") {
        await sleep(ri(1200));
        await killShim();
      } else if (d === "ctrd-term" || d === "ctrd-kill") {
        await sleep(ri(1200));
        for (const o of ops) if (o.target) uncertain(o.target, d);
        await restartContainerd(d === "ctrd-term" ? "SIGTERM" : "SIGKILL");
      } else if (d === "criu") {
        await sleep(criuWhat === "lazy" ? 0 : ri(400));
        await killCriu(criuWhat!);
      }
      if (d) count(`disruption ${d}${criuWhat ? `-${criuWhat}` : ""}`);
      await Promise.all(running);
      ctrdDisrupted = shimDisrupted = criuDisrupted = false;
      if (d === "ctrd-term" || d === "ctrd-kill" || d === "shim") await sleep(1000);
      await checkTasks(`round ${round}`);
      if (failures.length && process.env.CHAOS_STOP_ON_FAIL) break;
    }
    await removeAll(sentinel);
    await sleep(3000);
    for (const p of sentinelDaemon()) {
      const was0 = startFds.get(p.pid);
      // a warm CRIU helper (and its pidfd, sockets) is let go after 60 s idle
      if (was0 !== undefined) await waitFor(() => readdirSync(`/proc/${p.pid}/fd`).length <= was0 + 2, { timeoutMs: 75000 }).catch(() => {});
      const n = readdirSync(`/proc/${p.pid}/fd`).length;
      const was = startFds.get(p.pid);
      log(`fds sentinel daemon ${p.pid}: ${was} -> ${n}`);
      fdLog.push(`${phase}:${p.pid}:${was}->${n}`);
      if (was !== undefined && n > was + 2) fail(`${phase}: sentinel daemon ${p.pid} holds ${n} descriptors, ${was} at the start: ${readdirSync(`/proc/${p.pid}/fd`).map((f) => { try { return readlinkSync(`/proc/${p.pid}/fd/${f}`); } catch { return "?"; } }).join(" ")}`);
    }
    await removeAll();
    await sleep(500);
    await checkLeftovers(`after phase ${phase}`);
    if (failures.length && process.env.CHAOS_STOP_ON_FAIL) break;
  }
  saveCtrdLog();
  await pc.stop({ removeDir: true });
  log(`removed ${removeRunFifoDirs(fifoDirsBefore)} FIFO directories of this run's ctr from ${CTR_FIFO_DIR}`);
  console.log(`seed=${SEED} runtime=${RUNTIME} rounds=${round} disruptions=${disruptions} failures=${failures.length}`);
  console.log(`counts: ${Object.entries(counts).map(([k, v]) => `${k}=${v}`).join(", ")}`);
  console.log(`fds: ${fdLog.join(", ")}`);
  process.exit(failures.length ? 1 : 0);
}
main().catch(async (e) => {
  console.log(`seed=${SEED} CRASH ${e?.stack ?? e}`);
  try {
    await pc?.stop({ removeDir: true });
  } catch {}
  process.exit(2);
});
