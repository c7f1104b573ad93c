/**
 * `cryo list` against real runc containers: a private containerd runs containers with cryo's shim
 * and runc's shim (both under the runc root /run/containerd/runc/<ns>); cryo's rows must equal
 * what `runc --root ... list --format json` prints for them, paused included.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { chmodSync, copyFileSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { ensureTestImage, startPrivateContainerd, testImage, uniqueId, waitFor, type PrivateContainerd } from "../harness/index.ts";

const RUNC_ROOT = "/run/containerd/runc";
const bun = process.execPath;
const main = resolve(import.meta.dir, "../../src/cli/main.ts");
let pc: PrivateContainerd;
let ns: string;
const cryoId = uniqueId("lc");
const runcId = uniqueId("lr");

async function run(argv: string[]) {
  const proc = Bun.spawn(argv, { stdout: "pipe", stderr: "pipe" });
  const [stdout, stderr, exitCode] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited]);
  return { stdout, stderr, exitCode };
}

type Row = { id: string; status: string; namespace?: string; [k: string]: unknown };

async function cryoList(...args: string[]): Promise<Row[]> {
  const r = await run([bun, main, "list", "--format", "json", ...args]);
  expect(r.stderr).toBe("");
  expect(r.exitCode).toBe(0);
  return JSON.parse(r.stdout) as Row[];
}

async function runcList(root: string): Promise<Row[]> {
  const r = await run(["runc", "--root", root, "list", "--format", "json"]);
  expect(r.exitCode).toBe(0);
  return (JSON.parse(r.stdout) as Row[] | null) ?? [];
}

const mine = (rows: Row[]) => rows.filter((r) => r.id === cryoId || r.id === runcId).sort((a, b) => a.id.localeCompare(b.id));

beforeAll(async () => {
  ns = uniqueId("list");
  pc = await startPrivateContainerd({ namespace: ns });
  await ensureTestImage(pc);
  await pc.ctrOk(["run", "-d", "--runtime", "io.containerd.cryo.v2", testImage, cryoId, "sleep", "600"], { timeoutMs: 60_000 });
  await pc.ctrOk(["run", "-d", "--runtime", "io.containerd.runc.v2", testImage, runcId, "sleep", "600"], { timeoutMs: 60_000 });
}, 120_000);

afterAll(async () => {
  await pc?.stop();
}, 120_000);

test("with no flags every namespace is listed, rows exactly as runc list prints them", async () => {
  const ours = mine(await cryoList());
  expect(ours.map((r) => [r.id, r.namespace])).toEqual([cryoId, runcId].sort().map((id) => [id, ns]));
  expect(ours.map(({ namespace: _ns, ...row }) => row)).toEqual(mine(await runcList(`${RUNC_ROOT}/${ns}`)));
  const cryoRow = ours.find((r) => r.id === cryoId)!;
  expect(cryoRow).toMatchObject({ status: "running", owner: "root", bundle: `${pc.state}/io.containerd.runtime.v2.task/${ns}/${cryoId}` });
  expect(cryoRow.pid).toBeGreaterThan(0);
});

test("--root names one runc root (both shims keep <base>/<ns>); rows equal runc's", async () => {
  const ours = mine(await cryoList("--root", `${RUNC_ROOT}/${ns}`));
  expect(ours.map((r) => r.id)).toEqual([cryoId, runcId].sort());
  expect(ours).toEqual(mine(await runcList(`${RUNC_ROOT}/${ns}`)));
});

test("--namespace shows both shims' containers of the namespace, --all-namespaces tags them", async () => {
  expect((await cryoList("--namespace", ns)).map((r) => r.id).sort()).toEqual([cryoId, runcId].sort());
  const all = mine(await cryoList("--all-namespaces"));
  expect(all.map((r) => [r.id, r.namespace])).toEqual([cryoId, runcId].sort().map((id) => [id, ns]));
});

test("a paused container is paused in both, and the table has runc's columns", async () => {
  await pc.ctrOk(["task", "pause", cryoId]);
  try {
    const ours = await waitFor(async () => mine(await cryoList("--root", `${RUNC_ROOT}/${ns}`)).find((r) => r.status === "paused"), { what: "paused row" });
    expect([ours]).toEqual(mine(await runcList(`${RUNC_ROOT}/${ns}`)).filter((r) => r.id === cryoId));
    const table = await run([bun, main, "list", "--root", `${RUNC_ROOT}/${ns}`]);
    expect(table.stdout.split("\n")[0]).toMatch(/^ID +PID +STATUS +BUNDLE +CREATED +OWNER$/);
    expect(table.stdout).toMatch(new RegExp(`^${cryoId} +\\d+ +paused +`, "m"));
  } finally {
    await pc.ctrOk(["task", "resume", cryoId]);
  }
});

test("a killed container is stopped with pid 0, as runc says", async () => {
  await pc.ctrOk(["task", "kill", "-s", "KILL", runcId]);
  const row = await waitFor(async () => mine(await cryoList("--root", `${RUNC_ROOT}/${ns}`)).find((r) => r.status === "stopped"), { what: "stopped row" });
  expect(row.pid).toBe(0);
  expect([row]).toEqual(mine(await runcList(`${RUNC_ROOT}/${ns}`)).filter((r) => r.id === runcId));
});

test("a reader that goes away ends the output quietly: no stack trace, the command's exit code", async () => {
  // `true` exits before cryo has started, so cryo's first write meets a pipe without a reader (EPIPE).
  const r = await run(["bash", "-c", `'${bun}' '${main}' list -A | true; echo "status=\${PIPESTATUS[0]}"`]);
  expect(r.stderr).toBe("");
  expect(r.stdout).toBe("status=0\n");
});

test("a user who may not read the path a command names: permission denied naming the uid, exit 1 (list and pages listed nothing; inspect and config check said \"not found\" or exit 2)", async () => {
  const parent = mkdtempSync(join(tmpdir(), "cryo-cli-"));
  try {
    chmodSync(parent, 0o711);
    // The built cryo, where nobody reaches it (a clone may sit in a directory only root can read).
    const asNobody = join(parent, "cryo");
    copyFileSync(resolve(import.meta.dir, "../../build/bin/cryo"), asNobody);
    chmodSync(asNobody, 0o755);
    const closed = join(parent, "closed");
    mkdirSync(join(closed, "store", "e1"), { recursive: true, mode: 0o700 });
    chmodSync(closed, 0o700);
    writeFileSync(join(closed, "store", "e1", "pages-1.img"), "x");
    // Readable directory, unreadable files: a config and a plugin input only root may read.
    const open = join(parent, "open");
    mkdirSync(open, { mode: 0o755 });
    chmodSync(open, 0o755);
    writeFileSync(join(open, "config.toml"), "", { mode: 0o600 });
    writeFileSync(join(open, "in.json"), "{}", { mode: 0o600 });
    const uid = Number(Bun.spawnSync(["id", "-u", "nobody"]).stdout.toString().trim());
    const nobody = (...args: string[]) => run(["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", asNobody, ...args]);
    const cases: [string[], string][] = [
      // Before: `cryo list: EACCES: permission denied, scandir '<closed>'`.
      [["list", "--root", closed], `cryo list: runc root ${closed}: permission denied: uid ${uid} may not list ${closed}`],
      [["list", "--base", closed, "-A"], `cryo list: runc roots in ${closed}: permission denied: uid ${uid} may not list ${closed}`],
      // Before: "page store <store>: 0 entries, 0.0 MiB", exit 0, for a store that has one.
      [["pages", "ls", "--store", join(closed, "store")], `cryo pages ls: page store ${join(closed, "store")}: permission denied: uid ${uid} may not list ${join(closed, "store")}`],
      // Before: "not found: no entry e1".
      [["pages", "rm", "--store", join(closed, "store"), "e1"], `cryo pages rm: page store ${join(closed, "store")}: permission denied: uid ${uid} may not look up ${join(closed, "store", "e1")}`],
      // Before: "checkpoint <closed>: not found: not a checkpoint: neither ...".
      [["inspect", closed], `cryo inspect: checkpoint ${closed}: permission denied: uid ${uid} may not read ${closed}`],
      // Before: exit 2, "invalid argument: cannot read: EACCES: permission denied, open ...".
      [["config", "check", join(open, "config.toml")], `cryo config check: config ${join(open, "config.toml")}: permission denied: uid ${uid} may not read ${join(open, "config.toml")}`],
      [["plugin", "test", asNobody, "--hook", "admit", "--input", join(open, "in.json")], `cryo plugin test: input ${join(open, "in.json")}: permission denied: uid ${uid} may not read ${join(open, "in.json")}`],
    ];
    for (const [args, message] of cases) {
      const r = await nobody(...args);
      expect(r.stderr.trim()).toBe(message);
      expect(r.exitCode).toBe(1);
    }
  } finally {
    rmSync(parent, { recursive: true, force: true });
  }
});
