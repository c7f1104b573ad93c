/**
 * What the shim itself reads from a bundle's OCI spec (<bundle>/config.json) before runc runs: that it
 * exists and is a JSON object (so a broken bundle is a clear NOT_FOUND / INVALID_ARGUMENT instead of
 * runc's message), whether the container gets its own PID namespace, its `cryo.checkpoint/`
 * annotations (checked at Create, so that a typo fails `ctr run`, not the checkpoint an hour later), and
 * the sd_notify socket its readiness goes to (NOTIFY_ANNOTATION).
 */
import { join } from "node:path";
import * as z from "zod/mini";
import { lazySchema, parseDetail } from "../runtime/schema-detail.ts";
import { parseCheckpointAnnotations } from "../checkpoint/annotations.ts";
import { CryoError, failedPrecondition, invalidArgument, notFound } from "../errors.ts";
import { readRegularFile } from "../sys/regular-file.ts";
import { terminalMismatch } from "./terminal-check.ts";

/** The facts the shim needs from a spec. */
export interface BundleSpec {
  /**
   * True when the container has no PID namespace of its own (none in linux.namespaces, or one joined
   * by path): then its processes outlive init unless killed, so the shim kills them all when init
   * exits, as containerd's runc shim does.
   */
  killAllOnExit: boolean;
  /** The host's unixgram socket the container's sd_notify READY=1 goes to (NOTIFY_ANNOTATION), if any. */
  notifySocket?: string;
  /** linux.cgroupsPath, if the spec has one. */
  cgroupsPath?: string;
}

/** Where systemd keeps its runtime state; runc takes systemd as running when this is a directory (IsRunningSystemd). */
export const SYSTEMD_RUNNING_DIR = "/run/systemd/system";

/**
 * The runtime options' SystemdCgroup against the spec, before runc runs: with it, a cgroupsPath must read
 * `slice:prefix:name` (runc's own rule, three parts split at ":"; none is runc's default `system.slice:runc:<id>`),
 * and systemd must be running. runc refused both itself, as UNKNOWN "OCI runtime create failed" (found by
 * bench/ttrpc-fuzz.ts): now INVALID_ARGUMENT for the spec's path, FAILED_PRECONDITION for the host.
 */
export function checkSystemdCgroup(systemdCgroup: boolean, cgroupsPath: string | undefined, systemdRunning: () => boolean): void {
  if (!systemdCgroup) return;
  if (cgroupsPath !== undefined && cgroupsPath !== "" && cgroupsPath.split(":").length !== 3) {
    throw invalidArgument(`cgroupsPath ${JSON.stringify(cgroupsPath)}`, { detail: "with the runtime option SystemdCgroup it must read slice:prefix:name, as runc takes it" });
  }
  if (!systemdRunning()) {
    throw failedPrecondition("runtime option SystemdCgroup", { detail: `systemd is not running on this host (no ${SYSTEMD_RUNNING_DIR}); leave SystemdCgroup off to use cgroupfs` });
  }
}

/**
 * The annotation naming a host socket for the container's sd_notify messages (a systemd service's
 * NOTIFY_SOCKET, or any unixgram socket): runc then proxies it into the container (NOTIFY_SOCKET=/run/notify/notify.sock)
 * and forwards READY=1, with MAINPID=<init's pid>, to it.
 */
export const NOTIFY_ANNOTATION = "cryo.notify/socket";

/** The prefix of NOTIFY_ANNOTATION: any other key under it is a typo, refused as an unknown `cryo.checkpoint/` key is. */
export const NOTIFY_PREFIX = "cryo.notify/";

/** sun_path holds 108 bytes with the terminating NUL. */
export const UNIX_PATH_MAX = 107;

/** Checks a NOTIFY_ANNOTATION value: an absolute, normalised path that fits a unix socket address. */
export function parseNotifySocket(value: string): string {
  const where = `annotation ${NOTIFY_ANNOTATION}`;
  const bytes = Buffer.byteLength(value);
  if (!value.startsWith("/") || value.includes("\0") || value.split("/").some((c, i, all) => c === "." || c === ".." || (c === "" && i > 0 && i < all.length))) {
    throw invalidArgument(where, { detail: `${JSON.stringify(value)} is not an absolute path without empty, . or .. components` });
  }
  if (bytes > UNIX_PATH_MAX) throw invalidArgument(where, { detail: `${JSON.stringify(value)} is ${bytes} bytes; a unix socket's path holds ${UNIX_PATH_MAX}` });
  return value;
}

// zod/mini, built at the first Create (every daemon loads this module at start).
const specSchema = lazySchema(() =>
  z.looseObject({
    ociVersion: z.string(),
    annotations: z.optional(z.record(z.string(), z.string())),
    linux: z.optional(
      z.looseObject({ namespaces: z.optional(z.array(z.looseObject({ type: z.string(), path: z.optional(z.string()) }))), cgroupsPath: z.optional(z.string()) }),
    ),
    process: z.optional(z.looseObject({ terminal: z.optional(z.boolean()) })),
  }),
);

/**
 * Reads and checks <bundle>/config.json: missing -> NOT_FOUND, unreadable JSON or wrong shape -> INVALID_ARGUMENT, not
 * a regular file -> FAILED_PRECONDITION (a FIFO's open blocked the daemon, and every container it serves, until a
 * writer came; /dev/zero never ended). With `request`, a Create's terminal must agree with the spec's
 * process.terminal (terminalMismatch).
 */
export function readBundleSpec(bundle: string, request?: { terminal: boolean }): BundleSpec {
  const path = join(bundle, "config.json");
  let text: string;
  try {
    text = readRegularFile(path, `bundle ${bundle}: config.json`).toString("utf8");
  } catch (err) {
    if (err instanceof CryoError) throw err;
    const code = (err as { code?: string }).code;
    if (code === "ENOENT" || code === "ENOTDIR") throw notFound(`bundle ${bundle}: config.json`, { cause: err });
    throw invalidArgument(`bundle ${bundle}: config.json`, { cause: err, detail: err instanceof Error ? err.message : String(err) });
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    throw invalidArgument(`bundle ${bundle}: config.json`, { cause: err, detail: `not valid JSON: ${err instanceof Error ? err.message : String(err)}` });
  }
  const r = parseDetail(specSchema(), json, "spec");
  if (!r.ok) throw invalidArgument(`bundle ${bundle}: config.json`, { detail: r.detail });
  if (request) terminalMismatch(`container bundle ${bundle}`, request.terminal, r.data.process?.terminal === true);
  const ownPid = (r.data.linux?.namespaces ?? []).some((ns) => ns.type === "pid" && !ns.path);
  // An unknown key or a bad value: INVALID_ARGUMENT naming the annotation.
  parseCheckpointAnnotations(r.data.annotations ?? {});
  // A misspelt key (`cryo.notify/sock`) was ignored: the container ran and its READY=1 went nowhere, without a word.
  for (const key of Object.keys(r.data.annotations ?? {})) {
    if (key.startsWith(NOTIFY_PREFIX) && key !== NOTIFY_ANNOTATION) {
      throw invalidArgument(`annotation ${key}`, { detail: `unknown key; the only ${NOTIFY_PREFIX} annotation is ${NOTIFY_ANNOTATION}` });
    }
  }
  const notify = r.data.annotations?.[NOTIFY_ANNOTATION];
  const cgroupsPath = r.data.linux?.cgroupsPath;
  return { killAllOnExit: !ownPid, ...(notify !== undefined ? { notifySocket: parseNotifySocket(notify) } : {}), ...(cgroupsPath !== undefined ? { cgroupsPath } : {}) };
}

