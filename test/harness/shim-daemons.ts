import { readdirSync, readFileSync } from "node:fs";

/**
 * Pids of the cryo shim daemons of the containerd at address (by the -address they carry), not its standby; with
 * arg, only those whose command line has it (a container id, a socket path).
 */
export function shimDaemonPids(address: string, arg?: string): number[] {
  const pids: number[] = [];
  for (const p of readdirSync("/proc").filter((x) => /^\d+$/.test(x))) {
    try {
      const argv = readFileSync(`/proc/${p}/cmdline`, "utf8").split("\0");
      if (!argv[0]?.endsWith("containerd-shim-cryo-v2") || !argv.includes(address) || argv.includes("__standby")) continue;
      if (arg === undefined || argv.includes(arg)) pids.push(Number(p));
    } catch {
      // gone
    }
  }
  return pids;
}
