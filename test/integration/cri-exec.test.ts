/**
 * Kubernetes-style exec traffic through containerd's CRI plugin, handler cryo against handler runc on one private
 * containerd: what a kubelet's probes (ExecSync with a timeout) and kubectl exec/attach (CRI Exec and Attach, then
 * containerd's stream server) see, and what they leave behind. The daemon's exec slots are one here
 * (`[shim] max_parallel_execs = 1`), so that an ExecSync flood makes every other launch wait for its slot.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { create } from "@bufbuild/protobuf";
import { NamespaceMode, PodSandboxConfigSchema } from "../../src/gen/k8s/runtime/v1/api_pb.ts";
import {
  cgroupDirs,
  criNamespace,
  shimProcesses,
  startCriSetup,
  stopCriSetup,
  streamCri,
  testImage,
  uniqueId,
  waitFor,
  type CriClient,
  type CriSetup,
  type PrivateContainerd,
} from "../harness/index.ts";

const isRoot = process.getuid?.() === 0;
const handlers = { cryo: "containerd-shim-cryo-v2", runc: "containerd-shim-runc-v2" } as const;
type Handler = keyof typeof handlers;
const cgroupParent = `/${uniqueId("cri-exec")}`;
const hostNetwork = { network: NamespaceMode.NODE, pid: NamespaceMode.CONTAINER, ipc: NamespaceMode.POD };

let setup: CriSetup | undefined;
let pc: PrivateContainerd | undefined;
let cri: CriClient | undefined;
let dir: string | undefined;

beforeAll(async () => {
  if (!isRoot) return;
  setup = await startCriSetup("cri-exec", (d) => {
    const config = join(d, "cryo.toml");
    writeFileSync(config, "[shim]\nmax_parallel_execs = 1\n");
    return { CRYO_CONFIG: config };
  });
  ({ pc, cri, dir } = setup);
}, 180_000);

afterAll(() => stopCriSetup(setup, cgroupParent), 120_000);

/** A pod (sandbox + one container printing a line every 100 ms) with the handler; removed by `using`'s end. */
async function runPod(handler: Handler): Promise<{ podSandboxId: string; containerId: string; pid: number } & AsyncDisposable> {
  const client = cri!;
  const name = uniqueId(`cri-exec-${handler}`);
  const sandboxConfig = create(PodSandboxConfigSchema, {
    metadata: { name, uid: crypto.randomUUID(), namespace: "cryo-test", attempt: 0 },
    logDirectory: join(dir!, name),
    linux: { cgroupParent, securityContext: { namespaceOptions: hostNetwork } },
  });
  const { podSandboxId } = await client.runtime.runPodSandbox({ config: sandboxConfig, runtimeHandler: handler }, { timeoutMs: 120_000 });
  const remove = async () => {
    await client.runtime.stopPodSandbox({ podSandboxId }, { timeoutMs: 60_000 }).catch(() => {});
    await client.runtime.removePodSandbox({ podSandboxId }, { timeoutMs: 60_000 }).catch(() => {});
  };
  try {
    const { containerId } = await client.runtime.createContainer(
      {
        podSandboxId,
        sandboxConfig,
        config: {
          metadata: { name: "app", attempt: 0 },
          image: { image: testImage },
          command: ["sh", "-c", "trap 'exit 0' TERM; i=0; while true; do echo line $i; i=$((i+1)); sleep 0.1; done"],
          logPath: "app.log",
          linux: { securityContext: { namespaceOptions: hostNetwork } },
        },
      },
      { timeoutMs: 120_000 },
    );
    await client.runtime.startContainer({ containerId }, { timeoutMs: 120_000 });
    const status = await client.runtime.containerStatus({ containerId, verbose: true });
    const pid = (JSON.parse(status.info.info ?? "{}") as { pid: number }).pid;
    return { podSandboxId, containerId, pid, [Symbol.asyncDispose]: remove };
  } catch (err) {
    await remove();
    throw err;
  }
}

