/**
 * What a policy may know about a container's image, read through containerd's API: the container's
 * image name (Containers.Get), the image's target descriptor (Images.Get), then the index (the
 * platform's manifest picked from it), the manifest and the config blob (Content.Read).
 */
import { z } from "zod";
import { Code, CryoError, deadlineExceeded, failedPrecondition, resourceExhausted } from "../errors.ts";
import { Containers } from "../gen/containerd/services/containers/v1/containers_pb.ts";
import { Content } from "../gen/containerd/services/content/v1/content_pb.ts";
import { Images } from "../gen/containerd/services/images/v1/images_pb.ts";
import { GrpcUnixClient } from "./grpc.ts";

/** The image a container runs, in the shape the plugins' hook input takes (plugins/hook-schemas.ts ImageInfo). */
export interface ContainerImageInfo {
  /** The image reference, e.g. docker.io/library/busybox:latest. */
  name: string;
  /** The digest of the image's target (its manifest, or its index for a multi-platform image). */
  digest: string;
  /** The image config's labels (config.Labels). */
  labels: Record<string, string>;
  /** The whole OCI image config document. */
  config: Record<string, unknown>;
}

/** Where and what to read. */
export interface ReadImageInfoOptions {
  /** containerd's gRPC socket. */
  address: string;
  namespace: string;
  containerId: string;
  /** The whole read fails with DEADLINE_EXCEEDED after this long. */
  timeoutMs: number;
  /** The platform whose manifest is picked from an index (default: linux and this machine's architecture). */
  platform?: Platform;
}

/** An OS/architecture pair as OCI descriptors name it. */
export interface Platform {
  os: string;
  architecture: string;
}

/** The largest index, manifest or config blob read (a larger one is refused with RESOURCE_EXHAUSTED). */
export const maxImageBlobBytes = 4 << 20;

const mediaTypes = {
  ociIndex: "application/vnd.oci.image.index.v1+json",
  dockerList: "application/vnd.docker.distribution.manifest.list.v2+json",
  ociManifest: "application/vnd.oci.image.manifest.v1+json",
  dockerManifest: "application/vnd.docker.distribution.manifest.v2+json",
} as const;

const digestSchema = z.string().regex(/^[a-z0-9]+(?:[+._-][a-z0-9]+)*:[a-zA-Z0-9=_-]+$/, "not a digest");
const descriptorSchema = z.looseObject({
  mediaType: z.string(),
  digest: digestSchema,
  size: z.number().int().nonnegative(),
  platform: z.looseObject({ os: z.string(), architecture: z.string(), variant: z.string().optional() }).optional(),
});
/** A content descriptor (media type, digest, size, optional platform). */
export type BlobDescriptor = z.infer<typeof descriptorSchema>;
const indexSchema = z.looseObject({ schemaVersion: z.literal(2), manifests: z.array(descriptorSchema) });
const manifestSchema = z.looseObject({ schemaVersion: z.literal(2), config: descriptorSchema, layers: z.array(descriptorSchema) });
const imageConfigSchema = z.looseObject({
  architecture: z.string().optional(),
  os: z.string().optional(),
  config: z.looseObject({ Labels: z.record(z.string(), z.string()).nullable().optional() }).nullable().optional(),
});

/** Reads one blob's bytes (bounded by the caller's limit). */
export type BlobReader = (descriptor: BlobDescriptor) => Promise<Uint8Array>;

/** The platform of this machine as OCI names it. */
export function hostPlatform(): Platform {
  const arch: Record<string, string> = { x64: "amd64", arm64: "arm64", arm: "arm", ia32: "386", ppc64: "ppc64le", s390x: "s390x", riscv64: "riscv64" };
  return { os: "linux", architecture: arch[process.arch] ?? process.arch };
}

function parseJson<S extends z.ZodType>(schema: S, bytes: Uint8Array, what: string): z.infer<S> {
  let raw: unknown;
  try {
    raw = JSON.parse(new TextDecoder().decode(bytes));
  } catch (err) {
    throw failedPrecondition(what, { detail: `not JSON: ${(err as Error).message}`, cause: err });
  }
  const r = schema.safeParse(raw);
  if (!r.success) {
    const issue = r.error.issues[0];
    throw failedPrecondition(what, { detail: `${issue?.path.join(".") ?? ""}: ${issue?.message ?? ""}` });
  }
  return r.data;
}

/**
 * From an image's target descriptor to its config: an index picks the platform's manifest (the first
 * one for that os/architecture), a manifest names the config. Returns the target's digest, labels and config.
 */
