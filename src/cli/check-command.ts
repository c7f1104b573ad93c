/**
 * `cryo check`: what this host gives cryo, checked the way the shim uses it. The CRIU checks run through the shim
 * binary's own CRIU helper (`containerd-shim-cryo-v2 __criu`: libcriu through bun:ffi, cryo's build of CRIU), so a
 * passing check is the path a checkpoint takes, not a look at files. Each line is ok, warn (a feature this host lacks,
 * which cryo refuses clearly when asked for it), fail (cryo cannot checkpoint or run containers here) or info.
 */
import { existsSync, lstatSync, statSync } from "node:fs";
import { dirname, join } from "node:path";
import { z } from "zod";
import { CryoError } from "../errors.ts";
import { criuBinary } from "../criu/binary.ts";
import { DEFAULT_LIBCRIU_PATH } from "../criu/libcriu.ts";
import { SHIM_BINARY } from "../runtime/runtime-name.ts";
import { SYSTEMD_RUNNING_DIR } from "../shim/bundle-spec.ts";
import type { CliCommand } from "./command-table.ts";
import { parseCliArgs } from "./parse-args.ts";

/** A line of the report. */
export interface CheckFinding {
  check: string;
  status: "ok" | "warn" | "fail" | "info";
  detail: string;
}

/** The oldest CRIU cryo works with: 4.1 cannot dump TCP sockets on recent kernels (docs/setup.md). */
export const MIN_CRIU_VERSION = 40200;

/** CRIU's version number (major*10000 + minor*100 + sublevel, as libcriu's criu_get_version gives it) as text. */
export function criuVersionText(v: number): string {
  return `${Math.floor(v / 10000)}.${Math.floor(v / 100) % 100}${v % 100 !== 0 ? `.${v % 100}` : ""}`;
}

/** The cgroup layout under root: v2 (unified), hybrid (v1 controllers and cgroup2 at unified/) or v1; and whether a freezer is there. */
export function cgroupLayout(root = "/sys/fs/cgroup"): CheckFinding {
  if (existsSync(join(root, "cgroup.controllers"))) {
    return { check: "cgroups", status: "ok", detail: `cgroup v2 at ${root} (pause and checkpoint freeze through cgroup.freeze)` };
  }
  const freezer = existsSync(join(root, "freezer"));
  const unified = existsSync(join(root, "unified", "cgroup.controllers"));
  const layout = unified ? `hybrid: v1 controllers with cgroup2 at ${join(root, "unified")}` : "cgroup v1";
  return freezer
    ? { check: "cgroups", status: "ok", detail: `${layout}; v1 freezer at ${join(root, "freezer")}` }
    : { check: "cgroups", status: "fail", detail: `${layout}, without a v1 freezer hierarchy: pause, resume and checkpoint freeze through it` };
}

/** The shim binary to check with: --shim, else the one beside this compiled `cryo`, else containerd's way (PATH). */
function findShim(given: string | undefined): string | undefined {
  if (given !== undefined) return given;
  const compiled = Bun.main.startsWith("/$bunfs/");
  const beside = join(dirname(process.execPath), SHIM_BINARY);
  if (compiled && existsSync(beside)) return beside;
  return Bun.which(SHIM_BINARY) ?? undefined;
}

const executable = (path: string): boolean => {
  try {
    const st = statSync(path);
    return st.isFile() && (st.mode & 0o111) !== 0;
  } catch {
    return false;
  }
};

const firstLine = (s: string): string => s.split("\n").find((l) => l.trim() !== "")?.trim() ?? "";
const messageOf = (err: unknown): string => CryoError.from(err).message;

