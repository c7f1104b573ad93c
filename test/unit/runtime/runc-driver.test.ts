// The runc driver against a fake runc (a shell script written per test): the command lines it
// builds, stdin for update, output parsing, and how failures, deadlines and cancellation surface.
import { afterEach, expect, test } from "bun:test";
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Code, CryoError } from "../../../src/errors.ts";
import { checkExecProcessShape, createRunc, readPidFile } from "../../../src/runtime/index.ts";

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

const script = `#!/bin/sh
printf '%s\\n' "$@" > "$FAKE_DIR/argv"
log=""; prev=""
for a in "$@"; do [ "$prev" = "--log" ] && log="$a"; prev="$a"; done
echo "$log" > "$FAKE_DIR/logpath"
case "$FAKE_MODE" in
  ok) exit 0 ;;
  stdin) cat > "$FAKE_DIR/stdin"; exit 0 ;;
  ps) echo '[101,202]'; exit 0 ;;
  ps-null) echo 'null'; exit 0 ;;
  state) echo '{"ociVersion":"1.0.2","id":"c1","pid":7,"status":"running","bundle":"/b","rootfs":"/b/rootfs","created":"2024-01-01T00:00:00.1Z","owner":""}'; exit 0 ;;
  garbage) echo 'not json'; exit 0 ;;
  fail) printf '%s\\n' '{"level":"info","msg":"hello","time":"t"}' '{"level":"error","msg":"container does not exist","time":"t"}' >> "$log"; echo "container does not exist" >&2; exit 1 ;;
  fail-stderr) echo "something odd" >&2; exit 2 ;;
  process) cp "$(sed -n '/--process/{n;p;}' "$FAKE_DIR/argv")" "$FAKE_DIR/process.json"; exit 0 ;;
  sleep) exec sleep 30 ;;
  env) env > "$FAKE_DIR/env"; exit 0 ;;
esac
exit 99
`;

function fake(mode: string, extra: { logPath?: string; timeoutMs?: number } = {}) {
  const dir = mkdtempSync(join(tmpdir(), "cryo-fake-runc-"));
  dirs.push(dir);
  const bin = join(dir, "runc");
  writeFileSync(bin, script);
  chmodSync(bin, 0o755);
  const runc = createRunc({ binary: bin, root: join(dir, "root"), env: { FAKE_DIR: dir, FAKE_MODE: mode }, systemdCgroup: true, debug: true, ...extra });
  const argv = (): string[] => readFileSync(join(dir, "argv"), "utf8").trimEnd().split("\n");
  return { dir, runc, argv };
}

async function failure(p: Promise<unknown>): Promise<CryoError> {
  const e = await p.then(
    () => undefined,
    (x: unknown) => x,
  );
  expect(e).toBeInstanceOf(CryoError);
  return e as CryoError;
}

test("global flags and each command's arguments", async () => {
  const { runc, argv, dir } = fake("ok");
  const g = ["--root", join(dir, "root"), "--log"];
  await runc.create("c1", "/bundle", { pidFile: "/p/init.pid", consoleSocket: "/s/pty.sock", noPivot: true, noNewKeyring: true });
  const a = argv();
  expect(a.slice(0, 3)).toEqual(g);
  expect(a.slice(4)).toEqual(["--log-format", "json", "--systemd-cgroup", "--debug", "create", "--bundle", "/bundle", "--pid-file", "/p/init.pid", "--console-socket", "/s/pty.sock", "--no-pivot", "--no-new-keyring", "c1"]);
  await runc.start("c1");
  expect(argv().slice(-2)).toEqual(["start", "c1"]);
  await runc.kill("c1", "SIGTERM", { all: true });
  expect(argv().slice(-4)).toEqual(["kill", "--all", "c1", "TERM"]);
  await runc.kill("c1", 9);
  expect(argv().slice(-3)).toEqual(["kill", "c1", "9"]);
  // 0 asks whether the process is there, as containerd's runc shim passes it on.
  await runc.kill("c1", 0);
  expect(argv().slice(-3)).toEqual(["kill", "c1", "0"]);
  await runc.delete("c1", { force: true });
  expect(argv().slice(-3)).toEqual(["delete", "--force", "c1"]);
  await runc.pause("c1");
  expect(argv().slice(-2)).toEqual(["pause", "c1"]);
  await runc.resume("c1");
  expect(argv().slice(-2)).toEqual(["resume", "c1"]);
  // The per-call log file is removed afterwards.
  expect(existsSync(readFileSync(join(dir, "logpath"), "utf8").trim())).toBe(false);
});