/** The command lines of the container's processes besides its init and its loop's `sleep 0.1`. */
function otherProcesses(containerId: string, initPid: number): string[] {
  const pidsDir = cgroupDirs(initPid).find((d) => d.startsWith("/sys/fs/cgroup/pids/") && d.endsWith(`/${containerId}`));
  const procs = readFileSync(join(pidsDir ?? cgroupDirs(initPid).find((d) => d.endsWith(`/${containerId}`))!, "cgroup.procs"), "utf8");
  return procs
    .split("\n")
    .filter((l) => l !== "" && Number(l) !== initPid)
    .map((pid) => {
      try {
        return readFileSync(`/proc/${pid}/cmdline`, "utf8").replaceAll("\0", " ").trim();
      } catch {
        return "";
      }
    })
    .filter((cmd) => cmd !== "" && cmd !== "sleep 0.1");
}

/** The processes `ctr task ps` lists for the container besides its init: execs the shim still knows, among them. */
async function listedBesidesInit(containerId: string, initPid: number): Promise<string[]> {
  const ps = await pc!.ctrOk(["task", "ps", containerId], { namespace: criNamespace });
  return ps
    .split("\n")
    .slice(1)
    .map((l) => l.trim().split(/\s+/)[0] ?? "")
    .filter((pid) => pid !== "" && Number(pid) !== initPid)
    .filter((pid) => {
      try {
        const cmd = readFileSync(`/proc/${pid}/cmdline`, "utf8").replaceAll("\0", " ").trim();
        // An empty command line is a zombie (the loop's last `sleep 0.1`, ended but not yet reaped by sh), as in otherProcesses.
        return cmd !== "" && cmd !== "sleep 0.1";
      } catch {
        return false;
      }
    });
}

const errorOf = (call: Promise<unknown>) => call.then(() => "no error", (e: unknown) => String((e as Error).message).replace(/[0-9a-f]{64}/g, "<id>"));

test.skipIf(!isRoot)("a probe that times out (sleep 2, timeout 1 s) fails with the same error with either handler, and leaves no exec behind", async () => {
  const errors: Record<string, string> = {};
  for (const handler of ["cryo", "runc"] as const) {
    await using pod = await runPod(handler);
    const t0 = performance.now();
    errors[handler] = await errorOf(cri!.runtime.execSync({ containerId: pod.containerId, cmd: ["sh", "-c", "sleep 2; echo late"], timeout: 1n }, { timeoutMs: 30_000 }));
    expect(performance.now() - t0).toBeGreaterThanOrEqual(1000);
    // The killed sh's sleep lives on until it ends (with either handler); then nothing of the probe is left.
    await waitFor(() => otherProcesses(pod.containerId, pod.pid).length === 0, { what: `no probe process left in ${handler}'s container`, timeoutMs: 10_000 });
    expect(await listedBesidesInit(pod.containerId, pod.pid)).toEqual([]);
    expect(shimProcesses(handlers[handler], pc!.address).length).toBeGreaterThan(0);
  }
  expect(errors.cryo).toContain("timeout 1s exceeded: context deadline exceeded");
  expect(errors.cryo).toBe(errors.runc!);
}, 120_000);

