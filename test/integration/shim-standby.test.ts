/**
 * The standby daemon (src/shim/standby.ts), through ctr against a private containerd: after a container's
 * Create a standby is there; the next container that needs a daemon of its own is served by it (its
 * command line then names the container, and it runs the container like any daemon); a standby not taken
 * within CRYO_SHIM_STANDBY_MS exits and removes its socket; with CRYO_SHIM_STANDBY_MS=0 there is none. A daemon
 * that checkpointed a container has its standby load the restore's modules, and one that restored a container
 * launches its standby with them loaded.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { existsSync, readdirSync, readFileSync, statSync } from "node:fs";
import { ensureTestImage, PrivateContainerd, processAlive, startPrivateContainerd, testImage, uniqueId, waitFor, taskStatus } from "../harness/index.ts";

// Long enough that a slow machine still takes each standby well within it; the last step waits it out.
const IDLE_MS = 8000;
let pc: PrivateContainerd;
let ns: string;

beforeAll(async () => {
  ns = uniqueId("standby");
  pc = await startPrivateContainerd({ namespace: ns, env: { CRYO_SHIM_STANDBY_MS: String(IDLE_MS) } });
  await ensureTestImage(pc);
}, 60_000);

afterAll(async () => {
  await pc?.stop();
}, 60_000);

/** The command lines of this containerd's cryo processes, by pid. */
function cryoProcesses(address: string): Map<number, string[]> {
  const out = new Map<number, string[]>();
  for (const p of readdirSync("/proc").filter((x) => /^\d+$/.test(x))) {
    try {
      const argv = readFileSync(`/proc/${p}/cmdline`, "utf8").split("\0").filter((a) => a !== "");
      if (argv[0]?.endsWith("containerd-shim-cryo-v2") && argv.includes(address)) out.set(Number(p), argv);
    } catch {
      // gone
    }
  }
  return out;
}

const standbys = (address: string) => [...cryoProcesses(address)].filter(([, argv]) => argv.includes("__standby"));

/** The one idle standby of this containerd once it listens: its pid and socket. */
async function listeningStandby(address: string, not?: number): Promise<{ pid: number; socket: string }> {
  return await waitFor(
    () => {
      const all = standbys(address).filter(([pid]) => pid !== not);
      if (all.length !== 1) return undefined;
      const [pid, argv] = all[0]!;
      const socket = argv[argv.indexOf("__standby") + 1]!;
      return existsSync(socket) ? { pid, socket } : undefined;
    },
    { what: "one standby listening" },
  );
}

/** Sends the standby at socket the line a daemon sends to warm it for a restore; resolves with its answer. */
async function warmStandby(socket: string): Promise<unknown> {
  const text = await new Promise<string>((resolve, reject) => {
    let got = "";
    Bun.connect({
      unix: socket,
      socket: {
        open: (s) => void s.write("warm restore\n"),
        data: (s, chunk) => {
          got += Buffer.from(chunk).toString("utf8");
          if (got.includes("\n")) s.end();
        },
        close: () => resolve(got),
        error: (_s, err) => reject(err),
      },
    }).catch(reject);
  });
  return JSON.parse(text);
}

test("a standby is launched after a Create, takes the next container's daemon, and exits when not taken", async () => {
  const first = uniqueId("sb1");
  const r = await pc.ctr(["run", "--rm", "--runtime", "io.containerd.cryo.v2", testImage, first, "true"]);
  expect(r.exitCode).toBe(0);
  const [standbyPid, standbyArgv] = (await waitFor(() => (standbys(pc.address).length === 1 ? standbys(pc.address) : undefined), { what: "one standby" }))[0]!;
  const socket = standbyArgv[standbyArgv.indexOf("__standby") + 1]!;
  await waitFor(() => existsSync(socket), { what: `standby socket ${socket}` });
  // Which file: inode and change time (/run is on ext4 here, which gives a new file the number of a removed one).
  const fileId = (path: string) => {
    const st = statSync(path, { bigint: true });
    return `${st.ino}:${st.ctimeNs}`;
  };
  const socketFile = fileId(socket);

  // The next container's daemon is the standby: same pid, now with the container's command line.
  const second = uniqueId("sb2");
  await pc.ctrOk(["run", "-d", "--runtime", "io.containerd.cryo.v2", testImage, second, "sh", "-c", "echo ready; sleep 1000"]);
  // The second daemon launches the next standby right after its Create: seen now, while its idle time runs.
  const [nextPid, nextArgv] = await waitFor(() => standbys(pc.address).find(([pid]) => pid !== standbyPid), { what: "the next standby" });
  try {
    const argv = cryoProcesses(pc.address).get(standbyPid);
    expect(argv).toBeDefined();
    expect(argv).not.toContain("__standby");
    expect(argv!.slice(1, 5)).toEqual(["-namespace", ns, "-id", second]);
    // The taken standby removed its socket. The daemon it became launches the next standby right after the
    // Create, which may already listen on the same path by now: a different socket file.
    expect(existsSync(socket) ? fileId(socket) : undefined).not.toBe(socketFile);
    expect(await taskStatus(pc, second)).toBe("RUNNING");
    const exec = await pc.ctr(["task", "exec", "--exec-id", "e1", second, "sh", "-c", "echo from-exec; exit 4"]);
    expect(exec.stdout).toContain("from-exec");
    expect(exec.exitCode).toBe(4);
    // Its log is the bundle's FIFO, which containerd forwards: the daemon's start-up lines are in containerd's log.
    await waitFor(() => readFileSync(pc.layout.log, "utf8").includes(`pid=${standbyPid}`) || readFileSync(pc.layout.log, "utf8").includes(`"pid":${standbyPid}`), {
      what: `the taken standby's log lines in containerd's log`,
    });
  } finally {
    await pc.ctr(["task", "kill", "--signal", "SIGKILL", second]);
    await waitFor(async () => (await pc.ctr(["task", "rm", second])).exitCode === 0, { what: `task rm ${second}` });
    await pc.ctrOk(["containers", "rm", second]);
  }
  await waitFor(() => !processAlive(standbyPid), { timeoutMs: 20_000, what: `daemon ${standbyPid} (the former standby) gone` });

  // Nothing takes the next standby, so it exits after IDLE_MS, and it was the only one.
  expect(standbys(pc.address).filter(([pid]) => pid !== nextPid)).toEqual([]);
  const nextSocket = nextArgv[nextArgv.indexOf("__standby") + 1]!;
  await waitFor(() => !processAlive(nextPid), { timeoutMs: IDLE_MS + 10_000, what: `idle standby ${nextPid} gone` });
  expect(existsSync(nextSocket)).toBe(false);
  expect(existsSync(`${nextSocket}.launching`)).toBe(false);
}, 90_000);

