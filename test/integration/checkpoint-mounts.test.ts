/**
 * Bind mounts across a checkpoint and restore through the cryo shim (ctr against a private
 * containerd): a bind mount nested in another one (/data and /data/cache) comes back even when its
 * mount point is gone from the outer bind's source, as on another host — the restore makes it
 * inside the source, as runc's own restore does, and leaves no mount behind.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { existsSync, lstatSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, rmdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { checkpointCriuTar, checkpointMetadata, criuTarEntries, ensureTestImage, readCounter, removeContainer, startPrivateContainerd, taskPid, taskStatus, testImage, uniqueId, waitFor, type PrivateContainerd } from "../harness/index.ts";

const RUNTIME = "io.containerd.cryo.v2";
let pc: PrivateContainerd;
let dir: string;
const images: string[] = [];

beforeAll(async () => {
  pc = await startPrivateContainerd({ namespace: uniqueId("ckmnt") });
  await ensureTestImage(pc);
  dir = mkdtempSync(join(tmpdir(), "cryo-ckpt-mounts-"));
}, 120_000);

afterAll(async () => {
  for (const ref of images) await pc?.ctr(["images", "rm", "--sync", ref]);
  await pc?.stop();
  rmSync(dir, { recursive: true, force: true });
}, 120_000);

function mountsUnder(path: string): string[] {
  return readFileSync("/proc/self/mountinfo", "utf8")
    .split("\n")
    .filter((l) => l.includes(path));
}

test("a bind mount nested in another comes back after its mount point left the outer source", async () => {
  const id = uniqueId("nest");
  const data = join(dir, "data");
  const cache = join(dir, "cache");
  mkdirSync(data);
  mkdirSync(cache);
  writeFileSync(join(cache, "marker"), "nested\n");
  // The counter lives in the rootfs: a file held open on a bind mount would be checked by size at restore,
  // and the original keeps running (and writing) after the checkpoint.
  await pc.ctrOk(
    [
      "run", "-d", "--runtime", RUNTIME,
      "--mount", `type=bind,src=${data},dst=/data,options=rbind:rw`,
      "--mount", `type=bind,src=${cache},dst=/data/cache,options=rbind:rw`,
      testImage, id, "/bin/memhog", "0", "/tmp/counter",
    ],
    { timeoutMs: 60_000 },
  );
  await waitFor(() => (readCounter(pc, id) ?? 0) >= 5, { what: "counter" });
  expect(await pc.ctrOk(["task", "exec", "--exec-id", "m1", id, "cat", "/data/cache/marker"])).toBe("nested\n");
  // runc made the nested mount point inside the outer bind's source when it created the container.
  expect(existsSync(join(data, "cache"))).toBe(true);

  const ref = `localhost/checkpoint/${id}:1`;
  images.push(ref);
  await pc.ctrOk(["containers", "checkpoint", "--task", id, ref], { timeoutMs: 120_000 });
  await removeContainer(pc, id, { stopped: "not-running" });
  // As on another host: the outer source lacks the nested mount point.
  rmdirSync(join(data, "cache"));

  const r = await pc.ctr(["containers", "restore", "--live", id, ref], { timeoutMs: 120_000 });
  expect(r.stderr).toBe("");
  expect(r.exitCode).toBe(0);
  expect(await taskStatus(pc, id)).toBe("RUNNING");
  const first = await waitFor(() => readCounter(pc, id), { what: "restored counter" });
  await waitFor(() => (readCounter(pc, id) ?? 0) > first, { what: "counter going on" });
  // The nested bind is mounted again in the restored container, and its mount point is back in the source.
  expect(await pc.ctrOk(["task", "exec", "--exec-id", "m2", id, "cat", "/data/cache/marker"])).toBe("nested\n");
  expect(existsSync(join(data, "cache"))).toBe(true);
  // The restore's temporary binds are gone: only the container's own mounts name our dir.
  const during = mountsUnder(dir).length;
  await removeContainer(pc, id, { stopped: "not-running" });
  expect(mountsUnder(dir)).toEqual([]);
  expect(during).toBe(0); // the container's binds live in its own mount namespace, not ours
}, 180_000);

test("binds whose source is no directory (a unix socket, a FIFO, a device node) come back: the restore makes their mount points as files, as runc does", async () => {
  const id = uniqueId("nodir");
  const sock = join(dir, "nodir.sock");
  const fifo = join(dir, "nodir.fifo");
  const listener = Bun.listen({ unix: sock, socket: { data() {} } });
  try {
    expect(Bun.spawnSync(["mkfifo", fifo]).exitCode).toBe(0);
    await pc.ctrOk(
      [
        "run", "-d", "--runtime", RUNTIME,
        "--mount", `type=bind,src=${sock},dst=/hostsock,options=rbind:rw`,
        "--mount", `type=bind,src=${fifo},dst=/hostfifo,options=rbind:rw`,
        "--mount", "type=bind,src=/dev/null,dst=/hostnull,options=rbind:rw",
        testImage, id, "/bin/memhog", "0", "/tmp/counter",
      ],
      { timeoutMs: 60_000 },
    );
    await waitFor(() => (readCounter(pc, id) ?? 0) >= 5, { what: "counter" });
    // A fresh rootfs has none of the three mount points (runc made them in the first one's writable layer): the restore
    // makes them. Made as directories, the binds failed ("mount(<sock>, <rootfs>/hostsock): Not a directory").
    await checkpointAndRestore(id);
    const pid = (await taskPid(pc, id))!;
    const types = (await pc.ctrOk(["task", "exec", "--exec-id", "t1", id, "sh", "-c", "for f in /hostsock /hostfifo /hostnull; do ls -ld $f | cut -c1; done"])).split("\n").filter(Boolean);
    expect(types).toEqual(["s", "p", "c"]);
    expect(cgroupMounts(pid, "/hostsock").length + cgroupMounts(pid, "/hostfifo").length + cgroupMounts(pid, "/hostnull").length).toBe(3);
    await removeContainer(pc, id, { stopped: "not-running" });
    expect(mountsUnder(dir)).toEqual([]);
  } finally {
    listener.stop(true);
  }
}, 180_000);

test("a restore whose bind source is gone from the host fails before CRIU runs, naming the mount and its source (as runc's restore does), and leaves no cgroup, runc state or mount", async () => {
  const id = uniqueId("gone");
  const src = join(dir, "gone-src");
  mkdirSync(src);
  await pc.ctrOk(["run", "-d", "--runtime", RUNTIME, "--mount", `type=bind,src=${src},dst=/v,options=rbind:rw`, testImage, id, "/bin/memhog", "0", "/tmp/counter"], { timeoutMs: 60_000 });
  await waitFor(() => (readCounter(pc, id) ?? 0) >= 2, { what: "counter" });
  const ref = `localhost/checkpoint/${id}:1`;
  images.push(ref);
  await pc.ctrOk(["containers", "checkpoint", "--task", id, ref], { timeoutMs: 120_000 });
  await removeContainer(pc, id, { stopped: "not-running" });
  rmdirSync(src);
  const r = await pc.ctr(["containers", "restore", "--live", id, ref], { timeoutMs: 120_000 });
  expect(r.exitCode).not.toBe(0);
  // Before: CRIU's "mnt-v2: Failed to open_tree <src>: No such file or directory", code unknown, after CRIU ran.
  expect(r.stderr).toContain(`bind mount at /v: failed precondition: its source ${src} does not exist on this host`);
  expect(r.stderr).toContain("failed precondition");
  expect(await taskStatus(pc, id)).toBe("CREATED");
  for (const ctl of ["memory", "pids", "freezer", "devices"]) expect(existsSync(`/sys/fs/cgroup/${ctl}/${pc.namespace}/${id}`)).toBe(false);
  expect(existsSync(join("/run/containerd/runc", pc.namespace, id))).toBe(false);
  expect(mountsUnder(`/${id}/criu-root`)).toEqual([]); // the task's rootfs stays mounted until its removal
  await pc.ctrOk(["task", "rm", id]);
  await pc.ctrOk(["containers", "rm", id]);
  expect(mountsUnder(`/${id}/`)).toEqual([]);
}, 180_000);

/** Mount point, options and file system type of the container's mounts at and below /sys/fs/cgroup (mountinfo). */
/** The container's mounts at or below `at`: mount point, rw/ro, file system type (`full`: also its root and super options). */
function cgroupMounts(pid: number, at = "/sys/fs/cgroup", full = false): string[] {
  return readFileSync(`/proc/${pid}/mountinfo`, "utf8")
    .split("\n")
    .map((l) => l.split(" "))
    .filter((f) => f[4] === at || f[4]?.startsWith(`${at}/`))
    .map((f) => `${f[4]} ${f[5]?.split(",")[0]} ${f[f.indexOf("-") + 1]}${full ? ` ${f[3]} ${f[f.indexOf("-") + 3]}` : ""}`)
    .sort();
}

