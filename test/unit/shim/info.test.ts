/**
 * `-info` (src/shim/info.ts): the RuntimeInfo containerd 2.x reads. The OCI runtime is a fake one here (a
 * script named as BinaryName), so each answer of `<runtime> features` can be given.
 */
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { AnySchema } from "@bufbuild/protobuf/wkt";
import { afterAll, beforeAll, expect, test } from "bun:test";
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Code, CryoError } from "../../../src/errors.ts";
import { RuntimeInfoSchema } from "../../../src/gen/containerd/types/introspection_pb.ts";
import { OptionsSchema } from "../../../src/gen/containerd/runc/options/oci_pb.ts";
import { answerInfo, checkFeatures, FEATURES_TYPE_URL, RUNTIME_NAME } from "../../../src/shim/info.ts";

let dir: string;
const FEATURES = '{"ociVersionMin":"1.0.0","ociVersionMax":"1.2.0","namespaces":["user"],"linux":{"mountExtensions":{"idmap":{"enabled":true}}}}';

function fakeRuntime(name: string, body: string): string {
  const path = join(dir, name);
  writeFileSync(path, `#!/bin/sh\n${body}\n`);
  chmodSync(path, 0o755);
  return path;
}

function optionsFor(binaryName: string): Uint8Array {
  // As containerd sends them: the bare message name as the type URL.
  const value = toBinary(OptionsSchema, create(OptionsSchema, { binaryName }));
  return toBinary(AnySchema, create(AnySchema, { typeUrl: "containerd.runc.v1.Options", value }));
}

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), "cryo-info-"));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

test("features come from `<BinaryName> features`, byte for byte, with the options echoed", () => {
  const bin = fakeRuntime("ok-runc", `[ "$1" = features ] || exit 9; printf '%s' '${FEATURES}'`);
  const stdin = optionsFor(bin);
  const info = fromBinary(RuntimeInfoSchema, answerInfo(stdin));
  expect(info.name).toBe(RUNTIME_NAME);
  expect(info.version?.version).toBe("0.1.0");
  expect(info.features?.typeUrl).toBe(FEATURES_TYPE_URL);
  expect(new TextDecoder().decode(info.features?.value)).toBe(FEATURES);
  expect(info.options?.typeUrl).toBe("containerd.runc.v1.Options");
  expect(fromBinary(OptionsSchema, info.options?.value ?? new Uint8Array()).binaryName).toBe(bin);
});

test("no options: runc from PATH, no options echoed", () => {
  const info = fromBinary(RuntimeInfoSchema, answerInfo(new Uint8Array()));
  expect(info.options).toBeUndefined();
  const doc = JSON.parse(new TextDecoder().decode(info.features?.value));
  expect(typeof doc.ociVersionMin).toBe("string");
});

test("a runtime whose `features` fails: an answer without features, and a warning that says why", () => {
  const bin = fakeRuntime("old-runc", "echo 'unknown command features' >&2; exit 1");
  const warnings: string[] = [];
  const info = fromBinary(RuntimeInfoSchema, answerInfo(optionsFor(bin), (m) => warnings.push(m)));
  expect(info.features).toBeUndefined();
  expect(info.name).toBe(RUNTIME_NAME);
  expect(warnings).toHaveLength(1);
  expect(warnings[0]).toContain("exit status 1: unknown command features");
});

test("a runtime that is not there is an error", () => {
  let err: unknown;
  try {
    answerInfo(optionsFor(join(dir, "no-such-runc")));
  } catch (e) {
    err = e;
  }
  expect(err).toBeInstanceOf(CryoError);
  expect((err as CryoError).message).toContain("no-such-runc features");
});

test("features output that is not a features document is refused", () => {
  const bad = fakeRuntime("bad-runc", "echo not-json");
  expect(() => answerInfo(optionsFor(bad))).toThrow(/not JSON/);
  expect(() => checkFeatures(new TextEncoder().encode('{"ociVersionMin":"1.0.0"}'), "runc")).toThrow(/ociVersionMax/);
  expect(() => checkFeatures(new TextEncoder().encode("[]"), "runc")).toThrow(/features document/);
});

test("options of a type cryo does not know are INVALID_ARGUMENT", () => {
  const stdin = toBinary(AnySchema, create(AnySchema, { typeUrl: "example.com/Other", value: new Uint8Array([1]) }));
  let err: unknown;
  try {
    answerInfo(stdin);
  } catch (e) {
    err = e;
  }
  expect((err as CryoError).code).toBe(Code.INVALID_ARGUMENT);
});
