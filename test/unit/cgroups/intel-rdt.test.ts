// Intel RDT for a restored container (src/cgroups/intel-rdt.ts). This machine's kernel has no resctrl file
// system (no RDT in the VM's processor), so what touches files runs against a directory laid out as resctrl's
// root; test/integration/checkpoint-task-api.test.ts restores real checkpoints with linux.intelRdt on this host.
import { afterEach, beforeEach, describe, expect, test } from "bun:test";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { applyIntelRdtGroup, hostIntelRdt, planIntelRdt, removeIntelRdtGroup, type HostIntelRdt } from "../../../src/cgroups/intel-rdt.ts";
import { joinFile } from "../../../src/cgroups/join-file.ts";
import { restoreJoinDirs } from "../../../src/checkpoint/runc-criu.ts";
import { Code } from "../../../src/errors.ts";
import { errorOf } from "../../harness/error-of.ts";

const MOUNTINFO = [
  "22 1 8:1 / / rw,relatime - ext4 /dev/sda1 rw",
  "40 22 0:35 / /sys/fs/resctrl rw,relatime - resctrl resctrl rw,mba_MBps",
  "41 22 0:36 / /mnt/other\\040resctrl rw,relatime - resctrl resctrl rw",
].join("\n");

const full: HostIntelRdt = { root: "/sys/fs/resctrl", cat: true, mba: true };
const none: HostIntelRdt = { cat: false, mba: false };

describe("the host's resctrl", () => {
  test("the first resctrl mount, its L3 and MB info, and mba_MBps (the software controller) as MBA", () => {
    expect(hostIntelRdt(MOUNTINFO, (p) => p === "/sys/fs/resctrl/info/L3")).toEqual({ root: "/sys/fs/resctrl", cat: true, mba: true });
    const plain = MOUNTINFO.replace(",mba_MBps", "");
    expect(hostIntelRdt(plain, () => false)).toEqual({ root: "/sys/fs/resctrl", cat: false, mba: false });
    expect(hostIntelRdt(plain, (p) => p.endsWith("/info/MB"))).toEqual({ root: "/sys/fs/resctrl", cat: false, mba: true });
  });

  test("no resctrl mount: no root, nothing enabled (as on this machine)", () => {
    expect(hostIntelRdt("22 1 8:1 / / rw - ext4 /dev/sda1 rw\n", () => true)).toEqual(none);
    // This host's own mount table, read by default.
    expect(hostIntelRdt().root !== undefined).toBe(readFileSync("/proc/self/mountinfo", "utf8").includes(" - resctrl "));
  });
});

describe("what a restore does for linux.intelRdt", () => {
  test("no intelRdt: nothing", () => {
    expect(planIntelRdt(undefined, "c1", none, "w")).toEqual({});
    expect(planIntelRdt(null, "c1", none, "w")).toEqual({});
  });

  test("a group of the container's own, named by its id, with both schemas joined by a newline", () => {
    expect(planIntelRdt({ l3CacheSchema: "L3:0=f0", memBwSchema: "MB:0=50" }, "c1", full, "w")).toEqual({
      plan: { dir: "/sys/fs/resctrl/c1", schemata: "L3:0=f0\nMB:0=50", mustExist: false, runcConfig: { l3_cache_schema: "L3:0=f0", memBwSchema: "MB:0=50" } },
    });
    expect(planIntelRdt({ memBwSchema: "MB:0=50" }, "c1", full, "w").plan?.schemata).toBe("MB:0=50");
  });

  test("a closID names the group; without schemas it must exist already, with them it is made or updated", () => {
    expect(planIntelRdt({ closID: "gold" }, "c1", full, "w")).toEqual({ plan: { dir: "/sys/fs/resctrl/gold", mustExist: true, runcConfig: { closID: "gold" } } });
    expect(planIntelRdt({ closID: "gold", l3CacheSchema: "L3:0=f" }, "c1", full, "w").plan).toMatchObject({ dir: "/sys/fs/resctrl/gold", schemata: "L3:0=f", mustExist: false });
  });

  test("a closID that is not a group name is INVALID_ARGUMENT, as runc refuses it", () => {
    for (const closID of [".", "..", "a/b", "../x"]) {
      const e = errorOf(() => planIntelRdt({ closID }, "c1", full, "restore c1"));
      expect([closID, e.code]).toEqual([closID, Code.INVALID_ARGUMENT]);
      expect(e.message).toContain(`linux.intelRdt.closID ${JSON.stringify(closID)} is not a resctrl group name`);
    }
  });

  test("a malformed field is INVALID_ARGUMENT naming it", () => {
    const e = errorOf(() => planIntelRdt({ l3CacheSchema: 7 }, "c1", full, "restore c1"));
    expect(e.code).toBe(Code.INVALID_ARGUMENT);
    expect(e.message).toContain("linux.intelRdt: l3CacheSchema: Invalid input: expected string, received number");
    expect(errorOf(() => planIntelRdt("L3:0=f", "c1", full, "w")).message).toContain("linux.intelRdt: an object: Invalid input");
  });

  test("a schema the host cannot apply is FAILED_PRECONDITION, as runc's create refuses it", () => {
    const l3 = errorOf(() => planIntelRdt({ l3CacheSchema: "L3:0=f" }, "c1", { ...full, cat: false }, "restore c1"));
    expect(l3.code).toBe(Code.FAILED_PRECONDITION);
    expect(l3.message).toContain("linux.intelRdt.l3CacheSchema is specified, but this host has no Intel RDT/CAT");
    const mb = errorOf(() => planIntelRdt({ memBwSchema: "MB:0=50" }, "c1", none, "restore c1"));
    expect(mb.code).toBe(Code.FAILED_PRECONDITION);
    expect(mb.message).toContain("linux.intelRdt.memBwSchema is specified, but this host has no Intel RDT/MBA");
  });

  test("a closID alone on a host without resctrl is ignored, as runc's create ignores it, and said so", () => {
    const r = planIntelRdt({ closID: "gold" }, "c1", none, "w");
    expect(r.plan).toBeUndefined();
    expect(r.ignored).toContain('linux.intelRdt (closID "gold") is ignored: this host has no resctrl file system mounted');
  });
});

