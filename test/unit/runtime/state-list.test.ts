import { afterEach, expect, test } from "bun:test";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Code, CryoError } from "../../../src/errors.ts";
import { readProcStat } from "../../../src/sys/index.ts";
import { labelsToAnnotations, listContainers, parseRuncState, readRuncState } from "../../../src/runtime/index.ts";

// A real runc 1.1.5 state.json (of a created container), with the bundle path made stable.
const fixture = readFileSync(join(import.meta.dir, "state-fixture.json"), "utf8");
const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});
function tempDir(): string {
  const d = mkdtempSync(join(tmpdir(), "cryo-state-"));
  dirs.push(d);
  return d;
}

test("parses runc 1.1's state.json: the fields cryo relies on", () => {
  const s = parseRuncState(fixture);
  expect(s.id).toBe("fixture1");
  expect(s.init_process_pid).toBeGreaterThan(0);
  expect(s.init_process_start).toBeGreaterThan(0);
  expect(s.created).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+Z$/);
  expect(s.config.rootfs).toBe("/run/bundles/fixture1/rootfs");
  expect(s.config.labels).toEqual(["org.example/team=cryo", "bundle=/run/bundles/fixture1"]);
  expect(s.config.cgroups?.path).toBe("/cryo-fixture");
  expect(s.config.namespaces.map((n) => n.type)).toEqual(["NEWPID", "NEWNET", "NEWIPC", "NEWUTS", "NEWNS"]);
  expect(s.config.mounts.find((m) => m.destination === "/proc")?.device).toBe("proc");
  expect(s.config.version).toBe("1.0.2-dev");
  expect(s.rootless).toBe(false);
  expect(s.cgroup_paths.freezer).toBe("/sys/fs/cgroup/freezer/cryo-fixture");
  expect(s.cgroup_paths[""]).toBe("/sys/fs/cgroup/unified/cryo-fixture");
  expect(Object.keys(s.namespace_paths).sort()).toContain("NEWNET");
  expect(s.external_descriptors).toEqual(["/dev/null", "/dev/null", "/dev/null"]);
  expect(s.intel_rdt_path).toBe("");
  // Fields cryo does not model are kept.
  expect((s.config as Record<string, unknown>).capabilities).toBeDefined();
});

test("malformed state is INVALID_ARGUMENT naming the field; a missing container is NOT_FOUND", () => {
  const broken = JSON.parse(fixture);
  delete broken.init_process_pid;
  let err: unknown;
  try {
    parseRuncState(JSON.stringify(broken), "x/state.json");
  } catch (e) {
    err = e;
  }
  expect((err as CryoError).code).toBe(Code.INVALID_ARGUMENT);
  expect((err as CryoError).message).toContain("init_process_pid");
  expect(() => parseRuncState("{", "x")).toThrow("not JSON");
  const root = tempDir();
  try {
    readRuncState(root, "nope");
  } catch (e) {
    err = e;
  }
  expect((err as CryoError).code).toBe(Code.NOT_FOUND);
  expect(() => readRuncState(root, "../etc")).toThrow("invalid argument");
});

test("labels split into bundle and annotations like runc's utils.Annotations", () => {
  expect(labelsToAnnotations(["bundle=/b", "a=1", "b=x=y", "junk"])).toEqual({ bundle: "/b", annotations: { a: "1", b: "x=y" } });
});

/** Writes a container dir whose init is `pid` (with its real or a wrong start time) and a freezer dir. */
function fakeContainer(root: string, id: string, opts: { pid: number; startOffset?: number; execFifo?: boolean; freezer?: [string, string]; labels?: string[] }) {
  const s = JSON.parse(fixture);
  const stat = readProcStat(opts.pid);
  s.id = id;
  s.init_process_pid = opts.pid;
  s.init_process_start = Number(stat?.startTime ?? 0n) + (opts.startOffset ?? 0);
  s.config.labels = opts.labels ?? [`bundle=/b/${id}`];
  const freezer = join(root, "..", `freezer-${id}`);
  mkdirSync(freezer, { recursive: true });
  writeFileSync(join(freezer, "freezer.state"), `${opts.freezer?.[0] ?? "THAWED"}\n`);
  writeFileSync(join(freezer, "freezer.self_freezing"), `${opts.freezer?.[1] ?? "0"}\n`);
  s.cgroup_paths = { freezer };
  mkdirSync(join(root, id), { recursive: true });
  writeFileSync(join(root, id, "state.json"), JSON.stringify(s));
  if (opts.execFifo) writeFileSync(join(root, id, "exec.fifo"), "");
}

test("listContainers derives created, running, paused, stopped as runc does", () => {
  const root = join(tempDir(), "root");
  fakeContainer(root, "a-running", { pid: process.pid, labels: ["bundle=/b/a", "team=cryo"] });
  fakeContainer(root, "b-created", { pid: process.pid, execFifo: true });
  fakeContainer(root, "c-paused", { pid: process.pid, freezer: ["FROZEN", "1"] });
  fakeContainer(root, "d-reused-pid", { pid: process.pid, startOffset: 1 });
  fakeContainer(root, "e-frozen-by-parent", { pid: process.pid, freezer: ["FROZEN", "0"] });
  mkdirSync(join(root, "f-no-state"));
  writeFileSync(join(root, "not-a-dir"), "");
  const rows = listContainers(root);
  expect(rows.map((r) => [r.id, r.status, r.pid])).toEqual([
    ["a-running", "running", process.pid],
    ["b-created", "created", process.pid],
    ["c-paused", "paused", process.pid],
    ["d-reused-pid", "stopped", 0],
    ["e-frozen-by-parent", "running", process.pid],
  ]);
  expect(rows[0]).toEqual({
    ociVersion: "1.0.2-dev",
    id: "a-running",
    pid: process.pid,
    status: "running",
    bundle: "/b/a",
    rootfs: "/run/bundles/fixture1/rootfs",
    created: JSON.parse(fixture).created,
    annotations: { team: "cryo" },
    owner: process.getuid?.() === 0 ? "root" : expect.any(String),
  });
  expect("annotations" in (rows[1] as object)).toBe(false);
  expect(listContainers(join(root, "missing"))).toEqual([]);
});
