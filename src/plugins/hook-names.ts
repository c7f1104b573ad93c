/**
 * The hook names, apart from the hooks' input and output schemas (hook-schemas.ts), so that reading
 * the config file (plugins/config.ts, loaded by every shim daemon at its first Create) does not build
 * every hook schema.
 */
import { z } from "zod";

/** The hook names, which are also the names of the plugin exports cryo calls. */
export const hookNames = ["admit", "checkpoint", "restore"] as const;
/** A hook name. */
export type HookName = (typeof hookNames)[number];
/** zod schema of a hook name. */
export const hookNameSchema = z.enum(hookNames);
