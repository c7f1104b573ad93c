/**
 * The enumerations (and the timeout's duration and the ghost limit's size syntax) of a checkpoint plan that the config file's schema shares
 * (src/config/schema.ts).
 * Kept apart from plan.ts so that loading the config file, which every shim daemon does at its first
 * Create, does not load the plan resolver and the option protobufs with it.
 */
import { z } from "zod";

/** Cgroup manage modes a checkpoint may ask for. */
export const planCgroupModeSchema = z.enum(["soft", "full", "strict", "ignore"]);
/** Page-image compression. */
export const compressionSchema = z.enum(["none", "zstd"]);
/** How CRIU cuts the container's network off while it is frozen (CRIU --network-lock). */
// skip: no lock. cryo also chooses it by itself for a network namespace nothing outside can reach (checkpoint-dump.ts).
export const networkLockSchema = z.enum(["nftables", "iptables", "skip"]);

/** The longest checkpoint timeout: a week, in seconds. */
export const TIMEOUT_SECONDS_MAX = 7 * 24 * 3600;

/** "90", "90s", "15m", "2h" -> seconds; undefined when malformed or past TIMEOUT_SECONDS_MAX. */
export function parseDurationSeconds(value: string): number | undefined {
  const m = /^(\d+)\s*([smh]?)$/i.exec(value.trim());
  if (!m) return undefined;
  const n = Number(m[1]) * { "": 1, s: 1, m: 60, h: 3600 }[m[2]!.toLowerCase() as "" | "s" | "m" | "h"];
  return Number.isSafeInteger(n) && n <= TIMEOUT_SECONDS_MAX ? n : undefined;
}

/** "1048576", "512K", "64M", "1G" (binary units, case-insensitive) -> bytes; undefined when malformed. */
export function parseSize(value: string): number | undefined {
  const m = /^(\d+)\s*([kmg]?)i?b?$/i.exec(value.trim());
  if (!m) return undefined;
  const unit = { "": 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3 }[m[2]!.toLowerCase() as "" | "k" | "m" | "g"];
  return Number(m[1]) * unit;
}
