/**
 * Checkpoint and restore through containerd with the cryo shim and with containerd's runc shim, in one
 * run against one private containerd: `ctr containers checkpoint --task` and `ctr containers restore
 * --live` wall time for memhog at 16, 256 and 1024 MiB, the CRIU tar's size, cryo/runc ratios, and this
 * machine's memory copy bandwidth as the physical limit. Variants: runc's shim, cryo, cryo with an
 * empty netns (runc's choice), cryo with zstd page images, cryo with lazy pages (restore = time to
 * RUNNING). memhog's pattern does not compress: zstd only costs time here. Prints numbers; asserts nothing.
 *
 *   bun bench/checkpoint.ts [MiB ...] [--rounds N]     (root; build/bin must hold the current shim)
 */
import { readdirSync, rmSync } from "node:fs";
import { join } from "node:path";
import { ensureTestImage, readCounter, startPrivateContainerd, testImage, uniqueId, waitFor } from "../test/harness/index.ts";

const args = process.argv.slice(2);
const roundsAt = args.indexOf("--rounds");
const rounds = roundsAt >= 0 ? Number(args[roundsAt + 1]) : 1;
const sizes = args.filter((a, i) => /^\d+$/.test(a) && (roundsAt < 0 || i !== roundsAt + 1)).map(Number);
if (sizes.length === 0) sizes.push(16, 256, 1024);
/** What is compared: runc's shim, cryo, and cryo with runc's empty network namespace (what keeping the netns costs). */
const variants = [
  { name: "runc", runtime: "io.containerd.runc.v2", flags: [] as string[] },
  { name: "cryo", runtime: "io.containerd.cryo.v2", flags: [] as string[] },
  { name: "cryo-empty-netns", runtime: "io.containerd.cryo.v2", flags: ["--annotation", "cryo.checkpoint/empty-ns=network"] },
  { name: "cryo-zstd", runtime: "io.containerd.cryo.v2", flags: ["--annotation", "cryo.checkpoint/compression=zstd"] },
  // restore = time to RUNNING: pages stream in afterwards
  { name: "cryo-lazy", runtime: "io.containerd.cryo.v2", flags: ["--annotation", "cryo.checkpoint/lazy-pages=true"] },
];

function memcpyBandwidthGiBs(): number {
  const size = 256 * 1024 * 1024;
  const a = Buffer.alloc(size, 1);
  const b = Buffer.alloc(size);
  a.copy(b); // warm
  const t0 = performance.now();
  for (let i = 0; i < 4; i++) a.copy(b);
  return (4 * size) / (1024 ** 3) / ((performance.now() - t0) / 1000);
}

const ns = uniqueId("benchckpt");
const pc = await startPrivateContainerd({ namespace: ns });
const before = new Set(readdirSync("/tmp").filter((n) => n.startsWith("ctrd-checkpoint")));
const rows: { runtime: string; mib: number; checkpointMs: number; restoreMs: number; tarBytes: number }[] = [];
try {
  await ensureTestImage(pc);
  for (const mib of sizes) {
    for (let r = 0; r < rounds; r++) {
      for (const { name: runtime, runtime: runtimeName, flags } of variants) {
        const id = uniqueId(runtime.slice(0, 4));
        const ref = `localhost/bench/${id}:1`;
        await pc.ctrOk(["run", "-d", "--runtime", runtimeName, ...flags, testImage, id, "/bin/memhog", String(mib), "/tmp/counter"], { timeoutMs: 120_000 });
        await waitFor(() => readCounter(pc, id), { timeoutMs: 120_000, what: `${id} filled` });
        let t0 = performance.now();
        await pc.ctrOk(["containers", "checkpoint", "--task", id, ref], { timeoutMs: 600_000 });
        const checkpointMs = performance.now() - t0;
        const digest = (await pc.ctrOk(["images", "ls"])).split("\n").find((l) => l.startsWith(`${ref} `))!.split(/\s+/)[2]!;
        const index = JSON.parse(await pc.ctrOk(["content", "get", digest])) as { manifests: { mediaType: string; size: number }[] };
        const tarBytes = index.manifests.find((m) => m.mediaType.endsWith("criu.checkpoint.criu.tar"))?.size ?? 0;
        await pc.ctr(["task", "kill", "-s", "KILL", id]);
        await waitFor(async () => (await pc.ctrOk(["task", "ls"])).split("\n").some((l) => l.startsWith(`${id} `) && l.includes("STOPPED")), { what: `${id} stopped` });
        await pc.ctrOk(["task", "rm", id]);
        await pc.ctrOk(["containers", "rm", id]);
        t0 = performance.now();
        await pc.ctrOk(["containers", "restore", "--live", id, ref], { timeoutMs: 600_000 });
        const restoreMs = performance.now() - t0;
        await waitFor(() => readCounter(pc, id), { what: `${id} restored` });
        await pc.ctr(["task", "kill", "-s", "KILL", id]);
        await waitFor(async () => (await pc.ctrOk(["task", "ls"])).split("\n").some((l) => l.startsWith(`${id} `) && l.includes("STOPPED")), { what: `${id} stopped` });
        await pc.ctrOk(["task", "rm", id]);
        await pc.ctrOk(["containers", "rm", id]);
        await pc.ctr(["images", "rm", "--sync", ref]);
        for (const n of readdirSync("/tmp")) if (n.startsWith("ctrd-checkpoint") && !before.has(n)) rmSync(join("/tmp", n), { recursive: true, force: true });
        rows.push({ runtime, mib, checkpointMs, restoreMs, tarBytes });
        console.log(`${runtime.padEnd(18)} ${String(mib).padStart(5)} MiB  checkpoint ${checkpointMs.toFixed(0).padStart(6)} ms  restore ${restoreMs.toFixed(0).padStart(6)} ms  criu tar ${(tarBytes / 1024 / 1024).toFixed(1)} MiB`);
      }
    }
  }
} finally {
  await pc.stop();
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? NaN;
console.log(`\nmemory copy bandwidth (Buffer.copy, 256 MiB x4): ${memcpyBandwidthGiBs().toFixed(1)} GiB/s`);
console.log("MiB   variant            checkpoint/runc   restore/runc   (medians)");
for (const mib of sizes) {
  const pick = (rt: string, k: "checkpointMs" | "restoreMs") => median(rows.filter((r) => r.runtime === rt && r.mib === mib).map((r) => r[k]));
  for (const v of variants.slice(1)) {
    const c = pick(v.name, "checkpointMs") / pick("runc", "checkpointMs");
    const rs = pick(v.name, "restoreMs") / pick("runc", "restoreMs");
    console.log(`${String(mib).padStart(4)}   ${v.name.padEnd(18)} ${c.toFixed(2).padStart(8)}          ${rs.toFixed(2).padStart(8)}`);
  }
}