/**
 * `ctr containers checkpoint --task` (without --rw: the fresh rootfs has the image's /tmp/counter, which memhog
 * keeps at that size), the container removed, `ctr containers restore --live`: its counter goes on.
 */
async function checkpointAndRestore(id: string): Promise<void> {
  const ref = `localhost/checkpoint/${id}:1`;
  images.push(ref);
  await pc.ctrOk(["containers", "checkpoint", "--task", id, ref], { timeoutMs: 120_000 });
  await removeContainer(pc, id, { stopped: "not-running" });
  const r = await pc.ctr(["containers", "restore", "--live", id, ref], { timeoutMs: 120_000 });
  expect(r.stderr).toBe("");
  expect(r.exitCode).toBe(0);
  const first = await waitFor(() => readCounter(pc, id), { what: "restored counter" });
  await waitFor(() => (readCounter(pc, id) ?? 0) > first, { what: "counter going on" });
}

test("a read-only v1 cgroup mount (as CRI and Docker specs have) comes back: runc's read-write tmpfs with read-only hierarchies below", async () => {
  const id = uniqueId("cgmnt");
  await pc.ctrOk(["run", "-d", "--runtime", RUNTIME, "--mount", "type=cgroup,src=cgroup,dst=/sys/fs/cgroup,options=nosuid:noexec:nodev:relatime:ro", testImage, id, "/bin/memhog", "0", "/tmp/counter"], { timeoutMs: 60_000 });
  await waitFor(() => (readCounter(pc, id) ?? 0) >= 2, { what: "counter" });
  const before = cgroupMounts((await taskPid(pc, id))!);
  // runc 1.1's layout: the tmpfs read-write, each hierarchy a read-only cgroup mount.
  expect(before).toContain("/sys/fs/cgroup rw tmpfs");
  expect(before).toContain("/sys/fs/cgroup/memory ro cgroup");
  // Before the fix cryo refused it: "TMPFS mount at /sys/fs/cgroup is read-write, and the spec mounts /sys/fs/cgroup read-only".
  await checkpointAndRestore(id);
  expect(cgroupMounts((await taskPid(pc, id))!)).toEqual(before);
  await removeContainer(pc, id, { stopped: "not-running" });
}, 180_000);

