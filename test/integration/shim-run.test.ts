/**
 * `ctr run` through the cryo shim against a private containerd: output, exit codes, stdin, terminal,
 * and the detached lifecycle (task ls/exec/ps/metrics/pause/resume/kill/rm) with nothing left behind.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { chmodSync, closeSync, constants, copyFileSync, existsSync, mkdirSync, mkdtempSync, openSync, readdirSync, readFileSync, readSync, rmSync, writeFileSync } from "node:fs";
import { pipe, setNonblocking } from "../../src/sys/index.ts";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ensureTestImage, openPty, parseCtrEvent, removeContainer, startCtrEvents, startPrivateContainerd, taskPid, taskStatus, testImage, uniqueId, waitFor, type CtrEvent, type PrivateContainerd } from "../harness/index.ts";

const RUNTIME = "io.containerd.cryo.v2";
let pc: PrivateContainerd;
let ns: string;

beforeAll(async () => {
  ns = uniqueId("shimrun");
  pc = await startPrivateContainerd({ namespace: ns });
  await ensureTestImage(pc);
}, 60_000);

afterAll(async () => {
  await pc?.stop();
}, 60_000);

function run(id: string, args: string[], stdin?: string) {
  return pc.ctr(["run", "--rm", "--runtime", RUNTIME, testImage, id, ...args], { timeoutMs: 60_000, stdin });
}

/** Leftovers of a container on the machine: runc state, cgroup dirs, mounts, processes. */
function leftovers(id: string): string[] {
  const found: string[] = [];
  if (existsSync(`/run/containerd/runc/${ns}/${id}`)) found.push("runc state");
  for (const ctl of ["memory", "pids", "freezer", "cpu,cpuacct"]) {
    if (existsSync(`/sys/fs/cgroup/${ctl}/${ns}/${id}`)) found.push(`cgroup ${ctl}`);
  }
  const mounts = require("node:fs").readFileSync("/proc/self/mountinfo", "utf8") as string;
  if (mounts.includes(`/${id}/rootfs`)) found.push("rootfs mount");
  for (const pid of readdirSync("/proc").filter((p) => /^\d+$/.test(p))) {
    try {
      const cmd = require("node:fs").readFileSync(`/proc/${pid}/cmdline`, "utf8") as string;
      if (cmd.includes(`-id\0${id}\0`)) found.push(`process ${pid}`);
    } catch {
      // gone
    }
  }
  return found;
}

test("ctr run prints stdout and stderr and exits with the process's code", async () => {
  const r = await run(uniqueId("out"), ["sh", "-c", "echo out; echo err >&2; exit 3"]);
  expect(r.stdout).toBe("out\n");
  expect(r.stderr).toBe("err\n");
  expect(r.exitCode).toBe(3);
}, 60_000);

test("stdin piped into cat comes back", async () => {
  const id = uniqueId("cat");
  // ctr loses an end-of-input that arrives while the task is being created (with runc's shim too),
  // so the input stays open until the task runs, and a moment after: `(echo hi; sleep 1) | ctr run ... cat`,
  // with the second spent waiting for RUNNING (a loaded machine can take longer than a second to create it).
  const ctr = `ctr --address ${pc.address} --namespace ${ns}`;
  const hold = `i=0; until ${ctr} task ls | grep -q "^${id} .*RUNNING" || [ $i -ge 300 ]; do sleep 0.1; i=$((i+1)); done; sleep 0.3`;
  const proc = Bun.spawn(
    ["sh", "-c", `(echo hi; ${hold}) | ${ctr} run --rm --runtime ${RUNTIME} ${testImage} ${id} cat`],
    { stdout: "pipe", stderr: "pipe" },
  );
  const [out, code] = await Promise.all([new Response(proc.stdout).text(), proc.exited]);
  expect(out).toBe("hi\n");
  expect(code).toBe(0);
}, 60_000);

test("8 MB of piped stdin all reach the process: CloseIO closes its stdin only once the FIFO is read empty", async () => {
  const id = uniqueId("bigin");
  const dir = mkdtempSync(join(tmpdir(), "cryo-bigin-"));
  try {
    const input = join(dir, "in.bin");
    writeFileSync(input, crypto.getRandomValues(new Uint8Array(8 << 20)).map((b, i) => (i % 4096 === 0 ? 10 : b)));
    const want = new Bun.CryptoHasher("md5").update(readFileSync(input)).digest("hex");
    // ctr sends CloseIO as soon as its own stdin ends, while up to a FIFO's worth of input is still on its way.
    const proc = Bun.spawn(["sh", "-c", `ctr --address ${pc.address} --namespace ${ns} run --rm --runtime ${RUNTIME} ${testImage} ${id} md5sum < ${input}`], { stdout: "pipe", stderr: "pipe" });
    const [out, err, code] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited]);
    expect({ code, err }).toEqual({ code: 0, err: "" });
    expect(out.split(" ")[0]).toBe(want);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}, 60_000);

