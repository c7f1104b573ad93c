/**
 * The `start` action of the built binary on its own (no containerd): start binds the socket and
 * hands the listening descriptor to the daemon it launches (root-only socket, held close-on-exec by
 * the daemon, answering ttrpc); the ShimCgroup runtime option puts the daemon into that cgroup; a
 * ShimCgroup that does not exist fails `start` and leaves no daemon and no socket behind; a daemon whose container's
 * Create never came (then a Connect for it), or failed, exits at once.
 */
import { create, toBinary } from "@bufbuild/protobuf";
import { anyPack, AnySchema } from "@bufbuild/protobuf/wkt";
import { afterAll, beforeAll, expect, test } from "bun:test";
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, rmdirSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { defaultBinDir } from "../../src/containerd/index.ts";
import { Code, CryoError } from "../../src/errors.ts";
import { OptionsSchema } from "../../src/gen/containerd/runc/options/oci_pb.ts";
import { Task } from "../../src/gen/containerd/runtime/task/v2/shim_pb.ts";
import { connect, createClient } from "../../src/ttrpc/index.ts";
import { processAlive, uniqueId, waitFor } from "../harness/index.ts";

const CONTROLLERS = ["memory", "pids"];
let dir: string;
let cgroup: string;
const daemons: number[] = [];

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), "cryo-shim-start-"));
  mkdirSync(join(dir, "bundle"));
  writeFileSync(join(dir, "bundle", "config.json"), JSON.stringify({ ociVersion: "1.0.2" }));
  cgroup = `/${uniqueId("cryo-shimcg")}`;
  for (const c of CONTROLLERS) mkdirSync(`/sys/fs/cgroup/${c}${cgroup}`);
});

afterAll(async () => {
  for (const pid of daemons) {
    try {
      process.kill(pid, "SIGTERM");
    } catch {
      // gone
    }
  }
  await waitFor(() => daemons.every((p) => !processAlive(p)), { timeoutMs: 10_000, what: "daemons gone" }).catch(() => {
    for (const pid of daemons) {
      try {
        process.kill(pid, "SIGKILL");
      } catch {
        // gone
      }
    }
  });
  // The cgroup is removable once the kernel has taken the last task out of it (EBUSY until then).
  for (const c of CONTROLLERS) {
    const path = `/sys/fs/cgroup/${c}${cgroup}`;
    await waitFor(
      () => {
        try {
          rmdirSync(path);
          return true;
        } catch (err) {
          if ((err as NodeJS.ErrnoException).code === "ENOENT") return true;
          if ((err as NodeJS.ErrnoException).code === "EBUSY") return false;
          throw err;
        }
      },
      { timeoutMs: 10_000, what: `rmdir ${path}` },
    );
  }
  rmSync(dir, { recursive: true, force: true });
});

/** Daemons serving sockets in our socket dir (their command line names it). */
function daemonsOf(socketDir: string): number[] {
  return readdirSync("/proc")
    .filter((p) => /^\d+$/.test(p))
    .filter((p) => {
      try {
        return readFileSync(`/proc/${p}/cmdline`, "utf8").includes(`${socketDir}/`);
      } catch {
        return false;
      }
    })
    .map(Number);
}

async function start(id: string, shimCgroup: string | undefined, socketDir: string) {
  const stdin = shimCgroup === undefined ? new Uint8Array() : toBinary(AnySchema, anyPack(OptionsSchema, create(OptionsSchema, { shimCgroup })));
  const proc = Bun.spawn([join(defaultBinDir() ?? "build/bin", "containerd-shim-cryo-v2"), "-namespace", "t", "-address", join(dir, "no-containerd.sock"), "-id", id, "start"], {
    cwd: join(dir, "bundle"),
    env: { ...process.env, CRYO_SHIM_SOCKET_DIR: socketDir },
    stdin,
    stdout: "pipe",
    stderr: "pipe",
  });
  const [out, err, code] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited]);
  return { out, err, code };
}