test("exec writes the process spec to a file in runc's state directory of the container (a temp file without one) and removes it", async () => {
  const { runc, argv, dir } = fake("process");
  const spec = { args: ["sh", "-c", "true"], cwd: "/", env: ["A=1"], terminal: false, capabilities: { bounding: ["CAP_KILL"] } };
  await runc.exec("c1", spec, { pidFile: "/p/exec.pid" });
  const a = argv();
  const at = a.indexOf("exec");
  expect(a.slice(at, at + 2)).toEqual(["exec", "--process"]);
  expect(a.slice(at + 3)).toEqual(["--detach", "--pid-file", "/p/exec.pid", "c1"]);
  expect(JSON.parse(readFileSync(join(dir, "process.json"), "utf8"))).toEqual(spec);
  expect(existsSync(a[at + 2] as string)).toBe(false);
  // An rlimit of RLIM_INFINITY (a bigint from the shim's parse) reaches runc exact: runc refused the rounded number.
  await runc.exec("c1", { ...spec, rlimits: [{ type: "RLIMIT_CORE", hard: 18446744073709551615n, soft: 18446744073709551615n }] } as never, { pidFile: "/p/exec.pid" });
  expect(readFileSync(join(dir, "process.json"), "utf8")).toContain('"rlimits":[{"type":"RLIMIT_CORE","hard":18446744073709551615,"soft":18446744073709551615}]');
  // With runc's state directory of the container there, the file is written in it (runc delete removes it whole, also
  // after a shim killed during the call), and removed after the call as well.
  mkdirSync(join(dir, "root", "c1"), { recursive: true });
  await runc.exec("c1", spec, { pidFile: "/p/exec.pid" });
  const inState = argv()[argv().indexOf("--process") + 1] as string;
  expect(inState.startsWith(`${join(dir, "root", "c1")}/cryo-process-`)).toBe(true);
  expect(existsSync(inState)).toBe(false);
  const empty = await failure(runc.exec("c1", { args: [], cwd: "/" }, { pidFile: "/p" }));
  expect(empty.code).toBe(Code.INVALID_ARGUMENT);
  expect(empty.message).toBe("exec process for container c1: invalid argument: args: must not be empty");
  // A process without args (CRI's ExecSync with an empty command: containerd leaves an empty list out): runc's words.
  expect((await failure(runc.exec("c1", { cwd: "/" } as never, { pidFile: "/p" }))).message).toBe("exec process for container c1: invalid argument: args: must not be empty");
  expect((await failure(runc.exec("c1", { args: "sh", cwd: "/" } as never, { pidFile: "/p" }))).message).toBe("exec process for container c1: invalid argument: args: must be a list of strings");
  expect((await failure(runc.exec("c1", { args: ["x"], cwd: "relative" }, { pidFile: "/p" }))).code).toBe(Code.INVALID_ARGUMENT);
  // Numbers runc's Go fields cannot take are refused here, naming the field (found by bench/ttrpc-fuzz.ts: runc failed
  // the exec, UNKNOWN "json: cannot unmarshal number -1 into Go struct field User.user.uid of type uint32").
  const hostile: [Record<string, unknown>, string][] = [
    [{ user: { uid: -1, gid: 0 } }, "user.uid: must be an integer from 0 to 4294967295"],
    [{ user: { uid: 0, gid: 2 ** 32 } }, "user.gid: must be an integer from 0 to 4294967295"],
    [{ user: { uid: 0, gid: 0, additionalGids: [1.5] } }, "user.additionalGids.0: must be an integer from 0 to 4294967295"],
    [{ rlimits: [{ type: "RLIMIT_NOFILE", hard: 18446744073709551616n, soft: 1 }] }, "rlimits.0.hard: must be an integer from 0 to 18446744073709551615"],
    [{ rlimits: [{ type: "RLIMIT_NOFILE", hard: 1, soft: true }] }, "rlimits.0.soft: must be an integer from 0 to 18446744073709551615"],
    [{ user: { uid: "0", gid: 0 } }, "user.uid: must be an integer from 0 to 4294967295"],
    [{ terminal: true, consoleSize: { height: -9223372036854775808n, width: 80 } }, "consoleSize.height: must be an integer from 0 to 18446744073709551615"],
    [{ capabilities: { bounding: ["CAP_CHOWN", 7] } }, "capabilities.bounding.1"],
    [{ noNewPrivileges: 1 }, "noNewPrivileges"],
    [{ oomScoreAdj: 0.5 }, "oomScoreAdj"],
  ];
  const before = argv().length;
  for (const [extra, words] of hostile) {
    const e = await failure(runc.exec("c1", { args: ["true"], cwd: "/", ...extra } as never, { pidFile: "/p" }));
    expect(e.code).toBe(Code.INVALID_ARGUMENT);
    expect(e.message).toContain(`exec process for container c1: invalid argument: ${words}`);
  }
  expect(argv().length).toBe(before); // runc never ran
  // What runc takes passes: the largest values, bigints from the shim's parse.
  await runc.exec("c1", { args: ["true"], cwd: "/", user: { uid: 4294967295, gid: 0, additionalGids: [1, 2] }, rlimits: [{ type: "RLIMIT_NOFILE", hard: 18446744073709551615n, soft: 1024 }], consoleSize: { height: 24, width: 80 }, oomScoreAdj: -1000 } as never, { pidFile: "/p" });
  // At Exec (checkExecProcessShape) the same types are refused in the same words, as Go's unmarshal refuses them at
  // containerd's runc shim's Exec; what runc exec itself refuses (no args, a relative cwd) waits for the Start.
  for (const [extra, words] of hostile) {
    const e = (() => {
      try {
        checkExecProcessShape("c1", { args: ["true"], cwd: "/", ...extra });
      } catch (err) {
        return CryoError.from(err);
      }
      throw new Error(`${JSON.stringify(Object.keys(extra))} passed`);
    })();
    expect(e.code).toBe(Code.INVALID_ARGUMENT);
    expect(e.message).toContain(`exec process for container c1: invalid argument: ${words}`);
  }
  expect(() => checkExecProcessShape("c1", { args: "sh" })).toThrow("args: must be a list of strings");
  for (const runcRefuses of [{}, { args: [] }, { args: ["x"], cwd: "relative" }]) expect(() => checkExecProcessShape("c1", runcRefuses)).not.toThrow();
});

