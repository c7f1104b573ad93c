/**
 * Moving a running container between two containerds with ctr, the way an operator would by hand:
 *   1. source: `ctr containers checkpoint --task [--rw] ID REF` (the container keeps running);
 *   2. source: `ctr images export --skip-manifest-json --all-platforms` of REF to a temp archive;
 *      the container's image too when the target does not have it;
 *   3. target: `ctr images import --no-unpack --all-platforms` of the checkpoint (the base image is
 *      imported and unpacked normally);
 *   4. target: `ctr containers restore --live [--rw] NEWID REF`, then wait for the task to be RUNNING;
 *   5. unless keep: source task killed (SIGKILL) and deleted, source container removed.
 * A post-copy checkpoint (cryo's lazy pages with a page server, docs/checkpoint-restore.md) moves the
 * container's memory after step 4: the source, frozen by CRIU since step 1, serves its pages to the target's
 * lazy-pages daemon, and CRIU ends it once they are all sent. So at step 5 migrate waits for the source task to
 * stop rather than killing it, and it cannot keep the source. If the restore fails, migrate ends the source's
 * page server with the tree alive (an unknown page-server command: CRIU's error path), so the source runs on.
 * REF is removed from both content stores at the end, success or not (containerd 1.6 cannot checkpoint
 * the same spec again while an older checkpoint image holds its blob: one of the container, or the one a restored
 * container came from; such images are named when it happens). If a step before 5 fails, what the
 * target got is removed and the source container is left running, untouched.
 */
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { basename, join, resolve } from "node:path";
import { alreadyExists, cancelled, CryoError, failedPrecondition, invalidArgument } from "../errors.ts";
import { readCheckpointMetadata } from "../checkpoint/index.ts";
import { CONTAINERD_EXTRACTION_NAME } from "../containerd/layout.ts";
import { assertValidContainerId } from "../runtime/index.ts";
import { TaskCreateWatch } from "./task-create-watch.ts";
import { checkSocketListens, checkSocketPath } from "./named-path.ts";
import { archiveFlags, containerNotFound, createCtrClient, ctrMajorVersion, ociIndexSchema, parseImageList, type CtrClient } from "./ctr-client.ts";
import { defaultRuncRoot, selectContainers } from "./list-containers.ts";

/** The media type of the CRIU image tar in a containerd checkpoint index. */
export const criuTarMediaType = "application/vnd.containerd.container.criu.checkpoint.criu.tar";

/** What to migrate where. */
export interface MigrateOptions {
  /** The container at the source. */
  id: string;
  /** Source containerd address (gRPC socket). */
  from: string;
  /** Target containerd address. */
  to: string;
  /** containerd namespace at both ends (default "default"). */
  namespace?: string;
  /** The container's id at the target (default: the same id). */
  newId?: string;
  /** Carry the container's rw layer (files it wrote) along. */
  rw?: boolean;
  /** Leave the source container running (a copy rather than a move). */
  keep?: boolean;
  /** Deadline of each ctr call (default 300 s). */
  timeoutMs?: number;
  /** The runc state base to check for an id clash on this machine (default /run/containerd/runc). */
  runcBase?: string;
  /**
   * Aborted (cryo migrate: on SIGINT or SIGTERM) to stop before the next step: the ctr call under way ends, then
   * what the target got and the checkpoint image are removed, and the container keeps running at the source. Once
   * the restored task runs, the move is finished instead.
   */
  signal?: AbortSignal;
}

/** What migrate did. */
export interface MigrateResult {
  id: string;
  newId: string;
  /** The checkpoint image's name (removed from both stores afterwards). */
  checkpointRef: string;
  /** The task's pid at the target. */
  pid: number;
  /** The container's image, and whether migrate copied it to the target. */
  image: string;
  imageCopied: boolean;
  /** True when the source container was removed. */
  sourceRemoved: boolean;
}

/** Where a post-copy checkpoint's source serves its pages. */
export interface PostCopyServer {
  address: string;
  port: number;
}

/**
 * The post-copy page server recorded in a checkpoint, read from the exported archive (the CRIU tar blob's
 * cryo-checkpoint.json); undefined for any other checkpoint (also runc's, which has no metadata).
 */
