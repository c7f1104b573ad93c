/**
 * `cryo pages prune`: removes the page store entries no checkpoint image refers to any more.
 *
 * An entry is referenced when a checkpoint image in some namespace of the given containerd(s) carries
 * metadata (`cryo-checkpoint.json` in its CRIU tar) whose `localPages.dir` is that entry. The tar is
 * streamed out of the content store (`ctr content get`) into `tar --occurrence=1`, which stops at the
 * metadata: a checkpoint image's memory is never read in full. Entries younger than the age limit are
 * kept whatever the images say: a checkpoint in progress has its entry before containerd has its image.
 * Restore directories (`.restore-*`) older than the limit are left from a shim that died mid-restore,
 * and go too.
 */
import { readdirSync, readFileSync, realpathSync, rmSync, statSync } from "node:fs";
import { join } from "node:path";
import { ctrAddress, runCtr } from "../containerd/ctr.ts";
import { Code, CryoError, fsError } from "../errors.ts";
import { ENTRY_FILE } from "./local-pages.ts";

/** containerd's media type of a checkpoint image's CRIU tar. */
const CRIU_TAR = "application/vnd.containerd.container.criu.checkpoint.criu.tar";

/** A checkpoint image that refers to a page store entry. */
export interface PageReference {
  address: string;
  namespace: string;
  image: string;
  dir: string;
}

async function ctrOk(address: string, namespace: string, args: string[]): Promise<string> {
  const r = await runCtr(address, args, { namespace });
  if (r.exitCode !== 0) throw new CryoError(Code.UNAVAILABLE, `ctr --address ${address} -n ${namespace} ${args.join(" ")}: ${r.stderr.trim() || `exit ${r.exitCode}`}`);
  return r.stdout;
}

/**
 * cryo-checkpoint.json's `localPages.dir` out of the CRIU tar blob digest; undefined when the tar has
 * no cryo metadata (runc's checkpoint) or the metadata no local pages. Anything it cannot tell (ctr or
 * tar failing, metadata that is not JSON) throws: prune must not take a reference it failed to read for
 * no reference.
 */
async function localPagesDir(address: string, namespace: string, digest: string): Promise<string | undefined> {
  const what = `checkpoint metadata in ${digest} (namespace ${namespace})`;
  const ctr = Bun.spawn(["ctr", "--address", ctrAddress(address), "--namespace", namespace, "content", "get", digest], { stdout: "pipe", stderr: "pipe" });
  const tar = Bun.spawn(["tar", "-xO", "--occurrence=1", "-f", "-", "cryo-checkpoint.json"], { stdin: ctr.stdout, stdout: "pipe", stderr: "pipe" });
  const [text, tarErr, tarCode] = await Promise.all([new Response(tar.stdout).text(), new Response(tar.stderr).text(), tar.exited]);
  if (tarCode === 0 && text !== "") {
    ctr.kill(); // tar stopped at the metadata: the rest of the blob is not needed
    await ctr.exited;
    let meta: { localPages?: { dir?: unknown } };
    try {
      meta = JSON.parse(text) as typeof meta;
    } catch (err) {
      throw new CryoError(Code.DATA_LOSS, `${what}: not JSON`, { cause: err });
    }
    const dir = meta.localPages?.dir;
    return typeof dir === "string" ? dir : undefined;
  }
  const [ctrErr, ctrCode] = await Promise.all([new Response(ctr.stderr).text(), ctr.exited]);
  if (ctrCode !== 0) throw new CryoError(Code.UNAVAILABLE, `${what}: ctr content get: ${ctrErr.trim() || `exit ${ctrCode}`}`);
  if (/Not found in archive/.test(tarErr)) return undefined;
  throw new CryoError(Code.UNKNOWN, `${what}: tar: ${tarErr.trim() || `exit ${tarCode}`}`);
}

