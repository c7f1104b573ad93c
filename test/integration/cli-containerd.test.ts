import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { chmodSync, copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { unmountUnder } from "../../src/containerd/index.ts";
import { buildFixtures, processAlive, runCtr, testImage, uniqueId, waitFor } from "../harness/index.ts";

const bun = process.execPath;
const main = resolve(import.meta.dir, "../../src/cli/main.ts");

async function cryo(...args: string[]) {
  const proc = Bun.spawn([bun, main, ...args], { stdout: "pipe", stderr: "pipe" });
  const [stdout, stderr, exitCode] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited]);
  return { stdout, stderr, exitCode };
}

describe("cryo containerd start/status/stop", () => {
  // Made in beforeAll, not when the file loads: a run whose -t filter skips this block runs no afterAll, and left
  // the empty directory behind.
  let parent = "";
  let dir = "";
  let pid = 0;

  beforeAll(() => {
    parent = mkdtempSync(join(tmpdir(), "cryo-cli-"));
    dir = join(parent, "ctd");
  });

  afterAll(async () => {
    // Only if a step failed half way: stop what start left running, then remove the temp dir.
    if (existsSync(join(dir, "containerd.pid"))) await cryo("containerd", "stop", "--dir", dir);
    rmSync(parent, { recursive: true, force: true });
  });

  test("start returns with containerd running in the background and prints how to reach it", async () => {
    const r = await cryo("containerd", "start", "--dir", dir);
    expect(r.stderr).toBe("");
    expect(r.exitCode).toBe(0);
    expect(r.stdout).toContain(`address: ${dir}/containerd.sock`);
    expect(r.stdout).toContain(`ctr --address ${dir}/containerd.sock`);
    // Which shim containerd will run (the repo's build here: cryo runs from its source).
    expect(r.stdout).toContain(`shim:    ${resolve(import.meta.dir, "../../build/bin/containerd-shim-cryo-v2")}`);
    pid = Number(readFileSync(join(dir, "containerd.pid"), "utf8"));
    expect(processAlive(pid)).toBe(true);
    const version = await runCtr(join(dir, "containerd.sock"), ["version"]);
    expect(version.exitCode).toBe(0);
  });

  test("a --bin-dir without the shim is refused before anything starts (it would fall back to PATH's shim)", async () => {
    const empty = join(parent, "empty-bin");
    // A directory that is there (one that is not is "not found", as every path a command names: unit run-cli).
    mkdirSync(empty);
    const r = await cryo("containerd", "start", "--dir", join(parent, "other"), "--bin-dir", empty);
    expect(r.exitCode).toBe(1);
    expect(r.stderr.trim()).toBe(`cryo containerd start: --bin-dir ${empty}: failed precondition: no executable containerd-shim-cryo-v2 in it; leave --bin-dir out to use the one next to cryo, or on PATH`);
    expect(existsSync(join(parent, "other"))).toBe(false);
  });

  test("a second start in the same dir is refused", async () => {
    const r = await cryo("containerd", "start", "--dir", dir);
    expect(r.exitCode).toBe(1);
    // It names what to do instead (it said "already exists" alone).
    expect(r.stderr.trim()).toBe(
      `cryo containerd start: private containerd in ${dir} (pid ${pid}): already exists: it runs: use it (ctr --address ${join(dir, "containerd.sock")}; \`cryo containerd status --dir ${dir}\`), or \`cryo containerd stop --dir ${dir}\` first`,
    );
  });

  test("status names the running containerd", async () => {
    const r = await cryo("containerd", "status", "--dir", dir);
    expect(r.exitCode).toBe(0);
    expect(r.stdout).toContain(`private containerd running (pid ${pid}) in ${dir}`);
  });

  test("stop by a user who may not signal containerd is refused, and nothing is removed", async () => {
    chmodSync(parent, 0o711); // so that nobody reaches the directory (start makes it 0711 itself)
    // The built cryo, where nobody reaches it (a clone may sit in a directory only root can read: mktemp -d's 0700).
    const asNobody = join(parent, "cryo");
    copyFileSync(resolve(import.meta.dir, "../../build/bin/cryo"), asNobody);
    chmodSync(asNobody, 0o755);
    const proc = Bun.spawn(["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", asNobody, "containerd", "stop", "--dir", dir], { cwd: "/", stdout: "pipe", stderr: "pipe" });
    const [stderr, exitCode] = await Promise.all([new Response(proc.stderr).text(), proc.exited]);
    // Before, the EPERM of its SIGTERM was taken for a dead containerd, and the clean-up went on (stopped only by the
    // directories' modes, with an EACCES of rm).
    expect(stderr).toContain(`stop process ${pid} of the private containerd in ${dir}: permission denied`);
    expect(exitCode).toBe(1);
    expect(processAlive(pid)).toBe(true);
    expect(existsSync(join(dir, "config.toml"))).toBe(true);
  });

  test("stop ends it and removes the directory; a second stop is not found", async () => {
    const r = await cryo("containerd", "stop", "--dir", dir);
    expect(r.exitCode).toBe(0);
    // Its new parent may not have reaped it yet: a zombie counts as gone.
    expect(processAlive(pid)).toBe(false);
    expect(existsSync(dir)).toBe(false);
    const again = await cryo("containerd", "stop", "--dir", dir);
    expect(again.exitCode).toBe(1);
    expect(again.stderr.trim()).toBe(`cryo containerd stop: private containerd in ${dir}: not found`);
  });
});

