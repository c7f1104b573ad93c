// The runtime options' SystemdCgroup against the spec (bundle-spec.ts checkSystemdCgroup), before runc runs.
import { expect, test } from "bun:test";
import { Code, CryoError } from "../../../src/errors.ts";
import { checkSystemdCgroup } from "../../../src/shim/bundle-spec.ts";

const failure = (f: () => void): CryoError => {
  try {
    f();
  } catch (e) {
    return CryoError.from(e);
  }
  throw new Error("no error");
};

test("without SystemdCgroup nothing is asked of the path or the host", () => {
  expect(() => checkSystemdCgroup(false, "/a/b", () => false)).not.toThrow();
  expect(() => checkSystemdCgroup(false, "a:b", () => false)).not.toThrow();
});

test("with SystemdCgroup, a cgroupsPath that is not slice:prefix:name is INVALID_ARGUMENT naming it, before the host is asked", () => {
  for (const path of ["/k8s.io/abc", "a:b", "a:b:c:d"]) {
    const e = failure(() => checkSystemdCgroup(true, path, () => true));
    expect(e.code).toBe(Code.INVALID_ARGUMENT);
    expect(e.message).toContain(`cgroupsPath ${JSON.stringify(path)}`);
    expect(e.message).toContain("slice:prefix:name");
  }
  // runc's default (system.slice:runc:<id>) when the spec has none; a well-formed one passes on a systemd host.
  expect(() => checkSystemdCgroup(true, undefined, () => true)).not.toThrow();
  expect(() => checkSystemdCgroup(true, "", () => true)).not.toThrow();
  expect(() => checkSystemdCgroup(true, "system.slice:cryo:abc", () => true)).not.toThrow();
});

test("with SystemdCgroup on a host where systemd is not running: FAILED_PRECONDITION saying so", () => {
  const e = failure(() => checkSystemdCgroup(true, "system.slice:cryo:abc", () => false));
  expect(e.code).toBe(Code.FAILED_PRECONDITION);
  expect(e.message).toContain("runtime option SystemdCgroup");
  expect(e.message).toContain("systemd is not running on this host");
});
