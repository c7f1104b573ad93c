import { afterEach, expect, test } from "bun:test";
import { closeSync, constants, mkdtempSync, openSync, readFileSync, readSync, rmSync, writeFileSync, writeSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { close, dup, getWinsize, isNonblocking, openFifo, pipe, setNonblocking, setWinsize } from "../../../src/sys/index.ts";
import { Code, CryoError } from "../../../src/errors.ts";

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

function mkfifo(): string {
  const dir = mkdtempSync(join(tmpdir(), "cryo-fifo-"));
  dirs.push(dir);
  const path = join(dir, "f");
  expect(Bun.spawnSync(["mkfifo", path]).exitCode).toBe(0);
  return path;
}

test("setWinsize sets the size of a pty, getWinsize reads it", () => {
  const master = openSync("/dev/ptmx", constants.O_RDWR | constants.O_NOCTTY);
  try {
    setWinsize(master, 40, 132);
    expect(getWinsize(master)).toEqual({ rows: 40, cols: 132 });
    setWinsize(master, 24, 80);
    expect(getWinsize(master)).toEqual({ rows: 24, cols: 80 });
  } finally {
    closeSync(master);
  }
});

test("setWinsize on something that is not a terminal fails with INVALID_ARGUMENT (ENOTTY)", () => {
  const [r, w] = pipe();
  try {
    expect(() => setWinsize(r, 10, 10)).toThrow(CryoError);
    try {
      setWinsize(r, 10, 10);
    } catch (e) {
      expect((e as CryoError).code).toBe(Code.INVALID_ARGUMENT);
      expect((e as CryoError).message).toContain("TIOCSWINSZ");
    }
    expect(() => setWinsize(r, -1, 70000)).toThrow(CryoError);
  } finally {
    close(r);
    close(w);
  }
});

test("openFifo opens the read side without a writer, and the result blocks again", () => {
  const path = mkfifo();
  const r = openFifo(path, "r");
  expect(isNonblocking(r)).toBe(false);
  const w = openFifo(path, "w");
  writeSync(w, "data");
  const buf = Buffer.alloc(16);
  expect(readSync(r, buf, 0, 16, null)).toBe(4);
  expect(buf.subarray(0, 4).toString()).toBe("data");
  close(w);
  close(r);
});

test("openFifo of a path too long, or below a file, is a classified error naming the FIFO, not UNKNOWN", () => {
  // Found by bench/ttrpc-fuzz.ts: a Create whose stdout was a 6000-character path answered UNKNOWN "open fifo ...: ENAMETOOLONG".
  const long = `/tmp/${"d/".repeat(3000)}x`;
  const e = CryoError.from((() => { try { openFifo(long, "r"); } catch (err) { return err; } })());
  expect(e.code).toBe(Code.INVALID_ARGUMENT);
  expect(e.message).toBe(`fifo ${long}: invalid argument: the path (6006 characters) or one of its names is too long (Linux allows 4095 and 255)`);
  const name = `/tmp/${"n".repeat(300)}`;
  expect(CryoError.from((() => { try { openFifo(name, "w"); } catch (err) { return err; } })()).code).toBe(Code.INVALID_ARGUMENT);
  const dir = mkdtempSync(join(tmpdir(), "cryo-fifo-"));
  dirs.push(dir);
  writeFileSync(join(dir, "file"), "");
  const below = CryoError.from((() => { try { openFifo(join(dir, "file", "x"), "r"); } catch (err) { return err; } })());
  expect([below.code, below.message]).toEqual([Code.FAILED_PRECONDITION, `fifo ${join(dir, "file", "x")}: failed precondition: ${join(dir, "file")} is a file, not a directory`]);
});

test("openFifo write side without a reader fails instead of blocking; rw never blocks", () => {
  const path = mkfifo();
  expect(() => openFifo(path, "w")).toThrow(/ENXIO/);
  try {
    openFifo(path, "w");
  } catch (e) {
    expect((e as CryoError).code).toBe(Code.UNAVAILABLE);
  }
  expect(() => openFifo(`${path}-missing`, "r")).toThrow(/not found/);
  const rw = openFifo(path, "rw", { nonblock: true });
  expect(isNonblocking(rw)).toBe(true);
  close(rw);
});

test("openFifo refuses what is not a FIFO (a host file, a directory, a device), as containerd's fifo package does", () => {
  const dir = mkdtempSync(join(tmpdir(), "cryo-notfifo-"));
  dirs.push(dir);
  const file = join(dir, "file");
  writeFileSync(file, "ORIGINAL");
  for (const mode of ["r", "w", "rw"] as const) {
    let err: CryoError | undefined;
    try {
      close(openFifo(file, mode));
    } catch (e) {
      err = e as CryoError;
    }
    expect(err?.code).toBe(Code.INVALID_ARGUMENT);
    expect(err?.message).toBe(`fifo ${file}: invalid argument: ${file} is a regular file, not a FIFO`);
  }
  expect(readFileSync(file, "utf8")).toBe("ORIGINAL");
  expect(() => openFifo(dir, "r")).toThrow(`${dir} is a directory, not a FIFO`);
  expect(() => openFifo("/dev/null", "rw")).toThrow("/dev/null is a device, not a FIFO");
});

test("setNonblocking, dup and close", () => {
  const [r, w] = pipe();
  setNonblocking(r, true);
  expect(isNonblocking(r)).toBe(true);
  setNonblocking(r, false);
  expect(isNonblocking(r)).toBe(false);
  const w2 = dup(w);
  expect(w2).not.toBe(w);
  writeSync(w2, "x");
  close(w2);
  close(w2); // closing twice is tolerated (EBADF ignored)
  const buf = Buffer.alloc(1);
  expect(readSync(r, buf, 0, 1, null)).toBe(1);
  close(r);
  close(w);
});