export async function postCopyServerOf(archive: string, criuTarDigest: string): Promise<PostCopyServer | undefined> {
  const hex = /^sha256:([0-9a-f]{64})$/.exec(criuTarDigest)?.[1];
  if (hex === undefined) throw invalidArgument(`checkpoint blob ${criuTarDigest}`, { detail: "not a sha256 digest" });
  const blob = Bun.spawn(["tar", "-xOf", archive, `blobs/sha256/${hex}`], { stdout: "pipe", stderr: "ignore" });
  const meta = Bun.spawn(["tar", "-xOf", "-", "cryo-checkpoint.json"], { stdin: blob.stdout, stdout: "pipe", stderr: "ignore" });
  const [text, code] = await Promise.all([new Response(meta.stdout).text(), meta.exited, blob.exited]);
  if (code !== 0 || text === "") return undefined;
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    return undefined;
  }
  const o = (parsed as { options?: { lazyPages?: unknown; pageServer?: { address?: unknown; port?: unknown } } }).options;
  const ps = o?.pageServer;
  if (o?.lazyPages !== true || typeof ps?.address !== "string" || typeof ps.port !== "number") return undefined;
  return { address: ps.address, port: ps.port };
}

/**
 * Ends a post-copy source's page server with the tree alive: CRIU answers an unknown command by failing
 * the transfer ("Unknown command", "Lazy pages transfer FAILED") and lets the tree go, running; cryo's shim
 * then removes CRIU's network lock (src/shim/post-copy.ts). A connection closed without a command would
 * instead count as a finished transfer, and CRIU would kill the source.
 */
export async function releasePostCopySource(server: PostCopyServer, timeoutMs = 10_000): Promise<void> {
  // struct page_server_iov { u32 cmd; u64 nr_pages; u64 vaddr; u64 dst_id; } (criu/page-xfer.c): 32 bytes with the
  // padding after cmd, little-endian here. cmd 0xffff is no command of CRIU's.
  const iov = new Uint8Array(32);
  new DataView(iov.buffer).setUint32(0, 0xffff, true);
  await new Promise<void>((resolvePromise, reject) => {
    const timer = setTimeout(() => reject(failedPrecondition(`page server ${server.address}:${server.port}`, { detail: `did not close within ${timeoutMs} ms` })), timeoutMs);
    Bun.connect({
      hostname: server.address,
      port: server.port,
      socket: {
        open(sock) {
          sock.write(iov);
        },
        data() {},
        close() {
          clearTimeout(timer);
          resolvePromise();
        },
        error(_sock, err) {
          clearTimeout(timer);
          reject(err);
        },
        connectError(_sock, err) {
          clearTimeout(timer);
          reject(err);
        },
      },
    }).catch((err: unknown) => {
      clearTimeout(timer);
      reject(err);
    });
  });
}

/** Progress lines; the CLI prints them. */
export type MigrateLog = (line: string) => void;

/** A container id as an image name path component (lowercase letters and digits joined by single dashes). */
export function refComponent(id: string): string {
  const c = id.toLowerCase().replace(/[^a-z0-9]+/g, "-").replace(/^-+|-+$/g, "");
  return c === "" ? "container" : c;
}

