// Pins task events, the ttrpc events service, cgroup metrics and cryo's own options to their
// field numbers (containerd api/events/task.proto and api/services/ttrpc/events/v1/events.proto at
// v1.6.20; containerd/cgroups metrics.proto v1.0.4 and v3.1). Expected bytes come from wire-writer.ts.
import { describe, expect, test } from "bun:test";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import * as ev from "../../../src/gen/containerd/events/task_pb.ts";
import { EnvelopeSchema, Events, ForwardRequestSchema } from "../../../src/gen/containerd/services/events/ttrpc/v1/events_pb.ts";
import * as cg1 from "../../../src/gen/containerd/cgroups/v1/metrics_pb.ts";
import * as cg2 from "../../../src/gen/containerd/cgroups/v2/metrics_pb.ts";
import * as cryo from "../../../src/gen/cryo/v1/options_pb.ts";
import { OptionsSchema as CriOptionsSchema } from "../../../src/gen/containerd/runtimeoptions/v1/api_pb.ts";
import { bytes, cat, f64, hex, str, vint } from "./wire-writer.ts";

describe("containerd.events task events", () => {
  test("TaskExit fields 1-5", () => {
    const msg = create(ev.TaskExitSchema, {
      containerId: "c1",
      id: "c1",
      pid: 99,
      exitStatus: 137,
      exitedAt: { seconds: 10n, nanos: 20 },
    });
    const expected = cat(str(1, "c1"), str(2, "c1"), vint(3, 99), vint(4, 137), bytes(5, [...vint(1, 10), ...vint(2, 20)]));
    expect(hex(toBinary(ev.TaskExitSchema, msg))).toBe(hex(expected));
    // Literal: 0a 02 "c1" 12 02 "c1" 18 63 20 89 01 2a 04 08 0a 10 14.
    expect(hex(expected)).toBe("0a026331120263311863208901" + "2a04080a1014");
  });

  test("TaskCreate nests Mount in 3 and TaskIO in 4", () => {
    const msg = create(ev.TaskCreateSchema, {
      containerId: "c",
      bundle: "/b",
      rootfs: [{ type: "bind", source: "/s", target: "/t", options: ["rbind"] }],
      io: { stdin: "i", stdout: "o", stderr: "e", terminal: true },
      checkpoint: "/cp",
      pid: 5,
    });
    const expected = cat(
      str(1, "c"),
      str(2, "/b"),
      bytes(3, [...str(1, "bind"), ...str(2, "/s"), ...str(3, "/t"), ...str(4, "rbind")]),
      bytes(4, [...str(1, "i"), ...str(2, "o"), ...str(3, "e"), ...vint(4, true)]),
      str(5, "/cp"),
      vint(6, 5),
    );
    expect(hex(toBinary(ev.TaskCreateSchema, msg))).toBe(hex(expected));
  });

  test("the other task events", () => {
    const cases: [Uint8Array, Uint8Array][] = [
      [toBinary(ev.TaskStartSchema, create(ev.TaskStartSchema, { containerId: "c", pid: 3 })), cat(str(1, "c"), vint(2, 3))],
      [
        toBinary(ev.TaskDeleteSchema, create(ev.TaskDeleteSchema, { containerId: "c", pid: 3, exitStatus: 1, exitedAt: { seconds: 1n }, id: "x" })),
        cat(str(1, "c"), vint(2, 3), vint(3, 1), bytes(4, vint(1, 1)), str(5, "x")),
      ],
      [toBinary(ev.TaskOOMSchema, create(ev.TaskOOMSchema, { containerId: "c" })), cat(str(1, "c"))],
      [toBinary(ev.TaskExecAddedSchema, create(ev.TaskExecAddedSchema, { containerId: "c", execId: "e" })), cat(str(1, "c"), str(2, "e"))],
      [toBinary(ev.TaskExecStartedSchema, create(ev.TaskExecStartedSchema, { containerId: "c", execId: "e", pid: 4 })),
        cat(str(1, "c"), str(2, "e"), vint(3, 4))],
      [toBinary(ev.TaskPausedSchema, create(ev.TaskPausedSchema, { containerId: "c" })), cat(str(1, "c"))],
      [toBinary(ev.TaskResumedSchema, create(ev.TaskResumedSchema, { containerId: "c" })), cat(str(1, "c"))],
      [toBinary(ev.TaskCheckpointedSchema, create(ev.TaskCheckpointedSchema, { containerId: "c", checkpoint: "k" })),
        cat(str(1, "c"), str(2, "k"))],
    ];
    for (const [got, want] of cases) expect(hex(got)).toBe(hex(want));
  });

  test("type names are what containerd resolves from the Any type_url", () => {
    expect(
      [ev.TaskCreateSchema, ev.TaskStartSchema, ev.TaskDeleteSchema, ev.TaskIOSchema, ev.TaskExitSchema, ev.TaskOOMSchema,
        ev.TaskExecAddedSchema, ev.TaskExecStartedSchema, ev.TaskPausedSchema, ev.TaskResumedSchema, ev.TaskCheckpointedSchema]
        .map((s) => s.typeName),
    ).toEqual([
      "containerd.events.TaskCreate", "containerd.events.TaskStart", "containerd.events.TaskDelete", "containerd.events.TaskIO",
      "containerd.events.TaskExit", "containerd.events.TaskOOM", "containerd.events.TaskExecAdded",
      "containerd.events.TaskExecStarted", "containerd.events.TaskPaused", "containerd.events.TaskResumed",
      "containerd.events.TaskCheckpointed",
    ]);
  });
});

