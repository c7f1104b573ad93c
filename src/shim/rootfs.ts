/**
 * The container's root filesystem as containerd hands it over: a list of mounts (overlay, bind, ...)
 * that the shim mounts onto <bundle>/rootfs before `runc create`, and unmounts after `runc delete`.
 *
 * Mounting calls mount(2) (src/sys) with containerd's option words split into mount flags and the
 * file system's data string, as containerd's own mount package does; a propagation word (private,
 * rshared, ...) is a second mount(2) call, and a read-only bind a bind followed by a read-only remount.
 * Only what mount(2) cannot take is left to mount(8): a data string longer than a page (an overlay
 * with very many layers) and loop devices. Unmounting counts the mounts stacked on the target in
 * /proc/self/mountinfo and calls umount2(2) that many times, so a bundle with nothing mounted costs
 * nothing, and no process is spawned either way.
 */
import { mkdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { CryoError, invalidArgument } from "../errors.ts";
import type { RootfsMount } from "./ports.ts";
import { MS_BIND, MS_DIRSYNC, MS_MANDLOCK, MS_NOATIME, MS_NODEV, MS_NODIRATIME, MS_NOEXEC, MS_NOSUID, MS_PRIVATE, MS_RDONLY, MS_REC, MS_RELATIME, MS_REMOUNT, MS_SHARED, MS_SLAVE, MS_STRICTATIME, MS_SYNCHRONOUS, MS_UNBINDABLE } from "../sys/mount-flags.ts";

/** Option words that are mount flags: [clear, flag] — clear means the word turns the flag off. */
const FLAG_WORDS: Readonly<Record<string, readonly [clear: boolean, flag: number]>> = {
  async: [true, MS_SYNCHRONOUS],
  atime: [true, MS_NOATIME],
  bind: [false, MS_BIND],
  defaults: [false, 0],
  dev: [true, MS_NODEV],
  diratime: [true, MS_NODIRATIME],
  dirsync: [false, MS_DIRSYNC],
  exec: [true, MS_NOEXEC],
  mand: [false, MS_MANDLOCK],
  noatime: [false, MS_NOATIME],
  nodev: [false, MS_NODEV],
  nodiratime: [false, MS_NODIRATIME],
  noexec: [false, MS_NOEXEC],
  nomand: [true, MS_MANDLOCK],
  norelatime: [true, MS_RELATIME],
  nostrictatime: [true, MS_STRICTATIME],
  nosuid: [false, MS_NOSUID],
  rbind: [false, MS_BIND | MS_REC],
  relatime: [false, MS_RELATIME],
  remount: [false, MS_REMOUNT],
  ro: [false, MS_RDONLY],
  rw: [true, MS_RDONLY],
  strictatime: [false, MS_STRICTATIME],
  suid: [true, MS_NOSUID],
  sync: [false, MS_SYNCHRONOUS],
};

/** Propagation words: a separate mount(2) call after the mount itself. */
const PROPAGATION_WORDS: Readonly<Record<string, number>> = {
  private: MS_PRIVATE,
  rprivate: MS_PRIVATE | MS_REC,
  shared: MS_SHARED,
  rshared: MS_SHARED | MS_REC,
  slave: MS_SLAVE,
  rslave: MS_SLAVE | MS_REC,
  unbindable: MS_UNBINDABLE,
  runbindable: MS_UNBINDABLE | MS_REC,
};

/** The largest data string mount(2) takes (one page, with its NUL). */
const MAX_MOUNT_DATA = 4095;

/** A rootfs mount's options as mount(2) wants them. */
export interface ParsedMountOptions {
  flags: number;
  /** Propagation flags for a second call (0: none). */
  propagation: number;
  /** The file system's own options, comma-joined (e.g. overlay's lowerdir=...). */
  data: string;
  /** Words mount(2) cannot do (loop): the mount must go through mount(8). */
  needsMountCommand: boolean;
}

/** Splits containerd's mount option words into mount(2) flags, propagation and data (pure). */
export function parseMountOptions(options: readonly string[]): ParsedMountOptions {
  let flags = 0;
  let propagation = 0;
  let needsMountCommand = false;
  const data: string[] = [];
  for (const word of options) {
    const f = FLAG_WORDS[word];
    if (f !== undefined) {
      flags = f[0] ? flags & ~f[1] : flags | f[1];
      continue;
    }
    const p = PROPAGATION_WORDS[word];
    if (p !== undefined) {
      propagation |= p;
      continue;
    }
    if (word === "loop") needsMountCommand = true;
    data.push(word);
  }
  const joined = data.join(",");
  return { flags, propagation, data: joined, needsMountCommand: needsMountCommand || joined.length > MAX_MOUNT_DATA };
}

/** Runs mount(8); resolves with its exit code and stderr. */
async function runMountCommand(argv: string[]): Promise<{ code: number; stderr: string }> {
  const p = Bun.spawn(argv, { stdin: "ignore", stdout: "ignore", stderr: "pipe" });
  const [stderr, code] = await Promise.all([new Response(p.stderr).text(), p.exited]);
  return { code, stderr: stderr.trim() };
}

/** Mounts one of containerd's rootfs mounts onto target. */
async function mountOne(m: RootfsMount, target: string): Promise<void> {
  const what = `rootfs mount ${m.type} ${m.source}`;
  const o = parseMountOptions(m.options);
  if (o.needsMountCommand) {
    const argv = ["mount", "-t", m.type, m.source, target];
    if (m.options.length > 0) argv.splice(1, 0, "-o", m.options.join(","));
    const r = await runMountCommand(argv);
    if (r.code !== 0) throw invalidArgument(what, { detail: r.stderr || `mount exited ${r.code}` });
    return;
  }
  const { mount } = await import("../sys/index.ts");
  try {
    mount(m.source, target, m.type, o.flags, o.data === "" ? null : o.data);
    // A bind ignores MS_RDONLY on the first call: read-only takes a remount of the bind.
    if ((o.flags & MS_BIND) !== 0 && (o.flags & MS_RDONLY) !== 0) mount(null, target, null, (o.flags & ~MS_REC) | MS_REMOUNT | MS_BIND | MS_RDONLY);
    if (o.propagation !== 0) mount(null, target, null, o.propagation);
  } catch (err) {
    throw invalidArgument(what, { cause: err, detail: CryoError.from(err).message });
  }
}

/**
 * Mounts containerd's rootfs mounts onto <bundle>/rootfs, in order. When one fails, what the earlier ones (and a
 * half-done one: a bind whose read-only remount failed) stacked on the target is unmounted before the error is
 * thrown: the caller unmounts only after a whole list mounted, and a list whose second mount failed left its first
 * on the bundle for good.
 */
export async function mountRootfs(bundle: string, mounts: readonly RootfsMount[]): Promise<void> {
  const target = join(bundle, "rootfs");
  mkdirSync(target, { recursive: true });
  const before = mountsAt(readFileSync("/proc/self/mountinfo", "utf8"), target);
  try {
    for (const m of mounts) await mountOne(m, target);
  } catch (err) {
    await unmountStacked(target, mountsAt(readFileSync("/proc/self/mountinfo", "utf8"), target) - before);
    throw err;
  }
}

/** Unescapes mountinfo's octal escapes (`\040` for a space). */
function unescapeMountPath(s: string): string {
  return s.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));
}

