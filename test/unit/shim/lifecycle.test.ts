/** Pieces of the shim's own lifecycle: the hand-written DeleteResponse, daemon linger, pending markers (the socket lock: socket-lock.test.ts), mountinfo counting. */
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { expect, test } from "bun:test";
import { mkdtempSync, rmSync, utimesSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { DeleteResponseSchema } from "../../../src/gen/containerd/runtime/task/v2/shim_pb.ts";
import { encodeDeleteResponse } from "../../../src/shim/cleanup.ts";
import { idleCheckTime, IDLE_CHECK_MS, lingerTime } from "../../../src/shim/daemon.ts";
import { ADDED_ENV, daemonEnv, dropAddedEnv } from "../../../src/shim/daemon-env.ts";
import { mountsAt } from "../../../src/shim/rootfs.ts";
import { clearAllPending, clearPending, freshPending, markPending, STALE_PENDING_MS } from "../../../src/shim/socket-lock.ts";
import { DEFAULT_LINGER_MS, lingerFor } from "../../../src/shim/start.ts";

test("encodeDeleteResponse matches protobuf-es's encoding and decodes back", () => {
  for (const [pid, status, when] of [
    [4242, 137, { seconds: 1_700_000_000n, nanos: 123_456_789 }],
    [0, 0, { seconds: 0n, nanos: 0 }],
    [1, 0, { seconds: 0n, nanos: 999 }],
  ] as const) {
    const bytes = encodeDeleteResponse(pid, status, when);
    const expected = toBinary(DeleteResponseSchema, create(DeleteResponseSchema, { pid, exitStatus: status, exitedAt: when }));
    expect(bytes).toEqual(expected);
    const back = fromBinary(DeleteResponseSchema, bytes);
    expect(back.pid).toBe(pid);
    expect(back.exitStatus).toBe(status);
    expect(back.exitedAt?.seconds ?? 0n).toBe(when.seconds);
    expect(back.exitedAt?.nanos ?? 0).toBe(when.nanos);
  }
});

test("linger: only shared groups keep their daemon, and the environment can change it", () => {
  expect(lingerFor("container/c1", {})).toBe(0);
  expect(lingerFor("namespace/default", {})).toBe(DEFAULT_LINGER_MS);
  expect(lingerFor("group/pod1", { CRYO_SHIM_LINGER_MS: "0" })).toBe(0);
  expect(lingerFor("group/pod1", { CRYO_SHIM_LINGER_MS: "250" })).toBe(250);
  expect(lingerFor("group/pod1", { CRYO_SHIM_LINGER_MS: "soon" })).toBe(DEFAULT_LINGER_MS);
  expect(idleCheckTime({})).toBe(IDLE_CHECK_MS);
  expect(idleCheckTime({ CRYO_SHIM_IDLE_CHECK_MS: "600000" })).toBe(600_000);
  expect(idleCheckTime({ CRYO_SHIM_IDLE_CHECK_MS: "5" })).toBe(IDLE_CHECK_MS);
  expect(idleCheckTime({ CRYO_SHIM_IDLE_CHECK_MS: "x" })).toBe(IDLE_CHECK_MS);
  expect(lingerTime({ CRYO_SHIM_LINGER_MS: "250" })).toBe(250);
  expect(lingerTime({})).toBe(0);
  expect(lingerTime({ CRYO_SHIM_LINGER_MS: "-5" })).toBe(0);
});

test("pending markers: fresh ones are listed, cleared ones and stale ones are not", async () => {
  const dir = mkdtempSync(join(tmpdir(), "cryo-shim-lock-"));
  try {
    const sock = join(dir, "s");
    markPending(sock, "a");
    markPending(sock, "b");
    markPending(sock, "old");
    const past = (Date.now() - STALE_PENDING_MS - 1000) / 1000;
    utimesSync(join(`${sock}.pending`, "old"), past, past);
    expect(freshPending(sock).sort()).toEqual(["a", "b"]);
    clearPending(sock, "a");
    expect(freshPending(sock)).toEqual(["b"]);
    clearAllPending(sock);
    expect(freshPending(sock)).toEqual([]);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("mountsAt counts the mounts stacked on a path, with mountinfo's escapes", () => {
  const info = [
    "36 35 0:30 / /run/b/rootfs rw - overlay overlay rw",
    "37 36 0:31 / /run/b/rootfs rw - overlay overlay rw",
    "38 35 0:32 / /run/b/rootfs/sub rw - tmpfs tmpfs rw",
    "39 35 0:33 / /run/with\\040space/rootfs rw - tmpfs tmpfs rw",
  ].join("\n");
  expect(mountsAt(info, "/run/b/rootfs")).toBe(2);
  expect(mountsAt(info, "/run/with space/rootfs")).toBe(1);
  expect(mountsAt(info, "/run/none")).toBe(0);
});

test("daemon environment: defaults added only where containerd set nothing, and dropped again by the daemon", () => {
  const env = daemonEnv({ PATH: "/bin", BUN_OPTIONS: "--inspect" }, { NAMESPACE: "ns" });
  expect(env.PATH).toBe("/bin");
  expect(env.NAMESPACE).toBe("ns");
  expect(env.BUN_OPTIONS).toBe("--inspect");
  expect(env.BUN_JSC_useDFGJIT).toBe("0");
  expect(env.BUN_JSC_useBaselineJIT).toBe("0");
  expect(env[ADDED_ENV]).toBe("BUN_JSC_useDFGJIT,BUN_JSC_useBaselineJIT");
  dropAddedEnv(env);
  expect(env.BUN_JSC_useDFGJIT).toBeUndefined();
  expect(env.BUN_JSC_useBaselineJIT).toBeUndefined();
  expect(env.BUN_OPTIONS).toBe("--inspect");
  expect(env[ADDED_ENV]).toBeUndefined();
});
