/**
 * cryo vs containerd's runc shim, in one run against one private containerd: `ctr containers
 * checkpoint --task` and `ctr containers restore --live` of test/fixtures/memhog at 16, 256 and 1024
 * MiB, plain, with `cryo.checkpoint/compression=zstd`, with `cryo.checkpoint/lazy-pages=true` (restore
 * time = time to RUNNING), and with `cryo.checkpoint/local-pages=true` (page images kept in a page store,
 * a temp dir here, instead of containerd's tar; alone and with lazy pages), and with per-namespace grouping (variant
 * cryo-ns: `io.cryo.shim.grouping=per-namespace`, with another container of that grouping running all along, as on
 * a host that runs more than one container: the restore joins its shim daemon instead of starting one), and post-copy
 * (cryo-postcopy: lazy pages served by the frozen source's own CRIU page server; restore = time to RUNNING), the CRIU tar's size in the content store
 * (and whether its page images are .zst), restore verified by memhog itself (SIGUSR1 -> "ok"), as
 * cryo/runc ratios (medians over --rounds), with this machine's memory bandwidth as the physical limit.
 * Prints numbers; asserts nothing.
 *
 * --settle: `sync` before each timed checkpoint and restore, and the variants' order rotated every round.
 * At 256 MiB and above each step otherwise meets the disk writeback of the GiBs the steps before it wrote
 * (CRIU's images, containerd's content store and its extraction), which swings a 1 GiB restore by half
 * for every runtime; settled, each step pays only for its own writes, and no variant always runs first.
 *
 * --trace: containerd (and so the shims) log at debug, and each restore's lines from the shim (its phases' timings)
 * and containerd, and each checkpoint's (the shim's calls and timings, containerd's tar), are printed under its row,
 * with their offset from the step's start.
 *
 * --compressible: memhog fills its memory with its compressible pattern (a quarter hashed words, the rest runs of one
 * number; zstd level 1 makes about a quarter of it) instead of the default one, which does not compress (cryo-zstd
 * then leaves the page images plain: compression.ts samples each image first).
 *
 *   bun bench/checkpoint-compare.ts [MiB ...] [--rounds N] [--bin DIR] [--variants cryo,cryo-zstd,cryo-lazy,cryo-local,cryo-local-lazy,cryo-ns,cryo-postcopy] [--settle] [--compressible] [--trace]   (root; DIR holds containerd-shim-cryo-v2, default build/bin)
 */
import { mkdtempSync, readdirSync, rmSync } from "node:fs";
import { loadavg } from "node:os";
import { join } from "node:path";
import { CONTAINERD_EXTRACTION_NAME } from "../src/containerd/layout.ts";
import { readStats } from "../src/criu/stats.ts";
import { logWindow } from "./log-window.ts";
import { ensureTestImage, freePort, readContainerFile, readCounter, startPrivateContainerd, testImage, uniqueId, waitFor, type PrivateContainerd } from "../test/harness/index.ts";

const args = process.argv.slice(2);
const opt = (name: string) => {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : undefined;
};
const rounds = Number(opt("--rounds") ?? 1);
const binDir = opt("--bin");
const sizes = args.filter((a, i) => /^\d+$/.test(a) && !["--rounds", "--bin", "--variants"].includes(args[i - 1] ?? "")).map(Number);
if (sizes.length === 0) sizes.push(16, 256, 1024);

