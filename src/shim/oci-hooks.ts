/**
 * OCI hooks the shim runs itself: a restore's `prestart` and `createRuntime` hooks. cryo restores through
 * libcriu, not `runc restore`, whose libcontainer runs them at CRIU's setup-namespaces notification (the
 * restored tree exists, its namespaces are set up, nothing of it has run). Each hook as runc runs one
 * (libcontainer/configs.Command.Run): its path with its args (args[0] is argv[0]), its env only (none given:
 * the caller's), the OCI state on stdin, in the bundle directory (where runc restore runs), and its timeout.
 */
import { Code, CryoError } from "../errors.ts";
import type { SpecHook } from "./restore-state-file.ts";

/** The OCI state a hook reads on stdin. */
export interface OciState {
  ociVersion: string;
  id: string;
  status: string;
  pid: number;
  bundle: string;
  annotations?: Record<string, string>;
}

/** KEY=VALUE strings as an environment object (a string without "=" is a name with an empty value). */
function envOf(list: readonly string[]): Record<string, string> {
  const env: Record<string, string> = {};
  for (const e of list) {
    const at = e.indexOf("=");
    if (at < 0) env[e] = "";
    else env[e.slice(0, at)] = e.slice(at + 1);
  }
  return env;
}

/**
 * Runs hooks in order, each to its end; the first that fails (exits non-zero, cannot be run, or outlives its
 * timeout) fails the call with runc's words: "error running <kind> hook #<i>: ...", with its stdout and stderr.
 */
export async function runOciHooks(kind: string, hooks: readonly SpecHook[], state: OciState, cwd: string): Promise<void> {
  const input = new TextEncoder().encode(JSON.stringify(state));
  for (const [i, h] of hooks.entries()) {
    const fail = (detail: string) => new CryoError(Code.UNKNOWN, `error running ${kind} hook #${i}: ${detail}`);
    let proc;
    try {
      proc = Bun.spawn([h.path, ...(h.args ?? []).slice(1)], {
        argv0: h.args?.[0] ?? h.path,
        cwd,
        env: h.env ? envOf(h.env) : { ...process.env },
        stdin: input,
        stdout: "pipe",
        stderr: "pipe",
      });
    } catch (err) {
      throw fail(`cannot run ${h.path}: ${err instanceof Error ? err.message : String(err)}`);
    }
    let timedOut = false;
    const timer = h.timeout !== undefined ? setTimeout(() => ((timedOut = true), proc.kill("SIGKILL")), h.timeout * 1000) : undefined;
    try {
      const [stdout, stderr, code] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited]);
      if (timedOut) throw fail(`timeout after ${h.timeout} seconds`);
      if (code !== 0) throw fail(`exit status ${proc.signalCode ? `signal ${proc.signalCode}` : code}, stdout: ${stdout.trim()}, stderr: ${stderr.trim()}`);
    } finally {
      if (timer !== undefined) clearTimeout(timer);
    }
  }
}