function sameAddress(a: string, b: string): boolean {
  const norm = (s: string) => resolve(s.replace(/^unix:\/\//, ""));
  return norm(a) === norm(b);
}

async function removeImage(ctr: CtrClient, ref: string): Promise<void> {
  if ((await ctr.image(ref)) !== undefined) await ctr.run(["images", "rm", "--sync", ref], `remove checkpoint image ${ref}`);
}

/**
 * Kills (SIGKILL) and deletes a task if there is one, then removes the container. A task whose restore
 * failed is CREATED with pid 0 and has no runc container: it is deleted without a kill.
 */
async function removeContainer(ctr: CtrClient, id: string, timeoutMs: number): Promise<void> {
  const task = await ctr.task(id);
  if (task !== undefined) {
    if (task.status !== "STOPPED" && !(task.status === "CREATED" && task.pid === 0)) {
      if (task.status === "PAUSED") await ctr.run(["tasks", "resume", id], `resume task ${id}`);
      await ctr.run(["tasks", "kill", "-s", "SIGKILL", id], `kill task ${id}`);
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const now = await ctr.task(id);
        // Gone counts as stopped: the ctr that ran the task attached (ctr run without -d) deletes it at its exit.
        if (now === undefined || now.status === "STOPPED") break;
        if (Date.now() > deadline) throw failedPrecondition(`task ${id} at ${ctr.address}`, { detail: `not stopped ${timeoutMs} ms after SIGKILL` });
        await Bun.sleep(50);
      }
    }
    // The same: an attached ctr may have deleted it between the look and this.
    await ctr.run(["tasks", "rm", id], `delete task ${id}`).catch(async (err: unknown) => {
      if ((await ctr.task(id)) !== undefined) throw err;
    });
  }
  if ((await ctr.containerInfo(id)) !== undefined) await ctr.run(["containers", "rm", id], `remove container ${id}`);
}

/**
 * Removes the directory containerd 1.6 extracted a checkpoint into for a restore (it never does), unless a
 * cryo lazy restore still serves pages from it. Only `ctrd-checkpoint*` directories are touched.
 */
async function removeExtractedCheckpoint(path: string | undefined, restored: boolean, log: MigrateLog): Promise<void> {
  if (path === undefined || !CONTAINERD_EXTRACTION_NAME.test(basename(path)) || !existsSync(path)) return;
  if (restored) {
    const lazy = await readCheckpointMetadata(path).then(
      (m) => m.options.lazyPages,
      () => false,
    );
    if (lazy) {
      log(`${path}: kept (a lazy restore reads pages from it; cryo's shim removes it once the container has all its memory)`);
      return;
    }
  }
  rmSync(path, { recursive: true, force: true });
}

/** Moves (or with keep, copies) a running container from one containerd to another through ctr. */
export async function migrateContainer(options: MigrateOptions, log: MigrateLog = () => {}): Promise<MigrateResult> {
  const { id, from, to } = options;
  const namespace = options.namespace ?? "default";
  const newId = options.newId ?? id;
  const timeoutMs = options.timeoutMs ?? 300_000;
  assertValidContainerId(id);
  assertValidContainerId(newId);
  if (sameAddress(from, to)) throw invalidArgument(`--to ${to}`, { detail: "is the source containerd; give another containerd's address" });
  // A socket path that does not exist fails at once (ctr would wait its whole dial timeout, 10 s, to say so).
  // Every address is a unix socket's path, relative ones too: ctr dials any --address as one (`tcp://h:p`
  // included), so a relative path is checked as an absolute one is (it was passed to ctr unchecked).
  for (const [flag, address] of [["--from", from], ["--to", to]] as const) {
    checkSocketPath(`containerd at ${address} (${flag})`, address.replace(/^unix:\/\//, ""), "nothing was done");
  }
  for (const [flag, address] of [["--from", from], ["--to", to]] as const) {
    await checkSocketListens(`containerd at ${address} (${flag})`, address.replace(/^unix:\/\//, ""), "nothing was done");
  }
  const src = createCtrClient(from, namespace, timeoutMs);
  const dst = createCtrClient(to, namespace, timeoutMs);

  // Preconditions, before anything changes anywhere.
  const info = await src.containerInfo(id);
  if (info === undefined) throw containerNotFound(id, from, namespace);
  const task = await src.task(id);
  if (task?.status !== "RUNNING") throw failedPrecondition(`container ${id} at ${from}`, { detail: `task is ${task?.status ?? "absent"}; only a running task migrates` });
  if ((await dst.containerInfo(newId)) !== undefined) throw alreadyExists(`container ${newId} in namespace ${namespace} at ${to}`);
  // Containerds on one machine share runc's state root: an id with runc state there already would clash with
  // the restore (and a clean-up of a failed restore at the target could reach that other container).
  const base = options.runcBase ?? defaultRuncRoot;
  const unreadable: string[] = []; // a state.json that cannot be read still holds the id at runc
  const listed = selectContainers({ kind: "namespace", base, namespace }, (dir) => unreadable.push(basename(dir)));
  if (listed.some((r) => r.id === newId) || unreadable.includes(newId)) {
    throw failedPrecondition(`container ${newId}`, {
      detail:
        newId === id
          ? `its runc state is under ${base} on this machine, which the target's shim shares; give the target's copy another id with --new-id`
          : `a container of that id already has runc state under ${base} on this machine; choose another --new-id`,
    });
  }
  const annotations = (info as { Spec?: { annotations?: Record<string, string> } }).Spec?.annotations ?? {};
  if (options.keep === true && annotations["cryo.checkpoint/lazy-pages"] === "true" && (annotations["cryo.checkpoint/page-server"] ?? "") !== "") {
    throw failedPrecondition(`--keep with container ${id}`, { detail: "its checkpoints are post-copy (cryo.checkpoint/lazy-pages with a page-server): the source ends once its pages are sent" });
  }
  const image = info.Image;
  const srcImage = image === "" ? undefined : await src.image(image);
  if (image !== "" && srcImage === undefined) throw failedPrecondition(`image ${image} at ${from}`, { detail: "not found; containerd needs it to restore the container" });
  const dstImage = image === "" ? undefined : await dst.image(image);
  if (dstImage !== undefined && srcImage !== undefined && dstImage.digest !== srcImage.digest) {
    throw failedPrecondition(`image ${image}`, { detail: `differs between source (${srcImage.digest}) and target (${dstImage.digest})` });
  }

  const ref = `localhost/cryo-migrate/${refComponent(id)}:${Date.now().toString(36)}-${crypto.randomUUID().slice(0, 8)}`;
  const stopIfAborted = (when: string): void => {
    if (options.signal?.aborted) {
      throw cancelled(`migrate of ${id}`, { detail: `interrupted (${String(options.signal.reason)}) ${when}; ${id} keeps running at ${from}` });
    }
  };
  const work = mkdtempSync(join(tmpdir(), "cryo-migrate-"));
  let restored = false;
  let imageCopied = false;
  let postCopy: PostCopyServer | undefined;
  try {
    stopIfAborted("before the checkpoint");
    log(`checkpoint ${id} at ${from} as ${ref}${options.rw ? " (with its rw layer)" : ""}`);
    try {
      await src.run(["containers", "checkpoint", "--task", ...(options.rw ? ["--rw"] : []), id, ref], `checkpoint container ${id}`);
    } catch (err) {
      // ctr pauses the task before the checkpoint and resumes it afterwards, with the same deadline: a checkpoint that
      // ran out of it (the shim gave up) leaves the task paused. It was running: it runs on. Unless ctr's own pause is
      // what failed: then another (a checkpoint, a pause) holds the task paused, and it is not this one's to resume.
      const pauseFailed = /cannot pause|failed to pause|pause task/i.test(CryoError.from(err).message);
      if (pauseFailed) throw CryoError.from(err).wrap(`${id} could not be paused for the checkpoint: another checkpoint or a pause of it is under way at ${from}; left as it is`);
      if ((await src.task(id).catch(() => undefined))?.status === "PAUSED") {
        log(`checkpoint failed; ${id} was left paused at ${from}: resuming it`);
        await src.run(["tasks", "resume", id], `resume task ${id}`).catch((e: unknown) => log(`resume ${id} at ${from}: ${CryoError.from(e).message}`));
      }
      throw err;
    }
    const indexDigest = (await src.image(ref))?.digest;
    if (indexDigest === undefined) throw failedPrecondition(`checkpoint image ${ref} at ${from}`, { detail: "not listed after ctr containers checkpoint" });
    const index = ociIndexSchema.safeParse(await src.contentJson(indexDigest));
    if (!index.success) throw invalidArgument(`checkpoint index ${indexDigest}`, { detail: index.error.message });
    const criuTar = index.data.manifests.find((m) => m.mediaType === criuTarMediaType);
    if (criuTar === undefined) {
      const holders = await checkpointImagesWithSpec(src, (info as { Spec?: unknown }).Spec, ref).catch(() => []);
      throw failedPrecondition(`checkpoint ${ref} of ${id}`, {
        detail:
          "containerd wrote it without the task's CRIU images (containerd 1.6 does so while another checkpoint image holds the same container spec: " +
          "an earlier checkpoint of this container, or the checkpoint it was restored from, whose spec ctr containers restore keeps" +
          (holders.length > 0 ? `; here ${holders.join(", ")}` : "") +
          `; remove ${holders.length === 1 ? "it" : "those"} with ctr -n ${namespace} images rm --sync)`,
      });
    }

    const archive = join(work, "checkpoint.tar");
    const local = archiveFlags(await ctrMajorVersion());
    stopIfAborted(`after the checkpoint of ${id}`);
    log(`export ${ref} from ${from}`);
    try {
      await src.run(["images", "export", ...local, "--skip-manifest-json", "--all-platforms", archive, ref], `export checkpoint ${ref}`);
      postCopy = await postCopyServerOf(archive, criuTar.digest);
    } catch (err) {
      // A post-copy source is frozen until its pages are fetched: it cannot be told apart yet, so try to release it.
      postCopy = await postCopyServerOf(archive, criuTar.digest).catch(() => undefined);
      throw err;
    }
    if (postCopy) {
      log(`post-copy checkpoint: ${id} stays frozen at ${from}, serving its pages on ${postCopy.address}:${postCopy.port}, until ${newId} has them all`);
      if (options.keep === true) throw failedPrecondition(`--keep with the post-copy checkpoint of ${id}`, { detail: "its source ends once its pages are sent; it cannot be kept" });
    }
    if (image !== "" && dstImage === undefined) {
      const imageArchive = join(work, "image.tar");
      stopIfAborted(`before copying image ${image}`);
      log(`copy image ${image} to ${to}`);
      await src.run(["images", "export", ...local, imageArchive, image], `export image ${image}`);
      await dst.run(["images", "import", ...local, imageArchive], `import image ${image}`);
      imageCopied = true;
    }
    // Watch the target's events from before the import: the restored task's /tasks/create names the
    // directory containerd extracts the checkpoint into.
    let watch = TaskCreateWatch.start(to, namespace, newId);
    try {
      stopIfAborted(`before the import at ${to}`);
      log(`import ${ref} into ${to}`);
      await dst.run(["images", "import", ...local, "--no-unpack", "--all-platforms", archive], `import checkpoint ${ref}`);
      if ((await dst.image(ref)) === undefined) throw failedPrecondition(`checkpoint image ${ref} at ${to}`, { detail: "not listed after import" });

      // A failed restore leaves nothing at the target (removed below) and the checkpoint image whole, so one
      // that CRIU failed ("criu failed: type ..." from runc's shim, "criu restore ..." from cryo's) is tried
      // once more: CRIU fails a restore when the host's mount table changes while it reads it (a busy host).
      // cryo's shim retries that case itself; runc's shim names no cause, so any CRIU failure is retried.
      for (let attempt = 1; !restored; attempt++) {
        stopIfAborted(`before the restore at ${to}`);
        log(`restore ${newId} at ${to}${attempt > 1 ? " (second attempt)" : ""}`);
        try {
          await dst.run(["containers", "restore", "--live", ...(options.rw ? ["--rw"] : []), newId, ref], `restore container ${newId}`);
          const running = await dst.task(newId);
          if (running?.status !== "RUNNING") throw failedPrecondition(`task ${newId} at ${to}`, { detail: `${running?.status ?? "absent"} after restore, not RUNNING` });
          restored = true;
        } catch (err) {
          const retry = attempt === 1 && /\bcriu (failed|restore)\b/i.test(CryoError.from(err).message);
          if (retry) log(`restore failed (${CryoError.from(err).message}); removing ${newId} at ${to} and trying once more`);
          else log(`restore failed; removing ${newId} at ${to}, ${id} keeps running at ${from}`);
          await removeContainer(dst, newId, timeoutMs).catch((e: unknown) => log(`clean-up of ${newId} at ${to}: ${CryoError.from(e).message}`));
          await removeExtractedCheckpoint(await watch.checkpointPath(5_000), false, log);
          if (!retry) throw withMigrateHint(err, options.rw === true);
          await watch[Symbol.asyncDispose]();
          watch = TaskCreateWatch.start(to, namespace, newId);
          await watch.ready();
          continue;
        }
        await removeExtractedCheckpoint(await watch.checkpointPath(5_000), true, log);
      }
    } finally {
      await watch[Symbol.asyncDispose]();
    }
    const pid = (await dst.task(newId))!.pid;

    let sourceRemoved = false;
    if (postCopy) {
      // CRIU ends the source once the target's lazy-pages daemon has every page.
      log(`wait for ${id} at ${from} to end (every page sent to ${newId})`);
      const deadline = Date.now() + timeoutMs;
      for (let st = (await src.task(id))?.status; st === "RUNNING" || st === "PAUSED"; st = (await src.task(id))?.status) {
        if (Date.now() > deadline) throw failedPrecondition(`post-copy source ${id} at ${from}`, { detail: `still running ${timeoutMs} ms after the restore; ${newId} at ${to} may not have all its memory` });
        await Bun.sleep(50);
      }
    }
    if (options.keep !== true) {
      log(`remove ${id} at ${from}`);
      await removeContainer(src, id, timeoutMs);
      sourceRemoved = true;
    }
    return { id, newId, checkpointRef: ref, pid, image, imageCopied, sourceRemoved };
  } finally {
    rmSync(work, { recursive: true, force: true });
    for (const ctr of [src, dst]) {
      await removeImage(ctr, ref).catch((e: unknown) => log(`remove ${ref} at ${ctr.address}: ${CryoError.from(e).message}`));
    }
    if (!restored && imageCopied) {
      await dst.run(["images", "rm", image], `remove image ${image}`).catch((e: unknown) => log(`remove ${image} at ${to}: ${CryoError.from(e).message}`));
    }
    if (!restored && postCopy) {
      log(`release ${id}'s page server at ${postCopy.address}:${postCopy.port}: ${id} runs on at ${from}`);
      await releasePostCopySource(postCopy).catch((e: unknown) => log(`release of ${id}'s page server: ${CryoError.from(e).message} (its shim lets it go at its post-copy timeout)`));
    }
    if (!restored) log(`${id} is still running at ${from}`);
  }
}

/** The media type of the container spec in a containerd checkpoint index (a protobuf Any holding the spec's JSON). */
const checkpointConfigMediaType = "application/vnd.containerd.container.checkpoint.config.v1+proto";

/**
 * The checkpoint images of client's namespace (but `except`) whose container spec is `spec` (as `ctr containers info`
 * gives it). While one holds that spec's blob, containerd 1.6 writes a new checkpoint of a container with the same spec
 * without its CRIU images: the earlier checkpoints of that container, and the one a restored container came from
 * (`ctr containers restore` keeps the checkpoint's spec, whatever the new id). Images that cannot be read are passed over.
 */
export async function checkpointImagesWithSpec(client: CtrClient, spec: unknown, except: string): Promise<string[]> {
  if (spec === undefined || spec === null) return [];
  const rows = parseImageList(await client.run(["images", "ls"], "list images"));
  const out: string[] = [];
  for (const row of rows) {
    if (row.ref === except || !row.mediaType.includes("index")) continue;
    try {
      const index = ociIndexSchema.safeParse(await client.contentJson(row.digest));
      const config = index.success ? index.data.manifests.find((m) => m.mediaType === checkpointConfigMediaType) : undefined;
      if (config === undefined) continue;
      // An Any: its type URL, then the spec's JSON as its value (the bytes before it are protobuf's tags and lengths).
      const blob = await client.run(["content", "get", config.digest], `read content ${config.digest}`);
      const start = blob.indexOf("{");
      if (start >= 0 && Bun.deepEquals(JSON.parse(blob.slice(start)), spec)) out.push(row.ref);
    } catch {
      // not readable as a checkpoint: not one that holds this spec, as far as can be told
    }
  }
  return out;
}

/**
 * The shim's hint for a file the checkpoint does not carry names ctr's flags (`ctr containers checkpoint --rw, then
 * ctr containers restore --rw`): told to a `cryo migrate` user, it also names this command's own flag.
 */
export function withMigrateHint(err: unknown, rw: boolean): unknown {
  const e = CryoError.from(err);
  if (rw || !e.message.includes("ctr containers restore --rw")) return err;
  return new CryoError(e.code, `${e.message} (with cryo migrate: --rw)`, { cause: err });
}