const PER_NAMESPACE = ["--annotation", "io.cryo.shim.grouping=per-namespace"];
const variants = [
  { name: "runc", runtime: "io.containerd.runc.v2", flags: [] as string[] },
  { name: "cryo", runtime: "io.containerd.cryo.v2", flags: [] as string[] },
  { name: "cryo-zstd", runtime: "io.containerd.cryo.v2", flags: ["--annotation", "cryo.checkpoint/compression=zstd"] },
  // Restore with lazy pages: `ctr containers restore --live` returns once the task is RUNNING, while the pages still stream in.
  { name: "cryo-lazy", runtime: "io.containerd.cryo.v2", flags: ["--annotation", "cryo.checkpoint/lazy-pages=true"] },
  // Page images kept in this host's page store (CRYO_PAGE_STORE, a temp dir here), not in containerd's tar.
  { name: "cryo-local", runtime: "io.containerd.cryo.v2", flags: ["--annotation", "cryo.checkpoint/local-pages=true"] },
  { name: "cryo-local-lazy", runtime: "io.containerd.cryo.v2", flags: ["--annotation", "cryo.checkpoint/local-pages=true", "--annotation", "cryo.checkpoint/lazy-pages=true"] },
  // One shim daemon for the namespace (docs/shim.md, grouping), kept up by a companion container (below).
  { name: "cryo-ns", runtime: "io.containerd.cryo.v2", flags: [...PER_NAMESPACE] },
  // Post-copy (lazy pages with a page server on 127.0.0.1): the checkpoint holds no pages, the source stays
  // (frozen) until the restore, which runs under a new name and fetches every page from it; the source then ends.
  // Restore time = time to RUNNING.
  { name: "cryo-postcopy", runtime: "io.containerd.cryo.v2", flags: ["--annotation", "cryo.checkpoint/lazy-pages=true"], postCopy: true },
] as { name: string; runtime: string; flags: string[]; postCopy?: boolean }[];
// --variants runc,cryo,...: only these (runc is always kept: the ratios need it).
const only = opt("--variants")?.split(",");
const settle = args.includes("--settle");
const pattern = args.includes("--compressible") ? ["compressible"] : [];
const trace = args.includes("--trace");
// The lines --trace prints: containerd's extraction and task calls, the shim's calls and restore timings.
const TRACED = /took|timings|restored|restore container|serving|\/tasks\/(create|start)|containers\/create/;
// And for each checkpoint: the shim's calls and timings, and when containerd begins its tar (the single walk diff)
// and writes the image's index after it.
const TRACED_CHECKPOINT = /took|timings|single walk|Write started.*index|\/tasks\/paused/;
if (only) variants.splice(0, variants.length, ...variants.filter((v) => v.name === "runc" || only.includes(v.name)));

/** Memory bandwidth: dd from /dev/zero to /dev/null (kernel copy to user) and a 1 GiB Buffer.copy (memcpy). */
function bandwidth(): { ddGiBs: number; memcpyGiBs: number } {
  const t0 = performance.now();
  const dd = Bun.spawnSync(["dd", "if=/dev/zero", "of=/dev/null", "bs=1M", "count=4096"], { stdio: ["ignore", "ignore", "ignore"] });
  const ddGiBs = dd.exitCode === 0 ? 4 / ((performance.now() - t0) / 1000) : NaN;
  const size = 1024 ** 3;
  const a = Buffer.alloc(size, 1);
  const b = Buffer.allocUnsafe(size);
  a.copy(b);
  const t1 = performance.now();
  for (let i = 0; i < 3; i++) a.copy(b);
  return { ddGiBs, memcpyGiBs: 3 / ((performance.now() - t1) / 1000) };
}

async function stopAndRemove(pc: PrivateContainerd, id: string): Promise<void> {
  await pc.ctr(["task", "kill", "-s", "KILL", id]);
  await waitFor(async () => !(await pc.ctrOk(["task", "ls"])).split("\n").some((l) => l.startsWith(`${id} `) && !l.includes("STOPPED")), { what: `${id} stopped` });
  await pc.ctr(["task", "rm", id]);
  await pc.ctrOk(["containers", "rm", id]);
}

/**
 * CRIU's own restore time (its stats' restore_time), where known: runc's from the stats-restore that CRIU wrote into
 * runc's work directory (containerd's runc shim gives it the task's directory under containerd's root), cryo's from
 * its shim's `timings` line (--trace). The rest of a restore is containerd's extraction and each shim's own work.
 */
async function criuRestoreMs(pc: PrivateContainerd, runtime: string, id: string, traced: string[]): Promise<number | undefined> {
  if (runtime === "io.containerd.runc.v2") {
    const us = (await readStats(join(pc.layout.root, "io.containerd.runtime.v2.task", pc.namespace, id)).catch(() => ({ restore: undefined }))).restore?.restoreTimeUs;
    return us === undefined ? undefined : us / 1000;
  }
  return tracedMs(traced, "criuRestoreUs");
}

/**
 * How long cryo's CRIU dump held the tree frozen (its stats' frozen_time: the dump itself), from its shim's `timings`
 * line (--trace). runc's is not known: its CRIU writes its stats into containerd's checkpoint directory, which
 * containerd removes when the request ends.
 */
function criuDumpMs(traced: string[]): number | undefined {
  return tracedMs(traced, "frozenUs");
}

/** The first `key=<microseconds>` field among the traced lines, in ms. */
function tracedMs(traced: string[], key: string): number | undefined {
  const us = traced.map((l) => new RegExp(`\\b${key}=(\\d+)`).exec(l)?.[1]).find((x) => x !== undefined);
  return us === undefined ? undefined : Number(us) / 1000;
}

