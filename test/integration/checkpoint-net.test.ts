/**
 * The container's network namespace across checkpoint/restore through the cryo shim (ctr against a
 * private containerd): it is dumped and restored (runc's restore leaves it empty, loopback down), so a
 * listener answers on 127.0.0.1 afterwards; with `cryo.checkpoint/tcp-established=true` a TCP
 * connection inside the container survives, with `cryo.checkpoint/tcp-close=true` it is closed.
 * Routes and rules the namespace was given come back; a namespace with only the kernel's defaults is
 * checkpointed without the route, rule, iptables and loopback address images that would restore nothing (net-images.ts).
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { buildFixtures, ensureTestImage, readContainerFile, startPrivateContainerd, testImage, uniqueId, waitFor, type PrivateContainerd, taskStatus, taskPid, removeContainer, checkpointMetadata, checkpointCriuTar, criuTarEntries, ctrErrorHasCode } from "../harness/index.ts";

const RUNTIME = "io.containerd.cryo.v2";
let pc: PrivateContainerd;
let ns: string;
const images: string[] = [];

beforeAll(async () => {
  ns = uniqueId("ckptnet");
  pc = await startPrivateContainerd({ namespace: ns });
  await ensureTestImage(pc);
}, 120_000);

afterAll(async () => {
  for (const ref of images) await pc?.ctr(["images", "rm", "--sync", ref]);
  await pc?.stop();
}, 120_000);

const remove = (id: string): Promise<void> => removeContainer(pc, id, { stopped: "not-running" });

/** Checkpoints, removes and restores id; returns what ctr printed on stderr (the restored container's stderr). */
async function checkpointRemoveRestore(id: string): Promise<string> {
  const ref = `localhost/checkpoint/${id}:1`;
  images.push(ref);
  await pc.ctrOk(["containers", "checkpoint", "--task", id, ref], { timeoutMs: 120_000 });
  await remove(id);
  const r = await pc.ctr(["containers", "restore", "--live", id, ref], { timeoutMs: 120_000 });
  expect({ exitCode: r.exitCode, stderr: r.exitCode === 0 ? "" : r.stderr }).toEqual({ exitCode: 0, stderr: "" }); // a failure shows ctr's error
  return r.stderr;
}

/** "<count> ok" of tcp-client's file, or undefined. */
function tcpCount(id: string): number | undefined {
  const m = /^(\d+) ok$/.exec(readContainerFile(pc, id, "/tmp/tcp") ?? "");
  return m ? Number(m[1]) : undefined;
}

for (const [lock, asked] of [["nftables", false], ["nftables", true], ["iptables", true]] as const) {
test(`the network namespace comes back: lo UP with 127.0.0.1, and a restored listener answers on it (network lock ${lock}${asked ? ", asked for" : ", the default with a TCP socket"})`, async () => {
  const id = uniqueId("lo");
  // nftables is cryo's default (a namespace with a TCP socket keeps its lock), iptables CRIU's (what a checkpoint
  // recorded before cryo chose).
  const flags = asked ? ["--annotation", `cryo.checkpoint/network-lock=${lock}`] : [];
  await pc.ctrOk(["run", "-d", "--runtime", RUNTIME, ...flags, testImage, id, "/bin/tcp-echo", "7000"], { timeoutMs: 60_000 });
  await waitFor(async () => (await pc.ctr(["task", "exec", "--exec-id", uniqueId("p"), id, "sh", "-c", "echo ping | nc -w 1 127.0.0.1 7000"])).stdout.includes("ping"), {
    what: "listener up",
  });
  expect(await checkpointRemoveRestore(id)).toBe("");
  const addr = await pc.ctrOk(["task", "exec", "--exec-id", "ip", id, "ip", "addr", "show", "lo"]);
  expect(addr).toMatch(/<LOOPBACK,UP,LOWER_UP>/);
  expect(addr).toContain("inet 127.0.0.1/8");
  const echo = await pc.ctrOk(["task", "exec", "--exec-id", "nc", id, "sh", "-c", "echo after-restore | nc -w 1 127.0.0.1 7000"]);
  expect(echo.trim()).toBe("after-restore");
  expect((await checkpointMetadata<{ options: { networkLock: string } }>(pc, `localhost/checkpoint/${id}:1`)).options.networkLock).toBe(lock);
  // CRIU locked the network at the dump and restores the netns locked: the restore unlocked it, the same way.
  const pid = (await taskPid(pc, id))!;
  const inNetns = (cmd: string[]) => Bun.spawnSync(["nsenter", `--net=/proc/${pid}/ns/net`, ...cmd], { stdout: "pipe", stderr: "pipe" });
  const tables = inNetns(["nft", "list", "tables"]);
  expect(tables.exitCode).toBe(0);
  expect(tables.stdout.toString()).not.toContain("CRIU");
  expect(inNetns(["iptables", "-S"]).stdout.toString()).not.toContain("CRIU");
  await remove(id);
}, 180_000);
}

