/**
 * The CRIU client when CRIU dies and leaves a process behind that holds the helper's output open (seen: the child
 * CRIU forks to probe ptrace, sleeping until killed, reparented to the daemon; the restore waited for ever). A fake
 * helper stands in for the real one: it starts a "criu" that is killed at once (its zombie is what the watchdog
 * looks for) and a background process that keeps the helper's stdout.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { chmodSync, copyFileSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createCriu } from "../../../src/criu/client.ts";
import { Code, CryoError } from "../../../src/errors.ts";
import { waitFor } from "../../harness/wait-for.ts";

let dir: string;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), "cryo-leftover-"));
  copyFileSync("/bin/sleep", join(dir, "criu"));
  chmodSync(join(dir, "criu"), 0o755);
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** A sleep of this test's own length: its command line finds it. */
const seconds = `${600 + (process.pid % 1000)}.25`;
const leftovers = () =>
  readdirSync("/proc").filter((p) => {
    try {
      return /^\d+$/.test(p) && readFileSync(`/proc/${p}/cmdline`, "utf8") === `sleep\0${seconds}\0`;
    } catch {
      return false;
    }
  });

test("CRIU dead under its helper while a process it left holds the helper's output: the call fails naming CRIU's end, and that process is killed", async () => {
  const helper = join(dir, "helper.sh");
  // The background sleep keeps stdout (and stderr), no child of the helper (as CRIU's child, reparented when CRIU
  // died); "criu" is killed once the helper has become a sleep, which reaps no child: it stays a zombie.
  writeFileSync(helper, `#!/bin/sh\n(sleep ${seconds} &)\n"${dir}/criu" 600 &\nc=$!\n(sleep 0.3; kill -9 $c) &\nexec sleep 600\n`);
  chmodSync(helper, 0o755);
  const criu = createCriu({ helper: [helper], criuBinary: "/bin/true" });
  try {
    // Before: the call waited for the helper's output to end, for ever (here: until the signal, CANCELLED).
    const err = await criu.dump({ imagesDir: dir, pid: process.pid }, { signal: AbortSignal.timeout(20_000) }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(CryoError);
    expect((err as CryoError).code).toBe(Code.UNAVAILABLE);
    expect((err as CryoError).message).toMatch(/^criu dump pid \d+: unavailable: CRIU \(pid \d+\) killed by signal 9 before it answered$/);
    await waitFor(() => leftovers().length === 0 || undefined, { what: "the process left behind killed", timeoutMs: 10_000, intervalMs: 10 });
  } finally {
    for (const p of leftovers()) process.kill(Number(p), "SIGKILL");
  }
}, 30_000);
