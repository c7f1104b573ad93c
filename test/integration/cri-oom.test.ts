/**
 * What a Kubernetes user sees of an out-of-memory container through containerd's CRI plugin, handler cryo against
 * handler runc on one private containerd: `kubectl describe pod` shows the container's last state as terminated with
 * reason OOMKilled and exit code 137. containerd's CRI sets that reason only from the shim's /tasks/oom event (a
 * container killed by SIGKILL otherwise reads "Error"), so this is the shim's OOM event end to end. The kubelet then
 * starts the container again in the same pod (attempt 1), which with cryo joins the pod's daemon.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { join } from "node:path";
import { create } from "@bufbuild/protobuf";
import { ContainerState, NamespaceMode, PodSandboxConfigSchema } from "../../src/gen/k8s/runtime/v1/api_pb.ts";
import { parentPid, shimProcesses, startCriSetup, stopCriSetup, testImage, uniqueId, waitFor, type CriClient, type CriSetup, type PrivateContainerd } from "../harness/index.ts";

const isRoot = process.getuid?.() === 0;
const handlers = { cryo: "containerd-shim-cryo-v2", runc: "containerd-shim-runc-v2" } as const;
type Handler = keyof typeof handlers;
const cgroupParent = `/${uniqueId("cri-oom")}`;
const hostNetwork = { network: NamespaceMode.NODE, pid: NamespaceMode.CONTAINER, ipc: NamespaceMode.POD };
const limit = 32n << 20n;

let setup: CriSetup | undefined;
let pc: PrivateContainerd | undefined;
let cri: CriClient | undefined;
let dir: string | undefined;

beforeAll(async () => {
  if (!isRoot) return;
  setup = await startCriSetup("cri-oom");
  ({ pc, cri, dir } = setup);
}, 180_000);

afterAll(() => stopCriSetup(setup, cgroupParent), 120_000);

interface Seen {
  state: ContainerState | undefined;
  exitCode: number | undefined;
  reason: string | undefined;
  restarted: ContainerState | undefined;
  restartedUnderPodDaemon: boolean;
  shimsAfterRemoval: number;
}

/** A pod of this handler (host network: no CNI here), and how to start a container "hog" in it. */
async function hogPod(handler: Handler, name: string) {
  const client = cri!;
  const sandboxConfig = create(PodSandboxConfigSchema, {
    metadata: { name, uid: crypto.randomUUID(), namespace: "cryo-test", attempt: 0 },
    logDirectory: join(dir!, name),
    linux: { cgroupParent, securityContext: { namespaceOptions: hostNetwork } },
  });
  const { podSandboxId } = await client.runtime.runPodSandbox({ config: sandboxConfig, runtimeHandler: handler }, { timeoutMs: 120_000 });
  return {
    podSandboxId,
    /** Creates and starts attempt `attempt` of the container, limited to memoryLimit bytes; its id. */
    async start(attempt: number, command: string[], memoryLimit: bigint): Promise<string> {
      const { containerId } = await client.runtime.createContainer(
        {
          podSandboxId,
          sandboxConfig,
          config: {
            metadata: { name: "hog", attempt },
            image: { image: testImage },
            command,
            logPath: `hog-${attempt}.log`,
            linux: { resources: { memoryLimitInBytes: memoryLimit }, securityContext: { namespaceOptions: hostNetwork } },
          },
        },
        { timeoutMs: 120_000 },
      );
      await client.runtime.startContainer({ containerId }, { timeoutMs: 120_000 });
      return containerId;
    },
    /** Stops and removes the pod, as the kubelet does. */
    async remove(): Promise<void> {
      await client.runtime.stopPodSandbox({ podSandboxId }, { timeoutMs: 60_000 }).catch(() => {});
      await client.runtime.removePodSandbox({ podSandboxId }, { timeoutMs: 60_000 }).catch(() => {});
    },
  };
}

/**
 * The container's status once its reason has settled: the exit and the OOM event are two events, and CRI reads
 * "Error" until the OOM one is handled (runc's shim sends the OOM event first; either order ends in OOMKilled).
 */
async function oomStatus(containerId: string, what: string, timeoutMs: number) {
  const client = cri!;
  let status = (await client.runtime.containerStatus({ containerId })).status;
  await waitFor(
    async () => {
      status = (await client.runtime.containerStatus({ containerId })).status;
      return status?.state === ContainerState.CONTAINER_EXITED && status.reason === "OOMKilled";
    },
    { what, timeoutMs },
  ).catch(() => {});
  return status;
}

/**
 * A pod whose container, limited to 32 MiB, fills 128 MiB (memhog; this machine has no swap), then the container
 * again as attempt 1 with a counter that stays under the limit; the pod removed at the end.
 */
