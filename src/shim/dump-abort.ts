/**
 * What a CRIU killed in the middle of a dump leaves behind, and its undoing.
 *
 * A dump is aborted when its caller gives up (the request's deadline, its connection) or a Kill with SIGKILL
 * comes while CRIU hangs (src/shim/container.ts). The CRIU client first asks cryo's CRIU to stop (SIGTERM, patch
 * 0007): it then ends the dump through its own cleanup and nothing here runs. A CRIU that does not answer within
 * 3 s (hung), or one without the patch, is killed with the helper. Such a CRIU never gets to its own cleanup, so:
 *
 * - the container's tasks: they were seized with ptrace, and the kernel detaches them when their tracer dies. A
 *   task with CRIU's parasite in it finds the parasite's control socket closed and returns to its own code
 *   through the parasite's sigreturn (compel's daemon loop), so the tree runs on;
 * - the cgroup's freezer: CRIU freezes the cgroup, seizes every task with ptrace and thaws it again (it freezes one
 *   that was frozen before only at its normal end), so the tasks run as soon as CRIU is dead. So the cgroup is
 *   frozen before CRIU is killed (the CRIU client's beforeKill), what CRIU left is undone while the tree stands
 *   still, and last the freezer is put back as it was before the call: thawed, or frozen for a container that was
 *   paused (containerd's pause, which every ctr checkpoint makes first; its Resume thaws it). Before, a paused
 *   container ran on while containerd said PAUSED, and a task released before its sockets left repair mode got
 *   EPERM from its first recv (tcp-echo then closed its connection: the peer saw a reset). Both seen here;
 * - with tcp-established, the connections CRIU had dumped are in TCP repair mode (CRIU turns it on for each, and off
 *   again as its last step, before the network unlock): every send and receive on them fails with EPERM (seen: a
 *   client in the container, `receive: Operation not permitted`, its connection then closed). Every socket of the
 *   container's processes that has it on gets it turned off (pidfd_getfd, then setsockopt), before the lock goes, as
 *   CRIU orders it. What cannot be put back: the socket's SO_REUSEADDR, which the kernel sets while in repair mode and
 *   clears after (CRIU restores the value it read first); it matters only to a later bind beside the socket;
 * - CRIU's network lock stays: an nftables table `inet CRIU-<run id>` (CRIU's uuid for the run, in its log at
 *   level 3 and above) whose chains drop every packet, in the network namespace CRIU dumped, and, for the
 *   connections of tcp-established in a namespace CRIU does not dump, in CRIU's own; with `network-lock
 *   iptables` a `CRIU` chain that INPUT and OUTPUT jump to. Those are removed: the table of the run in the
 *   container's namespace and in the shim's own, and, without a run id, every `CRIU-*` table of the container's
 *   own namespace only (no other CRIU works on it: the container's calls are serial); the `CRIU` chain only in
 *   the container's own namespace (in a shared one it may be another dump's). CRIU's per-connection iptables rules in
 *   a namespace it does not dump (`network-lock iptables` with tcp-established in a pod's or the host's: a DROP rule
 *   in INPUT and one in OUTPUT per connection, `-m mark ! --mark 0xc114`) are removed by what CRIU's log says it
 *   locked ("Locked A:P - B:Q connection", info level: such a dump runs CRIU at level 3 at least), so never another
 *   dump's.
 *
 * Each step is tried whatever the others did; what was done and what failed is returned for the error and the log.
 */
import { copyFileSync, lstatSync, readFileSync, statSync } from "node:fs";
import { close, takeFdFromProcess, tcpRepairOf, tcpRepairOff } from "../sys/index.ts";
import { fdTargets } from "../sys/proc.ts";

