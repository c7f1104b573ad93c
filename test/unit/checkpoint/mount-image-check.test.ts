import { create } from "@bufbuild/protobuf";
import { expect, test } from "bun:test";
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { checkCompatModeMounts, checkMountEntries, checkNestedMountEntries, checkMountpointLinks, externalMountFlags, hostSubmounts, STAGED_MOUNT_FLAGS, type MountSpec } from "../../../src/checkpoint/mount-image-check.ts";
import { Fstype, MntEntrySchema, type MntEntry } from "../../../src/gen/criu/mnt_pb.ts";

// ctr's default spec, as a checkpoint of it records it.
const spec: MountSpec = {
  mounts: [
    { destination: "/proc", type: "proc", options: ["nosuid", "noexec", "nodev"] },
    { destination: "/dev", type: "tmpfs", options: ["nosuid", "strictatime", "mode=755", "size=65536k"] },
    { destination: "/dev/pts", type: "devpts", options: ["nosuid", "noexec", "newinstance"] },
    { destination: "/dev/mqueue", type: "mqueue", options: ["nosuid", "noexec", "nodev"] },
    { destination: "/sys", type: "sysfs", options: ["nosuid", "noexec", "nodev", "ro"] },
    { destination: "/sys/fs/cgroup", type: "cgroup", options: ["nosuid", "noexec", "nodev", "relatime", "ro"] },
    { destination: "/etc/data", type: "bind", options: ["rbind", "ro"] },
  ],
  linux: { maskedPaths: ["/proc/acpi", "/proc/keys", "/proc/kcore", "/sys/firmware"], readonlyPaths: ["/proc/sys", "/proc/bus", "/proc/sysrq-trigger"] },
};
// /proc/kcore and /proc/sysrq-trigger do not exist on this "host".
const exists = (p: string) => !["/proc/kcore", "/proc/sysrq-trigger"].includes(p);
const RO = 0x200001;
const RW = 0x200000;

let id = 100;
// Each file system its own device, as in a real image: a part of one shares the whole's.
const devs: Partial<Record<Fstype, number>> = { [Fstype.OVERLAYFS]: 72, [Fstype.PROC]: 43, [Fstype.SYSFS]: 44, [Fstype.DEVPTS]: 45, [Fstype.MQUEUE]: 46, [Fstype.CGROUP]: 47 };
let tmpfsDev = 60;
const mnt = (fstype: Fstype, mountpoint: string, flags: number, extra: Partial<Omit<MntEntry, "$typeName">> = {}) =>
  create(MntEntrySchema, { fstype, mntId: id++, rootDev: devs[fstype] ?? tmpfsDev++, parentMntId: 97, flags, sbFlags: flags & 1, root: "/", mountpoint, source: "x", options: "", ...extra });

/** The mounts of a checkpoint of that spec, as cryo's dump records them. */
function image(): MntEntry[] {
  return [
    mnt(Fstype.OVERLAYFS, "/", RW),
    mnt(Fstype.PROC, "/proc", RW | 0xe),
    mnt(Fstype.PROC, "/proc/sys", RO | 0xe, { root: "/sys" }),
    mnt(Fstype.PROC, "/proc/bus", RO | 0xe, { root: "/bus" }),
    mnt(Fstype.TMPFS, "/proc/acpi", RO, { extKey: "cryo-masked-dir" }),
    mnt(Fstype.TMPFS, "/proc/keys", RW, { root: "/null", extKey: "/dev/null", rootDev: 5 }),
    mnt(Fstype.TMPFS, "/dev", RW, { extKey: "cryo-empty-tmpfs/dev" }),
    mnt(Fstype.DEVPTS, "/dev/pts", RW),
    mnt(Fstype.MQUEUE, "/dev/mqueue", RW),
    mnt(Fstype.SYSFS, "/sys", RO | 0xe),
    mnt(Fstype.TMPFS, "/sys/firmware", RO, { extKey: "cryo-masked-dir" }),
    // runc 1.1 leaves the tmpfs of a `ro` v1 cgroup mount read-write (seen in a container's mountinfo).
    mnt(Fstype.TMPFS, "/sys/fs/cgroup", RW),
    mnt(Fstype.CGROUP, "/sys/fs/cgroup/memory", RO, { root: "/ns/c1", extKey: "/sys/fs/cgroup/memory" }),
    mnt(Fstype.AUTO, "/etc/data", RO, { fsname: "ext4", extKey: "/etc/data" }),
  ];
}