test("a recursive bind of the host's cgroup tree (monitoring agents mount one) comes back with the hierarchies it brought in", async () => {
  const id = uniqueId("hostcg");
  await pc.ctrOk(["run", "-d", "--runtime", RUNTIME, "--mount", "type=bind,src=/sys/fs/cgroup,dst=/hostcg,options=rbind:ro", testImage, id, "/bin/memhog", "0", "/tmp/counter"], { timeoutMs: 60_000 });
  await waitFor(() => (readCounter(pc, id) ?? 0) >= 2, { what: "counter" });
  const before = cgroupMounts((await taskPid(pc, id))!, "/hostcg", true);
  expect(before.some((m) => m.startsWith("/hostcg/memory rw cgroup / rw,memory"))).toBe(true);
  // Before, cryo refused it (runc's shim restored it): "CGROUP2 mount at /hostcg/unified: the spec mounts cgroups only at no place".
  await checkpointAndRestore(id);
  expect(cgroupMounts((await taskPid(pc, id))!, "/hostcg", true)).toEqual(before);
  expect(await pc.ctrOk(["task", "exec", "--exec-id", "ls", id, "ls", "/hostcg/memory/memory.limit_in_bytes"])).toBe("/hostcg/memory/memory.limit_in_bytes\n");
  await removeContainer(pc, id, { stopped: "not-running" });
}, 180_000);

/** The container's /dev as lstat sees it: name, type, mode, owner, device number or link target (mountpoints not entered). */
function devListing(pid: number): string[] {
  const root = `/proc/${pid}/root/dev`;
  const dev = lstatSync(root).dev;
  const out: string[] = [];
  const walk = (rel: string) => {
    for (const name of readdirSync(`${root}${rel}`)) {
      const p = `${rel}/${name}`.slice(1);
      const st = lstatSync(`${root}/${p}`);
      const type = st.isDirectory() ? "dir" : st.isSymbolicLink() ? "symlink" : st.isCharacterDevice() ? "char" : st.isBlockDevice() ? "block" : st.isFile() ? "file" : "other";
      const what = st.isSymbolicLink() ? readlinkSync(`${root}/${p}`) : String(st.rdev);
      out.push(`${p} ${type} ${(st.mode & 0o7777).toString(8)} ${st.uid}:${st.gid} ${what}${st.dev === dev ? "" : " mountpoint"}`);
      if (st.isDirectory() && st.dev === dev) walk(`/${p}`);
    }
  };
  walk("");
  return out.sort();
}