/** What a killed dump's cleanup needs to know. */
export interface KilledDump {
  /** The container's network namespace (a /proc/PID/ns/net or a pinned path); undefined when unknown. */
  netns: string | undefined;
  /** CRIU's log of the run (its run id is there at log level 3 and above). */
  logFile: string;
  /** The lock method the dump asked for. */
  networkLock: "nftables" | "iptables" | "skip";
  /**
   * Puts the cgroup's freezer back as it was before the call (the container dumped through the freezer); undefined
   * when CRIU did not use the freezer (the caller puts back what it changed itself).
   */
  freezer: { paused: boolean; set: (frozen: boolean) => Promise<void> } | undefined;
  /** With tcp-established: the container's processes now, whose sockets may be in repair mode. */
  tcpProcesses?: () => Promise<number[]>;
  /**
   * The container's network namespace is its own (CRIU dumped it): without a run id, every CRIU table there is this
   * dump's. A joined one (a pod's) may hold another container's dump's table.
   */
  ownNetns?: boolean;
}

/** What the cleanup did (done) and could not do (failed), in words. */
export interface KilledDumpCleanup {
  done: string[];
  failed: string[];
}

/**
 * CRIU's run id from its log ("CRIU run id = <uuid>"), or undefined. The last one: `criu swrk` logs two (its
 * start, then the request's), and the lock's table is named after the second.
 */
export function criuRunId(logText: string): string | undefined {
  let id: string | undefined;
  for (const m of logText.matchAll(/CRIU run id = ([0-9a-f-]{36})/g)) id = m[1];
  return id;
}

/** The tables `nft list tables` prints that are CRIU's (`table inet CRIU-...`), by name. */
export function criuTables(listing: string): string[] {
  const out: string[] = [];
  for (const line of listing.split("\n")) {
    const m = /^table inet (CRIU-[0-9A-Za-z-]+)\s*$/.exec(line.trim());
    if (m) out.push(m[1]!);
  }
  return out;
}

/**
 * The text of path when it is a regular file, else "" (gone, or not a file: a FIFO left where CRIU's log goes,
 * in a work directory an annotation named, would block a synchronous read of the daemon for ever).
 */
export function regularFileText(path: string): string {
  try {
    return lstatSync(path).isFile() ? readFileSync(path, "utf8") : "";
  } catch {
    return "";
  }
}

/** Copies src to dst when src is a regular file; false otherwise (see regularFileText). */
export function copyRegularFile(src: string, dst: string): boolean {
  try {
    if (!lstatSync(src).isFile()) return false;
  } catch {
    return false;
  }
  copyFileSync(src, dst);
  return true;
}

/**
 * The last line of CRIU's own in its log (timestamped: "(00.108314) ..."; the parasite's lines, "pie: ...", come
 * in between and, once CRIU is killed, last), at most 300 characters; "" without one.
 */
