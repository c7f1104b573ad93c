/**
 * The container annotations that set checkpoint options: `cryo.checkpoint/<option>`.
 *
 * Booleans take "true"/"false" (also 1/0, yes/no); lists are comma-separated. An unknown
 * `cryo.checkpoint/` key or a bad value is INVALID_ARGUMENT naming the key, so a typo never silently
 * changes what a checkpoint holds: at Create (bundle-spec.ts) and at the checkpoint. The table below is
 * the documentation (docs/checkpoint.md repeats it).
 */
import { isAbsolute } from "node:path";
import { invalidArgument } from "../errors.ts";
import { isPageServerHost, PAGE_SERVER_HOST_RULE } from "./page-server-host.ts";
import { isLsmProfile, LSM_PROFILE_RULE } from "./lsm-profile.ts";
import { parseDurationSeconds, parseSize } from "./plan-enums.ts";
import type { CheckpointOverrides } from "./plan.ts";

/**
 * Why a work, image or status path must be absolute: the shim daemon's working directory is /, so a relative one
 * would be made at the host's root, shared by every container of every daemon.
 */
export const RELATIVE_PATH = "want an absolute path (a relative one would be taken from the shim daemon's working directory, the host's /)";

/** The detail for a path with a NUL byte: no file name has one (node's file calls threw a TypeError, UNKNOWN). */
export const NUL_IN_PATH = "has a NUL byte; no file name has one";

/** The annotation prefix. */
export const ANNOTATION_PREFIX = "cryo.checkpoint/";

/** Why a checkpoint cannot ask for CRIU's older mount engine. */
export const RESTORE_ONLY_COMPAT_MODE = "CRIU's older mount engine is a restore setting of the restoring host ([restore] mntns_compat_mode in cryo's config), not a checkpoint option";

type Kind = "bool" | "string" | "path" | "list" | "int" | "size" | "duration" | "cgroup-mode" | "compression" | "network-lock" | "address" | "lsm-profile";

/** Every annotation key (after the prefix), the plan field it sets, and its value kind. */
export const CHECKPOINT_ANNOTATIONS = {
  exit: { field: "leaveRunning", kind: "bool", invert: true, doc: "stop the container after the dump" },
  "leave-running": { field: "leaveRunning", kind: "bool", doc: "keep the container running after the dump (default true)" },
  "tcp-established": { field: "tcpEstablished", kind: "bool", doc: "dump and restore established TCP connections" },
  "tcp-close": { field: "tcpClose", kind: "bool", doc: "restore TCP connections closed" },
  "tcp-skip-in-flight": { field: "tcpSkipInFlight", kind: "bool", doc: "skip connections still in the handshake" },
  "ext-unix-sk": { field: "externalUnixSockets", kind: "bool", doc: "allow unix sockets connected outside the container" },
  "shell-job": { field: "shellJob", kind: "bool", doc: "the container's tree is attached to an outside session/terminal" },
  "file-locks": { field: "fileLocks", kind: "bool", doc: "dump file locks" },
  "pre-dump": { field: "preDump", kind: "bool", doc: "only pre-dump memory (needs soft-dirty tracking)" },
  "track-mem": { field: "trackMem", kind: "bool", doc: "track memory changes for a later incremental dump" },
  "auto-dedup": { field: "autoDedup", kind: "bool", doc: "punch pages out of parent images as they are copied" },
  "manage-cgroups-mode": { field: "cgroupMode", kind: "cgroup-mode", doc: "soft, full, strict or ignore" },
  "empty-ns": { field: "emptyNamespaces", kind: "list", doc: "namespaces restored empty (network)" },
  "lazy-pages": { field: "lazyPages", kind: "bool", doc: "restore with pages served on demand" },
  "page-server": { field: "pageServer", kind: "address", doc: "HOST:PORT of a page server for lazy pages (post-copy: where the dump serves them; port 0: a free one)" },
  "status-path": { field: "statusPath", kind: "path", doc: "file/FIFO that gets one byte once a post-copy page server serves" },
  "lsm-profile": { field: "lsmProfile", kind: "lsm-profile", doc: "apparmor:NAME, selinux:LABEL or none: for the restored tree" },
  "lsm-mount-context": { field: "lsmMountContext", kind: "string", doc: "SELinux mount context for restored mounts" },
  external: { field: "external", kind: "list", doc: "CRIU --external entries, comma-separated" },
  compression: { field: "compression", kind: "compression", doc: "none or zstd for page images" },
  "network-lock": { field: "networkLock", kind: "network-lock", doc: "nftables (default), iptables or skip: how CRIU locks the network while frozen" },
  "local-pages": { field: "localPages", kind: "bool", doc: "keep page images in this host's page store, not in the checkpoint (same-host restores only)" },
  "compression-level": { field: "compressionLevel", kind: "int", doc: "zstd level 1..22 (0: cryo's default, 1)" },
  "log-level": { field: "logLevel", kind: "int", doc: "CRIU log level 0..4" },
  "ghost-limit": { field: "ghostLimit", kind: "size", doc: "largest deleted-but-open file the dump carries: bytes, or with K, M or G (0: CRIU's default, 1M)" },
  "parent-path": { field: "parentPath", kind: "string", doc: "parent images for an incremental dump" },
  "work-path": { field: "workPath", kind: "path", doc: "CRIU work directory" },
  timeout: { field: "timeoutSeconds", kind: "duration", doc: "abort a dump CRIU is still in after this long: seconds, or with s, m or h (0: no limit, the default)" },
} as const satisfies Record<string, { field: keyof CheckpointOverrides; kind: Kind; invert?: boolean; doc: string }>;

/** An annotation key without its prefix. */
export type CheckpointAnnotation = keyof typeof CHECKPOINT_ANNOTATIONS;

