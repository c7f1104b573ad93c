/**
 * `containerd-shim-cryo-v2 -info`, the built binary as containerd 2.x runs it (core/runtime/v2's
 * getRuntimeInfo: options Any on stdin, no -namespace, RuntimeInfo on stdout): the features are the
 * system runc's, so CRI on containerd 2.x sees the same runtime features through cryo as through runc's shim.
 */
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { AnySchema } from "@bufbuild/protobuf/wkt";
import { expect, test } from "bun:test";
import { join } from "node:path";
import { defaultBinDir } from "../../src/containerd/index.ts";
import { OptionsSchema } from "../../src/gen/containerd/runc/options/oci_pb.ts";
import { RuntimeInfoSchema } from "../../src/gen/containerd/types/introspection_pb.ts";

const shim = join(defaultBinDir() ?? "build/bin", "containerd-shim-cryo-v2");

function runInfo(stdin: Uint8Array): { code: number; stdout: Uint8Array; stderr: string } {
  const r = Bun.spawnSync([shim, "-info"], { stdin, stdout: "pipe", stderr: "pipe" });
  return { code: r.exitCode ?? -1, stdout: r.stdout, stderr: r.stderr.toString() };
}

test("-info answers RuntimeInfo with runc's features and the options it was given", () => {
  const value = toBinary(OptionsSchema, create(OptionsSchema, { binaryName: "runc", root: "/run/containerd/runc" }));
  const r = runInfo(toBinary(AnySchema, create(AnySchema, { typeUrl: "containerd.runc.v1.Options", value })));
  expect(r.stderr).toBe("");
  expect(r.code).toBe(0);
  const info = fromBinary(RuntimeInfoSchema, r.stdout);
  expect(info.name).toBe("io.containerd.cryo.v2");
  expect(info.features?.typeUrl).toBe("types.containerd.io/opencontainers/runtime-spec/1/features/Features");
  const runcFeatures = JSON.parse(Bun.spawnSync(["runc", "features"]).stdout.toString());
  expect(JSON.parse(new TextDecoder().decode(info.features?.value))).toEqual(runcFeatures);
  expect(fromBinary(OptionsSchema, info.options?.value ?? new Uint8Array()).root).toBe("/run/containerd/runc");
});

test("-info with options it cannot read fails with the reason on stderr and nothing on stdout", () => {
  const r = runInfo(new Uint8Array([0xff, 0xff, 0xff]));
  expect(r.code).toBe(1);
  expect(r.stdout.length).toBe(0);
  expect(r.stderr).toContain("containerd-shim-cryo-v2: runtime options");
});
