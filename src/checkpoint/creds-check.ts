/**
 * What the checkpoint's tasks may be restored with: their credentials and seccomp state, against the new
 * bundle's spec.
 *
 * CRIU restores each thread's capabilities, no_new_privs and seccomp mode exactly as its core image
 * (core-<tid>.img, thread_core) says, as root: a crafted checkpoint could give a restored task every
 * capability (CAP_SYS_MODULE in a container without a user namespace is the host's kernel), drop
 * no_new_privs, or leave seccomp off, whatever the spec grants. runc's restore does not look. cryo refuses,
 * before anything is made, a checkpoint in which any thread
 * - has no credentials in its core image (CRIU then restores it with its own, root's full set; only images
 *   older than CRIU 1.x lack them);
 * - has a capability bounding set with a capability outside the spec's bounding set, or an inheritable,
 *   permitted, effective or ambient set with one the spec grants in none of its sets;
 * - lacks no_new_privs when the spec's `process.noNewPrivileges` is set;
 * - has no seccomp filter when the spec has a `linux.seccomp` profile, or filters that let run a system call
 *   the profile denies whatever its arguments (src/seccomp/profile.ts: each filter of the thread's chain in
 *   seccomp.img is run for every such call of every ABI of the host, over all arguments). A thread other than
 *   its task's leader whose image says seccomp off has the leader's chain from its newest TSYNC filter back
 *   (tsyncedFilter): CRIU records filters all threads share on the leader alone;
 * - runs with another uid (real, effective, saved or filesystem) than the spec's `process.user.uid` when the
 *   spec sets noNewPrivileges and grants no CAP_SETUID (such a task cannot have changed it: the "restricted"
 *   pods of Kubernetes), and likewise for gids and CAP_SETGID. Otherwise a task may change them as far as
 *   its capabilities allow, and they are not compared.
 * Zombies (task state dead) run no code and have no credentials in their images: they are skipped.
 */
import { existsSync } from "node:fs";
import { readRegularFile } from "../sys/regular-file.ts";
import { join } from "node:path";
import { isFieldSet } from "@bufbuild/protobuf";
import { CoreEntrySchema, CredsEntrySchema, SeccompMode, ThreadCoreEntrySchema, type CoreEntry } from "../gen/criu/core_pb.ts";
import { SeccompEntrySchema, SeccompFilterSchema, type SeccompFilter } from "../gen/criu/seccomp_pb.ts";
import { parseFilter, type SockFilter } from "../seccomp/bpf.ts";
import { ChainChecker, hostAbis, specProfile, type Escape } from "../seccomp/profile.ts";
import { PstreeEntrySchema } from "../gen/criu/pstree_pb.ts";
import { decodeImage, ImageMagic } from "../criu/image-file.ts";
import { invalidArgument } from "../errors.ts";
import { readCheckpointImage } from "./image-paths.ts";
import { capabilityName, capabilityNumbers, grantedCapabilities, specCapabilities } from "../criu/capabilities.ts";

/** The spec fields the check reads (OCI runtime spec). */
export interface CredsSpec {
  process?: {
    capabilities?: Partial<Record<"bounding" | "effective" | "permitted" | "inheritable" | "ambient", unknown>>;
    noNewPrivileges?: unknown;
    user?: { uid?: unknown; gid?: unknown };
  };
  linux?: { seccomp?: unknown };
}

/** CRIU's task state of a zombie (compel's COMPEL_TASK_DEAD). */
const TASK_DEAD = 2;
const CAP_SETGID = 6;
const CAP_SETUID = 7;

/** One thread of the dumped tree and its core image (undefined: the image is missing). */
export interface ThreadCore {
  pid: number;
  tid: number;
  core: CoreEntry | undefined;
}

/**
 * Checks every thread against the spec (see the module comment); INVALID_ARGUMENT naming the first thread and
 * what it has. seccompFilters gives seccomp.img's filters, read only when a thread's filters are to be checked.
 */