const refused = (entries: MntEntry[], s: MountSpec = spec) => {
  try {
    checkMountEntries(entries, s, "restore container c1 from /ck", exists, "mountpoints-13.img");
  } catch (err) {
    return (err as Error).message;
  }
  return "accepted";
};
const edit = (fn: (m: MntEntry[]) => void) => {
  const m = image();
  fn(m);
  return m;
};
const at = (m: MntEntry[], p: string) => m.find((e) => e.mountpoint === p)!;

test("a checkpoint of the spec, with its masks and read-only paths, is accepted; paths this host lacks are skipped", () => {
  expect(refused(image())).toBe("accepted");
  // The spec's paths as written, not normalised.
  expect(refused(image(), { ...spec, linux: { maskedPaths: ["/proc/acpi/", "/proc/keys", "sys/firmware"], readonlyPaths: ["/proc//sys", "proc/bus"] } })).toBe("accepted");
});

test("a read-only path left read-write or unmounted, a mask left out: refused, naming the image, the mount and the spec's reason", () => {
  expect(refused(edit((m) => (at(m, "/proc/sys").flags = RW | 0xe)))).toBe(
    "restore container c1 from /ck: invalid argument: mountpoints-13.img: PROC mount at /proc/sys (its /sys) is read-write",
  );
  // Without superblock flags CRIU remounts the bind read-write whatever its flags say.
  expect(refused(edit((m) => delete (at(m, "/proc/sys") as { sbFlags?: number }).sbFlags))).toContain("PROC mount at /proc/sys (its /sys) is read-write");
  // A second procfs beside /proc, or stacked on it, would hide the read-only /proc/sys.
  expect(refused([...image(), mnt(Fstype.PROC, "/proc", RW)])).toContain("2 mounts at /proc that are not each mounted on the one below");
  const base = image();
  const proc = base.find((m) => m.mountpoint === "/proc")!;
  expect(refused([...base, mnt(Fstype.PROC, "/proc", RW | 0xe, { parentMntId: proc.mntId })])).toBe(
    "restore container c1 from /ck: invalid argument: mountpoints-13.img: nothing is mounted at /proc/sys, which the spec makes read-only",
  );
  expect(refused(edit((m) => m.splice(m.indexOf(at(m, "/proc/bus")), 1)))).toBe(
    "restore container c1 from /ck: invalid argument: mountpoints-13.img: nothing is mounted at /proc/bus, which the spec makes read-only",
  );
  // A read-write mount stacked below a read-only path.
  expect(refused([...image(), mnt(Fstype.TMPFS, "/proc/sys/kernel", RW)])).toContain("TMPFS mount at /proc/sys/kernel is read-write, and the spec makes /proc/sys read-only");
  expect(refused(edit((m) => m.splice(m.indexOf(at(m, "/proc/keys")), 1)))).toContain("nothing is mounted at /proc/keys, which the spec masks");
  expect(refused(edit((m) => m.splice(m.indexOf(at(m, "/sys/firmware")), 1)))).toContain("nothing is mounted at /sys/firmware, which the spec masks");
});

