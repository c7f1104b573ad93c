// Probe (not a test): ExecSync edge cases through containerd's CRI plugin, handler cryo against handler runc on one
// private containerd: big output (--mib MiB on stdout), a container that exits while an ExecSync runs in it, and a
// container paused through containerd's task API (`ctr -n k8s.io task pause`; CRI has no pause). Printed per handler:
// each call's answer (exit code, output sizes, error text) and time, and what the shim keeps afterwards (fds).
//
// Run as root: node_modules/.bin/bun bench/cri-exec-edges.ts [--handlers cryo,runc] [--mib 10,20]
import { mkdtempSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { create } from "@bufbuild/protobuf";
import { NamespaceMode, PodSandboxConfigSchema } from "../src/gen/k8s/runtime/v1/api_pb.ts";
import { connectCri, criNamespace, criPauseImage, ensureCriImages, shimProcesses, startPrivateContainerd, testImage, removeAllPods, removeCgroupParent, uniqueId, type CriClient } from "../test/harness/index.ts";

const args = process.argv.slice(2);
const opt = (name: string, def: string): string => {
  const i = args.indexOf(name);
  return i >= 0 ? (args[i + 1] ?? def) : def;
};
const HANDLERS = opt("--handlers", "cryo,runc").split(",");
const MIBS = opt("--mib", "10,20").split(",").map(Number);
const SHIMS: Record<string, string> = { cryo: "containerd-shim-cryo-v2", runc: "containerd-shim-runc-v2" };
const hostNetwork = { network: NamespaceMode.NODE, pid: NamespaceMode.CONTAINER, ipc: NamespaceMode.POD };

async function runPod(cri: CriClient, handler: string, logRoot: string, command: string[]): Promise<{ podSandboxId: string; containerId: string }> {
  const name = uniqueId(`edge-${handler}`);
  const sandboxConfig = create(PodSandboxConfigSchema, {
    metadata: { name, uid: crypto.randomUUID(), namespace: "cryo-bench", attempt: 0 },
    logDirectory: join(logRoot, name),
    linux: { cgroupParent: `/cryo-bench-edges`, securityContext: { namespaceOptions: hostNetwork } },
  });
  const { podSandboxId } = await cri.runtime.runPodSandbox({ config: sandboxConfig, runtimeHandler: handler }, { timeoutMs: 120_000 });
  const { containerId } = await cri.runtime.createContainer(
    { podSandboxId, sandboxConfig, config: { metadata: { name: "app", attempt: 0 }, image: { image: testImage }, command, logPath: "app.log", linux: { securityContext: { namespaceOptions: hostNetwork } } } },
    { timeoutMs: 120_000 },
  );
  await cri.runtime.startContainer({ containerId }, { timeoutMs: 120_000 });
  return { podSandboxId, containerId };
}

async function show(what: string, call: () => Promise<{ exitCode: number; stdout: Uint8Array; stderr: Uint8Array }>): Promise<void> {
  const t0 = performance.now();
  let text: string;
  try {
    const r = await call();
    const err = new TextDecoder().decode(r.stderr.subarray(0, 200)).trim();
    text = `exit ${r.exitCode}, stdout ${r.stdout.length} B, stderr ${r.stderr.length} B${err ? ` (${JSON.stringify(err)})` : ""}`;
  } catch (e) {
    text = `error: ${String((e as Error).message).replace(/[0-9a-f]{64}/g, "<id>")}`;
  }
  console.log(`  ${what.padEnd(44)} ${(performance.now() - t0).toFixed(0).padStart(6)} ms  ${text}`);
}

async function bench(handler: string): Promise<void> {
  const logRoot = mkdtempSync(join(tmpdir(), "cryo-bench-edges-"));
  const pc = await startPrivateContainerd({ sandboxImage: criPauseImage });
  const cri = connectCri(pc.address);
  const shimFds = () => shimProcesses(SHIMS[handler]!, pc.address).map((s) => readdirSync(`/proc/${s.pid}/fd`).length);
  try {
    await ensureCriImages(pc, cri);
    console.log(`\n== handler ${handler}`);
    const app = await runPod(cri, handler, logRoot, ["sh", "-c", "trap 'exit 0' TERM; while true; do sleep 0.2; done"]);
    const id = app.containerId;
    console.log(`  shim fds at start ${JSON.stringify(shimFds())}`);
    for (const mib of MIBS) {
      await show(`ExecSync ${mib} MiB on stdout`, () => cri.runtime.execSync({ containerId: id, cmd: ["head", "-c", String(mib << 20), "/dev/zero"], timeout: 30n }, { timeoutMs: 120_000 }));
      await show(`ExecSync ${mib} MiB on stderr`, () => cri.runtime.execSync({ containerId: id, cmd: ["sh", "-c", `head -c ${mib << 20} /dev/zero >&2`], timeout: 30n }, { timeoutMs: 120_000 }));
    }
    await show("ExecSync 10 MiB stdout, timeout 1 s, slow", () => cri.runtime.execSync({ containerId: id, cmd: ["sh", "-c", "head -c 10485760 /dev/zero; sleep 5"], timeout: 1n }, { timeoutMs: 120_000 }));
    console.log(`  shim fds after big outputs ${JSON.stringify(shimFds())}`);

    // Paused through containerd's task API (the CRI namespace).
    await pc.ctrOk(["task", "pause", id], { namespace: criNamespace });
    await show("ExecSync into a paused container (1 s)", () => cri.runtime.execSync({ containerId: id, cmd: ["true"], timeout: 1n }, { timeoutMs: 30_000 }));
    await show("ExecSync into a paused container (no timeout)", () => cri.runtime.execSync({ containerId: id, cmd: ["true"], timeout: 0n }, { timeoutMs: 10_000 }));
    const status = await cri.runtime.containerStatus({ containerId: id });
    console.log(`  ContainerStatus while paused: state ${status.status?.state}`);
    await pc.ctrOk(["task", "resume", id], { namespace: criNamespace });
    await show("ExecSync after resume", () => cri.runtime.execSync({ containerId: id, cmd: ["true"], timeout: 5n }, { timeoutMs: 30_000 }));
    const ps = await pc.ctrOk(["task", "ps", id], { namespace: criNamespace });
    console.log(`  task ps after resume: ${JSON.stringify(ps.split("\n").slice(1).map((l) => l.trim().replace(/\s+/g, " ")).filter((l) => l))}`);
    console.log(`  shim fds after pause ${JSON.stringify(shimFds())}`);

    // A container that exits while an ExecSync runs in it (its init ends 1 s after the start).
    const brief = await runPod(cri, handler, logRoot, ["sh", "-c", "sleep 1.5"]);
    await show("ExecSync sleep 5 in a container exiting at 1.5 s", () => cri.runtime.execSync({ containerId: brief.containerId, cmd: ["sleep", "5"], timeout: 10n }, { timeoutMs: 30_000 }));
    await show("ExecSync into the exited container", () => cri.runtime.execSync({ containerId: brief.containerId, cmd: ["true"], timeout: 10n }, { timeoutMs: 30_000 }));
    const briefStatus = await cri.runtime.containerStatus({ containerId: brief.containerId });
    console.log(`  exited container: state ${briefStatus.status?.state}, exit ${briefStatus.status?.exitCode}`);
    console.log(`  shim fds at end ${JSON.stringify(shimFds())}`);
  } finally {
    await removeAllPods(cri);
    cri.close();
    await pc.stop();
    rmSync(logRoot, { recursive: true, force: true });
    removeCgroupParent("cryo-bench-edges"); // the pods' cgroup parent, which runc made (empty once the pods are gone)
  }
}

for (const handler of HANDLERS) await bench(handler);