test.skipIf(!isRoot)("an ExecSync whose caller gives up while its Start waits for an exec slot leaves no process or exec behind", async () => {
  // containerd's ExecSync, its context ended during the exec's Start, kills the exec and deletes it. cryo refused the
  // Kill of an exec still being launched ("process not started"), then the Delete of the running exec: `sleep 30`
  // ran on in the container and the daemon listed the exec ("Failed to delete exec process" in containerd's log).
  await using pod = await runPod("cryo");
  const client = cri!;
  const log = () => readFileSync(join(pc!.dir, "containerd.log"), "utf8");
  // CRI logs every failed ExecSync once ("ExecSync for <id> failed", the error naming the step of execInternal that failed:
  // get container spec, load task, create exec, wait for process or start exec).
  // Any error counts: containerd's wording of a deadline depends on which side saw it first.
  const failedExecSyncs = () => log().match(/ExecSync for \\"[0-9a-f]{64}\\" failed" error="(?:[^"\\]|\\.)*"/g) ?? [];
  // 60 launches queued for the one slot take seconds, however quiet the machine: the ExecSync given up after 500 ms is
  // then mostly waiting for its slot, past its Exec. On a loaded machine containerd's Exec itself may outlast the 500 ms
  // ("failed to create exec", a case with nothing to clean up), or an earlier step may: then the scenario is tried again.
  let failedIn = "";
  for (let attempt = 1; attempt <= 4 && failedIn !== "start"; attempt++) {
    const before = failedExecSyncs().length;
    const flood = Array.from({ length: 60 }, () => client.runtime.execSync({ containerId: pod.containerId, cmd: ["true"], timeout: 10n }, { timeoutMs: 120_000 }));
    await Bun.sleep(200);
    const gaveUp = await errorOf(client.runtime.execSync({ containerId: pod.containerId, cmd: ["sleep", "30"], timeout: 60n }, { timeoutMs: 500 }));
    expect(gaveUp).toContain("context deadline exceeded");
    for (const r of await Promise.all(flood)) expect(r.exitCode).toBe(0);
    // containerd logs the failure once its Kill and Delete of the exec are over (without the fix, some 10 s later here).
    const line = await waitFor(() => failedExecSyncs()[before], { what: "containerd to log the given-up ExecSync", timeoutMs: 60_000 }).catch((err: unknown) => {
      // What containerd said of execs meanwhile, for the reader of a failure.
      const said = log().split("\n").filter((l) => /exec/i.test(l) && /level=(error|warning)/.test(l)).slice(-8);
      throw new Error(`${(err as Error).message}; containerd's last exec errors and warnings:\n${said.join("\n")}`);
    });
    failedIn = line.includes("failed to start exec") ? "start" : (/failed to (get container spec|load task|create exec|wait for process)/.exec(line)?.[1] ?? line);
  }
  // containerd's Start failed on its caller's end, not its Exec: the case this is about.
  expect(failedIn).toBe("start");
  await waitFor(() => otherProcesses(pod.containerId, pod.pid).length === 0, { what: "no exec process left in the container", timeoutMs: 10_000 });
  // The daemon's listing (runc ps, read a moment after /proc) may still catch the loop's sleep between fork and exec.
  await waitFor(async () => (await listedBesidesInit(pod.containerId, pod.pid)).length === 0 || undefined, { what: "the daemon to list no exec", timeoutMs: 10_000 });
  expect(log()).not.toContain("Failed to delete exec process");
}, 120_000);

test.skipIf(!isRoot)("kubectl exec and attach (CRI Exec and Attach, containerd's stream server) beside an ExecSync flood answer as with runc's shim", async () => {
  const seen: Record<string, unknown> = {};
  for (const handler of ["cryo", "runc"] as const) {
    await using pod = await runPod(handler);
    const client = cri!;
    let stop = false;
    const flood = Array.from({ length: 8 }, async () => {
      let failures = 0;
      while (!stop) if ((await client.runtime.execSync({ containerId: pod.containerId, cmd: ["true"], timeout: 10n }, { timeoutMs: 60_000 })).exitCode !== 0) failures++;
      return failures;
    });
    try {
      const { url } = await client.runtime.exec({ containerId: pod.containerId, cmd: ["sh", "-c", "read x; echo out $x; echo err >&2; exit 3"], stdin: true, stdout: true, stderr: true });
      const exec = await streamCri(url, { stdin: "in\n" });
      const attach = await client.runtime.attach({ containerId: pod.containerId, stdout: true, stderr: true });
      const attached = await streamCri(attach.url, { closeWhenStdout: /line \d+\n/ });
      seen[handler] = { exec: { stdout: exec.stdout, stderr: exec.stderr, exitCode: exec.exitCode }, attachSawALine: /line \d+\n/.test(attached.stdout) };
    } finally {
      stop = true;
    }
    expect(await Promise.all(flood)).toEqual(Array(8).fill(0));
    await waitFor(async () => (await listedBesidesInit(pod.containerId, pod.pid)).length === 0 || undefined, { what: `no exec left in ${handler}'s container`, timeoutMs: 10_000 });
  }
  expect(seen.cryo).toEqual({ exec: { stdout: "out in\n", stderr: "err\n", exitCode: 3 }, attachSawALine: true });
  expect(seen.cryo).toEqual(seen.runc);
}, 180_000);