function parseBool(key: string, v: string): boolean {
  const s = v.trim().toLowerCase();
  if (["true", "1", "yes", "on"].includes(s)) return true;
  if (["false", "0", "no", "off"].includes(s)) return false;
  throw invalidArgument(`annotation ${key}=${JSON.stringify(v)}`, { detail: "want true or false (or yes/no, on/off, 1/0)" });
}

/** Reads the `cryo.checkpoint/*` annotations into plan overrides. */
export function parseCheckpointAnnotations(annotations: Record<string, string>): CheckpointOverrides {
  const out: Record<string, unknown> = {};
  // exit and leave-running set the same field: two that disagree would leave the result to the order of the
  // spec's keys, so they are refused; two that agree are kept.
  const setBy: Record<string, string> = {};
  for (const [fullKey, value] of Object.entries(annotations)) {
    if (!fullKey.startsWith(ANNOTATION_PREFIX)) continue;
    const name = fullKey.slice(ANNOTATION_PREFIX.length);
    if (name === "mntns-compat-mode") throw invalidArgument(`annotation ${fullKey}`, { detail: RESTORE_ONLY_COMPAT_MODE });
    if (!Object.hasOwn(CHECKPOINT_ANNOTATIONS, name)) {
      throw invalidArgument(`annotation ${fullKey}`, { detail: `unknown key; known: ${Object.keys(CHECKPOINT_ANNOTATIONS).join(", ")}` });
    }
    const spec: { field: string; kind: Kind; invert?: boolean } = CHECKPOINT_ANNOTATIONS[name as CheckpointAnnotation];
    const parsed = parseValue(fullKey, spec.kind, value, spec.invert === true);
    const other = setBy[spec.field];
    if (other !== undefined && out[spec.field] !== parsed) {
      throw invalidArgument(`annotations ${other}=${JSON.stringify(annotations[other])} and ${fullKey}=${JSON.stringify(value)}`, { detail: "they contradict each other" });
    }
    setBy[spec.field] = fullKey;
    out[spec.field] = parsed;
  }
  return out as CheckpointOverrides;
}

function parseValue(key: string, kind: Kind, value: string, invert: boolean): unknown {
  const list = () => value.split(",").map((s) => s.trim()).filter((s) => s.length > 0);
  switch (kind) {
    case "bool":
      return parseBool(key, value) !== invert;
    case "string": {
      if (value.trim() === "") throw invalidArgument(`annotation ${key}`, { detail: "empty value" });
      return value.trim();
    }
    case "lsm-profile": {
      const v = value.trim();
      if (!isLsmProfile(v)) throw invalidArgument(`annotation ${key}=${JSON.stringify(value)}`, { detail: LSM_PROFILE_RULE });
      return v;
    }
    case "path": {
      const v = value.trim();
      if (v === "") throw invalidArgument(`annotation ${key}`, { detail: "empty value" });
      if (!isAbsolute(v)) throw invalidArgument(`annotation ${key}=${JSON.stringify(value)}`, { detail: RELATIVE_PATH });
      if (v.includes("\0")) throw invalidArgument(`annotation ${key}=${JSON.stringify(value)}`, { detail: NUL_IN_PATH });
      return v;
    }
    case "list":
      if (key.endsWith("/empty-ns")) {
        return [...new Set(list().map((n) => {
          if (n === "network" || n === "net") return "net";
          throw invalidArgument(`annotation ${key}=${JSON.stringify(value)}`, { detail: "only network can be restored empty" });
        }))];
      }
      return list();
    case "int": {
      if (!/^\d+$/.test(value.trim())) throw invalidArgument(`annotation ${key}=${JSON.stringify(value)}`, { detail: "want a non-negative integer" });
      return Number(value.trim());
    }
    case "size": {
      const bytes = parseSize(value);
      if (bytes === undefined) throw invalidArgument(`annotation ${key}=${JSON.stringify(value)}`, { detail: "want bytes, or a number with K, M or G (binary units)" });
      return bytes;
    }
    case "duration": {
      const seconds = parseDurationSeconds(value);
      if (seconds === undefined) throw invalidArgument(`annotation ${key}=${JSON.stringify(value)}`, { detail: "want seconds, or a number with s, m or h (at most a week)" });
      return seconds;
    }
    case "cgroup-mode": {
      const v = value.trim();
      if (!["soft", "full", "strict", "ignore"].includes(v)) throw invalidArgument(`annotation ${key}=${JSON.stringify(value)}`, { detail: "want soft, full, strict or ignore" });
      return v;
    }
    case "compression": {
      const v = value.trim();
      if (v !== "none" && v !== "zstd") throw invalidArgument(`annotation ${key}=${JSON.stringify(value)}`, { detail: "want none or zstd" });
      return v;
    }
    case "network-lock": {
      const v = value.trim();
      if (v !== "nftables" && v !== "iptables" && v !== "skip") throw invalidArgument(`annotation ${key}=${JSON.stringify(value)}`, { detail: "want nftables, iptables or skip" });
      return v;
    }
    case "address": {
      // Port 0: any free port, chosen at the dump (post-copy only; the plan refuses it otherwise).
      const m = /^(.+):(\d{1,5})$/.exec(value.trim());
      const port = m ? Number(m[2]) : -1;
      if (!m || port < 0 || port > 65535) throw invalidArgument(`annotation ${key}=${JSON.stringify(value)}`, { detail: "want HOST:PORT" });
      const address = m[1]!.replace(/^\[(.*)\]$/, "$1");
      if (!isPageServerHost(address)) throw invalidArgument(`annotation ${key}=${JSON.stringify(value)}`, { detail: `want HOST:PORT, HOST ${JSON.stringify(address)}: ${PAGE_SERVER_HOST_RULE}` });
      return { address, port };
    }
  }
}