/** Runs the built cryo as nobody from /, copied into parent (which must let nobody in: a mktemp dir is 0700). */
async function cryoAsNobody(parent: string, ...args: string[]) {
  const asNobody = join(parent, "cryo");
  if (!existsSync(asNobody)) {
    copyFileSync(resolve(import.meta.dir, "../../build/bin/cryo"), asNobody);
    chmodSync(asNobody, 0o755);
  }
  const proc = Bun.spawn(["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", asNobody, ...args], { cwd: "/", stdout: "pipe", stderr: "pipe" });
  const [stdout, stderr, exitCode] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited]);
  return { stdout, stderr, exitCode };
}

describe("a --dir cryo containerd cannot use", () => {
  test("a file, or a path below one, is named as such; a directory nobody may enter is permission denied, not \"not found\"", async () => {
    const parent = mkdtempSync(join(tmpdir(), "cryo-cli-"));
    try {
      const file = join(parent, "file");
      writeFileSync(file, "x");
      // Before: `EEXIST: file already exists, mkdir '<file>'` and `ENOTDIR: not a directory, mkdir '<file>/sub'`.
      for (const dir of [file, join(file, "sub")]) {
        const r = await cryo("containerd", "start", "--dir", dir);
        expect(r.stderr.trim()).toBe(`cryo containerd start: private containerd in ${dir}: failed precondition: ${file} is a file, not a directory`);
        expect(r.exitCode).toBe(1);
      }
      for (const cmd of ["status", "stop"]) {
        const r = await cryo("containerd", cmd, "--dir", file);
        expect(r.stderr.trim()).toBe(`cryo containerd ${cmd}: private containerd in ${file}: failed precondition: ${file} is a file, not a directory`);
        expect(r.exitCode).toBe(1);
      }
      chmodSync(parent, 0o711);
      const closed = join(parent, "closed");
      mkdirSync(closed, { mode: 0o700 });
      const uid = Number(Bun.spawnSync(["id", "-u", "nobody"]).stdout.toString().trim());
      // Before: "not found", which a containerd running there would be too to a user who may not look.
      for (const cmd of ["status", "stop"]) {
        const r = await cryoAsNobody(parent, "containerd", cmd, "--dir", closed);
        expect(r.stderr.trim()).toBe(`cryo containerd ${cmd}: private containerd in ${closed}: permission denied: uid ${uid} may not look up ${closed}/config.toml`);
        expect(r.exitCode).toBe(1);
      }
      // Before: `EACCES: permission denied, mkdir '<dir>'`.
      const r = await cryoAsNobody(parent, "containerd", "start", "--dir", join(closed, "ctd"));
      expect(r.stderr.trim()).toBe(`cryo containerd start: private containerd in ${join(closed, "ctd")}: permission denied: uid ${uid} may not create ${join(closed, "ctd")}`);
      expect(r.exitCode).toBe(1);
    } finally {
      rmSync(parent, { recursive: true, force: true });
    }
  });
});