test("CRYO_SHIM_STANDBY_MS=0: no standby", async () => {
  await using off = await startPrivateContainerd({ namespace: uniqueId("nostandby"), env: { CRYO_SHIM_STANDBY_MS: "0" } });
  await ensureTestImage(off);
  const id = uniqueId("nosb");
  const r = await off.ctr(["run", "--rm", "--runtime", "io.containerd.cryo.v2", testImage, id, "true"]);
  expect(r.exitCode).toBe(0);
  // A standby would be launched right after the Create, long before the container's run ends.
  expect(standbys(off.address)).toEqual([]);
}, 90_000);

test("a daemon that must not launch a standby (per-namespace) does not, also when it was a standby itself", async () => {
  await pc.ctrOk(["run", "--rm", "--runtime", "io.containerd.cryo.v2", testImage, uniqueId("sb3"), "true"]);
  const [standbyPid] = (await waitFor(() => (standbys(pc.address).length === 1 ? standbys(pc.address) : undefined), { what: "one standby" }))[0]!;
  await waitFor(() => {
    const argv = cryoProcesses(pc.address).get(standbyPid);
    return argv !== undefined && existsSync(argv[argv.indexOf("__standby") + 1]!);
  }, { what: "the standby listening" });
  const id = uniqueId("sbns");
  await pc.ctrOk(["run", "-d", "--runtime", "io.containerd.cryo.v2", "--annotation", "io.cryo.shim.grouping=per-namespace", testImage, id, "sleep", "1000"]);
  try {
    expect(cryoProcesses(pc.address).get(standbyPid)).toContain(id); // the standby serves the namespace now
    expect(await taskStatus(pc, id)).toBe("RUNNING");
    // A launched standby would be there within a second of the Create (it is launched right after it).
    await Bun.sleep(1500);
    expect(standbys(pc.address)).toEqual([]);
  } finally {
    await pc.ctr(["task", "kill", "--signal", "SIGKILL", id]);
    await waitFor(async () => (await pc.ctr(["task", "rm", id])).exitCode === 0, { what: `task rm ${id}` });
    await pc.ctrOk(["containers", "rm", id]);
  }
}, 60_000);

test("a checkpoint has the standby load the restore's modules; the restored container's daemon launches its standby with them", async () => {
  const id = uniqueId("sbck");
  const ref = `localhost/standby/${id}:1`;
  await pc.ctrOk(["run", "-d", "--runtime", "io.containerd.cryo.v2", testImage, id, "sleep", "1000"]);
  try {
    // A standby launched by a daemon that neither checkpointed nor restored has not loaded them: the hint loads them.
    const cold = await listeningStandby(pc.address);
    expect(await warmStandby(cold.socket)).toEqual({ warm: "loaded" });
    expect(await warmStandby(cold.socket)).toEqual({ warm: "loaded before" });
    await pc.ctrOk(["task", "kill", "--signal", "SIGKILL", id]);
    await waitFor(async () => (await pc.ctr(["task", "rm", id])).exitCode === 0, { what: `task rm ${id}` });
    await pc.ctrOk(["containers", "rm", id]);

    // The checkpointing daemon's standby: a container of its own, then checkpointed.
    await pc.ctrOk(["run", "-d", "--runtime", "io.containerd.cryo.v2", testImage, id, "sleep", "1000"]);
    // That container took the warmed standby; its daemon launched the next one, which loaded nothing more.
    const next = await listeningStandby(pc.address, cold.pid);
    await pc.ctrOk(["containers", "checkpoint", "--task", id, ref], { timeoutMs: 120_000 });
    expect(await warmStandby(next.socket)).toEqual({ warm: "loaded before" });
    await pc.ctrOk(["task", "kill", "--signal", "SIGKILL", id]);
    await waitFor(async () => (await pc.ctr(["task", "rm", id])).exitCode === 0, { what: `task rm ${id}` });
    await pc.ctrOk(["containers", "rm", id]);

    // The restore takes that standby; its daemon, whose first Create was a restore, launches one that loads them at boot.
    await pc.ctrOk(["containers", "restore", "--live", id, ref], { timeoutMs: 120_000 });
    expect(await taskStatus(pc, id)).toBe("RUNNING");
    expect(cryoProcesses(pc.address).get(next.pid)).toContain(id);
    const third = await listeningStandby(pc.address, next.pid);
    expect(await warmStandby(third.socket)).toEqual({ warm: "loaded before" });
  } finally {
    await pc.ctr(["task", "rm", "--force", id]);
    await pc.ctr(["containers", "rm", id]);
    await pc.ctr(["images", "rm", "--sync", ref]);
  }
}, 120_000);