test("read-only spec mounts restored read-write, procfs or sysfs elsewhere, file systems the spec does not mount: refused", () => {
  // The rootfs under a spec's root.readonly: read-only in the image (as `ctr run --read-only` records it) is accepted.
  expect(refused(image(), { ...spec, root: { readonly: true } })).toBe("restore container c1 from /ck: invalid argument: mountpoints-13.img: OVERLAYFS mount at /: the rootfs is read-write, and the spec's root.readonly makes it read-only");
  expect(refused(edit((m) => (at(m, "/").flags = RO)), { ...spec, root: { readonly: true } })).toBe("accepted");
  expect(refused(edit((m) => (at(m, "/").flags = RO)), { ...spec, root: { readonly: false } })).toBe("accepted");
  expect(refused(edit((m) => (at(m, "/sys").flags = RW)))).toContain("SYSFS mount at /sys is read-write, and the spec mounts /sys read-only");
  expect(refused(edit((m) => (at(m, "/etc/data").flags = RW)))).toContain("AUTO mount at /etc/data is read-write, and the spec mounts /etc/data read-only");
  expect(refused(edit((m) => (at(m, "/sys/fs/cgroup/memory").flags = RW)))).toContain("CGROUP mount at /sys/fs/cgroup/memory (its /ns/c1) is read-write, and the spec mounts /sys/fs/cgroup read-only");
  // Only runc's tmpfs at the cgroup mount's own place may be read-write: not another tmpfs below it, and not a
  // tmpfs where the spec's read-only mount is of another type.
  expect(refused([...image(), mnt(Fstype.TMPFS, "/sys/fs/cgroup/extra", RW)])).toContain("TMPFS mount at /sys/fs/cgroup/extra is read-write, and the spec mounts /sys/fs/cgroup read-only");
  expect(refused(edit((m) => (at(m, "/sys/fs/cgroup").fstype = Fstype.CGROUP2)))).toContain("CGROUP2 mount at /sys/fs/cgroup is read-write, and the spec mounts /sys/fs/cgroup read-only");
  expect(refused([...image(), mnt(Fstype.PROC, "/hostproc", RW)])).toContain("PROC mount at /hostproc: the spec mounts proc only at /proc");
  expect(refused([...image(), mnt(Fstype.PROC, "/x", RW, { root: "/sys" })])).toContain("PROC mount at /x (its /sys): a part of proc is only mounted over itself");
  expect(refused([...image(), mnt(Fstype.SYSFS, "/s", RO)])).toContain("SYSFS mount at /s: the spec mounts sysfs only at /sys");
  expect(refused([...image(), mnt(Fstype.CGROUP, "/cg", RW, { rootDev: 99 })])).toContain("CGROUP mount at /cg: the spec mounts cgroups only at /sys/fs/cgroup");
  expect(refused([...image(), mnt(Fstype.DEBUGFS, "/d", RW)])).toContain("DEBUGFS mount at /d: a container of the spec mounts no such file system");
  expect(refused([...image(), mnt(Fstype.AUTO, "/t", RW, { fsname: "tracefs" })])).toContain("AUTO mount at /t (tracefs): a container of the spec mounts no such file system");
  // Not even the rootfs's own file system, which CRIU would mount anew where its options differ.
  expect(refused([...image(), mnt(Fstype.OVERLAYFS, "/mnt/again", RW, { root: "/srv" })])).toContain("OVERLAYFS mount at /mnt/again (its /srv): a container of the spec mounts no such file system");
});

test("below a spec's recursive bind of the host's cgroup tree, the hierarchies the host has there are accepted as they are; others, or read-write where the host's or an rro bind is read-only, are refused", () => {
  // `--mount type=bind,src=/sys/fs/cgroup,dst=/hostcg,options=rbind:ro`, as ctr writes it, on this machine's hybrid layout.
  const hostcg = { destination: "/hostcg", type: "bind", source: "/sys/fs/cgroup", options: ["rbind", "ro"] };
  const s: MountSpec = { ...spec, mounts: [...(spec.mounts as object[]), hostcg] };
  const mountinfo = [
    "31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755",
    "35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory",
    "40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd",
    "41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw",
    "42 31 0:39 / /sys/fs/cgroup/pids ro,relatime - cgroup cgroup rw,pids",
  ].join("\n");
  const check = (entries: MntEntry[], binds = [{ dest: "/hostcg", source: "/sys/fs/cgroup", rro: false }]) => {
    try {
      checkMountEntries(entries, s, "restore container c1 from /ck", exists, "mountpoints-13.img", (p) => p, hostSubmounts(binds, mountinfo));
    } catch (err) {
      return (err as Error).message;
    }
    return "accepted";
  };
  // As cryo's dump records them: the bind's tmpfs external, each hierarchy below it a cgroup mount of its own.
  const brought = () => [
    ...image(),
    mnt(Fstype.TMPFS, "/hostcg", RO, { extKey: "/hostcg" }),
    mnt(Fstype.CGROUP, "/hostcg/memory", RW, { rootDev: 32, options: "memory" }),
    mnt(Fstype.CGROUP, "/hostcg/systemd", RW, { rootDev: 37, options: "name=systemd" }),
    mnt(Fstype.CGROUP2, "/hostcg/unified", RW, { rootDev: 38 }),
    mnt(Fstype.CGROUP, "/hostcg/pids", RO, { rootDev: 39, options: "pids" }),
  ];
  expect(check(brought())).toBe("accepted");
  // Before, every one of them: "CGROUP2 mount at /hostcg/unified: the spec mounts cgroups only at /sys/fs/cgroup".
  const changed = (p: string, fn: (e: MntEntry) => void) => {
    const m = brought();
    fn(at(m, p));
    return check(m);
  };
  expect(changed("/hostcg/memory", (e) => (e.options = "memory,cpu"))).toContain("CGROUP mount at /hostcg/memory: the spec mounts cgroups only at /sys/fs/cgroup, and the host's mount its recursive bind brings there is cgroup (its /, rw,memory)");
  expect(changed("/hostcg/memory", (e) => (e.root = "/other"))).toContain("CGROUP mount at /hostcg/memory (its /other): the spec mounts cgroups only at /sys/fs/cgroup, and the host's mount");
  expect(changed("/hostcg/unified", (e) => (e.fstype = Fstype.CGROUP))).toContain("CGROUP mount at /hostcg/unified: the spec mounts cgroups only at /sys/fs/cgroup, and the host's mount its recursive bind brings there is cgroup2");
  expect(changed("/hostcg/pids", (e) => (e.flags = RW))).toContain("CGROUP mount at /hostcg/pids is read-write, and the host's mount the spec's bind brings there is read-only");
  // A hierarchy the host has nowhere there, or under a bind that is not recursive, or outside any bind.
  expect(check([...brought(), mnt(Fstype.CGROUP, "/hostcg/freezer", RW, { rootDev: 98, options: "freezer" })])).toBe("restore container c1 from /ck: invalid argument: mountpoints-13.img: CGROUP mount at /hostcg/freezer: the spec mounts cgroups only at /sys/fs/cgroup");
  expect(check(brought(), [])).toContain("CGROUP mount at /hostcg/memory: the spec mounts cgroups only at /sys/fs/cgroup");
  expect(check([...image(), mnt(Fstype.CGROUP, "/elsewhere/memory", RW, { rootDev: 32, options: "memory" })])).toContain("CGROUP mount at /elsewhere/memory: the spec mounts cgroups only at /sys/fs/cgroup");
  // Under a recursively read-only bind (rro) every hierarchy must be read-only.
  expect(check(brought(), [{ dest: "/hostcg", source: "/sys/fs/cgroup", rro: true }])).toContain("CGROUP mount at /hostcg/memory is read-write, and the host's mount the spec's bind brings there is read-only");
});

