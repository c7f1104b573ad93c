import { create } from "@bufbuild/protobuf";
import { expect, test } from "bun:test";
import { checkMountEntries, type MountSpec } from "../../../src/checkpoint/mount-image-check.ts";
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
const mnt = (fstype: Fstype, mountpoint: string, flags: number, extra: Partial<Omit<MntEntry, "$typeName">> = {}) =>
  create(MntEntrySchema, { fstype, mntId: id++, rootDev: fstype === Fstype.OVERLAYFS ? 72 : 40, parentMntId: 97, flags, root: "/", mountpoint, source: "x", options: "", ...extra } as never);

/** The mounts of a checkpoint of that spec, as cryo's dump records them. */
function image(): MntEntry[] {
  return [
    mnt(Fstype.OVERLAYFS, "/", RW),
    mnt(Fstype.PROC, "/proc", RW | 0xe),
    mnt(Fstype.PROC, "/proc/sys", RO | 0xe, { root: "/sys" }),
    mnt(Fstype.PROC, "/proc/bus", RO | 0xe, { root: "/bus" }),
    mnt(Fstype.TMPFS, "/proc/acpi", RO, { extKey: "cryo-masked-dir" }),
    mnt(Fstype.TMPFS, "/proc/keys", RW, { root: "/null", extKey: "/dev/null" }),
    mnt(Fstype.TMPFS, "/dev", RW, { extKey: "cryo-empty-tmpfs/dev" }),
    mnt(Fstype.DEVPTS, "/dev/pts", RW),
    mnt(Fstype.MQUEUE, "/dev/mqueue", RW),
    mnt(Fstype.SYSFS, "/sys", RO | 0xe),
    mnt(Fstype.TMPFS, "/sys/firmware", RO, { extKey: "cryo-masked-dir" }),
    mnt(Fstype.TMPFS, "/sys/fs/cgroup", RO),
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
  // A bind of the root's own file system elsewhere.
  expect(refused([...image(), mnt(Fstype.OVERLAYFS, "/mnt/again", RW, { root: "/srv" })])).toBe("accepted");
});

test("a read-only path left read-write or unmounted, a mask left out: refused, naming the image, the mount and the spec's reason", () => {
  expect(refused(edit((m) => (at(m, "/proc/sys").flags = RW | 0xe)))).toBe(
    "restore container c1 from /ck: invalid argument: mountpoints-13.img: PROC mount at /proc/sys (its /sys) is read-write",
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
  expect(refused(edit((m) => (at(m, "/sys").flags = RW)))).toContain("SYSFS mount at /sys is read-write, and the spec mounts /sys read-only");
  expect(refused(edit((m) => (at(m, "/etc/data").flags = RW)))).toContain("AUTO mount at /etc/data is read-write, and the spec mounts /etc/data read-only");
  expect(refused(edit((m) => (at(m, "/sys/fs/cgroup/memory").flags = RW)))).toContain("CGROUP mount at /sys/fs/cgroup/memory (its /ns/c1) is read-write, and the spec mounts /sys/fs/cgroup read-only");
  expect(refused([...image(), mnt(Fstype.PROC, "/hostproc", RW)])).toContain("PROC mount at /hostproc: the spec mounts proc only at /proc");
  expect(refused([...image(), mnt(Fstype.PROC, "/x", RW, { root: "/sys" })])).toContain("PROC mount at /x (its /sys) is read-write");
  expect(refused([...image(), mnt(Fstype.SYSFS, "/s", RO)])).toContain("SYSFS mount at /s: the spec mounts sysfs only at /sys");
  expect(refused([...image(), mnt(Fstype.CGROUP, "/cg", RW)])).toContain("CGROUP mount at /cg: the spec mounts cgroups only at /sys/fs/cgroup");
  expect(refused([...image(), mnt(Fstype.DEBUGFS, "/d", RW)])).toContain("DEBUGFS mount at /d: a container of the spec mounts no such file system");
  expect(refused([...image(), mnt(Fstype.AUTO, "/t", RW, { fsname: "tracefs" })])).toContain("AUTO mount at /t (tracefs): a container of the spec mounts no such file system");
});