describe("cryo containerd start without the binaries it runs", () => {
  test("a $CRYO_CONTAINERD that is not there or not executable, and no ctr on PATH, are said at once and in words", async () => {
    const parent = mkdtempSync(join(tmpdir(), "cryo-cli-"));
    const start = async (env: Record<string, string>, dir: string) => {
      const proc = Bun.spawn([bun, main, "containerd", "start", "--dir", dir], { env: { ...process.env, ...env }, stdout: "pipe", stderr: "pipe" });
      const [stderr, exitCode] = await Promise.all([new Response(proc.stderr).text(), proc.exited]);
      return { stderr: stderr.trim(), exitCode };
    };
    try {
      const file = join(parent, "not-executable");
      writeFileSync(file, "x", { mode: 0o644 });
      // Before: `unavailable: Error: ENOENT: no such file or directory, posix_spawn '<path>'` (and EACCES).
      expect(await start({ CRYO_CONTAINERD: join(parent, "none") }, join(parent, "a"))).toEqual({
        stderr: `cryo containerd start: start ${join(parent, "none")} ($CRYO_CONTAINERD): not found`,
        exitCode: 1,
      });
      expect(await start({ CRYO_CONTAINERD: file }, join(parent, "b"))).toEqual({
        stderr: `cryo containerd start: start ${file} ($CRYO_CONTAINERD): permission denied: uid ${process.getuid!()} may not run ${file}`,
        exitCode: 1,
      });
      // Nothing is left of a start that could not run containerd: the directories it made go (before: config.toml,
      // tmp/ and an empty containerd.log), and a directory that was there keeps only what it had.
      expect([existsSync(join(parent, "a")), existsSync(join(parent, "b"))]).toEqual([false, false]);
      mkdirSync(join(parent, "d"));
      writeFileSync(join(parent, "d", "mine"), "x");
      expect((await start({ CRYO_CONTAINERD: join(parent, "none") }, join(parent, "d"))).exitCode).toBe(1);
      expect(readdirSync(join(parent, "d"))).toEqual(["mine"]);
      // containerd is found in cryo's own PATH part (/usr/bin), ctr is looked up on the caller's. Before: 30 s of
      // "not answering", then DEADLINE_EXCEEDED with containerd's log saying it served; then containerd was started
      // and stopped, and the directory kept until `stop`. Now it is said before anything is made.
      const noCtr = await start({ PATH: join(parent, "empty-path") }, join(parent, "c"));
      expect(noCtr).toEqual({ stderr: `cryo containerd start: ctr: not found: not on PATH (${join(parent, "empty-path")}): cryo asks containerd through it`, exitCode: 1 });
      expect(existsSync(join(parent, "c"))).toBe(false);
    } finally {
      for (const d of ["a", "b", "c"]) if (existsSync(join(parent, d, "config.toml"))) await cryo("containerd", "stop", "--dir", join(parent, d));
      rmSync(parent, { recursive: true, force: true });
    }
  });
});

describe("cryo containerd stop after containerd died", () => {
  test("cleans up the directory of a killed containerd", async () => {
    const parent = mkdtempSync(join(tmpdir(), "cryo-cli-"));
    const dir = join(parent, "ctd");
    try {
      expect((await cryo("containerd", "start", "--dir", dir)).exitCode).toBe(0);
      const pid = Number(readFileSync(join(dir, "containerd.pid"), "utf8"));
      process.kill(pid, "SIGKILL");
      await waitFor(() => !processAlive(pid), { what: "containerd to die" });
      // status says so, and how to clear the directory it left (before: "not found" alone, DIR still full).
      const status = await cryo("containerd", "status", "--dir", dir);
      expect([status.stderr.trim(), status.exitCode]).toEqual([`cryo containerd status: private containerd in ${dir}: not found: it is not running (died or was killed); \`cryo containerd stop --dir ${dir}\` cleans up after it`, 1]);
      const r = await cryo("containerd", "stop", "--dir", dir);
      expect(r.stdout.trim()).toBe(`containerd in ${dir} was not running; cleaned up after it`);
      expect(r.exitCode).toBe(0);
      expect(existsSync(dir)).toBe(false);
    } finally {
      rmSync(parent, { recursive: true, force: true });
    }
  });
});

