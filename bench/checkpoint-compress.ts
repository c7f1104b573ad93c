// Benchmark: compressed checkpoints. For each size (MiB) and memory content, a static program fills
// that much memory, is dumped through cryo's libcriu helper, and its page images are compressed with
// compressImages (zstd CLI, -T0, level 1), then decompressed with decompressImages, then restored and
// verified. Also times Bun's built-in zstd on the same page image for comparison (sizes <= 256 MiB).
// Contents: "memhog" = test/fixtures/memhog's pattern (a multiplicative hash per word: incompressible),
// "random" = xorshift64* output, "text" = JSON-ish lines (compressible, like many real heaps).
// Run as root: node_modules/.bin/bun bench/checkpoint-compress.ts [sizes, default 16,256,1024] [contents, default memhog,random,text]
// compressImages runs with minSaving 0 here (every image compressed, as before the sampling), so that memory that does
// not compress is still measured.
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { readFile, writeFile } from "node:fs/promises";
import { loadavg } from "node:os";
import { join } from "node:path";
import { compressImages, decompressImages } from "../src/checkpoint/index.ts";
import { createCriu } from "../src/criu/index.ts";

const sizes = (process.argv[2] ?? "16,256,1024").split(",").map(Number);
const contents = (process.argv[3] ?? "memhog,random,text").split(",");
const dir = mkdtempSync("/tmp/cryo-bench-zstd-");
const criu = createCriu();

const HOG_C = `
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <unistd.h>
#include <sys/mman.h>
static uint64_t memhog(uint64_t i) { return (i + 1) * 0x9E3779B97F4A7C15ull ^ 0x6372796f6d656d68ull; }
static volatile sig_atomic_t check;
static void on_usr1(int s) { (void)s; check = 1; }
int main(int argc, char **argv) {
  size_t n = (size_t)atol(argv[1]) << 20; const char *kind = argv[2]; const char *status = argv[3];
  unsigned char *p = mmap(0, n, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  uint64_t *w = (uint64_t *)p; uint64_t x = 88172645463325252ull;
  if (!strcmp(kind, "memhog")) for (size_t i = 0; i < n / 8; i++) w[i] = memhog(i);
  else if (!strcmp(kind, "random")) for (size_t i = 0; i < n / 8; i++) { x ^= x >> 12; x ^= x << 25; x ^= x >> 27; w[i] = x * 2685821657736338717ull; }
  else for (size_t off = 0, i = 0; off < n; i++) { char l[96]; int k = snprintf(l, sizeof l, "{\\"id\\":%zu,\\"name\\":\\"user-%zu\\",\\"score\\":%zu}\\n", i, i * 2654435761u % 100000, i * 7919 % 1000); if (off + k > n) k = n - off; memcpy(p + off, l, k); off += k; }
  uint64_t sum = 0; for (size_t i = 0; i < n / 8; i++) sum += w[i] * (i | 1);
  signal(SIGUSR1, on_usr1);
  FILE *f = fopen(status, "w"); fprintf(f, "ready\\n"); fclose(f);
  for (;;) {
    if (check) { uint64_t s = 0; for (size_t i = 0; i < n / 8; i++) s += w[i] * (i | 1); f = fopen(status, "w"); fprintf(f, s == sum ? "intact\\n" : "CORRUPT\\n"); fclose(f); check = 0; }
    usleep(20000);
  }
}`;
writeFileSync(join(dir, "hog.c"), HOG_C);
const cc = Bun.spawnSync(["gcc", "-O2", "-static", "-o", join(dir, "hog"), join(dir, "hog.c")]);
if (cc.exitCode !== 0) throw new Error(cc.stderr.toString());

async function until(what: string, fn: () => boolean, ms = 120_000) {
  const deadline = Date.now() + ms;
  while (!fn()) {
    if (Date.now() > deadline) throw new Error(`timed out: ${what}`);
    await Bun.sleep(10);
  }
}
const text = (p: string) => {
  try {
    return readFileSync(p, "utf8").trim();
  } catch {
    return "";
  }
};
const mib = (b: number) => (b / 2 ** 20).toFixed(1);
const pagesFiles = (d: string) => readdirSync(d).filter((f) => /^pages-\d+\.img$/.test(f));

const pids: number[] = [];
try {
  console.log(`# ${new Date().toISOString()} load ${loadavg().map((l) => l.toFixed(2)).join(" ")}; zstd CLI -T0 -1 (cryo) vs Bun.zstdCompress level 1`);
  console.log("content  size_MiB  pages_MiB  zst_MiB  ratio  compress_ms  decompress_ms  compress_MiB/s  decompress_MiB/s  bun_compress_ms  bun_decompress_ms  restored");
  for (const kind of contents) {
    for (const size of sizes) {
      const status = join(dir, `${kind}-${size}.status`);
      const p = Bun.spawn(["setsid", join(dir, "hog"), String(size), kind, status], { stdio: ["ignore", "ignore", "inherit"] });
      pids.push(p.pid);
      await until("hog ready", () => text(status) === "ready");
      const images = join(dir, `${kind}-${size}`);
      mkdirSync(images);
      await criu.dump({ imagesDir: images, pid: p.pid, logLevel: 2 });
      await p.exited;
      const pagesBytes = pagesFiles(images).reduce((s, f) => s + statSync(join(images, f)).size, 0);

      let bunC = "-";
      let bunD = "-";
      if (size <= 256) {
        const f = join(images, pagesFiles(images)[0]!);
        const t0 = performance.now();
        const z = await Bun.zstdCompress(await readFile(f), { level: 1 });
        await writeFile(`${f}.bun`, z);
        bunC = (performance.now() - t0).toFixed(0);
        const t1 = performance.now();
        await writeFile(`${f}.bun.out`, await Bun.zstdDecompress(await readFile(`${f}.bun`)));
        bunD = (performance.now() - t1).toFixed(0);
        rmSync(`${f}.bun`);
        rmSync(`${f}.bun.out`);
      }

      const c = await compressImages(images, { level: 1, minSaving: 0 });
      const d = await decompressImages(images);
      const r = await criu.restore({ imagesDir: images, logLevel: 2 });
      pids.push(r.pid);
      writeFileSync(status, "");
      process.kill(r.pid, "SIGUSR1");
      await until("verification", () => text(status) !== "" && text(status) !== "ready");
      const verdict = text(status);
      process.kill(r.pid, "SIGKILL");
      console.log(
        [kind, size, mib(pagesBytes), mib(c.compressedBytes), (pagesBytes / c.compressedBytes).toFixed(2), c.durationMs.toFixed(0), d.durationMs.toFixed(0), (pagesBytes / 2 ** 20 / (c.durationMs / 1000)).toFixed(0), (pagesBytes / 2 ** 20 / (d.durationMs / 1000)).toFixed(0), bunC, bunD, verdict].join("  "),
      );
      rmSync(images, { recursive: true, force: true });
    }
  }
  console.log(`# done, load ${loadavg().map((l) => l.toFixed(2)).join(" ")}`);
} finally {
  for (const pid of pids) {
    try {
      process.kill(pid, "SIGKILL");
    } catch {
      // gone
    }
  }
  rmSync(dir, { recursive: true, force: true });
}
