/** Picking an image's manifest and config: index -> platform manifest -> config, validation and bounds. */
import { expect, test } from "bun:test";
import { createHash } from "node:crypto";
import { isCode, Code } from "../../../src/errors.ts";
import { resolveImageConfig, verifyDigest, type BlobDescriptor, type BlobReader } from "../../../src/containerd/image-info.ts";

const enc = new TextEncoder();
const blobs = new Map<string, Uint8Array>();
function blob(mediaType: string, doc: unknown, platform?: { os: string; architecture: string }): BlobDescriptor {
  const bytes = enc.encode(JSON.stringify(doc));
  const digest = `sha256:${createHash("sha256").update(bytes).digest("hex")}`;
  blobs.set(digest, bytes);
  return { mediaType, digest, size: bytes.length, ...(platform ? { platform } : {}) };
}
const read: BlobReader = async (d) => {
  const b = blobs.get(d.digest);
  if (!b) throw new Error(`no blob ${d.digest}`);
  return b;
};
const layer = { mediaType: "application/vnd.oci.image.layer.v1.tar+gzip", digest: `sha256:${"0".repeat(64)}`, size: 1 };
function manifestFor(arch: string, labels: Record<string, string> | null) {
  const config = blob("application/vnd.oci.image.config.v1+json", { architecture: arch, os: "linux", config: { Env: ["PATH=/bin"], Labels: labels }, rootfs: { type: "layers", diff_ids: [] } });
  return blob("application/vnd.oci.image.manifest.v1+json", { schemaVersion: 2, config, layers: [layer] }, { os: "linux", architecture: arch });
}
const amd64 = { os: "linux", architecture: "amd64" };

test("a manifest target: its digest, the config's labels and the whole config", async () => {
  const m = manifestFor("amd64", { "org.opencontainers.image.source": "https://example.com/x" });
  const { platform: _, ...target } = m;
  const r = await resolveImageConfig("localhost/x:1", target, read, amd64);
  expect(r.digest).toBe(m.digest);
  expect(r.labels).toEqual({ "org.opencontainers.image.source": "https://example.com/x" });
  expect(r.config.architecture).toBe("amd64");
  expect((r.config.config as { Env: string[] }).Env).toEqual(["PATH=/bin"]);
});

test("an index target: the platform's manifest is picked, the digest stays the index's", async () => {
  const arm = manifestFor("arm64", { arch: "arm64" });
  const x86 = manifestFor("amd64", { arch: "amd64" });
  const index = blob("application/vnd.oci.image.index.v1+json", { schemaVersion: 2, manifests: [arm, x86] });
  const r = await resolveImageConfig("docker.io/library/x:1", index, read, amd64);
  expect(r.digest).toBe(index.digest);
  expect(r.manifest.digest).toBe(x86.digest);
  expect(r.labels).toEqual({ arch: "amd64" });
  const a = await resolveImageConfig("docker.io/library/x:1", index, read, { os: "linux", architecture: "arm64" });
  expect(a.labels).toEqual({ arch: "arm64" });
});

test("null labels become {}; an index without the platform is FAILED_PRECONDITION", async () => {
  const m = manifestFor("amd64", null);
  expect((await resolveImageConfig("x", m, read, amd64)).labels).toEqual({});
  const index = blob("application/vnd.docker.distribution.manifest.list.v2+json", { schemaVersion: 2, manifests: [manifestFor("arm64", {})] });
  const err = await resolveImageConfig("x", index, read, amd64).catch((e) => e);
  expect(isCode(err, Code.FAILED_PRECONDITION)).toBe(true);
  expect(String(err.message)).toContain("no manifest for linux/amd64");
});

test("malformed documents are refused with what and where", async () => {
  const bad = blob("application/vnd.oci.image.manifest.v1+json", { schemaVersion: 2, config: { mediaType: "x", digest: "nope", size: 1 }, layers: [] });
  const err = await resolveImageConfig("x", bad, read, amd64).catch((e) => e);
  expect(isCode(err, Code.FAILED_PRECONDITION)).toBe(true);
  expect(String(err.message)).toContain(`manifest ${bad.digest}`);
  const weird = blob("application/vnd.example.other", {});
  expect(isCode(await resolveImageConfig("x", weird, read, amd64).catch((e) => e), Code.FAILED_PRECONDITION)).toBe(true);
});

test("verifyDigest accepts matching content and refuses other bytes", () => {
  const d = manifestFor("amd64", {});
  const bytes = blobs.get(d.digest) as Uint8Array;
  expect(() => verifyDigest(bytes, d.digest, "blob")).not.toThrow();
  expect(() => verifyDigest(enc.encode("other"), d.digest, "blob")).toThrow("descriptor says");
});