describe("cryo containerd start --foreground", () => {
  /** The CPU time (user + system, in clock ticks) the process has used so far. */
  function cpuTicks(pid: number): number {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return Number(fields[11]) + Number(fields[12]);
  }

  test("waits without using the CPU, and Ctrl-C stops containerd and removes the directory", async () => {
    const parent = mkdtempSync(join(tmpdir(), "cryo-cli-"));
    const dir = join(parent, "ctd");
    const proc = Bun.spawn([bun, main, "containerd", "start", "--dir", dir, "--foreground"], { stdout: "pipe", stderr: "pipe" });
    try {
      const stdout = new Response(proc.stdout).text();
      const stderr = new Response(proc.stderr).text();
      await waitFor(() => existsSync(join(dir, "containerd.pid")) && runCtr(join(dir, "containerd.sock"), ["version"]).then((r) => r.exitCode === 0), { what: "the private containerd", timeoutMs: 20_000 });
      await Bun.sleep(300);
      const before = cpuTicks(proc.pid);
      await Bun.sleep(1000);
      // Before, it spun its event loop (an unref'd timer and signal listeners): a whole core while it waited.
      expect(cpuTicks(proc.pid) - before).toBeLessThan(30);
      const containerd = Number(readFileSync(join(dir, "containerd.pid"), "utf8"));
      proc.kill("SIGINT");
      expect(await proc.exited).toBe(0);
      expect(await stderr).toBe("");
      expect(await stdout).toContain("SIGINT: stopping containerd, its containers and shims\nstopped\n");
      expect(processAlive(containerd)).toBe(false);
      expect(existsSync(dir)).toBe(false);
    } finally {
      proc.kill("SIGKILL");
      if (existsSync(join(dir, "containerd.pid"))) await cryo("containerd", "stop", "--dir", dir);
      rmSync(parent, { recursive: true, force: true });
    }
  });

  test("a Ctrl-C while containerd is still starting stops it too, and leaves nothing behind", async () => {
    const parent = mkdtempSync(join(tmpdir(), "cryo-cli-"));
    const dir = join(parent, "ctd");
    const proc = Bun.spawn([bun, main, "containerd", "start", "--dir", dir, "--foreground"], { stdout: "pipe", stderr: "pipe" });
    try {
      const stdout = new Response(proc.stdout).text();
      // The config is written before containerd runs; before, a SIGINT then killed cryo (or was lost) and left a
      // detached containerd and its directory.
      await waitFor(() => existsSync(join(dir, "config.toml")), { what: "the generated config", timeoutMs: 20_000, intervalMs: 5 });
      proc.kill("SIGINT");
      expect(await proc.exited).toBe(0);
      expect(await stdout).toContain("SIGINT: stopping containerd, its containers and shims\nstopped\n");
      expect(existsSync(dir)).toBe(false);
    } finally {
      proc.kill("SIGKILL");
      if (existsSync(join(dir, "containerd.pid"))) await cryo("containerd", "stop", "--dir", dir);
      rmSync(parent, { recursive: true, force: true });
    }
  });
});

describe("cryo containerd with a containerd started again by hand", () => {
  test("status and stop find the containerd that runs the directory's config, not the dead one of the pid file", async () => {
    const parent = mkdtempSync(join(tmpdir(), "cryo-cli-"));
    const dir = join(parent, "ctd");
    let again: ReturnType<typeof Bun.spawn> | undefined;
    try {
      expect((await cryo("containerd", "start", "--dir", dir)).exitCode).toBe(0);
      const pid = Number(readFileSync(join(dir, "containerd.pid"), "utf8"));
      process.kill(pid, "SIGKILL");
      await waitFor(() => !processAlive(pid), { what: "containerd to die" });
      // An operator starts it again with the same config, not through cryo: the pid file still names the dead one.
      again = Bun.spawn(["containerd", "--config", join(dir, "config.toml")], { stdout: "ignore", stderr: "ignore" });
      await waitFor(async () => (await runCtr(join(dir, "containerd.sock"), ["version"])).exitCode === 0 || undefined, { what: "containerd started by hand to answer" });
      const status = await cryo("containerd", "status", "--dir", dir);
      expect(status.stdout).toContain(`private containerd running (pid ${again.pid}) in ${dir}`);
      // Before, stop took the directory for a dead containerd's and removed it under the running one.
      const r = await cryo("containerd", "stop", "--dir", dir);
      expect(r.stdout.trim()).toBe(`stopped private containerd (pid ${again.pid}) in ${dir}`);
      expect(r.exitCode).toBe(0);
      await again.exited;
      expect(existsSync(dir)).toBe(false);
    } finally {
      again?.kill("SIGKILL");
      rmSync(parent, { recursive: true, force: true });
    }
  });
});