test("stdin outlives a client's detach: two attaches in turn each reach the process", async () => {
  const id = uniqueId("attach");
  await pc.ctrOk(["run", "-d", "--runtime", RUNTIME, testImage, id, "sh", "-c", "while :; do if read -t 1 x; then echo got-$x; fi; done"]);
  const dir = mkdtempSync(join(tmpdir(), "cryo-attach-"));
  try {
    // Each attach gets a line, then its input closes (ctr closes its end of the stdin FIFO) and it is killed:
    // a detach. Before, the first detach ended the process's stdin for good.
    const script = `
      for w in first second; do
        rm -f "$1/in"; mkfifo "$1/in"
        ctr --address ${pc.address} --namespace ${ns} task attach ${id} < "$1/in" > "$1/out-$w" 2>&1 & pid=$!
        exec 7>"$1/in"; sleep 0.5; echo $w >&7
        for i in $(seq 200); do grep -q got-$w "$1/out-$w" && break; sleep 0.1; done
        exec 7>&-; sleep 0.5
        kill -9 $pid; wait $pid 2>/dev/null
      done; true`;
    const proc = Bun.spawn(["bash", "-c", script, "bash", dir], { stdout: "pipe", stderr: "pipe" });
    expect(await proc.exited).toBe(0);
    expect(readFileSync(join(dir, "out-first"), "utf8")).toContain("got-first");
    expect(readFileSync(join(dir, "out-second"), "utf8")).toContain("got-second");
  } finally {
    rmSync(dir, { recursive: true, force: true });
    await pc.ctr(["task", "kill", "-s", "SIGKILL", id]);
    await waitFor(async () => ((await taskStatus(pc, id)) === "STOPPED" ? true : undefined), { what: `${id} stopped` });
    await pc.ctrOk(["task", "rm", id]);
    await pc.ctrOk(["containers", "rm", id]);
  }
}, 60_000);

test("ctr run -t gives a terminal", async () => {
  const id = uniqueId("tty");
  // ctr sends its first resize after the task started: the container waits (up to 10 s) for the size to arrive.
  const cmd = `stty rows 30 cols 100; ctr --address ${pc.address} --namespace ${ns} run -t --rm --runtime ${RUNTIME} ${testImage} ${id} sh -c 'tty; i=0; until [ "$(stty size)" = "30 100" ] || [ $i -ge 100 ]; do sleep 0.1; i=$((i+1)); done; stty size; exit 5'`;
  // script's input stays open and silent: at its end of input, script (util-linux) writes its terminal's EOF
  // character into the session, a NUL when its own input is no terminal; ctr passed that on, the container's
  // terminal echoed it as ^@, and under load it landed in front of "30 100".
  const proc = Bun.spawn(["script", "-qec", cmd, "/dev/null"], { stdout: "pipe", stderr: "pipe", stdin: "pipe" });
  const [out, code] = await Promise.all([new Response(proc.stdout).text(), proc.exited]);
  proc.stdin.end();
  expect(out).toContain("/dev/pts/");
  expect(out).toMatch(/\n30 100\r*\n/); // ResizePty reached the container's terminal
  expect(out).not.toContain("resize pty");
  expect(code).toBe(5);
}, 60_000);

test("an exec that leaves a process in the background returns with its output and exit code (its output ends 2 s after its exit); input piped into an exec reaches it and ends it", async () => {
  const id = uniqueId("execbg");
  await pc.ctrOk(["run", "-d", "--runtime", RUNTIME, testImage, id, "sleep", "1000"]);
  try {
    // ctr reports an exec's exit only once its output FIFOs end; the background sleep holds the exec's output.
    // Before, ctr waited for the sleep (60 s here, past the 30 s this ctr may take).
    const r = await pc.ctr(["task", "exec", "--exec-id", "bg", id, "sh", "-c", "sleep 60 & echo hi; exit 2"], { timeoutMs: 30_000 });
    expect({ out: r.stdout, code: r.exitCode }).toEqual({ out: "hi\n", code: 2 });
    // What an exec writes is all there (copied through the shim's pipe).
    const big = await pc.ctr(["task", "exec", "--exec-id", "big", id, "sh", "-c", "seq 1 200000; seq 1 1000 >&2"], { timeoutMs: 30_000 });
    expect(big.stdout.split("\n").length).toBe(200001);
    expect(big.stderr.split("\n").length).toBe(1001);
    // Input piped into an exec (`echo x | ctr task exec ... cat`): ctr sends CloseIO as soon as its own stdin ends,
    // which can be while the shim's Start is still running the exec. Before, that CloseIO was lost and cat waited
    // for its input to end for ever (runc's shim opens the FIFO only after runc exec, so ctr's CloseIO comes later).
    for (let i = 0; i < 5; i++) {
      const piped = await pc.ctr(["task", "exec", "--exec-id", `in${i}`, id, "cat"], { timeoutMs: 20_000, stdin: `line ${i}\n` });
      expect({ out: piped.stdout, code: piped.exitCode }).toEqual({ out: `line ${i}\n`, code: 0 });
    }
    // A failed `runc exec` writes its error to its stderr, the exec's: the pipe is dropped unread, so the client
    // sees only its own error line (before, runc's line came first, as the process's output), in runc's shim's words
    // (`ctr: OCI runtime exec failed: ...`; before, cryo's read `ctr: exec bad: OCI runtime exec failed: ...`).
    const bad = await pc.ctr(["task", "exec", "--exec-id", "bad", "--cwd", "/nope", id, "true"], { timeoutMs: 30_000 });
    expect(bad.exitCode).not.toBe(0);
    expect(bad.stdout).toBe("");
    expect(bad.stderr.trim().split("\n").filter((l) => !l.startsWith("time="))).toEqual([expect.stringMatching(/^ctr: OCI runtime exec failed: exec failed: .*chdir to cwd \("\/nope"\)/)]);
  } finally {
    await pc.ctr(["task", "kill", "-s", "SIGKILL", id]);
    await waitFor(async () => ((await taskStatus(pc, id)) === "STOPPED" ? true : undefined), { what: `${id} stopped` });
    await pc.ctrOk(["task", "rm", id]);
    await pc.ctrOk(["containers", "rm", id]);
  }
}, 90_000);

