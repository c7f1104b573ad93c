// Splits the integration test files into shards that scripts/test.sh runs as parallel `bun test` processes.
//
//   bun scripts/test-shards.ts plan N          prints N lines, each the space-separated files of one shard
//   bun scripts/test-shards.ts record XML...   rewrites test/integration/durations.txt from JUnit reports
//
// Files are placed longest first onto the shard with the least work so far (LPT), by the seconds
// test/integration/durations.txt gives them (a file it does not list counts as DEFAULT_SECONDS). Files that
// share state only one of them may touch at a time are pinned to one shard (PINNED below).
import { readdirSync, readFileSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";

/** Weight of a file durations.txt does not list (a new test file): about the median file's. */
export const DEFAULT_SECONDS = 5;

/**
 * Groups of files that must run in the same shard, hence one after the other. These checkpoint containers on the
 * host's own network namespace (ctr run --net-host, a CRI pod with host networking): CRIU then locks the host's
 * network with its CRIU-named iptables chain or nftables table, and checkpoint-cancel and checkpoint-net check
 * that such a lock is gone from the host afterwards, which another file's dump at that moment would break.
 */
export const PINNED: readonly (readonly string[])[] = [
  ["checkpoint-cancel.test.ts", "checkpoint-net.test.ts", "cri-runtimeclass.test.ts"],
];

/** `seconds name` lines (# comments and blank lines ignored) to a map from file name to seconds. */
export function parseDurations(text: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const raw of text.split("\n")) {
    const line = raw.trim();
    if (line === "" || line.startsWith("#")) continue;
    const m = /^(\d+(?:\.\d+)?)\s+(\S+)$/.exec(line);
    if (!m) throw new Error(`durations: bad line ${JSON.stringify(raw)} (want "SECONDS FILE")`);
    out.set(m[2]!, Number(m[1]));
  }
  return out;
}

/**
 * Splits files (base names) into n shards. Each pinned group present in files is one unit, weighing the sum of its
 * members; units go longest first onto the lightest shard (ties: the lower index). Within a shard, files keep the
 * order of files. Shards may be empty when there are fewer units than n.
 */
export function planShards(files: readonly string[], n: number, seconds: ReadonlyMap<string, number>, pinned: readonly (readonly string[])[] = PINNED): string[][] {
  if (!Number.isInteger(n) || n < 1) throw new Error(`shards: ${n} is not a positive integer`);
  const weight = (f: string) => seconds.get(f) ?? DEFAULT_SECONDS;
  const left = new Set(files);
  const units: { files: string[]; seconds: number }[] = [];
  for (const group of pinned) {
    const members = group.filter((f) => left.has(f));
    if (members.length === 0) continue;
    for (const f of members) left.delete(f);
    units.push({ files: members, seconds: members.reduce((s, f) => s + weight(f), 0) });
  }
  for (const f of left) units.push({ files: [f], seconds: weight(f) });
  // Stable order for equal weights: by the first file's position in files.
  const pos = new Map(files.map((f, i) => [f, i]));
  units.sort((a, b) => b.seconds - a.seconds || pos.get(a.files[0]!)! - pos.get(b.files[0]!)!);
  const load = new Array<number>(n).fill(0);
  const member = new Map<string, number>();
  for (const u of units) {
    let best = 0;
    for (let i = 1; i < n; i++) if (load[i]! < load[best]!) best = i;
    load[best]! += u.seconds;
    for (const f of u.files) member.set(f, best);
  }
  const shards: string[][] = Array.from({ length: n }, () => []);
  for (const f of files) shards[member.get(f)!]!.push(f);
  return shards;
}

/** Seconds per test file from bun's JUnit report: each file's top-level <testsuite file="..." time="...">. */
export function durationsFromJunit(xml: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const m of xml.matchAll(/^  <testsuite name="[^"]*" file="([^"]+)"[^>]* time="([0-9.]+)"/gm)) {
    const name = m[1]!.split("/").pop()!;
    out.set(name, (out.get(name) ?? 0) + Number(m[2]));
  }
  return out;
}

function main(argv: string[]): void {
  const root = resolve(import.meta.dir, "..");
  const dir = join(root, "test/integration");
  const durationsFile = join(dir, "durations.txt");
  const [cmd, ...rest] = argv;
  if (cmd === "plan" && rest.length === 1) {
    const files = readdirSync(dir).filter((f) => f.endsWith(".test.ts")).sort();
    let seconds = new Map<string, number>();
    try {
      seconds = parseDurations(readFileSync(durationsFile, "utf8"));
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== "ENOENT") throw e;
    }
    for (const shard of planShards(files, Number(rest[0]), seconds)) console.log(shard.map((f) => `./test/integration/${f}`).join(" "));
    return;
  }
  if (cmd === "record" && rest.length > 0) {
    const all = new Map<string, number>();
    for (const xml of rest) for (const [f, s] of durationsFromJunit(readFileSync(xml, "utf8"))) all.set(f, s);
    const lines = [...all].sort((a, b) => b[1] - a[1]).map(([f, s]) => `${s.toFixed(1)} ${f}`);
    writeFileSync(durationsFile, `# seconds per integration test file, from one run's JUnit reports (scripts/test-shards.ts record)\n${lines.join("\n")}\n`);
    console.log(`test-shards: ${all.size} files recorded in ${durationsFile}`);
    return;
  }
  console.error("usage: test-shards.ts plan N | record JUNIT.xml...");
  process.exit(2);
}

if (import.meta.main) main(process.argv.slice(2));
