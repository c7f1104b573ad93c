/** A network interface name, as plugin output and the config file give one for a restore's veth pairs. */
import { z } from "zod";

/**
 * A network interface name as the kernel takes one (dev_valid_name): 1 to 15 bytes, not "." or "..", no "/", ":"
 * or white space. A longer one was taken and failed only at the restore, in CRIU's netlink call.
 */
export const interfaceNameSchema = z
  .string()
  .min(1)
  .max(15, "an interface name has at most 15 bytes (IFNAMSIZ)")
  .refine((v) => v.length > 15 || new TextEncoder().encode(v).length <= 15, "an interface name has at most 15 bytes (IFNAMSIZ)")
  .refine((v) => v !== "." && v !== ".." && !/[/:\s]/.test(v), 'an interface name is not "." or ".." and has no "/", ":" or white space');