/** The criu tar's size in the checkpoint image and whether it holds compressed page images. */
async function criuTar(pc: PrivateContainerd, ref: string): Promise<{ bytes: number; zst: boolean }> {
  const digest = (await pc.ctrOk(["images", "ls"])).split("\n").find((l) => l.startsWith(`${ref} `))!.split(/\s+/)[2]!;
  const index = JSON.parse(await pc.ctrOk(["content", "get", digest])) as { manifests: { mediaType: string; size: number; digest: string }[] };
  const tar = index.manifests.find((m) => m.mediaType.endsWith("criu.checkpoint.criu.tar"));
  if (!tar) return { bytes: 0, zst: false };
  const list = Bun.spawnSync(["sh", "-c", `ctr --address ${pc.address} -n ${pc.namespace} content get ${tar.digest} | tar -t`]);
  return { bytes: tar.size, zst: /pages-\d+\.img\.zst/.test(list.stdout.toString()) };
}

const ns = uniqueId("ckptcmp");
// The page store of the local-pages variants (same file system as containerd's extraction directory: hard links).
const pageStore = mkdtempSync("/tmp/cryo-bench-pages-");
const pc = await startPrivateContainerd({ namespace: ns, env: { CRYO_PAGE_STORE: pageStore }, ...(trace ? { logLevel: "debug" } : {}), ...(binDir ? { binDir } : {}) });
type Row = { variant: string; mib: number; round: number; checkpointMs: number; restoreMs: number; criuMs?: number; dumpMs?: number; tarBytes: number; zst: boolean; intact: string };
const rows: Row[] = [];
const companion = uniqueId("companion");
try {
  await ensureTestImage(pc);
  if (variants.some((v) => v.name === "cryo-ns")) {
    await pc.ctrOk(["run", "-d", "--runtime", "io.containerd.cryo.v2", ...PER_NAMESPACE, testImage, companion, "sleep", "86400"], { timeoutMs: 120_000 });
  }
  console.log(`# ${new Date().toISOString()} load ${loadavg().map((l) => l.toFixed(2)).join(" ")}${settle ? "; settled (sync before each timed step, order rotated)" : ""}${pattern.length > 0 ? "; memhog compressible" : ""}`);
  for (const mib of sizes) {
    for (let r = 0; r < rounds; r++) {
      const order = settle ? [...variants.slice(r % variants.length), ...variants.slice(0, r % variants.length)] : variants;
      for (const v of order) {
        const id = uniqueId(v.name.replace("-", ""));
        const ref = `localhost/bench/${id}:1`;
        const flags = v.postCopy ? [...v.flags, "--annotation", `cryo.checkpoint/page-server=127.0.0.1:${freePort()}`] : v.flags;
        await pc.ctrOk(["run", "-d", "--runtime", v.runtime, ...flags, testImage, id, "/bin/memhog", String(mib), "/tmp/counter", ...pattern], { timeoutMs: 120_000 });
        await waitFor(() => readCounter(pc, id), { timeoutMs: 120_000, what: `${id} filled` });
        if (settle) Bun.spawnSync(["sync"]);
        let t0 = performance.now();
        const checkpointFrom = new Date();
        await pc.ctrOk(["containers", "checkpoint", "--task", id, ref], { timeoutMs: 600_000 });
        const checkpointMs = performance.now() - t0;
        const tracedCheckpoint = trace ? logWindow(pc.layout.log, checkpointFrom, new Date(), TRACED_CHECKPOINT) : [];
        const tar = await criuTar(pc, ref);
        const dumpMs = criuDumpMs(tracedCheckpoint);
        // A post-copy source serves the pages until the restore has them: it is restored under another name.
        const restored = v.postCopy ? `${id}-r` : id;
        if (!v.postCopy) await stopAndRemove(pc, id);
        if (settle) Bun.spawnSync(["sync"]);
        t0 = performance.now();
        const restoreFrom = new Date();
        await pc.ctrOk(["containers", "restore", "--live", restored, ref], { timeoutMs: 600_000 });
        const restoreMs = performance.now() - t0;
        const traced = trace ? logWindow(pc.layout.log, restoreFrom, new Date(), TRACED) : [];
        const criuMs = await criuRestoreMs(pc, v.runtime, restored, traced);
        let sourceEndedMs: number | undefined;
        if (v.postCopy) {
          await waitFor(async () => (await pc.ctrOk(["task", "ls"])).split("\n").some((l) => l.startsWith(`${id} `) && l.includes("STOPPED")), { timeoutMs: 600_000, what: `${id} (the source) ended`, intervalMs: 20 });
          sourceEndedMs = performance.now() - t0; // every page sent: CRIU ended the source
          await stopAndRemove(pc, id);
        }
        await pc.ctrOk(["task", "kill", "-s", "USR1", restored]);
        const intact = await waitFor(() => readContainerFile(pc, restored, "/tmp/counter.verify"), { timeoutMs: 120_000, what: `${restored} verified` });
        await stopAndRemove(pc, restored);
        await pc.ctr(["images", "rm", "--sync", ref]);
        // containerd 1.6 extracts a checkpoint for restore into its XDG_RUNTIME_DIR (the private containerd's tmp)
        // and never removes it.
        for (const n of readdirSync(pc.layout.tmp)) if (CONTAINERD_EXTRACTION_NAME.test(n)) rmSync(join(pc.layout.tmp, n), { recursive: true, force: true });
        for (const n of readdirSync(pageStore)) rmSync(join(pageStore, n), { recursive: true, force: true });
        const row = { variant: v.name, mib, round: r, checkpointMs, restoreMs, criuMs, dumpMs, tarBytes: tar.bytes, zst: tar.zst, intact: intact.split(" ")[0] ?? "" };
        rows.push(row);
        console.log(
          `${v.name.padEnd(15)} ${String(mib).padStart(5)} MiB  checkpoint ${checkpointMs.toFixed(0).padStart(6)} ms${dumpMs !== undefined ? ` (CRIU ${dumpMs.toFixed(0)})` : ""}  restore ${restoreMs.toFixed(0).padStart(6)} ms${criuMs !== undefined ? ` (CRIU ${criuMs.toFixed(0)})` : ""}  criu tar ${(tar.bytes / 2 ** 20).toFixed(1).padStart(7)} MiB  pages .zst: ${tar.zst ? "yes" : "no"}  memory: ${row.intact}${sourceEndedMs !== undefined ? `  source ended (all pages sent) ${sourceEndedMs.toFixed(0)} ms after the restore began` : ""}`,
        );
        for (const l of [...tracedCheckpoint.map((l) => `checkpoint ${l}`), ...traced.map((l) => `restore    ${l}`)]) console.log(`    ${l.slice(0, 260)}`);
      }
    }
  }
} finally {
  if (variants.some((v) => v.name === "cryo-ns")) await stopAndRemove(pc, companion).catch(() => {});
  await pc.stop();
  rmSync(pageStore, { recursive: true, force: true });
}