test("masked directories and empty tmpfs mounts are external in the checkpoint; they come back as they were, and a tmpfs with files is dumped whole", async () => {
  const id = uniqueId("mask");
  // /dev/shm gets a file before the checkpoint; /run gets no file data, but a directory from the past, and its own
  // mode, owner and time changed after the mount (none of which its mount options say).
  const runSetUp = "mkdir /run/d && touch -d '2001-09-09 01:46:40' /run/d && chmod 710 /run && chown 33:44 /run && touch -d '2004-05-13 04:53:20' /run";
  await pc.ctrOk(["run", "-d", "--runtime", RUNTIME, testImage, id, "sh", "-c", `echo kept > /dev/shm/note; ${runSetUp}; touch /tmp/ready; exec sleep 600`], { timeoutMs: 60_000 });
  const pid = (await taskPid(pc, id))!;
  await waitFor(() => (existsSync(`/proc/${pid}/root/tmp/ready`) ? true : undefined), { what: "/dev/shm/note written, /run set up" });
  const runStat = "stat -c '%n %a %u:%g %Y' /run /run/d";
  const runBefore = await pc.ctrOk(["task", "exec", "--exec-id", "stat", id, "sh", "-c", runStat]);
  expect(runBefore).toContain("/run 710 33:44 1084424000");
  expect(runBefore).toContain("/run/d 755 0:0 1000000000");
  const devBefore = devListing(pid);
  expect(devBefore).toContain("null char 666 0:0 259");
  const tmpfsLines = () => readFileSync(`/proc/${pid}/mountinfo`, "utf8").split("\n").filter((l) => / - tmpfs /.test(l));
  const before = tmpfsLines();
  const masked = before.filter((l) => / ro[, ]/.test(l)).map((l) => l.split(" ")[4]!);
  expect(masked).toEqual(expect.arrayContaining(["/proc/acpi", "/sys/firmware"]));
  const ref = `localhost/checkpoint/${id}:1`;
  images.push(ref);
  await pc.ctrOk(["containers", "checkpoint", "--task", id, ref], { timeoutMs: 120_000 });
  // CRIU dumped /dev/shm (a file) as a tar image; the masked ones, the empty /run and /dev (device nodes,
  // symlinks and mountpoints: recorded in the metadata, made again at restore) not.
  const tmpfsImages = criuTarEntries(await checkpointCriuTar(pc, ref)).filter((e) => /^tmpfs-dev-\d+\.tar\.gz\.img$/.test(e));
  expect(tmpfsImages.length).toBe(1);
  const meta = await checkpointMetadata<{ emptyTmpfs?: { mountpoint: string; options: string; source: string; entries?: { path: string; type: string; mode: number; uid: number; gid: number; major?: number; minor?: number }[] }[] }>(pc, ref);
  expect(meta.emptyTmpfs?.map((t) => t.mountpoint).sort()).toEqual(["/dev", "/run"]);
  expect(meta.emptyTmpfs?.find((t) => t.mountpoint === "/dev")?.entries).toContainEqual(expect.objectContaining({ path: "null", type: "char", mode: 0o666, uid: 0, gid: 0, major: 1, minor: 3 }));
  await removeContainer(pc, id);

  const restored = `${id}-r`;
  await pc.ctrOk(["containers", "restore", "--live", restored, ref], { timeoutMs: 120_000 });
  // /run as it was: its mode, owner and time, and its directory's (a new tmpfs has the options' mode, root's owner and
  // the restore's time unless cryo puts them back; runc's CRIU tar keeps them).
  expect(await pc.ctrOk(["task", "exec", "--exec-id", "stat", restored, "sh", "-c", runStat])).toBe(runBefore);
  const r = await pc.ctr(["task", "exec", "--exec-id", "probe", restored, "sh", "-c", "for d in /proc/acpi /sys/firmware; do ls -A $d | wc -l; touch $d/x 2>/dev/null && echo writable; done; cat /dev/shm/note; ls -A /run; echo w > /run/w && cat /run/w"]);
  expect(r.stdout.split("\n").map((l) => l.trim()).filter((l) => l !== "")).toEqual(["0", "0", "kept", "d", "w"]);
  const rpid = (await taskPid(pc, restored))!;
  // /dev holds the same nodes, symlinks and mountpoints, with the same owners, modes and device numbers.
  expect(devListing(rpid)).toEqual(devBefore);
  const after = readFileSync(`/proc/${rpid}/mountinfo`, "utf8").split("\n").filter((l) => / - tmpfs /.test(l));
  // The same tmpfs mounts at the same places, with the same flags and options. Not compared: the masked
  // directories (binds of the restore's own empty read-only tmpfs now, checked below) and masked files (binds of
  // /dev/null, as with runc).
  const shape = (lines: string[]) =>
    lines
      .filter((l) => l.split(" ")[3] === "/")
      .map((l) => {
        const f = l.split(" ");
        return `${f[4]} ${f[5]} ${l.slice(l.indexOf(" - ") + 3)}`;
      })
      .sort();
  const notMask = (l: string) => !/^\/proc\/acpi |^\/sys\/firmware /.test(l);
  expect(shape(after).filter(notMask)).toEqual(shape(before).filter(notMask));
  const ro = readFileSync(`/proc/${rpid}/mountinfo`, "utf8").split("\n").filter((l) => ["/proc/acpi", "/sys/firmware"].includes(l.split(" ")[4] ?? ""));
  expect(ro.length).toBe(2);
  for (const l of ro) {
    expect(l.split(" ")[5]!.split(",")).toContain("ro");
    expect(l).toMatch(/ - tmpfs \S+ ro,/); // read-only down to the superblock
  }
  // Nothing of the restore's new tmpfs is left mounted on the host (this restore's: another test file's restore may
  // be under way beside this one).
  expect(mountsUnder(`/${restored}/criu-restore-work`)).toEqual([]);
  await removeContainer(pc, restored);
}, 120_000);

