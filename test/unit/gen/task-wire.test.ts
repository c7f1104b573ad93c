// Pins the containerd task API, its types and the bootstrap handshake to the field numbers of
// containerd's own .proto files (runtime/v2/task/shim.proto at v1.6.20, api/runtime/task/v3 and
// api/runtime/bootstrap/v1 at v2.3.0). Expected bytes come from wire-writer.ts, not protobuf-es.
import { describe, expect, test } from "bun:test";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { anyPack, timestampFromMs } from "@bufbuild/protobuf/wkt";
import * as v2 from "../../../src/gen/containerd/runtime/task/v2/shim_pb.ts";
import { Task as TaskV3 } from "../../../src/gen/containerd/runtime/task/v3/shim_pb.ts";
import { MountSchema } from "../../../src/gen/containerd/types/mount_pb.ts";
import { ProcessInfoSchema, Status } from "../../../src/gen/containerd/types/task/task_pb.ts";
import {
  CheckpointOptionsSchema as RuncCheckpointOptionsSchema,
  OptionsSchema as RuncOptionsSchema,
  ProcessDetailsSchema,
} from "../../../src/gen/containerd/runc/options/oci_pb.ts";
import {
  BootstrapParamsSchema,
  BootstrapResultSchema,
  LogLevel,
} from "../../../src/gen/containerd/runtime/bootstrap/v1/bootstrap_pb.ts";
import { bytes, cat, hex, str, vint } from "./wire-writer.ts";

// containerd 1.6 packs Anys with the bare message name as type_url (typeurl falls back to proto.MessageName).
function bareAny(typeName: string, value: Uint8Array): number[] {
  return [...str(1, typeName), ...bytes(2, [...value])];
}