test("update sends the resources on stdin", async () => {
  const { runc, argv, dir } = fake("stdin");
  await runc.update("c1", { memory: { limit: 1048576 }, pids: { limit: 10 } });
  expect(argv().slice(-4)).toEqual(["update", "--resources", "-", "c1"]);
  expect(JSON.parse(readFileSync(join(dir, "stdin"), "utf8"))).toEqual({ memory: { limit: 1048576 }, pids: { limit: 10 } });
});

test("ps and state parse and validate runc's output", async () => {
  expect(await fake("ps").runc.ps("c1")).toEqual([101, 202]);
  expect(await fake("ps-null").runc.ps("c1")).toEqual([]);
  const st = await fake("state").runc.state("c1");
  expect(st).toMatchObject({ id: "c1", pid: 7, status: "running", bundle: "/b" });
  const bad = await failure(fake("garbage").runc.state("c1"));
  expect(bad.code).toBe(Code.UNKNOWN);
  expect(bad.message).toContain("not JSON");
});

test("a failure carries the last error line of runc's JSON log, classified", async () => {
  const e = await failure(fake("fail").runc.kill("c1", 9));
  expect(e.code).toBe(Code.NOT_FOUND);
  expect(e.message).toBe("runc kill c1: not found: container does not exist");
  const e2 = await failure(fake("fail-stderr").runc.start("c1"));
  expect(e2.code).toBe(Code.UNKNOWN);
  expect(e2.message).toContain("something odd");
});

test("with a persistent log file, only this call's lines count", async () => {
  const dir = mkdtempSync(join(tmpdir(), "cryo-log-"));
  dirs.push(dir);
  const logPath = join(dir, "log.json");
  writeFileSync(logPath, '{"level":"error","msg":"container paused","time":"old"}\n');
  const { runc } = fake("fail", { logPath });
  const e = await failure(runc.start("c1"));
  expect(e.code).toBe(Code.NOT_FOUND);
  expect(readFileSync(logPath, "utf8")).toContain("container paused");
});

