/**
 * How fast the cryo shim answers State and Pids (ttrpc, straight to the shim's socket) while it
 * checkpoints a memhog container of N MiB (default 1024) through `ctr task checkpoint`, against the
 * same calls with no checkpoint running. Prints numbers; asserts nothing.
 *
 *   bun bench/checkpoint-state.ts [MiB]     (root; build/bin must hold the current shim)
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { Task } from "../src/gen/containerd/runtime/task/v2/shim_pb.ts";
import { connect, createClient } from "../src/ttrpc/index.ts";
import { ensureTestImage, readCounter, startPrivateContainerd, testImage, uniqueId, waitFor } from "../test/harness/index.ts";

const mib = Number(process.argv[2] ?? 1024);
const ns = uniqueId("benchstate");
const pc = await startPrivateContainerd({ namespace: ns });

function summary(xs: number[]): string {
  const s = [...xs].sort((a, b) => a - b);
  const q = (p: number) => s[Math.min(s.length - 1, Math.floor(p * s.length))] ?? NaN;
  return `${s.length} calls, median ${q(0.5).toFixed(2)} ms, p99 ${q(0.99).toFixed(2)} ms, max ${(s[s.length - 1] ?? NaN).toFixed(2)} ms`;
}

try {
  await ensureTestImage(pc);
  const id = uniqueId("big");
  await pc.ctrOk(["run", "-d", "--runtime", "io.containerd.cryo.v2", testImage, id, "/bin/memhog", String(mib), "/tmp/counter"], { timeoutMs: 120_000 });
  await waitFor(() => readCounter(pc, id), { timeoutMs: 120_000, what: "memhog filled" });
  const address = readFileSync(join(pc.state, "io.containerd.runtime.v2.task", ns, id, "address"), "utf8").trim().replace(/^unix:\/\//, "");
  const client = await connect(address, { namespace: ns });
  const task = createClient(Task, client);
  const probe = async (times: { state: number[]; pids: number[] }, statuses: Set<number>) => {
    let t0 = performance.now();
    const st = await task.state({ id, execId: "" }, { timeoutMs: 10_000 });
    times.state.push(performance.now() - t0);
    statuses.add(st.status);
    t0 = performance.now();
    await task.pids({ id }, { timeoutMs: 10_000 });
    times.pids.push(performance.now() - t0);
  };

  const idle = { state: [] as number[], pids: [] as number[] };
  for (let i = 0; i < 200; i++) await probe(idle, new Set());

  const busy = { state: [] as number[], pids: [] as number[] };
  const statuses = new Set<number>();
  const started = performance.now();
  let done = false;
  const dump = pc.ctrOk(["task", "checkpoint", id], { timeoutMs: 600_000 }).finally(() => (done = true));
  while (!done) await probe(busy, statuses);
  const ref = (await dump).trim();
  const total = performance.now() - started;

  console.log(`memhog ${mib} MiB, ctr task checkpoint took ${total.toFixed(0)} ms`);
  console.log(`State, idle:            ${summary(idle.state)}`);
  console.log(`Pids,  idle:            ${summary(idle.pids)}`);
  console.log(`State, during the dump: ${summary(busy.state)} (statuses seen: ${[...statuses].join(",")}; 2 running, 4 paused)`);
  console.log(`Pids,  during the dump: ${summary(busy.pids)}`);
  client.close();
  await pc.ctr(["images", "rm", "--sync", ref]);
} finally {
  await pc.stop();
}
