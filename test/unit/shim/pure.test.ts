import { create, toBinary, fromBinary } from "@bufbuild/protobuf";
import { AnySchema, anyPack } from "@bufbuild/protobuf/wkt";
import { describe, expect, spyOn, test } from "bun:test";
import { mkdtempSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Code, CryoError } from "../../../src/errors.ts";
import { BootstrapParamsSchema, BootstrapResultSchema, LogLevel } from "../../../src/gen/containerd/runtime/bootstrap/v1/bootstrap_pb.ts";
import { OptionsSchema } from "../../../src/gen/containerd/runc/options/oci_pb.ts";
import { Grouping, RuntimeOptionsSchema } from "../../../src/gen/cryo/v1/options_pb.ts";
import { daemonArgs, parseShimFlags, SHIM_FLAG_NAMES, SHIM_USAGE } from "../../../src/shim/flags.ts";
import { runShim } from "../../../src/shim/manager.ts";
import { binaryIdentity, groupKey, keyedByBinary, resolveGrouping, socketPath } from "../../../src/shim/grouping.ts";
import { decodeStartInput, encodeStartOutput } from "../../../src/shim/handshake.ts";
import { TRANSITIONS, transition, type ProcessEvent, type ProcessState } from "../../../src/shim/process-state.ts";
import { createSerialQueue } from "../../../src/shim/serial-queue.ts";
import { parseOutputTarget } from "../../../src/shim/stdio.ts";

const legacyAny = (opts: Parameters<typeof create<typeof OptionsSchema>>[1]) =>
  toBinary(AnySchema, create(AnySchema, { typeUrl: "containerd.runc.v1.Options", value: toBinary(OptionsSchema, create(OptionsSchema, opts)) }));

describe("flags", () => {
  test("containerd 1.6 start command line and environment", () => {
    const f = parseShimFlags(
      ["-namespace", "k8s", "-address", "/run/c.sock", "-publish-binary", "/usr/bin/containerd", "-id", "c1", "-debug", "start"],
      { TTRPC_ADDRESS: "/run/c.sock.ttrpc" },
      "/bundle",
    );
    expect(f).toMatchObject({ action: "start", namespace: "k8s", id: "c1", address: "/run/c.sock", ttrpcAddress: "/run/c.sock.ttrpc", debug: true, bundle: "/bundle" });
  });
  test("delete with -bundle, -flag=value and --flag forms; ttrpc address defaults to address + .ttrpc", () => {
    const f = parseShimFlags(["--namespace=ns", "-address=/a.sock", "-id", "x", "-bundle", "/b", "delete"], {}, "/cwd");
    expect(f).toMatchObject({ action: "delete", namespace: "ns", bundle: "/b", ttrpcAddress: "/a.sock.ttrpc", debug: false });
    // A relative -bundle is the working directory's (the daemon leaves it for /).
    expect(parseShimFlags(["-bundle", "b/c", "delete"], {}, "/cwd").bundle).toBe("/cwd/b/c");
  });
  test("containerd 2.x environment", () => {
    const f = parseShimFlags(["-id", "x", "start"], { NAMESPACE: "n2", GRPC_ADDRESS: "/g.sock", MAX_SHIM_VERSION: "2" }, "/c");
    expect(f).toMatchObject({ namespace: "n2", address: "/g.sock", maxShimVersion: 2 });
  });
  test("-h and -help print the usage, exit 0, and it lists every flag the parser takes (both were an unknown flag, exit 1)", async () => {
    for (const arg of ["-h", "-help", "--help"]) expect(parseShimFlags([arg], {}, "/").help).toBe(true);
    expect(parseShimFlags([], {}, "/").help).toBe(false);
    for (const name of SHIM_FLAG_NAMES) expect(SHIM_USAGE).toMatch(new RegExp(`(^|[ ,])-${name}( |,|$)`, "m"));
    expect(SHIM_USAGE).toContain("ctr run --runtime io.containerd.cryo.v2");
    const out: Uint8Array[] = [];
    const write = spyOn(Bun, "write").mockImplementation(async (_dest, data) => {
      out.push(data as Uint8Array);
      return 0;
    });
    try {
      expect(await runShim(["-help"], {})).toBe(0);
    } finally {
      write.mockRestore();
    }
    expect(new TextDecoder().decode(out[0])).toBe(SHIM_USAGE);
  });
  test("unknown flags and actions are INVALID_ARGUMENT", () => {
    expect(() => parseShimFlags(["-bogus", "start"], {}, "/")).toThrow("unknown flag");
    expect(() => parseShimFlags(["-namespace", "n", "frobnicate"], {}, "/")).toThrow(/expected start, delete or none/);
    expect(() => parseShimFlags(["-id"], {}, "/")).toThrow("needs a value");
  });
  test("a namespace or id that is not a containerd identifier is INVALID_ARGUMENT (it names runc's root and the group)", () => {
    const codeOf = (f: () => unknown) => {
      try {
        f();
      } catch (err) {
        return (err as CryoError).code;
      }
      return Code.OK;
    };
    expect(codeOf(() => parseShimFlags(["-namespace", "../../tmp/x", "-id", "c", "start"], {}, "/"))).toBe(Code.INVALID_ARGUMENT);
    expect(codeOf(() => parseShimFlags(["-id", "c", "start"], { NAMESPACE: "a/b" }, "/"))).toBe(Code.INVALID_ARGUMENT);
    expect(codeOf(() => parseShimFlags(["-namespace", "n", "-id", "../x", "delete"], {}, "/"))).toBe(Code.INVALID_ARGUMENT);
    expect(() => parseShimFlags(["-namespace", "n", "-id", "../x", "delete"], {}, "/")).toThrow('flag -id "../x": invalid argument');
    // -v and -info carry neither.
    expect(parseShimFlags(["-v"], {}, "/").namespace).toBe("");
  });
  test("the daemon's argv parses back to the same settings, with no action", () => {
    const f = parseShimFlags(["-namespace", "n", "-id", "c", "-address", "/a", "-debug", "start"], {}, "/b");
    const d = parseShimFlags(daemonArgs(f, "/run/cryo/s/abc"), {}, "/elsewhere");
    expect(d).toMatchObject({ action: "", namespace: "n", id: "c", address: "/a", socket: "/run/cryo/s/abc", bundle: "/b", debug: true });
  });
});

