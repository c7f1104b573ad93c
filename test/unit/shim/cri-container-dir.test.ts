import { afterAll, expect, test } from "bun:test";
import { lstatSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { copyInto, criCheckpointFilesDir, criContainerDir } from "../../../src/shim/cri-container-dir.ts";

const root = mkdtempSync(join(tmpdir(), "cryo-cri-dir-"));
afterAll(() => rmSync(root, { recursive: true, force: true }));
const cri = join(root, "io.containerd.grpc.v1.cri");
mkdirSync(join(cri, "containers", "c1"), { recursive: true });
mkdirSync(join(cri, "sandboxes", "pod1"), { recursive: true });
mkdirSync(join(root, "elsewhere"), { recursive: true });
symlinkSync(join(root, "elsewhere"), join(cri, "containers", "linked"));

const container = { "io.kubernetes.cri.container-type": "container" };
const mountsFrom = (...files: string[]) => files.map((f) => ({ destination: `/etc/${f}`, type: "bind", source: join(cri, "sandboxes", "pod1", f) }));

test("a CRI container's directory comes from a sandbox file CRI mounts into it", () => {
  for (const f of ["hostname", "hosts", "resolv.conf", "shm"]) {
    expect(criContainerDir({ annotations: container, mounts: [{ source: "/proc" }, ...mountsFrom(f)] }, "c1")).toBe(join(cri, "containers", "c1"));
  }
});

test("no directory: not a CRI container, the pod's sandbox itself, no sandbox mount, no such directory, a symlink, a bad id", () => {
  expect(criContainerDir({ mounts: mountsFrom("hosts") }, "c1")).toBeUndefined();
  expect(criContainerDir({ annotations: { "io.kubernetes.cri.container-type": "sandbox" }, mounts: mountsFrom("hosts") }, "c1")).toBeUndefined();
  expect(criContainerDir({ annotations: container, mounts: [{ source: join(cri, "sandboxes", "pod1", "other") }, { source: 7 }] }, "c1")).toBeUndefined();
  expect(criContainerDir({ annotations: container, mounts: mountsFrom("hosts") }, "c2")).toBeUndefined();
  expect(criContainerDir({ annotations: container, mounts: mountsFrom("hosts") }, "linked")).toBeUndefined();
  expect(criContainerDir({ annotations: container, mounts: mountsFrom("hosts") }, "../containers/c1")).toBeUndefined();
  expect(criContainerDir({ annotations: container }, "c1")).toBeUndefined();
});

test("CRIU's files for CRI go into containerd 2.3.2+'s ctrd-checkpoint directory when it is there, else the container's", () => {
  const dir = join(root, "files-c");
  mkdirSync(dir);
  expect(criCheckpointFilesDir(dir)).toBe(dir);
  symlinkSync(join(root, "elsewhere"), join(dir, "ctrd-checkpoint"));
  expect(criCheckpointFilesDir(dir)).toBe(dir);
  rmSync(join(dir, "ctrd-checkpoint"));
  mkdirSync(join(dir, "ctrd-checkpoint"));
  expect(criCheckpointFilesDir(dir)).toBe(join(dir, "ctrd-checkpoint"));
});

test("copyInto replaces a file, and a link planted in its place, without writing through the link", () => {
  const dir = join(root, "copy-into");
  mkdirSync(dir);
  const src = join(root, "stats-src");
  writeFileSync(src, "stats");
  const victim = join(root, "victim");
  writeFileSync(victim, "keep");
  symlinkSync(victim, join(dir, "stats-dump"));
  copyInto(src, dir, "stats-dump");
  expect(readFileSync(victim, "utf8")).toBe("keep");
  expect(lstatSync(join(dir, "stats-dump")).isFile()).toBe(true);
  expect(readFileSync(join(dir, "stats-dump"), "utf8")).toBe("stats");
  copyInto(src, dir, "stats-dump");
  expect(readFileSync(join(dir, "stats-dump"), "utf8")).toBe("stats");
});