/** Every page store entry the checkpoint images of containerd at address refer to, in every namespace. */
export async function pageReferences(address: string): Promise<PageReference[]> {
  const out: PageReference[] = [];
  const namespaces = (await ctrOk(address, "default", ["namespaces", "ls", "-q"])).split("\n").map((l) => l.trim()).filter((l) => l !== "");
  for (const namespace of namespaces) {
    const rows = (await ctrOk(address, namespace, ["images", "ls"]))
      .split("\n")
      .slice(1)
      .map((l) => l.trim().split(/\s+/))
      .filter((c) => c.length >= 3 && c[2]!.startsWith("sha256:"));
    for (const [image, , digest] of rows) {
      const text = await ctrOk(address, namespace, ["content", "get", digest!]);
      let index: { manifests?: { mediaType?: string; digest?: string }[] };
      try {
        index = JSON.parse(text) as typeof index;
      } catch {
        continue; // not JSON: not an index, so not a checkpoint image
      }
      for (const m of index.manifests ?? []) {
        if (m.mediaType !== CRIU_TAR || typeof m.digest !== "string") continue;
        const dir = await localPagesDir(address, namespace, m.digest);
        if (dir !== undefined) out.push({ address, namespace, image: image!, dir });
      }
    }
  }
  return out;
}

function realOr(path: string): string {
  try {
    return realpathSync(path);
  } catch {
    return path;
  }
}

/** What prune did (or, with dryRun, would do). */
export interface PruneResult {
  removed: string[];
  kept: { name: string; why: string }[];
}

/** A containerd address as a socket path: without `unix://`, resolved through links when it can be. */
function socketOf(address: string): string {
  return realOr(address.replace(/^unix:\/\//, ""));
}

/** The containerd an entry was made for (entry.json's `containerd`, written by the shim since the twenty-eighth session). */
function entryContainerd(dir: string): string | undefined {
  try {
    const v = (JSON.parse(readFileSync(join(dir, ENTRY_FILE), "utf8")) as { containerd?: unknown }).containerd;
    return typeof v === "string" && v !== "" ? v : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Removes the entries (and restore directories) of the store under root that no reference names and that are older
 * than minAgeMs. With `addresses` (the containerds the references were read from), an entry made for another
 * containerd (its entry.json names it) is kept: its images were not looked at, and removing it would lose the memory
 * of a checkpoint that containerd still has.
 */
export function prunePageStore(root: string, references: readonly PageReference[], minAgeMs: number, options: { dryRun?: boolean; now?: number; addresses?: readonly string[] } = {}): PruneResult {
  const looked = options.addresses?.map(socketOf);
  const result: PruneResult = { removed: [], kept: [] };
  let names: string[];
  try {
    names = readdirSync(root).sort();
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return result; // no store yet
    // Not an empty store: one this user may not read, or a file in its place, said so ("0 removed" before).
    throw fsError(`page store ${root}`, err, root);
  }
  const now = options.now ?? Date.now();
  for (const name of names) {
    const dir = join(root, name);
    const st = statSync(dir);
    if (!st.isDirectory()) continue;
    const ref = references.find((r) => r.dir === dir || realOr(r.dir) === realOr(dir));
    if (ref) {
      result.kept.push({ name, why: `referenced by ${ref.image} (namespace ${ref.namespace})` });
      continue;
    }
    if (now - st.mtimeMs < minAgeMs) {
      result.kept.push({ name, why: "younger than the age limit" });
      continue;
    }
    const madeFor = looked === undefined ? undefined : entryContainerd(dir);
    if (madeFor !== undefined && !looked!.includes(socketOf(madeFor))) {
      result.kept.push({ name, why: `made for the containerd at ${madeFor}, whose images this prune did not look at (name it with --address, or remove the entry with cryo pages rm)` });
      continue;
    }
    if (!options.dryRun) rmSync(dir, { recursive: true, force: true });
    result.removed.push(name);
  }
  return result;
}