test("a tmpfs mounted over the spec's own /run tmpfs (ctr run --mount type=tmpfs,dst=/run) comes back stacked on it, with or without files in it", async () => {
  // CRIU dumps both (the lower hidden); cryo's restore refused "two mounts at /run (the upper one would hide the
  // lower)", where runc's shim restored them.
  for (const [name, setUp] of [["files", "echo upper > /run/note"], ["empty", "true"]] as const) {
    const id = uniqueId(`run2${name}`);
    await pc.ctrOk(["run", "-d", "--runtime", RUNTIME, "--mount", "type=tmpfs,dst=/run,options=rw:size=1m", testImage, id, "sh", "-c", `${setUp}; touch /tmp/ready; exec sleep 600`], { timeoutMs: 60_000 });
    const pid = (await taskPid(pc, id))!;
    await waitFor(() => (existsSync(`/proc/${pid}/root/tmp/ready`) ? true : undefined), { what: `${id} set up` });
    // The two at /run, the second mounted on the first, as "<options> - <fs options>" (mount ids differ after a restore).
    const runStack = (p: number) => {
      const lines = readFileSync(`/proc/${p}/mountinfo`, "utf8").split("\n").filter((l) => l.split(" ")[4] === "/run");
      const [lower, upper] = lines.map((l) => l.split(" "));
      expect(upper?.[1]).toBe(lower?.[0]);
      return lines.map((l) => `${l.split(" ")[5]} ${l.slice(l.indexOf(" - ") + 3)}`);
    };
    const before = runStack(pid);
    expect(before).toEqual(["rw,nosuid tmpfs tmpfs rw,size=65536k,mode=755", "rw,relatime tmpfs  rw,size=1024k"]);
    const ref = `localhost/checkpoint/${id}:1`;
    images.push(ref);
    await pc.ctrOk(["containers", "checkpoint", "--task", id, ref], { timeoutMs: 120_000 });
    await removeContainer(pc, id);
    const r = await pc.ctr(["containers", "restore", "--live", id, ref], { timeoutMs: 120_000 });
    expect(r.stderr).toBe("");
    expect(r.exitCode).toBe(0);
    expect(runStack((await taskPid(pc, id))!)).toEqual(before);
    expect((await pc.ctr(["task", "exec", "--exec-id", "ls", id, "ls", "-A", "/run"])).stdout.trim()).toBe(name === "files" ? "note" : "");
    await removeContainer(pc, id);
  }
}, 180_000);