test("roots and mount points that climb, mounts sharing a given mount's device, external keys elsewhere than cryo's dump puts them, masks that are not: refused", () => {
  // CRIU takes ".." for a name, and builds a bind's source from the mount it shares a device with.
  const base = image();
  const maskedDev = at(base, "/proc/acpi").rootDev;
  expect(refused([...base, mnt(Fstype.TMPFS, "/x", RW, { root: "/../../..", rootDev: maskedDev })])).toContain('TMPFS mount at /x (its /../../..): its mount point and root must be absolute paths without empty, "." or ".." components');
  expect(refused([...base, mnt(Fstype.TMPFS, "/x", RW, { root: "/etc", rootDev: maskedDev })])).toContain(`TMPFS mount at /x (its /etc): CRIU would bind it from the mount the restore gives at /proc/acpi (device ${maskedDev})`);
  expect(refused([...base, mnt(Fstype.TMPFS, "/y", RW, { rootDev: at(base, "/").rootDev })])).toContain(`TMPFS mount at /y: CRIU would bind it from the rootfs (device ${at(base, "/").rootDev})`);
  // In the peer group of a given mount: CRIU binds it from there whatever its device.
  const etcData = at(base, "/etc/data");
  etcData.sharedId = 9;
  expect(refused([...base, mnt(Fstype.TMPFS, "/s", RW, { sharedId: 9 })])).toContain("TMPFS mount at /s: CRIU would bind it from the mount the restore gives at /etc/data (peer group 9)");
  expect(refused([...base, mnt(Fstype.TMPFS, "/s", RW, { masterId: 9 })])).toContain("TMPFS mount at /s: CRIU would bind it from the mount the restore gives at /etc/data (peer group 9)");
  // A /dev dumped whole (files in it) shares its device with runc's masks, binds of its /null: CRIU cannot bind /dev from them.
  const devDumped = edit((m) => {
    const dev = at(m, "/dev");
    dev.extKey = "";
    dev.rootDev = at(m, "/proc/keys").rootDev;
  });
  expect(refused(devDumped)).toBe("accepted");
  expect(refused([...image(), mnt(Fstype.TMPFS, "x/../y", RW)])).toContain("its mount point and root must be absolute paths");
  expect(refused([...image(), mnt(Fstype.AUTO, "/rw-data", RW, { extKey: "/etc/data" })])).toContain('AUTO mount at /rw-data: external "/etc/data" is not this mount\'s destination');
  expect(refused([...image(), mnt(Fstype.TMPFS, "/y", RW, { extKey: "CRIU:EXTERNAL_DEV" })])).toContain('external "CRIU:EXTERNAL_DEV" is not this mount\'s destination');
  expect(refused([...image(), mnt(Fstype.TMPFS, "/z", RO, { extKey: "cryo-masked-dir" })])).toContain('TMPFS mount at /z: external "cryo-masked-dir" is only a mask of a masked path, and the spec does not mask /z');
  expect(refused([...image(), mnt(Fstype.TMPFS, "/run", RW, { extKey: "cryo-empty-tmpfs/dev" })])).toContain('external "cryo-empty-tmpfs/dev" belongs at /dev');
  expect(refused(edit((m) => (at(m, "/proc/acpi").flags = RW)))).toContain("TMPFS mount at /proc/acpi: a masked directory is read-only");
  // A part of proc at a masked path, or anywhere but over itself.
  expect(refused(edit((m) => m.splice(m.indexOf(at(m, "/proc/keys")), 1, mnt(Fstype.PROC, "/proc/keys", RO, { root: "/kcore", rootDev: 43 }))))).toContain("PROC mount at /proc/keys (its /kcore): the spec masks /proc/keys, and this is not a mask");
  expect(refused([...image(), mnt(Fstype.PROC, "/hostroot", RO, { root: "/1/root", rootDev: 43 })])).toContain("a part of proc is only mounted over itself");
  // A bind keyed by its own destination at a masked path: not one of the masks.
  expect(refused(edit((m) => (at(m, "/proc/keys").extKey = "/proc/keys")))).toContain("TMPFS mount at /proc/keys (its /null): the spec masks /proc/keys, and this is not a mask");
});