test("ctr task kill -a -s TERM reaches every process, those forked while it runs too; a paused container stays paused and its processes end at the resume", async () => {
  const id = uniqueId("killall");
  await pc.ctrOk(["run", "-d", "--runtime", RUNTIME, testImage, id, "sleep", "1000"]);
  try {
    // The init (sleep, PID 1 of its namespace) ignores TERM; an exec'd loop forks a child every 0.5 ms.
    await pc.ctrOk(["task", "exec", "-d", "--exec-id", "fork", id, "sh", "-c", "i=0; while [ $i -lt 3000 ]; do sleep 30 & i=$((i+1)); usleep 500; done"]);
    const count = async () => (await pc.ctrOk(["task", "ps", id])).trim().split("\n").length - 1;
    await waitFor(async () => ((await count()) > 20 ? true : undefined), { what: "the loop forking" });
    await pc.ctrOk(["task", "kill", "--all", "-s", "TERM", id]);
    // Only the init is left (before: a child forked between the listing and the signals outlived it, 30 s).
    await waitFor(async () => ((await count()) === 1 ? true : undefined), { what: "only the init left", timeoutMs: 10_000 });

    await pc.ctrOk(["task", "exec", "-d", "--exec-id", "s2", id, "sleep", "1000"]);
    await waitFor(async () => ((await count()) === 2 ? true : undefined), { what: "the exec'd sleep" });
    await pc.ctrOk(["task", "pause", id]);
    await pc.ctrOk(["task", "kill", "--all", "-s", "TERM", id]);
    expect(await taskStatus(pc, id)).toBe("PAUSED");
    expect(readFileSync(`/sys/fs/cgroup/freezer/${ns}/${id}/freezer.state`, "utf8").trim()).toBe("FROZEN");
    await pc.ctrOk(["task", "resume", id]);
    await waitFor(async () => ((await count()) === 1 ? true : undefined), { what: "the exec'd sleep ended at the resume" });
  } finally {
    await pc.ctr(["task", "rm", "-f", id]);
    await pc.ctr(["containers", "rm", id]);
  }
}, 60_000);

test("detached lifecycle: ls, exec, ps, metrics, pause, resume, kill, rm leave nothing behind", async () => {
  const id = uniqueId("life");
  const dir = `/tmp/${id}`;
  await pc.ctrOk(["run", "-d", "--runtime", RUNTIME, testImage, id, "sh", "-c", "i=0; while true; do i=$((i+1)); echo $i > /tmp/count; sleep 0.05; done"]);
  expect(await taskStatus(pc, id)).toBe("RUNNING");

  const ex = await pc.ctr(["task", "exec", "--exec-id", "e1", id, "sh", "-c", "echo from-exec; exit 7"]);
  expect(ex.stdout).toBe("from-exec\n");
  expect(ex.exitCode).toBe(7);

  const ps = await pc.ctrOk(["task", "ps", id]);
  expect(ps).toContain("PID");
  expect(ps.trim().split("\n").length).toBeGreaterThanOrEqual(2);

  const metrics = await pc.ctrOk(["task", "metrics", id]);
  expect(metrics).toMatch(/memory/i);
  expect(metrics).toMatch(/pids/i);
  expect(metrics).toMatch(/cpu/i);

  const count = async () => Number((await pc.ctrOk(["task", "exec", "--exec-id", uniqueId("c"), id, "cat", "/tmp/count"])).trim());
  await pc.ctrOk(["task", "pause", id]);
  expect(await taskStatus(pc, id)).toBe("PAUSED");
  // exec into a paused container is refused: read the counter through the rootfs instead
  const c1 = await readCount(id);
  await Bun.sleep(300); // the counter would advance ~6 times in this window if it were running
  expect(await readCount(id)).toBe(c1);
  const pausedAgain = await pc.ctr(["task", "pause", id]);
  expect(pausedAgain.exitCode).not.toBe(0);
  expect(pausedAgain.stderr).toMatch(/failed precondition: cannot pause a paused container/);

  await pc.ctrOk(["task", "resume", id]);
  expect(await taskStatus(pc, id)).toBe("RUNNING");
  await waitFor(async () => (await count()) > c1, { timeoutMs: 10_000 });

  await pc.ctrOk(["task", "kill", "--signal", "SIGTERM", id]);
  await pc.ctrOk(["task", "kill", "--signal", "SIGKILL", id]);
  await waitFor(async () => (await taskStatus(pc, id)) === "STOPPED", { timeoutMs: 10_000 });
  const killStopped = await pc.ctr(["task", "kill", id]);
  expect(killStopped.exitCode).not.toBe(0);
  expect(killStopped.stderr).toMatch(/not found|finished/);

  await pc.ctrOk(["task", "rm", id]);
  await pc.ctrOk(["containers", "rm", id]);
  await waitFor(() => leftovers(id).length === 0, { timeoutMs: 10_000 });
  expect(leftovers(id)).toEqual([]);
  void dir;
}, 60_000);

