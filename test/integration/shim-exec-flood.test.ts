/**
 * A flood of exec cycles (Exec, Start, Wait, Delete: what CRI's ExecSync sends) into containers of one shim daemon,
 * sent straight to its socket: the flooded container's Kill, and another container's State and exec (through ctr),
 * answer while most of the flood still waits; no more `runc exec` run at once than the config's
 * `[shim] max_parallel_execs`; every exec of the flood succeeds, and the daemon holds no more descriptors afterwards.
 */
import { afterAll, beforeAll, expect, setDefaultTimeout, test } from "bun:test";
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { create } from "@bufbuild/protobuf";
import { AnySchema } from "@bufbuild/protobuf/wkt";
import { Task as TaskV2 } from "../../src/gen/containerd/runtime/task/v2/shim_pb.ts";
import { Status } from "../../src/gen/containerd/types/task/task_pb.ts";
import { connect } from "../../src/ttrpc/index.ts";
import { ensureTestImage, removeContainer, shimDaemonPids, startPrivateContainerd, testImage, uniqueId, waitFor, type PrivateContainerd } from "../harness/index.ts";

setDefaultTimeout(120_000);
const RUNTIME = "io.containerd.cryo.v2";
const SLOTS = 2;
let pc: PrivateContainerd;
let ns: string;
let dir: string;
const ids: string[] = [];

beforeAll(async () => {
  dir = mkdtempSync("/tmp/cryo-flood-");
  writeFileSync(join(dir, "config.toml"), `[shim]\nmax_parallel_execs = ${SLOTS}\n`);
  ns = uniqueId("flood");
  pc = await startPrivateContainerd({ namespace: ns, env: { CRYO_SHIM_GROUPING: "per-namespace", CRYO_CONFIG: join(dir, "config.toml") } });
  await ensureTestImage(pc);
});

afterAll(async () => {
  for (const id of ids) await removeContainer(pc, id).catch(() => {});
  await pc?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

const execSpec = (args: string[]) =>
  create(AnySchema, { typeUrl: "types.containerd.io/opencontainers/runtime-spec/1/Process", value: new TextEncoder().encode(JSON.stringify({ args, cwd: "/", env: ["PATH=/bin:/usr/bin"], user: { uid: 0, gid: 0 } })) });

/** `runc exec` processes the daemon runs now (its children whose command line is runc's exec). */
function runcExecs(daemon: number): number {
  let n = 0;
  for (const p of readdirSync("/proc").filter((x) => /^\d+$/.test(x))) {
    try {
      const stat = readFileSync(`/proc/${p}/stat`, "utf8");
      if (Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]) !== daemon) continue;
      const argv = readFileSync(`/proc/${p}/cmdline`, "utf8").split("\0");
      if (argv[0]?.endsWith("runc") && argv.includes("exec")) n++;
    } catch {}
  }
  return n;
}

test("an exec flood into two containers: the flooded container's Kill and a quiet one's State and exec answer while most of it waits; at most max_parallel_execs launches run at once", async () => {
  const quiet = uniqueId("quiet");
  const flooded = [uniqueId("flooded"), uniqueId("flooded")];
  for (const id of [quiet, ...flooded]) {
    await pc.ctrOk(["run", "-d", "--runtime", RUNTIME, testImage, id, "sleep", "1000"]);
    ids.push(id);
  }
  const socket = readFileSync(join(pc.state, "io.containerd.runtime.v2.task", ns, quiet, "address"), "utf8").trim().replace(/^unix:\/\//, "");
  const daemons = shimDaemonPids(pc.address);
  expect(daemons.length).toBe(1); // per-namespace: the three containers share it
  const daemon = daemons[0]!;
  const fdsBefore = readdirSync(`/proc/${daemon}/fd`).length;
  const clients = await Promise.all(Array.from({ length: 10 }, () => connect(socket)));
  const prober = await connect(socket);
  const call = (c: typeof prober, method: string, req: Record<string, unknown>) => c.call(TaskV2, method as "state", req as never, { namespace: ns, timeoutMs: 110_000 }) as Promise<{ status?: Status }>;
  try {
    let most = 0;
    let sampling = true;
    const sampler = (async () => {
      while (sampling) {
        most = Math.max(most, runcExecs(daemon));
        await Bun.sleep(5);
      }
    })();
    const FLOOD = 100;
    let finished = 0;
    const flood = Promise.all(
      Array.from({ length: FLOOD }, async (_, i) => {
        const c = clients[i % clients.length]!;
        const id = flooded[i % 2]!;
        const execId = `flood-${i}`;
        await call(c, "exec", { id, execId, spec: execSpec(["true"]), stdin: "", stdout: "", stderr: "", terminal: false });
        const waited = call(c, "wait", { id, execId });
        await call(c, "start", { id, execId });
        await waited;
        await call(c, "delete", { id, execId });
        finished++;
      }),
    );
    // Once the flood is under way: Kill (signal 0: is it there?) of a flooded container, State of the quiet one, an exec
    // in the quiet one through containerd. Before, each flooded container's Kill waited behind all of its execs.
    await waitFor(() => runcExecs(daemon) > 0 || finished > 0, { intervalMs: 5 });
    await call(prober, "kill", { id: flooded[0], signal: 0 });
    const afterKill = finished;
    expect((await call(prober, "state", { id: quiet })).status).toBe(Status.RUNNING);
    expect((await pc.ctrOk(["task", "exec", "--exec-id", uniqueId("probe"), quiet, "echo", "quiet answers"])).trim()).toBe("quiet answers");
    const afterExec = finished;
    await flood;
    sampling = false;
    await sampler;
    // Generous: the Kill answered with most of the flood still to come, and so did the quiet container's exec.
    expect(afterKill).toBeLessThan(FLOOD / 2);
    expect(afterExec).toBeLessThan(FLOOD);
    expect(finished).toBe(FLOOD);
    expect(most).toBeGreaterThan(0);
    expect(most).toBeLessThanOrEqual(SLOTS);
    // Nothing of the flood is left: no exec in the containers, no descriptor in the daemon.
    for (const id of flooded) expect((await pc.ctrOk(["task", "ps", id])).split("\n").filter((l) => l.includes("flood-")).length).toBe(0);
    await waitFor(() => readdirSync(`/proc/${daemon}/fd`).length <= fdsBefore + 11, { timeoutMs: 10_000, what: "the daemon's descriptors back to where they were (plus the test's 11 connections)" });
  } finally {
    for (const c of [...clients, prober]) c.close();
  }
});