describe("containerd.task.v2 messages", () => {
  test("CreateTaskRequest uses fields 1-10 with Mount 1,2,4 and an Any in 10", () => {
    const options = create(RuncOptionsSchema, { binaryName: "runc", root: "/run/r", systemdCgroup: true });
    const optionBytes = toBinary(RuncOptionsSchema, options);
    expect(hex(optionBytes)).toBe(hex(cat(str(6, "runc"), str(7, "/run/r"), vint(9, true))));

    const msg = create(v2.CreateTaskRequestSchema, {
      id: "c1",
      bundle: "/b",
      rootfs: [create(MountSchema, { type: "overlay", source: "overlay", options: ["lowerdir=/l", "ro"] })],
      terminal: true,
      stdin: "/i",
      stdout: "/o",
      stderr: "/e",
      checkpoint: "/cp",
      parentCheckpoint: "/pcp",
      options: { typeUrl: "containerd.runc.v1.Options", value: optionBytes },
    });
    const mount = [...str(1, "overlay"), ...str(2, "overlay"), ...str(4, "lowerdir=/l"), ...str(4, "ro")];
    const expected = cat(
      str(1, "c1"),
      str(2, "/b"),
      bytes(3, mount),
      vint(4, true),
      str(5, "/i"),
      str(6, "/o"),
      str(7, "/e"),
      str(8, "/cp"),
      str(9, "/pcp"),
      bytes(10, bareAny("containerd.runc.v1.Options", optionBytes)),
    );
    expect(hex(toBinary(v2.CreateTaskRequestSchema, msg))).toBe(hex(expected));

    const back = fromBinary(v2.CreateTaskRequestSchema, expected);
    expect(back.rootfs[0]?.options).toEqual(["lowerdir=/l", "ro"]);
    expect(back.options?.typeUrl).toBe("containerd.runc.v1.Options");
    expect(fromBinary(RuncOptionsSchema, back.options?.value ?? new Uint8Array()).root).toBe("/run/r");
  });

  test("StateResponse: status enum in 4, exited_at Timestamp in 10, exec_id in 11", () => {
    const msg = create(v2.StateResponseSchema, {
      id: "c1",
      bundle: "/b",
      pid: 4242,
      status: Status.STOPPED,
      stdin: "/i",
      stdout: "/o",
      stderr: "/e",
      terminal: true,
      exitStatus: 137,
      exitedAt: { seconds: 1_700_000_000n, nanos: 5 },
      execId: "x1",
    });
    const expected = cat(
      str(1, "c1"),
      str(2, "/b"),
      vint(3, 4242),
      vint(4, 3),
      str(5, "/i"),
      str(6, "/o"),
      str(7, "/e"),
      vint(8, true),
      vint(9, 137),
      bytes(10, [...vint(1, 1_700_000_000), ...vint(2, 5)]),
      str(11, "x1"),
    );
    expect(hex(toBinary(v2.StateResponseSchema, msg))).toBe(hex(expected));
    // Hand-checked literal for the tail: field 10 key 0x52, field 11 key 0x5a.
    expect(hex(expected).endsWith("52080880e2cfaa061005" + "5a027831")).toBe(true);
  });

  test("Status enum values match containerd.v1.types.Status", () => {
    expect([Status.UNKNOWN, Status.CREATED, Status.RUNNING, Status.STOPPED, Status.PAUSED, Status.PAUSING]).toEqual([
      0, 1, 2, 3, 4, 5,
    ]);
  });

  test("small request and response messages", () => {
    const cases: [Uint8Array, Uint8Array][] = [
      [toBinary(v2.DeleteRequestSchema, create(v2.DeleteRequestSchema, { id: "c", execId: "e" })), cat(str(1, "c"), str(2, "e"))],
      [
        toBinary(v2.DeleteResponseSchema, create(v2.DeleteResponseSchema, { pid: 7, exitStatus: 1, exitedAt: timestampFromMs(1000) })),
        cat(vint(1, 7), vint(2, 1), bytes(3, vint(1, 1))),
      ],
      [
        toBinary(v2.ExecProcessRequestSchema, create(v2.ExecProcessRequestSchema, {
          id: "c", execId: "e", terminal: true, stdin: "i", stdout: "o", stderr: "r",
          spec: { typeUrl: "types.containerd.io/opencontainers/runtime-spec/1/Process", value: new TextEncoder().encode("{}") },
        })),
        cat(str(1, "c"), str(2, "e"), vint(3, true), str(4, "i"), str(5, "o"), str(6, "r"),
          bytes(7, [...str(1, "types.containerd.io/opencontainers/runtime-spec/1/Process"), ...str(2, "{}")])),
      ],
      [toBinary(v2.ResizePtyRequestSchema, create(v2.ResizePtyRequestSchema, { id: "c", execId: "e", width: 80, height: 24 })),
        cat(str(1, "c"), str(2, "e"), vint(3, 80), vint(4, 24))],
      [toBinary(v2.KillRequestSchema, create(v2.KillRequestSchema, { id: "c", execId: "e", signal: 9, all: true })),
        cat(str(1, "c"), str(2, "e"), vint(3, 9), vint(4, true))],
      [toBinary(v2.CloseIORequestSchema, create(v2.CloseIORequestSchema, { id: "c", execId: "e", stdin: true })),
        cat(str(1, "c"), str(2, "e"), vint(3, true))],
      [toBinary(v2.CheckpointTaskRequestSchema, create(v2.CheckpointTaskRequestSchema, { id: "c", path: "/p" })),
        cat(str(1, "c"), str(2, "/p"))],
      [toBinary(v2.UpdateTaskRequestSchema, create(v2.UpdateTaskRequestSchema, { id: "c", annotations: { k: "v" } })),
        cat(str(1, "c"), bytes(3, [...str(1, "k"), ...str(2, "v")]))],
      [toBinary(v2.StartResponseSchema, create(v2.StartResponseSchema, { pid: 300 })), cat(vint(1, 300))],
      [toBinary(v2.WaitResponseSchema, create(v2.WaitResponseSchema, { exitStatus: 3, exitedAt: { seconds: 2n, nanos: 0 } })),
        cat(vint(1, 3), bytes(2, vint(1, 2)))],
      [toBinary(v2.ConnectResponseSchema, create(v2.ConnectResponseSchema, { shimPid: 10, taskPid: 11, version: "v" })),
        cat(vint(1, 10), vint(2, 11), str(3, "v"))],
      [toBinary(v2.ShutdownRequestSchema, create(v2.ShutdownRequestSchema, { id: "c", now: true })), cat(str(1, "c"), vint(2, true))],
      [toBinary(v2.CreateTaskResponseSchema, create(v2.CreateTaskResponseSchema, { pid: 1 })), cat(vint(1, 1))],
    ];
    for (const [got, want] of cases) expect(hex(got)).toBe(hex(want));
  });

  test("Pids: ProcessInfo with runc ProcessDetails in its Any", () => {
    const details = toBinary(ProcessDetailsSchema, create(ProcessDetailsSchema, { execId: "e1" }));
    expect(hex(details)).toBe(hex(cat(str(1, "e1"))));
    const msg = create(v2.PidsResponseSchema, {
      processes: [
        create(ProcessInfoSchema, { pid: 1 }),
        create(ProcessInfoSchema, { pid: 2, info: { typeUrl: "containerd.runc.v1.ProcessDetails", value: details } }),
      ],
    });
    const expected = cat(
      bytes(1, vint(1, 1)),
      bytes(1, [...vint(1, 2), ...bytes(2, bareAny("containerd.runc.v1.ProcessDetails", details))]),
    );
    expect(hex(toBinary(v2.PidsResponseSchema, msg))).toBe(hex(expected));
  });

  test("StatsResponse carries the metrics Any in field 1", () => {
    const packed = anyPack(v2.ConnectRequestSchema, create(v2.ConnectRequestSchema, { id: "c" }));
    const got = toBinary(v2.StatsResponseSchema, create(v2.StatsResponseSchema, { stats: packed }));
    expect(hex(got)).toBe(hex(cat(bytes(1, [...str(1, packed.typeUrl), ...bytes(2, str(1, "c"))]))));
  });
});

