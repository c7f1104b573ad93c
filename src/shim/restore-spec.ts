/**
 * What of the host a restored container may reach comes from the new bundle's spec, not from the
 * checkpoint: the sources of its bind mounts, the devices bound in from the host, and the namespaces it
 * joins by path. This is what `runc restore` does (it builds CRIU's external mount map and namespaces from
 * the new config.json).
 *
 * The checkpoint's runc state still says which mounts, devices and namespaces the dumped tree had: CRIU's
 * images refer to them by key. But the checkpoint may come from another host or from anyone, and the shim
 * runs as root: taken from it, a bind's source could be the host's /, a "device" /etc, a namespace path
 * /proc/1/ns/mnt. So each of them must also be in the spec, and the spec's host side is used:
 * - a bind mount of the checkpoint needs a bind mount at the same destination in the spec, whose source is
 *   used;
 * - a device of the checkpoint must be one of runc's default devices or one the spec lists;
 * - the checkpoint and the spec must name the same kinds of namespace; each is joined at the spec's path
 *   for that type, or is the tree's own when the spec gives no path.
 * A checkpoint that needs what the spec does not give is refused (INVALID_ARGUMENT) before anything is made.
 */
import { posix } from "node:path";
import * as z from "zod/mini";
import { runcNsType, type RuncContainer } from "../checkpoint/runc-criu.ts";
import { invalidArgument } from "../errors.ts";
import { parseDetail } from "../runtime/schema-detail.ts";

/** The devices runc gives every container (libcontainer's AllowedDevices with a path). */
export const RUNC_DEFAULT_DEVICES = ["/dev/null", "/dev/zero", "/dev/full", "/dev/random", "/dev/urandom", "/dev/tty"] as const;

/** The parts of an OCI spec this module reads. */
const specSchema = z.object({
  mounts: z.optional(z.array(z.object({ destination: z.string(), type: z.optional(z.string()), source: z.optional(z.string()), options: z.optional(z.array(z.string())) }))),
  linux: z.optional(
    z.object({
      devices: z.optional(z.array(z.object({ path: z.string() }))),
      namespaces: z.optional(z.array(z.object({ type: z.string(), path: z.optional(z.string()) }))),
    }),
  ),
});

const clean = (p: string) => (p === "/" ? p : posix.normalize(p).replace(/\/+$/, ""));

/**
 * Where runc mounts the directory of the sd_notify socket it proxies into a container created with NOTIFY_SOCKET
 * (cryo.notify/socket): <runc root>/<id>/notify, a directory of its own state.
 */
export const RUNC_NOTIFY_MOUNT = "/run/notify";

/**
 * c with the host side of its bind mounts, devices and joined namespaces taken from spec (see the module comment).
 * runc's notify mount, which no spec has, is given notifyDir (the new container's, in runc's state) when asked.
 */
export function confineToSpec(c: RuncContainer, spec: unknown, where: string, opts: { notifyDir?: string } = {}): RuncContainer {
  const r = parseDetail(specSchema, spec);
  if (!r.ok) throw invalidArgument(`${where}: the bundle's spec`, { detail: r.detail });
  const s = r.data;

  // A relative bind source is relative to the bundle (OCI runtime spec), the rootfs's parent here.
  const bundle = posix.dirname(c.config.rootfs);
  const binds = new Map<string, string>();
  for (const m of s.mounts ?? []) {
    const isBind = m.type === "bind" || (m.options ?? []).some((o) => o === "bind" || o === "rbind");
    if (isBind && m.source !== undefined) binds.set(clean(m.destination), posix.resolve(bundle, m.source));
  }
  const mounts = c.config.mounts.map((m) => {
    if (m.device !== "bind") return m;
    const source = binds.get(clean(m.destination));
    if (source === undefined && opts.notifyDir !== undefined && clean(m.destination) === RUNC_NOTIFY_MOUNT && posix.basename(m.source) === "notify") return { ...m, source: opts.notifyDir };
    if (source === undefined) throw invalidArgument(where, { detail: `the checkpoint has a bind mount at ${m.destination} that the bundle's spec does not have` });
    return { ...m, source };
  });

  const allowed = new Set<string>([...RUNC_DEFAULT_DEVICES, ...(s.linux?.devices ?? []).map((d) => clean(d.path))]);
  for (const d of c.config.devices) {
    if (!allowed.has(clean(d.path))) throw invalidArgument(where, { detail: `the checkpoint has device ${d.path}, which is neither runc's default nor in the bundle's spec` });
  }

  const joined = new Map<string, string>();
  const specTypes = new Set<string>();
  for (const ns of s.linux?.namespaces ?? []) {
    const t = runcNsType(ns.type);
    specTypes.add(t);
    if (ns.path) joined.set(t, ns.path);
  }
  // The same kinds of namespace, or the tree would come back in ones the spec did not ask for (the host's network
  // for a pod that has its own), or the spec's join would be dropped.
  const dumpedTypes = new Set(c.config.namespaces.map((ns) => runcNsType(ns.type)));
  const missing = [...specTypes].filter((t) => !dumpedTypes.has(t));
  const extra = [...dumpedTypes].filter((t) => !specTypes.has(t));
  if (missing.length > 0 || extra.length > 0) {
    throw invalidArgument(where, {
      detail: `the checkpointed container's namespaces differ from the bundle's spec${missing.length > 0 ? `: the spec has ${missing.join(", ")}, the checkpoint not` : ""}${extra.length > 0 ? `; the checkpoint has ${extra.join(", ")}, the spec not` : ""}`,
    });
  }
  const namespaces = c.config.namespaces.map((ns) => ({ ...ns, path: joined.get(runcNsType(ns.type)) ?? "" }));

  return { ...c, config: { ...c.config, mounts, namespaces } };
}