describe("a directory that cryo containerd start did not make", () => {
  test("stop, status and start refuse it and touch nothing, not even a containerd running with its config", async () => {
    // /etc/containerd-like: a config.toml of the operator's, a root with data, and a containerd running with that config.
    const dir = mkdtempSync(join(tmpdir(), "cryo-cli-foreign-"));
    const config = join(dir, "config.toml");
    const sock = join(dir, "c.sock");
    let foreign: ReturnType<typeof Bun.spawn> | undefined;
    try {
      const text = `version = 2\nroot = "${join(dir, "root")}"\nstate = "${join(dir, "state")}"\n[grpc]\n  address = "${sock}"\n[ttrpc]\n  address = "${sock}.ttrpc"\n`;
      writeFileSync(config, text);
      mkdirSync(join(dir, "root"));
      writeFileSync(join(dir, "root", "important.db"), "data");
      for (const cmd of [["stop"], ["status"], ["start"], ["stop", "--keep-containers"]]) {
        const r = await cryo("containerd", ...cmd, "--dir", dir);
        expect(r.exitCode).not.toBe(0);
        expect(r.stderr).toContain(`${config} was not written by cryo containerd start for this directory`);
      }
      foreign = Bun.spawn(["containerd", "--config", config], { stdout: "ignore", stderr: "ignore" });
      await waitFor(async () => (await runCtr(sock, ["version"])).exitCode === 0 || undefined, { what: "the foreign containerd to answer" });
      // Before, stop took it for a private containerd: SIGTERM, then its config and root removed.
      const r = await cryo("containerd", "stop", "--dir", dir);
      expect(r.exitCode).not.toBe(0);
      expect(r.stderr).toContain("cryo leaves this directory and any containerd running with it alone");
      expect(processAlive(foreign.pid)).toBe(true);
      expect(readFileSync(config, "utf8")).toBe(text);
      expect(readFileSync(join(dir, "root", "important.db"), "utf8")).toBe("data");
    } finally {
      foreign?.kill("SIGTERM");
      await foreign?.exited;
      await unmountUnder(dir);
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe("the same directory named otherwise", () => {
  test("status and stop through the real path find the containerd started through a symlink", async () => {
    const parent = mkdtempSync(join(tmpdir(), "cryo-cli-link-"));
    const real = join(parent, "real");
    const link = join(parent, "link");
    mkdirSync(real);
    symlinkSync("real", link);
    try {
      expect((await cryo("containerd", "start", "--dir", link)).exitCode).toBe(0);
      const pid = Number(readFileSync(join(real, "containerd.pid"), "utf8"));
      // Before, the config's first line (written for the link) was taken for another's: refused.
      const status = await cryo("containerd", "status", "--dir", real);
      expect(status.stdout).toContain(`private containerd running (pid ${pid})`);
      expect((await cryo("containerd", "start", "--dir", real)).exitCode).not.toBe(0); // running already
      const r = await cryo("containerd", "stop", "--dir", real);
      expect(r.exitCode).toBe(0);
      expect(r.stdout.trim()).toBe(`stopped private containerd (pid ${pid}) in ${link}`);
      expect(processAlive(pid)).toBe(false);
    } finally {
      if (existsSync(join(real, "containerd.pid"))) await cryo("containerd", "stop", "--dir", link);
      rmSync(parent, { recursive: true, force: true });
    }
  });
});

describe("cryo containerd stop --keep-containers", () => {
  test("stops containerd only: the task runs on, and the same directory started again serves it", async () => {
    const parent = mkdtempSync(join(tmpdir(), "cryo-cli-"));
    const dir = join(parent, "ctd");
    const sock = join(dir, "containerd.sock");
    // Names of this run's own: runc's state (/run/containerd/runc/<namespace>/<id>) and the cgroups are the host's, and
    // another run of this file beside this one (same fixed names) had its stop's `runc delete --force` kill this task.
    const ns = uniqueId("keep");
    const k1 = uniqueId("k1");
    const ctr = (args: string[]) => runCtr(sock, args, { namespace: ns, timeoutMs: 60_000 });
    try {
      expect((await cryo("containerd", "start", "--dir", dir)).exitCode).toBe(0);
      expect((await ctr(["images", "import", (await buildFixtures()).archive])).exitCode).toBe(0);
      expect((await ctr(["run", "-d", "--runtime", "io.containerd.cryo.v2", testImage, k1, "sleep", "1000"])).exitCode).toBe(0);
      const taskPid = Number((await ctr(["tasks", "ls"])).stdout.split("\n").find((l) => l.startsWith(`${k1} `))?.split(/\s+/)[1]);
      expect(taskPid).toBeGreaterThan(0);
      const pid = Number(readFileSync(join(dir, "containerd.pid"), "utf8"));

      const r = await cryo("containerd", "stop", "--keep-containers", "--dir", dir);
      expect(r.stdout.trim()).toBe(`stopped private containerd (pid ${pid}) in ${dir}; its containers run on`);
      expect(processAlive(pid)).toBe(false);
      expect(processAlive(taskPid)).toBe(true);

      // status names the shims that run on and both ways on: it said only "died or was killed" and named
      // `cryo containerd stop --dir`, which kills the containers --keep-containers kept.
      const shimPid = Number(readFileSync(`/proc/${taskPid}/stat`, "utf8").replace(/^.*\) /, "").split(" ")[1]);
      expect(readFileSync(`/proc/${shimPid}/cmdline`, "utf8").split("\0")).toContain(k1);
      const status = await cryo("containerd", "status", "--dir", dir);
      expect([status.stderr.trim(), status.exitCode]).toEqual([
        `cryo containerd status: private containerd in ${dir}: not found: it is not running (stopped with --keep-containers, or died), and shims of its containers run on (pid ${shimPid}): \`cryo containerd start --dir ${dir}\` serves them again; \`cryo containerd stop --dir ${dir}\` ends them and cleans up`,
        1,
      ]);

      const firstLog = readFileSync(join(dir, "containerd.log"), "utf8");
      expect(firstLog.length).toBeGreaterThan(0);
      expect((await cryo("containerd", "start", "--dir", dir)).exitCode).toBe(0);
      expect((await ctr(["tasks", "ls"])).stdout).toMatch(new RegExp(`^${k1}\\s+${taskPid}\\s+RUNNING`, "m"));
      // The second run's log follows the first's, which stays whole (it was written over from its first byte).
      expect(readFileSync(join(dir, "containerd.log"), "utf8").startsWith(firstLog)).toBe(true);
      const exec = await ctr(["tasks", "exec", "--exec-id", "e1", k1, "sh", "-c", "echo still-here"]);
      expect(exec.stdout).toBe("still-here\n");
    } finally {
      await cryo("containerd", "stop", "--dir", dir);
      rmSync(parent, { recursive: true, force: true });
    }
    expect(existsSync(dir)).toBe(false);
  }, 120_000);

  test("a bundle containerd left behind a Create it gave up on, naming a shared daemon that lives on, is cleaned up by the next start: its id can be used again", async () => {
    const parent = mkdtempSync(join(tmpdir(), "cryo-cli-"));
    const dir = join(parent, "ctd");
    const sock = join(dir, "containerd.sock");
    const ns = uniqueId("ghost");
    const k1 = uniqueId("k1");
    const ghost = uniqueId("ghost");
    const ctr = (args: string[]) => runCtr(sock, args, { namespace: ns, timeoutMs: 60_000 });
    const run = (id: string) => ctr(["run", "-d", "--runtime", "io.containerd.cryo.v2", "--annotation", "io.cryo.shim.grouping=per-namespace", testImage, id, "sleep", "1000"]);
    try {
      expect((await cryo("containerd", "start", "--dir", dir)).exitCode).toBe(0);
      expect((await ctr(["images", "import", (await buildFixtures()).archive])).exitCode).toBe(0);
      expect((await run(k1)).exitCode).toBe(0);
      // What containerd stopped in the middle of a Create leaves (seen with stop --keep-containers during a run):
      // the bundle, whose address is the per-namespace daemon's, and no container in that daemon.
      const state = join(dir, "state", "io.containerd.runtime.v2.task", ns);
      mkdirSync(join(state, ghost, "rootfs"), { recursive: true });
      for (const f of ["address", "config.json", "shim-binary-path"]) copyFileSync(join(state, k1, f), join(state, ghost, f));
      expect((await cryo("containerd", "stop", "--keep-containers", "--dir", dir)).exitCode).toBe(0);
      expect((await cryo("containerd", "start", "--dir", dir)).exitCode).toBe(0);
      // Before, Connect answered for any id: containerd kept a task for the bundle (not listed, as its State is
      // NOT_FOUND), and a container of that id failed ("task ...: already exists", then "mkdir ...: file exists").
      await waitFor(() => !existsSync(join(state, ghost)) || undefined, { what: "the left bundle to be removed", timeoutMs: 10_000 });
      const again = await run(ghost);
      expect(again.stderr).toBe("");
      expect(again.exitCode).toBe(0);
      expect((await ctr(["tasks", "ls"])).stdout).toMatch(new RegExp(`^${k1}\\s+\\d+\\s+RUNNING`, "m"));
    } finally {
      await cryo("containerd", "stop", "--dir", dir);
      rmSync(parent, { recursive: true, force: true });
    }
  }, 120_000);
});
