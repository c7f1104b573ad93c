/**
 * Intel RDT (resctrl) for a restored container: the spec's `linux.intelRdt` asks for a class of service (a
 * resctrl group) for the container's tasks. runc sets it up at create (runc 1.1 libcontainer/intelrdt): the
 * group is `<resctrl mount>/<closID>`, or `<resctrl mount>/<container id>` without a closID; the L3 cache and
 * memory bandwidth schemas are written to its `schemata`; the init's pid goes to its `tasks`, and every task
 * forked afterwards inherits the group. runc's own restore does none of this (the restored tree stays in the
 * default group); cryo's does (restore-cgroups.ts): the group is made before CRIU runs, and the CRIU helper
 * writes its own pid into `tasks` along with joining the cgroups, so `criu swrk` and every task it restores
 * inherit it. state.json records the group (`intel_rdt_path`), so `runc delete` removes a group of the
 * container's own (not a closID's: that one is managed by someone else, as runc leaves it).
 *
 * As runc decides: a closID of ".", ".." or with a "/" is refused; an L3 cache schema where the host's
 * resctrl has no L3 allocation (`info/L3`), or a memory bandwidth schema without MBA (`info/MB`, or the
 * mount's `mba_MBps`), is refused; a closID alone on a host without resctrl is ignored (runc creates such a
 * container without RDT), which cryo logs. A closID without schemas names a group someone made: it must exist.
 */
