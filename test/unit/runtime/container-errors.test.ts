import { expect, test } from "bun:test";
import { Code, CryoError } from "../../../src/errors.ts";
import {
  assertValidContainerId,
  containerError,
  containerErrorCodes,
  containerErrorKindOf,
  isRuncShimFailure,
  isValidContainerId,
  lastRuncError,
  runcError,
  type ContainerErrorKind,
} from "../../../src/runtime/index.ts";

test("each container-level error has its code and a '<context>: <kind>' message", () => {
  const table: [ContainerErrorKind, Code, string][] = [
    ["already_exists", Code.ALREADY_EXISTS, "container c1: already exists"],
    ["invalid_id", Code.INVALID_ARGUMENT, 'container id "c1": invalid argument: must match [A-Za-z0-9_+,.-]+ and be a clean path segment'],
    ["does_not_exist", Code.NOT_FOUND, "container c1: not found"],
    ["paused", Code.FAILED_PRECONDITION, "container c1 is paused: failed precondition"],
    ["running", Code.FAILED_PRECONDITION, "container c1 is still running: failed precondition"],
    ["not_running", Code.FAILED_PRECONDITION, "container c1 is not running: failed precondition"],
    ["not_paused", Code.FAILED_PRECONDITION, "container c1 is not paused: failed precondition"],
  ];
  for (const [kind, code, message] of table) {
    const e = containerError(kind, "c1");
    expect(e).toBeInstanceOf(CryoError);
    expect(e.code).toBe(code as never);
    expect(containerErrorCodes[kind]).toBe(code as never);
    expect(e.message).toBe(message);
  }
});

test("runc 1.1's error texts map to container-level kinds", () => {
  const table: [string, ContainerErrorKind | undefined][] = [
    ["container does not exist", "does_not_exist"],
    ["runc create failed: container with given ID already exists", "already_exists"],
    ["runc create failed: invalid container ID format", "invalid_id"],
    ["container id cannot be empty", "invalid_id"],
    ["container not running", "not_running"],
    ["cannot exec in a stopped container", "not_running"],
    ["cannot start a container that has stopped", "not_running"],
    ["container not paused", "not_paused"],
    ["container paused", "paused"],
    ["cannot exec in a paused container (use --ignore-paused to override)", "paused"],
    ["container still running", "running"],
    ["cannot delete container c1 that is not stopped: running", "running"],
    ["cannot start an already running container", "running"],
    ["unable to apply cgroup configuration: permission denied", undefined],
  ];
  for (const [msg, kind] of table) expect([msg, containerErrorKindOf(msg)]).toEqual([msg, kind]);
});

test("runcError classifies and keeps runc's line", () => {
  const nf = runcError("kill", "c1", "container does not exist");
  expect(nf.code).toBe(Code.NOT_FOUND);
  expect(nf.message).toBe("runc kill c1: not found: container does not exist");
  expect(runcError("create", "c1", "runc create failed: container with given ID already exists").code).toBe(Code.ALREADY_EXISTS);
  expect(runcError("start", "c1", "cannot start a container in the paused state").code).toBe(Code.FAILED_PRECONDITION);
  expect(runcError("resume", "c1", "container not paused").code).toBe(Code.FAILED_PRECONDITION);
  const other = runcError("create", "c1", "runc create failed: unable to start container process: exec: \"nope\": not found in $PATH");
  expect(other.code).toBe(Code.UNKNOWN);
  // containerd's runc shim's words, as operators' alerts look for them.
  expect(other.message).toBe("OCI runtime create failed: runc create failed: unable to start container process: exec: \"nope\": not found in $PATH");
  expect(runcError("exec", "c1", "exec failed: unable to start container process: chdir to cwd").message).toBe("OCI runtime exec failed: exec failed: unable to start container process: chdir to cwd");
  expect(runcError("start", "c1", "cannot start a container in the paused state").message).toBe("OCI runtime start failed: failed precondition: cannot start a container in the paused state");
});

test("isRuncShimFailure knows runcError's words for the command, and nothing else", () => {
  expect(isRuncShimFailure("exec", runcError("exec", "c1", "exec failed: unable to start container process: chdir to cwd").message)).toBe(true);
  expect(isRuncShimFailure("exec", runcError("create", "c1", "runc create failed").message)).toBe(false);
  expect(isRuncShimFailure("exec", "fifo /x: invalid argument: /x is a regular file, not a FIFO")).toBe(false);
  expect(isRuncShimFailure("kill", runcError("kill", "c1", "container does not exist").message)).toBe(false);
});

test("lastRuncError takes the last error-level msg of a JSON log, skipping junk", () => {
  const log = [
    '{"level":"debug","msg":"nsexec started","time":"t"}',
    '{"level":"error","msg":"first","time":"t"}',
    "not json",
    '{"level":"warning","msg":"careful","time":"t"}',
    '{"level":"error","msg":"container not running","time":"t"}',
    '{"level":"info","msg":"bye","time":"t"}',
    '{"level":"error","msg":"torn',
  ].join("\n");
  expect(lastRuncError(log)).toBe("container not running");
  expect(lastRuncError('{"level":"info","msg":"x"}\n')).toBeUndefined();
  expect(lastRuncError("")).toBeUndefined();
});

test("container ids: runc's regex and clean path rule", () => {
  for (const ok of ["c1", "a.b", "a_b-c", "x+y", "a,b", "...a", "A9"]) expect([ok, isValidContainerId(ok)]).toEqual([ok, true]);
  for (const bad of ["", ".", "..", "a/b", "a b", "ä", "a:b", "/a"]) expect([bad, isValidContainerId(bad)]).toEqual([bad, false]);
  expect(() => assertValidContainerId("a/b")).toThrow("invalid argument");
});
