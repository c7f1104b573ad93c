import { afterEach, expect, test } from "bun:test";
import { existsSync, fstatSync, mkdirSync, mkdtempSync, openSync, readSync, rmSync, utimesSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { close, createConsoleSocket, listenUnixSocket, pipe, sendFd, sweepConsoleSockets } from "../../../src/sys/index.ts";
import { STALE_CONSOLE_MS } from "../../../src/sys/console-socket.ts";
import { Code, CryoError } from "../../../src/errors.ts";

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

function readAll(fd: number, max = 4096): string {
  const buf = Buffer.alloc(max);
  const n = readSync(fd, buf, 0, max, null);
  return buf.subarray(0, n).toString();
}

test("receives a descriptor sent by another process after it exited", async () => {
  const dir = mkdtempSync(join(tmpdir(), "cryo-sys-"));
  dirs.push(dir);
  const file = join(dir, "payload.txt");
  writeFileSync(file, "through SCM_RIGHTS\n");
  using sock = createConsoleSocket(join(dir, "console.sock"));
  const sender = Bun.spawn([process.execPath, join(import.meta.dir, "send-fd-fixture.ts"), sock.path, file, "/dev/pts/77"], {
    stderr: "inherit",
  });
  expect(await sender.exited).toBe(0);
  const got = await sock.receive();
  try {
    expect(got.name).toBe("/dev/pts/77");
    expect(readAll(got.fd)).toBe("through SCM_RIGHTS\n");
    expect(fstatSync(got.fd).ino).toBe(fstatSync(openSync(file, "r")).ino);
  } finally {
    close(got.fd);
  }
});

test("a pipe end sent in-process stays connected to the same pipe", async () => {
  using sock = createConsoleSocket();
  expect(sock.path.endsWith("pty.sock")).toBe(true);
  const [r, w] = pipe();
  try {
    sendFd(sock.path, r, "pipe");
    const got = await sock.receive();
    expect(got.fd).not.toBe(r);
    writeFileSync(w, "hello");
    expect(readAll(got.fd)).toBe("hello");
    close(got.fd);
  } finally {
    close(r);
    close(w);
  }
});

test("receive without a connection fails at once with FAILED_PRECONDITION, or after its timeout", async () => {
  using sock = createConsoleSocket();
  const err = await sock.receive().catch((e: unknown) => e);
  expect(err).toBeInstanceOf(CryoError);
  expect((err as CryoError).code).toBe(Code.FAILED_PRECONDITION);
  const late = sock.receive({ timeoutMs: 2000 });
  const [r, w] = pipe();
  sendFd(sock.path, w, "late");
  const got = await late;
  expect(got.name).toBe("late");
  close(got.fd);
  close(r);
  close(w);
});

test("dispose removes the socket and its temp dir", () => {
  const sock = createConsoleSocket();
  const path = sock.path;
  expect(existsSync(path)).toBe(true);
  sock[Symbol.dispose]();
  expect(existsSync(path)).toBe(false);
  expect(existsSync(join(path, ".."))).toBe(false);
});

test("sweepConsoleSockets removes the old console socket directories nothing listens in, and nothing else", () => {
  const tmp = mkdtempSync(join(tmpdir(), "cryo-pty-sweep-"));
  dirs.push(tmp);
  const later = Date.now() + STALE_CONSOLE_MS + 60_000;
  const future = new Date(later);
  // a SIGKILLed daemon's: the socket file stays, nothing listens on it
  mkdirSync(join(tmp, "cryo-pty-dead"));
  close(listenUnixSocket(join(tmp, "cryo-pty-dead", "pty.sock")));
  // one that never got its socket (the daemon killed between mkdtemp and bind)
  mkdirSync(join(tmp, "cryo-pty-empty"));
  // a console socket at work
  mkdirSync(join(tmp, "cryo-pty-live"));
  const live = createConsoleSocket(join(tmp, "cryo-pty-live", "pty.sock"));
  // dead, but young
  mkdirSync(join(tmp, "cryo-pty-young"));
  close(listenUnixSocket(join(tmp, "cryo-pty-young", "pty.sock")));
  utimesSync(join(tmp, "cryo-pty-young"), future, future);
  // not a console socket's
  mkdirSync(join(tmp, "other"));
  writeFileSync(join(tmp, "cryo-pty-file"), "");
  try {
    expect(sweepConsoleSockets(tmp, later).sort()).toEqual([join(tmp, "cryo-pty-dead"), join(tmp, "cryo-pty-empty")]);
    for (const kept of ["cryo-pty-live/pty.sock", "cryo-pty-young", "other", "cryo-pty-file"]) expect(existsSync(join(tmp, kept))).toBe(true);
    expect(sweepConsoleSockets(tmp, Date.now())).toEqual([]); // nothing old enough at the real time
    expect(sweepConsoleSockets(join(tmp, "missing"))).toEqual([]);
  } finally {
    live[Symbol.dispose]();
  }
});

test("a socket path that does not fit sockaddr_un is an invalid argument", () => {
  let err: unknown;
  try {
    createConsoleSocket(`/tmp/${"x".repeat(200)}`);
  } catch (e) {
    err = e;
  }
  expect((err as CryoError).code).toBe(Code.INVALID_ARGUMENT);
});

test("a socket path already in use is refused", () => {
  using a = createConsoleSocket();
  let err: unknown;
  try {
    createConsoleSocket(a.path);
  } catch (e) {
    err = e;
  }
  expect((err as CryoError).code).toBe(Code.ALREADY_EXISTS);
});
