/**
 * Update through the cryo shim (ttrpc to the shim: ctr 1.6 has no `task update`): the engine loads the
 * resources parser on its first Update and the limits reach the container's cgroup, which
 * `ctr task metrics` (the metrics encoder, loaded on first use too) then reports; resources the parser
 * refuses are INVALID_ARGUMENT and change nothing.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { Code, CryoError } from "../../src/errors.ts";
import { Task as TaskV2 } from "../../src/gen/containerd/runtime/task/v2/shim_pb.ts";
import { connect } from "../../src/ttrpc/index.ts";
import { ensureTestImage, removeContainer, startPrivateContainerd, taskStatus, testImage, uniqueId, type PrivateContainerd } from "../harness/index.ts";

const RUNTIME = "io.containerd.cryo.v2";
let pc: PrivateContainerd;
let ns: string;

beforeAll(async () => {
  ns = uniqueId("shimupd");
  pc = await startPrivateContainerd({ namespace: ns });
  await ensureTestImage(pc);
}, 60_000);

afterAll(async () => {
  await pc?.stop();
}, 60_000);

/** The memory limit row of `ctr task metrics` (cgroup v1: memory.limit_in_bytes; v2: memory.limit). */
async function memoryLimit(id: string): Promise<string | undefined> {
  const out = await pc.ctrOk(["task", "metrics", id]);
  return out
    .split("\n")
    .map((l) => l.trim().split(/\s+/))
    .find((f) => f[0] === "memory.limit_in_bytes" || f[0] === "memory.limit")?.[1];
}

const resources = (r: unknown) => ({ typeUrl: "types.containerd.io/opencontainers/runtime-spec/1/LinuxResources", value: new TextEncoder().encode(JSON.stringify(r)) });

test("update sets the memory limit that metrics then report; resources the parser refuses change nothing", async () => {
  const id = uniqueId("upd");
  await pc.ctrOk(["run", "-d", "--runtime", RUNTIME, testImage, id, "sleep", "600"]);
  const address = readFileSync(join(pc.state, "io.containerd.runtime.v2.task", ns, id, "address"), "utf8").trim();
  const client = await connect(address.replace(/^unix:\/\//, ""));
  try {
    expect(await taskStatus(pc, id)).toBe("RUNNING");
    expect(await memoryLimit(id)).not.toBe(String(48 * 1024 * 1024));
    await client.call(TaskV2, "update", { id, resources: resources({ memory: { limit: 48 * 1024 * 1024 } }) }, { namespace: ns });
    expect(await memoryLimit(id)).toBe(String(48 * 1024 * 1024));
    const bad = await client.call(TaskV2, "update", { id, resources: resources({ memory: { limit: "lots" } }) }, { namespace: ns }).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(bad).toBeInstanceOf(CryoError);
    expect((bad as CryoError).code).toBe(Code.INVALID_ARGUMENT);
    expect(await memoryLimit(id)).toBe(String(48 * 1024 * 1024));
  } finally {
    client.close();
    await removeContainer(pc, id);
  }
}, 60_000);

test("an Update of 1.6 MB of device rules is INVALID_ARGUMENT before it is parsed; the limit stays, and the next Update applies", async () => {
  const id = uniqueId("updbig");
  await pc.ctrOk(["run", "-d", "--runtime", RUNTIME, testImage, id, "sleep", "600"]);
  const address = readFileSync(join(pc.state, "io.containerd.runtime.v2.task", ns, id, "address"), "utf8").trim();
  const client = await connect(address.replace(/^unix:\/\//, ""));
  try {
    await client.call(TaskV2, "update", { id, resources: resources({ memory: { limit: 40 * 1024 * 1024 } }) }, { namespace: ns });
    const rules = Array.from({ length: 27_000 }, (_, i) => ({ allow: true, type: "c", major: 195, minor: i % 256, access: "rwm" }));
    const huge = resources({ devices: rules, memory: { limit: 64 * 1024 * 1024 } });
    expect(huge.value.length).toBeGreaterThan(1_500_000);
    const err = await client.call(TaskV2, "update", { id, resources: huge }, { namespace: ns }).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(CryoError);
    expect((err as CryoError).code).toBe(Code.INVALID_ARGUMENT);
    expect((err as CryoError).message).toContain(`${huge.value.length} bytes; an Update's LinuxResources may be at most 262144`);
    expect(await memoryLimit(id)).toBe(String(40 * 1024 * 1024));
    await client.call(TaskV2, "update", { id, resources: resources({ memory: { limit: 44 * 1024 * 1024 } }) }, { namespace: ns });
    expect(await memoryLimit(id)).toBe(String(44 * 1024 * 1024));
  } finally {
    client.close();
    await removeContainer(pc, id);
  }
}, 60_000);
