import { describe, expect, test } from "bun:test";
import type { OciSpec } from "../../../src/plugins/hook-schemas.ts";
import { applySpecChanges, mergeSpecChanges } from "../../../src/plugins/spec-changes.ts";

const spec: OciSpec = {
  ociVersion: "1.0.2",
  process: { args: ["sh"], env: ["PATH=/bin", "MODE=dev", "MODE=dup"] },
  annotations: { a: "1" },
  mounts: [
    { destination: "/proc", type: "proc" },
    { destination: "/var/run/docker.sock", type: "bind", source: "/var/run/docker.sock" },
    { destination: "/data/", type: "bind", source: "/srv" },
  ],
  linux: { resources: { memory: { limit: 100, swap: 200 }, devices: [{ allow: false, access: "rwm" }] } },
};

describe("applySpecChanges", () => {
  test("no changes: an equal copy", () => {
    const out = applySpecChanges(spec, undefined);
    expect(out).toEqual(spec);
    expect(out).not.toBe(spec);
  });

  test("env: added and overridden (duplicates of an overridden name removed)", () => {
    const out = applySpecChanges(spec, { env: { MODE: "prod", NEW: "x=y" } });
    expect(out.process?.env).toEqual(["PATH=/bin", "MODE=prod", "NEW=x=y"]);
    expect(spec.process?.env).toEqual(["PATH=/bin", "MODE=dev", "MODE=dup"]);
  });

  test("env on a spec without a process", () => {
    expect(applySpecChanges({}, { env: { A: "1" } }).process?.env).toEqual(["A=1"]);
  });

  test("annotations: added and overridden", () => {
    expect(applySpecChanges(spec, { annotations: { a: "2", b: "3" } }).annotations).toEqual({ a: "2", b: "3" });
  });

  test("resources: merged per group, other resource fields kept", () => {
    const out = applySpecChanges(spec, { resources: { memory: { limit: 64 }, pids: { limit: 10 }, cpu: { quota: 50000, period: 100000 } } });
    expect(out.linux?.resources).toEqual({
      memory: { limit: 64, swap: 200 },
      devices: [{ allow: false, access: "rwm" }],
      pids: { limit: 10 },
      cpu: { quota: 50000, period: 100000 },
    });
    expect(spec.linux?.resources).toEqual({ memory: { limit: 100, swap: 200 }, devices: [{ allow: false, access: "rwm" }] });
  });

  test("mounts: removed by destination (trailing slashes ignored)", () => {
    const out = applySpecChanges(spec, { removeMounts: ["/var/run/docker.sock", "/data", "/not-there"] });
    expect(out.mounts?.map((m) => m.destination)).toEqual(["/proc"]);
  });
});

describe("mergeSpecChanges", () => {
  test("later wins per key; removed mounts accumulate", () => {
    const merged = mergeSpecChanges(
      { env: { A: "1", B: "1" }, resources: { memory: { limit: 1, swap: 2 } }, removeMounts: ["/a"] },
      { env: { B: "2" }, annotations: { x: "y" }, resources: { memory: { limit: 3 } }, removeMounts: ["/b", "/a"] },
    );
    expect(merged).toEqual({
      env: { A: "1", B: "2" },
      annotations: { x: "y" },
      resources: { memory: { limit: 3, swap: 2 } },
      removeMounts: ["/a", "/b"],
    });
  });
  test("applying merged changes equals applying them one after the other", () => {
    const a = { env: { MODE: "a" }, removeMounts: ["/proc"] };
    const b = { env: { MODE: "b", X: "1" }, resources: { pids: { limit: 5 } } };
    expect(applySpecChanges(spec, mergeSpecChanges(a, b))).toEqual(applySpecChanges(applySpecChanges(spec, a), b));
  });
});
