/** mknod(2) through libc, for device nodes (Node's fs has no mknod). */
import { libc, sysError } from "./libc.ts";

/** File type bits of mknod's mode (<sys/stat.h>). */
export const S_IFCHR = 0o020000;
export const S_IFBLK = 0o060000;

/** The kernel's dev_t of a major and minor number (glibc's makedev). */
export function makedev(major: number, minor: number): bigint {
  const ma = BigInt(major);
  const mi = BigInt(minor);
  return ((ma & 0xfffff000n) << 32n) | ((ma & 0xfffn) << 8n) | ((mi & 0xffffff00n) << 12n) | (mi & 0xffn);
}

/** The major and minor numbers of a dev_t as lstat reports it (a number; glibc's major()/minor()). */
export function splitDev(dev: number): { major: number; minor: number } {
  const d = BigInt(dev);
  return { major: Number(((d >> 8n) & 0xfffn) | ((d >> 32n) & ~0xfffn)), minor: Number((d & 0xffn) | ((d >> 12n) & ~0xffn)) };
}

/** mknod(2): `type` is S_IFCHR or S_IFBLK; the permission bits are subject to the umask (chmod after). */
export function mknod(path: string, type: number, perm: number, major: number, minor: number): void {
  if (libc.mknod(Buffer.from(`${path}\0`), type | (perm & 0o7777), makedev(major, minor)) !== 0) throw sysError(`mknod(${path}, ${major}:${minor})`);
}
