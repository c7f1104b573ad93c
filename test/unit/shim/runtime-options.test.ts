import { create } from "@bufbuild/protobuf";
import { AnySchema } from "@bufbuild/protobuf/wkt";
import { expect, test } from "bun:test";
import { decodeShimOptions } from "../../../src/shim/runtime-options.ts";

const varint = (field: number, v: number) => [(field << 3) | 0, ...(v < 128 ? [v] : [(v & 0x7f) | 0x80, v >> 7])];
const str = (field: number, s: string) => [(field << 3) | 2, s.length, ...new TextEncoder().encode(s)];
const any = (typeUrl: string, bytes: number[]) => create(AnySchema, { typeUrl, value: new Uint8Array(bytes) });

test("containerd.linux.runc.CreateOptions (ctr run --no-pivot / --uidmap to a non-runc runtime): its runc fields, by containerd's field numbers", () => {
  // no_pivot_root = 1, no_new_keyring = 8, shim_cgroup = 9, io_uid = 10, io_gid = 11
  const o = decodeShimOptions(any("containerd.linux.runc.CreateOptions", [...varint(1, 1), ...varint(8, 1), ...str(9, "/shim"), ...varint(10, 1000), ...varint(11, 1001)]));
  expect(o).toMatchObject({ noPivotRoot: true, noNewKeyring: true, shimCgroup: "/shim", ioUid: 1000, ioGid: 1001, binaryName: "runc" });
  expect(decodeShimOptions(any("type.googleapis.com/containerd.linux.runc.CreateOptions", []))).toMatchObject({ noPivotRoot: false, ioUid: 0 });
});

test("containerd.linux.runc.CreateOptions' restore fields (the v1 runtime's restore at Create) are INVALID_ARGUMENT naming them", () => {
  // open_tcp = 2, criu_image_path = 13
  expect(() => decodeShimOptions(any("containerd.linux.runc.CreateOptions", [...varint(2, 1), ...str(13, "/ckpt")]))).toThrow(
    "runtime options containerd.linux.runc.CreateOptions: invalid argument: open_tcp, criu_image_path: restore options of containerd's v1 linux runtime; cryo restores from CreateTaskRequest.checkpoint",
  );
});

test("an unknown options type is INVALID_ARGUMENT", () => {
  expect(() => decodeShimOptions(any("containerd.linux.runc.RuncOptions", []))).toThrow(/runtime options type "containerd.linux.runc.RuncOptions": invalid argument: unsupported/);
});

test("a relative root or binary path is INVALID_ARGUMENT naming the field; a binary name on PATH is not", () => {
  // containerd.runc.v1.Options: binary_name = 6, root = 7; cryo.v1.RuntimeOptions: binary_name = 2, root = 3
  expect(() => decodeShimOptions(any("containerd.runc.v1.Options", str(6, "sbin/runc")))).toThrow(
    'runtime options containerd.runc.v1.Options: invalid argument: binary_name "sbin/runc": a relative path; give a name on PATH or an absolute path',
  );
  expect(() => decodeShimOptions(any("cryo.v1.RuntimeOptions", str(3, "state/runc")))).toThrow('runtime options cryo.v1.RuntimeOptions: invalid argument: root "state/runc": a relative path; give an absolute one');
  expect(decodeShimOptions(any("containerd.runc.v1.Options", [...str(6, "crun"), ...str(7, "/run/x")]))).toMatchObject({ binaryName: "crun", root: "/run/x" });
  expect(decodeShimOptions(any("cryo.v1.RuntimeOptions", str(2, "/usr/sbin/runc")))).toMatchObject({ binaryName: "/usr/sbin/runc" });
});

test("cryo.v1.RuntimeOptions' grouping: each policy by its number, an unknown number INVALID_ARGUMENT", () => {
  // grouping = 5
  expect(decodeShimOptions(any("cryo.v1.RuntimeOptions", varint(5, 3))).grouping).toBe("per-namespace");
  expect(decodeShimOptions(any("cryo.v1.RuntimeOptions", varint(5, 1))).grouping).toBe("per-container");
  expect(decodeShimOptions(any("cryo.v1.RuntimeOptions", [])).grouping).toBeUndefined();
  expect(() => decodeShimOptions(any("cryo.v1.RuntimeOptions", varint(5, 99)))).toThrow("runtime options cryo.v1.RuntimeOptions: invalid argument: grouping 99: expected 1 (per container), 2 (per pod) or 3 (per namespace)");
});