test("a spec mount below a link of the rootfs is compared where it lands (the image's mount point): a read-only bind there restored read-write is refused", () => {
  // The spec's /var/run/secrets bind lands at /run/secrets in a rootfs whose /var/run is a link to /run.
  const linked: MountSpec = { ...spec, mounts: [...(spec.mounts as object[]), { destination: "/var/run/secrets", type: "bind", options: ["rbind", "ro"] }] };
  const resolve = (p: string) => p.replace(/^\/var\/run(\/|$)/, "/run$1");
  const withSecrets = (flags: number) => [...image(), mnt(Fstype.AUTO, "/run/secrets", flags, { fsname: "ext4", extKey: "/run/secrets" })];
  const check = (entries: MntEntry[]) => {
    try {
      checkMountEntries(entries, linked, "restore container c1 from /ck", exists, "mountpoints-13.img", resolve);
    } catch (err) {
      return (err as Error).message;
    }
    return "accepted";
  };
  expect(check(withSecrets(RO))).toBe("accepted");
  expect(check(withSecrets(RW))).toContain("AUTO mount at /run/secrets is read-write, and the spec mounts /run/secrets read-only");
  // Without resolving, the same read-write mount would not be matched to the spec's read-only one.
  expect(refused(withSecrets(RW), linked)).toBe("accepted");
});