describe("start handshakes", () => {
  test("legacy: runc options Any on stdin, bare address on stdout", () => {
    const input = decodeStartInput(legacyAny({ binaryName: "/opt/runc", root: "/run/r" }), "c1", "ns");
    expect(input.kind).toBe("legacy");
    expect(input.options.binaryName).toBe("/opt/runc");
    expect(input.options.root).toBe("/run/r");
    expect(new TextDecoder().decode(encodeStartOutput(input, "unix:///run/cryo/s/x"))).toBe("unix:///run/cryo/s/x");
  });
  test("legacy with empty stdin gives default options", () => {
    const input = decodeStartInput(new Uint8Array(), "c1", "ns");
    expect(input).toMatchObject({ kind: "legacy", options: { binaryName: "runc", grouping: undefined } });
  });
  test("bootstrap (containerd 2.x): params on stdin, BootstrapResult on stdout", () => {
    const params = create(BootstrapParamsSchema, {
      instanceId: "c1",
      namespace: "ns",
      logLevel: LogLevel.DEBUG,
      containerdTtrpcAddress: "/run/c.sock.ttrpc",
      containerdGrpcAddress: "/run/c.sock",
      socketDir: "/run/s",
      extensions: [{ value: anyPack(RuntimeOptionsSchema, create(RuntimeOptionsSchema, { grouping: Grouping.PER_NAMESPACE, binaryName: "crun-like" })) }],
    });
    const input = decodeStartInput(toBinary(BootstrapParamsSchema, params), "c1", "ns");
    expect(input).toMatchObject({ kind: "bootstrap", debug: true, ttrpcAddress: "/run/c.sock.ttrpc", socketDir: "/run/s" });
    expect(input.options.grouping).toBe("per-namespace");
    expect(input.options.binaryName).toBe("crun-like");
    const out = fromBinary(BootstrapResultSchema, encodeStartOutput(input, "unix:///run/s/abc"));
    expect(out).toMatchObject({ version: 3, address: "unix:///run/s/abc", protocol: "ttrpc" });
  });
  test("params whose id or namespace differ from the command line are read as a legacy Any", () => {
    const params = create(BootstrapParamsSchema, { instanceId: "other", namespace: "ns" });
    expect(() => decodeStartInput(toBinary(BootstrapParamsSchema, params), "c1", "ns")).toThrow(CryoError);
  });
});