async function oomPod(handler: Handler): Promise<Seen> {
  const client = cri!;
  const pod = await hogPod(handler, uniqueId(`cri-oom-${handler}`));
  try {
    // containerd's runc shim watches for OOMs (memory.oom_control's eventfd) only once its Start has run runc start
    // (runtime/v2/runc/task/service.go, Start: s.ep.Add after container.Start): an OOM kill before that is never
    // reported, and CRI reads "Error" (seen once beside a loaded run: 30 s without OOMKilled). Its hog fills memory
    // once StartContainer has answered, the watch in place; cryo's at once, as ever.
    const hogCommand = ["/bin/memhog", "128", "/tmp/counter"];
    const hog = await pod.start(0, handler === "runc" ? ["sh", "-c", `while [ ! -e /tmp/go ]; do sleep 0.05; done; exec ${hogCommand.join(" ")}`] : hogCommand, limit);
    if (handler === "runc") await client.runtime.execSync({ containerId: hog, cmd: ["touch", "/tmp/go"], timeout: 30n }, { timeoutMs: 60_000 });
    const status = await oomStatus(hog, `${handler}: the OOM-killed container's status to read OOMKilled`, 30_000);
    const seen = { state: status?.state, exitCode: status?.exitCode, reason: status?.reason };

    // The kubelet's restart: the exited attempt removed, attempt 1 created in the same sandbox.
    await client.runtime.removeContainer({ containerId: hog }, { timeoutMs: 60_000 });
    const again = await pod.start(1, ["/bin/memhog", "0", "/tmp/counter"], limit);
    const againStatus = await client.runtime.containerStatus({ containerId: again, verbose: true });
    const pid = (JSON.parse(againStatus.info.info ?? "{}") as { pid: number }).pid;
    const sandbox = await client.runtime.podSandboxStatus({ podSandboxId: pod.podSandboxId, verbose: true });
    const pausePid = (JSON.parse(sandbox.info.info ?? "{}") as { pid: number }).pid;
    const restartedUnderPodDaemon = parentPid(pid) === parentPid(pausePid) && shimProcesses(handlers[handler], pc!.address).some((s) => s.pid === parentPid(pid));
    return { ...seen, restarted: againStatus.status?.state, restartedUnderPodDaemon, shimsAfterRemoval: -1 };
  } finally {
    await pod.remove();
  }
}

for (const handler of ["cryo", "runc"] as const) {
  test.skipIf(!isRoot)(
    `handler ${handler}: a container past its memory limit reads EXITED, 137, OOMKilled; its restart in the pod runs on the pod's shim; nothing is left`,
    async () => {
      const seen = await oomPod(handler);
      await waitFor(() => shimProcesses(handlers[handler], pc!.address).length === 0, { what: `${handler}: the pod's shim to exit`, timeoutMs: 30_000 }).catch(() => {});
      seen.shimsAfterRemoval = shimProcesses(handlers[handler], pc!.address).length;
      expect(seen).toEqual({
        state: ContainerState.CONTAINER_EXITED,
        exitCode: 137,
        reason: "OOMKilled",
        restarted: ContainerState.CONTAINER_RUNNING,
        restartedUnderPodDaemon: true,
        shimsAfterRemoval: 0,
      });
    },
    240_000,
  );
}

/**
 * Containers killed by the OOM killer as soon as they run (a 4 MiB limit, memhog filling 128 MiB: its first
 * milliseconds), several in a row in one pod, handler cryo. The shim must watch the container's memory cgroup from
 * before the init runs: its watch began once `runc start` had returned, took a kill that came first for one from
 * before the watch, and CRI read reason "Error" (bench/cri-chaos.ts met it with a 32 MiB limit on a busy machine; here
 * 2 or more of 8 lost, every run, before the change). runc's shim begins its watch after runc start too, with a
 * narrower window (1 of 8 lost at this limit once, none at 6 MiB): not asserted for it, docs/cri.md.
 */
async function instantOoms(count: number): Promise<{ exitCode: number; reason: string }[]> {
  const client = cri!;
  const pod = await hogPod("cryo", uniqueId("cri-oom-now"));
  const seen: { exitCode: number; reason: string }[] = [];
  try {
    for (let attempt = 0; attempt < count; attempt++) {
      const containerId = await pod.start(attempt, ["/bin/memhog", "128", "/tmp/counter"], 4n << 20n);
      const status = await oomStatus(containerId, `attempt ${attempt}'s status to read OOMKilled`, 15_000);
      seen.push({ exitCode: status?.exitCode ?? -1, reason: status?.reason ?? "" });
      await client.runtime.removeContainer({ containerId }, { timeoutMs: 60_000 });
    }
  } finally {
    await pod.remove();
  }
  return seen;
}

test.skipIf(!isRoot)(
  "handler cryo: containers OOM-killed as soon as they run read EXITED, 137, OOMKilled, every one",
  async () => {
    const count = 8;
    expect(await instantOoms(count)).toEqual(Array.from({ length: count }, () => ({ exitCode: 137, reason: "OOMKilled" })));
  },
  300_000,
);
