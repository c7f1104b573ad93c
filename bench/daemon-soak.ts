/**
 * A long-lived per-namespace daemon's resources over many container lifecycles (not a test): a private containerd, one
 * companion container that keeps the namespace's daemon up, then N rounds through `ctr`, in turn: `run --rm ... true`;
 * a detached run with an exec, ps, metrics, pause, resume, kill and removal; a detached run checkpointed with `task
 * checkpoint` (containerd's content store keeps those), killed and removed; and every fourth round instead one
 * checkpointed into an image, removed, restored from it and removed again. Every 30 rounds it prints the daemon's
 * RSS, anonymous memory, open descriptors, threads and children; growth that does not level off is a leak. Prints
 * numbers; asserts nothing.
 *
 *   bun bench/daemon-soak.ts [N]   (root; default 300)
 */
import { readdirSync, readFileSync } from "node:fs";
import { ensureTestImage, shimDaemonPids, startPrivateContainerd, testImage, uniqueId } from "../test/harness/index.ts";

const N = Number(process.argv[2] ?? 300);
const pc = await startPrivateContainerd({ namespace: uniqueId("soak") });
const ann = ["--annotation", "io.cryo.shim.grouping=per-namespace"];

function stat(pid: number): string {
  const s = readFileSync(`/proc/${pid}/status`, "utf8");
  const rss = /VmRSS:\s+(\d+)/.exec(s)?.[1];
  const fds = readdirSync(`/proc/${pid}/fd`).length;
  const threads = /Threads:\s+(\d+)/.exec(s)?.[1];
  const sm = readFileSync(`/proc/${pid}/smaps_rollup`, "utf8");
  const anon = /Anonymous:\s+(\d+)/.exec(sm)?.[1];
  return `rss ${rss} KB anon ${anon} KB fds ${fds} threads ${threads}`;
}
try {
  await ensureTestImage(pc);
  console.log(`# ${new Date().toISOString()} load ${readFileSync("/proc/loadavg", "utf8").split(" ").slice(0, 3).join(" ")}`);
  // A companion keeps the daemon up.
  await pc.ctrOk(["run", "-d", "--runtime", "io.containerd.cryo.v2", ...ann, testImage, "companion", "sleep", "100000"]);
  const pids = shimDaemonPids(pc.address);
  if (pids.length !== 1) throw new Error(`expected one daemon for the namespace, found ${pids.length}`);
  const d = pids[0]!;
  const removeTask = async (id: string) => {
    await pc.ctrOk(["task", "kill", "-s", "KILL", id]);
    for (let k = 0; k < 50 && (await pc.ctr(["task", "rm", id])).exitCode !== 0; k++) await Bun.sleep(50);
    await pc.ctrOk(["containers", "rm", id]);
  };
  for (let i = 0; i < N; i++) {
    const id = uniqueId("s");
    if (i % 3 === 0 && i % 4 !== 3) {
      await pc.ctrOk(["run", "--rm", "--runtime", "io.containerd.cryo.v2", ...ann, testImage, id, "true"]);
    } else if (i % 3 === 1 && i % 4 !== 3) {
      await pc.ctrOk(["run", "-d", "--runtime", "io.containerd.cryo.v2", ...ann, testImage, id, "sleep", "1000"]);
      await pc.ctrOk(["task", "exec", "--exec-id", "e1", id, "true"]);
      await pc.ctrOk(["task", "ps", id]);
      await pc.ctrOk(["task", "metrics", id]);
      await pc.ctrOk(["task", "pause", id]);
      await pc.ctrOk(["task", "resume", id]);
      await removeTask(id);
    } else if (i % 4 === 3) {
      // ...and, every fourth round, one checkpointed into an image, removed, restored from it, and removed again.
      const ref = `localhost/soak/${id}:1`;
      await pc.ctrOk(["run", "-d", "--runtime", "io.containerd.cryo.v2", ...ann, testImage, id, "sleep", "1000"]);
      await pc.ctrOk(["containers", "checkpoint", "--task", id, ref], { timeoutMs: 60_000 });
      await removeTask(id);
      await pc.ctrOk(["containers", "restore", "--live", id, ref], { timeoutMs: 60_000 });
      await removeTask(id);
      await pc.ctrOk(["images", "rm", "--sync", ref]);
    } else {
      await pc.ctrOk(["run", "-d", "--runtime", "io.containerd.cryo.v2", ...ann, testImage, id, "sleep", "1000"]);
      await pc.ctrOk(["task", "checkpoint", id], { timeoutMs: 60_000 });
      await removeTask(id);
    }
    if (i % 30 === 0 || i === N - 1) console.log(`round ${i}: ${stat(d)} children ${readFileSync(`/proc/${d}/task/${d}/children`, "utf8").trim().split(" ").filter(Boolean).length}`);
  }
  console.log(`files in /run/cryo/s at the end: ${readdirSync("/run/cryo/s").length}`);
} finally {
  await pc.ctr(["task", "kill", "-s", "KILL", "companion"]);
  await Bun.sleep(500);
  await pc.ctr(["task", "rm", "companion"]);
  await pc.ctr(["containers", "rm", "companion"]);
  await pc.stop();
}
