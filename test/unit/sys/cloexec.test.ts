import { afterEach, expect, test } from "bun:test";
import { join } from "node:path";
import { clearCloexec, close, dup, isCloexec, pipe, setCloexec } from "../../../src/sys/index.ts";

const open: number[] = [];
afterEach(() => {
  for (const fd of open.splice(0)) close(fd);
});

function pipes(n: number): number[] {
  const out: number[] = [];
  for (let i = 0; i < n; i++) {
    const [r, w] = pipe();
    open.push(r, w);
    out.push(w);
  }
  return out;
}

test("setCloexec / clearCloexec / isCloexec toggle FD_CLOEXEC", () => {
  const [fd] = pipes(1);
  expect(isCloexec(fd!)).toBe(true); // pipe() sets it
  clearCloexec(fd!);
  expect(isCloexec(fd!)).toBe(false);
  setCloexec(fd!, true);
  expect(isCloexec(fd!)).toBe(true);
  const copy = dup(fd!);
  open.push(copy);
  expect(isCloexec(copy)).toBe(true);
});

test("clearCloexec on a closed descriptor fails with EBADF", () => {
  const [fd] = pipes(1);
  const copy = dup(fd!);
  close(copy);
  expect(() => clearCloexec(copy)).toThrow(/EBADF|Bad file descriptor/);
});

test("Bun.spawn hands a non-Bun child all 3 extra fds without close-on-exec", () => {
  const fds = pipes(3);
  const p = Bun.spawnSync(["bash", "-c", "for f in 3 4 5; do grep flags /proc/$$/fdinfo/$f | tr -d '\\t'; done"], { stdio: ["ignore", "pipe", "pipe", ...fds] });
  expect(p.exitCode).toBe(0);
  // flags 01 = O_WRONLY, no O_CLOEXEC (02000000)
  expect(p.stdout.toString().trim().split("\n")).toEqual(["flags:01", "flags:01", "flags:01"]);
});

test("a Bun child finds its fds 4 and 5 close-on-exec; after clearCloexec a program it execs keeps all 3", () => {
  const fds = pipes(3);
  const run = (mode: "keep" | "clear") => {
    const p = Bun.spawnSync([process.execPath, join(import.meta.dir, "cloexec-fixture.ts"), mode], { stdio: ["ignore", "pipe", "pipe", ...fds] });
    expect(p.stderr.toString()).toBe("");
    const [flags, survived] = p.stdout.toString().trim().split("\n");
    return { flags: JSON.parse(flags ?? "{}") as Record<string, string>, survived: (survived ?? "").trim() };
  };
  const keep = run("keep");
  expect(keep.flags).toEqual({ "3": "01", "4": "02000001", "5": "02000001" });
  expect(keep.survived).toBe("3");
  const clear = run("clear");
  expect(clear.flags).toEqual({ "3": "01", "4": "02000001", "5": "02000001" });
  expect(clear.survived).toBe("3 4 5");
});