test("checkMountpointLinks: a mount point in the rootfs's own file system behind a symbolic link of the rootfs is refused, naming the link; below another mount, or missing, it is not looked up", () => {
  const rootfs = mkdtempSync(join(tmpdir(), "cryo-mnt-links-"));
  try {
    mkdirSync(join(rootfs, "srv/data"), { recursive: true });
    mkdirSync(join(rootfs, "dev"));
    symlinkSync("/etc", join(rootfs, "data"));
    symlinkSync("/elsewhere", join(rootfs, "dev/shm"));
    writeFileSync(join(rootfs, "file"), "");
    const check = (entries: MntEntry[]) => {
      try {
        checkMountpointLinks(entries, rootfs, "restore container c1 from /ck", "mountpoints-13.img");
      } catch (err) {
        return (err as Error).message;
      }
      return "accepted";
    };
    const root = mnt(Fstype.OVERLAYFS, "/", RW);
    const devTmpfs = mnt(Fstype.TMPFS, "/dev", RW, { extKey: "cryo-empty-tmpfs/dev" });
    expect(check([root, mnt(Fstype.AUTO, "/srv/data", RO, { extKey: "/srv/data" }), mnt(Fstype.AUTO, "/new/dir", RO, { extKey: "/new/dir" })])).toBe("accepted");
    expect(check([root, mnt(Fstype.AUTO, "/data/x", RO, { extKey: "/data/x" })])).toBe(
      "restore container c1 from /ck: invalid argument: mountpoints-13.img: the mount at /data/x goes through /data, a symbolic link in the rootfs (to /etc), which CRIU would not resolve inside the container",
    );
    expect(check([root, mnt(Fstype.AUTO, "/data", RO, { extKey: "/data" })])).toContain("the mount at /data goes through /data");
    // /dev/shm is in the /dev tmpfs, not in the rootfs: the rootfs's entry under it is hidden.
    expect(check([root, devTmpfs, mnt(Fstype.TMPFS, "/dev/shm", RW)])).toBe("accepted");
    expect(check([root, mnt(Fstype.TMPFS, "/dev/shm", RW)])).toContain("goes through /dev/shm, a symbolic link in the rootfs (to /elsewhere)");
    // A file on the way: nothing below it to follow.
    expect(check([root, mnt(Fstype.AUTO, "/file/x", RO, { extKey: "/file/x" })])).toBe("accepted");
    // Below a bind of the spec: looked up in the bind's source (a volume the container could have written a link into).
    const volume = join(rootfs, "volume");
    mkdirSync(join(volume, "ok"), { recursive: true });
    symlinkSync("/etc", join(volume, "cache"));
    const binds = new Map([["/srv/data", volume]]);
    const nested = (p: string) => [root, mnt(Fstype.AUTO, "/srv/data", RW, { extKey: "/srv/data" }), mnt(Fstype.TMPFS, p, RW)];
    const inBind = (entries: MntEntry[]) => {
      try {
        checkMountpointLinks(entries, rootfs, "restore container c1 from /ck", "mountpoints-13.img", binds);
      } catch (err) {
        return (err as Error).message;
      }
      return "accepted";
    };
    expect(inBind(nested("/srv/data/ok/tmp"))).toBe("accepted");
    expect(inBind(nested("/srv/data/cache/tmp"))).toBe(
      `restore container c1 from /ck: invalid argument: mountpoints-13.img: the mount at /srv/data/cache/tmp goes through /srv/data/cache, a symbolic link in the source of the bind at /srv/data (${volume}) (to /etc), which CRIU would not resolve inside the container`,
    );
    // Without the spec's sources (a mount below a mount the check does not know): not looked up.
    expect(check(nested("/srv/data/cache/tmp"))).toBe("accepted");
  } finally {
    rmSync(rootfs, { recursive: true, force: true });
  }
});

test("checkCompatModeMounts: under the older engine, no mount below a tmpfs whose contents come from the checkpoint; an empty (external) tmpfs or one without nested mounts is fine", () => {
  const check = (entries: MntEntry[], tars: number[]) => {
    try {
      checkCompatModeMounts(entries, (dev) => tars.includes(dev), "restore container c1 from /ck", "mountpoints-13.img");
    } catch (err) {
      return (err as Error).message;
    }
    return "accepted";
  };
  const devWithFiles = mnt(Fstype.TMPFS, "/dev", RW, { rootDev: 77 });
  const nested = [mnt(Fstype.OVERLAYFS, "/", RW), devWithFiles, mnt(Fstype.DEVPTS, "/dev/pts", RW), mnt(Fstype.TMPFS, "/run", RW, { rootDev: 78 })];
  expect(check(nested, [77])).toBe(
    "restore container c1 from /ck: invalid argument: mountpoints-13.img: with CRIU's older mount engine ([restore] mntns_compat_mode), the mount at /dev/pts lies below the tmpfs at /dev, whose contents come from the checkpoint: a symbolic link among them would lead it out of the container",
  );
  // /run's contents come from the checkpoint too, but nothing is mounted below it; /dev made empty (no tar) is the restore's.
  expect(check(nested, [78])).toBe("accepted");
  expect(check(nested, [])).toBe("accepted");
  // The checkpoint's usual /dev: an empty tmpfs the restore gives (external), whatever a tar of that device would say.
  expect(check([mnt(Fstype.OVERLAYFS, "/", RW), mnt(Fstype.TMPFS, "/dev", RW, { rootDev: 77, extKey: "cryo-empty-tmpfs/dev" }), mnt(Fstype.DEVPTS, "/dev/pts", RW)], [77])).toBe("accepted");
});

