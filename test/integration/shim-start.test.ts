/**
 * The `start` action of the built binary on its own (no containerd): the ShimCgroup runtime option
 * puts the daemon it launches into that cgroup; a ShimCgroup that does not exist fails `start`
 * and leaves no daemon behind.
 */
import { create, toBinary } from "@bufbuild/protobuf";
import { anyPack, AnySchema } from "@bufbuild/protobuf/wkt";
import { afterAll, beforeAll, expect, test } from "bun:test";
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { defaultBinDir } from "../../src/containerd/index.ts";
import { OptionsSchema } from "../../src/gen/containerd/runc/options/oci_pb.ts";
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
  await waitFor(() => daemons.every((p) => !processAlive(p)), { timeoutMs: 10_000, what: "daemons gone" }).catch(() => {});
  for (const c of CONTROLLERS) rmdirSync(`/sys/fs/cgroup/${c}${cgroup}`);
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

async function start(id: string, shimCgroup: string, socketDir: string) {
  const stdin = toBinary(AnySchema, anyPack(OptionsSchema, create(OptionsSchema, { shimCgroup })));
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

test("ShimCgroup that does not exist: start fails and leaves no daemon", async () => {
  const socketDir = join(dir, "s2");
  const r = await start("c2", `${cgroup}-missing`, socketDir);
  expect(r.code).not.toBe(0);
  expect(r.err).toContain(`shim cgroup ${cgroup}-missing: not found`);
  await waitFor(() => daemonsOf(socketDir).length === 0, { timeoutMs: 5_000, what: "no daemon" });
}, 30_000);