describe("grouping", () => {
  const pod = { "io.kubernetes.cri.sandbox-id": "sb1" };
  test("per-pod (default) groups by annotation, else per container", () => {
    expect(resolveGrouping(undefined, {}, {})).toBe("per-pod");
    expect(groupKey("per-pod", "c1", "ns", pod)).toBe(groupKey("per-pod", "c2", "ns", pod));
    expect(groupKey("per-pod", "c1", "ns", { "io.containerd.runc.v2.group": "g" })).toBe("group/g");
    expect(groupKey("per-pod", "c1", "ns", {})).not.toBe(groupKey("per-pod", "c2", "ns", {}));
  });
  test("per-container ignores annotations; per-namespace joins everything in a namespace", () => {
    expect(groupKey("per-container", "c1", "ns", pod)).not.toBe(groupKey("per-container", "c2", "ns", pod));
    expect(groupKey("per-namespace", "c1", "ns", {})).toBe(groupKey("per-namespace", "c2", "ns", pod));
  });
  test("policy priority: options, annotation, environment", () => {
    expect(resolveGrouping("per-container", { "io.cryo.shim.grouping": "namespace" }, { CRYO_SHIM_GROUPING: "pod" })).toBe("per-container");
    expect(resolveGrouping(undefined, { "io.cryo.shim.grouping": "namespace" }, { CRYO_SHIM_GROUPING: "pod" })).toBe("per-namespace");
    expect(resolveGrouping(undefined, {}, { CRYO_SHIM_GROUPING: "per-container" })).toBe("per-container");
    expect(() => resolveGrouping(undefined, {}, { CRYO_SHIM_GROUPING: "weekly" })).toThrow(`CRYO_SHIM_GROUPING (containerd's environment)="weekly": invalid argument: expected per-container, per-pod or per-namespace`);
    // The error names where the bad name came from (it said only `grouping policy "bogus"`).
    expect(() => resolveGrouping(undefined, { "io.cryo.shim.grouping": "bogus" }, { CRYO_SHIM_GROUPING: "pod" })).toThrow(
      'annotation io.cryo.shim.grouping="bogus": invalid argument: expected per-container, per-pod or per-namespace',
    );
  });
  test("a misspelt io.cryo.shim. annotation is refused naming the one key, whatever else sets the policy (it left the default without a word)", () => {
    const want = "annotation io.cryo.shim.groupng: invalid argument: unknown key; the only io.cryo.shim. annotation is io.cryo.shim.grouping";
    expect(() => resolveGrouping(undefined, { "io.cryo.shim.groupng": "per-namespace" }, {})).toThrow(want);
    expect(() => resolveGrouping("per-container", { "io.cryo.shim.groupng": "per-namespace" }, {})).toThrow(want);
    // Other prefixes are not cryo's to police.
    expect(resolveGrouping(undefined, { "io.cryo.other": "x", "io.cryo.shimmer": "y" }, {})).toBe("per-pod");
  });
  test("socket paths differ per containerd and namespace and fit sun_path", () => {
    const a = socketPath("/run/cryo/s", "/run/a.sock", "ns", "k");
    expect(a).not.toBe(socketPath("/run/cryo/s", "/run/b.sock", "ns", "k"));
    expect(a).not.toBe(socketPath("/run/cryo/s", "/run/a.sock", "ns2", "k"));
    expect(a.length).toBeLessThan(108);
  });
  test("a per-namespace daemon is keyed by the binary on disk: a new binary at the same path gets another socket", () => {
    const dir = mkdtempSync(join(tmpdir(), "cryo-binid-"));
    try {
      const bin = join(dir, "containerd-shim-cryo-v2");
      writeFileSync(bin, "old");
      const before = binaryIdentity(bin);
      expect(binaryIdentity(bin)).toBe(before);
      // An installer's copy to a temporary name and rename over the path: a new inode.
      writeFileSync(`${bin}.tmp`, "new!");
      renameSync(`${bin}.tmp`, bin);
      const after = binaryIdentity(bin);
      expect(after).not.toBe(before);
      const key = groupKey("per-namespace", "c1", "ns", {});
      expect(socketPath("/run/cryo/s", "/run/a.sock", "ns", key, before)).not.toBe(socketPath("/run/cryo/s", "/run/a.sock", "ns", key, after));
      expect(binaryIdentity(join(dir, "absent"))).toBe(join(dir, "absent"));
      expect(["per-namespace", "per-pod", "per-container"].map((p) => keyedByBinary(p as "per-pod"))).toEqual([true, false, false]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe("process state machine", () => {
  test("allowed moves", () => {
    expect(transition("container c", "created", "start")).toBe("running");
    expect(transition("container c", "running", "pause")).toBe("paused");
    expect(transition("container c", "paused", "resume")).toBe("running");
    expect(transition("container c", "running", "exit")).toBe("stopped");
    expect(transition("container c", "stopped", "delete")).toBe("deleted");
    expect(transition("container c", "created", "delete")).toBe("deleted");
  });
  const cases: [ProcessState, ProcessEvent, Code, string][] = [
    ["paused", "pause", Code.FAILED_PRECONDITION, "container c: failed precondition: cannot pause a paused container"],
    ["running", "resume", Code.FAILED_PRECONDITION, "container c: failed precondition: cannot resume a running container"],
    ["created", "pause", Code.FAILED_PRECONDITION, "container c: failed precondition: cannot pause a created container"],
    ["running", "delete", Code.FAILED_PRECONDITION, "container c: failed precondition: cannot delete a running container"],
    ["paused", "exec", Code.FAILED_PRECONDITION, "container c: failed precondition: cannot exec in a paused container"],
    ["stopped", "kill", Code.NOT_FOUND, "container c: not found: process already finished"],
    ["deleted", "start", Code.NOT_FOUND, "container c: not found"],
  ];
  for (const [from, ev, code, msg] of cases) {
    test(`${from} + ${ev} -> ${msg}`, () => {
      try {
        transition("container c", from, ev);
        throw new Error("no error");
      } catch (err) {
        expect(err).toBeInstanceOf(CryoError);
        expect((err as CryoError).code).toBe(code);
        expect((err as CryoError).message).toBe(msg);
      }
    });
  }
  test("nothing leaves deleted; restoring only starts, exits or is deleted", () => {
    expect(Object.keys(TRANSITIONS.deleted)).toEqual([]);
    expect(Object.keys(TRANSITIONS.restoring).sort()).toEqual(["delete", "exit", "start"]);
  });
});

describe("serial queue and stdio targets", () => {
  test("jobs run one at a time in order, failures do not stop the queue", async () => {
    const q = createSerialQueue();
    const log: string[] = [];
    const a = q.run(async () => {
      await Bun.sleep(5);
      log.push("a");
    });
    const b = q.run(() => {
      log.push("b");
      throw new Error("b failed");
    });
    const c = q.run(() => log.push("c"));
    await a;
    await expect(b).rejects.toThrow("b failed");
    await c;
    expect(log).toEqual(["a", "b", "c"]);
    expect(q.pending).toBe(0);
  });
  test("stdout values: fifo paths, file:// and binary:// URIs", () => {
    expect(parseOutputTarget("")).toEqual({ kind: "none" });
    expect(parseOutputTarget("/run/fifo/x-stdout")).toEqual({ kind: "fifo", path: "/run/fifo/x-stdout" });
    expect(parseOutputTarget("file:///var/log/c.log")).toEqual({ kind: "file", path: "/var/log/c.log" });
    const b = parseOutputTarget("binary:///usr/bin/logger?tag=x");
    expect(b.kind).toBe("binary");
    expect(() => parseOutputTarget("ftp://x/y")).toThrow("unknown scheme");
    // A host (another machine's file) is refused: file://logs/app.log wrote /app.log (found by bench/ttrpc-fuzz.ts).
    for (const uri of ["file://logs/app.log", "binary://bin/logger", "fifo://x/y"]) {
      expect(() => parseOutputTarget(uri)).toThrow(`stdio uri ${JSON.stringify(uri)}: invalid argument: names host`);
    }
    expect(parseOutputTarget("file://localhost/var/log/c.log")).toEqual({ kind: "file", path: "/var/log/c.log" });
    expect(() => parseOutputTarget("file:///var/log/a%00b")).toThrow("its path has a NUL byte");
    expect(() => parseOutputTarget("file:///var/log/a%zz")).toThrow(/invalid argument/);
  });
});