test("a container that joins a network namespace by path (as a pod's containers join the sandbox's) is restored into that namespace, its listener answering there", async () => {
  const id = uniqueId("joined");
  // A named namespace of the host's, made and removed here as a CNI plugin would for a pod.
  const netns = `cryo-${id}`;
  const ip = (...args: string[]) => Bun.spawnSync(["ip", ...args], { stdout: "pipe", stderr: "pipe" });
  expect(ip("netns", "add", netns).exitCode).toBe(0);
  try {
    expect(ip("-n", netns, "link", "set", "lo", "up").exitCode).toBe(0);
    const inNs = () => Bun.spawnSync(["ip", "netns", "exec", netns, "busybox", "sh", "-c", "echo joined | nc -w 1 127.0.0.1 7000"], { stdout: "pipe", stderr: "pipe" }).stdout.toString().trim();
    await pc.ctrOk(["run", "-d", "--runtime", RUNTIME, "--with-ns", `network:/run/netns/${netns}`, testImage, id, "/bin/tcp-echo", "7000"], { timeoutMs: 60_000 });
    await waitFor(() => (inNs() === "joined" ? true : undefined), { what: "listener up in the named namespace" });
    const before = statSync(`/proc/${(await taskPid(pc, id))!}/ns/net`).ino;
    expect(before).toBe(statSync(`/run/netns/${netns}`).ino);
    expect(await checkpointRemoveRestore(id)).toBe("");
    expect(statSync(`/proc/${(await taskPid(pc, id))!}/ns/net`).ino).toBe(before);
    expect(inNs()).toBe("joined");
    await remove(id);
  } finally {
    ip("netns", "del", netns);
  }
}, 180_000);

test("a restore whose spec joins a network namespace that is gone fails naming it, and leaves nothing behind", async () => {
  const id = uniqueId("gonens");
  const netns = `cryo-${id}`;
  const ip = (...args: string[]) => Bun.spawnSync(["ip", ...args], { stdout: "pipe", stderr: "pipe" });
  expect(ip("netns", "add", netns).exitCode).toBe(0);
  try {
    await pc.ctrOk(["run", "-d", "--runtime", RUNTIME, "--with-ns", `network:/run/netns/${netns}`, testImage, id, "sleep", "600"], { timeoutMs: 60_000 });
    const ref = `localhost/checkpoint/${id}:1`;
    images.push(ref);
    await pc.ctrOk(["containers", "checkpoint", "--task", id, ref], { timeoutMs: 120_000 });
    await remove(id);
    // The pod (here: the named namespace) is gone before the restore.
    expect(ip("netns", "del", netns).exitCode).toBe(0);
    const r = await pc.ctr(["containers", "restore", "--live", id, ref], { timeoutMs: 120_000 });
    expect(r.exitCode).not.toBe(0);
    // Before: "ENOENT: no such file or directory, open '/run/netns/...': unknown".
    expect(r.stderr).toContain(`restore container ${id}`);
    expect(r.stderr).toContain(`failed precondition: the spec's network namespace /run/netns/${netns} does not exist`);
    expect(existsSync(`/run/containerd/runc/${ns}/${id}`)).toBe(false);
    await remove(id);
  } finally {
    ip("netns", "del", netns);
  }
}, 180_000);

