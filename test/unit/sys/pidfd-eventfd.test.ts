import { afterEach, expect, test } from "bun:test";
import { closeSync, fstatSync, mkdtempSync, readSync, rmSync, statSync, writeFileSync, writeSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Code, CryoError } from "../../../src/errors.ts";
import { close, createEventFd, drainEventFd, isCloexec, pidfdGetfd, pidfdOpen, takeFdFromProcess } from "../../../src/sys/index.ts";

const cleanups: (() => void)[] = [];
afterEach(() => {
  for (const c of cleanups.splice(0).reverse()) c();
});

test("pidfd_getfd copies a descriptor another process opened", async () => {
  const d = mkdtempSync(join(tmpdir(), "cryo-pidfd-"));
  cleanups.push(() => rmSync(d, { recursive: true, force: true }));
  const file = join(d, "f");
  writeFileSync(file, "hello from fd 9");
  const child = Bun.spawn(["bash", "-c", `exec 9<"${file}"; echo ready; exec sleep 30`], { stdio: ["ignore", "pipe", "inherit"] });
  cleanups.push(() => child.kill("SIGKILL"));
  const reader = child.stdout.getReader();
  expect(new TextDecoder().decode((await reader.read()).value)).toBe("ready\n");

  const pidfd = pidfdOpen(child.pid);
  cleanups.push(() => close(pidfd));
  expect(isCloexec(pidfd)).toBe(true);
  const fd = pidfdGetfd(pidfd, 9);
  cleanups.push(() => closeSync(fd));
  expect(isCloexec(fd)).toBe(true);
  expect(fstatSync(fd).ino).toBe(statSync(file).ino);
  const buf = Buffer.alloc(64);
  expect(buf.toString("utf8", 0, readSync(fd, buf, 0, 64, 0))).toBe("hello from fd 9");

  const again = takeFdFromProcess(child.pid, 9);
  cleanups.push(() => closeSync(again));
  expect(fstatSync(again).ino).toBe(statSync(file).ino);

  let err: unknown;
  try {
    pidfdGetfd(pidfd, 77); // not open in the child
  } catch (e) {
    err = e;
  }
  expect((err as CryoError).code).toBe(Code.INVALID_ARGUMENT);
  expect((err as CryoError).message).toContain("errno 9");
});

test("pidfd_open of a process that is gone is NOT_FOUND (ESRCH)", async () => {
  const p = Bun.spawn(["true"]);
  await p.exited;
  let err: unknown;
  try {
    pidfdOpen(p.pid);
  } catch (e) {
    err = e;
  }
  expect(err).toBeInstanceOf(CryoError);
  expect((err as CryoError).code).toBe(Code.NOT_FOUND);
  expect((err as CryoError).message).toContain("errno 3");
});

test("eventfd counts writes; drain resets and returns 0n when nothing arrived", () => {
  const fd = createEventFd();
  cleanups.push(() => close(fd));
  expect(drainEventFd(fd)).toBe(0n);
  const one = Buffer.alloc(8);
  one.writeBigUInt64LE(2n);
  writeSync(fd, one);
  one.writeBigUInt64LE(3n);
  writeSync(fd, one);
  expect(drainEventFd(fd)).toBe(5n);
  expect(drainEventFd(fd)).toBe(0n);
});
