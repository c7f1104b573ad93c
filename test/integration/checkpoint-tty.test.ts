/**
 * A terminal (`ctr run -t`) container checkpointed through containerd and restored into a task
 * created with terminal=true. ctr's restore never asks for a terminal, so the restored task is created
 * through the shim's task API (ttrpc) on the original container's shim: Create with the extracted
 * checkpoint and terminal=true, Start, then a command typed into the stdin FIFO is answered on the
 * stdout FIFO through the pty master CRIU made, ResizePty reaches the terminal, and Delete closes it.
 */
import { afterAll, beforeAll, expect, setDefaultTimeout, test } from "bun:test";
import { closeSync, constants as fsc, cpSync, mkdirSync, mkdtempSync, openSync, readdirSync, readFileSync, readlinkSync, readSync, rmSync, writeFileSync, writeSync } from "node:fs";
import { join } from "node:path";
import { Task as TaskV2 } from "../../src/gen/containerd/runtime/task/v2/shim_pb.ts";
import { connect } from "../../src/ttrpc/index.ts";
import { PrivateContainerd, ensureTestImage, startPrivateContainerd, testImage, uniqueId, waitFor, checkpointCriuTar } from "../harness/index.ts";

setDefaultTimeout(180_000);
const RUNTIME = "io.containerd.cryo.v2";
let pc: PrivateContainerd;
let ns: string;
let dir: string;

beforeAll(async () => {
  ns = uniqueId("ckpttty");
  pc = await startPrivateContainerd({ namespace: ns });
  await ensureTestImage(pc);
  dir = mkdtempSync("/tmp/cryo-ckpt-tty-");
});

afterAll(async () => {
  await pc?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

/** Runs ctr with a pty as its stdin (ctr run -t needs a console). */
async function ctrOnPty(args: string[]): Promise<void> {
  const py = "import pty, sys\nsys.exit(pty.spawn(sys.argv[1:]) >> 8)";
  const p = Bun.spawn(["python3", "-c", py, "ctr", "--address", pc.address, "--namespace", ns, ...args], { stdio: ["ignore", "pipe", "pipe"] });
  const code = await p.exited;
  if (code !== 0) throw new Error(`ctr ${args.join(" ")}: exit ${code}: ${await new Response(p.stdout).text()}`);
}

function ptmxCount(pid: number): number {
  return readdirSync(`/proc/${pid}/fd`).filter((fd) => {
    try {
      return readlinkSync(`/proc/${pid}/fd/${fd}`) .endsWith("ptmx");
    } catch {
      return false;
    }
  }).length;
}

/** Reads what is in a nonblocking fd now. */
function drain(fd: number): string {
  const buf = Buffer.alloc(65536);
  let out = "";
  for (;;) {
    try {
      const n = readSync(fd, buf, 0, buf.length, null);
      if (n <= 0) return out;
      out += buf.toString("utf8", 0, n);
    } catch {
      return out;
    }
  }
}

test("a -t container checkpointed and restored into a terminal task answers on its terminal", async () => {
  const src = uniqueId("src");
  const ref = `localhost/${src}:ckpt`;
  const restoredId = uniqueId("tty");
  await ctrOnPty(["run", "-d", "-t", "--runtime", RUNTIME, testImage, src, "sh"]);
  await pc.ctrOk(["containers", "checkpoint", "--task", src, ref], { timeoutMs: 120_000 });

  // The checkpoint's criu tar, extracted as containerd would.
  const tar = await checkpointCriuTar(pc, ref);
  const images = join(dir, "images");
  mkdirSync(images);
  expect(Bun.spawnSync(["tar", "-xf", tar.path, "-C", images]).exitCode).toBe(0);

  // The new task's bundle: the source's spec (own cgroup) and a copy of its rootfs.
  const srcBundle = join(pc.state, "io.containerd.runtime.v2.task", ns, src);
  const bundle = join(dir, "bundle");
  mkdirSync(bundle);
  const spec = JSON.parse(readFileSync(join(srcBundle, "config.json"), "utf8")) as { process: { terminal?: boolean }; linux: { cgroupsPath: string } };
  expect(spec.process.terminal).toBe(true);
  spec.linux.cgroupsPath = `/${ns}/${restoredId}`;
  writeFileSync(join(bundle, "config.json"), JSON.stringify(spec));
  cpSync(join(srcBundle, "rootfs"), join(bundle, "rootfs"), { recursive: true, verbatimSymlinks: true, preserveTimestamps: true });
  const stdin = join(dir, "stdin");
  const stdout = join(dir, "stdout");
  expect(Bun.spawnSync(["mkfifo", stdin, stdout]).exitCode).toBe(0);
  const inFd = openSync(stdin, fsc.O_RDWR | fsc.O_NONBLOCK);
  const outFd = openSync(stdout, fsc.O_RDWR | fsc.O_NONBLOCK);

  const address = readFileSync(join(srcBundle, "address"), "utf8").trim();
  const client = await connect(address.replace(/^unix:\/\//, ""));
  const shimPid = Number((await client.call(TaskV2, "connect", { id: src }, { namespace: ns })).shimPid);
  const ptmxBefore = ptmxCount(shimPid);
  let created = false;
  try {
    const c = await client.call(TaskV2, "create", { id: restoredId, bundle, rootfs: [], terminal: true, stdin, stdout, stderr: "", checkpoint: images }, { namespace: ns, timeoutMs: 60_000 });
    created = true;
    expect(c.pid).toBe(0);
    const started = await client.call(TaskV2, "start", { id: restoredId }, { namespace: ns, timeoutMs: 120_000 });
    expect(started.pid).toBeGreaterThan(0);
    expect(ptmxCount(shimPid)).toBeGreaterThan(ptmxBefore); // the restored pty master (and the copies' dups)

    writeSync(inFd, "echo restored-$((1+2))\n");
    let seen = "";
    await waitFor(() => (seen += drain(outFd)).includes("restored-3"), { timeoutMs: 20_000 });
    expect(seen).toContain("restored-3");

    await client.call(TaskV2, "resizePty", { id: restoredId, width: 123, height: 45 }, { namespace: ns });
    writeSync(inFd, "stty size\n");
    await waitFor(() => (seen += drain(outFd)).includes("45 123"), { timeoutMs: 20_000 });

    await client.call(TaskV2, "kill", { id: restoredId, signal: 9 }, { namespace: ns });
    await client.call(TaskV2, "wait", { id: restoredId }, { namespace: ns, timeoutMs: 30_000 });
    await client.call(TaskV2, "delete", { id: restoredId }, { namespace: ns, timeoutMs: 30_000 });
    created = false;
    // The shim closed the restored terminal's master.
    await waitFor(() => ptmxCount(shimPid) === ptmxBefore, { timeoutMs: 10_000 });
  } finally {
    if (created) {
      await client.call(TaskV2, "kill", { id: restoredId, signal: 9 }, { namespace: ns }).catch(() => {});
      await client.call(TaskV2, "delete", { id: restoredId }, { namespace: ns, timeoutMs: 30_000 }).catch(() => {});
    }
    client.close();
    closeSync(inFd);
    closeSync(outFd);
    await pc.ctr(["task", "kill", "--signal", "SIGKILL", src]);
    await waitFor(async () => !(await pc.ctrOk(["task", "ls"])).includes(src) || (await pc.ctr(["task", "delete", src])).exitCode === 0, { timeoutMs: 20_000 });
    await pc.ctr(["containers", "rm", src]);
    await pc.ctr(["images", "rm", "--sync", ref]);
  }
});