test("a container that joins the host's own network namespace by path (a host-network pod's containers join the pause's) is restored there, its listener answering on the host", async () => {
  const id = uniqueId("hostjoin");
  const port = 7000 + Math.floor(Math.random() * 2000);
  const hostNet = `/proc/${process.pid}/ns/net`; // this test's own: the host's network namespace
  expect(statSync(hostNet).ino).toBe(statSync("/proc/self/ns/net").ino);
  const ask = () => Bun.spawnSync(["busybox", "sh", "-c", `echo hostjoin | nc -w 1 127.0.0.1 ${port}`], { stdout: "pipe", stderr: "pipe" }).stdout.toString().trim();
  await pc.ctrOk(["run", "-d", "--runtime", RUNTIME, "--with-ns", `network:${hostNet}`, testImage, id, "/bin/tcp-echo", String(port)], { timeoutMs: 60_000 });
  await waitFor(() => (ask() === "hostjoin" ? true : undefined), { what: "listener up on the host" });
  // Before the fix cryo refused it: "it keeps the tree in the network namespace of the CRIU that restores it (the
  // host's), and the spec gives the container one by path".
  expect(await checkpointRemoveRestore(id)).toBe("");
  expect(statSync(`/proc/${(await taskPid(pc, id))!}/ns/net`).ino).toBe(statSync("/proc/self/ns/net").ino);
  await waitFor(() => (ask() === "hostjoin" ? true : undefined), { what: "restored listener answering on the host" });
  await remove(id);
}, 180_000);

test("a namespace with only loopback and no TCP socket is dumped and restored without a network lock; a listener started afterwards answers", async () => {
  const id = uniqueId("nolock");
  await pc.ctrOk(["run", "-d", "--runtime", RUNTIME, testImage, id, "sleep", "600"], { timeoutMs: 60_000 });
  expect(await checkpointRemoveRestore(id)).toBe("");
  expect((await checkpointMetadata<{ options: { networkLock: string } }>(pc, `localhost/checkpoint/${id}:1`)).options.networkLock).toBe("skip");
  const pid = (await taskPid(pc, id))!;
  const inNetns = (cmd: string[]) => Bun.spawnSync(["nsenter", `--net=/proc/${pid}/ns/net`, ...cmd], { stdout: "pipe", stderr: "pipe" });
  expect(inNetns(["nft", "list", "tables"]).stdout.toString()).not.toContain("CRIU");
  expect(await pc.ctrOk(["task", "exec", "--exec-id", "ip", id, "ip", "addr", "show", "lo"])).toContain("inet 127.0.0.1/8");
  const listener = Bun.spawn(["nsenter", `--net=/proc/${pid}/ns/net`, "busybox", "nc", "-l", "-p", "7001", "-e", "echo", "pong"], { stdout: "ignore", stderr: "ignore" });
  try {
    const answer = await waitFor(
      async () => (await pc.ctr(["task", "exec", "--exec-id", uniqueId("c"), id, "sh", "-c", "nc -w 1 127.0.0.1 7001"])).stdout.trim() || undefined,
      { what: "an answer over the restored loopback", timeoutMs: 10_000, intervalMs: 200 },
    );
    expect(answer).toBe("pong");
  } finally {
    listener.kill("SIGKILL");
    await listener.exited;
  }
  await remove(id);
}, 120_000);

