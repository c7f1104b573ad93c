/**
 * The real Engine: runc for the lifecycle, the reaper for exits, src/cgroups for freeze, stats,
 * update and OOM, mount(8) for the rootfs containerd asks for, stdio.ts for IO.
 *
 * Files the engine keeps in the bundle: `init.pid` (runc's pid file), `log.json` (runc's log),
 * `cryo-runtime.json` (runc binary and root, so that `delete` after a dead shim can clean up),
 * `<exec>.json`/`<exec>.pid` for exec processes (removed after use).
 */
import { mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { invalidArgument } from "../errors.ts";
import { decodeLinuxResources, openCgroup, packMetrics, type CgroupManager } from "../cgroups/index.ts";
import { readRuncState } from "../runtime/state-file.ts";
import type { Reaper } from "../sys/index.ts";
import type { Logger } from "./logger.ts";
import type { ContainerMetrics, Engine, ExecSpec, InitSpec, Launched, RootfsMount } from "./ports.ts";
import { runRunc, type RuncConfig } from "./runc-cli.ts";
import type { ShimOptions } from "./runtime-options.ts";
import { prepareIo } from "./stdio.ts";

/** The file in a bundle that records how to reach runc for this container. */
export const RUNTIME_FILE = "cryo-runtime.json";

/** Reads a pid file runc wrote. */
function readPid(path: string): number {
  const pid = Number(readFileSync(path, "utf8").trim());
  if (!Number.isInteger(pid) || pid <= 0) throw invalidArgument(`pid file ${path}`, { detail: "no pid" });
  return pid;
}

/** Runs mount(8)/umount(8); resolves with its exit code and stderr. */
async function run(argv: string[]): Promise<{ code: number; stderr: string }> {
  const p = Bun.spawn(argv, { stdin: "ignore", stdout: "ignore", stderr: "pipe" });
  const [stderr, code] = await Promise.all([new Response(p.stderr).text(), p.exited]);
  return { code, stderr: stderr.trim() };
}

/** Mounts containerd's rootfs mounts onto <bundle>/rootfs, in order. */
export async function mountRootfs(bundle: string, mounts: RootfsMount[]): Promise<void> {
  const target = join(bundle, "rootfs");
  mkdirSync(target, { recursive: true });
  for (const m of mounts) {
    const argv = ["mount", "-t", m.type, m.source, target];
    if (m.options.length > 0) argv.splice(1, 0, "-o", m.options.join(","));
    const r = await run(argv);
    if (r.code !== 0) throw invalidArgument(`rootfs mount ${m.type} ${m.source}`, { detail: r.stderr || `mount exited ${r.code}` });
  }
}

/** Unmounts everything on <bundle>/rootfs; "not mounted" is fine. */
export async function unmountRootfs(bundle: string): Promise<void> {
  const target = join(bundle, "rootfs");
  for (let i = 0; i < 8; i++) {
    const r = await run(["umount", target]);
    if (r.code !== 0) return;
  }
}

/** runc settings for a container. */
export function runcConfig(bundle: string, options: ShimOptions): RuncConfig {
  return { binary: options.binaryName, root: options.root, systemdCgroup: options.systemdCgroup, logPath: join(bundle, "log.json") };
}

/** Creates the engine over a reaper. */
export function createEngine(deps: { reaper: Reaper; log: Logger }): Engine {
  const bundles = new Map<string, string>();
  const cgroups = new Map<string, CgroupManager>();
  const cfgOf = (id: string, options: ShimOptions) => runcConfig(bundles.get(id) ?? "/tmp", options);

  async function cgroupOf(id: string, options: ShimOptions): Promise<CgroupManager> {
    let cg = cgroups.get(id);
    if (!cg) {
      const state = readRuncState(options.root, id);
      cg = await openCgroup({ runcCgroupPaths: state.cgroup_paths });
      cgroups.set(id, cg);
    }
    return cg;
  }

  return {
    async createInit(spec: InitSpec): Promise<Launched> {
      const { bundle, id, options } = spec;
      bundles.set(id, bundle);
      writeFileSync(join(bundle, RUNTIME_FILE), JSON.stringify({ binaryName: options.binaryName, root: options.root, systemdCgroup: options.systemdCgroup }));
      let mounted = false;
      let io: Awaited<ReturnType<typeof prepareIo>> | undefined;
      try {
        if (spec.rootfs.length > 0) {
          await mountRootfs(bundle, spec.rootfs);
          mounted = true;
        }
        io = await prepareIo(spec.stdio, { id, namespace: spec.namespace, log: deps.log });
        const pidFile = join(bundle, "init.pid");
        const args = ["create", "--bundle", bundle, "--pid-file", pidFile];
        if (io.consoleSocket) args.push("--console-socket", io.consoleSocket.path);
        if (options.noPivotRoot) args.push("--no-pivot");
        if (options.noNewKeyring) args.push("--no-new-keyring");
        args.push(id);
        await runRunc(runcConfig(bundle, options), args, `create container ${id}`, { stdio: io.stdio, cwd: bundle });
        const pid = readPid(pidFile);
        const pio = await io.launched();
        return { pid, io: pio };
      } catch (err) {
        io?.abort();
        if (mounted) await unmountRootfs(bundle);
        bundles.delete(id);
        throw err;
      }
    },

    async startInit(id, options) {
      await runRunc(cfgOf(id, options), ["start", id], `start container ${id}`);
    },

    async exec(spec: ExecSpec): Promise<Launched> {
      const { bundle, id, execId, options } = spec;
      const specPath = join(bundle, `.exec-${execId}.json`);
      const pidFile = join(bundle, `.exec-${execId}.pid`);
      writeFileSync(specPath, JSON.stringify(spec.process));
      const io = await prepareIo(spec.stdio, { id: `${id}/${execId}`, namespace: spec.namespace, log: deps.log });
      try {
        const args = ["exec", "--detach", "--process", specPath, "--pid-file", pidFile];
        if (io.consoleSocket) args.push("--console-socket", io.consoleSocket.path);
        args.push(id);
        await runRunc(runcConfig(bundle, options), args, `exec ${execId} in container ${id}`, { stdio: io.stdio, cwd: bundle });
        const pid = readPid(pidFile);
        return { pid, io: await io.launched() };
      } catch (err) {
        io.abort();
        throw err;
      } finally {
        rmSync(specPath, { force: true });
        rmSync(pidFile, { force: true });
      }
    },

    async kill(id, options, target, signal, all) {
      if (!target.init) {
        try {
          process.kill(target.pid, signal);
        } catch (err) {
          if ((err as { code?: string }).code === "ESRCH") return;
          throw err;
        }
        return;
      }
      const args = ["kill"];
      if (all) args.push("--all");
      args.push(id, String(signal));
      await runRunc(cfgOf(id, options), args, `kill container ${id}`);
    },

    async deleteInit(id, bundle, options) {
      try {
        await runRunc(runcConfig(bundle, options), ["delete", "--force", id], `delete container ${id}`);
      } catch (err) {
        if (!/does not exist|not found/i.test(err instanceof Error ? err.message : "")) throw err;
      }
      cgroups.delete(id);
      await unmountRootfs(bundle);
      bundles.delete(id);
    },

    async pids(id, options) {
      const out = await runRunc(cfgOf(id, options), ["ps", "--format", "json", id], `ps container ${id}`);
      const list = JSON.parse(out.trim() || "[]") as unknown;
      if (!Array.isArray(list)) throw invalidArgument(`runc ps ${id}`, { detail: "not a JSON array" });
      return list.map(Number).filter((n) => Number.isInteger(n) && n > 0);
    },

    async waitExit(pid) {
      const e = await deps.reaper.watch(pid);
      return { status: e.status, exitedAt: e.exitedAt };
    },

    async freeze(id, options) {
      await (await cgroupOf(id, options)).freeze();
    },

    async thaw(id, options) {
      await (await cgroupOf(id, options)).thaw();
    },

    async stats(id, options): Promise<ContainerMetrics> {
      const any = packMetrics(await (await cgroupOf(id, options)).stats());
      return { typeUrl: any.typeUrl, value: any.value };
    },

    async update(id, options, resources) {
      const r = decodeLinuxResources(JSON.stringify(resources));
      await (await cgroupOf(id, options)).update(r);
    },

    async watchOom(id, options, onOom) {
      const w = (await cgroupOf(id, options)).watchOom(() => onOom());
      return () => w[Symbol.dispose]();
    },
  };
}