describe("the group on disk (a directory laid out as resctrl's root)", () => {
  let root: string;
  beforeEach(() => {
    root = mkdtempSync(join(tmpdir(), "cryo-resctrl-"));
    mkdirSync(join(root, "info"));
  });
  afterEach(() => rmSync(root, { recursive: true, force: true }));

  test("made with its schemata, and removed again", () => {
    const plan = planIntelRdt({ l3CacheSchema: "L3:0=f0", memBwSchema: "MB:0=50" }, "c1", { root, cat: true, mba: true }, "w").plan!;
    expect(applyIntelRdtGroup(plan, "w")).toEqual({ created: true });
    expect(readFileSync(join(root, "c1", "schemata"), "utf8")).toBe("L3:0=f0\nMB:0=50");
    rmSync(join(plan.dir, "schemata")); // resctrl's own files go with the group; a plain directory's do not
    removeIntelRdtGroup(plan.dir);
    expect(existsSync(plan.dir)).toBe(false);
    removeIntelRdtGroup(plan.dir); // gone already: nothing
  });

  test("an existing closID group is used as it is, and not counted as made", () => {
    mkdirSync(join(root, "gold"));
    writeFileSync(join(root, "gold", "schemata"), "L3:0=ff");
    const plan = planIntelRdt({ closID: "gold" }, "c1", { root, cat: true, mba: false }, "w").plan!;
    expect(applyIntelRdtGroup(plan, "w")).toEqual({ created: false });
    expect(readFileSync(join(root, "gold", "schemata"), "utf8")).toBe("L3:0=ff");
  });

  test("a closID group without schemas that does not exist is FAILED_PRECONDITION, and nothing is made", () => {
    const plan = planIntelRdt({ closID: "gold" }, "c1", { root, cat: true, mba: false }, "w").plan!;
    const e = errorOf(() => applyIntelRdtGroup(plan, "restore c1"));
    expect(e.code).toBe(Code.FAILED_PRECONDITION);
    expect(e.message).toContain(`the resctrl group ${join(root, "gold")} (linux.intelRdt.closID without schemas) does not exist`);
    expect(existsSync(join(root, "gold"))).toBe(false);
  });

  test("schemata the kernel refuses: FAILED_PRECONDITION quoting info/last_cmd_status; a group that was there is left", () => {
    writeFileSync(join(root, "info", "last_cmd_status"), "Unknown or unsupported resource name 'L9'\n");
    const plan = { dir: join(root, "c1"), schemata: "L9:0=1", mustExist: false, runcConfig: {} };
    // Where the schemata file cannot be written (a directory in its place), as a refusing kernel fails the write.
    mkdirSync(join(root, "c1"));
    mkdirSync(join(root, "c1", "schemata"));
    const e = errorOf(() => applyIntelRdtGroup(plan, "restore c1"));
    expect(e.code).toBe(Code.FAILED_PRECONDITION);
    expect(e.message).toContain("(last_cmd_status: Unknown or unsupported resource name 'L9')");
    expect(existsSync(join(root, "c1"))).toBe(true); // it existed before: left
  });

  test("the CRIU helper joins a cgroup through cgroup.procs and a resctrl group through tasks, after the cgroups", () => {
    mkdirSync(join(root, "c1"));
    writeFileSync(join(root, "c1", "tasks"), "");
    expect(joinFile(join(root, "c1"))).toBe(join(root, "c1", "tasks"));
    writeFileSync(join(root, "c1", "cgroup.procs"), "");
    expect(joinFile(join(root, "c1"))).toBe(join(root, "c1", "cgroup.procs"));
    // A v1 pids cgroup: the main thread only (the helper's other threads would count against the limit).
    writeFileSync(join(root, "c1", "pids.max"), "max");
    expect(joinFile(join(root, "c1"))).toBe(join(root, "c1", "tasks"));
    expect(restoreJoinDirs({ cpu: "/c/c1", "": "/u/c1" }, join(root, "c1"))).toEqual(["/c/c1", "/u/c1", join(root, "c1")]);
    // Not the memory, pids and freezer cgroups (CRIU moves the tree in), unless asked for every one.
    expect(restoreJoinDirs({ memory: "/m/c1", pids: "/p/c1", freezer: "/f/c1", devices: "/d/c1" })).toEqual(["/d/c1"]);
    expect(restoreJoinDirs({ memory: "/m/c1", pids: "/p/c1" }, undefined, [])).toEqual(["/m/c1", "/p/c1"]);
  });
});