describe("runc options (containerd.runc.v1)", () => {
  test("CheckpointOptions fields 1-10", () => {
    const msg = create(RuncCheckpointOptionsSchema, {
      exit: true,
      openTcp: true,
      externalUnixSockets: true,
      terminal: true,
      fileLocks: true,
      emptyNamespaces: ["network", "ipc"],
      cgroupsMode: "soft",
      imagePath: "/img",
      workPath: "/work",
      parentPath: "../parent",
    });
    const expected = cat(
      vint(1, true), vint(2, true), vint(3, true), vint(4, true), vint(5, true),
      str(6, "network"), str(6, "ipc"), str(7, "soft"), str(8, "/img"), str(9, "/work"), str(10, "../parent"),
    );
    expect(hex(toBinary(RuncCheckpointOptionsSchema, msg))).toBe(hex(expected));
    expect(RuncCheckpointOptionsSchema.typeName).toBe("containerd.runc.v1.CheckpointOptions");
  });

  test("Options fields 1-13", () => {
    const msg = create(RuncOptionsSchema, {
      noPivotRoot: true, noNewKeyring: true, shimCgroup: "/s", ioUid: 1000, ioGid: 1001, binaryName: "runc",
      root: "/r", criuPath: "/criu", systemdCgroup: true, criuImagePath: "/ci", criuWorkPath: "/cw",
      taskApiAddress: "unix:///a", taskApiVersion: 3,
    });
    const expected = cat(
      vint(1, true), vint(2, true), str(3, "/s"), vint(4, 1000), vint(5, 1001), str(6, "runc"), str(7, "/r"),
      str(8, "/criu"), vint(9, true), str(10, "/ci"), str(11, "/cw"), str(12, "unix:///a"), vint(13, 3),
    );
    expect(hex(toBinary(RuncOptionsSchema, msg))).toBe(hex(expected));
    expect(RuncOptionsSchema.typeName).toBe("containerd.runc.v1.Options");
  });
});