describe("containerd.services.events.ttrpc.v1.Events", () => {
  test("service has exactly Forward(ForwardRequest) -> Empty", () => {
    expect(Events.typeName).toBe("containerd.services.events.ttrpc.v1.Events");
    expect(Events.methods.map((m) => [m.name, m.input.typeName, m.output.typeName, m.methodKind])).toEqual([
      ["Forward", "containerd.services.events.ttrpc.v1.ForwardRequest", "google.protobuf.Empty", "unary"],
    ]);
  });

  test("ForwardRequest wraps Envelope{timestamp 1, namespace 2, topic 3, event 4}", () => {
    const exit = toBinary(ev.TaskExitSchema, create(ev.TaskExitSchema, { containerId: "c", exitStatus: 3 }));
    const msg = create(ForwardRequestSchema, {
      envelope: create(EnvelopeSchema, {
        timestamp: { seconds: 100n, nanos: 1 },
        namespace: "default",
        topic: "/tasks/exit",
        event: { typeUrl: "containerd.events.TaskExit", value: exit },
      }),
    });
    const expected = cat(
      bytes(1, [
        ...bytes(1, [...vint(1, 100), ...vint(2, 1)]),
        ...str(2, "default"),
        ...str(3, "/tasks/exit"),
        ...bytes(4, [...str(1, "containerd.events.TaskExit"), ...bytes(2, [...exit])]),
      ]),
    );
    expect(hex(toBinary(ForwardRequestSchema, msg))).toBe(hex(expected));
    const back = fromBinary(ForwardRequestSchema, expected);
    expect(back.envelope?.topic).toBe("/tasks/exit");
    expect(fromBinary(ev.TaskExitSchema, back.envelope?.event?.value ?? new Uint8Array()).exitStatus).toBe(3);
  });
});

