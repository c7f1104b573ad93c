// Benchmark (not a test): CRI's streaming exec and attach (Exec and Attach, then containerd's stream server over a
// WebSocket, v4.channel.k8s.io, as kubectl exec and attach reach it through the kubelet) beside an ExecSync flood into
// the same container, handler cryo against handler runc on one private containerd. Printed per handler: the latency
// of a streaming exec (`sh -c 'echo out; echo err >&2; exit 3'`, from Exec to the stream's end) and of an attach (from
// Attach to the container's next line), with their outputs and exit codes, and the flood's ExecSync latency.
//
// Run as root: node_modules/.bin/bun bench/cri-stream.ts [--handlers cryo,runc] [--flood 8] [--rounds 20]
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { create } from "@bufbuild/protobuf";
import { NamespaceMode, PodSandboxConfigSchema } from "../src/gen/k8s/runtime/v1/api_pb.ts";
import { connectCri, criPauseImage, ensureCriImages, startPrivateContainerd, removeAllPods, removeCgroupParent, streamCri, testImage, uniqueId } from "../test/harness/index.ts";

const args = process.argv.slice(2);
const opt = (name: string, def: string): string => {
  const i = args.indexOf(name);
  return i >= 0 ? (args[i + 1] ?? def) : def;
};
const HANDLERS = opt("--handlers", "cryo,runc").split(",");
const FLOOD = Number(opt("--flood", "8"));
const ROUNDS = Number(opt("--rounds", "20"));
const hostNetwork = { network: NamespaceMode.NODE, pid: NamespaceMode.CONTAINER, ipc: NamespaceMode.POD };
const quantile = (xs: number[], q: number) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(q * xs.length))] ?? NaN;
const row = (name: string, xs: number[]) =>
  `${name.padEnd(30)} n=${String(xs.length).padStart(4)}  median ${quantile(xs, 0.5).toFixed(1).padStart(7)}  p90 ${quantile(xs, 0.9).toFixed(1).padStart(7)}  max ${Math.max(...xs).toFixed(1).padStart(7)} ms`;

async function bench(handler: string): Promise<void> {
  const logRoot = mkdtempSync(join(tmpdir(), "cryo-bench-stream-"));
  const pc = await startPrivateContainerd({ sandboxImage: criPauseImage });
  const cri = connectCri(pc.address);
  try {
    await ensureCriImages(pc, cri);
    const name = uniqueId(`stream-${handler}`);
    const sandboxConfig = create(PodSandboxConfigSchema, {
      metadata: { name, uid: crypto.randomUUID(), namespace: "cryo-bench", attempt: 0 },
      logDirectory: join(logRoot, name),
      linux: { cgroupParent: "/cryo-bench-stream", securityContext: { namespaceOptions: hostNetwork } },
    });
    const { podSandboxId } = await cri.runtime.runPodSandbox({ config: sandboxConfig, runtimeHandler: handler }, { timeoutMs: 120_000 });
    const { containerId } = await cri.runtime.createContainer(
      { podSandboxId, sandboxConfig, config: { metadata: { name: "app", attempt: 0 }, image: { image: testImage }, command: ["sh", "-c", "trap 'exit 0' TERM; i=0; while true; do echo line $i; i=$((i+1)); sleep 0.1; done"], logPath: "app.log", linux: { securityContext: { namespaceOptions: hostNetwork } } } },
      { timeoutMs: 120_000 },
    );
    await cri.runtime.startContainer({ containerId }, { timeoutMs: 120_000 });
    let stop = false;
    const floodMs: number[] = [];
    const floodErrors: string[] = [];
    const flood = Array.from({ length: FLOOD }, async () => {
      while (!stop) {
        const t0 = performance.now();
        await cri.runtime.execSync({ containerId, cmd: ["true"], timeout: 10n }, { timeoutMs: 60_000 }).catch((e: Error) => floodErrors.push(e.message));
        floodMs.push(performance.now() - t0);
      }
    });
    const execMs: number[] = [];
    const attachMs: number[] = [];
    const outcomes = new Map<string, number>();
    const count = (o: string) => outcomes.set(o, (outcomes.get(o) ?? 0) + 1);
    for (let i = 0; i < ROUNDS; i++) {
      let t0 = performance.now();
      const { url } = await cri.runtime.exec({ containerId, cmd: ["sh", "-c", "echo out; echo err >&2; exit 3"], stdout: true, stderr: true });
      const r = await streamCri(url);
      execMs.push(performance.now() - t0);
      count(`exec: exit ${r.exitCode} out ${JSON.stringify(r.stdout)} err ${JSON.stringify(r.stderr)}`);
      t0 = performance.now();
      const attach = await cri.runtime.attach({ containerId, stdout: true, stderr: true });
      const a = await streamCri(attach.url, { closeWhenStdout: /line \d+\n/ });
      attachMs.push(performance.now() - t0);
      count(`attach: ${/line \d+\n/.test(a.stdout) ? "saw a line" : `no line (${JSON.stringify(a)})`}`);
    }
    stop = true;
    await Promise.all(flood);
    console.log(`\n== handler ${handler}, ExecSync flood of ${FLOOD} callers into the same container, load ${(await Bun.file("/proc/loadavg").text()).split(" ").slice(0, 3).join(" ")}`);
    console.log(row("streaming exec", execMs));
    console.log(row("attach to next line", attachMs));
    console.log(row("flood ExecSync", floodMs));
    for (const [o, n] of outcomes) console.log(`    ${String(n).padStart(4)} x ${o}`);
    console.log(`    flood errors: ${floodErrors.length}${floodErrors.length ? ` (${floodErrors[0]})` : ""}`);
  } finally {
    await removeAllPods(cri);
    cri.close();
    await pc.stop();
    rmSync(logRoot, { recursive: true, force: true });
    removeCgroupParent("cryo-bench-stream"); // the pods' cgroup parent, which runc made (empty once the pods are gone)
  }
}

for (const handler of HANDLERS) await bench(handler);
