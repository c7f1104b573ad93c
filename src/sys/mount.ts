/**
 * mount(2) and umount2(2) through libc, with the flag constants from <sys/mount.h>.
 *
 * Flags combine with `|`: `mount(src, dst, null, MS_BIND | MS_REC)` then
 * `mount(null, dst, null, MS_PRIVATE | MS_REC)` is `mount --rbind --make-rprivate`. The kernel takes
 * the propagation change (MS_PRIVATE, MS_SLAVE, MS_SHARED, MS_UNBINDABLE) only on its own, in a
 * second call, as mount(8) does.
 */
import { libc, sysError } from "./libc.ts";

export * from "./mount-flags.ts";

/** umount2: force (network file systems). */
export const MNT_FORCE = 1;
/** umount2: detach now, clean up when no longer busy (umount -l). */
export const MNT_DETACH = 2;
/** umount2: mark for expiry. */
export const MNT_EXPIRE = 4;
/** umount2: do not follow a symlink target. */
export const UMOUNT_NOFOLLOW = 8;

function cstr(s: string | null | undefined): Buffer | null {
  return s === null || s === undefined ? null : Buffer.from(`${s}\0`);
}

/**
 * mount(2): `source` and `fstype` may be null (bind mounts, propagation changes, remounts); `data` is
 * the file system's option string. Fails with a CryoError carrying errno (sysError's code mapping).
 */
export function mount(source: string | null, target: string, fstype: string | null, flags: number, data: string | null = null): void {
  const src = cstr(source);
  const tgt = cstr(target);
  const fs = cstr(fstype);
  const dat = cstr(data);
  if (libc.mount(src, tgt, fs, BigInt(flags), dat) !== 0) {
    throw sysError(`mount(${source ?? "none"}, ${target}, ${fstype ?? "none"}, 0x${flags.toString(16)})`);
  }
}

/** umount2(2): flags are MNT_DETACH, MNT_FORCE, MNT_EXPIRE, UMOUNT_NOFOLLOW. */
export function umount2(target: string, flags = 0): void {
  if (libc.umount2(cstr(target), flags) !== 0) throw sysError(`umount2(${target}, ${flags})`);
}