describe("io.containerd.cgroups.v1.Metrics", () => {
  test("type name", () => {
    expect(cg1.MetricsSchema.typeName).toBe("io.containerd.cgroups.v1.Metrics");
  });

  test("fields of Metrics and its sub-messages, including two-byte keys (MemoryStat.usage = 33)", () => {
    const msg = create(cg1.MetricsSchema, {
      hugetlb: [{ usage: 1n, max: 2n, failcnt: 3n, pagesize: "2MB" }],
      pids: { current: 3n, limit: 10n },
      cpu: { usage: { total: 100n, kernel: 40n, user: 60n, perCpu: [70n, 30n] }, throttling: { periods: 1n, throttledPeriods: 2n, throttledTime: 3n } },
      memory: { cache: 5n, rss: 6n, totalUnevictable: 7n, usage: { limit: 8n, usage: 9n, max: 10n, failcnt: 11n }, kernelTcp: { usage: 12n } },
      blkio: { ioServiceBytesRecursive: [{ op: "Read", device: "sda", major: 8n, minor: 0n, value: 4096n }], sectorsRecursive: [{ op: "", value: 1n }] },
      rdma: { current: [{ device: "mlx", hcaHandles: 1, hcaObjects: 2 }], limit: [] },
      network: [{ name: "eth0", rxBytes: 1n, txDropped: 2n }],
      cgroupStats: { nrSleeping: 1n, nrRunning: 2n, nrStopped: 3n, nrUninterruptible: 4n, nrIoWait: 5n },
      memoryOomControl: { oomKillDisable: 0n, underOom: 1n, oomKill: 2n },
    });
    const expected = cat(
      bytes(1, [...vint(1, 1), ...vint(2, 2), ...vint(3, 3), ...str(4, "2MB")]),
      bytes(2, [...vint(1, 3), ...vint(2, 10)]),
      bytes(3, [
        ...bytes(1, [...vint(1, 100), ...vint(2, 40), ...vint(3, 60), ...bytes(4, [70, 30])]),
        ...bytes(2, [...vint(1, 1), ...vint(2, 2), ...vint(3, 3)]),
      ]),
      bytes(4, [
        ...vint(1, 5), ...vint(2, 6), ...vint(32, 7),
        ...bytes(33, [...vint(1, 8), ...vint(2, 9), ...vint(3, 10), ...vint(4, 11)]),
        ...bytes(36, vint(2, 12)),
      ]),
      bytes(5, [
        ...bytes(1, [...str(1, "Read"), ...str(2, "sda"), ...vint(3, 8), ...vint(5, 4096)]),
        ...bytes(8, vint(5, 1)),
      ]),
      bytes(6, bytes(1, [...str(1, "mlx"), ...vint(2, 1), ...vint(3, 2)])),
      bytes(7, [...str(1, "eth0"), ...vint(2, 1), ...vint(9, 2)]),
      bytes(8, [...vint(1, 1), ...vint(2, 2), ...vint(3, 3), ...vint(4, 4), ...vint(5, 5)]),
      bytes(9, [...vint(2, 1), ...vint(3, 2)]),
    );
    expect(hex(toBinary(cg1.MetricsSchema, msg))).toBe(hex(expected));
    // MemoryStat.usage (33, length-delimited) has the two-byte key 8a 02; total_unevictable (32) is 80 02.
    expect(hex(expected)).toContain("8002078a02");
  });

  test("per_cpu also decodes unpacked (as older encoders may send it)", () => {
    const unpacked = cat(bytes(3, bytes(1, [...vint(4, 70), ...vint(4, 30)])));
    expect(fromBinary(cg1.MetricsSchema, unpacked).cpu?.usage?.perCpu).toEqual([70n, 30n]);
  });

  test("every MemoryStat counter 1-32 is a uint64 at its containerd number", () => {
    const names = [
      "cache", "rss", "rssHuge", "mappedFile", "dirty", "writeback", "pgPgIn", "pgPgOut", "pgFault", "pgMajFault",
      "inactiveAnon", "activeAnon", "inactiveFile", "activeFile", "unevictable", "hierarchicalMemoryLimit",
      "hierarchicalSwapLimit", "totalCache", "totalRss", "totalRssHuge", "totalMappedFile", "totalDirty",
      "totalWriteback", "totalPgPgIn", "totalPgPgOut", "totalPgFault", "totalPgMajFault", "totalInactiveAnon",
      "totalActiveAnon", "totalInactiveFile", "totalActiveFile", "totalUnevictable",
    ];
    expect(cg1.MemoryStatSchema.fields.slice(0, 32).map((f) => [f.localName, f.number])).toEqual(names.map((n, i) => [n, i + 1]));
    expect(cg1.MemoryStatSchema.fields.slice(32).map((f) => [f.localName, f.number])).toEqual([
      ["usage", 33], ["swap", 34], ["kernel", 35], ["kernelTcp", 36],
    ]);
  });
});

