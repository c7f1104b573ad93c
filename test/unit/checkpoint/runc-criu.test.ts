import { describe, expect, test } from "bun:test";
import { containerDumpOpts, containerRestorePlan, readHostCgroupFacts, resolveCheckpointPlan, runcContainerFrom } from "../../../src/checkpoint/index.ts";
import { Code, CryoError } from "../../../src/errors.ts";
import { cgroupYard, restoreCgroupRoots, restoreJoinDirs, emptyTmpfsMounts, MASKED_DIR_KEY, MASKED_DIR_SOURCE, maskedDirs, tmpfsEntries, tmpfsRoot, type TmpfsEntry } from "../../../src/checkpoint/runc-criu.ts";
import { thawRestored } from "../../../src/shim/restore-cgroups.ts";
import { makeTmpfsEntries } from "../../../src/shim/restore-staging.ts";
import { mknod, S_IFCHR } from "../../../src/sys/mknod.ts";
import { chmodSync, chownSync, existsSync, linkSync, lchownSync, lstatSync, lutimesSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, utimesSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

const mountinfo = [
  "31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755",
  "35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory",
  "40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd",
  "41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw",
].join("\n");

const state = {
  id: "c1",
  init_process_pid: 4242,
  cgroup_paths: { memory: "/sys/fs/cgroup/memory/c1", freezer: "/sys/fs/cgroup/freezer/c1", "": "/sys/fs/cgroup/unified/c1" },
  external_descriptors: ["/dev/null", "pipe:[100]", "pipe:[101]"],
  config: {
    rootfs: "/b/rootfs",
    mounts: [
      { device: "proc", source: "proc", destination: "/proc" },
      { device: "tmpfs", source: "tmpfs", destination: "/dev" },
      { device: "bind", source: "/srv/data", destination: "/data" },
      { device: "cgroup", source: "cgroup", destination: "/sys/fs/cgroup" },
    ],
    mask_paths: ["/proc/kcore", "/proc/acpi"],
    devices: [{ path: "/dev/null" }],
    namespaces: [{ type: "NEWPID" }, { type: "NEWNET", path: "/var/run/netns/x" }, { type: "NEWIPC", path: "/proc/1/ns/ipc" }],
  },
  other: "ignored",
};

describe("runc container -> CRIU options", () => {
  test("host cgroup v1 mount points come from mountinfo (cgroup2 is not one)", () => {
    expect(readHostCgroupFacts(mountinfo).v1Mountpoints).toEqual(["/sys/fs/cgroup/memory", "/sys/fs/cgroup/systemd"]);
  });

  test("dump: root, external mounts, masked files, devices, external netns, freezer, plan flags", () => {
    const c = runcContainerFrom(state);
    const plan = resolveCheckpointPlan({ annotations: { "cryo.checkpoint/tcp-established": "true", "cryo.checkpoint/exit": "true" } });
    const opts = containerDumpOpts({ plan, container: c, imagesDir: "/img", host: readHostCgroupFacts(mountinfo), maskedFiles: ["/proc/kcore"], externalNs: { net: 4026532000 } });
    expect(opts).toMatchObject({ imagesDir: "/img", pid: 4242, root: "/b/rootfs", leaveRunning: false, tcpEstablished: true, manageCgroups: true, manageCgroupsMode: "soft", orphanPtsMaster: true, freezeCgroup: "/sys/fs/cgroup/freezer/c1", networkLock: "nftables" });
    expect(opts.extMounts).toEqual([
      { key: "/data", value: "/data" },
      { key: "/sys/fs/cgroup/memory", value: "/sys/fs/cgroup/memory" },
      { key: "/sys/fs/cgroup/systemd", value: "/sys/fs/cgroup/systemd" },
      { key: "/proc/kcore", value: "/dev/null" },
      { key: "/dev/null", value: "/dev/null" },
    ]);
    expect(opts.external).toEqual(["net[4026532000]:extRootNetNS"]);
  });

  test("freezer: cgroup v2 (runc's state names only the unified directory) freezes through it, whatever v1 mounts the shim's mount table shows", () => {
    const v2 = runcContainerFrom({ ...state, cgroup_paths: { "": "/sys/fs/cgroup/v2/c1" } });
    const plan = resolveCheckpointPlan({});
    // A v1 hierarchy still in the mount table (a mount namespace copied from the host's): the container is still v2.
    for (const host of [{ v1Mountpoints: [] }, readHostCgroupFacts(mountinfo)]) {
      expect(containerDumpOpts({ plan, container: v2, imagesDir: "/img", host, maskedFiles: [], externalNs: {} }).freezeCgroup).toBe("/sys/fs/cgroup/v2/c1");
    }
    // v1 without a freezer path (only memory, and the unified directory runc adds on a hybrid host): CRIU seizes through ptrace.
    const noFreezer = runcContainerFrom({ ...state, cgroup_paths: { memory: "/sys/fs/cgroup/memory/c1", "": "/sys/fs/cgroup/unified/c1" } });
    expect(containerDumpOpts({ plan, container: noFreezer, imagesDir: "/img", host: { v1Mountpoints: [] }, maskedFiles: [], externalNs: {} }).freezeCgroup).toBeUndefined();
  });

  test("masked directories (an empty read-only tmpfs, or a restored container's bind of the host's empty directory) are dumped as external mounts, and bound to an empty host directory at restore", () => {
    const dir = mkdtempSync(join(tmpdir(), "cryo-masked-"));
    try {
      mkdirSync(join(dir, "empty"));
      mkdirSync(join(dir, "full"));
      writeFileSync(join(dir, "full", "f"), "x");
      mkdirSync(join(dir, "rw"));
      mkdirSync(join(dir, "bound"));
      mkdirSync(join(dir, "nomount"));
      const p = (n: string) => join(dir, n);
      // This process stands in for the container's init: /proc/<pid>/root is "/".
      const c = runcContainerFrom({ ...state, init_process_pid: process.pid, config: { ...state.config, mask_paths: ["/proc/kcore", p("empty"), p("full"), p("rw"), p("bound"), p("nomount"), p("gone")] } });
      const info = [
        `60 50 0:48 / ${p("empty")} ro,relatime - tmpfs tmpfs ro`,
        `61 50 0:49 / ${p("full")} ro,relatime - tmpfs tmpfs ro`,
        `62 50 0:50 / ${p("rw")} rw,relatime - tmpfs tmpfs rw`,
        // A container cryo restored: MASKED_DIR_SOURCE of a host whose /run is ext4, bound read-only.
        `63 50 254:0 ${MASKED_DIR_SOURCE} ${p("bound")} ro,relatime - ext4 /dev/vda rw`,
        `64 50 0:51 / ${p("gone")} ro,relatime - tmpfs tmpfs ro`,
      ].join("\n");
      expect(maskedDirs(c, info)).toEqual([p("empty"), p("bound")]);
      const plan = resolveCheckpointPlan({});
      const opts = containerDumpOpts({ plan, container: c, imagesDir: "/img", host: readHostCgroupFacts(mountinfo), maskedFiles: ["/proc/kcore"], maskedDirs: [p("empty")], externalNs: {} });
      expect(opts.extMounts).toContainEqual({ key: p("empty"), value: MASKED_DIR_KEY });
      // A mountpoint with an escaped space, as mountinfo writes it.
      mkdirSync(join(dir, "a b"));
      const spaced = runcContainerFrom({ ...state, init_process_pid: process.pid, config: { ...state.config, mask_paths: [p("a b")] } });
      expect(maskedDirs(spaced, `65 50 0:52 / ${p("a\\040b")} ro - tmpfs tmpfs ro`)).toEqual([p("a b")]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test("empty writable tmpfs mounts: dumped as external under their key with their options and source; restored from the caller's new tmpfs", () => {
    const dir = mkdtempSync(join(tmpdir(), "cryo-tmpfs-"));
    try {
      for (const n of ["run", "shm", "full", "ro", "part", "masked", "dev"]) mkdirSync(join(dir, n));
      writeFileSync(join(dir, "full", "f"), "x");
      symlinkSync("/proc/self/fd", join(dir, "dev", "fd"));
      const p = (n: string) => join(dir, n);
      const tmpfs = (d: string) => ({ device: "tmpfs", source: "tmpfs", destination: `/b/rootfs${d}` });
      const mounts = [...["run", "shm", "full", "ro", "part", "masked", "gone", "odd", "dev"].map((n) => tmpfs(p(n))), { device: "bind", source: "/host/shm", destination: p("podshm") }];
      mkdirSync(p("podshm"));
      const c = runcContainerFrom({ ...state, init_process_pid: process.pid, config: { ...state.config, mounts, mask_paths: [p("masked")] } });
      const info = [
        `70 60 0:40 / ${p("run")} rw,nosuid - tmpfs tmpfs rw,size=65536k,mode=755`,
        `71 60 0:41 / ${p("shm")} rw,nosuid,nodev,noexec,relatime - tmpfs shm rw,size=65536k`,
        `72 60 0:42 / ${p("full")} rw - tmpfs tmpfs rw`,
        `73 60 0:43 / ${p("ro")} ro - tmpfs tmpfs ro`,
        `74 60 0:44 /sub ${p("part")} rw - tmpfs tmpfs rw`,
        `75 60 0:45 / ${p("masked")} rw - tmpfs tmpfs rw`,
        `76 60 254:0 / ${p("gone")} rw - tmpfs tmpfs rw`,
        `77 60 0:46 / ${p("odd")} rw - tmpfs tmpfs rw,size=1k,bad"opt`,
        "78 60 0:47 / / rw - tmpfs tmpfs rw",
        // A bind of a tmpfs (CRI's pod /dev/shm): a bind mount of the spec, not runc's tmpfs.
        `79 60 0:48 / ${p("podshm")} rw - tmpfs shm rw,size=65536k`,
        // A tmpfs the spec does not have (mounted by the container itself).
        `80 60 0:49 / ${p("shm")}/inner rw - tmpfs tmpfs rw`,
        // Device nodes and symlinks, no file data (runc's /dev): its entries go with it.
        `81 60 0:50 / ${p("dev")} rw,nosuid - tmpfs tmpfs rw,size=65536k,mode=755`,
      ].join("\n");
      const found = emptyTmpfsMounts(c, info);
      // Each with its root directory's mode, owner and times, as the container left them.
      for (const t of found) {
        const { atimeMs: _, ...now } = tmpfsRoot(process.pid, t.mountpoint)!; // its atime moved: the walk read it
        expect(t.root).toMatchObject(now);
      }
      expect(found.map(({ root: _, ...t }) => ({ ...t, ...(t.entries ? { entries: t.entries.map(({ atimeMs: _a, mtimeMs: _m, ...e }) => e) } : {}) }))).toEqual([
        { key: `cryo-empty-tmpfs${p("run")}`, mountpoint: p("run"), options: "size=65536k,mode=755", source: "tmpfs" },
        { key: `cryo-empty-tmpfs${p("shm")}`, mountpoint: p("shm"), options: "size=65536k", source: "shm" },
        {
          key: `cryo-empty-tmpfs${p("dev")}`,
          mountpoint: p("dev"),
          options: "size=65536k,mode=755",
          source: "tmpfs",
          entries: [{ path: "fd", type: "symlink", mode: 0o777, uid: 0, gid: 0, target: "/proc/self/fd" }],
        },
      ]);
      const plan = resolveCheckpointPlan({});
      const opts = containerDumpOpts({ plan, container: c, imagesDir: "/img", host: readHostCgroupFacts(mountinfo), maskedFiles: [], emptyTmpfs: found, externalNs: {} });
      expect(opts.extMounts).toContainEqual({ key: p("run"), value: `cryo-empty-tmpfs${p("run")}` });
      const r = containerRestorePlan({
        plan,
        container: c,
        imagesDir: "/img",
        criuRoot: "/r",
        host: readHostCgroupFacts(mountinfo),
        cgroupPaths: { memory: "/sys/fs/cgroup/memory/c2", "name=systemd": "/sys/fs/cgroup/systemd/c2", "": "/sys/fs/cgroup/unified/c2" },
        descriptors: state.external_descriptors,
        emptyTmpfs: [{ key: found[0]!.key, source: "/work/tmpfs-0" }],
      });
      expect(r.opts.extMounts).toContainEqual({ key: found[0]!.key, value: "/work/tmpfs-0" });
      // A pre-dump keeps them out, as every mount.
      expect(containerDumpOpts({ plan: resolveCheckpointPlan({ defaults: { preDump: true } }), container: c, imagesDir: "/img", host: readHostCgroupFacts(mountinfo), maskedFiles: [], emptyTmpfs: found, externalNs: {} }).extMounts).toBeUndefined();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test("a tmpfs without file data: its entries (dirs, symlinks, devices, empty files) are recorded and made again alike; anything else is left to CRIU", () => {
    const dir = mkdtempSync(join(tmpdir(), "cryo-tmpfs-entries-"));
    try {
      const src = join(dir, "src");
      mkdirSync(src);
      mknod(join(src, "null"), S_IFCHR, 0o666, 1, 3);
      chmodSync(join(src, "null"), 0o666);
      mknod(join(src, "big"), S_IFCHR, 0o600, 259, 70000); // device numbers beyond 8 bits
      symlinkSync("/proc/self/fd", join(src, "fd"));
      lchownSync(join(src, "fd"), 7, 8);
      mkdirSync(join(src, "pts"));
      chmodSync(join(src, "pts"), 0o1777);
      writeFileSync(join(src, "pts", "console"), "");
      chownSync(join(src, "pts", "console"), 0, 5);
      chmodSync(join(src, "pts", "console"), 0o620);
      const entries = tmpfsEntries(process.pid, src)!;
      const byPath = Object.fromEntries(entries.map((e) => [e.path, e]));
      expect(Object.keys(byPath).sort()).toEqual(["big", "fd", "null", "pts", "pts/console"]);
      expect(byPath.null).toMatchObject({ path: "null", type: "char", mode: 0o666, uid: 0, gid: 0, major: 1, minor: 3 });
      expect(byPath.big).toMatchObject({ type: "char", major: 259, minor: 70000 });
      expect(byPath.fd).toMatchObject({ path: "fd", type: "symlink", mode: 0o777, uid: 7, gid: 8, target: "/proc/self/fd" });
      expect(byPath.pts).toMatchObject({ type: "dir", mode: 0o1777 });
      expect(byPath["pts/console"]).toMatchObject({ path: "pts/console", type: "file", mode: 0o620, uid: 0, gid: 5 });
      expect(entries.findIndex((e) => e.path === "pts")).toBeLessThan(entries.findIndex((e) => e.path === "pts/console"));

      // Times too: a file, a symlink and a directory from the past (the root's as well, with its mode and owner).
      lutimesSync(join(src, "fd"), 1_000_000_000, 1_000_000_000.5);
      utimesSync(join(src, "pts", "console"), 1_100_000_000, 1_200_000_000.25);
      utimesSync(join(src, "pts"), 1_300_000_000, 1_300_000_000);
      chmodSync(src, 0o710);
      chownSync(src, 33, 44);
      utimesSync(src, 1_400_000_000, 1_400_000_000);
      const root = tmpfsRoot(process.pid, src)!; // before the walk, which reads the directory
      const timed = tmpfsEntries(process.pid, src)!;
      expect(timed.find((e) => e.path === "pts/console")).toMatchObject({ atimeMs: 1_100_000_000_000, mtimeMs: 1_200_000_000_250 });
      expect(root).toEqual({ mode: 0o710, uid: 33, gid: 44, atimeMs: 1_400_000_000_000, mtimeMs: 1_400_000_000_000 });

      const dst = join(dir, "dst");
      mkdirSync(dst);
      makeTmpfsEntries(dst, timed, root);
      const again = tmpfsEntries(process.pid, dst)!;
      const sorted = (l: TmpfsEntry[]) => [...l].sort((a, b) => a.path.localeCompare(b.path));
      expect(sorted(again)).toEqual(sorted(timed));
      expect(tmpfsRoot(process.pid, dst)).toMatchObject({ mode: 0o710, uid: 33, gid: 44, mtimeMs: 1_400_000_000_000 });
      expect(lstatSync(join(dst, "big")).rdev).toBe(lstatSync(join(src, "big")).rdev);

      expect(tmpfsEntries(process.pid, join(dir, "missing"))).toBeUndefined();
      // File data, a fifo, a hard link: CRIU's tar keeps those.
      writeFileSync(join(src, "data"), "x");
      expect(tmpfsEntries(process.pid, src)).toBeUndefined();
      rmSync(join(src, "data"));
      expect(Bun.spawnSync(["mkfifo", join(src, "fifo")]).exitCode).toBe(0);
      expect(tmpfsEntries(process.pid, src)).toBeUndefined();
      rmSync(join(src, "fifo"));
      linkSync(join(src, "pts", "console"), join(src, "link"));
      expect(tmpfsEntries(process.pid, src)).toBeUndefined();
      rmSync(join(src, "link"));
      expect(tmpfsEntries(process.pid, src)).toHaveLength(5);

      // Made again only inside dst: a parent that is a symlink (or not made before) is refused before anything outside is touched.
      const out = join(dir, "outside");
      mkdirSync(out);
      const evil = join(dir, "evil");
      mkdirSync(evil);
      const lead = { path: "up", type: "symlink", mode: 0o777, uid: 0, gid: 0, target: out } as const;
      expect(() => makeTmpfsEntries(evil, [lead, { path: "up/planted", type: "file", mode: 0o644, uid: 0, gid: 0 }])).toThrow(CryoError);
      expect(() => makeTmpfsEntries(evil, [{ path: "nodir/x", type: "file", mode: 0o644, uid: 0, gid: 0 }])).toThrow(CryoError);
      expect(existsSync(join(out, "planted"))).toBe(false);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test("the host's /sys/fs/cgroup is CRIU's cgroup yard for a dump only when every hierarchy of the container is mounted there whole", () => {
    const hybrid = [
      "30 23 0:26 / /sys/fs/cgroup ro,nosuid - tmpfs tmpfs ro,mode=755",
      "31 30 0:27 / /sys/fs/cgroup/unified rw - cgroup2 cgroup2 rw",
      "32 30 0:28 / /sys/fs/cgroup/systemd rw - cgroup cgroup rw,xattr,name=systemd",
      "33 30 0:29 / /sys/fs/cgroup/cpu,cpuacct rw - cgroup cgroup rw,cpu,cpuacct",
      "34 30 0:30 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory",
    ].join("\n");
    const procCgroup = "4:memory:/c1\n3:cpu,cpuacct:/c1\n2:name=systemd:/c1\n0::/c1\n";
    expect(cgroupYard(1, hybrid, procCgroup)).toBe("/sys/fs/cgroup");
    // A hierarchy mounted elsewhere, or not whole, or not at all; another file system at the place; a pure v2 host.
    expect(cgroupYard(1, hybrid.replace("/sys/fs/cgroup/memory", "/cg/memory"), procCgroup)).toBeUndefined();
    expect(cgroupYard(1, hybrid.replace("34 30 0:30 / ", "34 30 0:30 /sub "), procCgroup)).toBeUndefined();
    expect(cgroupYard(1, hybrid, `${procCgroup}5:pids:/c1\n`)).toBeUndefined();
    expect(cgroupYard(1, hybrid.replace("cgroup2 cgroup2 rw", "tmpfs tmpfs rw"), procCgroup)).toBeUndefined();
    expect(cgroupYard(1, hybrid.replace("rw,cpu,cpuacct", "rw,cpu"), procCgroup)).toBeUndefined();
    expect(cgroupYard(1, "40 23 0:26 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw", "0::/c1\n")).toBeUndefined();
    expect(cgroupYard(1, hybrid, "")).toBeUndefined();
    expect(cgroupYard(2 ** 22 + 1)).toBeUndefined(); // no such process
    const plan = resolveCheckpointPlan({});
    const c = runcContainerFrom(state);
    const base = { plan, container: c, imagesDir: "/img", host: readHostCgroupFacts(mountinfo), maskedFiles: [], externalNs: {} };
    expect(containerDumpOpts({ ...base, cgroupYard: "/sys/fs/cgroup" }).cgYard).toBe("/sys/fs/cgroup");
    expect(containerDumpOpts(base).cgYard).toBeUndefined();
  });

  test("pre-dump leaves mounts out; a parent image turns on memory tracking", () => {
    const c = runcContainerFrom(state);
    const plan = resolveCheckpointPlan({ defaults: { preDump: true, parentPath: "../pre" } });
    const opts = containerDumpOpts({ plan, container: c, imagesDir: "/img", host: readHostCgroupFacts(mountinfo), maskedFiles: [], externalNs: {} });
    expect(opts.extMounts).toBeUndefined();
    expect(opts.trackMem).toBe(true);
    expect(opts.parentImages).toBe("../pre");
  });

  test("binds and cgroup binds are keyed where they land (resolveDest: the rootfs's links resolved), as runc keys them, at dump and at restore; masks and devices as they are", () => {
    const c = runcContainerFrom(state);
    // /data is a link to /srv-in-root/data in this rootfs; the cgroup mount's parent /sys a link to /host-sys.
    const resolveDest = (d: string) => d.replace(/^\/data/, "/srv-in-root/data").replace(/^\/sys/, "/host-sys");
    const dump = containerDumpOpts({ plan: resolveCheckpointPlan({}), container: c, imagesDir: "/img", host: readHostCgroupFacts(mountinfo), maskedFiles: ["/proc/kcore"], externalNs: {}, resolveDest });
    expect(dump.extMounts).toEqual([
      { key: "/srv-in-root/data", value: "/srv-in-root/data" },
      { key: "/host-sys/fs/cgroup/memory", value: "/host-sys/fs/cgroup/memory" },
      { key: "/host-sys/fs/cgroup/systemd", value: "/host-sys/fs/cgroup/systemd" },
      { key: "/proc/kcore", value: "/dev/null" },
      { key: "/dev/null", value: "/dev/null" },
    ]);
    const restore = containerRestorePlan({
      plan: resolveCheckpointPlan({}),
      container: c,
      imagesDir: "/img",
      criuRoot: "/r",
      host: readHostCgroupFacts(mountinfo),
      cgroupPaths: { memory: "/sys/fs/cgroup/memory/c2", "name=systemd": "/sys/fs/cgroup/systemd/c2" },
      descriptors: state.external_descriptors,
      resolveDest,
    });
    expect(restore.opts.extMounts).toContainEqual({ key: "/srv-in-root/data", value: "/srv/data" });
    expect(restore.opts.extMounts).toContainEqual({ key: "/host-sys/fs/cgroup/memory", value: "/sys/fs/cgroup/memory/c2" });
    expect(restore.opts.extMounts).toContainEqual({ key: "/dev/null", value: "/dev/null" });
  });

  test("restore: mounts mapped to the new container's sources, pipes re-wired, namespaces handed in", () => {
    const c = runcContainerFrom({ ...state, id: "c2", config: { ...state.config, rootfs: "/b2/rootfs" } });
    const plan = resolveCheckpointPlan({ defaults: { lsmProfile: "apparmor:x" } });
    const r = containerRestorePlan({
      plan,
      container: c,
      imagesDir: "/img",
      criuRoot: "/run/c2/criu-root",
      host: readHostCgroupFacts(mountinfo),
      cgroupPaths: { memory: "/sys/fs/cgroup/memory/c2", "name=systemd": "/sys/fs/cgroup/systemd/c2", "": "/sys/fs/cgroup/unified/c2" },
      descriptors: state.external_descriptors,
      vethPairs: [{ inside: "eth0", outside: "veth1" }],
    });
    expect(r.opts).toMatchObject({ root: "/run/c2/criu-root", evasiveDevices: true, manageCgroups: true, lsmProfile: "apparmor:x", vethPairs: [{ inside: "eth0", outside: "veth1" }], networkLock: "nftables" });
    // A checkpoint locked with iptables is unlocked with iptables.
    expect(containerRestorePlan({ plan: { ...plan, networkLock: "iptables" }, container: c, imagesDir: "/img", criuRoot: "/r", host: readHostCgroupFacts(mountinfo), cgroupPaths: { memory: "/sys/fs/cgroup/memory/c2", "name=systemd": "/sys/fs/cgroup/systemd/c2", "": "/sys/fs/cgroup/unified/c2" }, descriptors: state.external_descriptors }).opts.networkLock).toBe("iptables");
    expect(r.opts.extMounts).toEqual([
      { key: "/data", value: "/srv/data" },
      { key: "/sys/fs/cgroup/memory", value: "/sys/fs/cgroup/memory/c2" },
      { key: "/sys/fs/cgroup/systemd", value: "/sys/fs/cgroup/systemd/c2" },
      { key: "/dev/null", value: "/dev/null" },
      { key: MASKED_DIR_KEY, value: MASKED_DIR_SOURCE },
    ]);
    expect(r.stdioKeys).toEqual([
      { index: 1, key: "pipe:[100]" },
      { index: 2, key: "pipe:[101]" },
    ]);
    expect(r.namespaceFds).toEqual([{ key: "extRootNetNS", path: "/var/run/netns/x" }]);
    expect(r.opts.joinNs).toEqual([{ ns: "ipc", file: "/proc/1/ns/ipc" }]);
    // The helper stays out of the memory cgroup (its own memory would count against the container's limit, and the OOM
    // killer would pick it there): CRIU moves the tree in, through the cgroup root given for memory.
    expect(r.joinCgroups).toEqual(["/sys/fs/cgroup/systemd/c2", "/sys/fs/cgroup/unified/c2"]);
    expect(r.opts.cgRoots).toEqual([{ controller: "memory", path: "/c2" }]);
    // In CRIU's ignore mode the tree stays where CRIU is: the helper joins every cgroup, and no root is given.
    const ignore = containerRestorePlan({ plan: { ...plan, cgroupMode: "ignore" }, container: c, imagesDir: "/img", criuRoot: "/r", host: readHostCgroupFacts(mountinfo), cgroupPaths: { memory: "/sys/fs/cgroup/memory/c2", "name=systemd": "/sys/fs/cgroup/systemd/c2", "": "/sys/fs/cgroup/unified/c2" }, descriptors: [] });
    expect(ignore.joinCgroups).toEqual(["/sys/fs/cgroup/memory/c2", "/sys/fs/cgroup/systemd/c2", "/sys/fs/cgroup/unified/c2"]);
    expect(ignore.opts.cgRoots).toBeUndefined();
  });

  test("restore: cgroup roots for memory and pids, paths in their hierarchies; a directory below no v1 mount point is joined", () => {
    const facts = { v1Mountpoints: ["/sys/fs/cgroup/memory", "/sys/fs/cgroup/pids", "/sys/fs/cgroup/cpu,cpuacct"] };
    expect(restoreCgroupRoots({ memory: "/sys/fs/cgroup/memory/k8s/pod1/c", pids: "/sys/fs/cgroup/pids/k8s/pod1/c", cpu: "/sys/fs/cgroup/cpu,cpuacct/k8s/pod1/c" }, facts.v1Mountpoints)).toEqual([
      { controller: "memory", path: "/k8s/pod1/c" },
      { controller: "pids", path: "/k8s/pod1/c" },
    ]);
    expect(restoreCgroupRoots({ memory: "/sys/fs/cgroup/memory" }, facts.v1Mountpoints)).toEqual([{ controller: "memory", path: "/" }]);
    // /sys/fs/cgroup/memoryx is not below /sys/fs/cgroup/memory.
    expect(restoreCgroupRoots({ memory: "/sys/fs/cgroup/memoryx/c", "": "/sys/fs/cgroup/unified/c" }, facts.v1Mountpoints)).toEqual([]);
    expect(restoreJoinDirs({ memory: "/sys/fs/cgroup/memoryx/c", pids: "/p/c", cpu: "/c/c" }, undefined, [])).toEqual(["/sys/fs/cgroup/memoryx/c", "/p/c", "/c/c"]);
  });

  test("restore of a cgroup v2 container: the helper stays out of its one directory, which CRIU gets as the unified hierarchy's root", () => {
    const v2 = { "": "/sys/fs/cgroup/k8s/pod1/c" };
    const v2Host = readHostCgroupFacts("30 23 0:26 / /sys/fs/cgroup rw,nosuid - cgroup2 cgroup2 rw,nsdelegate");
    expect(v2Host).toEqual({ v1Mountpoints: [], cgroup2Mountpoint: "/sys/fs/cgroup" });
    expect(readHostCgroupFacts(mountinfo).cgroup2Mountpoint).toBe("/sys/fs/cgroup/unified");
    expect(restoreCgroupRoots(v2, v2Host.v1Mountpoints, v2Host.cgroup2Mountpoint)).toEqual([{ controller: "", path: "/k8s/pod1/c" }]);
    expect(restoreJoinDirs(v2)).toEqual([]);
    expect(restoreJoinDirs(v2, "/sys/fs/resctrl/c")).toEqual(["/sys/fs/resctrl/c"]);
    const plan = containerRestorePlan({ plan: resolveCheckpointPlan({}), container: runcContainerFrom({ ...state, cgroup_paths: v2 }), imagesDir: "/i", criuRoot: "/r", host: v2Host, cgroupPaths: v2, descriptors: [] });
    expect(plan.opts.cgRoots).toEqual([{ controller: "", path: "/k8s/pod1/c" }]);
    expect(plan.joinCgroups).toEqual([]);
    // A hybrid host's container (v1 controllers and runc's unified directory): the helper joins the unified one, no root for it.
    const hybrid = { memory: "/sys/fs/cgroup/memory/c", cpu: "/sys/fs/cgroup/cpu/c", "": "/sys/fs/cgroup/unified/c" };
    expect(restoreCgroupRoots(hybrid, ["/sys/fs/cgroup/memory", "/sys/fs/cgroup/cpu"], "/sys/fs/cgroup/unified")).toEqual([{ controller: "memory", path: "/c" }]);
    expect(restoreJoinDirs(hybrid)).toEqual(["/sys/fs/cgroup/cpu/c", "/sys/fs/cgroup/unified/c"]);
    // Ignore mode: no roots, the helper joins it (the tree stays in CRIU's cgroups).
    const ignore = containerRestorePlan({ plan: resolveCheckpointPlan({ defaults: { cgroupMode: "ignore" } }), container: runcContainerFrom({ ...state, cgroup_paths: v2 }), imagesDir: "/i", criuRoot: "/r", host: v2Host, cgroupPaths: v2, descriptors: [] });
    expect(ignore.opts.cgRoots).toBeUndefined();
    expect(ignore.joinCgroups).toEqual(["/sys/fs/cgroup/k8s/pod1/c"]);
  });

  test("empty network namespace wins over veth pairs; a missing cgroup dir is INVALID_ARGUMENT", () => {
    const c = runcContainerFrom(state);
    const plan = resolveCheckpointPlan({ annotations: { "cryo.checkpoint/empty-ns": "network" } });
    const base = { plan, container: c, imagesDir: "/i", criuRoot: "/r", host: readHostCgroupFacts(mountinfo), descriptors: [] };
    const r = containerRestorePlan({ ...base, cgroupPaths: { memory: "/m", "name=systemd": "/s" }, vethPairs: [{ inside: "a", outside: "b" }] });
    expect(r.opts.emptyNs).toEqual(["net"]);
    expect(r.opts.vethPairs).toBeUndefined();
    let e: unknown;
    try {
      containerRestorePlan({ ...base, cgroupPaths: { memory: "/m" } });
    } catch (x) {
      e = x;
    }
    expect((e as CryoError).code).toBe(Code.INVALID_ARGUMENT);
    expect((e as CryoError).message).toContain("cgroup mount systemd");
  });

  test("a malformed state is INVALID_ARGUMENT", () => {
    let e: unknown;
    try {
      runcContainerFrom({ id: "x" });
    } catch (x) {
      e = x;
    }
    expect((e as CryoError).code).toBe(Code.INVALID_ARGUMENT);
  });
});

test("thawRestored: CRIU's full mode left a v1 freezer FROZEN or a v2 cgroup.freeze at 1; both are thawed, a thawed one left alone", () => {
  const d = mkdtempSync(join(tmpdir(), "cryo-thaw-"));
  const lines: string[] = [];
  const log = { info: (m: string) => lines.push(m), warn: (m: string) => lines.push(`warn ${m}`), error: () => {}, debug: () => {}, with: () => log } as unknown as Parameters<typeof thawRestored>[1];
  writeFileSync(join(d, "freezer.state"), "FROZEN\n");
  thawRestored({ freezer: d, memory: "/m" }, log, "r");
  expect(readFileSync(join(d, "freezer.state"), "utf8")).toBe("THAWED");
  writeFileSync(join(d, "cgroup.freeze"), "1\n");
  thawRestored({ "": d }, log, "r");
  expect(readFileSync(join(d, "cgroup.freeze"), "utf8")).toBe("0");
  thawRestored({ "": d }, log, "r");
  expect(lines).toEqual(["r: thawed the restored tree: CRIU restored the freezer state its checkpoint recorded", "r: thawed the restored tree: CRIU restored the freezer state its checkpoint recorded"]);
  rmSync(d, { recursive: true, force: true });
});
