/**
 * Local pages (`cryo.checkpoint/local-pages=true`): a checkpoint's page images stay on the host that
 * made it, in its page store, and the checkpoint containerd tars holds only a reference to them
 * (the metadata's `localPages`).
 *
 * Why: containerd tars the whole images directory into its content store after a checkpoint and
 * untars it before a restore; for a large container that copying is most of the time both take.
 * Here CRIU dumps into a new entry of the store, and only the images that are not pages move on to
 * the directory containerd tars (createEntry, finishEntry): pages are written once, where they stay,
 * whatever file system containerd's temporary directory is on. A restore reads them where they are:
 * CRIU gets a directory inside the store with the checkpoint's other images and hard links to the
 * pages (restoreImagesDir), and a second restore finds them again.
 *
 * The cost: such a checkpoint is not self-contained. Pushed or exported, it arrives without its
 * memory, and a restore on a host without the store entry fails (FAILED_PRECONDITION naming the host
 * that keeps them). Entries live until removed (`cryo pages rm`, or deleting the directory):
 * deleting the checkpoint image from containerd does not delete them.
 *
 * The store is CRYO_PAGE_STORE from the shim's environment (containerd's), default
 * /var/lib/cryo/pages; one directory (mode 0700) per checkpoint.
 *
 * A checkpoint image is input from outside: its metadata names the entry. A restore uses an entry only
 * when it is a directory right inside this host's store and its `entry.json` holds the token the
 * metadata carries (128 random bits written at the dump), and links only regular files. So a crafted
 * checkpoint can neither point at files elsewhere on the host nor borrow the memory of another
 * checkpoint's entry without having that checkpoint (PERMISSION_DENIED).
 */
import { closeSync, copyFileSync, cpSync, existsSync, linkSync, lstatSync, mkdirSync, mkdtempSync, openSync, readdirSync, readFileSync, realpathSync, renameSync, rmSync, statSync, writeFileSync } from "node:fs";
import { hostname } from "node:os";
import { basename, dirname, join, resolve } from "node:path";
import { Code, CryoError, failedPrecondition, fsError } from "../errors.ts";
import { rfc3339Nano } from "../sys/clock.ts";
import { tryLockExclusive } from "../sys/index.ts";
import type { CheckpointMetadata } from "./metadata.ts";

/** Environment variable naming the page store's directory. */
export const PAGE_STORE_ENV = "CRYO_PAGE_STORE";
/** The page store when CRYO_PAGE_STORE is not set. */
export const DEFAULT_PAGE_STORE = "/var/lib/cryo/pages";

/** The metadata's record of pages kept in a page store. */
export type LocalPages = NonNullable<CheckpointMetadata["localPages"]>;

const PAGE_IMAGE = /^pages-\d+\.img$/;
/** Name prefix of a restore's images directory inside the store (not an entry). */
const RESTORE_PREFIX = ".restore-";
/** The file in each entry that binds it to its checkpoint. */
export const ENTRY_FILE = "entry.json";

/** Whether dir is a restore's images directory directly in the page store root (restoreImagesDir), by its path alone. */
export function isRestoreImagesDir(dir: string, root: string): boolean {
  return dirname(dir) === root && basename(dir).startsWith(RESTORE_PREFIX) && basename(dir).length > RESTORE_PREFIX.length;
}

/** The page store's directory for this environment. */
export function pageStoreRoot(env: Record<string, string | undefined> = process.env): string {
  const v = env[PAGE_STORE_ENV];
  return v !== undefined && v.startsWith("/") ? v : DEFAULT_PAGE_STORE;
}

/** Moves one file or directory: rename, or copy and remove across file systems. */
function move(from: string, to: string): void {
  try {
    renameSync(from, to);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "EXDEV") throw err;
    cpSync(from, to, { recursive: true });
    rmSync(from, { recursive: true });
  }
}

/** A new, empty entry of the store under root (mode 0700), named after label: CRIU dumps into it. */
export function createEntry(root: string, label: string): string {
  try {
    mkdirSync(root, { recursive: true, mode: 0o700 });
    return mkdtempSync(join(root, `${label.replace(/[^A-Za-z0-9_.-]/g, "_")}-`));
  } catch (err) {
    throw CryoError.from(err).wrap(`page store ${root}`);
  }
}

/**
 * After CRIU dumped into the entry: moves everything but the page images (pages-N.img) into imagesDir,
 * the directory containerd tars (small: the tree, mappings, files), writes the entry's entry.json with
 * a new token (and the address of the containerd the checkpoint goes to, when known: `cryo pages prune` keeps
 * the entries of a containerd it was not told to look in), and returns the metadata's record of it. On failure
 * the caller removes the entry.
 */
