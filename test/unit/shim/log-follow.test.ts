import { describe, expect, test } from "bun:test";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createLogFollower } from "../../../src/shim/log-follow.ts";

describe("createLogFollower: a shared daemon's log stays on a FIFO containerd reads", () => {
  test("the first container's bundle is kept while it lives; its deletion moves the log to another live one", () => {
    const moves: string[] = [];
    const f = createLogFollower("/b/a", (b) => (moves.push(b), true));
    f.created("a", "/b/a");
    f.created("b", "/b/b");
    f.created("c", "/b/c");
    expect(moves).toEqual([]);
    f.deleted("b"); // not the one written to
    expect(moves).toEqual([]);
    f.deleted("a");
    expect(moves).toEqual(["/b/c"]);
    expect(f.bundle).toBe("/b/c");
  });

  test("a FIFO that cannot be opened is skipped for the next live container", () => {
    const moves: string[] = [];
    const f = createLogFollower("/b/a", (b) => (moves.push(b), b !== "/b/b"));
    f.created("a", "/b/a");
    f.created("b", "/b/b");
    f.created("c", "/b/c");
    f.deleted("a");
    expect(moves).toEqual(["/b/b", "/b/c"]);
    expect(f.bundle).toBe("/b/c");
  });

  test("with no container left the log stays put; the next container created takes it", () => {
    const moves: string[] = [];
    const f = createLogFollower("/b/a", (b) => (moves.push(b), true));
    f.created("a", "/b/a");
    f.deleted("a");
    expect(moves).toEqual([]);
    f.created("d", "/b/d");
    expect(moves).toEqual(["/b/d"]);
    f.created("e", "/b/e");
    expect(moves).toEqual(["/b/d"]);
  });

  test("with no container left, a Create moves the log as it begins (what it logs reaches containerd), also one that fails", () => {
    const moves: string[] = [];
    const f = createLogFollower("/b/a", (b) => (moves.push(b), true));
    f.creating("/b/a");
    f.created("a", "/b/a");
    f.creating("/b/b"); // "a" lives: stays on its FIFO
    f.created("b", "/b/b");
    expect(moves).toEqual([]);
    f.deleted("a");
    f.deleted("b");
    expect(moves).toEqual(["/b/b"]);
    // Before, the log moved only once the Create had answered: a plugin's fail-open warning went to a FIFO nobody read.
    f.creating("/b/c");
    expect(moves).toEqual(["/b/b", "/b/c"]);
    // That Create failed (no `created`): the next one moves it again.
    f.creating("/b/d");
    f.created("d", "/b/d");
    expect(moves).toEqual(["/b/b", "/b/c", "/b/d"]);
  });
});

test("the daemon's log moves only to a FIFO: a bundle whose log is a host file (or a link to one) is skipped, the file untouched", () => {
  const dir = mkdtempSync(join(tmpdir(), "cryo-logfile-"));
  try {
    const host = join(dir, "host-file");
    writeFileSync(host, "ORIGINAL");
    mkdirSync(join(dir, "b1"));
    symlinkSync(host, join(dir, "b1", "log"));
    mkdirSync(join(dir, "b2"));
    writeFileSync(join(dir, "b2", "log"), "ORIGINAL");
    // In a process of its own: a move that happened would take this test's own stdout and stderr.
    const script = `const { moveStdioToBundleLog } = await import(${JSON.stringify(join(import.meta.dir, "../../../src/shim/log-follow.ts"))});
      const moved = [moveStdioToBundleLog(${JSON.stringify(join(dir, "b1"))}), moveStdioToBundleLog(${JSON.stringify(join(dir, "b2"))})];
      console.log("moved", JSON.stringify(moved));`;
    const r = Bun.spawnSync([process.execPath, "-e", script], { stdout: "pipe", stderr: "pipe" });
    expect(r.stdout.toString()).toContain("moved [false,false]");
    expect(readFileSync(host, "utf8")).toBe("ORIGINAL");
    expect(readFileSync(join(dir, "b2", "log"), "utf8")).toBe("ORIGINAL");
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