export function lastLogLine(logText: string): string {
  const lines = logText.split("\n").map((l) => l.trim()).filter((l) => l !== "");
  const last = lines.findLast((l) => /^\(\d/.test(l)) ?? lines.at(-1) ?? "";
  return last.length > 300 ? `${last.slice(0, 300)}…` : last;
}

/**
 * Whether table is CRIU's lock table of the run: `CRIU-<run id>`, cut short as CRIU names it (its 32-byte buffer
 * holds "inet CRIU-" and the first 21 characters of the uuid: `CRIU-230851b4-6414-4df9-8c`, seen here).
 */
export function isRunTable(table: string, runId: string): boolean {
  const full = `CRIU-${runId}`;
  return table.length >= "CRIU-".length + 8 && full.startsWith(table);
}

function inode(path: string): number | undefined {
  try {
    return statSync(path).ino;
  } catch {
    return undefined;
  }
}

async function run(argv: string[]): Promise<{ code: number; out: string; err: string }> {
  try {
    const p = Bun.spawn(argv, { stdin: "ignore", stdout: "pipe", stderr: "pipe" });
    const [out, err, code] = await Promise.all([new Response(p.stdout).text(), new Response(p.stderr).text(), p.exited]);
    return { code, out, err: err.trim() };
  } catch (e) {
    return { code: -1, out: "", err: e instanceof Error ? e.message : String(e) };
  }
}

/** argv run in netns (nsenter), or in the shim's own when netns is undefined. */
function inNetns(netns: string | undefined, argv: string[]): string[] {
  return netns === undefined ? argv : ["nsenter", `--net=${netns}`, "--", ...argv];
}

/** Undoes what a killed CRIU dump left: see the module comment. */
export async function undoKilledDump(k: KilledDump): Promise<KilledDumpCleanup> {
  const done: string[] = [];
  const failed: string[] = [];
  if (k.tcpProcesses) {
    try {
      const r = releaseTcpRepair(await k.tcpProcesses());
      if (r.released.length > 0) done.push(`TCP repair mode turned off on ${r.released.length} socket${r.released.length === 1 ? "" : "s"} (inodes ${r.released.join(", ")})`);
      failed.push(...r.failed);
    } catch (err) {
      failed.push(`TCP repair mode: ${err instanceof Error ? err.message : String(err)}`);
    }
  }
  const lock = await removeCriuNetworkLock(k);
  done.push(...lock.done);
  failed.push(...lock.failed);
  // Last, as CRIU does: the tree runs again only once its sockets and network are let go.
  if (k.freezer) {
    const what = k.freezer.paused ? "freeze again (the container was paused)" : "thaw";
    try {
      await k.freezer.set(k.freezer.paused);
      done.push(k.freezer.paused ? "cgroup frozen again (the container was paused before)" : "cgroup thawed");
    } catch (err) {
      failed.push(`${what}: ${err instanceof Error ? err.message : String(err)}`);
    }
  }
  return { done, failed };
}

/**
 * Removes the network lock a killed CRIU left (the module comment says where it is); logFile may be "" (no run
 * id: only a namespace of the container's own is searched). Also post-copy.ts's, when it stops a page server.
 */
export async function removeCriuNetworkLock(k: Pick<KilledDump, "netns" | "logFile" | "networkLock" | "ownNetns">): Promise<KilledDumpCleanup> {
  const done: string[] = [];
  const failed: string[] = [];
  if (k.networkLock !== "skip") await removeNetworkLock(k, done, failed);
  return { done, failed };
}

/** Removes CRIU's network lock (the module comment says where it is). */
async function removeNetworkLock(k: Pick<KilledDump, "netns" | "logFile" | "networkLock" | "ownNetns">, done: string[], failed: string[]): Promise<void> {
  const logText = regularFileText(k.logFile);
  const runId = criuRunId(logText);
  // CRIU locks nothing before it has written its run id (log_init, then util_init): no run id with a log at
  // level 3+ means no lock. Below level 3 the id is not logged, and the container's own namespace is searched.
  const netnsInode = k.netns === undefined ? undefined : inode(k.netns);
  const containerNs = netnsInode !== undefined && netnsInode !== inode("/proc/self/ns/net") ? k.netns : undefined;
  if (k.networkLock === "nftables") {
    const where: { ns: string | undefined; label: string; any: boolean }[] = [];
    if (containerNs) where.push({ ns: containerNs, label: "the container's network namespace", any: runId === undefined && k.ownNetns === true });
    where.push({ ns: undefined, label: "the shim's network namespace", any: false });
    for (const w of where) {
      const listed = await run(inNetns(w.ns, ["nft", "list", "tables"]));
      if (listed.code !== 0) {
        if (w.ns !== undefined || runId !== undefined) failed.push(`nft list tables in ${w.label}: ${listed.err || `exit ${listed.code}`}`);
        continue;
      }
      const tables = criuTables(listed.out).filter((t) => (runId !== undefined ? isRunTable(t, runId) : w.any));
      for (const t of tables) {
        const del = await run(inNetns(w.ns, ["nft", "delete", "table", "inet", t]));
        if (del.code === 0) done.push(`CRIU's network lock (nftables table inet ${t}) removed from ${w.label}`);
        else failed.push(`nft delete table inet ${t} in ${w.label}: ${del.err || `exit ${del.code}`}`);
      }
    }
    return;
  }
  await removeIptablesConnectionLocks(logText, containerNs, done, failed);
  if (containerNs && k.ownNetns === true) {
    for (const bin of ["iptables", "ip6tables"]) {
      const has = await run(inNetns(containerNs, [bin, "-w", "-n", "-L", "CRIU"]));
      if (has.code !== 0) continue;
      const steps = [["-D", "INPUT", "-j", "CRIU"], ["-D", "OUTPUT", "-j", "CRIU"], ["-F", "CRIU"], ["-X", "CRIU"]];
      const errs: string[] = [];
      for (const s of steps) {
        const r = await run(inNetns(containerNs, [bin, "-w", ...s]));
        if (r.code !== 0) errs.push(`${bin} ${s.join(" ")}: ${r.err || `exit ${r.code}`}`);
      }
      if (errs.length === 0) done.push(`CRIU's network lock (${bin} chain CRIU) removed from the container's network namespace`);
      else failed.push(...errs);
    }
  }
}

/**
 * Turns TCP repair mode off on every socket of pids that has it on (each socket once, whichever process holds it).
 * Returns the sockets' inodes, and what failed.
 */
export function releaseTcpRepair(pids: number[]): { released: string[]; failed: string[] } {
  const released: string[] = [];
  const failed: string[] = [];
  const seen = new Set<string>();
  for (const pid of pids) {
    for (const { fd, target } of fdTargets(pid)) {
      const ino = /^socket:\[(\d+)\]$/.exec(target)?.[1];
      if (ino === undefined || seen.has(ino)) continue;
      seen.add(ino);
      let copy: number;
      try {
        copy = takeFdFromProcess(pid, fd);
      } catch (err) {
        failed.push(`socket ${ino} (pid ${pid} fd ${fd}): ${err instanceof Error ? err.message : String(err)}`);
        continue;
      }
      try {
        if (tcpRepairOf(copy) === 1) {
          tcpRepairOff(copy);
          released.push(ino);
        }
      } catch (err) {
        failed.push(`socket ${ino} (pid ${pid} fd ${fd}): ${err instanceof Error ? err.message : String(err)}`);
      } finally {
        close(copy);
      }
    }
  }
  return { released, failed };
}

/** CRIU's mark for its own packets (SOCCR_MARK), which its connection locks let through. */
const SOCCR_MARK = "0xc114";

/**
 * The connections CRIU's log says it locked with iptables: "Locked SRC:SPORT - DST:DPORT connection", one line
 * per rule (CRIU's netfilter.c): each stands for `--source DST --sport DPORT --destination SRC --dport SPORT`,
 * in INPUT for the first of a connection's two lines and OUTPUT for the second.
 */
export function lockedConnections(logText: string): { src: string; sport: number; dst: string; dport: number }[] {
  const out: { src: string; sport: number; dst: string; dport: number }[] = [];
  for (const m of logText.matchAll(/Locked (\S+):(\d+) - (\S+):(\d+) connection/g)) out.push({ src: m[1]!, sport: Number(m[2]), dst: m[3]!, dport: Number(m[4]) });
  return out;
}

/** Deletes CRIU's per-connection iptables rules its log names, in the container's namespace (if not the shim's) and the shim's. */
async function removeIptablesConnectionLocks(logText: string, containerNs: string | undefined, done: string[], failed: string[]): Promise<void> {
  const locked = lockedConnections(logText);
  if (locked.length === 0) return;
  let removed = 0;
  const left: string[] = [];
  for (const c of locked) {
    const bin = c.src.includes(":") ? "ip6tables" : "iptables";
    const rule = ["--protocol", "tcp", "-m", "mark", "!", "--mark", SOCCR_MARK, "--source", c.dst, "--sport", String(c.dport), "--destination", c.src, "--dport", String(c.sport), "-j", "DROP"];
    let gone = false;
    for (const ns of containerNs ? [containerNs, undefined] : [undefined]) {
      for (const chain of ["INPUT", "OUTPUT"]) {
        // A rule CRIU added twice (a retried lock) goes twice; each delete takes one.
        while ((await run(inNetns(ns, [bin, "-w", "-t", "filter", "-D", chain, ...rule]))).code === 0) gone = true;
      }
    }
    if (gone) removed++;
    else left.push(`${c.src}:${c.sport} - ${c.dst}:${c.dport}`);
  }
  if (removed > 0) done.push(`CRIU's iptables connection locks removed (${removed} of the ${locked.length} rules its log names)`);
  // A rule not found: CRIU had taken it back itself (a failed lock's rollback), or a later one is there.
  if (left.length > 0 && removed === 0) failed.push(`CRIU's iptables connection locks named in its log not found: ${left.join(", ")}`);
}
