// What the chaos runs (bench/lifecycle-chaos.ts, bench/checkpoint-chaos.ts, bench/cri-chaos.ts) share: their command
// line, a seeded random source, the run's log with its failures and counters, ctr run as a child that a disruption can
// SIGKILL, the slowest calls per method, and the leftover checks.
import { appendFileSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { withFifoDir } from "../src/containerd/ctr.ts";
import { processAlive, waitFor, type PrivateContainerd } from "../test/harness/index.ts";

/** The flags every run takes, with each run's own defaults; `arg` reads a run's own flags. */
export function chaosArgs(defaults: { rounds: string; disrupt: string; prefix: string; phases?: string }) {
  const argv = process.argv.slice(2);
  const arg = (k: string, d: string) => {
    const i = argv.indexOf(k);
    return i >= 0 ? argv[i + 1]! : d;
  };
  const SEED = Number(arg("--seed", "1"));
  const PREFIX = arg("--prefix", defaults.prefix);
  return {
    SEED,
    ROUNDS: Number(arg("--rounds", defaults.rounds)),
    PHASES: arg("--phases", defaults.phases ?? "per-pod,per-container,per-namespace").split(","),
    RUNTIME: arg("--runtime", "io.containerd.cryo.v2"),
    DISRUPT: arg("--disrupt", defaults.disrupt).split(",").filter((x) => x),
    PREFIX,
    LOG: arg("--log", join(arg("--log-dir", tmpdir()), `${PREFIX}-seed-${SEED}.log`)),
    NS: `${PREFIX}${SEED}`,
    DIR: join(tmpdir(), `${PREFIX}-ctd-${SEED}`),
    arg,
  };
}

/** A seeded random source (mulberry32) and what the runs draw from it. */
export function seeded(seed: number) {
  let a = seed;
  const rand = () => {
    a |= 0;
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const ri = (n: number) => Math.floor(rand() * n);
  return { rand, ri, pick: <T>(xs: readonly T[]): T => xs[ri(xs.length)]!, chance: (p: number) => rand() < p };
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** The run's log file (emptied here), its failures and its counters; saveCtrdLog keeps containerd's log beside it. */
export function chaosLog(logPath: string, seed: number, dir: string) {
  writeFileSync(logPath, "");
  const log = (s: string) => {
    const line = `${new Date().toISOString().slice(11, 23)} ${s}`;
    appendFileSync(logPath, line + "\n");
    if (process.env.CHAOS_VERBOSE) console.log(line);
  };
  const failures: string[] = [];
  const fail = (s: string) => {
    failures.push(s);
    log(`FAIL ${s}`);
    console.log(`FAIL seed=${seed} ${s}`);
  };
  const counts: Record<string, number> = {};
  const count = (k: string) => (counts[k] = (counts[k] ?? 0) + 1);
  const saveCtrdLog = () => {
    try {
      writeFileSync(logPath.replace(/\.log$/, "-containerd.log"), readFileSync(`${dir}/containerd.log`, "utf8"));
    } catch {
      // no containerd log yet
    }
  };
  return { log, fail, failures, counts, count, saveCtrdLog };
}

/** What a ctr call gave: its exit code and output, and whether it was SIGKILLed (a disruption or its timeout). */
export interface CtrResult {
  code: number;
  out: string;
  err: string;
  killed: boolean;
}

export interface CtrCall {
  stdin?: string;
  /** SIGKILL it after that many ms (a disruption). */
  killAfter?: number;
  /** Run it under `script`, on a terminal. */
  tty?: boolean;
  timeoutMs?: number;
}

/**
 * Runs ctr against a containerd and namespace, as a child the run can SIGKILL (`inflight` holds those running).
 * `run`, `task start` and `task exec` get `--fifo-dir <fifoDir>` (the private containerd's, removed with it), as the
 * test harness's ctr does: without it ctr makes a detached task's FIFOs in /run/containerd/fifo and never removes them.
 */
export async function runCtr(
  base: { address: string; namespace: string; fifoDir: string; defaultTimeoutMs: number; inflight: Set<Bun.Subprocess>; log: (s: string) => void },
  args: string[],
  o: CtrCall = {},
): Promise<CtrResult> {
  let cmd = ["ctr", "--address", base.address, "--namespace", base.namespace, ...withFifoDir(args, base.fifoDir)];
  if (o.tty) cmd = ["script", "-qefc", cmd.map((a) => `'${a.replace(/'/g, `'\\''`)}'`).join(" "), "/dev/null"];
  const p = Bun.spawn(cmd, { stdin: o.stdin !== undefined || o.tty ? "pipe" : "ignore", stdout: "pipe", stderr: "pipe" });
  base.inflight.add(p);
  if (o.stdin !== undefined) {
    p.stdin!.write(o.stdin);
    await p.stdin!.end();
  }
  let killed = false;
  const t1 = o.killAfter !== undefined ? setTimeout(() => ((killed = true), p.kill("SIGKILL")), o.killAfter) : undefined;
  const t2 = setTimeout(() => {
    base.log(`TIMEOUT ${args.join(" ")}`);
    killed = true;
    p.kill("SIGKILL");
  }, o.timeoutMs ?? base.defaultTimeoutMs);
  const [out, err, code] = await Promise.all([new Response(p.stdout).text(), new Response(p.stderr).text(), p.exited]);
  clearTimeout(t1);
  clearTimeout(t2);
  base.inflight.delete(p);
  if (o.tty && !killed && o.stdin === undefined) p.stdin?.end?.();
  return { code, out, err, killed };
}

/** The tasks `ctr task ls` printed: id -> pid and status. */
export function parseTaskList(out: string): Map<string, { pid: number; status: string }> {
  const m = new Map<string, { pid: number; status: string }>();
  for (const l of out.split("\n").slice(1)) {
    const f = l.trim().split(/\s+/);
    if (f.length >= 3) m.set(f[0]!, { pid: Number(f[1]), status: f[2]! });
  }
  return m;
}

/** The v1 freezer state of a process's cgroup (undefined when it is gone or has none). */
export function freezerState(pid: number): string | undefined {
  try {
    const line = readFileSync(`/proc/${pid}/cgroup`, "utf8").split("\n").find((l) => /:freezer:/.test(l));
    if (line) return readFileSync(`/sys/fs/cgroup/freezer${line.split(":")[2]}/freezer.state`, "utf8").trim();
  } catch {
    // gone
  }
  return undefined;
}

/** A process's state letter from /proc/<pid>/stat (R, S, D, Z, T, ...). */
export function procState(pid: number): string | undefined {
  try {
    const s = readFileSync(`/proc/${pid}/stat`, "utf8");
    return s.slice(s.lastIndexOf(")") + 2).split(" ")[0];
  } catch {
    return undefined;
  }
}

/** A directory's entries, none when it cannot be read. */
export function snapshotDir(d: string): string[] {
  try {
    return readdirSync(d);
  } catch {
    return [];
  }
}

/** The cgroups left under the run's namespace, in every hierarchy (and under cryo/ where a daemon's cgroup goes). */
export function cgroupsLeft(ns: string): string[] {
  const left: string[] = [];
  for (const h of snapshotDir("/sys/fs/cgroup")) {
    for (const d of [`/sys/fs/cgroup/${h}/${ns}`, `/sys/fs/cgroup/${h}/cryo/${ns}`]) {
      const sub = snapshotDir(d).filter((x) => {
        try {
          return readdirSync(`${d}/${x}`) !== undefined && !x.includes(".");
        } catch {
          return false;
        }
      });
      if (sub.length) left.push(`cgroups left in ${d}: ${sub.join(" ")}`);
    }
  }
  return left;
}

/**
 * runc state left for the run's namespace, under runc's default root and the private containerd's; with `ours`, only
 * those ids (a namespace such as CRI's k8s.io is shared with other containerds on the machine).
 */
export function runcStateLeft(ns: string, dir: string, ours?: ReadonlySet<string>): string[] {
  const left: string[] = [];
  for (const root of [`/run/containerd/runc/${ns}`, `${dir}/state/runc/${ns}`]) {
    const ids = snapshotDir(root).filter((id) => ours === undefined || ours.has(id));
    if (ids.length) left.push(`runc state left in ${root}: ${ids.join(" ")}`);
  }
  return left;
}

/**
 * Entries of /run/cryo/s that came during the run (not in `baseline`, not a standby's) and name the run's namespace or
 * directory (a marker directory's entries, or a file's text); an empty lock is passed over.
 */
export function cryoSocketFilesLeft(baseline: ReadonlySet<string>, ns: string, dir: string): { fresh: string[]; ours: string[] } {
  const fresh = snapshotDir("/run/cryo/s").filter((x) => !baseline.has(x) && !/^standby-/.test(x));
  const ours = fresh.filter((x) => {
    if (x.endsWith(".lock") && snapshotDir(`/run/cryo/s/${x}`).length === 0) return false;
    try {
      return readdirSync(`/run/cryo/s/${x}`).some((y) => y.includes(ns));
    } catch {
      try {
        const text = readFileSync(`/run/cryo/s/${x}`, "utf8");
        return text.includes(ns) || text.includes(dir);
      } catch {
        return false;
      }
    }
  });
  return { fresh, ours };
}

/** How long each method's calls took: the slowest few per method, and how many went past a bound. */
export function callTimes(boundMs: number) {
  const slowest = new Map<string, { ms: number; what: string }[]>();
  const calls = new Map<string, number>();
  const over: string[] = [];
  return {
    /** Records one call of method that took ms (what: its target, for the report). */
    add(method: string, ms: number, what: string) {
      calls.set(method, (calls.get(method) ?? 0) + 1);
      const xs = slowest.get(method) ?? [];
      xs.push({ ms, what });
      xs.sort((a, b) => b.ms - a.ms);
      slowest.set(method, xs.slice(0, 3));
      if (ms > boundMs) over.push(`${method} ${what} took ${Math.round(ms)} ms`);
    },
    over,
    /** One line per method: its call count and its slowest calls. */
    report(): string[] {
      return [...slowest.entries()]
        .sort((a, b) => b[1][0]!.ms - a[1][0]!.ms)
        .map(([m, xs]) => `${m.padEnd(26)} n=${String(calls.get(m)).padStart(5)} slowest ${xs.map((x) => `${Math.round(x.ms)} ms (${x.what})`).join(", ")}`);
    },
  };
}

/** Pids of processes whose cgroup path (in any hierarchy) contains `part`. */
export function processesInCgroup(part: string): number[] {
  const pids: number[] = [];
  for (const p of snapshotDir("/proc").filter((x) => /^\d+$/.test(x))) {
    try {
      if (readFileSync(`/proc/${p}/cgroup`, "utf8").includes(part)) pids.push(Number(p));
    } catch {
      // gone
    }
  }
  return pids;
}

/** A disruption: containerd killed with sig and waited for until gone, its log kept beside the run's (the caller restarts it). */
export async function killContainerd(pc: PrivateContainerd, sig: "SIGTERM" | "SIGKILL", log: (s: string) => void, saveCtrdLog: () => void): Promise<void> {
  log(`containerd ${sig} ${pc.pid}`);
  process.kill(pc.pid, sig);
  await waitFor(() => !processAlive(pc.pid), { timeoutMs: 30_000 });
  saveCtrdLog();
}

/** Between phases: the last phase's containerd stopped with its containers and directory kept (the next one starts on it), its log kept. */
export async function stopPhaseContainerd(pc: PrivateContainerd, saveCtrdLog: () => void): Promise<void> {
  await pc.stop({ keepContainers: true, removeDir: false });
  saveCtrdLog();
}
