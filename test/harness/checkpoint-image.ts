import { cpSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { PrivateContainerd } from "../../src/containerd/index.ts";

/** The media type containerd gives the CRIU tar of a checkpoint image. */
export const criuTarMediaType = "application/vnd.containerd.container.criu.checkpoint.criu.tar";

/** A checkpoint image's CRIU tar: its descriptor and the blob's path in the content store. */
export interface CriuTar {
  digest: string;
  size: number;
  path: string;
}

/** Finds the CRIU tar of checkpoint image ref (`ctr images ls`, then the index); throws when there is none. */
export async function checkpointCriuTar(pc: PrivateContainerd, ref: string): Promise<CriuTar> {
  const line = (await pc.ctrOk(["images", "ls"])).split("\n").find((l) => l.split(/\s+/)[0] === ref);
  const indexDigest = line?.split(/\s+/)[2];
  if (!indexDigest?.startsWith("sha256:")) throw new Error(`checkpoint image ${ref}: not listed by ctr images ls`);
  const index = JSON.parse(await pc.ctrOk(["content", "get", indexDigest])) as { manifests: { mediaType: string; digest: string; size: number }[] };
  const tar = index.manifests.find((m) => m.mediaType === criuTarMediaType);
  if (!tar) throw new Error(`checkpoint image ${ref}: its index has no ${criuTarMediaType}`);
  return { digest: tar.digest, size: tar.size, path: join(pc.root, "io.containerd.content.v1.content/blobs/sha256", tar.digest.slice("sha256:".length)) };
}

/** The entry names of a CRIU tar. */
export function criuTarEntries(tar: CriuTar): string[] {
  const list = Bun.spawnSync(["tar", "-tf", tar.path], { stdout: "pipe", stderr: "pipe" });
  if (list.exitCode !== 0) throw new Error(`tar -tf ${tar.path}: ${list.stderr.toString()}`);
  return list.stdout.toString().split("\n").filter((l) => l !== "");
}

/**
 * Whether the dump in checkpoint image ref caught a process with a file at path (or a name that starts with it) open:
 * CRIU's files.img names each regular file a process held by its path in the container.
 */
export async function checkpointHeldFile(pc: PrivateContainerd, ref: string, path: string): Promise<boolean> {
  const tar = await checkpointCriuTar(pc, ref);
  const files = Bun.spawnSync(["tar", "-xOf", tar.path, "files.img"], { stdout: "pipe", stderr: "pipe" });
  if (files.exitCode !== 0) throw new Error(`files.img in ${ref}: ${files.stderr.toString()}`);
  return files.stdout.includes(path);
}

/** cryo-checkpoint.json (cryo's metadata) out of a checkpoint image's CRIU tar. */
export async function checkpointMetadata<T>(pc: PrivateContainerd, ref: string): Promise<T> {
  const tar = await checkpointCriuTar(pc, ref);
  const meta = Bun.spawnSync(["tar", "-xOf", tar.path, "cryo-checkpoint.json"], { stdout: "pipe", stderr: "pipe" });
  if (meta.exitCode !== 0) throw new Error(`cryo-checkpoint.json in ${ref}: ${meta.stderr.toString()}`);
  return JSON.parse(meta.stdout.toString()) as T;
}

/** What a restore through the task API (Create with a checkpoint) needs, made by taskApiRestoreInputs. */
export interface TaskApiRestoreInputs {
  /** The checkpoint's CRIU images, extracted as containerd would (dir/images). */
  images: string;
  /** The new task's bundle (dir/bundle): the source's spec with its own cgroupsPath, and a copy of its rootfs. */
  bundle: string;
  /** The source container's bundle in the private containerd's state. */
  srcBundle: string;
  /** The source's spec as it was read (before cgroupsPath changed). */
  spec: Record<string, unknown> & { process?: { terminal?: boolean }; linux: { cgroupsPath: string } };
}

/**
 * Extracts checkpoint image ref's CRIU tar into dir/images and makes a bundle for a restored task in dir/bundle
 * from source container src of namespace ns: its spec with cgroupsPath set, and a copy of its rootfs. For
 * tests that restore through the shim's task API, which ctr cannot do (a terminal task, Create without Start).
 */
export async function taskApiRestoreInputs(pc: PrivateContainerd, ns: string, src: string, ref: string, dir: string, cgroupsPath: string): Promise<TaskApiRestoreInputs> {
  const tar = await checkpointCriuTar(pc, ref);
  const images = join(dir, "images");
  mkdirSync(images);
  const untar = Bun.spawnSync(["tar", "-xf", tar.path, "-C", images], { stderr: "pipe" });
  if (untar.exitCode !== 0) throw new Error(`tar -xf ${tar.path}: exit ${untar.exitCode}: ${untar.stderr.toString()}`);
  const srcBundle = join(pc.state, "io.containerd.runtime.v2.task", ns, src);
  const bundle = join(dir, "bundle");
  mkdirSync(bundle);
  const spec = JSON.parse(readFileSync(join(srcBundle, "config.json"), "utf8")) as TaskApiRestoreInputs["spec"];
  writeFileSync(join(bundle, "config.json"), JSON.stringify({ ...spec, linux: { ...spec.linux, cgroupsPath } }));
  cpSync(join(srcBundle, "rootfs"), join(bundle, "rootfs"), { recursive: true, verbatimSymlinks: true, preserveTimestamps: true });
  return { images, bundle, srcBundle, spec };
}
