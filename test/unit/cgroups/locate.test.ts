import { describe, expect, test } from "bun:test";
import { Code, CryoError } from "../../../src/errors.ts";
import { locationFromCgroupsPath, locationFromRuncPaths, normaliseCgroupsPath } from "../../../src/cgroups/locate.ts";
import { parseProcCgroup } from "../../../src/cgroups/parse.ts";
import { findCgroupMounts, parseMountinfo } from "../../../src/cgroups/mountinfo.ts";

const hybrid = `31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
33 31 0:30 / /sys/fs/cgroup/cpuacct rw,relatime - cgroup cgroup rw,cpuacct
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
37 31 0:34 / /sys/fs/cgroup/freezer rw,relatime - cgroup cgroup rw,freezer
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
22 1 8:1 / / rw,relatime - ext4 /dev/sda1 rw`;

const comounted = `25 20 0:22 / /sys/fs/cgroup rw - tmpfs tmpfs rw
26 25 0:23 / /sys/fs/cgroup/cpu,cpuacct rw shared:9 - cgroup cgroup rw,cpu,cpuacct
27 25 0:24 / /sys/fs/cgroup/memory rw shared:10 - cgroup cgroup rw,memory`;

const unified = `25 20 0:22 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:4 - cgroup2 cgroup2 rw,nsdelegate,memory_recursiveprot
22 1 8:1 / / rw,relatime - ext4 /dev/sda1 rw`;

describe("mount detection", () => {
  test("hybrid: v1 controllers and cgroup2 at unified", () => {
    const m = findCgroupMounts(parseMountinfo(hybrid));
    expect(m.mode).toBe("hybrid");
    expect(m.unified).toBe("/sys/fs/cgroup/unified");
    expect(m.v1.get("memory")).toBe("/sys/fs/cgroup/memory");
    expect(m.v1.get("name=systemd")).toBe("/sys/fs/cgroup/systemd");
    expect(m.v1.has("rw")).toBe(false);
    expect(m.v1.has("relatime")).toBe(false);
  });
  test("legacy with co-mounted cpu,cpuacct", () => {
    const m = findCgroupMounts(parseMountinfo(comounted));
    expect(m.mode).toBe("legacy");
    expect(m.unified).toBeUndefined();
    expect(m.v1.get("cpu")).toBe("/sys/fs/cgroup/cpu,cpuacct");
    expect(m.v1.get("cpuacct")).toBe("/sys/fs/cgroup/cpu,cpuacct");
  });
  test("unified", () => {
    const m = findCgroupMounts(parseMountinfo(unified));
    expect(m.mode).toBe("unified");
    expect(m.unified).toBe("/sys/fs/cgroup");
    expect(m.v1.size).toBe(0);
  });
  test("octal escapes in mount points", () => {
    const [e] = parseMountinfo("1 2 0:1 / /mnt/a\\040b rw - tmpfs tmpfs rw");
    expect(e!.mountPoint).toBe("/mnt/a b");
  });
});