describe("shim bootstrap (containerd 2.3+ start handshake)", () => {
  test("BootstrapParams: negative log level is a 10-byte varint, socket_dir is optional field 9", () => {
    const runc = toBinary(RuncOptionsSchema, create(RuncOptionsSchema, { binaryName: "runc" }));
    const msg = create(BootstrapParamsSchema, {
      instanceId: "c1",
      namespace: "default",
      logLevel: LogLevel.DEBUG,
      containerdVersion: "2.3.0",
      containerdTtrpcAddress: "/run/containerd/containerd.sock.ttrpc",
      containerdGrpcAddress: "/run/containerd/containerd.sock",
      containerdBinary: "/usr/bin/containerd",
      extensions: [{ value: { typeUrl: "containerd.runc.v1.Options", value: runc } }],
      socketDir: "/run/containerd/s",
    });
    const expected = cat(
      str(1, "c1"),
      str(2, "default"),
      [0x18, 0xfc, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01],
      str(4, "2.3.0"),
      str(5, "/run/containerd/containerd.sock.ttrpc"),
      str(6, "/run/containerd/containerd.sock"),
      str(7, "/usr/bin/containerd"),
      bytes(8, bytes(1, bareAny("containerd.runc.v1.Options", runc))),
      str(9, "/run/containerd/s"),
    );
    expect(hex(toBinary(BootstrapParamsSchema, msg))).toBe(hex(expected));
    expect(fromBinary(BootstrapParamsSchema, expected).logLevel).toBe(-4);
    // An empty string in an explicitly optional field is still sent.
    const empty = toBinary(BootstrapParamsSchema, create(BootstrapParamsSchema, { socketDir: "" }));
    expect(hex(empty)).toBe(hex(cat(str(9, ""))));
    expect(fromBinary(BootstrapParamsSchema, new Uint8Array()).socketDir).toBeUndefined();
  });

  test("BootstrapResult fields 1-5", () => {
    const msg = create(BootstrapResultSchema, {
      version: 2,
      address: "unix:///run/containerd/s/abc",
      protocol: "ttrpc",
      metadata: { a: "b" },
    });
    const expected = cat(vint(1, 2), str(2, "unix:///run/containerd/s/abc"), str(3, "ttrpc"), bytes(5, [...str(1, "a"), ...str(2, "b")]));
    expect(hex(toBinary(BootstrapResultSchema, msg))).toBe(hex(expected));
    expect(BootstrapResultSchema.typeName).toBe("containerd.runtime.bootstrap.v1.BootstrapResult");
  });

  test("LogLevel values", () => {
    expect([
      LogLevel.TRACE, LogLevel.DEBUG, LogLevel.INFO, LogLevel.WARN,
      LogLevel.ERROR, LogLevel.FATAL, LogLevel.PANIC,
    ]).toEqual([-8, -4, 0, 4, 8, 10, 12]);
  });
});

describe("Task service descriptors", () => {
  const methods: [string, string, string][] = [
    ["State", "StateRequest", "StateResponse"],
    ["Create", "CreateTaskRequest", "CreateTaskResponse"],
    ["Start", "StartRequest", "StartResponse"],
    ["Delete", "DeleteRequest", "DeleteResponse"],
    ["Pids", "PidsRequest", "PidsResponse"],
    ["Pause", "PauseRequest", "google.protobuf.Empty"],
    ["Resume", "ResumeRequest", "google.protobuf.Empty"],
    ["Checkpoint", "CheckpointTaskRequest", "google.protobuf.Empty"],
    ["Kill", "KillRequest", "google.protobuf.Empty"],
    ["Exec", "ExecProcessRequest", "google.protobuf.Empty"],
    ["ResizePty", "ResizePtyRequest", "google.protobuf.Empty"],
    ["CloseIO", "CloseIORequest", "google.protobuf.Empty"],
    ["Update", "UpdateTaskRequest", "google.protobuf.Empty"],
    ["Wait", "WaitRequest", "WaitResponse"],
    ["Stats", "StatsRequest", "StatsResponse"],
    ["Connect", "ConnectRequest", "ConnectResponse"],
    ["Shutdown", "ShutdownRequest", "google.protobuf.Empty"],
  ];
  const full = (t: string) => (t.includes(".") ? t : `containerd.task.v2.${t}`);

  for (const [service, name] of [[v2.Task, "containerd.task.v2.Task"], [TaskV3, "containerd.task.v3.Task"]] as const) {
    test(`${name} has all 17 unary methods with containerd's types`, () => {
      expect(service.typeName).toBe(name);
      const got = service.methods.map((m) => [m.name, m.input.typeName, m.output.typeName, m.methodKind]);
      expect(got).toEqual(methods.map(([m, i, o]) => [m, full(i), full(o), "unary"]));
    });
  }
});
