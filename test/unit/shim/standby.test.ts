import { expect, test } from "bun:test";
import { DEFAULT_STANDBY_MS, STANDBY_MS_ENV, standbyMs, standbyPath, standbyUse } from "../../../src/shim/standby.ts";

test("standbyMs: the default, a number of ms, 0 for off, the default for junk", () => {
  expect(standbyMs({})).toBe(DEFAULT_STANDBY_MS);
  expect(standbyMs({ [STANDBY_MS_ENV]: "1500" })).toBe(1500);
  expect(standbyMs({ [STANDBY_MS_ENV]: "0" })).toBe(0);
  expect(standbyMs({ [STANDBY_MS_ENV]: "-5" })).toBe(DEFAULT_STANDBY_MS);
  expect(standbyMs({ [STANDBY_MS_ENV]: "soon" })).toBe(DEFAULT_STANDBY_MS);
  expect(standbyMs({ [STANDBY_MS_ENV]: "99999999" })).toBe(3_600_000);
});

test("standbyPath: one per containerd, namespace, -debug and environment; per-daemon variables do not count", () => {
  const what = { grpcAddress: "/run/c/containerd.sock", ttrpcAddress: "/run/c/containerd.sock.ttrpc", namespace: "default", debug: false };
  const env = { PATH: "/usr/bin", CRYO_CONFIG: "/etc/cryo/a.toml" };
  const p = standbyPath("/run/cryo/s", what, env);
  expect(p).toMatch(/^\/run\/cryo\/s\/standby-[0-9a-f]{32}\.sock$/);
  expect(p.length).toBeLessThan(108); // a unix socket path
  expect(standbyPath("/run/cryo/s", what, { ...env })).toBe(p);
  expect(standbyPath("/run/cryo/s", what, { ...env, CRYO_SHIM_LINGER_MS: "3000", CRYO_SHIM_GROUP_KEY: "container/x" })).toBe(p);
  // PATH does not count (containerd's CRI adds :/opt/nri/bin after its first pod); the request brings it.
  expect(standbyPath("/run/cryo/s", what, { ...env, PATH: "/usr/bin:/opt/nri/bin" })).toBe(p);
  for (const other of [
    standbyPath("/run/cryo/s", { ...what, namespace: "k8s.io" }, env),
    standbyPath("/run/cryo/s", { ...what, grpcAddress: "/run/d/containerd.sock" }, env),
    standbyPath("/run/cryo/s", { ...what, debug: true }, env),
    standbyPath("/run/cryo/s", what, { ...env, CRYO_CONFIG: "/etc/cryo/b.toml" }),
    standbyPath("/run/cryo/t", what, env),
  ]) {
    expect(other).not.toBe(p);
  }
});

test("a standby request: the daemon's own variables only, and the socket argv names", async () => {
  const { checkStandbyRequest } = await import("../../../src/shim/standby-main.ts");
  const ok = {
    socket: "/run/cryo/s/abc",
    cwd: "/run/containerd/io.containerd.runtime.v2.task/default/c1",
    argv: ["-namespace", "default", "-id", "c1", "-address", "/run/containerd/containerd.sock", "-publish-binary", "/usr/bin/containerd", "-bundle", "/b", "-socket", "/run/cryo/s/abc"],
    env: { TTRPC_ADDRESS: "/run/containerd/containerd.sock.ttrpc", NAMESPACE: "default", PATH: "/usr/bin:/opt/nri/bin", CRYO_SHIM_GROUP_KEY: "container/c1" },
  };
  expect(checkStandbyRequest(ok)).toEqual(ok);
  expect(() => checkStandbyRequest({ ...ok, env: { ...ok.env, LD_PRELOAD: "/tmp/x.so" } })).toThrow("environment variables LD_PRELOAD are not a daemon's own");
  expect(() => checkStandbyRequest({ ...ok, socket: "/etc/other" })).toThrow("socket is not the -socket of argv");
  expect(() => checkStandbyRequest({ ...ok, cwd: "relative" })).toThrow();
  expect(() => checkStandbyRequest({ ...ok, argv: "x" })).toThrow();
});

test("standbyUse: a daemon takes the standby and launches the next, except per-namespace (no next) and in a shim cgroup (neither)", () => {
  expect(standbyUse({ key: "container/c1" })).toEqual({ take: true, launchNext: true });
  expect(standbyUse({ key: "pod/sandbox-1", shimCgroup: "" })).toEqual({ take: true, launchNext: true });
  expect(standbyUse({ key: "namespace/default" })).toEqual({ take: true, launchNext: false });
  expect(standbyUse({ key: "container/c1", shimCgroup: "/kubepods/shims" })).toEqual({ take: false, launchNext: false });
  expect(standbyUse({ key: "namespace/default", shimCgroup: "/shims" })).toEqual({ take: false, launchNext: false });
});