test("externalMountFlags: each external key's recorded per-mount flags, limited to read-only, the restrictions and the access-time mode", () => {
  const MS_SHARED = 1 << 20;
  const MS_NOSUID = 2;
  const MS_STRICTATIME = 1 << 24;
  const MS_SYNCHRONOUS = 16;
  const entries = [
    ...image(),
    mnt(Fstype.TMPFS, "/run", MS_NOSUID | MS_STRICTATIME | MS_SHARED | MS_SYNCHRONOUS, { extKey: "cryo-empty-tmpfs/run" }),
  ];
  const flags = externalMountFlags(entries);
  expect(flags.get("cryo-empty-tmpfs/run")).toBe(MS_NOSUID | MS_STRICTATIME);
  // RO is MS_RDONLY with relatime.
  expect(flags.get("cryo-masked-dir")).toBe(RO);
  expect(flags.get("/dev/null")).toBe(RW);
  expect(flags.get("/etc/data")).toBe(RO);
  // Only external mounts.
  expect([...flags.keys()].sort()).toEqual(["/dev/null", "/etc/data", "/sys/fs/cgroup/memory", "cryo-empty-tmpfs/dev", "cryo-empty-tmpfs/run", "cryo-masked-dir"]);
  expect(STAGED_MOUNT_FLAGS & MS_SHARED).toBe(0);
});

test("mounts stacked at one place (a tmpfs over the spec's /run tmpfs): accepted, each checked; side by side, or one external key twice, refused", () => {
  const withRun: MountSpec = { ...spec, mounts: [...(spec.mounts as object[]), { destination: "/run", type: "tmpfs", options: ["nosuid", "nodev"] }, { destination: "/run", type: "tmpfs", options: ["rw", "size=1m"] }] };
  const base = image();
  const lower = mnt(Fstype.TMPFS, "/run", RW);
  const upper = mnt(Fstype.TMPFS, "/run", RW, { parentMntId: lower.mntId });
  // As CRIU lists them (the upper first), and with a mount on the upper one.
  expect(refused([...base, upper, lower], withRun)).toBe("accepted");
  expect(refused([...base, upper, lower, mnt(Fstype.MQUEUE, "/run/mq", RW, { parentMntId: upper.mntId })], withRun)).toBe("accepted");
  // Three high; two side by side; a loop; both external under one key.
  const third = mnt(Fstype.TMPFS, "/run", RW, { parentMntId: upper.mntId });
  expect(refused([...base, lower, upper, third], withRun)).toBe("accepted");
  expect(refused([...base, lower, mnt(Fstype.TMPFS, "/run", RW)], withRun)).toContain("2 mounts at /run that are not each mounted on the one below");
  const a = mnt(Fstype.TMPFS, "/run", RW);
  const b = mnt(Fstype.TMPFS, "/run", RW, { parentMntId: a.mntId });
  a.parentMntId = b.mntId;
  expect(refused([...base, a, b], withRun)).toContain("2 mounts at /run that are not each mounted on the one below");
  const extLower = mnt(Fstype.TMPFS, "/run", RW, { extKey: "cryo-empty-tmpfs/run" });
  expect(refused([...base, extLower, mnt(Fstype.TMPFS, "/run", RW, { parentMntId: extLower.mntId, extKey: "cryo-empty-tmpfs/run" })], withRun)).toContain("two mounts at /run given by the restore under one key");
  // Each of a stack is checked: a read-only spec mount at /sys stays read-only under a tmpfs put over it.
  const sys = base.find((m) => m.mountpoint === "/sys")!;
  expect(refused([...base, mnt(Fstype.TMPFS, "/sys", RW, { parentMntId: sys.mntId })])).toContain("TMPFS mount at /sys is read-write, and the spec mounts /sys read-only");
  // A mask hidden under a tmpfs stacked on the masked path does not mask it.
  const keys = base.find((m) => m.mountpoint === "/proc/keys")!;
  expect(refused([...base, mnt(Fstype.TMPFS, "/proc/keys", RW, { parentMntId: keys.mntId })])).toContain("TMPFS mount at /proc/keys: the spec masks /proc/keys, and this is not a mask");
});

