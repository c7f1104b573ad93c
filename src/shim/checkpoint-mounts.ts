/**
 * What CRIU must be told about a runc container's mounts and namespaces, the way runc 1.1 tells it
 * (libcontainer/container_linux.go), computed from the libcontainer config in runc's state.json:
 *
 * - dump: every bind mount is external (`ext_mnt dest:dest`), every masked path that is not a
 *   directory is external with key "/dev/null", every device node is external under its own path;
 *   a network or pid namespace the spec joins by path is external (`net[INODE]:extRootNetNS`).
 * - restore: bind destinations map to their host sources, "/dev/null" to the host's /dev/null,
 *   devices to themselves; the joined namespaces come back through inherited fds.
 *
 * Pure: the file system is reached only through the callbacks the caller passes.
 */
import { z } from "zod";
import { invalidArgument } from "../errors.ts";

/** The parts of runc's libcontainer config (state.json `config`) these rules read. */
export const containerMountConfigSchema = z
  .object({
    rootfs: z.string().min(1),
    mounts: z
      .array(z.object({ source: z.string(), destination: z.string(), device: z.string() }).loose())
      .nullish()
      .transform((v) => v ?? []),
    mask_paths: z
      .array(z.string())
      .nullish()
      .transform((v) => v ?? []),
    devices: z
      .array(z.object({ path: z.string() }).loose())
      .nullish()
      .transform((v) => v ?? []),
    namespaces: z
      .array(z.object({ type: z.string(), path: z.string().optional() }).loose())
      .nullish()
      .transform((v) => v ?? []),
  })
  .loose();

/** The config view, parsed. */
export type ContainerMountConfig = z.infer<typeof containerMountConfigSchema>;

/** Parses the libcontainer config; INVALID_ARGUMENT names the source. */
export function parseMountConfig(config: unknown, where: string): ContainerMountConfig {
  const r = containerMountConfigSchema.safeParse(config);
  if (!r.success) throw invalidArgument(where, { detail: r.error.issues.map((i) => `${i.path.join(".")}: ${i.message}`).join("; ") });
  return r.data;
}

/** One `--ext-mount-map` entry. */
export interface ExtMount {
  key: string;
  value: string;
}

/** Namespaces CRIU can treat as external, with the key runc uses for each. */
const EXTERNAL_NS = { NEWNET: { criu: "net", key: "extRootNetNS" }, NEWPID: { criu: "pid", key: "extRootPidNS" } } as const;

/** The dump-side external mounts; `kindOf(path)` says what a path inside the container is ("dir", "other", or undefined when absent). */
export function dumpExtMounts(cfg: ContainerMountConfig, kindOf: (pathInContainer: string) => "dir" | "other" | undefined): ExtMount[] {
  const out: ExtMount[] = [];
  for (const m of cfg.mounts) {
    if (m.device === "bind") out.push({ key: m.destination, value: m.destination });
  }
  for (const p of cfg.mask_paths) {
    if (kindOf(p) === "other") out.push({ key: p, value: "/dev/null" });
  }
  for (const d of cfg.devices) out.push({ key: d.path, value: d.path });
  return dedupeByKey(out);
}

/** The restore-side external mounts: bind destinations -> host sources, masked files -> /dev/null, devices -> themselves. */
export function restoreExtMounts(cfg: ContainerMountConfig): ExtMount[] {
  const out: ExtMount[] = [];
  for (const m of cfg.mounts) {
    if (m.device === "bind") out.push({ key: m.destination, value: m.source });
  }
  if (cfg.mask_paths.length > 0) out.push({ key: "/dev/null", value: "/dev/null" });
  for (const d of cfg.devices) out.push({ key: d.path, value: d.path });
  return dedupeByKey(out);
}

/** Dump-side `--external` entries for the namespaces the spec joins by path; `inodeOf(nsPath)` stats the namespace file. */
export function dumpExternalNamespaces(cfg: ContainerMountConfig, inodeOf: (nsPath: string) => bigint | number): string[] {
  const out: string[] = [];
  for (const ns of cfg.namespaces) {
    const ext = EXTERNAL_NS[ns.type as keyof typeof EXTERNAL_NS];
    if (!ext || !ns.path) continue;
    out.push(`${ext.criu}[${inodeOf(ns.path)}]:${ext.key}`);
  }
  return out;
}

/** Restore-side: the namespace files to hand CRIU as inherited fds, with their keys. */
export function restoreExternalNamespaces(cfg: ContainerMountConfig): { path: string; key: string }[] {
  const out: { path: string; key: string }[] = [];
  for (const ns of cfg.namespaces) {
    const ext = EXTERNAL_NS[ns.type as keyof typeof EXTERNAL_NS];
    if (ext && ns.path) out.push({ path: ns.path, key: ext.key });
  }
  return out;
}

/**
 * Mount points a restore must find in the rootfs: every mount destination that is not below a tmpfs
 * mount of the config (CRIU recreates what lives inside a tmpfs from its image). Bind mounts of a
 * file need a file, everything else a directory; `sourceIsDir` answers for bind sources.
 */
export function restoreMountPoints(cfg: ContainerMountConfig, sourceIsDir: (source: string) => boolean): { path: string; dir: boolean }[] {
  const tmpfs = cfg.mounts.filter((m) => m.device === "tmpfs").map((m) => m.destination);
  const under = (p: string, root: string) => p !== root && (root === "/" || p.startsWith(`${root}/`));
  const out: { path: string; dir: boolean }[] = [];
  for (const m of cfg.mounts) {
    if (tmpfs.some((t) => under(m.destination, t))) continue;
    if (m.device === "cgroup") continue;
    out.push({ path: m.destination, dir: m.device !== "bind" || sourceIsDir(m.source) });
  }
  return out;
}

function dedupeByKey(xs: ExtMount[]): ExtMount[] {
  const seen = new Set<string>();
  return xs.filter((x) => (seen.has(x.key) ? false : (seen.add(x.key), true)));
}
