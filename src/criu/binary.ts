/**
 * Which criu binary cryo runs (libcriu's `criu swrk`, `criu lazy-pages`), and the directory of its
 * kernel-facts cache.
 *
 * CRIU works out what the kernel can do (kerndat: pagemap, vDSO, uffd, netfilter backends, ...) at the start
 * of every call and keeps the result in `<RUNDIR>/criu.kdat`, but only when that directory is on a tmpfs (the
 * facts must go with a reboot). Upstream's RUNDIR is /run; where /run is no tmpfs (this VM: ext4) every call
 * pays for it again: 30-60 ms of each dump and restore here, part of it in the dump's frozen window.
 * The setup (scripts/setup.sh) therefore also builds cryo's own criu from the same source with
 * RUNDIR=/dev/shm/cryo-criu, installed as /usr/local/libexec/cryo/criu; the host's criu (runc's) is untouched.
 *
 * /dev/shm is writable by everyone, and CRIU trusts whatever criu.kdat it finds. So before a call cryo
 * makes sure the directory is its own: a real directory, owned by this (root) process's user, mode 0700.
 * Anything else at that path is removed and the directory made again; when that fails, cryo runs the host's
 * criu, uncached. Nobody else can write into a root 0700 directory, and /dev/shm's sticky bit keeps others
 * from renaming or removing it.
 */
import { lstatSync, mkdirSync, readFileSync, rmSync, statSync } from "node:fs";
import { dirname, join } from "node:path";

const code = (err: unknown) => (err as NodeJS.ErrnoException | undefined)?.code;

/** Where the setup installs cryo's criu; override with CRYO_CRIU. */
export const CRYO_CRIU_PATH = "/usr/local/libexec/cryo/criu";
/** The RUNDIR cryo's criu is built with (scripts/setup.sh): its criu.kdat lives here. */
export const KDAT_CACHE_DIR = "/dev/shm/cryo-criu";

/**
 * Makes `dir` a directory only this process's user can use (0700, owned by it), replacing whatever else is
 * there. Returns false when it cannot.
 */
export function ensurePrivateDir(dir: string, uid: number = process.geteuid?.() ?? 0): boolean {
  for (let attempt = 0; attempt < 3; attempt++) {
    let st;
    try {
      st = lstatSync(dir);
    } catch (err) {
      if (code(err) !== "ENOENT") return false;
      try {
        mkdirSync(dir, { mode: 0o700 });
      } catch (e) {
        if (code(e) !== "EEXIST") return false;
      }
      continue;
    }
    if (st.isDirectory() && st.uid === uid && (st.mode & 0o777) === 0o700) return true;
    // Someone else's, a symlink, or open to others: its criu.kdat cannot be trusted.
    try {
      rmSync(dir, { recursive: true, force: true });
    } catch {
      return false;
    }
  }
  return false;
}

/**
 * The criu binary for the next call: CRYO_CRIU when set (used as it is); otherwise cryo's own build when it is installed and
 * its cache directory is safe; otherwise "criu" from PATH (the host's, no cache where /run is no tmpfs).
 */
export function criuBinary(env: Record<string, string | undefined> = process.env, paths = { binary: CRYO_CRIU_PATH, kdatDir: KDAT_CACHE_DIR }): string {
  const override = env.CRYO_CRIU;
  if (override) return override;
  try {
    if (!statSync(paths.binary).isFile()) return "criu";
  } catch {
    return "criu";
  }
  return ensurePrivateDir(paths.kdatDir) ? paths.binary : "criu";
}

/** The patch of scripts/criu/ that makes SIGTERM stop a dump at a safe point (see criuStopsDumpsOnSigterm). */
export const SIGTERM_ABORT_PATCH = "0007-dump-aborts-cleanly-on-sigterm.patch";

/** The patch of scripts/criu/ that records a task's personality and sets it again at restore (see criuRestoresPersonality). */
export const PERSONALITY_PATCH = "0011-dump-and-restore-the-personality.patch";

const patchesKnown = new Map<string, { mtimeMs: number; applied: Set<string> }>();

/**
 * Whether `binary` is a CRIU build with `patch` of scripts/criu/ applied: the record scripts/setup.sh writes beside
 * cryo's build (`criu.build`: CRIU's version, then a line "NAME SHA256 applied|skipped" per patch) lists it as
 * applied. Any other criu (the host's, a CRYO_CRIU without such a record) has none. Cached per record file and its
 * mtime.
 */
export function criuBuildHasPatch(binary: string, patch: string): boolean {
  if (!binary.includes("/")) return false;
  const record = join(dirname(binary), "criu.build");
  let mtimeMs: number;
  try {
    mtimeMs = statSync(record).mtimeMs;
  } catch {
    return false;
  }
  let known = patchesKnown.get(record);
  if (known?.mtimeMs !== mtimeMs) {
    const applied = new Set<string>();
    try {
      for (const line of readFileSync(record, "utf8").split("\n")) {
        const [name, , state] = line.trim().split(/\s+/);
        if (name !== undefined && state === "applied") applied.add(name);
      }
    } catch {
      // unreadable: none
    }
    known = { mtimeMs, applied };
    patchesKnown.set(record, known);
  }
  return known.applied.has(patch);
}

/**
 * Whether `binary` stops a dump or pre-dump on SIGTERM at its next safe point, undoing what it did (cryo's build with
 * patch 0007). Any other criu dies of SIGTERM like of SIGKILL, so an abort must kill it.
 */
export function criuStopsDumpsOnSigterm(binary: string): boolean {
  return criuBuildHasPatch(binary, SIGTERM_ABORT_PATCH);
}

/**
 * Whether `binary` carries a task's personality(2) across a checkpoint (cryo's build with patch 0011): its dump
 * records each thread's, and each restored thread sets its own. Any other criu records the process's misread and
 * never sets it, and nothing outside the task can.
 */
export function criuRestoresPersonality(binary: string): boolean {
  return criuBuildHasPatch(binary, PERSONALITY_PATCH);
}
