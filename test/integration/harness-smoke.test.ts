import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import {
  type PrivateContainerd,
  ensureTestImage,
  mountsUnder,
  processAlive,
  readContainerFile,
  readCounter,
  startPrivateContainerd,
  taskPid,
  testImage,
  uniqueId,
  waitFor,
} from "../harness/index.ts";

const runc = "io.containerd.runc.v2";

describe("harness: private containerd + test image", () => {
  let pc: PrivateContainerd;

  beforeAll(async () => {
    pc = await startPrivateContainerd({ namespace: uniqueId("smoke") });
  });
  afterAll(async () => {
    await pc?.stop();
  });

  test("containerd answers on its own socket and ttrpc socket", async () => {
    const r = await pc.ctr(["version"]);
    expect(r.exitCode).toBe(0);
    expect(r.stdout).toContain("Server:");
    expect(existsSync(pc.ttrpcAddress)).toBe(true);
    expect(pc.ttrpcAddress).toBe(`${pc.address}.ttrpc`);
    const config = readFileSync(join(pc.dir, "config.toml"), "utf8");
    expect(config).toContain('runtime_type = "io.containerd.cryo.v2"');
    // containerd makes its checkpoint dump/extraction dirs in XDG_RUNTIME_DIR: the private dir's tmp/.
    const environ = readFileSync(`/proc/${pc.pid}/environ`, "utf8").split("\0");
    expect(environ).toContain(`XDG_RUNTIME_DIR=${join(pc.dir, "tmp")}`);
  });

  test("ctr run --rm with runc prints hi", async () => {
    expect(await ensureTestImage(pc)).toBe(testImage);
    const id = uniqueId("hi");
    const r = await pc.ctr(["run", "--rm", "--runtime", runc, testImage, id, "sh", "-c", "echo hi"]);
    expect(r.stderr).toBe("");
    expect(r.stdout.trim()).toBe("hi");
    expect(r.exitCode).toBe(0);
  });

  let memhogPid = 0;

  test("memhog 16 counts upward and verifies its memory on SIGUSR1", async () => {
    await ensureTestImage(pc);
    const id = uniqueId("memhog");
    await pc.ctrOk(["run", "-d", "--runtime", runc, testImage, id, "memhog", "16", "/tmp/counter"]);
    const first = await waitFor(() => readCounter(pc, id), { what: "first counter value" });
    const later = await waitFor(() => (readCounter(pc, id) ?? 0) > first + 2 && readCounter(pc, id), { what: "counter to grow" });
    expect(later).toBeGreaterThan(first);

    await pc.ctrOk(["tasks", "kill", "--signal", "SIGUSR1", id]);
    const verdict = await waitFor(() => readContainerFile(pc, id, "/tmp/counter.verify"), { what: "verify file" });
    expect(verdict).toMatch(/^ok \d+$/);

    const tasks = await pc.ctrOk(["tasks", "ls"]);
    expect(tasks.split("\n").find((line) => line.startsWith(`${id} `))).toContain("RUNNING");
    memhogPid = (await taskPid(pc, id)) ?? 0;
    expect(processAlive(memhogPid)).toBe(true);
  });

  test("tcp-client keeps one connection to tcp-echo and counts echoed lines", async () => {
    await ensureTestImage(pc);
    const id = uniqueId("tcp");
    await pc.ctrOk(["run", "-d", "--runtime", runc, testImage, id, "sh", "-c", "tcp-echo 7000 & sleep 0.2; exec tcp-client 127.0.0.1 7000 /tmp/tcp.out"]);
    const status = await waitFor(
      () => {
        const text = readContainerFile(pc, id, "/tmp/tcp.out");
        if (text?.startsWith("error")) throw new Error(text);
        return /^(\d+) ok$/.exec(text ?? "") && Number(text?.split(" ")[0]) >= 5 && text;
      },
      { what: "5 echoed lines" },
    );
    expect(status).toMatch(/^\d+ ok$/);
    // Killing the server breaks the one connection: the client reports it and exits non-zero.
    await pc.ctrOk(["tasks", "exec", "--exec-id", uniqueId("kill"), id, "killall", "tcp-echo"]);
    const broken = await waitFor(() => readContainerFile(pc, id, "/tmp/tcp.out")?.startsWith("error") && readContainerFile(pc, id, "/tmp/tcp.out"), {
      what: "client to see the broken connection",
    });
    // An orderly close, or a reset when the server died with a line of ours unread: both end the connection.
    expect(broken).toMatch(/^error: receive \d+: (connection closed|Connection reset by peer)$/);
  });

  test("stop leaves no process, mount or directory behind", async () => {
    const { dir, pid, address } = pc;
    expect(memhogPid).toBeGreaterThan(0);
    await pc.stop();
    expect(processAlive(pid)).toBe(false);
    expect(processAlive(memhogPid)).toBe(false);
    const shims = Bun.spawnSync(["pgrep", "-f", "--", `-address ${address}`]).stdout.toString().trim();
    expect(shims).toBe("");
    expect(mountsUnder(dir)).toEqual([]);
    expect(existsSync(dir)).toBe(false);
    expect(existsSync(`/sys/fs/cgroup/memory/${pc.namespace}`)).toBe(false);
    expect(existsSync(`/run/containerd/runc/${pc.namespace}`)).toBe(false);
  });
});
