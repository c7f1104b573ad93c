/**
 * Where the time of one checkpoint and one restore goes, through containerd with the cryo shim: runs
 * `ctr containers checkpoint --task` and `ctr containers restore --live` of memhog (default 16 MiB)
 * against a private containerd logging at debug, then prints the shim's and containerd's log lines of
 * those windows with their offset from the ctr command's start (the shim logs each call's duration,
 * the dump's phases and CRIU's statistics at debug). Prints numbers; asserts nothing.
 *
 *   bun bench/checkpoint-profile.ts [MiB] [--bin DIR] [--runtime io.containerd.runc.v2] [--annotation k=v] [--env K=V]...   (root)
 * --env sets the environment containerd (and so the shim) runs with, e.g. --env CRYO_CRIU=criu (the host's criu).
 */
import { mkdtempSync, rmSync } from "node:fs";
import { loadavg } from "node:os";
import { logWindow } from "./log-window.ts";
import { ensureTestImage, readCounter, startPrivateContainerd, testImage, uniqueId, waitFor } from "../test/harness/index.ts";

const args = process.argv.slice(2);
const opt = (name: string) => {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : undefined;
};
const mib = Number(args.find((a, i) => /^\d+$/.test(a) && !["--bin", "--runtime", "--annotation", "--env"].includes(args[i - 1] ?? "")) ?? 16);
const annotation = opt("--annotation");
const binDir = opt("--bin");
const runtime = opt("--runtime") ?? "io.containerd.cryo.v2";
// A page store of its own (cryo.checkpoint/local-pages), removed at the end.
const pageStore = mkdtempSync("/tmp/cryo-prof-pages-");
const extraEnv = Object.fromEntries(args.flatMap((a, i) => (args[i - 1] === "--env" ? [[a.slice(0, a.indexOf("=")), a.slice(a.indexOf("=") + 1)]] : [])));
const pc = await startPrivateContainerd({ namespace: uniqueId("ckptprof"), logLevel: "debug", env: { CRYO_PAGE_STORE: pageStore, ...extraEnv }, ...(binDir ? { binDir } : {}) });

const window = (from: Date, to: Date) => logWindow(pc.layout.log, from, to);

try {
  await ensureTestImage(pc);
  console.log(`# ${new Date().toISOString()} load ${loadavg().map((l) => l.toFixed(2)).join(" ")} runtime ${runtime} ${mib} MiB`);
  const id = uniqueId("prof");
  const ref = `localhost/bench/${id}:1`;
  await pc.ctrOk(["run", "-d", "--runtime", runtime, ...(annotation ? ["--annotation", annotation] : []), testImage, id, "/bin/memhog", String(mib), "/tmp/counter"], { timeoutMs: 120_000 });
  await waitFor(() => readCounter(pc, id), { timeoutMs: 120_000, what: `${id} filled` });
  let from = new Date();
  await pc.ctrOk(["containers", "checkpoint", "--task", id, ref], { timeoutMs: 600_000 });
  let to = new Date();
  console.log(`\n== checkpoint: ${to.getTime() - from.getTime()} ms`);
  for (const l of window(from, to)) console.log(l);
  await pc.ctr(["task", "kill", "-s", "KILL", id]);
  await waitFor(async () => !(await pc.ctrOk(["task", "ls"])).split("\n").some((l) => l.startsWith(`${id} `) && !l.includes("STOPPED")), { what: `${id} stopped` });
  await pc.ctr(["task", "rm", id]);
  await pc.ctrOk(["containers", "rm", id]);
  await Bun.sleep(3000); // let a warm helper (if any) start, as it would between calls
  from = new Date();
  await pc.ctrOk(["containers", "restore", "--live", id, ref], { timeoutMs: 600_000 });
  to = new Date();
  console.log(`\n== restore: ${to.getTime() - from.getTime()} ms`);
  for (const l of window(from, to)) console.log(l);
  await pc.ctr(["task", "kill", "-s", "KILL", id]);
} finally {
  await pc.stop();
  rmSync(pageStore, { recursive: true, force: true });
}
