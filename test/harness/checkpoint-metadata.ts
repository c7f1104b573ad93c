import { BUILTIN_CHECKPOINT_PLAN, type CheckpointMetadata } from "../../src/checkpoint/index.ts";

/** A valid checkpoint metadata document (a zstd checkpoint of a one-process container "c1"), a fresh copy each call. */
export function sampleCheckpointMetadata(): CheckpointMetadata {
  return {
    version: 1,
    containerId: "c1",
    namespace: "default",
    imagesDir: "criu",
    pid: 4242,
    runcState: { id: "c1", init_process_pid: 4242, external_descriptors: ["/dev/null", "pipe:[1]", "pipe:[2]"] },
    spec: { ociVersion: "1.0.2", process: { args: ["sh"] } },
    stdio: { descriptors: ["/dev/null", "pipe:[1]", "pipe:[2]"], terminal: false },
    cgroups: { version: 1, paths: { memory: "/sys/fs/cgroup/memory/c1" }, cgroupsPath: "/c1" },
    host: { hostname: "h", kernel: "6.18.0", arch: "x64", criuVersion: 40201, cryoVersion: "0.1.0" },
    startedAt: "2026-01-01T00:00:00.000Z",
    finishedAt: "2026-01-01T00:00:01.000Z",
    options: BUILTIN_CHECKPOINT_PLAN,
    stats: { dump: { freezingTimeUs: 1, frozenTimeUs: 2, memdumpTimeUs: 3, memwriteTimeUs: 4, pagesScanned: 5, pagesSkippedParent: 0, pagesWritten: 5, pagesLazy: 0 } },
    compressed: { algorithm: "zstd", level: 3 },
    paused: false,
  };
}