export async function resolveImageConfig(
  name: string,
  target: BlobDescriptor,
  read: BlobReader,
  platform: Platform,
): Promise<Omit<ContainerImageInfo, "name"> & { manifest: BlobDescriptor }> {
  let manifestDesc = target;
  if (target.mediaType === mediaTypes.ociIndex || target.mediaType === mediaTypes.dockerList) {
    const index = parseJson(indexSchema, await read(target), `image ${name}: index ${target.digest}`);
    const pick = index.manifests.find((m) => m.platform?.os === platform.os && m.platform.architecture === platform.architecture);
    if (pick === undefined) throw failedPrecondition(`image ${name}: index ${target.digest}`, { detail: `no manifest for ${platform.os}/${platform.architecture}` });
    manifestDesc = pick;
  }
  if (manifestDesc.mediaType !== mediaTypes.ociManifest && manifestDesc.mediaType !== mediaTypes.dockerManifest) {
    throw failedPrecondition(`image ${name}: ${manifestDesc.digest}`, { detail: `unsupported media type ${manifestDesc.mediaType}` });
  }
  const manifest = parseJson(manifestSchema, await read(manifestDesc), `image ${name}: manifest ${manifestDesc.digest}`);
  const config = parseJson(imageConfigSchema, await read(manifest.config), `image ${name}: config ${manifest.config.digest}`);
  return { digest: target.digest, labels: { ...(config.config?.Labels ?? {}) }, config, manifest: manifestDesc };
}

/** Checks bytes against a sha256/sha512 digest (other algorithms are not checked). */
export function verifyDigest(bytes: Uint8Array, digest: string, what: string): void {
  const colon = digest.indexOf(":");
  const algo = digest.slice(0, colon);
  if (algo !== "sha256" && algo !== "sha512") return;
  const actual = `${algo}:${new Bun.CryptoHasher(algo).update(bytes).digest("hex")}`;
  if (actual !== digest) throw failedPrecondition(what, { detail: `content digest is ${actual}, descriptor says ${digest}` });
}

/**
 * The image of container `containerId` as containerd knows it, or null when the container has none.
 * Errors are CryoErrors (NOT_FOUND for an unknown container or image, UNAVAILABLE when containerd
 * cannot be reached, DEADLINE_EXCEEDED past timeoutMs, RESOURCE_EXHAUSTED for a blob over 4 MiB).
 */
export async function readImageInfo(o: ReadImageInfoOptions): Promise<ContainerImageInfo | null> {
  const deadline = performance.now() + o.timeoutMs;
  const left = (what: string) => {
    const ms = deadline - performance.now();
    if (ms <= 0) throw deadlineExceeded(what, { detail: `image info not read within ${o.timeoutMs} ms` });
    return { timeoutMs: ms };
  };
  using client = new GrpcUnixClient(o.address, { namespace: o.namespace });
  const what = `container ${o.containerId}: image`;
  const got = await client.call(Containers.method.get, { id: o.containerId }, left(what));
  const name = got.container?.image ?? "";
  if (name === "") return null;
  const image = (await client.call(Images.method.get, { name }, left(what))).image;
  const t = image?.target;
  if (t === undefined) throw failedPrecondition(`image ${name}`, { detail: "containerd returned no target descriptor" });
  const target = descriptorSchema.safeParse({ mediaType: t.mediaType, digest: t.digest, size: Number(t.size) });
  if (!target.success) throw failedPrecondition(`image ${name}: target`, { detail: target.error.issues[0]?.message ?? "bad descriptor" });
  const read: BlobReader = async (d) => {
    const where = `image ${name}: blob ${d.digest}`;
    if (d.size > maxImageBlobBytes) throw resourceExhausted(where, { detail: `${d.size} bytes, more than ${maxImageBlobBytes}` });
    const out = new Uint8Array(d.size);
    let filled = 0;
    await client.stream(
      Content.method.read,
      { digest: d.digest, offset: 0n, size: BigInt(d.size) },
      (m) => {
        if (Number(m.offset) !== filled) throw new CryoError(Code.INTERNAL, `${where}: chunk at offset ${m.offset}, expected ${filled}`);
        if (filled + m.data.length > d.size) throw resourceExhausted(where, { detail: `more than the descriptor's ${d.size} bytes` });
        out.set(m.data, filled);
        filled += m.data.length;
      },
      left(where),
    );
    if (filled !== d.size) throw failedPrecondition(where, { detail: `read ${filled} bytes, descriptor says ${d.size}` });
    verifyDigest(out, d.digest, where);
    return out;
  };
  const r = await resolveImageConfig(name, target.data, read, o.platform ?? hostPlatform());
  return { name, digest: r.digest, labels: r.labels, config: r.config };
}