test("ctr run --no-pivot and --uidmap/--gidmap (ctr sends the v1 linux runtime's CreateOptions to a non-runc runtime): the container runs, in its user namespace", async () => {
  const np = await pc.ctr(["run", "--rm", "--no-pivot", "--runtime", RUNTIME, testImage, uniqueId("nopivot"), "sh", "-c", "echo ran"], { timeoutMs: 60_000 });
  expect([np.exitCode, np.stdout, np.stderr]).toEqual([0, "ran\n", ""]);
  const us = await pc.ctr(["run", "--rm", "--uidmap", "0:100000:65536", "--gidmap", "0:100000:65536", "--runtime", RUNTIME, testImage, uniqueId("userns"), "sh", "-c", "cat /proc/self/uid_map; id -u"], { timeoutMs: 60_000 });
  expect(us.exitCode).toBe(0);
  expect(us.stdout.split("\n")[0]!.trim().split(/\s+/)).toEqual(["0", "100000", "65536"]);
  expect(us.stdout.split("\n")[1]).toBe("0");
}, 60_000);

test("kill: TERM that the process ignores, then KILL, ends `ctr run` with 137", async () => {
  const id = uniqueId("kill");
  const proc = Bun.spawn(
    ["ctr", "--address", pc.address, "--namespace", ns, "run", "--rm", "--runtime", RUNTIME, testImage, id, "sh", "-c", "trap '' TERM; while true; do sleep 0.1; done"],
    { stdout: "pipe", stderr: "pipe" },
  );
  await waitFor(async () => (await taskStatus(pc, id)) === "RUNNING", { timeoutMs: 20_000 });
  await pc.ctrOk(["task", "kill", "--signal", "SIGTERM", id]);
  expect(await taskStatus(pc, id)).toBe("RUNNING");
  await pc.ctrOk(["task", "kill", "--signal", "SIGKILL", id]);
  expect(await proc.exited).toBe(137);
}, 60_000);

test("ctr run -t: typed input reaches the container's terminal", async () => {
  const id = uniqueId("ttyin");
  const cmd = `ctr --address ${pc.address} --namespace ${ns} run -t --rm --runtime ${RUNTIME} ${testImage} ${id} sh -c 'head -n 1 | sed s/^/got:/'`;
  // As with the stdin test, the input stays open a moment after the data.
  const proc = Bun.spawn(["sh", "-c", `(sleep 1; printf 'hello\\r'; sleep 2) | script -qec "${cmd}" /dev/null`], { stdout: "pipe", stderr: "pipe" });
  const [out, code] = await Promise.all([new Response(proc.stdout).text(), proc.exited]);
  expect(out).toContain("got:hello");
  expect(code).toBe(0);
}, 60_000);

/**
 * Runs a ctr command whose output the test reads at `bytesPerSecond`, a client slower than the container: on a
 * terminal of the test's own (`terminal`), else through a pipe. Returns how many `o` characters came through and
 * ctr's exit code.
 */
async function slowlyRead(args: string[], bytesPerSecond: number, terminal: boolean): Promise<{ os: number; code: number | null }> {
  let readEnd: number;
  let proc: ReturnType<typeof Bun.spawn>;
  const cmd = ["ctr", "--address", pc.address, "--namespace", ns, ...args];
  if (terminal) {
    const { master, slave } = openPty();
    readEnd = master;
    const slaveFd = openSync(slave, constants.O_RDWR | constants.O_NOCTTY);
    try {
      proc = Bun.spawn(cmd, { stdin: slaveFd, stdout: slaveFd, stderr: slaveFd });
    } finally {
      closeSync(slaveFd);
    }
  } else {
    const [r, w] = pipe();
    readEnd = r;
    try {
      proc = Bun.spawn(cmd, { stdin: "ignore", stdout: w, stderr: "inherit" });
    } finally {
      closeSync(w);
    }
  }
  setNonblocking(readEnd, true);
  const buf = Buffer.alloc(4096);
  const start = performance.now();
  let total = 0;
  let os = 0;
  try {
    for (;;) {
      const ahead = total - ((performance.now() - start) / 1000) * bytesPerSecond;
      if (ahead > 0) await Bun.sleep(Math.ceil((ahead / bytesPerSecond) * 1000));
      let n: number;
      try {
        n = readSync(readEnd, buf);
      } catch (err) {
        const code = (err as { code?: string }).code;
        if (code === "EAGAIN") {
          await Bun.sleep(2);
          continue;
        }
        if (code === "EIO") break; // ctr, the last holder of the terminal, is gone
        throw err;
      }
      if (n === 0) break;
      total += n;
      for (let i = 0; i < n; i++) if (buf[i] === 0x6f) os++;
    }
  } finally {
    closeSync(readEnd);
  }
  return { os, code: await proc.exited };
}

