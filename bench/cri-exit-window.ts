// Benchmark (not a test): how long containerd's CRI plugin reads a container RUNNING after its init has exited, and
// how often a kubelet's RemoveContainer sent then fails with "container is still running, to stop first", handler cryo
// against handler runc on one private containerd. containerd 1.6's CRI handles a TaskExit by deleting the task (the
// shim's Delete and Shutdown, then `<shim binary> delete`, run synchronously from the connection's close, then the
// bundle's removal) and only then marks the container EXITED; in between, the task is gone from containerd's list while
// CRI still reads RUNNING, and a RemoveContainer finds nothing to stop and refuses the "running" container
// (bench/cri-chaos.ts hit it with cryo). Per handler: --count containers (`sleep 0.3; exit 3`) in one host-network pod;
// for each, /proc is polled until the init is gone, then ContainerStatus until EXITED, while a RemoveContainer is sent
// every 3 ms from the exit on without waiting for the one before: those refused "still running" times 3 ms are about
// the time CRI read RUNNING with no task left to stop. Printed per handler: exit to EXITED (median, p90, max) and the
// refusals.
// Run as root: node_modules/.bin/bun bench/cri-exit-window.ts [--handlers cryo,runc] [--count 20]
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { create } from "@bufbuild/protobuf";
import { ContainerState, NamespaceMode, PodSandboxConfigSchema } from "../src/gen/k8s/runtime/v1/api_pb.ts";
import { connectCri, criPauseImage, ensureCriImages, processAlive, removeAllPods, removeCgroupParent, startPrivateContainerd, testImage } from "../test/harness/index.ts";

const args = process.argv.slice(2);
const opt = (name: string, def: string): string => {
  const i = args.indexOf(name);
  return i >= 0 ? (args[i + 1] ?? def) : def;
};
const HANDLERS = opt("--handlers", "cryo,runc").split(",");
const COUNT = Number(opt("--count", "20"));
const hostNetwork = { network: NamespaceMode.NODE, pid: NamespaceMode.CONTAINER, ipc: NamespaceMode.POD };
const cgroupParent = `cryo-exit-window-${process.pid}`;
const quantile = (xs: number[], q: number) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(q * xs.length))] ?? NaN;

const logRoot = mkdtempSync(join(tmpdir(), "cryo-exit-window-"));
const pc = await startPrivateContainerd({ sandboxImage: criPauseImage });
const cri = connectCri(pc.address);
try {
  await ensureCriImages(pc, cri);
  for (const handler of HANDLERS) {
    const name = `exit-window-${handler}`;
    const sandboxConfig = create(PodSandboxConfigSchema, {
      metadata: { name, uid: crypto.randomUUID(), namespace: "cryo-bench", attempt: 0 },
      logDirectory: join(logRoot, name),
      linux: { cgroupParent: `/${cgroupParent}`, securityContext: { namespaceOptions: hostNetwork } },
    });
    const { podSandboxId } = await cri.runtime.runPodSandbox({ config: sandboxConfig, runtimeHandler: handler }, { timeoutMs: 120_000 });
    const windows: number[] = [];
    let refused = 0;
    for (let i = 0; i < COUNT; i++) {
      const { containerId } = await cri.runtime.createContainer({
        podSandboxId,
        sandboxConfig,
        config: { metadata: { name: "x", attempt: i }, image: { image: testImage }, command: ["sh", "-c", "sleep 0.3; exit 3"], logPath: `x-${i}.log`, linux: { securityContext: { namespaceOptions: hostNetwork } } },
      });
      await cri.runtime.startContainer({ containerId });
      const s = await cri.runtime.containerStatus({ containerId, verbose: true });
      const pid = (JSON.parse(s.info.info ?? "{}") as { pid: number }).pid;
      while (processAlive(pid)) await Bun.sleep(1);
      const exited = performance.now();
      // RemoveContainer sent every 3 ms from the exit on, each without waiting for the last (as independent callers):
      // the refused ones measure how long CRI reads RUNNING with no task left to stop
      let done = false;
      const removals: Promise<void>[] = [];
      const sender = (async () => {
        while (!done) {
          removals.push(
            cri.runtime.removeContainer({ containerId }).then(
              () => {},
              (err: unknown) => {
                if (/still running, to stop first/.test(String((err as Error).message))) refused++;
              },
            ),
          );
          await Bun.sleep(3);
        }
      })();
      for (;;) {
        const st = await cri.runtime.containerStatus({ containerId }).catch(() => undefined);
        if (st === undefined || st.status?.state !== ContainerState.CONTAINER_RUNNING) break;
        await Bun.sleep(1);
      }
      windows.push(performance.now() - exited);
      done = true;
      await sender;
      await Promise.all(removals);
      await cri.runtime.removeContainer({ containerId }).catch(() => {});
    }
    console.log(`${handler.padEnd(5)} exit -> EXITED: median ${quantile(windows, 0.5).toFixed(1)} ms, p90 ${quantile(windows, 0.9).toFixed(1)} ms, max ${Math.max(...windows).toFixed(1)} ms; RemoveContainer (one every 3 ms) refused "still running" ${refused} times over ${COUNT} containers`);
    await cri.runtime.stopPodSandbox({ podSandboxId });
    await cri.runtime.removePodSandbox({ podSandboxId });
  }
} finally {
  await removeAllPods(cri);
  cri.close();
  await pc.stop();
  removeCgroupParent(cgroupParent);
  rmSync(logRoot, { recursive: true, force: true });
}