/** Runs every check; the CRIU ones through the shim's helper. */
export async function runChecks(options: { shim?: string } = {}): Promise<CheckFinding[]> {
  const out: CheckFinding[] = [];
  const shim = findShim(options.shim);
  let shimUsable = shim !== undefined && executable(shim);
  if (shim === undefined) {
    out.push({ check: "shim", status: "fail", detail: `${SHIM_BINARY} is not on PATH: containerd finds a runtime's shim there (cryo install, docs/setup.md)` });
  } else if (!executable(shim)) {
    out.push({ check: "shim", status: "fail", detail: `${shim}: not an executable file` });
  } else {
    // Asked for its version first: the CRIU checks run it as their helper, which only cryo's shim is.
    const v = Bun.spawnSync([shim, "-v"], { stdout: "pipe", stderr: "pipe", timeout: 10_000 });
    const version = /Version:\s+(cryo .*)/.exec(v.stdout.toString())?.[1]?.trim();
    if (!v.success || version === undefined) {
      shimUsable = false;
      out.push({ check: "shim", status: "fail", detail: `${shim}: not cryo's shim (its -v does not print cryo's version)` });
    } else {
      const onPath = Bun.which(SHIM_BINARY);
      const note = onPath === shim ? "on PATH" : onPath ? `not the one on PATH (${onPath})` : "not on PATH: containerd looks for it there";
      out.push({ check: "shim", status: onPath ? "ok" : "warn", detail: `${shim}: ${version} (${note})` });
    }
  }

  const runc = Bun.which("runc");
  if (runc === null) out.push({ check: "runc", status: "fail", detail: "runc is not on PATH: cryo runs every container through it" });
  else {
    const v = Bun.spawnSync([runc, "--version"], { stdout: "pipe", stderr: "pipe" });
    out.push(v.success ? { check: "runc", status: "ok", detail: `${runc}: ${firstLine(v.stdout.toString())}` } : { check: "runc", status: "fail", detail: `${runc} --version failed: ${firstLine(v.stderr.toString())}` });
  }

  const criu = criuBinary();
  const criuPath = criu.includes("/") ? criu : Bun.which(criu);
  const criuUsable = criuPath !== null && executable(criuPath);
  out.push(
    criuUsable
      ? { check: "criu binary", status: "ok", detail: criuPath! }
      : { check: "criu binary", status: "fail", detail: `${criuPath ?? criu}: not found or not executable (CRYO_CRIU names another; scripts/setup.sh builds cryo's)` },
  );

  if (process.geteuid?.() !== 0) {
    out.push({ check: "criu", status: "fail", detail: "not checked: CRIU runs as root (run cryo check as root)" });
  } else if (shimUsable && criuUsable) {
    const { createCriu } = await import("../criu/client.ts");
    const client = createCriu({ helper: [shim!, "__criu"], criuBinary: criuPath! });
    const libcriu = process.env.CRYO_LIBCRIU || DEFAULT_LIBCRIU_PATH;
    try {
      const v = await client.version();
      out.push(
        v >= MIN_CRIU_VERSION
          ? { check: "criu version", status: "ok", detail: `CRIU ${criuVersionText(v)} through libcriu ${libcriu} (bun:ffi, in ${SHIM_BINARY}'s helper)` }
          : { check: "criu version", status: "fail", detail: `CRIU ${criuVersionText(v)}: cryo needs ${criuVersionText(MIN_CRIU_VERSION)} or later` },
      );
      try {
        await client.check();
        out.push({ check: "criu check", status: "ok", detail: "the kernel has what CRIU needs to dump and restore" });
      } catch (err) {
        out.push({ check: "criu check", status: "fail", detail: messageOf(err) });
      }
      const f = await client.features();
      out.push(
        f.memTrack
          ? { check: "pre-dump", status: "ok", detail: "dirty memory tracking: pre-dump, track-mem and incremental dumps on a parent's images" }
          : { check: "pre-dump", status: "warn", detail: "no dirty memory tracking (soft-dirty) in this kernel: pre-dump and track-mem are refused; a dump on a parent's images takes every page again" },
      );
      out.push(
        f.lazyPages
          ? { check: "lazy pages", status: "ok", detail: "userfaultfd: lazy and post-copy restores (cryo.checkpoint/lazy-pages)" }
          : { check: "lazy pages", status: "warn", detail: "no userfaultfd for CRIU: lazy and post-copy restores are refused" },
      );
    } catch (err) {
      out.push({ check: "criu version", status: "fail", detail: messageOf(err) });
    }
  }

  const iptables = Bun.which("iptables-restore");
  out.push(
    iptables
      ? { check: "network lock", status: "ok", detail: `${iptables}: CRIU locks a container's network with it during a dump` }
      : { check: "network lock", status: "warn", detail: "iptables-restore is not on PATH: a dump that locks the network (tcp-established, network-lock=iptables) fails" },
  );

  out.push(cgroupLayout());
  const systemd = lstatSync(SYSTEMD_RUNNING_DIR, { throwIfNoEntry: false })?.isDirectory() === true;
  out.push({ check: "systemd", status: "info", detail: systemd ? "running: the runtime option SystemdCgroup can be used" : "not running: the runtime option SystemdCgroup is refused (cgroupfs is used)" });
  return out;
}

/** The report as text: one aligned line per finding, then a count. */
export function formatChecks(findings: CheckFinding[]): string {
  const width = Math.max(...findings.map((f) => f.check.length));
  const lines = findings.map((f) => `${f.status.padEnd(5)} ${f.check.padEnd(width)}  ${f.detail}`);
  const count = (s: CheckFinding["status"]) => findings.filter((f) => f.status === s).length;
  lines.push(`cryo check: ${count("ok")} ok, ${count("warn")} warning(s), ${count("fail")} failure(s)`);
  return lines.join("\n");
}

const checkUsage = "cryo check [--shim PATH] [-f|--format text|json]";

/** `cryo check`: the host's readiness for cryo; exit 1 when a check failed. */
export const checkCommand: CliCommand = {
  path: ["check"],
  summary: "check what this host gives cryo: shim, runc, CRIU through libcriu, kernel features, cgroups",
  usage: `${checkUsage}

Checks, as the shim uses them: the shim binary, runc, cryo's CRIU binary, CRIU's version, \`criu check\` and its
features (dirty memory tracking for pre-dump, userfaultfd for lazy restores) through the shim's own CRIU helper
(libcriu by bun:ffi), iptables-restore for CRIU's network lock, the cgroup layout and its freezer, and systemd.
Each line is ok, warn (a feature this host lacks: cryo refuses it when asked), fail or info. Run as root.
Exit status: 0, or 1 when a check failed.

  --shim PATH            the shim binary whose CRIU helper runs the checks (default: the one beside this cryo,
                         else ${SHIM_BINARY} on PATH)
  -f, --format FORMAT    text (default) or json (an array of {check, status, detail})`,
  async run(args, io) {
    const { values } = parseCliArgs(
      args,
      { shim: { type: "string" }, format: { type: "string", short: "f" } },
      z.object({ shim: z.string().min(1).optional(), format: z.enum(["text", "json"]).optional() }),
      checkUsage,
    );
    const findings = await runChecks(values.shim !== undefined ? { shim: values.shim } : {});
    io.out(values.format === "json" ? JSON.stringify(findings, null, 2) : formatChecks(findings));
    return findings.some((f) => f.status === "fail") ? 1 : 0;
  },
};
