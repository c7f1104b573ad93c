// mount(2)/umount2(2) through src/sys (root: the suite runs as root on this VM).
import { afterEach, expect, test } from "bun:test";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Code, CryoError } from "../../../src/errors.ts";
import { MNT_DETACH, MS_BIND, MS_PRIVATE, MS_RDONLY, MS_REC, MS_REMOUNT, mount, umount2 } from "../../../src/sys/index.ts";

const cleanups: (() => void)[] = [];
afterEach(() => {
  for (const c of cleanups.splice(0).reverse()) {
    try {
      c();
    } catch {
      // already undone
    }
  }
});

function mountinfo(target: string): string[] | undefined {
  const line = readFileSync("/proc/self/mountinfo", "utf8")
    .split("\n")
    .filter((l) => l.split(" ")[4] === target)
    .at(-1);
  return line?.split(" ");
}

function tempDir(): string {
  const d = mkdtempSync(join(tmpdir(), "cryo-mount-"));
  cleanups.push(() => rmSync(d, { recursive: true, force: true }));
  return d;
}

test("tmpfs mount, bind mount, read-only remount of the bind, private propagation, detach", () => {
  const d = tempDir();
  const a = join(d, "a");
  const b = join(d, "b");
  mkdirSync(a);
  mkdirSync(b);
  mount("tmpfs", a, "tmpfs", 0, "size=1m,mode=755");
  cleanups.push(() => umount2(a, MNT_DETACH));
  expect(mountinfo(a)?.[8]).toBe("tmpfs");
  writeFileSync(join(a, "f"), "hello");

  mount(a, b, null, MS_BIND | MS_REC);
  cleanups.push(() => umount2(b, MNT_DETACH));
  expect(readFileSync(join(b, "f"), "utf8")).toBe("hello");

  mount(null, b, null, MS_REMOUNT | MS_BIND | MS_RDONLY);
  expect(mountinfo(b)?.[5]?.split(",")).toContain("ro");
  expect(() => writeFileSync(join(b, "g"), "x")).toThrow(/EROFS|read-only/);
  writeFileSync(join(a, "g"), "x"); // the tmpfs itself stays writable

  mount(null, b, null, MS_PRIVATE);
  const fields = mountinfo(b) ?? [];
  const optional = fields.slice(6, fields.indexOf("-"));
  expect(optional.filter((f) => f.startsWith("shared:") || f.startsWith("master:"))).toEqual([]);

  umount2(b, MNT_DETACH);
  expect(mountinfo(b)).toBeUndefined();
  expect(existsSync(join(b, "f"))).toBe(false);
});

test("mount errors carry errno and a fitting code", () => {
  const d = tempDir();
  let err: unknown;
  try {
    mount(join(d, "missing-src"), join(d, "missing-dst"), null, MS_BIND);
  } catch (e) {
    err = e;
  }
  expect(err).toBeInstanceOf(CryoError);
  expect((err as CryoError).code).toBe(Code.NOT_FOUND);
  expect((err as CryoError).message).toContain("errno 2");

  let err2: unknown;
  try {
    umount2(d); // not a mount point
  } catch (e) {
    err2 = e;
  }
  expect((err2 as CryoError).code).toBe(Code.INVALID_ARGUMENT);
  expect((err2 as CryoError).message).toMatch(/^umount2\(.*\): .*\(errno 22\)/);
});