describe("io.containerd.cgroups.v2.Metrics", () => {
  test("type name and the gap at field 3", () => {
    expect(cg2.MetricsSchema.typeName).toBe("io.containerd.cgroups.v2.Metrics");
    expect(cg2.MetricsSchema.fields.map((f) => [f.localName, f.number])).toEqual([
      ["pids", 1], ["cpu", 2], ["memory", 4], ["rdma", 5], ["io", 6], ["hugetlb", 7], ["memoryEvents", 8], ["network", 9],
    ]);
  });

  test("fields of Metrics and its sub-messages", () => {
    const msg = create(cg2.MetricsSchema, {
      pids: { current: 2n, limit: 0n },
      cpu: { usageUsec: 1n, userUsec: 2n, systemUsec: 3n, nrPeriods: 4n, nrThrottled: 5n, throttledUsec: 6n,
        psi: { some: { avg10: 0.5, total: 7n } } },
      memory: { anon: 1n, file: 2n, pgfault: 3n, usage: 4n, usageLimit: 5n, swapUsage: 6n, swapLimit: 7n, maxUsage: 8n },
      io: { usage: [{ major: 8n, minor: 16n, rbytes: 1n, wbytes: 2n, rios: 3n, wios: 4n }] },
      hugetlb: [{ current: 1n, max: 2n, pagesize: "1GB" }],
      memoryEvents: { low: 1n, high: 2n, max: 3n, oom: 4n, oomKill: 5n },
    });
    const expected = cat(
      bytes(1, vint(1, 2)),
      bytes(2, [...vint(1, 1), ...vint(2, 2), ...vint(3, 3), ...vint(4, 4), ...vint(5, 5), ...vint(6, 6),
        ...bytes(7, bytes(1, [...f64(1, 0.5), ...vint(4, 7)]))]),
      bytes(4, [...vint(1, 1), ...vint(2, 2), ...vint(18, 3), ...vint(32, 4), ...vint(33, 5), ...vint(34, 6), ...vint(35, 7), ...vint(36, 8)]),
      bytes(6, bytes(1, [...vint(1, 8), ...vint(2, 16), ...vint(3, 1), ...vint(4, 2), ...vint(5, 3), ...vint(6, 4)])),
      bytes(7, [...vint(1, 1), ...vint(2, 2), ...str(3, "1GB")]),
      bytes(8, [...vint(1, 1), ...vint(2, 2), ...vint(3, 3), ...vint(4, 4), ...vint(5, 5)]),
    );
    expect(hex(toBinary(cg2.MetricsSchema, msg))).toBe(hex(expected));
  });
});

describe("cryo.v1 and CRI options", () => {
  test("type names", () => {
    expect([cryo.CheckpointOptionsSchema, cryo.RuntimeOptionsSchema, CriOptionsSchema].map((s) => s.typeName))
      .toEqual(["cryo.v1.CheckpointOptions", "cryo.v1.RuntimeOptions", "runtimeoptions.v1.Options"]);
  });

  test("enums keep their numbers", () => {
    expect([cryo.CgroupMode.UNSPECIFIED, cryo.CgroupMode.SOFT, cryo.CgroupMode.FULL, cryo.CgroupMode.STRICT, cryo.CgroupMode.IGNORE])
      .toEqual([0, 1, 2, 3, 4]);
    expect([cryo.Compression.UNSPECIFIED, cryo.Compression.NONE, cryo.Compression.ZSTD]).toEqual([0, 1, 2]);
    expect([cryo.Grouping.UNSPECIFIED, cryo.Grouping.PER_CONTAINER, cryo.Grouping.PER_POD, cryo.Grouping.PER_NAMESPACE])
      .toEqual([0, 1, 2, 3]);
  });

  test("field numbers stay fixed (they are stored in checkpoints and sent by clients)", () => {
    const numbers = (s: { fields: readonly { localName: string; number: number }[] }) =>
      Object.fromEntries(s.fields.map((f) => [f.localName, f.number]));
    expect(numbers(cryo.CheckpointOptionsSchema)).toEqual({
      imagePath: 1, workPath: 2, parentPath: 3, exit: 4, tcpEstablished: 5, tcpClose: 6, externalUnixSockets: 7,
      shellJob: 8, fileLocks: 9, preDump: 10, trackMem: 11, cgroupMode: 12, emptyNamespaces: 13, autoDedup: 14,
      lazyPages: 15, pageServerAddress: 16, pageServerPort: 17, statusPath: 18, lsmProfile: 19, lsmMountContext: 20,
      external: 21, mntnsCompatMode: 22, compression: 23, compressionLevel: 24, skipInFlight: 25, logLevel: 26, localPages: 27, networkLock: 28,
      ghostLimit: 29,
    });
    expect(numbers(cryo.RuntimeOptionsSchema)).toEqual({
      configPath: 1, binaryName: 2, root: 3, systemdCgroup: 4, grouping: 5, ioUid: 6, ioGid: 7, noPivotRoot: 8,
      noNewKeyring: 9, shimCgroup: 10,
    });
  });

  test("runtimeoptions.v1.Options (what CRI sends to non-runc runtimes)", () => {
    const msg = create(CriOptionsSchema, { typeUrl: "cryo.v1.RuntimeOptions", configPath: "/etc/cryo/config.toml" });
    expect(hex(toBinary(CriOptionsSchema, msg))).toBe(hex(cat(str(1, "cryo.v1.RuntimeOptions"), str(2, "/etc/cryo/config.toml"))));
  });
});