describe("from runc state cgroup_paths", () => {
  test("v1 map, the unified entry of a hybrid host dropped", () => {
    const loc = locationFromRuncPaths({
      memory: "/sys/fs/cgroup/memory/default/c1",
      freezer: "/sys/fs/cgroup/freezer/default/c1",
      "": "/sys/fs/cgroup/unified/default/c1",
    });
    expect(loc).toEqual({
      version: 1,
      paths: { memory: "/sys/fs/cgroup/memory/default/c1", freezer: "/sys/fs/cgroup/freezer/default/c1" },
    });
  });
  test("v2: only the unified entry", () => {
    expect(locationFromRuncPaths({ "": "/sys/fs/cgroup/default/c1" })).toEqual({ version: 2, path: "/sys/fs/cgroup/default/c1" });
  });
  test("bad input is INVALID_ARGUMENT", () => {
    for (const bad of [{}, null, "x", { memory: "relative/path" }, { memory: "/sys/fs/cgroup/memory/../x" }, { memory: 3 }]) {
      let err: unknown;
      try {
        locationFromRuncPaths(bad);
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(CryoError);
      expect((err as CryoError).code).toBe(Code.INVALID_ARGUMENT);
    }
  });
});

describe("from OCI cgroupsPath", () => {
  test("v1 on a hybrid host: every controller", () => {
    const loc = locationFromCgroupsPath("/default/c1", findCgroupMounts(parseMountinfo(hybrid)));
    expect(loc.version).toBe(1);
    if (loc.version !== 1) throw new Error("unreachable");
    expect(loc.paths.memory).toBe("/sys/fs/cgroup/memory/default/c1");
    expect(loc.paths.cpuacct).toBe("/sys/fs/cgroup/cpuacct/default/c1");
    expect(loc.paths["name=systemd"]).toBe("/sys/fs/cgroup/systemd/default/c1");
  });
  test("v2 forced on a hybrid host goes under /sys/fs/cgroup/unified", () => {
    expect(locationFromCgroupsPath("/default/c1", findCgroupMounts(parseMountinfo(hybrid)), 2)).toEqual({
      version: 2,
      path: "/sys/fs/cgroup/unified/default/c1",
    });
  });
  test("v2 on a unified host", () => {
    expect(locationFromCgroupsPath("default/c1/", findCgroupMounts(parseMountinfo(unified)))).toEqual({
      version: 2,
      path: "/sys/fs/cgroup/default/c1",
    });
  });
  test("co-mounted controllers share one directory", () => {
    const loc = locationFromCgroupsPath("/k8s/pod", findCgroupMounts(parseMountinfo(comounted)));
    if (loc.version !== 1) throw new Error("expected v1");
    expect(loc.paths.cpu).toBe("/sys/fs/cgroup/cpu,cpuacct/k8s/pod");
    expect(loc.paths.cpu).toBe(loc.paths.cpuacct!);
  });
  test("systemd paths, .. and the root are rejected", () => {
    for (const p of ["system.slice:cri:abc", "/a/../b", "/", ""]) {
      expect(() => normaliseCgroupsPath(p)).toThrow(CryoError);
    }
  });
  test("a relative path is below the asking process's own cgroup in each hierarchy, as runc resolves it", () => {
    // runc (its fs manager) joins a relative path to its own cgroup, inherited from the shim; the shim's memory cgroup
    // here is not the root (found on a host whose shims ran in a memory cgroup of their own).
    const own = parseProcCgroup("4:memory:/svc/ctd\n2:cpuacct:/\n1:cpu:/\n6:freezer:/\n9:name=systemd:/system.slice/ctd.service\n0::/system.slice/ctd.service\n");
    const loc = locationFromCgroupsPath("rel/c1", findCgroupMounts(parseMountinfo(hybrid)), undefined, own);
    if (loc.version !== 1) throw new Error("expected v1");
    expect(loc.paths.memory).toBe("/sys/fs/cgroup/memory/svc/ctd/rel/c1");
    expect(loc.paths.cpu).toBe("/sys/fs/cgroup/cpu/rel/c1");
    expect(loc.paths["name=systemd"]).toBe("/sys/fs/cgroup/systemd/system.slice/ctd.service/rel/c1");
    // The hybrid cgroup2 directory: below the own cgroup too (runc's fs); on a unified host below its parent (fs2).
    expect(locationFromCgroupsPath("rel/c1", findCgroupMounts(parseMountinfo(hybrid)), 2, own)).toEqual({ version: 2, path: "/sys/fs/cgroup/unified/system.slice/ctd.service/rel/c1" });
    expect(locationFromCgroupsPath("rel/c1", findCgroupMounts(parseMountinfo(unified)), undefined, own)).toEqual({ version: 2, path: "/sys/fs/cgroup/system.slice/rel/c1" });
    // An absolute path ignores it; without it a relative path is below the root.
    expect(locationFromCgroupsPath("/rel/c1", findCgroupMounts(parseMountinfo(hybrid)), undefined, own)).toEqual(locationFromCgroupsPath("/rel/c1", findCgroupMounts(parseMountinfo(hybrid))));
    expect(locationFromCgroupsPath("rel/c1", findCgroupMounts(parseMountinfo(unified)))).toEqual({ version: 2, path: "/sys/fs/cgroup/rel/c1" });
  });
  test("no v2 mount on a legacy host", () => {
    expect(() => locationFromCgroupsPath("/a", findCgroupMounts(parseMountinfo(comounted)), 2)).toThrow(/no cgroup2/);
  });
});
