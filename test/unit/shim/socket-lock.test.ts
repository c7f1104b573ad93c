/** The socket lock between `start`s and the daemon (socket-lock.ts): flock on a file, which a killed holder gives up. */
import { expect, test } from "bun:test";
import { existsSync, mkdirSync, mkdtempSync, rmSync, utimesSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { lockSocket, STALE_LOCK_MS } from "../../../src/shim/socket-lock.ts";

function tempDir(): string {
  return mkdtempSync(join(tmpdir(), "cryo-socket-lock-"));
}

test("a lock whose holder was SIGKILLed is free at once, and its release leaves no file", async () => {
  const dir = tempDir();
  const sock = join(dir, "s");
  await using holder = Bun.spawn([process.execPath, join(import.meta.dir, "socket-lock-fixture.ts"), sock], { stdout: "pipe", stderr: "inherit" });
  try {
    const reader = holder.stdout.getReader();
    const { value } = await reader.read();
    expect(new TextDecoder().decode(value)).toBe("held\n");
    // held by the other process: not taken here
    await expect(lockSocket(sock, 50)).rejects.toThrow(`shim socket lock ${sock}.lock: unavailable: held too long`);
    holder.kill("SIGKILL");
    await holder.exited;
    expect(existsSync(`${sock}.lock`)).toBe(true); // what the killed holder left
    // Before, a lock left by a killed holder was waited on until it was STALE_LOCK_MS (15 s) old.
    const release = await lockSocket(sock, 2_000);
    release();
    expect(existsSync(`${sock}.lock`)).toBe(false);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("two takers in one process: the second waits for the first's release", async () => {
  const dir = tempDir();
  const sock = join(dir, "s");
  try {
    const first = await lockSocket(sock);
    let second = false;
    const p = lockSocket(sock).then((u) => ((second = true), u));
    await Bun.sleep(20);
    expect(second).toBe(false);
    first();
    (await p)();
    expect(second).toBe(true);
    expect(existsSync(`${sock}.lock`)).toBe(false);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("a lock directory of an older build is waited on while fresh and removed once stale", async () => {
  const dir = tempDir();
  const sock = join(dir, "s");
  try {
    mkdirSync(`${sock}.lock`);
    await expect(lockSocket(sock, 30)).rejects.toThrow("held too long");
    const past = (Date.now() - STALE_LOCK_MS - 1000) / 1000;
    utimesSync(`${sock}.lock`, past, past);
    const release = await lockSocket(sock, 2_000);
    release();
    expect(existsSync(`${sock}.lock`)).toBe(false);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
