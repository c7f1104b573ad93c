/**
 * Local pages (`cryo.checkpoint/local-pages=true`): a checkpoint's page images stay on the host that
 * made it, in its page store, and the checkpoint containerd tars holds only a reference to them
 * (the metadata's `localPages`).
 *
 * Why: containerd tars the whole images directory into its content store after a checkpoint and
 * untars it before a restore; for a large container that copying is most of the time both take.
 * Pages moved out of that directory (a rename on the same file system) never go through it, and a
 * restore links them back (hard links; copies across file systems), so the restore reads them where they are and a second restore of the same checkpoint finds them again.
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
import { copyFileSync, existsSync, linkSync, lstatSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, realpathSync, renameSync, rmSync, statSync, writeFileSync } from "node:fs";
import { hostname } from "node:os";
import { dirname, join } from "node:path";
import { Code, CryoError, failedPrecondition } from "../errors.ts";
import type { CheckpointMetadata } from "./metadata.ts";

/** Environment variable naming the page store's directory. */
export const PAGE_STORE_ENV = "CRYO_PAGE_STORE";
/** The page store when CRYO_PAGE_STORE is not set. */
export const DEFAULT_PAGE_STORE = "/var/lib/cryo/pages";

/** The metadata's record of pages kept in a page store. */
export type LocalPages = NonNullable<CheckpointMetadata["localPages"]>;

const PAGE_IMAGE = /^pages-\d+\.img$/;
/** The file in each entry that binds it to its checkpoint. */
export const ENTRY_FILE = "entry.json";

/** The page store's directory for this environment. */
export function pageStoreRoot(env: Record<string, string | undefined> = process.env): string {
  const v = env[PAGE_STORE_ENV];
  return v !== undefined && v.startsWith("/") ? v : DEFAULT_PAGE_STORE;
}

/** Moves one file: rename, or copy and remove across file systems. */
function move(from: string, to: string): void {
  try {
    renameSync(from, to);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "EXDEV") throw err;
    copyFileSync(from, to);
    rmSync(from);
  }
}

/**
 * Moves the page images (pages-N.img) of imagesDir into a new entry of the store under root, named
 * after label. On failure every file moved so far is moved back and the entry removed.
 */
export function storePages(imagesDir: string, root: string, label: string): LocalPages {
  const names = readdirSync(imagesDir).filter((f) => PAGE_IMAGE.test(f)).sort();
  let dir: string;
  try {
    mkdirSync(root, { recursive: true, mode: 0o700 });
    dir = mkdtempSync(join(root, `${label.replace(/[^A-Za-z0-9_.-]/g, "_")}-`));
  } catch (err) {
    throw CryoError.from(err).wrap(`page store ${root}`);
  }
  const files: LocalPages["files"] = [];
  try {
    for (const name of names) {
      const bytes = statSync(join(imagesDir, name)).size;
      move(join(imagesDir, name), join(dir, name));
      files.push({ name, bytes });
    }
  } catch (err) {
    for (const f of files) {
      try {
        move(join(dir, f.name), join(imagesDir, f.name));
      } catch {
        // keep going: put back what can be put back
      }
    }
    rmSync(dir, { recursive: true, force: true });
    throw CryoError.from(err).wrap(`move page images of ${imagesDir} into the page store ${root}`);
  }
  const token = Buffer.from(crypto.getRandomValues(new Uint8Array(16))).toString("hex");
  try {
    writeFileSync(join(dir, ENTRY_FILE), `${JSON.stringify({ token, files })}\n`, { mode: 0o600 });
  } catch (err) {
    const local = { dir, hostname: hostname(), token, files };
    unstorePages(imagesDir, local);
    throw CryoError.from(err).wrap(`page store entry ${dir}`);
  }
  return { dir, hostname: hostname(), token, files };
}

function denied(where: string, detail: string): CryoError {
  return new CryoError(Code.PERMISSION_DENIED, `${where}: permission denied: ${detail}`);
}

