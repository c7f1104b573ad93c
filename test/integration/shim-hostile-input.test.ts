/**
 * Crafted ttrpc requests sent straight to a shim daemon's socket (not through containerd, which validates what it
 * sends): each is refused with the right code before it touches anything, nothing is written or removed outside
 * where it belongs, and the daemon goes on serving its other container (State answers at once after each).
 */
import { afterAll, beforeAll, expect, setDefaultTimeout, test } from "bun:test";
import { closeSync, constants as fsc, existsSync, mkdirSync, mkdtempSync, openSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { create, toBinary } from "@bufbuild/protobuf";
import { AnySchema } from "@bufbuild/protobuf/wkt";
import { Code, CryoError } from "../../src/errors.ts";
import { CheckpointOptionsSchema as RuncCheckpointOptionsSchema, OptionsSchema as RuncOptionsSchema } from "../../src/gen/containerd/runc/options/oci_pb.ts";
import { Task as TaskV2 } from "../../src/gen/containerd/runtime/task/v2/shim_pb.ts";
import { Status } from "../../src/gen/containerd/types/task/task_pb.ts";
import { connect } from "../../src/ttrpc/index.ts";
import { PrivateContainerd, ensureTestImage, processAlive, startPrivateContainerd, taskStatus, testImage, uniqueId, waitFor } from "../harness/index.ts";

setDefaultTimeout(120_000);
const RUNTIME = "io.containerd.cryo.v2";
let pc: PrivateContainerd;
let ns: string;
let dir: string;
/** The container the daemon serves throughout: it must keep answering. */
let victim: string;
let victimBundle: string;
let socket: string;
let shimPid: number;
let client: Awaited<ReturnType<typeof connect>>;

beforeAll(async () => {
  ns = uniqueId("hostile");
  pc = await startPrivateContainerd({ namespace: ns });
  await ensureTestImage(pc);
  dir = mkdtempSync("/tmp/cryo-hostile-");
  victim = uniqueId("victim");
  await pc.ctrOk(["run", "-d", "--runtime", RUNTIME, testImage, victim, "sleep", "1000"]);
  victimBundle = join(pc.state, "io.containerd.runtime.v2.task", ns, victim);
  socket = readFileSync(join(victimBundle, "address"), "utf8").trim().replace(/^unix:\/\//, "");
  client = await connect(socket);
  shimPid = Number((await call("connect", { id: victim })).shimPid);
});

afterAll(async () => {
  client?.close();
  if (victim) {
    await pc.ctr(["task", "kill", "--signal", "SIGKILL", victim]);
    await waitFor(async () => (await taskStatus(pc, victim)) !== "RUNNING", { timeoutMs: 10_000 }).catch(() => {});
    await pc.ctr(["task", "rm", victim]);
    await pc.ctr(["containers", "rm", victim]);
  }
  await pc?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

type Method = keyof (typeof TaskV2)["method"];

/** One call to the daemon, in the test's namespace unless told otherwise (the answer's fields these tests read). */
function call(method: Method, req: Record<string, unknown>, opts: { namespace?: string; timeoutMs?: number } = {}): Promise<{ shimPid?: bigint | number; status?: Status }> {
  return client.call(TaskV2, method as "state", req as never, { namespace: ns, timeoutMs: 15_000, ...opts }) as Promise<{ shimPid?: bigint | number; status?: Status }>;
}

/** The error a call fails with (a call that succeeds is a test failure). */
async function failure(method: Method, req: Record<string, unknown>, opts: { namespace?: string; timeoutMs?: number } = {}): Promise<CryoError> {
  return CryoError.from(await call(method, req, opts).then(() => new Error(`${method} succeeded`), (e: unknown) => e));
}

/** The daemon answers State of its container at once: its event loop is not stuck. */
async function stillServes(): Promise<void> {
  expect(processAlive(shimPid)).toBe(true);
  const st = await call("state", { id: victim }, { timeoutMs: 3_000 });
  expect(st.status).toBe(Status.RUNNING);
}

/** A bundle whose spec is the victim's, run on the victim's rootfs (read-only), in a cgroup of its own. */
function makeBundle(name: string, args = ["sleep", "1000"]): string {
  const b = join(dir, name);
  mkdirSync(b, { recursive: true });
  const spec = JSON.parse(readFileSync(join(victimBundle, "config.json"), "utf8"));
  spec.root = { path: join(victimBundle, "rootfs"), readonly: true };
  spec.process.args = args;
  spec.process.terminal = false;
  spec.linux.cgroupsPath = `/${ns}/${name}`;
  writeFileSync(join(b, "config.json"), JSON.stringify(spec));
  return b;
}

const createReq = (id: string, bundle: string, more: Record<string, unknown> = {}) => ({ id, bundle, rootfs: [], stdin: "", stdout: "", stderr: "", terminal: false, ...more });

/** Kills and deletes a task a bug let through (best effort). */
async function removeTask(id: string, namespace = ns): Promise<void> {
  await call("kill", { id, signal: 9 }, { namespace }).catch(() => {});
  await call("delete", { id }, { namespace, timeoutMs: 20_000 }).catch(() => {});
}

const execSpec = (args: string[]) =>
  create(AnySchema, { typeUrl: "types.containerd.io/opencontainers/runtime-spec/1/Process", value: new TextEncoder().encode(JSON.stringify({ args, cwd: "/", env: ["PATH=/bin:/usr/bin"], user: { uid: 0, gid: 0 } })) });

test("a container id, exec id or namespace that is not an identifier is INVALID_ARGUMENT, and no path it names is touched", async () => {
  const u = uniqueId("x");
  // Create "../<name>": the daemon removed the pending marker <socket>.pending/<id>, a file beside the socket.
  mkdirSync(`${socket}.pending`, { recursive: true });
  const beside = join(dirname(socket), `cryo-beside-${u}`);
  writeFileSync(beside, "keep");
  try {
    const e = await failure("create", createReq(`../cryo-beside-${u}`, makeBundle(`b-${u}`)));
    expect(e.code).toBe(Code.INVALID_ARGUMENT);
    expect(e.message).toContain("container id");
    expect(readFileSync(beside, "utf8")).toBe("keep");
  } finally {
    rmSync(beside, { force: true });
  }
  await stillServes();

  // Exec "x/../../…/tmp/<name>": runc wrote its pid file there, and the daemon removed it.
  const victimFile = `/tmp/cryo-victim-${u}`;
  writeFileSync(`${victimFile}.pid`, "keep");
  const execId = `x${"/..".repeat(20)}${victimFile}`;
  try {
    const e = await failure("exec", { id: victim, execId, spec: execSpec(["true"]), stdin: "", stdout: "", stderr: "", terminal: false });
    expect(e.code).toBe(Code.INVALID_ARGUMENT);
    expect(e.message).toContain("exec id");
    await call("start", { id: victim, execId }).catch(() => {});
    expect(readFileSync(`${victimFile}.pid`, "utf8")).toBe("keep");
  } finally {
    await call("delete", { id: victim, execId }).catch(() => {});
    rmSync(`${victimFile}.pid`, { force: true });
  }
  // Too long (containerd's limit is 76 characters), or empty where one is required.
  expect((await failure("exec", { id: victim, execId: "e".repeat(77), spec: execSpec(["true"]) })).code).toBe(Code.INVALID_ARGUMENT);
  expect((await failure("state", { id: victim, execId: "a..b" })).code).toBe(Code.INVALID_ARGUMENT);
  expect((await failure("kill", { id: "x/y", signal: 9 })).code).toBe(Code.INVALID_ARGUMENT);
  await stillServes();

  // A namespace "../../../tmp/<name>": runc's root became /tmp/<name>, and runc wrote its state there.
  const escaped = `/tmp/cryo-ns-${u}`;
  const nsBad = `../../..${escaped}`;
  const id = uniqueId("ns");
  try {
    const e = await failure("create", createReq(id, makeBundle(`b-ns-${u}`)), { namespace: nsBad });
    expect(e.code).toBe(Code.INVALID_ARGUMENT);
    expect(e.message).toContain("namespace");
    expect(existsSync(escaped)).toBe(false);
  } finally {
    await removeTask(id, nsBad);
    rmSync(escaped, { recursive: true, force: true });
  }
  await stillServes();
});

test("Kill with a signal above 64 is INVALID_ARGUMENT, for the init, all its processes and an exec; the container runs on", async () => {
  const execId = uniqueId("sleeper");
  await call("exec", { id: victim, execId, spec: execSpec(["sleep", "1000"]), stdin: "", stdout: "", stderr: "", terminal: false });
  await call("start", { id: victim, execId });
  try {
    for (const signal of [65, 1000, 2 ** 31]) {
      for (const req of [{ id: victim, signal }, { id: victim, signal, all: true }, { id: victim, execId, signal }]) {
        const e = await failure("kill", req);
        expect(e.code).toBe(Code.INVALID_ARGUMENT);
        expect(e.message).toContain(`signal ${signal}`);
      }
    }
    // 0 checks that the process is there (kill(2)), as runc's shim passes it on.
    await call("kill", { id: victim, execId, signal: 0 });
    await call("kill", { id: victim, signal: 0 });
    expect((await call("state", { id: victim, execId })).status).toBe(Status.RUNNING);
  } finally {
    await call("kill", { id: victim, execId, signal: 9 }).catch(() => {});
    await call("wait", { id: victim, execId }).catch(() => {});
    await call("delete", { id: victim, execId }).catch(() => {});
  }
  await stillServes();
});

test("a relative bundle or checkpoint path in Create is INVALID_ARGUMENT", async () => {
  const bundle = makeBundle(uniqueId("rel"));
  const rel = bundle.slice(1); // the daemon's directory is "/": it named this bundle before
  const e = await failure("create", createReq(uniqueId("rel"), rel));
  expect(e.code).toBe(Code.INVALID_ARGUMENT);
  expect(e.message).toContain("relative");
  const c = await failure("create", createReq(uniqueId("rel"), bundle, { checkpoint: "tmp/some-checkpoint" }));
  expect(c.code).toBe(Code.INVALID_ARGUMENT);
  expect(c.message).toContain("relative");
  await stillServes();
});

test("a FIFO, socket or device for the bundle's config.json is refused at once; the daemon goes on serving", async () => {
  const bundle = join(dir, uniqueId("fifo"));
  mkdirSync(bundle);
  const spec = join(bundle, "config.json");
  expect(Bun.spawnSync(["mkfifo", spec]).exitCode).toBe(0);
  try {
    // A daemon that opened the FIFO would block until the call's deadline: DEADLINE_EXCEEDED, not this code.
    const [e] = await Promise.all([failure("create", createReq(uniqueId("fifo"), bundle)), Bun.sleep(200).then(stillServes)]);
    expect(e.code).toBe(Code.FAILED_PRECONDITION);
    expect(e.message).toContain("config.json");
    expect(e.message).toContain("FIFO");
  } finally {
    // Unblocks a daemon stuck opening it (the bug): a writer comes and goes.
    try {
      closeSync(openSync(spec, fsc.O_WRONLY | fsc.O_NONBLOCK));
    } catch {}
  }
  rmSync(spec);
  symlinkSync("/dev/zero", spec);
  const z = await failure("create", createReq(uniqueId("dev"), bundle));
  expect(z.code).toBe(Code.FAILED_PRECONDITION);
  expect(z.message).toContain("device");
  await stillServes();
});

test("a FIFO in the directory a Checkpoint writes into, or in a checkpoint to restore, is refused at once; the daemon goes on serving", async () => {
  const images = join(dir, uniqueId("ckpt"));
  mkdirSync(images);
  const fifo = join(images, "descriptors.json");
  expect(Bun.spawnSync(["mkfifo", fifo]).exitCode).toBe(0);
  try {
    const [e] = await Promise.all([failure("checkpoint", { id: victim, path: images }, { timeoutMs: 60_000 }), Bun.sleep(200).then(stillServes)]);
    expect(e.code).toBe(Code.INVALID_ARGUMENT);
    expect(e.message).toContain(`${fifo} is a FIFO`);
    // The same directory as a checkpoint to restore from: refused before anything reads it.
    const r = await failure("create", createReq(uniqueId("rst"), makeBundle(uniqueId("rst")), { checkpoint: images }));
    expect(r.code).toBe(Code.INVALID_ARGUMENT);
    expect(r.message).toContain(`${fifo} is a FIFO`);
  } finally {
    // Unblocks a daemon stuck writing it (the bug): a reader comes and drains it.
    try {
      const fd = openSync(fifo, fsc.O_RDONLY | fsc.O_NONBLOCK);
      await Bun.sleep(500);
      closeSync(fd);
    } catch {}
  }
  await stillServes();
});

test("Checkpoint into a path that is a file, a device or a link to a file is FAILED_PRECONDITION naming it; the file is untouched", async () => {
  // Found by bench/ttrpc-fuzz.ts: mkdir's EEXIST came back UNKNOWN ("EEXIST: file already exists, mkdir '/dev/null'").
  const file = join(dir, uniqueId("ckfile"));
  writeFileSync(file, "keep");
  const link = join(dir, uniqueId("cklink"));
  symlinkSync(file, link);
  for (const [path, what] of [[file, `${file} is a file, not a directory`], [link, `${link} is a file, not a directory`], ["/dev/null", "/dev/null is a device, not a directory"], [`${file}/sub`, `${file} is a file, not a directory`]] as const) {
    const e = await failure("checkpoint", { id: victim, path }, { timeoutMs: 60_000 });
    expect(e.code).toBe(Code.FAILED_PRECONDITION);
    expect(e.message).toContain(what);
  }
  expect(readFileSync(file, "utf8")).toBe("keep");
  // A name longer than 255 bytes: INVALID_ARGUMENT (ENAMETOOLONG was UNKNOWN).
  const long = await failure("checkpoint", { id: victim, path: `/${"a".repeat(5000)}` }, { timeoutMs: 60_000 });
  expect(long.code).toBe(Code.INVALID_ARGUMENT);
  expect(long.message).toContain("too long");
  await stillServes();
});

test("Checkpoint options whose image or work path is on /sys or /proc are INVALID_ARGUMENT; nothing is made there and the container runs on", async () => {
  // The request's path was checked, the options' paths not: runc's CheckpointOptions image_path /sys/fs/cgroup/<x> (a
  // tmpfs on this cgroup v1 host) would have CRIU's images made among the host's cgroup hierarchies.
  const name = uniqueId("ckopt");
  const images = join(dir, uniqueId("ckimg"));
  for (const [fields, what] of [
    [{ imagePath: `/sys/fs/cgroup/${name}` }, `images directory /sys/fs/cgroup/${name}: invalid argument: is on /sys`],
    // `..` goes first (path.resolve): /proc/sys/fs/cgroup/<x>.
    [{ workPath: `/proc/self/cwd/../../sys/fs/cgroup/${name}` }, `work directory /proc/self/cwd/../../sys/fs/cgroup/${name}: invalid argument: is on /proc`],
  ] as const) {
    const options = create(AnySchema, { typeUrl: "containerd.runc.v1.CheckpointOptions", value: toBinary(RuncCheckpointOptionsSchema, create(RuncCheckpointOptionsSchema, fields)) });
    const e = await failure("checkpoint", { id: victim, path: images, options }, { timeoutMs: 60_000 });
    expect(e.code).toBe(Code.INVALID_ARGUMENT);
    expect(e.message).toContain(what);
  }
  expect(existsSync(`/sys/fs/cgroup/${name}`)).toBe(false);
  await stillServes();
});

test("Create asking for a terminal the bundle's process does not have is INVALID_ARGUMENT before runc runs", async () => {
  // Found by bench/ttrpc-fuzz.ts: runc refused it, UNKNOWN "cannot use console socket if runc will not detach or allocate tty".
  const id = uniqueId("tty");
  try {
    const e = await failure("create", createReq(id, makeBundle(`b-${id}`), { terminal: true }));
    expect(e.code).toBe(Code.INVALID_ARGUMENT);
    expect(e.message).toContain("the request asks for a terminal but the process spec's terminal is false");
    expect(existsSync(join("/run/containerd/runc", ns, id))).toBe(false);
  } finally {
    await removeTask(id);
  }
  await stillServes();
});

test("a file:// log that is a FIFO, or cannot be opened, fails Create and Exec before the process runs", async () => {
  const u = uniqueId("log");
  const fifo = join(dir, `log-fifo-${u}`);
  expect(Bun.spawnSync(["mkfifo", fifo]).exitCode).toBe(0);
  const id = uniqueId("logfifo");
  try {
    const [e] = await Promise.all([failure("create", createReq(id, makeBundle(`b-${id}`), { stdout: `file://${fifo}` })), Bun.sleep(200).then(stillServes)]);
    expect(e.code).toBe(Code.INVALID_ARGUMENT);
    expect(e.message).toContain("FIFO");
    expect(existsSync(join("/run/containerd/runc", ns, id))).toBe(false);
  } finally {
    try {
      closeSync(openSync(fifo, fsc.O_RDONLY | fsc.O_NONBLOCK));
    } catch {}
    await removeTask(id);
  }
  await stillServes();

  // A log whose directory cannot be made (a part of it is a file): the Create fails, no process ran.
  const bad = `file://${join(dir, `log-file-${u}`)}/sub/log`;
  writeFileSync(join(dir, `log-file-${u}`), "");
  const id2 = uniqueId("logbad");
  try {
    const e = await failure("create", createReq(id2, makeBundle(`b-${id2}`), { stdout: bad }));
    expect(e.code).toBe(Code.FAILED_PRECONDITION);
    expect(e.message).toContain("log");
    expect(existsSync(join("/run/containerd/runc", ns, id2))).toBe(false);
  } finally {
    await removeTask(id2);
  }
  // The same for an exec: its Start fails, no process ran, the container runs on.
  const execId = uniqueId("execlog");
  const pidsBefore = ((await call("pids", { id: victim })) as { processes?: unknown[] }).processes?.length;
  await call("exec", { id: victim, execId, spec: execSpec(["sleep", "1000"]), stdin: "", stdout: bad, stderr: "", terminal: false });
  const s = CryoError.from(await call("start", { id: victim, execId }).then(() => new Error("started"), (err: unknown) => err));
  expect(s.code).toBe(Code.FAILED_PRECONDITION);
  expect(((await call("pids", { id: victim })) as { processes?: unknown[] }).processes?.length).toBe(pidsBefore);
  await call("kill", { id: victim, execId, signal: 9 }).catch(() => {});
  await call("delete", { id: victim, execId }).catch(() => {});
  await stillServes();
});

test("a stdio path that is not a FIFO (a host file) is INVALID_ARGUMENT, as containerd's fifo package refuses it; the file is untouched", async () => {
  const target = join(dir, uniqueId("hostfile"));
  writeFileSync(target, "ORIGINAL");
  for (const slot of ["stdout", "stderr", "stdin"]) {
    const id = uniqueId("stdio");
    try {
      const e = await failure("create", createReq(id, makeBundle(`b-${id}`, ["sh", "-c", "echo OVERWRITTEN; echo OVERWRITTEN >&2; cat"]), { [slot]: target }));
      if (e.message.includes("succeeded")) {
        // The bug: the process writes into the host's file.
        await call("start", { id });
        await call("wait", { id }, { timeoutMs: 10_000 }).catch(() => {});
      }
      expect(readFileSync(target, "utf8")).toBe("ORIGINAL");
      expect(e.code).toBe(Code.INVALID_ARGUMENT);
      expect(e.message).toContain(`${target} is a regular file, not a FIFO`);
      expect(existsSync(join("/run/containerd/runc", ns, id))).toBe(false);
    } finally {
      await removeTask(id);
    }
  }
  await stillServes();
});

test("a file:// log with a host, or a stdio path with a NUL, is INVALID_ARGUMENT; nothing is written in the host's root", async () => {
  // Found by bench/ttrpc-fuzz.ts: stdout file://relative/<name> wrote /<name> (the host part was dropped).
  const name = `cryo-hostlog-${uniqueId("h")}`;
  const id = uniqueId("hostlog");
  try {
    const e = await failure("create", createReq(id, makeBundle(`b-${id}`), { stdout: `file://relative/${name}` }));
    expect(e.code).toBe(Code.INVALID_ARGUMENT);
    expect(e.message).toContain('names host "relative"');
    const execId = uniqueId("nul");
    await call("exec", { id: victim, execId, spec: execSpec(["true"]), stdin: "", stdout: `file://relative/${name}`, stderr: "", terminal: false });
    const s = CryoError.from(await call("start", { id: victim, execId }).then(() => new Error("started"), (err: unknown) => err));
    expect(s.code).toBe(Code.INVALID_ARGUMENT);
    await call("delete", { id: victim, execId }).catch(() => {});
    const n = await failure("exec", { id: victim, execId: uniqueId("nul"), spec: execSpec(["true"]), stdin: "", stdout: `/tmp/${name}\0x`, stderr: "", terminal: false });
    expect(n.code).toBe(Code.INVALID_ARGUMENT);
    expect(n.message).toContain("has a NUL byte");
    expect(existsSync(`/${name}`)).toBe(false);
  } finally {
    await removeTask(id);
    rmSync(`/${name}`, { force: true });
  }
  await stillServes();
});

test("Create whose runtime options' root is a file, or below a FIFO, is FAILED_PRECONDITION naming it, before runc runs", async () => {
  // Found by bench/ttrpc-fuzz.ts: runc failed, UNKNOWN "OCI runtime create failed: runc create failed: mkdir <fifo>: not a directory".
  const file = join(dir, uniqueId("rootfile"));
  writeFileSync(file, "keep");
  const fifo = join(dir, uniqueId("rootfifo"));
  expect(Bun.spawnSync(["mkfifo", fifo]).exitCode).toBe(0);
  for (const [root, what] of [[file, `${file} is a file, not a directory`], [join(fifo, "sub"), `${fifo} is a FIFO, not a directory`]] as const) {
    const id = uniqueId("root");
    const options = create(AnySchema, { typeUrl: "containerd.runc.v1.Options", value: toBinary(RuncOptionsSchema, create(RuncOptionsSchema, { root })) });
    try {
      const e = await failure("create", createReq(id, makeBundle(`b-${id}`), { options }));
      expect(e.code).toBe(Code.FAILED_PRECONDITION);
      expect(e.message).toContain(what);
    } finally {
      await removeTask(id);
    }
  }
  expect(readFileSync(file, "utf8")).toBe("keep");
  await stillServes();
});

test("an Exec whose process spec has a field of the wrong type is INVALID_ARGUMENT at the Exec, as runc's shim refuses it there; nothing is registered", async () => {
  // Found by bench/ttrpc-fuzz.ts: the Exec was accepted and its Start failed instead (runc's shim: Go's json.Unmarshal at
  // Exec, UNKNOWN "json: cannot unmarshal number -1 into Go struct field User.user.uid of type uint32").
  const spec = (process: Record<string, unknown>) => create(AnySchema, { typeUrl: "types.containerd.io/opencontainers/runtime-spec/1/Process", value: new TextEncoder().encode(JSON.stringify(process)) });
  const base = { args: ["true"], cwd: "/", env: ["PATH=/bin:/usr/bin"], user: { uid: 0, gid: 0 } };
  for (const [bad, words] of [
    [{ ...base, user: { uid: -1, gid: 0 } }, "user.uid: must be an integer from 0 to 4294967295"],
    [{ ...base, noNewPrivileges: "yes" }, "noNewPrivileges"],
  ] as const) {
    const execId = uniqueId("shape");
    const e = await failure("exec", { id: victim, execId, spec: spec(bad), stdin: "", stdout: "", stderr: "", terminal: false });
    expect(e.code).toBe(Code.INVALID_ARGUMENT);
    expect(e.message).toContain(words);
    expect((await failure("start", { id: victim, execId })).code).toBe(Code.NOT_FOUND);
  }
  // What runc exec refuses itself (a relative cwd) still passes the Exec and fails the Start, as with runc's shim.
  const execId = uniqueId("cwd");
  await call("exec", { id: victim, execId, spec: spec({ ...base, cwd: "relative" }), stdin: "", stdout: "", stderr: "", terminal: false });
  expect((await failure("start", { id: victim, execId })).code).toBe(Code.INVALID_ARGUMENT);
  await call("delete", { id: victim, execId });
  await stillServes();
});

test("Create with the runtime option SystemdCgroup: a cgroupsPath runc would refuse is INVALID_ARGUMENT, a host without systemd FAILED_PRECONDITION, before runc runs", async () => {
  // Found by bench/ttrpc-fuzz.ts (seed 106): runc refused both, UNKNOWN "OCI runtime create failed: runc create failed:
  // expected cgroupsPath to be of format "slice:prefix:name" ..." (this machine runs no systemd).
  expect(existsSync("/run/systemd/system")).toBe(false);
  const options = create(AnySchema, { typeUrl: "containerd.runc.v1.Options", value: toBinary(RuncOptionsSchema, create(RuncOptionsSchema, { systemdCgroup: true })) });
  const cases = [
    { cgroupsPath: undefined, code: Code.INVALID_ARGUMENT, text: "with the runtime option SystemdCgroup it must read slice:prefix:name" },
    { cgroupsPath: "system.slice:cryo:x", code: Code.FAILED_PRECONDITION, text: "systemd is not running on this host" },
  ];
  for (const c of cases) {
    const id = uniqueId("sdcg");
    const bundle = makeBundle(`b-${id}`);
    if (c.cgroupsPath !== undefined) {
      const spec = JSON.parse(readFileSync(join(bundle, "config.json"), "utf8"));
      spec.linux.cgroupsPath = c.cgroupsPath;
      writeFileSync(join(bundle, "config.json"), JSON.stringify(spec));
    }
    try {
      const e = await failure("create", createReq(id, bundle, { options }));
      expect(e.code).toBe(c.code);
      expect(e.message).toContain(c.text);
      // Refused before runc ran: no runc state for it.
      expect(existsSync(join("/run/containerd/runc", ns, id))).toBe(false);
    } finally {
      await removeTask(id);
    }
  }
  await stillServes();
});

test("a rootfs mount list whose later mount fails leaves none of the earlier ones mounted", async () => {
  const id = uniqueId("mnt");
  const bundle = makeBundle(`b-${id}`);
  const src = join(dir, `src-${id}`);
  mkdirSync(src);
  const target = join(bundle, "rootfs");
  const mountedAt = () => readFileSync("/proc/self/mountinfo", "utf8").split("\n").filter((l) => l.split(" ")[4] === target).length;
  try {
    const e = await failure("create", createReq(id, bundle, { rootfs: [
      { type: "bind", source: src, target: "", options: ["rbind", "ro"] },
      { type: "no-such-fs", source: "none", target: "", options: [] },
    ] }));
    expect(e.code).toBe(Code.INVALID_ARGUMENT);
    expect(e.message).toContain("no-such-fs");
    expect(mountedAt()).toBe(0);
  } finally {
    for (let i = 0; i < 4 && mountedAt() > 0; i++) Bun.spawnSync(["umount", target]);
  }
  await stillServes();
});

test("Create with the bundle of a container the daemon serves (also through a link) is FAILED_PRECONDITION; that container is untouched", async () => {
  const pidBefore = readFileSync(join(victimBundle, "init.pid"), "utf8");
  const runtimeBefore = readFileSync(join(victimBundle, "cryo-runtime.json"), "utf8");
  const link = join(dir, uniqueId("link"));
  symlinkSync(victimBundle, link);
  for (const bundle of [victimBundle, `${victimBundle}/`, link]) {
    const id = uniqueId("same");
    try {
      const e = await failure("create", createReq(id, bundle));
      expect(e.code).toBe(Code.FAILED_PRECONDITION);
      expect(e.message).toContain(victim);
    } finally {
      await removeTask(id);
    }
  }
  expect(readFileSync(join(victimBundle, "init.pid"), "utf8")).toBe(pidBefore);
  expect(readFileSync(join(victimBundle, "cryo-runtime.json"), "utf8")).toBe(runtimeBefore);
  await stillServes();
});

test("Shutdown{now} while the daemon serves a container is ignored, as containerd's runc shim does", async () => {
  await call("shutdown", { id: victim, now: true });
  await Bun.sleep(1_000);
  await stillServes();
  expect(existsSync(socket)).toBe(true);
});
