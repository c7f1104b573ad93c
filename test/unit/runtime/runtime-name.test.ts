import { expect, test } from "bun:test";
import { matchesRuntime, RUNTIME_NAME } from "../../../src/runtime/index.ts";

test("the full name and its parts select cryo", () => {
  expect(RUNTIME_NAME).toBe("io.containerd.cryo.v2");
  for (const n of ["io.containerd.cryo.v2", "cryo", "cryo.v2", "containerd.cryo", "io.containerd.cryo", "containerd.cryo.v2", " CRYO ", "containerd-shim-cryo-v2", "/usr/local/bin/containerd-shim-cryo-v2"]) {
    expect([n, matchesRuntime(n)]).toEqual([n, true]);
  }
});

test("other runtimes and non-contiguous parts do not", () => {
  for (const n of ["", "runc", "io.containerd.runc.v2", "v2", "io.containerd", "io.cryo", "cryo.v1", "cryo.v2.extra", "crio", "kata.cryo", "containerd-shim-runc-v2", "io.containerd.cryo.v2.x"]) {
    expect([n, matchesRuntime(n)]).toEqual([n, false]);
  }
});