test("output read slowly by the client arrives whole: ctr run, ctr run -t, ctr task exec -t", async () => {
  // The container writes 1 MiB and exits before ctr, held back by its own reader, has read it. Told of the exit, ctr 1.6
  // closes its end of the FIFO at once (a run's Delete; an exec's ctr exits); before, the exit was reported when the
  // process was reaped, and ctr lost what was still in the FIFO (and, on a terminal, in the shim's copy).
  const write = "head -c 1048576 /dev/zero | tr '\\000' o; exit 3";
  const run = await slowlyRead(["run", "--rm", "--runtime", RUNTIME, testImage, uniqueId("slow"), "sh", "-c", write], 1_000_000, false);
  expect(run).toEqual({ os: 1048576, code: 3 });
  const runTty = await slowlyRead(["run", "-t", "--rm", "--runtime", RUNTIME, testImage, uniqueId("ttyslow"), "sh", "-c", write], 1_000_000, true);
  expect(runTty).toEqual({ os: 1048576, code: 3 });
  const ex = uniqueId("ttyslowx");
  await pc.ctrOk(["run", "-d", "--runtime", RUNTIME, testImage, ex, "sleep", "1000"]);
  try {
    const exec = await slowlyRead(["task", "exec", "-t", "--exec-id", "slow", ex, "sh", "-c", write], 1_000_000, true);
    expect(exec).toEqual({ os: 1048576, code: 3 });
  } finally {
    await removeContainer(pc, ex);
  }
}, 60_000);

