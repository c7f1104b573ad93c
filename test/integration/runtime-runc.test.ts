// Integration: the runc driver, the reaper and the console socket against real runc containers.
// Needs root, runc and busybox-static. Each test uses its own runc root, bundle and cgroup.
import { afterAll, afterEach, beforeAll, expect, test } from "bun:test";
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readSync, rmSync, symlinkSync, writeFileSync, writeSync } from "node:fs";
import { read } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Code, CryoError } from "../../src/errors.ts";
import { close, createConsoleSocket, createReaper, pipe, readProcStat, setNonblocking, setWinsize, type Reaper } from "../../src/sys/index.ts";
import { createRunc, listContainers, readPidFile, readRuncState, type Runc } from "../../src/runtime/index.ts";

const BUSYBOX = "/usr/bin/busybox";
let reaper: Reaper;
let base: string;
const live: { runc: Runc; id: string; cgroup: string }[] = [];

beforeAll(() => {
  reaper = createReaper();
  base = mkdtempSync(join(tmpdir(), "cryo-runtime-it-"));
});

afterEach(async () => {
  for (const c of live.splice(0)) {
    await c.runc.delete(c.id, { force: true }).catch(() => undefined);
    for (const ctl of ["blkio", "cpu", "cpuacct", "cpuset", "devices", "freezer", "memory", "pids", "systemd", "unified"]) {
      const dir = `/sys/fs/cgroup/${ctl}${c.cgroup}`;
      if (existsSync(dir)) rmSync(dir, { recursive: false, force: true });
    }
  }
});

afterAll(() => {
  reaper[Symbol.dispose]();
  rmSync(base, { recursive: true, force: true });
});

interface Bundle {
  dir: string;
  id: string;
  cgroup: string;
  runc: Runc;
  root: string;
}

/** Makes a bundle: busybox rootfs with applet links, config from `runc spec`, unique cgroup and runc root. */
function makeBundle(args: string[], opts: { terminal?: boolean } = {}): Bundle {
  const dir = mkdtempSync(join(base, "b-"));
  const suffix = dir.slice(-6).replace(/[^A-Za-z0-9]/g, "x");
  const id = `cryo-it-${suffix}-${Math.floor(Math.random() * 1e6)}`;
  const rootfs = join(dir, "rootfs");
  mkdirSync(join(rootfs, "bin"), { recursive: true });
  for (const d of ["proc", "sys", "dev", "tmp", "etc"]) mkdirSync(join(rootfs, d), { recursive: true });
  copyFileSync(BUSYBOX, join(rootfs, "bin", "busybox"));
  Bun.spawnSync(["chmod", "755", join(rootfs, "bin", "busybox")]);
  const applets = Bun.spawnSync([BUSYBOX, "--list"]).stdout.toString().split("\n").filter((a) => a && a !== "busybox");
  for (const a of applets) symlinkSync("busybox", join(rootfs, "bin", a));
  const spec = Bun.spawnSync(["runc", "spec"], { cwd: dir });
  expect(spec.exitCode).toBe(0);
  const config = JSON.parse(readFileSync(join(dir, "config.json"), "utf8"));
  const cgroup = `/cryo-it-${id}`;
  config.process.args = args;
  config.process.terminal = opts.terminal ?? false;
  config.process.env = ["PATH=/bin", "TERM=xterm"];
  config.root.readonly = false;
  config.linux.cgroupsPath = cgroup;
  config.annotations = { "org.cryo.test/id": id };
  writeFileSync(join(dir, "config.json"), JSON.stringify(config, null, 1));
  const root = join(dir, "runc-root");
  const runc = createRunc({ root });
  live.push({ runc, id, cgroup });
  return { dir, id, cgroup, runc, root };
}

/** `runc list --format json` under a root, parsed. */
function runcList(root: string): unknown[] {
  const r = Bun.spawnSync(["runc", "--root", root, "list", "--format", "json"]);
  expect(r.exitCode).toBe(0);
  return JSON.parse(r.stdout.toString() || "[]") ?? [];
}

/** Reads a blocking fd to EOF on the thread pool. */
function readToEnd(fd: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    const step = (): void => {
      const buf = Buffer.alloc(4096);
      read(fd, buf, 0, buf.length, null, (err, n) => {
        if (err) return reject(err);
        if (n === 0) return resolve(Buffer.concat(chunks).toString());
        chunks.push(buf.subarray(0, n));
        step();
      });
    };
    step();
  });
}