export function finishEntry(entry: string, imagesDir: string, containerd?: string): LocalPages {
  const files: LocalPages["files"] = [];
  for (const name of readdirSync(entry).sort()) {
    if (!PAGE_IMAGE.test(name)) {
      move(join(entry, name), join(imagesDir, name));
      continue;
    }
    const st = statSync(join(entry, name), { bigint: true });
    files.push({ name, bytes: Number(st.size), mtimeNs: String(st.mtimeNs) });
  }
  const token = Buffer.from(crypto.getRandomValues(new Uint8Array(16))).toString("hex");
  writeFileSync(join(entry, ENTRY_FILE), `${JSON.stringify(containerd ? { token, files, containerd } : { token, files })}\n`, { mode: 0o600 });
  return { dir: entry, hostname: hostname(), token, files };
}

/** A time in ns since the epoch, as RFC 3339 with its nanoseconds. */
const nsTime = (ns: bigint): string => rfc3339Nano({ seconds: ns / 1_000_000_000n, nanos: Number(ns % 1_000_000_000n) });

function denied(where: string, detail: string): CryoError {
  return new CryoError(Code.PERMISSION_DENIED, `${where}: permission denied: ${detail}`);
}

/**
 * Why a page store path of the checkpoint is not there. On another host: the checkpoint belongs to local.hostname. On
 * the host that took it, "restore on <this host>" would send the operator in a circle: the entry was removed
 * (`cryo pages rm`, `cryo pages prune`, or by hand), and no restore of the checkpoint can have its memory.
 */
function missingHere(path: string, local: LocalPages): string {
  if (hostname() !== local.hostname) return `${path} is missing here: restore on ${local.hostname}, or checkpoint without cryo.checkpoint/local-pages`;
  return `${path} is missing: this host took the checkpoint, and its page store entry was removed since (cryo pages rm, cryo pages prune, or by hand); its memory is gone, no restore can use it`;
}

/** The context of a local-pages refusal. */
function pagesWhere(local: LocalPages): string {
  return `the checkpoint's page images (kept in the page store of host ${local.hostname}, ${local.dir})`;
}

/**
 * Checks that local.dir is an entry of the store under root holding local.token (see the module comment). Its place is
 * judged first, by its name alone: a directory that is not right inside the store (elsewhere on the host, `..` out of
 * it, the store itself, a restore's `.restore-*`) is PERMISSION_DENIED whether it exists or not (FAILED_PRECONDITION
 * when the checkpoint names another host: restore it there). Before, only an
 * existing one was: a checkpoint pointing at a missing directory anywhere on the host got FAILED_PRECONDITION, "missing
 * here: restore on <host>", as if it were a page store entry of another host.
 */
export function checkLocalPagesEntry(local: LocalPages, root: string, where = pagesWhere(local)): void {
  const store = resolve(root);
  const dir = resolve(local.dir);
  // The dump wrote a normalised path (join): one spelt otherwise (`.`, `..`, `//`) is no dump's.
  if (local.dir !== dir || dirname(dir) !== store || basename(dir).startsWith(".")) {
    // Another host's checkpoint (its store may be elsewhere): its pages are there, not here. Nothing is read from the
    // path either way; the code says which mistake it is.
    if (hostname() !== local.hostname) {
      throw failedPrecondition(where, { detail: `${local.dir} is not an entry of this host's page store ${root} (the checkpoint was taken on ${local.hostname}: restore it there, with that host's store, or checkpoint without cryo.checkpoint/local-pages)` });
    }
    throw denied(where, `${local.dir} is not an entry of this host's page store ${root}`);
  }
  let inStore = false;
  try {
    inStore = realpathSync(dirname(local.dir)) === realpathSync(root) && lstatSync(local.dir).isDirectory();
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "ENOENT") throw CryoError.from(err).wrap(where);
  }
  if (!existsSync(local.dir)) throw failedPrecondition(where, { detail: missingHere(local.dir, local) });
  if (!inStore) throw denied(where, `${local.dir} is not an entry of this host's page store ${root}`);
  let token: unknown;
  try {
    token = (JSON.parse(readFileSync(join(local.dir, ENTRY_FILE), "utf8")) as { token?: unknown }).token;
  } catch {
    token = undefined;
  }
  if (token !== local.token) throw denied(where, `${local.dir} does not belong to this checkpoint (its ${ENTRY_FILE} holds another token)`);
}

/** The directory a restore hands CRIU (restoreImagesDir); disposing of it removes it. */
export interface RestoreImages extends Disposable {
  dir: string;
  /** The page images were copied, not linked (the store's file system does not allow hard links between its directories). */
  copied: boolean;
}

/**
 * The images directory for a restore of a local-pages checkpoint: a new directory inside the page store
 * (`.restore-*`, on the store's file system) with the checkpoint's other images from imagesDir (the
 * directory containerd extracted: hard links, or copies across file systems, small) and hard links to
 * the entry's page images, so
 * no page is copied whatever file system containerd extracts into, and the entry stays whole for the
 * next restore. (CRIU's restorer fails to read pages through a symbolic link: "Can't read pages data
 * (-9)".) FAILED_PRECONDITION when the entry or a file is missing or has another size than recorded;
 * PERMISSION_DENIED for an entry that is not this checkpoint's (see the module comment).
 */
