// cryo.notify/socket: the annotation's checks, and runc's notify mount at restore.
import { afterAll, expect, test } from "bun:test";
import { mkdirSync, mkdtempSync, rmSync, statSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { runcContainerFrom } from "../../../src/checkpoint/runc-criu.ts";
import { Code } from "../../../src/errors.ts";
import { NOTIFY_ANNOTATION, parseNotifySocket, readBundleSpec } from "../../../src/shim/bundle-spec.ts";
import { forwardedNotify } from "../../../src/shim/notify-forward.ts";
import { confineToSpec } from "../../../src/shim/restore-spec.ts";
import { bindDatagram, close, receiveDatagrams, sendDatagram } from "../../../src/sys/index.ts";
import { errorOf } from "../../harness/error-of.ts";

const base = mkdtempSync(join(tmpdir(), "cryo-notify-"));
afterAll(() => rmSync(base, { recursive: true, force: true }));

test("the annotation names an absolute, normalised path that fits a unix socket's address", () => {
  expect(parseNotifySocket("/run/systemd/notify")).toBe("/run/systemd/notify");
  for (const bad of ["run/notify", "/run/../etc/x", "/run/./x", "/run//x", "/run/x/", "", "/a\0b"]) {
    const e = errorOf(() => parseNotifySocket(bad));
    expect(e.code).toBe(Code.INVALID_ARGUMENT);
    expect(e.message).toContain(`annotation ${NOTIFY_ANNOTATION}`);
  }
  const long = `/${"x".repeat(107)}`;
  expect(errorOf(() => parseNotifySocket(long)).message).toContain("is 108 bytes; a unix socket's path holds 107");
  expect(parseNotifySocket(long.slice(0, 107))).toHaveLength(107);
});

test("readBundleSpec returns the socket, and refuses a bad one at Create", () => {
  const bundle = (annotations: Record<string, string>) => {
    const dir = mkdtempSync(join(base, "b-"));
    writeFileSync(join(dir, "config.json"), JSON.stringify({ ociVersion: "1.0.2", annotations, linux: { namespaces: [{ type: "pid" }] } }));
    return dir;
  };
  expect(readBundleSpec(bundle({ [NOTIFY_ANNOTATION]: "/run/app.sock" }))).toEqual({ killAllOnExit: false, notifySocket: "/run/app.sock" });
  expect(readBundleSpec(bundle({}))).toEqual({ killAllOnExit: false });
  expect(errorOf(() => readBundleSpec(bundle({ [NOTIFY_ANNOTATION]: "relative" }))).code).toBe(Code.INVALID_ARGUMENT);
});

test("a misspelt cryo.notify/ key is refused at Create, naming the one key there is (it was ignored: READY=1 went nowhere)", () => {
  const dir = mkdtempSync(join(base, "b-"));
  writeFileSync(join(dir, "config.json"), JSON.stringify({ ociVersion: "1.0.2", annotations: { "cryo.notify/sock": "/run/app.sock" } }));
  const e = errorOf(() => readBundleSpec(dir));
  expect(e.code).toBe(Code.INVALID_ARGUMENT);
  expect(e.message).toBe("annotation cryo.notify/sock: invalid argument: unknown key; the only cryo.notify/ annotation is cryo.notify/socket");
});

test("at restore, runc's notify mount gets the new container's directory; without one asked, or anywhere else, it is refused as any bind the spec lacks", () => {
  const dumped = (source: string, destination = "/run/notify") =>
    runcContainerFrom({
      id: "c1",
      init_process_pid: 10,
      config: { rootfs: "/b/rootfs", mounts: [{ device: "bind", source, destination }], devices: [], namespaces: [{ type: "NEWNS", path: "" }] },
    });
  const spec = { mounts: [], linux: { namespaces: [{ type: "mount" }] } };
  const notifyDir = "/run/containerd/runc/ns/c2/notify";
  const c = confineToSpec(dumped("/run/containerd/runc/ns/c1/notify"), spec, "w", { notifyDir });
  expect(c.config.mounts[0]?.source).toBe(notifyDir);
  expect(errorOf(() => confineToSpec(dumped("/run/containerd/runc/ns/c1/notify"), spec, "w")).message).toContain("bind mount at /run/notify that the bundle's spec does not have");
  expect(errorOf(() => confineToSpec(dumped("/etc"), spec, "w", { notifyDir })).message).toContain("bind mount at /run/notify");
  expect(errorOf(() => confineToSpec(dumped("/x/notify", "/run/other"), spec, "w", { notifyDir })).message).toContain("bind mount at /run/other");
  // A spec that binds something at /run/notify itself: its source.
  const own = confineToSpec(dumped("/run/containerd/runc/ns/c1/notify"), { ...spec, mounts: [{ destination: "/run/notify", type: "bind", source: "/srv/n" }] }, "w", { notifyDir });
  expect(own.config.mounts[0]?.source).toBe("/srv/n");
});

test("what goes on to the host socket: the lines but the container's MAINPID, and the init's host pid after READY=1", () => {
  expect(forwardedNotify("READY=1", 4242)).toBe("READY=1\nMAINPID=4242\n");
  expect(forwardedNotify("READY=1\nMAINPID=1\nSTATUS=up\n", 4242)).toBe("READY=1\nSTATUS=up\nMAINPID=4242\n");
  expect(forwardedNotify("STATUS=working\nWATCHDOG=1", 4242)).toBe("STATUS=working\nWATCHDOG=1\n");
  expect(forwardedNotify("MAINPID=7\n", 4242)).toBe("");
  expect(forwardedNotify("", 4242)).toBe("");
});

test("datagram sockets: bound at a path longer than a socket address holds, world-writable; datagrams read back one by one", () => {
  const deep = join(base, "d".repeat(60), "e".repeat(60));
  mkdirSync(deep, { recursive: true });
  const path = join(deep, "notify.sock");
  expect(Buffer.byteLength(path)).toBeGreaterThan(107);
  const fd = bindDatagram(path);
  try {
    expect(statSync(path).isSocket()).toBe(true);
    expect(statSync(path).mode & 0o777).toBe(0o777);
    expect(receiveDatagrams(fd)).toEqual([]);
    // The sender side needs a short path: a link to the directory, as the container has its mount.
    const link = join(base, "l");
    symlinkSync(deep, link);
    sendDatagram(join(link, "notify.sock"), new TextEncoder().encode("READY=1"));
    sendDatagram(join(link, "notify.sock"), new TextEncoder().encode("STATUS=x"));
    expect(receiveDatagrams(fd).map((d) => new TextDecoder().decode(d))).toEqual(["READY=1", "STATUS=x"]);
    expect(() => sendDatagram(join(base, "nobody.sock"), new Uint8Array(1))).toThrow("sendto");
  } finally {
    close(fd);
  }
});

