// Benchmark (not a test): what an Update's resources cost the shim daemon's event loop before anything is applied:
// the JSON parse with exact 64-bit integers (the task service) and the LinuxResources validation (the engine), for a
// CRI-sized Update, a big but real one, and payloads the size of the abusive ones seen (1.5 and 3.1 MB), and what the
// daemon does with each now; then the same for an exec's process spec (parse and runc's process schema). Median of
// --runs runs each (default 9), in ms.
//
// Run: node_modules/.bin/bun bench/update-validate.ts [--runs N]
import { create } from "@bufbuild/protobuf";
import { AnySchema } from "@bufbuild/protobuf/wkt";
import { parseLinuxResources } from "../src/cgroups/resources.ts";
import { MAX_UPDATE_RESOURCES_BYTES, updateResources } from "../src/shim/task-service.ts";
import { processSpecSchema } from "../src/runtime/runc.ts";
import { parseDetail } from "../src/runtime/schema-detail.ts";
import { parsePreciseJson } from "../src/sys/precise-json.ts";

const i = process.argv.indexOf("--runs");
const RUNS = i >= 0 ? Number(process.argv[i + 1]) : 9;

const device = (n: number) => ({ allow: n % 2 === 0, type: "c", major: 195, minor: n % 256, access: "rwm" });
const throttle = (n: number) => ({ major: 8, minor: n, rate: 104857600 });
/** What containerd's CRI sends for UpdateContainerResources: the spec's resources with the new limits. */
const cri = {
  devices: [{ allow: false, access: "rwm" }, ...Array.from({ length: 14 }, (_, n) => device(n))],
  memory: { limit: 536870912, swap: 536870912 },
  cpu: { shares: 512, quota: 50000, period: 100000, cpus: "0-1", mems: "0" },
  pids: { limit: 4096 },
  hugepageLimits: [{ pageSize: "2MB", limit: 0 }, { pageSize: "1GB", limit: 0 }],
  unified: { "memory.high": "500000000", "memory.oom.group": "1" },
};
/** Big and still real: 1000 device rules, 4 x 250 block devices throttled, every hugepage size, 64 unified keys. */
const big = {
  ...cri,
  devices: Array.from({ length: 1000 }, (_, n) => device(n)),
  blockIO: {
    weight: 500,
    throttleReadBpsDevice: Array.from({ length: 250 }, (_, n) => throttle(n)),
    throttleWriteBpsDevice: Array.from({ length: 250 }, (_, n) => throttle(n)),
    throttleReadIOPSDevice: Array.from({ length: 250 }, (_, n) => throttle(n)),
    throttleWriteIOPSDevice: Array.from({ length: 250 }, (_, n) => throttle(n)),
  },
  hugepageLimits: ["64KB", "2MB", "32MB", "1GB"].map((pageSize) => ({ pageSize, limit: 1073741824 })),
  unified: Object.fromEntries(Array.from({ length: 64 }, (_, n) => [`memory.key_${n}`, String(n)])),
};
const devicesOf = (bytes: number) => ({ ...cri, devices: Array.from({ length: Math.ceil(bytes / 60) }, (_, n) => device(n)) });

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
function time(fn: () => unknown): number {
  const xs: number[] = [];
  for (let r = 0; r < RUNS; r++) {
    const t = performance.now();
    try {
      fn();
    } catch {}
    xs.push(performance.now() - t);
  }
  return median(xs);
}

// parse and validate: each step alone; shim: what the daemon does now (size check, parse, validation), or its refusal.
console.log(`resources (bytes)                 parse ms  validate ms  total ms  shim ms (at most ${MAX_UPDATE_RESOURCES_BYTES} B)`);
for (const [name, value] of [["CRI update", cri], ["big, real", big], ["1.5 MB of devices", devicesOf(1.5e6)], ["3.1 MB of devices", devicesOf(3.1e6)]] as const) {
  const bytes = new TextEncoder().encode(JSON.stringify(value));
  const text = new TextDecoder().decode(bytes);
  const parse = time(() => parsePreciseJson(text));
  const parsed = parsePreciseJson(text);
  const validate = time(() => parseLinuxResources(parsed));
  const any = create(AnySchema, { typeUrl: "types.containerd.io/opencontainers/runtime-spec/1/LinuxResources", value: bytes });
  const bounded = time(() => parseLinuxResources(updateResources(any, "c1")));
  console.log(`${`${name} (${bytes.length})`.padEnd(34)}${parse.toFixed(2).padStart(8)}${validate.toFixed(2).padStart(13)}${(parse + validate).toFixed(2).padStart(10)}${bounded.toFixed(2).padStart(12)}`);
}

const envOf = (n: number) => ({ args: ["sh", "-c", "true"], cwd: "/", env: Array.from({ length: n }, (_, k) => `VAR_${k}=${"x".repeat(40)}`), user: { uid: 0, gid: 0 } });
console.log("\nexec process spec (bytes)         parse ms  validate ms");
for (const [name, value] of [["ExecSync (10 env)", envOf(10)], ["1000 env", envOf(1000)], ["3.7 MB of env", envOf(70_000)]] as const) {
  const text = JSON.stringify(value);
  const parse = time(() => parsePreciseJson(text));
  const parsed = parsePreciseJson(text);
  const validate = time(() => parseDetail(processSpecSchema(), parsed));
  console.log(`${`${name} (${text.length})`.padEnd(34)}${parse.toFixed(2).padStart(8)}${validate.toFixed(2).padStart(13)}`);
}
