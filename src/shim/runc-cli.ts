/**
 * A small runc command runner for the shim's engine: global flags, a JSON log file per call, and
 * failures classified with the useful line of runc's log. (The project's runc driver in
 * src/runtime takes this over when it lands; the engine only needs these calls.)
 */
import { existsSync, readFileSync, rmSync } from "node:fs";
import { Code, CryoError, failedPrecondition, notFound } from "../errors.ts";
import type { StdioSlot } from "./stdio.ts";

/** runc invocation settings. */
export interface RuncConfig {
  binary: string;
  root: string;
  systemdCgroup: boolean;
  /** Where runc's JSON log goes (one file per container). */
  logPath: string;
}

/** The last error message in runc's JSON log (or its stderr), the line a user needs. */
export function runcErrorLine(logText: string, stderr: string): string {
  let last = "";
  for (const line of logText.split("\n")) {
    if (!line.trim()) continue;
    try {
      const e = JSON.parse(line) as { level?: string; msg?: string };
      if ((e.level === "error" || e.level === "fatal") && e.msg) last = e.msg;
    } catch {
      if (line.trim()) last = line.trim();
    }
  }
  return last || stderr.trim().split("\n").filter(Boolean).at(-1) || "runc failed";
}

/** Maps runc's message to an error code. */
export function classifyRuncError(what: string, msg: string): CryoError {
  if (/does not exist|not found|no such file or directory: .*state\.json/i.test(msg)) return notFound(what, { detail: msg });
  if (/process already finished|container not running|not running/i.test(msg)) return notFound(what, { detail: msg });
  if (/paused|is not paused|cannot .* (created|stopped)/i.test(msg)) return failedPrecondition(what, { detail: msg });
  if (/already exists/i.test(msg)) return new CryoError(Code.ALREADY_EXISTS, `${what}: already exists: ${msg}`);
  if (/invalid|config\.json|no such file|bundle/i.test(msg)) return new CryoError(Code.INVALID_ARGUMENT, `${what}: invalid argument: ${msg}`);
  return new CryoError(Code.UNKNOWN, `${what}: ${msg}`);
}

/** Runs runc with args; resolves with stdout, or throws the classified error. */
export async function runRunc(
  cfg: RuncConfig,
  args: string[],
  what: string,
  options: { stdio?: [StdioSlot, StdioSlot, StdioSlot]; cwd?: string } = {},
): Promise<string> {
  const global = ["--root", cfg.root, "--log", cfg.logPath, "--log-format", "json"];
  if (cfg.systemdCgroup) global.push("--systemd-cgroup");
  let out = "";
  let err = "";
  let code: number;
  try {
    rmSync(cfg.logPath, { force: true });
    if (options.stdio) {
      const proc = Bun.spawn([cfg.binary, ...global, ...args], { cwd: options.cwd, stdio: options.stdio });
      code = await proc.exited;
    } else {
      const proc = Bun.spawn([cfg.binary, ...global, ...args], { cwd: options.cwd, stdin: "ignore", stdout: "pipe", stderr: "pipe" });
      [out, err, code] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited]);
    }
  } catch (e) {
    throw CryoError.from(e, Code.FAILED_PRECONDITION).wrap(`${what}: run ${cfg.binary}`);
  }
  if (code !== 0) {
    const logText = existsSync(cfg.logPath) ? readFileSync(cfg.logPath, "utf8") : "";
    throw classifyRuncError(what, runcErrorLine(logText, err));
  }
  return out;
}