/** How many mounts sit exactly on path, from /proc/self/mountinfo text (field 5 is the mount point). */
export function mountsAt(mountinfo: string, path: string): number {
  let n = 0;
  for (const line of mountinfo.split("\n")) {
    const fields = line.split(" ");
    if (fields.length > 4 && unescapeMountPath(fields[4]!) === path) n++;
  }
  return n;
}

/** How often, and how far apart, a busy unmount is retried before it is detached lazily. */
const BUSY_RETRIES = 10;
const BUSY_RETRY_MS = 20;

/** Unmounts everything stacked on <bundle>/rootfs; nothing mounted is fine. */
export async function unmountRootfs(bundle: string): Promise<void> {
  const target = join(bundle, "rootfs");
  let count: number;
  try {
    count = mountsAt(readFileSync("/proc/self/mountinfo", "utf8"), target);
  } catch {
    count = 8; // cannot tell: try until umount fails
  }
  await unmountStacked(target, count);
}

/** Unmounts the top count mounts stacked on target (a busy one detached). */
async function unmountStacked(target: string, count: number): Promise<void> {
  if (count <= 0) return;
  // src/sys (bun:ffi) is loaded only when something is mounted: `delete` after a clean Delete does not pay for it.
  const { Errno, errnoOf, MNT_DETACH, umount2 } = await import("../sys/index.ts");
  for (let i = 0; i < count; i++) {
    for (let attempt = 0; ; attempt++) {
      try {
        umount2(target);
        break;
      } catch (err) {
        const e = errnoOf(err);
        if (e === Errno.EBUSY && attempt < BUSY_RETRIES) {
          await Bun.sleep(BUSY_RETRY_MS);
          continue;
        }
        // Still busy: detach it, so that the bundle can go and the mount goes with its last user.
        if (e === Errno.EBUSY) {
          try {
            umount2(target, MNT_DETACH);
          } catch {
            // gone meanwhile
          }
        }
        return; // EINVAL: not mounted (any more); ENOENT: no rootfs
      }
    }
  }
}