/** Polls a nonblocking fd until the accumulated text matches re (deadline 10 s); returns the text. */
async function readUntil(fd: number, re: RegExp, sofar: { text: string }): Promise<string> {
  const deadline = Date.now() + 10_000;
  const buf = Buffer.alloc(4096);
  while (!re.test(sofar.text)) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${re} in ${JSON.stringify(sofar.text)}`);
    try {
      const n = readSync(fd, buf, 0, buf.length, null);
      sofar.text += buf.subarray(0, n).toString();
    } catch (e) {
      if ((e as { code?: string }).code !== "EAGAIN") throw e;
      await Bun.sleep(10);
    }
  }
  return sofar.text;
}

async function expectCode(p: Promise<unknown>, code: number): Promise<CryoError> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(CryoError);
  expect((err as CryoError).code).toBe(code as never);
  return err as CryoError;
}

test("create/start an init that exits 7: the reaper reports 7", async () => {
  const b = makeBundle(["sh", "-c", "exit 7"]);
  const pidFile = join(b.dir, "init.pid");
  await b.runc.create(b.id, b.dir, { pidFile });
  const pid = readPidFile(pidFile);
  const exit = reaper.watch(pid);
  expect((await b.runc.state(b.id)).status).toBe("created");
  await b.runc.start(b.id);
  expect((await exit).status).toBe(7);
  expect((await b.runc.state(b.id)).status).toBe("stopped");
  await b.runc.delete(b.id);
  expect(existsSync(join(b.root, b.id))).toBe(false);
});

test("an init that exits before anyone watches it: its status is kept for the later watch", async () => {
  const b = makeBundle(["sh", "-c", "exit 7"]);
  const pidFile = join(b.dir, "init.pid");
  await b.runc.create(b.id, b.dir, { pidFile });
  await b.runc.start(b.id);
  const pid = readPidFile(pidFile);
  // Wait (by condition) until init is stopped and gone from /proc: the reaper collected it on
  // SIGCHLD although nobody watched it yet.
  const deadline = Date.now() + 10_000;
  while (listContainers(b.root)[0]?.status !== "stopped" || readProcStat(pid) !== undefined) {
    if (Date.now() > deadline) throw new Error("container init was not reaped");
    await Bun.sleep(10);
  }
  expect((await reaper.watch(pid)).status).toBe(7);
  await b.runc.delete(b.id);
});

test("lifecycle: ps, exec with output and exit code, pause/resume, update, SIGKILL -> 137, list vs runc list", async () => {
  const b = makeBundle(["sleep", "1000"]);
  const pidFile = join(b.dir, "init.pid");
  await b.runc.create(b.id, b.dir, { pidFile });
  const pid = readPidFile(pidFile);
  const initExit = reaper.watch(pid);
  expect(listContainers(b.root)).toEqual(runcList(b.root) as never);
  expect(listContainers(b.root)[0]?.status).toBe("created");

  await b.runc.start(b.id);
  expect(listContainers(b.root)).toEqual(runcList(b.root) as never);
  expect(listContainers(b.root)[0]).toMatchObject({ id: b.id, pid, status: "running", bundle: b.dir, rootfs: join(b.dir, "rootfs"), owner: "root" });
  expect(await b.runc.ps(b.id)).toEqual([pid]);

  // state.json: the fields cryo relies on.
  const st = readRuncState(b.root, b.id);
  expect(st.id).toBe(b.id);
  expect(st.init_process_pid).toBe(pid);
  expect(st.config.labels).toContain(`bundle=${b.dir}`);
  expect(st.cgroup_paths.freezer).toBe(`/sys/fs/cgroup/freezer${b.cgroup}`);
  expect(st.namespace_paths.NEWPID).toBe(`/proc/${pid}/ns/pid`);
  expect(st.external_descriptors).toEqual(["/dev/null", "/dev/null", "/dev/null"]);
  expect(st.config.namespaces.map((n) => n.type)).toContain("NEWPID");
  expect(st.created).toBe((await b.runc.state(b.id)).created);

  // exec with its own stdout pipe, exit code through the reaper.
  const [r, w] = pipe();
  const execPidFile = join(b.dir, "exec.pid");
  await b.runc.exec(b.id, { args: ["sh", "-c", "echo hi-from-exec; exit 3"], cwd: "/", env: ["PATH=/bin"] }, { pidFile: execPidFile, stdio: ["ignore", w, w] });
  close(w);
  const execPid = readPidFile(execPidFile);
  const [out, execExit] = await Promise.all([readToEnd(r), reaper.watch(execPid)]);
  close(r);
  expect(out).toBe("hi-from-exec\n");
  expect(execExit.status).toBe(3);

  // pause/resume: status in both listings.
  await b.runc.pause(b.id);
  expect(listContainers(b.root)[0]?.status).toBe("paused");
  expect(listContainers(b.root)).toEqual(runcList(b.root) as never);
  await expectCode(b.runc.pause(b.id), Code.FAILED_PRECONDITION);
  await b.runc.resume(b.id);
  expect(listContainers(b.root)[0]?.status).toBe("running");
  await expectCode(b.runc.resume(b.id), Code.FAILED_PRECONDITION);

  // update resources through stdin.
  await b.runc.update(b.id, { pids: { limit: 42 } });
  expect(readFileSync(`/sys/fs/cgroup/pids${b.cgroup}/pids.max`, "utf8").trim()).toBe("42");

  // delete while running is refused; SIGKILL ends it with 137.
  await expectCode(b.runc.delete(b.id), Code.FAILED_PRECONDITION);
  await b.runc.kill(b.id, "KILL");
  expect((await initExit).status).toBe(137);
  expect(listContainers(b.root)[0]).toMatchObject({ status: "stopped", pid: 0 });
  expect(listContainers(b.root)).toEqual(runcList(b.root) as never);
  await expectCode(b.runc.kill(b.id, 15), Code.FAILED_PRECONDITION);
  await expectCode(b.runc.exec(b.id, { args: ["true"], cwd: "/" }, { pidFile: join(b.dir, "x.pid") }), Code.FAILED_PRECONDITION);
  await b.runc.delete(b.id);
  expect(listContainers(b.root)).toEqual([]);
  expect(existsSync(`/sys/fs/cgroup/freezer${b.cgroup}`)).toBe(false);
});

test("terminal mode: the pty master comes through the console socket and talks to the shell", async () => {
  const b = makeBundle(["sh"], { terminal: true });
  const pidFile = join(b.dir, "init.pid");
  using sock = createConsoleSocket();
  await b.runc.create(b.id, b.dir, { pidFile, consoleSocket: sock.path });
  const { fd: master, name } = await sock.receive();
  try {
    // runc sends the master with the name of the file it opened: /dev/ptmx.
    expect(name).toBe("/dev/ptmx");
    const exit = reaper.watch(readPidFile(pidFile));
    setWinsize(master, 40, 100);
    setNonblocking(master, true);
    await b.runc.start(b.id);
    const seen = { text: "" };
    writeSync(master, "echo hi\n");
    // The tty echoes the input line ("echo hi"); a line that is exactly "hi" is the shell's output.
    await readUntil(master, /(^|\n)hi\r?\n/, seen);
    writeSync(master, "stty size\n");
    await readUntil(master, /(^|\n)40 100\r?\n/, seen);
    writeSync(master, "exit 5\n");
    expect((await exit).status).toBe(5);
  } finally {
    close(master);
  }
});

test("exec with a terminal gets its own pty through the console socket", async () => {
  const b = makeBundle(["sleep", "1000"]);
  await b.runc.create(b.id, b.dir, { pidFile: join(b.dir, "init.pid") });
  const initExit = reaper.watch(readPidFile(join(b.dir, "init.pid")));
  await b.runc.start(b.id);
  using sock = createConsoleSocket();
  const execPidFile = join(b.dir, "exec.pid");
  await b.runc.exec(b.id, { args: ["sh", "-c", "tty; exit 4"], cwd: "/", terminal: true, env: ["PATH=/bin"] }, { pidFile: execPidFile, consoleSocket: sock.path });
  const { fd } = await sock.receive();
  try {
    setNonblocking(fd, true);
    const exit = reaper.watch(readPidFile(execPidFile));
    await readUntil(fd, /\/dev\/pts\/\d+/, { text: "" });
    expect((await exit).status).toBe(4);
  } finally {
    close(fd);
  }
  await b.runc.kill(b.id, "SIGKILL");
  expect((await initExit).status).toBe(137);
});

test("container-level errors carry runc's line and the right code", async () => {
  const b = makeBundle(["sleep", "1000"]);
  const missing = await expectCode(b.runc.kill("no-such-container", 9), Code.NOT_FOUND);
  expect(missing.message).toContain("container does not exist");
  await expectCode(b.runc.state("no-such-container"), Code.NOT_FOUND);
  await expectCode(b.runc.start("bad/id"), Code.INVALID_ARGUMENT);
  await b.runc.create(b.id, b.dir, { pidFile: join(b.dir, "init.pid") });
  const initExit = reaper.watch(readPidFile(join(b.dir, "init.pid")));
  const dup = await expectCode(b.runc.create(b.id, b.dir, { pidFile: join(b.dir, "init2.pid") }), Code.ALREADY_EXISTS);
  expect(dup.message).toContain("container with given ID already exists");
  await expectCode(b.runc.exec(b.id, { args: [], cwd: "/" }, { pidFile: join(b.dir, "x.pid") }), Code.INVALID_ARGUMENT);
  const badBundle = await expectCode(
    b.runc.create(`${b.id}-2`, join(b.dir, "nowhere"), { pidFile: join(b.dir, "y.pid") }),
    Code.UNKNOWN,
  );
  expect(badBundle.message).toMatch(/config\.json|no such file/);
  await b.runc.delete(b.id, { force: true });
  expect((await initExit).status).toBe(137);
});