const bw = bandwidth();
console.log(`\n# load ${loadavg().map((l) => l.toFixed(2)).join(" ")}; memory bandwidth: dd /dev/zero -> /dev/null 4 GiB ${bw.ddGiBs.toFixed(1)} GiB/s, Buffer.copy 1 GiB ${bw.memcpyGiBs.toFixed(1)} GiB/s`);
const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length === 0 ? NaN : s.length % 2 === 1 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};
// Two ratios each: of the medians, and the median of each round's own ratio (a variant against runc's run of
// the same round, minutes apart at most), which a drift of the machine over the whole run does not move.
// With --trace, a third restore ratio: of the restores' medians without CRIU's own restore time (the same CRIU binary
// version and images for both: what is left is containerd's extraction, the shim's start and the shim's own work).
console.log(`MiB   variant          checkpoint/runc  restore/runc  ${trace ? "without CRIU  " : ""}tar/runc   memcpy floor ms (size at memcpy speed)`);
console.log(`                       medians  rounds  medians rounds${trace ? "  medians     " : ""}`);
for (const mib of sizes) {
  const pick = (name: string, k: "checkpointMs" | "restoreMs" | "tarBytes") => median(rows.filter((r) => r.variant === name && r.mib === mib).map((r) => r[k]));
  const withoutCriu = (name: string) => median(rows.filter((r) => r.variant === name && r.mib === mib && r.criuMs !== undefined).map((r) => r.restoreMs - r.criuMs!));
  const perRound = (name: string, k: "checkpointMs" | "restoreMs") =>
    median(rows.filter((r) => r.variant === name && r.mib === mib).flatMap((r) => {
      const base = rows.find((b) => b.variant === "runc" && b.mib === mib && b.round === r.round);
      return base ? [r[k] / base[k]] : [];
    }));
  for (const v of variants.slice(1)) {
    const f = (x: number) => x.toFixed(2).padStart(6);
    console.log(
      `${String(mib).padStart(4)}   ${v.name.padEnd(15)} ${f(pick(v.name, "checkpointMs") / pick("runc", "checkpointMs"))}  ${f(perRound(v.name, "checkpointMs"))}  ${f(pick(v.name, "restoreMs") / pick("runc", "restoreMs"))} ${f(perRound(v.name, "restoreMs"))}${trace ? `  ${f(withoutCriu(v.name) / withoutCriu("runc"))}      ` : ""}    ${(pick(v.name, "tarBytes") / pick("runc", "tarBytes")).toFixed(2).padStart(6)}     ${((mib / 1024 / bw.memcpyGiBs) * 1000).toFixed(0)}`,
    );
  }
}