/** The checkpoint image's network images whose restore runs ip or iptables. */
async function ipToolImages(id: string): Promise<string[]> {
  const entries = criuTarEntries(await checkpointCriuTar(pc, `localhost/checkpoint/${id}:1`)).map((e) => e.replace(/^\.\//, ""));
  expect(entries.some((e) => /^netdev-\d+\.img$/.test(e))).toBe(true); // the namespace was dumped
  return entries.filter((e) => /^(route6?|rule|ip6?tables|ifaddr)-\d+\.img$/.test(e)).map((e) => e.replace(/-\d+\.img$/, "")).sort();
}

test("routes, rules and addresses given to the container's namespace come back; one with the kernel's defaults only is dumped without the images that restore nothing", async () => {
  const plain = uniqueId("netplain");
  const routed = uniqueId("netrouted");
  for (const id of [plain, routed]) await pc.ctrOk(["run", "-d", "--runtime", RUNTIME, testImage, id, "sleep", "600"], { timeoutMs: 60_000 });
  // The container has no CAP_NET_ADMIN: its route and rule are added from the host, in its namespace.
  const ip = async (id: string, args: string[]) => {
    const r = Bun.spawnSync(["nsenter", `--net=/proc/${(await taskPid(pc, id))!}/ns/net`, "ip", ...args], { stdout: "pipe", stderr: "pipe" });
    expect({ args, exitCode: r.exitCode, stderr: r.stderr.toString() }).toEqual({ args, exitCode: 0, stderr: "" });
    return r.stdout.toString();
  };
  await ip(routed, ["route", "add", "10.9.0.0/16", "dev", "lo"]);
  await ip(routed, ["rule", "add", "from", "10.1.0.0/16", "table", "100", "pref", "100"]);
  await ip(routed, ["addr", "add", "10.9.0.1/32", "dev", "lo"]);
  const rulesBefore = await ip(routed, ["rule", "show"]);
  expect(rulesBefore.trim().split("\n")).toHaveLength(4);
  // Loopback's addresses without their lifetimes' counters: address, prefix, scope, flags.
  const loAddrs = async (id: string) => (await ip(id, ["-o", "addr", "show", "dev", "lo"])).split("\n").filter((l) => l !== "").map((l) => l.replace(/\\.*$/, "").trim());
  const plainAddrs = await loAddrs(plain);
  expect(plainAddrs).toEqual(["1: lo    inet 127.0.0.1/8 scope host lo", "1: lo    inet6 ::1/128 scope host"]);
  const routedAddrs = await loAddrs(routed);
  expect(routedAddrs).toContain("1: lo    inet 10.9.0.1/32 scope global lo");

  for (const id of [plain, routed]) expect(await checkpointRemoveRestore(id)).toBe("");
  expect(await ipToolImages(plain)).toEqual([]);
  expect(await ipToolImages(routed)).toEqual(["ifaddr", "route", "rule"]);
  // Loopback has the same addresses as before: the kernel's two (made when CRIU set it up) in the plain
  // namespace, whose checkpoint had no ifaddr image; the added one too in the other.
  expect(await loAddrs(plain)).toEqual(plainAddrs);
  expect((await loAddrs(routed)).sort()).toEqual([...routedAddrs].sort());

  // The plain namespace is as a fresh one is: no route in table main, the three default rules once.
  expect((await ip(plain, ["route", "show"])).trim()).toBe("");
  expect((await ip(plain, ["rule", "show"])).trim().split("\n")).toEqual(["0:\tfrom all lookup local", "32766:\tfrom all lookup main", "32767:\tfrom all lookup default"]);
  // The other has its own route and rule back, and the defaults once (CRIU flushed them before restoring the rules).
  expect(await ip(routed, ["route", "show"])).toContain("10.9.0.0/16 dev lo");
  expect(await ip(routed, ["rule", "show"])).toBe(rulesBefore);
  for (const id of [plain, routed]) await remove(id);
}, 180_000);

test("with cryo.checkpoint/tcp-established=true a TCP connection inside the container survives checkpoint and restore", async () => {
  const id = uniqueId("tcpe");
  await pc.ctrOk(
    ["run", "-d", "--runtime", RUNTIME, "--annotation", "cryo.checkpoint/tcp-established=true", testImage, id, "sh", "-c", "/bin/tcp-echo 7000 & sleep 0.3; exec /bin/tcp-client 127.0.0.1 7000 /tmp/tcp"],
    { timeoutMs: 60_000 },
  );
  await waitFor(() => (tcpCount(id) ?? 0) >= 5, { what: "tcp-client talking" });
  expect(await checkpointRemoveRestore(id)).toBe("");
  const first = await waitFor(() => tcpCount(id), { what: "restored tcp-client writing" });
  expect(first).toBeGreaterThanOrEqual(5);
  await waitFor(() => (tcpCount(id) ?? 0) >= first + 10, { what: "ten more round trips on the same connection" });
  expect(readContainerFile(pc, id, "/tmp/tcp")).not.toContain("error");
  expect(await taskStatus(pc, id)).toBe("RUNNING");
  await remove(id);
}, 180_000);

test("a TCP connection inside the container (tcp-established) survives three rounds of checkpoint and restore, each under a new name, with an exec'd process running at each dump", async () => {
  const id = uniqueId("tcp3");
  await pc.ctrOk(
    ["run", "-d", "--runtime", RUNTIME, "--annotation", "cryo.checkpoint/tcp-established=true", testImage, id, "sh", "-c", "/bin/tcp-echo 7000 & sleep 0.3; exec /bin/tcp-client 127.0.0.1 7000 /tmp/tcp"],
    { timeoutMs: 60_000 },
  );
  await waitFor(() => ((tcpCount(id) ?? 0) >= 5 ? true : undefined), { what: "tcp-client talking" });
  let name = id;
  for (let round = 1; round <= 3; round++) {
    // An exec'd process is no child of the init: the dump leaves it out, and the restored copy runs without it.
    await pc.ctrOk(["task", "exec", "-d", "--exec-id", uniqueId("x"), name, "sleep", "1000"]);
    const ref = `localhost/checkpoint/${id}:${round}`;
    images.push(ref);
    const at = tcpCount(name)!;
    await pc.ctrOk(["containers", "checkpoint", "--task", name, ref], { timeoutMs: 120_000 });
    await remove(name);
    name = `${id}-${round}`;
    const r = await pc.ctr(["containers", "restore", "--live", name, ref], { timeoutMs: 120_000 });
    expect({ exitCode: r.exitCode, stderr: r.stderr }).toEqual({ exitCode: 0, stderr: "" });
    // containerd 1.6 loses the task of the next checkpoint while an image holding this spec's blob is there
    // (docs/containerd-checkpoint-flow.md 2.4): each image goes once restored.
    await pc.ctrOk(["images", "rm", "--sync", ref]);
    expect(await taskStatus(pc, name)).toBe("RUNNING");
    expect((await pc.ctrOk(["task", "ps", name])).trim().split("\n").length).toBe(3); // the header, tcp-client and its tcp-echo: no exec'd sleep
    const first = await waitFor(() => tcpCount(name), { what: `tcp-client writing after restore ${round}` });
    expect(first).toBeGreaterThanOrEqual(at);
    await waitFor(() => ((tcpCount(name) ?? 0) >= first + 5 ? true : undefined), { what: `five more round trips after restore ${round}` });
    expect(readContainerFile(pc, name, "/tmp/tcp")).not.toContain("error");
  }
  await remove(name);
}, 180_000);

test("with cryo.checkpoint/tcp-close=true the connection is closed after restore and the client sees it", async () => {
  const id = uniqueId("tcpc");
  await pc.ctrOk(
    ["run", "-d", "--runtime", RUNTIME, "--annotation", "cryo.checkpoint/tcp-close=true", testImage, id, "sh", "-c", "/bin/tcp-echo 7000 & sleep 0.3; exec /bin/tcp-client 127.0.0.1 7000 /tmp/tcp"],
    { timeoutMs: 60_000 },
  );
  await waitFor(() => (tcpCount(id) ?? 0) >= 5, { what: "tcp-client talking" });
  await checkpointRemoveRestore(id);
  const text = await waitFor(() => {
    const t = readContainerFile(pc, id, "/tmp/tcp");
    return t?.startsWith("error") ? t : undefined;
  }, { what: "tcp-client reporting the closed connection" });
  expect(text).toMatch(/^error/);
  await waitFor(async () => (await taskStatus(pc, id)) === "STOPPED", { what: "tcp-client exited" });
  await remove(id);
}, 180_000);

test("a host-network container keeps a TCP connection with a client outside across checkpoint (exit) and restore", async () => {
  const id = uniqueId("hnet");
  const port = 20000 + Math.floor(Math.random() * 20000);
  await pc.ctrOk(
    [
      "run", "-d", "--net-host", "--runtime", RUNTIME,
      "--annotation", "cryo.checkpoint/tcp-established=true",
      // the same 4-tuple cannot live twice in one network namespace: the original must go with the dump
      "--annotation", "cryo.checkpoint/exit=true",
      testImage, id, "/bin/tcp-echo", String(port),
    ],
    { timeoutMs: 60_000 },
  );
  const dir = mkdtempSync(join(tmpdir(), "cryo-ckpt-hnet-"));
  const out = join(dir, "client");
  const { binDir } = await buildFixtures();
  const client = Bun.spawn([join(binDir, "tcp-client"), "127.0.0.1", String(port), out], { stdio: ["ignore", "ignore", "pipe"] });
  const count = () => {
    try {
      const m = /^(\d+) ok$/.exec(readFileSync(out, "utf8").trim());
      return m ? Number(m[1]) : undefined;
    } catch {
      return undefined;
    }
  };
  try {
    await waitFor(() => (count() ?? 0) >= 5, { what: "client talking to the container" });
    const ref = `localhost/checkpoint/${id}:1`;
    images.push(ref);
    await pc.ctrOk(["containers", "checkpoint", "--task", id, ref], { timeoutMs: 120_000 });
    await waitFor(async () => (await taskStatus(pc, id)) === "STOPPED", { what: "stopped by the dump" });
    await pc.ctrOk(["task", "rm", id]);
    await pc.ctrOk(["containers", "rm", id]);
    const before = count()!;
    const r = await pc.ctr(["containers", "restore", "--live", id, ref], { timeoutMs: 120_000 });
    expect(r.exitCode).toBe(0);
    await waitFor(() => (count() ?? 0) >= before + 10, { what: "ten more round trips on the same connection" });
    expect(client.exitCode).toBeNull(); // tcp-client exits on any broken connection
    expect(readFileSync(out, "utf8")).not.toContain("error");
    await remove(id);
  } finally {
    client.kill("SIGKILL");
    await client.exited;
    rmSync(dir, { recursive: true, force: true });
  }
}, 180_000);

test("a host-network listener restored under a new name while the original still listens: FAILED_PRECONDITION naming the address in use, and nothing of the restore is left", async () => {
  const id = uniqueId("hport");
  const copy = `${id}-2`;
  const port = 20000 + Math.floor(Math.random() * 20000);
  await pc.ctrOk(["run", "-d", "--net-host", "--runtime", RUNTIME, testImage, id, "/bin/tcp-echo", String(port)], { timeoutMs: 60_000 });
  try {
    await waitFor(() => readFileSync("/proc/net/tcp", "utf8").includes(`:${port.toString(16).toUpperCase().padStart(4, "0")} 00000000:0000 0A`) || undefined, { what: `tcp-echo listening on ${port}` });
    const ref = `localhost/checkpoint/${id}:1`;
    images.push(ref);
    await pc.ctrOk(["containers", "checkpoint", "--task", "--image", id, ref], { timeoutMs: 120_000 });
    const r = await pc.ctr(["containers", "restore", "--live", copy, ref], { timeoutMs: 120_000 });
    expect(r.exitCode).not.toBe(0);
    expect(r.stderr).toContain("failed precondition");
    expect(r.stderr).toContain("Can't bind inet socket");
    expect(r.stderr).toContain("Address already in use");
    expect(r.stderr).toContain("free the address, or restore into a network namespace of the container's own");
    // Nothing of the copy's restore: no runc state or cgroup; the original still runs. ctr leaves the task it created
    // (CREATED, as with runc's shim): removed, it leaves no mount either.
    expect(existsSync(`/run/containerd/runc/${ns}/${copy}`)).toBe(false);
    for (const h of readdirSync("/sys/fs/cgroup")) expect(existsSync(join("/sys/fs/cgroup", h, ns, copy))).toBe(false);
    expect(await taskStatus(pc, id)).toBe("RUNNING");
    await pc.ctrOk(["task", "rm", copy]);
    await pc.ctrOk(["containers", "rm", copy]);
    expect(readFileSync("/proc/self/mountinfo", "utf8")).not.toContain(`/${copy}/`);
  } finally {
    await remove(id);
  }
}, 180_000);

test("a dump refused for a socket says what allows it: an established TCP connection, a unix socket connected to the host's; a stream half nothing allows", async () => {
  // Before, each failed with CRIU's line alone (and the stream half with UNKNOWN); runc's shim says "criu failed: type NOTIFY errno 0 ... unknown".
  const dir = mkdtempSync(join(tmpdir(), "cryo-ext-unix-"));
  const peers: unknown[] = [];
  const server = Bun.listen({ unix: join(dir, "s.sock"), socket: { open: (s) => void peers.push(s), data: () => {} } });
  try {
    const tcp = uniqueId("tcpnoopt");
    await pc.ctrOk(["run", "-d", "--runtime", RUNTIME, testImage, tcp, "sh", "-c", "/bin/tcp-echo 7000 & sleep 0.3; exec /bin/tcp-client 127.0.0.1 7000 /tmp/tcp"], { timeoutMs: 60_000 });
    await waitFor(async () => ((await readContainerFile(pc, tcp, "/tmp/tcp"))?.includes("ok") ? true : undefined), { what: "tcp-client connected" });
    const r1 = await pc.ctr(["task", "checkpoint", tcp], { timeoutMs: 120_000 });
    expect(r1.exitCode).not.toBe(0);
    expect(r1.stderr).toContain("Connected TCP socket, consider using --tcp-established option");
    expect(r1.stderr).toContain("set the annotation cryo.checkpoint/tcp-established=true (ctr run --annotation), cryo.v1.CheckpointOptions.tcp_established or [checkpoint] tcp_established = true");
    expect(ctrErrorHasCode(r1.stderr, "failed precondition")).toBe(true);
    expect(await taskStatus(pc, tcp)).toBe("RUNNING");
    await remove(tcp);

    for (const ext of [false, true]) {
      const id = uniqueId(ext ? "unixext" : "unix");
      await pc.ctrOk(["run", "-d", "--runtime", RUNTIME, "--mount", `type=bind,src=${dir},dst=/us,options=rbind:rw`, ...(ext ? ["--annotation", "cryo.checkpoint/ext-unix-sk=true"] : []), testImage, id, "/bin/unixconn", "/us/s.sock"], { timeoutMs: 60_000 });
      await waitFor(() => (peers.length >= (ext ? 2 : 1) ? true : undefined), { what: `${id} connected` });
      const r = await pc.ctr(["task", "checkpoint", id], { timeoutMs: 120_000 });
      expect(r.exitCode).not.toBe(0);
      expect(ctrErrorHasCode(r.stderr, "failed precondition")).toBe(true);
      // A stream connection: no option allows it, and the error says so with ext-unix-sk or without (CRIU then names
      // the peer in a "Runaway socket" line before its "External socket is used").
      expect(r.stderr).toContain(`a unix stream socket of the container is connected to ${join(dir, "s.sock")} outside it: CRIU cannot dump one half of a stream connection, with or without ext-unix-sk`);
      expect(r.stderr).toContain(ext ? "Can't dump half of stream unix connection" : "External socket is used");
      expect(await taskStatus(pc, id)).toBe("RUNNING");
      await remove(id);
    }
  } finally {
    server.stop(true);
    rmSync(dir, { recursive: true, force: true });
  }
}, 180_000);