export function checkThreadCreds(threads: readonly ThreadCore[], spec: CredsSpec, where: string, seccompFilters: () => SeccompFilter[] = () => []): void {
  const caps = spec.process?.capabilities ?? {};
  const bounding = specCapabilities(caps.bounding);
  const granted = grantedCapabilities(caps);
  const noNewPrivileges = spec.process?.noNewPrivileges === true;
  // A profile as runc applies one: with a default action (`{}` or null is none).
  const profile = specProfile(spec.linux?.seccomp, where);
  const seccomp = profile !== undefined;
  const abis = hostAbis();
  let filters: SeccompFilter[] | undefined;
  const escapes = new Map<number, Escape | undefined>(); // by the chain's last filter: threads share chains
  const checker = profile && abis ? new ChainChecker(profile, abis) : undefined;
  const user = spec.process?.user ?? {};
  const fixedUid = noNewPrivileges && !granted.has(CAP_SETUID) ? Number(user.uid ?? 0) : undefined;
  const fixedGid = noNewPrivileges && !granted.has(CAP_SETGID) ? Number(user.gid ?? 0) : undefined;
  const leaders = new Map(threads.filter((t) => t.tid === t.pid).map((t) => [t.pid, t.core]));
  for (const t of threads) {
    const who = t.tid === t.pid ? `task ${t.pid}` : `thread ${t.tid} of task ${t.pid}`;
    const refuse = (detail: string) => invalidArgument(where, { detail: `${who}: ${detail}` });
    if (!t.core) throw refuse(`no core-${t.tid}.img`);
    if (t.core.tc?.taskState === TASK_DEAD) continue;
    const creds = t.core.threadCore?.creds;
    if (!creds) throw refuse("its core image has no credentials (CRIU would restore it with its own, root's)");
    const sets: [string, number[], Set<number>, string][] = [
      ["bounding", creds.capBnd, bounding, "bounding set"],
      ["permitted", creds.capPrm, granted, "capabilities"],
      ["effective", creds.capEff, granted, "capabilities"],
      ["inheritable", creds.capInh, granted, "capabilities"],
      ["ambient", creds.capAmb, granted, "capabilities"],
    ];
    for (const [name, words, allowed, specSets] of sets) {
      const extra = capabilityNumbers(words).filter((c) => !allowed.has(c));
      if (extra.length > 0) throw refuse(`its ${name} capabilities hold ${extra.map(capabilityName).join(", ")}, which the spec's ${specSets} do${specSets === "bounding set" ? "es" : ""} not grant`);
    }
    if (noNewPrivileges && !isFieldSet(creds, CredsEntrySchema.field.noNewPrivs)) throw refuse("its image does not record no_new_privs (taken by a CRIU older than 3.19), and the spec sets noNewPrivileges");
    if (noNewPrivileges && creds.noNewPrivs !== 1) throw refuse("no_new_privs is off, and the spec sets noNewPrivileges");
    const ids = (kind: string, values: number[], want: number | undefined, cap: string) => {
      if (want !== undefined && values.some((v) => v !== want)) throw refuse(`its ${kind}s are ${values.join("/")}, and the spec runs it as ${kind} ${want} with noNewPrivileges and without ${cap}`);
    };
    ids("uid", [creds.uid, creds.euid, creds.suid, creds.fsuid], fixedUid, "CAP_SETUID");
    ids("gid", [creds.gid, creds.egid, creds.sgid, creds.fsgid], fixedGid, "CAP_SETGID");
    if (!seccomp) continue;
    // The thread's chain: its own, or the part of its leader's that CRIU's restore gives it with TSYNC.
    let last: number | undefined;
    const tc = t.core.threadCore!;
    if (tc.seccompMode === SeccompMode.FILTER) {
      if (!isFieldSet(tc, ThreadCoreEntrySchema.field.seccompFilter)) throw refuse("its core image names no seccomp filter");
      last = tc.seccompFilter;
    } else if (tc.seccompMode === SeccompMode.DISABLED && t.tid !== t.pid) {
      filters ??= seccompFilters();
      last = tsyncedFilter(leaders.get(t.pid), filters);
    }
    if (last === undefined) throw refuse("it has no seccomp filter, and the spec has a seccomp profile");
    if (checker) {
      if (!escapes.has(last)) {
        filters ??= seccompFilters();
        escapes.set(last, checker.escape(filterChain(filters, last, refuse), `${where}: ${who}`));
      }
      const e = escapes.get(last);
      if (e) throw refuse(`its seccomp filters let ${e.call} (${e.abi}) run, which the spec's seccomp profile denies`);
    }
  }
}