test("deadline and cancellation kill runc", async () => {
  const { runc } = fake("sleep", { timeoutMs: 50 });
  const e = await failure(runc.start("c1"));
  expect(e.code).toBe(Code.DEADLINE_EXCEEDED);
  const ac = new AbortController();
  const p = runc.start("c1", { timeoutMs: 60_000, signal: ac.signal });
  ac.abort();
  expect((await failure(p)).code).toBe(Code.CANCELLED);
  const pre = new AbortController();
  pre.abort();
  expect((await failure(runc.delete("c1", { signal: pre.signal }))).code).toBe(Code.CANCELLED);
});

test("bad input is refused before runc runs", async () => {
  const { runc, dir } = fake("ok");
  expect((await failure(runc.start("a/b"))).code).toBe(Code.INVALID_ARGUMENT);
  expect((await failure(runc.kill("c1", -1))).code).toBe(Code.INVALID_ARGUMENT);
  expect(readdirSync(dir)).not.toContain("argv");
  expect(() => createRunc({ root: "" })).toThrow("invalid argument");
  const missing = createRunc({ binary: join(dir, "no-such-runc"), root: dir });
  expect((await failure(missing.start("c1"))).message).toContain("cannot run");
  // A binary that is not there, or not executable (a FIFO, a plain file): FAILED_PRECONDITION naming it, not UNKNOWN.
  writeFileSync(join(dir, "plain"), "");
  expect(Bun.spawnSync(["mkfifo", join(dir, "fifo")]).exitCode).toBe(0);
  for (const binary of [join(dir, "no-such-runc"), join(dir, "plain"), join(dir, "fifo")]) {
    const e = await failure(createRunc({ binary, root: dir }).start("c1"));
    expect(e.code).toBe(Code.FAILED_PRECONDITION);
    expect(e.message).toContain(`runc start c1: failed precondition: cannot run ${binary}`);
  }
  // A link loop is the host's state too; a name longer than the kernel takes is the options' fault (both were UNKNOWN).
  symlinkSync(join(dir, "loop"), join(dir, "loop"));
  expect((await failure(createRunc({ binary: join(dir, "loop"), root: dir }).start("c1"))).code).toBe(Code.FAILED_PRECONDITION);
  for (const binary of [join(dir, "a".repeat(300)), join(dir, "d/".repeat(3000), "runc")]) {
    const e = await failure(createRunc({ binary, root: dir }).start("c1"));
    expect(e.code).toBe(Code.INVALID_ARGUMENT);
    expect(e.message).toContain("runc start c1: invalid argument: cannot run");
  }
});

test("readPidFile", () => {
  const dir = mkdtempSync(join(tmpdir(), "cryo-pid-"));
  dirs.push(dir);
  writeFileSync(join(dir, "ok"), "1234");
  writeFileSync(join(dir, "bad"), "12x");
  expect(readPidFile(join(dir, "ok"))).toBe(1234);
  expect(() => readPidFile(join(dir, "bad"))).toThrow("invalid argument");
  try {
    readPidFile(join(dir, "none"));
  } catch (e) {
    expect((e as CryoError).code).toBe(Code.NOT_FOUND);
  }
});

test("runc never gets the shim's NOTIFY_SOCKET (systemd's, through containerd); a call given one gets that", async () => {
  const was = process.env.NOTIFY_SOCKET;
  process.env.NOTIFY_SOCKET = "/run/systemd/notify";
  try {
    const { runc, dir } = fake("env");
    const env = () => readFileSync(join(dir, "env"), "utf8").split("\n");
    await runc.create("c1", "/bundle", { pidFile: "/p" });
    expect(env().filter((l) => l.startsWith("NOTIFY_SOCKET="))).toEqual([]);
    expect(env()).toContain("FAKE_MODE=env"); // the driver's own variables stay
    await runc.start("c1");
    expect(env().filter((l) => l.startsWith("NOTIFY_SOCKET="))).toEqual([]);
    await runc.create("c1", "/bundle", { pidFile: "/p", notifySocket: "/run/app.sock" });
    expect(env().filter((l) => l.startsWith("NOTIFY_SOCKET="))).toEqual(["NOTIFY_SOCKET=/run/app.sock"]);
  } finally {
    if (was === undefined) delete process.env.NOTIFY_SOCKET;
    else process.env.NOTIFY_SOCKET = was;
  }
});