export function restoreImagesDir(imagesDir: string, local: LocalPages, root: string): RestoreImages {
  const where = pagesWhere(local);
  checkLocalPagesEntry(local, root, where);
  for (const f of local.files) {
    const path = join(local.dir, f.name);
    let size: number;
    let mtimeNs: bigint;
    try {
      const st = lstatSync(path, { bigint: true });
      if (!st.isFile()) throw denied(where, `${path} is not a regular file`);
      size = Number(st.size);
      mtimeNs = st.mtimeNs;
    } catch (err) {
      if (err instanceof CryoError) throw err;
      throw failedPrecondition(where, { cause: err, detail: missingHere(path, local) });
    }
    if (size !== f.bytes) throw failedPrecondition(where, { detail: `${path} has ${size} bytes, the checkpoint recorded ${f.bytes}` });
    // Written to since the dump (CRIU's restore and lazy-pages daemon only read it, and its hard links keep the time): its
    // pages may not be the checkpoint's, and CRIU would restore them without a word. A copy that kept the time (cp -a,
    // rsync -a) passes.
    if (f.mtimeNs !== undefined && String(mtimeNs) !== f.mtimeNs) {
      throw failedPrecondition(where, { detail: `${path} was modified since the checkpoint (modified ${nsTime(mtimeNs)}, the checkpoint recorded ${nsTime(BigInt(f.mtimeNs))}): its pages may not be the checkpoint's` });
    }
  }
  const dir = mkdtempSync(join(root, RESTORE_PREFIX));
  const dispose = () => rmSync(dir, { recursive: true, force: true });
  let copied = false;
  try {
    // The other images: hard links too where the file systems allow (a copy costs ~15 ms for a small
    // container's ~30 files), else copies (small).
    for (const entry of readdirSync(imagesDir, { withFileTypes: true })) {
      const name = entry.name;
      if (PAGE_IMAGE.test(name)) continue;
      if (entry.isFile()) {
        try {
          linkSync(join(imagesDir, name), join(dir, name));
          continue;
        } catch (err) {
          if ((err as NodeJS.ErrnoException).code !== "EXDEV") throw err;
        }
      }
      cpSync(join(imagesDir, name), join(dir, name), { recursive: true });
    }
    for (const f of local.files) {
      const path = join(local.dir, f.name);
      try {
        linkSync(path, join(dir, f.name));
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== "EXDEV") throw err;
        copyFileSync(path, join(dir, f.name));
        copied = true;
      }
    }
  } catch (err) {
    dispose();
    throw CryoError.from(err).wrap(`images for the restore in ${dir}`);
  }
  return { dir, copied, [Symbol.dispose]: dispose };
}

/**
 * Holds a store entry for a restore that changes its page images' group and mode while CRIU runs (one into a
 * user namespace: grantImages). The restore's images are hard links to the entry's, so two such restores at
 * once would take each other's change for the images' own, and leave the entry's files to a namespace's group.
 * One at a time per entry, across shim daemons: flock(2) on the entry's directory, polled (the shim's event
 * loop stays free) until the other restore lets go or signal aborts. onWait is called once, if it waits.
 */
export async function holdPageStoreEntry(dir: string, opts: { signal?: AbortSignal; onWait?: () => void; pollMs?: number } = {}): Promise<{ release: () => void }> {
  const fd = openSync(dir, "r");
  try {
    let waited = false;
    while (!tryLockExclusive(fd)) {
      if (!waited) opts.onWait?.();
      waited = true;
      opts.signal?.throwIfAborted();
      await Bun.sleep(opts.pollMs ?? 20);
    }
  } catch (err) {
    closeSync(fd);
    throw err instanceof CryoError ? err.wrap(`hold the page store entry ${dir}`) : err;
  }
  let released = false;
  return {
    release: () => {
      if (released) return;
      released = true;
      closeSync(fd); // drops the lock
    },
  };
}

/** One entry of the page store. */
export interface PageStoreEntry {
  name: string;
  dir: string;
  files: number;
  bytes: number;
  modified: Date;
}

/**
 * The entries of the store under root (none when it does not exist). A store this user may not read, or a file in
 * its place, is an error in words: existsSync took an unreadable store for a missing one, listed as empty.
 */
export function listPageStore(root: string): PageStoreEntry[] {
  let names: string[];
  try {
    names = readdirSync(root).sort();
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return [];
    throw fsError(`page store ${root}`, err, root);
  }
  const out: PageStoreEntry[] = [];
  for (const name of names) {
    if (name.startsWith(".")) continue; // a restore's images directory
    const dir = join(root, name);
    const st = statSync(dir);
    if (!st.isDirectory()) continue;
    const files = readdirSync(dir).filter((f) => PAGE_IMAGE.test(f));
    out.push({ name, dir, files: files.length, bytes: files.reduce((s, f) => s + statSync(join(dir, f)).size, 0), modified: st.mtime });
  }
  return out;
}