// A mount namespace a process of the container made (unshare -m): copies of the container's mounts, and its own.
function nested(root: MntEntry[]): MntEntry[] {
  const copy = (e: MntEntry) => create(MntEntrySchema, { ...e, mntId: id++, extKey: "", extMount: false, sharedId: 0, masterId: 0 });
  return [...root.map(copy), mnt(Fstype.TMPFS, "/tmp/priv", RW)];
}
const nestedRefused = (entries: MntEntry[], root: MntEntry[], sysAdmin = true) => {
  try {
    checkNestedMountEntries(entries, root, sysAdmin, "restore container c1 from /ck", "mountpoints-14.img");
  } catch (err) {
    return (err as Error).message;
  }
  return undefined;
};

test("a mount namespace a process made: its copies of the given mounts and its own tmpfs pass; refused without CAP_SYS_ADMIN in the spec", () => {
  const root = image();
  expect(nestedRefused(nested(root), root)).toBeUndefined();
  expect(nestedRefused(nested(root), root, false)).toContain("mountpoints-14.img: a mount namespace other than the container's, which no process of a container without CAP_SYS_ADMIN makes");
});

test("a mount namespace a process made: a host file system that is no copy of a given mount, an external key, a read-write copy of a read-only bind, a part of a bind's device outside its root are refused", () => {
  const root = image();
  const host = nested(root);
  host.push(mnt(Fstype.AUTO, "/host", RW, { fsname: "ext4", rootDev: 8 }));
  expect(nestedRefused(host, root)).toContain("AUTO mount at /host (ext4): neither a copy of a mount of the container nor a file system a process of it mounts in a namespace of its own (tmpfs, devpts, mqueue, proc)");
  // A cgroup hierarchy or sysfs of its own (the host's, as CRIU mounts it), and a read-write copy of the read-only sysfs.
  const cg = nested(root);
  cg.push(mnt(Fstype.CGROUP, "/tmp/cg", RW, { root: "/", rootDev: 99 }));
  expect(nestedRefused(cg, root)).toContain("CGROUP mount at /tmp/cg: neither a copy of a mount of the container nor a file system");
  const procSys = nested(root).map((e) => (e.mountpoint === "/proc/sys" ? create(MntEntrySchema, { ...e, flags: RW | 0xe }) : e));
  expect(nestedRefused(procSys, root)).toContain("PROC mount at /proc/sys (its /sys) is read-write, and the container's mount at /proc/sys, of which it is a copy, is read-only");
  const sys = nested(root).map((e) => (e.mountpoint === "/sys" ? create(MntEntrySchema, { ...e, flags: RW }) : e));
  expect(nestedRefused(sys, root)).toContain("SYSFS mount at /sys is read-write, and the container's mount at /sys, of which it is a copy, is read-only");
  const keyed = nested(root);
  keyed.push(mnt(Fstype.AUTO, "/etc/other", RO, { fsname: "ext4", extKey: "/etc/other" }));
  expect(nestedRefused(keyed, root)).toContain('external "/etc/other": the restore gives mounts only to the container\'s own mount namespace');
  const data = root.find((e) => e.mountpoint === "/etc/data")!;
  const rw = nested(root).map((e) => (e.mountpoint === "/etc/data" ? create(MntEntrySchema, { ...e, flags: RW }) : e));
  expect(nestedRefused(rw, root)).toContain("AUTO mount at /etc/data is read-write, and the mount the restore gives at /etc/data, of which it is a copy, is read-only");
  const dataRooted = root.map((e) => (e === data ? create(MntEntrySchema, { ...e, root: "/srv/data" }) : e));
  const outside = nested(dataRooted);
  outside.push(mnt(Fstype.AUTO, "/elsewhere", RO, { rootDev: data.rootDev, root: "/" }));
  expect(nestedRefused(outside, dataRooted)).toContain("AUTO mount at /elsewhere: neither a copy");
  // A part of the cgroup hierarchy the container has (its own cgroup's below) is a copy.
  const cgPart = nested(root);
  cgPart.push(mnt(Fstype.CGROUP, "/tmp/cg", RO, { root: "/ns/c1/sub", rootDev: root.find((e) => e.mountpoint === "/sys/fs/cgroup/memory")!.rootDev }));
  expect(nestedRefused(cgPart, root)).toBeUndefined();
  // A part of it, below its root, is a copy.
  const part = nested(dataRooted);
  part.push(mnt(Fstype.AUTO, "/elsewhere", RO, { rootDev: data.rootDev, root: "/srv/data/sub" }));
  expect(nestedRefused(part, dataRooted)).toBeUndefined();
});
