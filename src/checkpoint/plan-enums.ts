/**
 * The enumerations of a checkpoint plan that the config file's schema shares (src/config/schema.ts).
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