test("start hands its listening socket to the daemon: root only, close-on-exec in the daemon, answering ttrpc", async () => {
  const socketDir = join(dir, "s0");
  const r = await start("c0", undefined, socketDir);
  expect(r.code).toBe(0);
  expect(r.err).toBe("");
  const path = r.out.replace(/^unix:\/\//, "");
  expect(path.startsWith(`${socketDir}/`)).toBe(true);
  expect(statSync(path).isSocket()).toBe(true);
  expect(statSync(path).mode & 0o777).toBe(0o600);
  const [pid] = daemonsOf(socketDir);
  expect(pid).toBeDefined();
  daemons.push(pid!);
  // The daemon got the socket as fd 3 (start's spawn) and set close-on-exec on it, so runc never inherits it.
  expect(readlinkSync(`/proc/${pid}/fd/3`)).toMatch(/^socket:\[\d+\]$/);
  const flags = Number.parseInt(/^flags:\s+([0-7]+)$/m.exec(readFileSync(`/proc/${pid}/fdinfo/3`, "utf8"))?.[1] ?? "0", 8);
  await waitFor(() => (Number.parseInt(/^flags:\s+([0-7]+)$/m.exec(readFileSync(`/proc/${pid}/fdinfo/3`, "utf8"))?.[1] ?? "0", 8) & 0o2000000) !== 0, {
    timeoutMs: 10_000,
    what: `daemon ${pid} to set close-on-exec on fd 3 (flags now ${flags.toString(8)})`,
  });
  const client = await connect(path, { namespace: "t" });
  try {
    const err = await createClient(Task, client).state({ id: "no-such-container" }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(CryoError);
    expect((err as CryoError).code).toBe(Code.NOT_FOUND);
  } finally {
    client.close();
  }
}, 30_000);

test("ShimCgroup: the daemon start launches runs in that cgroup", async () => {
  const socketDir = join(dir, "s1");
  const r = await start("c1", cgroup, socketDir);
  expect(r.code).toBe(0);
  expect(r.out).toStartWith(`unix://${socketDir}/`);
  const [pid] = daemonsOf(socketDir);
  expect(pid).toBeDefined();
  daemons.push(pid!);
  const procCgroups = readFileSync(`/proc/${pid}/cgroup`, "utf8");
  for (const c of CONTROLLERS) expect(procCgroups).toMatch(new RegExp(`^\\d+:[^:\\n]*\\b${c}\\b[^:\\n]*:${cgroup}$`, "m"));
}, 30_000);

test('ShimCgroup "/": the daemon runs in the root cgroup of every hierarchy, as with runc\'s shim (refused before: "must name a cgroup below the root")', async () => {
  const socketDir = join(dir, "s-root");
  const r = await start("c-root", "/", socketDir);
  expect(r.err).toBe("");
  expect(r.code).toBe(0);
  const [pid] = daemonsOf(socketDir);
  expect(pid).toBeDefined();
  daemons.push(pid!);
  const procCgroups = readFileSync(`/proc/${pid}/cgroup`, "utf8");
  for (const c of CONTROLLERS) expect(procCgroups).toMatch(new RegExp(`^\\d+:[^:\\n]*\\b${c}\\b[^:\\n]*:/$`, "m"));
}, 30_000);

test("ShimCgroup that does not exist: start fails and leaves no daemon", async () => {
  const socketDir = join(dir, "s2");
  const r = await start("c2", `${cgroup}-missing`, socketDir);
  expect(r.code).not.toBe(0);
  expect(r.err).toContain(`shim cgroup ${cgroup}-missing: not found`);
  await waitFor(() => daemonsOf(socketDir).length === 0, { timeoutMs: 5_000, what: "no daemon" });
  expect(existsSync(socketDir) ? readdirSync(socketDir) : []).toEqual([]);
}, 30_000);

for (const createFailed of [false, true]) {
  const connects = !createFailed;
  const what = createFailed ? "whose Create failed (no Shutdown followed)" : "whose Create never came, then a Connect for it";
  test(`a container ${what} (containerd restarted mid-Create) ends its daemon at once`, async () => {
    const id = createFailed ? "c4" : "c3";
    const socketDir = join(dir, `s-${id}`);
    const r = await start(id, undefined, socketDir);
    expect(r.code).toBe(0);
    const path = r.out.replace(/^unix:\/\//, "");
    const [pid] = daemonsOf(socketDir);
    expect(pid).toBeDefined();
    daemons.push(pid!);
    expect(readdirSync(`${path}.pending`)).toEqual([id]);
    const client = await connect(path, { namespace: "t" });
    try {
      const task = createClient(Task, client);
      if (createFailed) {
        // A bundle without config.json: the Create fails (as one whose caller went away), its marker cleared.
        const empty = mkdtempSync(join(dir, "empty-"));
        const err = await task.create({ id, bundle: empty, rootfs: [], stdin: "", stdout: "", stderr: "" }).catch((e: unknown) => e);
        expect((err as CryoError).code).toBe(Code.NOT_FOUND);
        expect(existsSync(`${path}.pending`) ? readdirSync(`${path}.pending`) : []).toEqual([]);
      }
      if (connects) {
        // What a restarted containerd does with the bundle: Connect, NOT_FOUND, then its cleanup (the shim's `delete`).
        const err = await task.connect({ id }).catch((e: unknown) => e);
        expect((err as CryoError).code).toBe(Code.NOT_FOUND);
      }
    } finally {
      client.close();
    }
    // Before, the daemon stayed until its idle check (30 s; a fresh marker first had to go stale, 30 s).
    await waitFor(() => !processAlive(pid!), { timeoutMs: 5_000, what: `daemon ${pid} gone` });
    expect(existsSync(socketDir) ? readdirSync(socketDir).filter((f) => !f.endsWith(".lock")) : []).toEqual([]);
  }, 30_000);
}