import { existsSync, mkdirSync, readFileSync, rmdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import * as z from "zod/mini";
import { failedPrecondition, invalidArgument } from "../errors.ts";
import { lazySchema, parseDetail } from "../runtime/schema-detail.ts";
import { parseMountinfo } from "./mountinfo.ts";

/** The spec's linux.intelRdt (OCI runtime spec); runc 1.1 acts on closID and the two schemas. */
const specIntelRdtSchema = lazySchema(() =>
  z.looseObject({
    closID: z.optional(z.string()),
    l3CacheSchema: z.optional(z.string()),
    memBwSchema: z.optional(z.string()),
    enableCMT: z.optional(z.boolean()),
    enableMBM: z.optional(z.boolean()),
  }),
);

/** The host's resctrl: where it is mounted and which allocations it offers (runc's IsCATEnabled, IsMBAEnabled). */
export interface HostIntelRdt {
  /** The resctrl mount point; undefined when none is mounted. */
  root?: string;
  /** L3 cache allocation: `info/L3` exists. */
  cat: boolean;
  /** Memory bandwidth allocation: `info/MB` exists, or the mount has mba_MBps (the software controller). */
  mba: boolean;
}

/** Reads the host's resctrl from a mountinfo text (the first resctrl mount, as runc takes it). */
export function hostIntelRdt(mountinfo = readFileSync("/proc/self/mountinfo", "utf8"), exists: (p: string) => boolean = existsSync): HostIntelRdt {
  const m = parseMountinfo(mountinfo).find((e) => e.fsType === "resctrl");
  if (!m) return { cat: false, mba: false };
  return {
    root: m.mountPoint,
    cat: exists(join(m.mountPoint, "info", "L3")),
    mba: m.superOptions.includes("mba_MBps") || exists(join(m.mountPoint, "info", "MB")),
  };
}

/** A restored container's resctrl group, as the restore makes and joins it. */
export interface IntelRdtPlan {
  /** The group's directory: <resctrl>/<closID or container id>. */
  dir: string;
  /** What goes to its `schemata` (runc joins the L3 and MB lines with a newline); undefined: left as it is. */
  schemata?: string;
  /** A closID without schemas: the group must already exist (someone else made and configured it). */
  mustExist: boolean;
  /** runc's config.intel_rdt for state.json (its JSON names; empty fields left out, as Go's omitempty). */
  runcConfig: Record<string, string>;
}

/**
 * What a restore does for the spec's linux.intelRdt on this host, without side effects: undefined when the spec
 * has none, or only a closID and the host no resctrl (`ignored` says so, for the log). INVALID_ARGUMENT for a
 * malformed field or closID, FAILED_PRECONDITION for a schema the host cannot apply.
 */
export function planIntelRdt(value: unknown, id: string, host: HostIntelRdt, where: string): { plan?: IntelRdtPlan; ignored?: string } {
  if (value === undefined || value === null) return {};
  const r = parseDetail(specIntelRdtSchema(), value, "an object");
  if (!r.ok) throw invalidArgument(where, { detail: `linux.intelRdt: ${r.detail}` });
  const { closID = "", l3CacheSchema = "", memBwSchema = "" } = r.data;
  if (closID === "." || closID === ".." || closID.includes("/")) throw invalidArgument(where, { detail: `linux.intelRdt.closID ${JSON.stringify(closID)} is not a resctrl group name` });
  if (l3CacheSchema !== "" && !host.cat) throw failedPrecondition(where, { detail: "linux.intelRdt.l3CacheSchema is specified, but this host has no Intel RDT/CAT (no resctrl file system with info/L3 is mounted)" });
  if (memBwSchema !== "" && !host.mba) throw failedPrecondition(where, { detail: "linux.intelRdt.memBwSchema is specified, but this host has no Intel RDT/MBA (no resctrl file system with info/MB is mounted)" });
  if (host.root === undefined) return { ignored: `linux.intelRdt (closID ${JSON.stringify(closID)}) is ignored: this host has no resctrl file system mounted, and runc would create the container without it` };
  const schemata = [l3CacheSchema, memBwSchema].filter((s) => s !== "").join("\n");
  const runcConfig: Record<string, string> = {};
  if (closID !== "") runcConfig.closID = closID;
  if (l3CacheSchema !== "") runcConfig.l3_cache_schema = l3CacheSchema;
  if (memBwSchema !== "") runcConfig.memBwSchema = memBwSchema;
  return {
    plan: {
      dir: join(host.root, closID === "" ? id : closID),
      ...(schemata !== "" ? { schemata } : {}),
      mustExist: closID !== "" && schemata === "",
      runcConfig,
    },
  };
}

/**
 * Makes the group (unless it must exist already) and writes its schemata. Returns whether this call made the
 * directory (only then does a failed restore remove it). FAILED_PRECONDITION, quoting the kernel's
 * `info/last_cmd_status` where it has one, when resctrl refuses.
 */
export function applyIntelRdtGroup(plan: IntelRdtPlan, where: string): { created: boolean } {
  const made = !existsSync(plan.dir);
  if (made && plan.mustExist) throw failedPrecondition(where, { detail: `the resctrl group ${plan.dir} (linux.intelRdt.closID without schemas) does not exist: it must be made beforehand` });
  try {
    if (made) mkdirSync(plan.dir);
  } catch (err) {
    throw failedPrecondition(where, { cause: err, detail: `make the resctrl group ${plan.dir}: ${(err as Error).message}${lastCmdStatus(plan.dir)}` });
  }
  try {
    if (plan.schemata !== undefined) writeFileSync(join(plan.dir, "schemata"), plan.schemata);
  } catch (err) {
    if (made) removeIntelRdtGroup(plan.dir);
    throw failedPrecondition(where, { cause: err, detail: `write ${plan.dir}/schemata: ${(err as Error).message}${lastCmdStatus(plan.dir)}` });
  }
  return { created: made };
}

/** Removes a group this restore made (resctrl moves any task still in it back to the default group). */
export function removeIntelRdtGroup(dir: string): void {
  try {
    rmdirSync(dir);
  } catch (err) {
    if ((err as { code?: string }).code !== "ENOENT") throw err;
  }
}

/** The kernel's reason for resctrl's last refusal (<root>/info/last_cmd_status), as runc appends it. */
function lastCmdStatus(groupDir: string): string {
  try {
    const status = readFileSync(join(groupDir, "..", "info", "last_cmd_status"), "utf8").trim();
    return status === "" || status === "ok" ? "" : ` (last_cmd_status: ${status})`;
  } catch {
    return "";
  }
}

