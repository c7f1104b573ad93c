/**
 * Kernel state of a task that CRIU's restore loses: a personality the running task depends on (linux32) fails the
 * checkpoint with FAILED_PRECONDITION (src/checkpoint/personality-check.ts).
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { compileStaticC, ctrErrorHasCode, ensureTestImage, readContainerFile, removeContainer, startPrivateContainerd, taskStatus, testImage, uniqueId, waitFor, type PrivateContainerd } from "../harness/index.ts";

/** persona HEX: takes personality(0xHEX), writes /tmp/ready, and waits. */
const PERSONA_C = String.raw`
#include <stdio.h>
#include <stdlib.h>
#include <sys/personality.h>
#include <unistd.h>
int main(int argc, char **argv) {
  if (argc < 2 || personality(strtoul(argv[1], NULL, 16)) < 0) { perror("personality"); return 1; }
  FILE *f = fopen("/tmp/ready", "w");
  if (f) fputs("ready\n", f), fclose(f);
  for (;;) pause();
}
`;

const RUNTIME = "io.containerd.cryo.v2";
let pc: PrivateContainerd;
let dir: string;
let personaBin: string;

beforeAll(async () => {
  pc = await startPrivateContainerd({ namespace: uniqueId("kstate") });
  await ensureTestImage(pc);
  dir = mkdtempSync(join(tmpdir(), "cryo-kstate-"));
  personaBin = compileStaticC(dir, "persona", PERSONA_C);
}, 120_000);

afterAll(async () => {
  await pc?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
}, 120_000);

test("a process running under linux32 (PER_LINUX32), which a restore would lose, fails the checkpoint with FAILED_PRECONDITION naming it; it runs on, thawed", async () => {
  const id = uniqueId("persona");
  try {
    await pc.ctrOk(["run", "-d", "--runtime", RUNTIME, "--mount", `type=bind,src=${personaBin},dst=/bin/persona,options=rbind:ro`, testImage, id, "/bin/persona", "0008"], { timeoutMs: 60_000 });
    await waitFor(() => readContainerFile(pc, id, "/tmp/ready") === "ready", { what: "persona ready" });
    const r = await pc.ctr(["task", "checkpoint", id], { timeoutMs: 120_000 });
    expect(r.exitCode).not.toBe(0);
    expect(ctrErrorHasCode(r.stderr, "failed precondition")).toBe(true);
    expect(r.stderr).toMatch(/process 1 of the container runs with personality 0x00000008 \(PER_LINUX32\), which a restore would lose while the task depends on it/);
    expect(await taskStatus(pc, id)).toBe("RUNNING");
    expect(readFileSync(`/sys/fs/cgroup/freezer/${pc.namespace}/${id}/freezer.state`, "utf8").trim()).toBe("THAWED");
  } finally {
    await removeContainer(pc, id, { stopped: "not-running" });
  }
}, 60_000);