/** SECCOMP_FILTER_FLAG_TSYNC: the filter is installed on every thread of the process. */
const SECCOMP_FILTER_FLAG_TSYNC = 1;

/**
 * The seccomp.img index of the newest filter of a leader's chain that CRIU installs with TSYNC, or undefined. When
 * every thread of a process has the leader's filters (installed before the threads were made, or with TSYNC),
 * CRIU's dump records them on the leader only, flagged TSYNC, and the other threads with seccomp off ("Disable
 * filter on tid_real ..., will be propagated"); its restore installs the leader's filters with their flags, so
 * each thread ends with the leader's chain up to its newest TSYNC filter.
 */
function tsyncedFilter(leader: CoreEntry | undefined, filters: readonly SeccompFilter[]): number | undefined {
  const tc = leader?.threadCore;
  if (!tc || tc.seccompMode !== SeccompMode.FILTER || !isFieldSet(tc, ThreadCoreEntrySchema.field.seccompFilter)) return undefined;
  const seen = new Set<number>();
  for (let i: number | undefined = tc.seccompFilter; i !== undefined && !seen.has(i); ) {
    const f: SeccompFilter | undefined = filters[i];
    if (!f) return undefined;
    if ((f.flags & SECCOMP_FILTER_FLAG_TSYNC) !== 0) return i;
    seen.add(i);
    i = isFieldSet(f, SeccompFilterSchema.field.prev) ? f.prev : undefined;
  }
  return undefined;
}

/** The filters of a thread's chain, from its last (seccomp.img index `last`) back to its first. */
function filterChain(filters: readonly SeccompFilter[], last: number, refuse: (detail: string) => Error): SockFilter[][] {
  const chain: SockFilter[][] = [];
  const seen = new Set<number>();
  for (let i: number | undefined = last; i !== undefined; ) {
    const f: SeccompFilter | undefined = filters[i];
    if (!f) throw refuse(`its seccomp filter ${i} is not in seccomp.img (${filters.length} filters)`);
    if (seen.has(i)) throw refuse(`its seccomp filters form a loop at filter ${i}`);
    seen.add(i);
    chain.push(parseFilter(f.filter, `seccomp.img filter ${i}`));
    i = isFieldSet(f, SeccompFilterSchema.field.prev) ? f.prev : undefined;
  }
  return chain;
}

/** seccomp.img's filters (none when the image is absent: no task had a filter). */
export function readSeccompFilters(imagesDir: string): SeccompFilter[] {
  const name = "seccomp.img";
  if (!existsSync(join(imagesDir, name))) return [];
  return decodeImage(SeccompEntrySchema, new Uint8Array(readRegularFile(join(imagesDir, name))), name, ImageMagic.seccomp).flatMap((e) => e.seccompFilters);
}

/** The pids of the tree's live tasks (zombies left out), as the checkpoint recorded them: those a restore waits for. */
export function liveTaskPids(threads: readonly ThreadCore[]): number[] {
  return [...new Set(threads.filter((t) => t.tid === t.pid && t.core?.tc?.taskState !== TASK_DEAD).map((t) => t.pid))];
}

/** Reads pstree.img and the core image of every thread of imagesDir (a checked checkpoint directory). */
export function readThreadCores(imagesDir: string): ThreadCore[] {
  const read = (name: string) => readCheckpointImage(imagesDir, name);
  const out: ThreadCore[] = [];
  const coreOf = (tid: number) => {
    const name = `core-${tid}.img`;
    return existsSync(join(imagesDir, name)) ? decodeImage(CoreEntrySchema, read(name), name, ImageMagic.core)[0] : undefined;
  };
  for (const task of decodeImage(PstreeEntrySchema, read("pstree.img"), "pstree.img", ImageMagic.pstree)) {
    const main = coreOf(task.pid);
    // A zombie has one core image and no threads worth the name (CRIU records whatever its thread list held).
    if (main?.tc?.taskState === TASK_DEAD) {
      out.push({ pid: task.pid, tid: task.pid, core: main });
      continue;
    }
    const tids = task.threads.length > 0 ? task.threads : [task.pid];
    for (const tid of tids) out.push({ pid: task.pid, tid, core: tid === task.pid ? main : coreOf(tid) });
  }
  return out;
}