/** Checks that local.dir is an entry of the store under root holding local.token (see the module comment). */
function checkEntry(local: LocalPages, root: string, where: string): void {
  let inStore = false;
  try {
    inStore = realpathSync(dirname(local.dir)) === realpathSync(root) && lstatSync(local.dir).isDirectory();
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "ENOENT") throw CryoError.from(err).wrap(where);
  }
  if (!existsSync(local.dir)) {
    throw failedPrecondition(where, { detail: `${local.dir} is missing here: restore on ${local.hostname}, or checkpoint without cryo.checkpoint/local-pages` });
  }
  if (!inStore) throw denied(where, `${local.dir} is not an entry of this host's page store ${root}`);
  let token: unknown;
  try {
    token = (JSON.parse(readFileSync(join(local.dir, ENTRY_FILE), "utf8")) as { token?: unknown }).token;
  } catch {
    token = undefined;
  }
  if (token !== local.token) throw denied(where, `${local.dir} does not belong to this checkpoint (its ${ENTRY_FILE} holds another token)`);
}

/** Moves the pages of a store entry back into imagesDir and removes the entry (a checkpoint that failed after storePages). */
export function unstorePages(imagesDir: string, local: LocalPages): void {
  for (const f of local.files) {
    const from = join(local.dir, f.name);
    if (existsSync(from)) move(from, join(imagesDir, f.name));
  }
  rmSync(local.dir, { recursive: true, force: true });
}

/**
 * Links the page images of the store entry into imagesDir for a restore: hard links, so the entry stays
 * whole for the next restore (CRIU's restorer fails to read pages through a symbolic link: "Can't read
 * pages data (-9)"). Where the store and imagesDir are on different file systems the files are copied
 * (`copied`: as slow as containerd's untar of pages would have been). FAILED_PRECONDITION when the entry
 * or a file is missing or has another size than recorded.
 */
export function linkPages(imagesDir: string, local: LocalPages, root: string): { copied: boolean } {
  let copied = false;
  const where = `the checkpoint's page images (kept in the page store of host ${local.hostname}, ${local.dir})`;
  checkEntry(local, root, where);
  for (const f of local.files) {
    const path = join(local.dir, f.name);
    let size: number;
    try {
      const st = lstatSync(path);
      if (!st.isFile()) throw denied(where, `${path} is not a regular file`);
      size = st.size;
    } catch (err) {
      if (err instanceof CryoError) throw err;
      throw failedPrecondition(where, { cause: err, detail: `${path} is missing here: restore on ${local.hostname}, or checkpoint without cryo.checkpoint/local-pages` });
    }
    if (size !== f.bytes) throw failedPrecondition(where, { detail: `${path} has ${size} bytes, the checkpoint recorded ${f.bytes}` });
    const link = join(imagesDir, f.name);
    rmSync(link, { force: true });
    try {
      linkSync(path, link);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "EXDEV") throw CryoError.from(err).wrap(`link ${path} into ${imagesDir}`);
      copyFileSync(path, link);
      copied = true;
    }
  }
  return { copied };
}

/**
 * Removes what linkPages put into imagesDir, once the restore no longer reads it (containerd 1.6
 * never removes the directory it extracted a checkpoint into: links left there would keep a removed
 * entry's pages on disk).
 */
export function unlinkPages(imagesDir: string, local: LocalPages): void {
  for (const f of local.files) rmSync(join(imagesDir, f.name), { force: true });
}

/** One entry of the page store. */
export interface PageStoreEntry {
  name: string;
  dir: string;
  files: number;
  bytes: number;
  modified: Date;
}

/** The entries of the store under root (none when it does not exist). */
export function listPageStore(root: string): PageStoreEntry[] {
  if (!existsSync(root)) return [];
  const out: PageStoreEntry[] = [];
  for (const name of readdirSync(root).sort()) {
    const dir = join(root, name);
    const st = statSync(dir);
    if (!st.isDirectory()) continue;
    const files = readdirSync(dir).filter((f) => PAGE_IMAGE.test(f));
    out.push({ name, dir, files: files.length, bytes: files.reduce((s, f) => s + statSync(join(dir, f)).size, 0), modified: st.mtime });
  }
  return out;
}