test("OCI hooks run as with runc's shim: prestart, createRuntime, createContainer, poststart, poststop in order, each in the bundle with the state on stdin", async () => {
  const dir = mkdtempSync(join(tmpdir(), "cryo-hooks-"));
  try {
    // `ctr run --config` takes the whole spec, rootfs included: busybox alone.
    const rootfs = join(dir, "rootfs");
    mkdirSync(join(rootfs, "bin"), { recursive: true });
    copyFileSync("/bin/busybox", join(rootfs, "bin", "busybox"));
    chmodSync(join(rootfs, "bin", "busybox"), 0o755);
    const base = JSON.parse(await pc.ctrOk(["oci", "spec"])) as { process: object; linux: object };
    const hook = join(dir, "hook.sh");
    writeFileSync(hook, `#!/bin/sh\nstate=$(cat)\necho "$1 cwd=$(pwd) $(echo "$state" | grep -o '"status":"[a-z]*"')" >> "$2"\n`, { mode: 0o755 });
    const seen = new Map<string, string>();
    for (const runtime of [RUNTIME, "io.containerd.runc.v2"]) {
      const id = uniqueId("hooks");
      const log = join(dir, `${runtime}.log`);
      const h = (kind: string) => [{ path: hook, args: ["hook.sh", kind, log] }];
      const spec = {
        ...base,
        root: { path: rootfs },
        process: { ...base.process, args: ["/bin/busybox", "true"] },
        linux: { ...base.linux, cgroupsPath: `/${ns}/${id}` },
        hooks: { prestart: h("prestart"), createRuntime: h("createRuntime"), createContainer: h("createContainer"), poststart: h("poststart"), poststop: h("poststop") },
      };
      writeFileSync(join(dir, "spec.json"), JSON.stringify(spec));
      const r = await pc.ctr(["run", "--rm", "--runtime", runtime, "--config", join(dir, "spec.json"), id], { timeoutMs: 60_000 });
      expect({ runtime, code: r.exitCode, stderr: r.stderr }).toEqual({ runtime, code: 0, stderr: "" });
      seen.set(runtime, readFileSync(log, "utf8").replaceAll(id, "ID"));
    }
    const lines = (seen.get(RUNTIME) ?? "").trim().split("\n");
    const bundle = `/io.containerd.runtime.v2.task/${ns}/ID`;
    expect(lines.map((l) => l.replace(/cwd=\S*\/io\.containerd\.runtime\.v2\.task\/\S+/, (m) => (m.endsWith(bundle) ? "cwd=BUNDLE" : m)))).toEqual([
      'prestart cwd=BUNDLE "status":"creating"',
      'createRuntime cwd=BUNDLE "status":"creating"',
      `createContainer cwd=${rootfs} "status":"creating"`,
      'poststart cwd=BUNDLE "status":"created"',
      // Before, cryo's ran in the daemon's directory, /: its `runc delete` inherited it.
      'poststop cwd=BUNDLE "status":"stopped"',
    ]);
    expect(seen.get(RUNTIME)).toBe(seen.get("io.containerd.runc.v2"));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}, 60_000);

test("binary:// log URI: the logger gets stdout on fd 3 and stderr on fd 4", async () => {
  const id = uniqueId("binlog");
  const dir = mkdtempSync(join(tmpdir(), "cryo-binlog-"));
  try {
    const logger = join(dir, "logger.sh");
    // A logger as containerd describes them: copy fds 3 and 4, close fd 5 once ready.
    // The query's keys and values are separate arguments, as containerd's NewBinaryCmd passes them.
    writeFileSync(logger, `#!/bin/sh\nout="$2"\necho "$@" > "$out/args"\necho "$CONTAINER_ID $CONTAINER_NAMESPACE" > "$out/who"\ncat <&3 > "$out/stdout" 5>&- &\ncat <&4 > "$out/stderr" 5>&- &\nexec 5>&-\nwait\n`, { mode: 0o755 });
    const r = await pc.ctr(["run", "--rm", "--runtime", RUNTIME, "--log-uri", `binary://${logger}?dir=${dir}&mode=x`, testImage, id, "sh", "-c", "echo to-out; echo to-err >&2; exit 4"]);
    expect(r.exitCode).toBe(4);
    const read = (f: string) => (existsSync(join(dir, f)) ? readFileSync(join(dir, f), "utf8") : "");
    await waitFor(() => read("stdout") === "to-out\n" && read("stderr") === "to-err\n", { timeoutMs: 10_000, what: "logger output" });
    expect(read("who")).toBe(`${id} ${ns}\n`);
    expect(read("args")).toBe(`dir ${dir} mode x\n`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}, 60_000);

test("binary:// logger: only CONTAINER_ID (an exec's own id) and CONTAINER_NAMESPACE in its environment; SIGTERM when its process is deleted", async () => {
  const id = uniqueId("binlog2");
  const dir = mkdtempSync(join(tmpdir(), "cryo-binlog2-"));
  try {
    const logger = join(dir, "logger.sh");
    // A logger that outlives EOF (as one that flushes to a remote would): it writes what it got, then waits for SIGTERM.
    writeFileSync(
      logger,
      `#!/bin/sh
out="$2"
tag="$CONTAINER_ID"
env | sort > "$out/env.$tag"
trap 'echo TERM >> "$out/trace.$tag"; exit 0' TERM
cat <&3 > "$out/stdout.$tag" 5>&- &
cat <&4 > /dev/null 5>&- &
exec 5>&-
while true; do sleep 0.1; done
`,
      { mode: 0o755 },
    );
    const uri = `binary://${logger}?dir=${dir}`;
    await pc.ctrOk(["run", "-d", "--runtime", RUNTIME, "--log-uri", uri, testImage, id, "sh", "-c", "echo init-out; sleep 600"]);
    const read = (f: string) => (existsSync(join(dir, f)) ? readFileSync(join(dir, f), "utf8") : "");
    await waitFor(() => read(`stdout.${id}`) === "init-out\n" || undefined, { what: "the init's logger output" });
    const e = await pc.ctr(["task", "exec", "--exec-id", "lx", "--log-uri", uri, id, "sh", "-c", "echo exec-out; exit 2"]);
    expect(e.exitCode).toBe(2);
    await waitFor(() => read("stdout.lx") === "exec-out\n" || undefined, { what: "the exec's logger output" });
    // containerd's runc shim runs the logger with these two variables only, an exec's with the exec id.
    const vars = (tag: string) => read(`env.${tag}`).split("\n").filter((l) => l !== "" && !/^(PWD|SHLVL|_)=/.test(l));
    expect(vars(id)).toEqual([`CONTAINER_ID=${id}`, `CONTAINER_NAMESPACE=${ns}`]);
    expect(vars("lx")).toEqual(["CONTAINER_ID=lx", `CONTAINER_NAMESPACE=${ns}`]);
    // ... in the container's bundle (the shim daemon works in /).
    const bundle = join(pc.state, "io.containerd.runtime.v2.task", ns, id);
    for (const tag of [id, "lx"]) expect(read(`env.${tag}`).split("\n")).toContain(`PWD=${bundle}`);
    // The exec's logger got SIGTERM when ctr deleted the exec; the init's when the task goes.
    await waitFor(() => read("trace.lx") === "TERM\n" || undefined, { what: "the exec's logger terminated" });
    expect(read(`trace.${id}`)).toBe("");
    await pc.ctrOk(["task", "kill", "-s", "KILL", id]);
    await waitFor(async () => (await taskStatus(pc, id)) === "STOPPED", { what: `${id} stopped` });
    await pc.ctrOk(["task", "rm", id]);
    expect(read(`trace.${id}`)).toBe("TERM\n");
    expect(loggerPids(logger)).toEqual([]);
    await pc.ctrOk(["containers", "rm", id]);
  } finally {
    // A shim that left its loggers running (the bug this test is about) must not leave them to the next test.
    for (const pid of loggerPids(join(dir, "logger.sh"))) process.kill(pid, "SIGKILL");
    rmSync(dir, { recursive: true, force: true });
  }
}, 60_000);

/** Pids of the processes whose argument list (read from /proc) satisfies matches. */
function pidsWhere(matches: (argv: string[]) => boolean): number[] {
  return readdirSync("/proc")
    .filter((p) => /^\d+$/.test(p))
    .filter((p) => {
      try {
        return matches(readFileSync(`/proc/${p}/cmdline`, "utf8").split("\0"));
      } catch {
        return false;
      }
    })
    .map(Number);
}

/** Pids of the processes running the logger script at path. */
const loggerPids = (path: string) => pidsWhere((argv) => argv.includes(path));

test("file:// log URI: a process that opens /dev/stdout (O_TRUNC) cannot empty the log, and does not see the host's file", async () => {
  const id = uniqueId("filelog");
  const dir = mkdtempSync(join(tmpdir(), "cryo-filelog-"));
  try {
    const log = join(dir, "sub", "c.log");
    const r = await pc.ctr(["run", "--rm", "--runtime", RUNTIME, "--log-uri", `file://${log}`, testImage, id, "sh", "-c", "echo first; echo second >&2; echo third > /dev/stdout; readlink /proc/self/fd/1; exit 3"]);
    expect(r.exitCode).toBe(3);
    const lines = readFileSync(log, "utf8").split("\n");
    // Before: the file itself was the process's fd 1, and `> /dev/stdout` reopened it with O_TRUNC: only "third" was left.
    // stdout and stderr are copied from two pipes (as by containerd's runc shim): their lines keep their order within
    // a stream only.
    expect(lines.slice(0, 4).filter((l) => l !== "second")).toEqual(["first", "third", expect.stringMatching(/^pipe:\[\d+\]$/)]);
    expect(lines.slice(0, 4)).toContain("second");
    // An exec with its own file:// log appends to the same file.
    const id2 = uniqueId("filelog2");
    await pc.ctrOk(["run", "-d", "--runtime", RUNTIME, "--log-uri", `file://${log}`, testImage, id2, "sh", "-c", "echo init; sleep 600"]);
    const e = await pc.ctr(["task", "exec", "--exec-id", "fx", "--log-uri", `file://${log}`, id2, "sh", "-c", "echo from-exec; echo again > /dev/stdout"]);
    expect(e.exitCode).toBe(0);
    const all = readFileSync(log, "utf8");
    expect(all.split("\n").slice(0, 4).sort()).toEqual(lines.slice(0, 4).sort());
    for (const l of ["init", "from-exec", "again"]) expect(all).toContain(`${l}\n`);
    await pc.ctrOk(["task", "kill", "-s", "KILL", id2]);
    await waitFor(async () => (await taskStatus(pc, id2)) === "STOPPED", { what: `${id2} stopped` });
    await pc.ctrOk(["task", "rm", id2]);
    await pc.ctrOk(["containers", "rm", id2]);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}, 60_000);

test("an exec of a paused container reads paused; an exec killed while its output is stuck is reported stopped at once", async () => {
  const id = uniqueId("execst");
  await pc.ctrOk(["run", "-d", "--runtime", RUNTIME, testImage, id, "sleep", "600"]);
  try {
    await pc.ctrOk(["task", "exec", "--detach", "--exec-id", "sl", id, "sleep", "600"]);
    await pc.ctrOk(["task", "pause", id]);
    // ctr's delete of an exec checks its state first: containerd's runc shim answers paused here.
    const rm = await pc.ctr(["task", "delete", "--exec-id", "sl", id]);
    expect(rm.exitCode).not.toBe(0);
    expect(rm.stderr).toContain("current process state: paused");
    await pc.ctrOk(["task", "resume", id]);
    // ctr's `task delete` of an exec exits with the exec's status (137 after SIGKILL) once the delete is done.
    const deleted = async (execId: string) => {
      const r = await pc.ctr(["task", "delete", "--exec-id", execId, id]);
      return r.exitCode === 137 && !r.stderr.includes("ctr:") ? true : undefined;
    };
    await pc.ctrOk(["task", "kill", "--exec-id", "sl", "-s", "KILL", id]);
    await waitFor(() => deleted("sl"), { what: "the killed exec deleted" });
    // A detached exec flooding an output nobody reads, then killed: once its process is gone its state is stopped,
    // although its output copy still holds what it wrote (until EXEC_OUTPUT_LINGER_MS after the exit). Before, the
    // state stayed "running" for that time and ctr's delete refused.
    await pc.ctrOk(["task", "exec", "--detach", "--exec-id", "fl", id, "sh", "-c", "yes flood"]);
    const execPid = await waitFor(async () => {
      const line = (await pc.ctrOk(["task", "ps", id])).split("\n").find((l) => /ExecID:fl\b|exec_id:"fl"/.test(l)); // ctr 1.6-2.2 | 2.3+
      return line ? Number(line.trim().split(/\s+/)[0]) : undefined;
    }, { what: "the flooding exec's pid" });
    await Bun.sleep(300);
    await pc.ctrOk(["task", "kill", "--exec-id", "fl", "-s", "KILL", id]);
    await waitFor(() => !existsSync(`/proc/${execPid}`) || undefined, { what: `pid ${execPid} reaped` });
    await Bun.sleep(100); // the exit's job in the container's queue
    const del = await pc.ctr(["task", "delete", "--exec-id", "fl", id]);
    expect({ code: del.exitCode, stderr: del.stderr }).toEqual({ code: 137, stderr: "" });
  } finally {
    await pc.ctr(["task", "kill", "-s", "KILL", id]);
    await waitFor(async () => (await taskStatus(pc, id)) === "STOPPED", { what: `${id} stopped` });
    await pc.ctr(["task", "rm", id]);
    await pc.ctr(["containers", "rm", id]);
  }
}, 60_000);

test("init exits in a container without its own PID namespace: its other processes are killed", async () => {
  const id = uniqueId("hostpid");
  const marker = String(100000 + Math.floor(Math.random() * 800000));
  // Joining this test's (the host's) PID namespace by path: no PID namespace of its own, as containerd's runc shim judges it.
  await pc.ctrOk(["run", "-d", "--runtime", RUNTIME, "--with-ns", `pid:/proc/${process.pid}/ns/pid`, testImage, id, "sh", "-c", `sleep ${marker} & sleep 0.5; exit 0`]);
  const sleeping = () => pidsWhere((argv) => argv.join("\0") === `sleep\0${marker}\0`);
  await waitFor(async () => (await taskStatus(pc, id)) === "STOPPED", { timeoutMs: 20_000, what: "init exited" });
  // Without the kill, that sleep would run on for days (until `task rm`).
  await waitFor(() => sleeping().length === 0, { timeoutMs: 5_000, what: `sleep ${marker} killed` });
  await pc.ctrOk(["task", "rm", id]);
  await pc.ctrOk(["containers", "rm", id]);
}, 60_000);

async function readCount(id: string): Promise<number> {
  const pid = await taskPid(pc, id);
  return Number((await Bun.file(`/proc/${pid}/root/tmp/count`).text()).trim());
}

/**
 * One container's lifecycle, as `ctr events` shows it: the topics in order and each event's payload, with the
 * Go timestamps as ctr prints them (RFC 3339 with nanoseconds, trailing zeros trimmed).
 */
async function lifecycleEvents(runtime: string): Promise<CtrEvent[]> {
  const id = uniqueId("ev");
  const events = startCtrEvents(pc.address, ns);
  try {
    // ctr events subscribes asynchronously: the first line proves the subscription is live.
    const probe = uniqueId("probe");
    await waitFor(
      async () => {
        if (events.lines.some((l) => l.includes(probe))) return true;
        await pc.ctr(["containers", "create", testImage, probe, "true"]);
        await pc.ctr(["containers", "rm", probe]);
        return false;
      },
      { what: "ctr events to print a probe container's events", timeoutMs: 30_000, intervalMs: 200 },
    );
    await pc.ctrOk(["run", "-d", "--runtime", runtime, testImage, id, "sleep", "600"]);
    const ex = await pc.ctr(["task", "exec", "--exec-id", "e1", id, "sh", "-c", "exit 4"]);
    expect(ex.exitCode).toBe(4);
    await pc.ctrOk(["task", "pause", id]);
    await pc.ctrOk(["task", "resume", id]);
    await pc.ctrOk(["task", "kill", "--signal", "SIGKILL", id]);
    await waitFor(async () => (await taskStatus(pc, id)) === "STOPPED", { timeoutMs: 10_000 });
    await pc.ctrOk(["task", "rm", id]);
    await pc.ctrOk(["containers", "rm", id]);
    const mine = () => events.lines.map(parseCtrEvent).filter((e): e is CtrEvent => e !== undefined && (e.event.container_id === id || e.event.id === id));
    await waitFor(() => mine().some((e) => e.topic === "/containers/delete"), { what: `the /containers/delete event of ${id}`, timeoutMs: 10_000 });
    return mine();
  } finally {
    await events.stop();
  }
}

test("events: containerd sees the same lifecycle events, in the same order, from cryo as from runc's shim; exit times carry nanoseconds", async () => {
  const fromRunc = await lifecycleEvents("io.containerd.runc.v2");
  const fromCryo = await lifecycleEvents(RUNTIME);
  // an exec's events name it: exec_id, or the exit's id where it is not the container's
  const execOf = (e: CtrEvent) => e.event.exec_id ?? (e.topic === "/tasks/exit" && e.event.id !== e.event.container_id ? e.event.id : undefined);
  const topics = (evs: CtrEvent[]) => evs.map((e) => (execOf(e) === undefined ? e.topic : `${e.topic} ${String(execOf(e))}`));
  console.log(`runc: ${topics(fromRunc).join(", ")}`);
  console.log(`cryo: ${topics(fromCryo).join(", ")}`);
  expect(topics(fromCryo)).toEqual(topics(fromRunc));
  expect(topics(fromCryo)).toEqual([
    "/containers/create",
    "/tasks/create",
    "/tasks/start",
    "/tasks/exec-added e1",
    "/tasks/exec-started e1",
    "/tasks/exit e1",
    "/tasks/paused",
    "/tasks/resumed",
    "/tasks/exit",
    "/tasks/delete",
    "/containers/delete",
  ]);
  for (const evs of [fromRunc, fromCryo]) {
    const exits = evs.filter((e) => e.topic === "/tasks/exit");
    expect(exits.map((e) => e.event.exit_status)).toEqual([4, 137]);
    const del = evs.find((e) => e.topic === "/tasks/delete")!;
    expect(del.event.exit_status).toBe(137);
    // The delete reports the init's exit as the exit event did, to the nanosecond.
    expect(del.event.exited_at).toBe(exits[1]!.event.exited_at);
    const stamps = exits.map((e) => String(e.event.exited_at));
    expect(Date.parse(stamps[0]!)).toBeLessThanOrEqual(Date.parse(stamps[1]!));
    // Nanosecond clocks: a time with more than three fractional digits (both exits at whole milliseconds: one chance in 10^12).
    expect(stamps.some((s) => /\.\d{4,9}Z$/.test(s))).toBe(true);
  }
}, 120_000);
