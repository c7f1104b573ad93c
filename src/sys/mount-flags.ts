/**
 * mount(2)'s flags (<sys/mount.h>), in a module of their own so that pure code (option parsing, image checks)
 * can name them without loading libc. src/sys/mount.ts re-exports them with the calls.
 */

/** Read-only mount. */
export const MS_RDONLY = 1;
/** Ignore set-user/group-id bits. */
export const MS_NOSUID = 2;
/** No device files. */
export const MS_NODEV = 4;
/** No execution. */
export const MS_NOEXEC = 8;
/** Writes are synced at once. */
export const MS_SYNCHRONOUS = 16;
/** Change the flags of an existing mount (with MS_BIND: of that bind mount only). */
export const MS_REMOUNT = 32;
/** Mandatory locking (gone from current kernels; still a word of mount options). */
export const MS_MANDLOCK = 64;
/** Directory changes are synced at once. */
export const MS_DIRSYNC = 128;
/** Do not update access times. */
export const MS_NOATIME = 1024;
/** Do not update directory access times. */
export const MS_NODIRATIME = 2048;
/** Bind mount. */
export const MS_BIND = 4096;
/** Move a mount. */
export const MS_MOVE = 8192;
/** Recursive (with MS_BIND or a propagation flag). */
export const MS_REC = 16384;
/** Propagation: unbindable. */
export const MS_UNBINDABLE = 1 << 17;
/** Propagation: private. */
export const MS_PRIVATE = 1 << 18;
/** Propagation: slave. */
export const MS_SLAVE = 1 << 19;
/** Propagation: shared. */
export const MS_SHARED = 1 << 20;
/** Update access times relative to the modification time. */
export const MS_RELATIME = 1 << 21;
/** Always update access times. */
export const MS_STRICTATIME = 1 << 24;
