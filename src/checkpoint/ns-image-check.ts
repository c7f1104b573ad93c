/**
 * The namespaces CRIU makes for a restored tree, and a user namespace's id maps.
 *
 * Which namespaces the restored tree gets is the images' choice, not an option of the restore: CRIU compares the
 * root task's namespace ids (ids-<pid>.img) with the ids of its own namespaces at the dump (inventory.img's
 * root_ids), and makes a new namespace of each kind where they differ; where they are equal the tree stays in the
 * namespace of the CRIU that restores it, the host's (criu/pstree.c get_clone_mask). The ids are just numbers in
 * the images. So a crafted checkpoint could keep a container whose spec gives it a network namespace in the host's,
 * or one with a user namespace of its own out of it (its root then the host's root). cryo holds them to the spec:
 * for each of the pid, network, ipc, uts, mount and user namespaces, the images must make a new one exactly where
 * the spec gives the container one, new or joined by path (a joined one is given to CRIU as an external namespace,
 * which CRIU only uses where it makes one), or, for a namespace joined by path that is the host's own (a pod on the
 * host's network joins the pause's, the host's), keep the tree in CRIU's. Not compared: the time namespace (CRIU puts every restored tree in a
 * new one of its own, a restored container's checkpoint included) and the cgroup namespace (not in CRIU's clone
 * mask).
 *
 * CRIU writes a new user namespace's uid and gid maps from the checkpoint's userns-<id>.img, as root. A map of the
 * container's uid 0 to the host's 0 would make its root the host's. They must be the spec's linux.uidMappings and
 * gidMappings, line for line (in any order).
 *
 * A user namespace joined by path (a pod's) is dumped as one of the container's own, maps included; cryo's CRIU
 * (scripts/criu/0006) makes the restored tree in the joined one instead and checks there that its maps are the
 * images'. Where the spec gives mappings as well, they must be the images' too.
 */
import { readFileSync, statSync } from "node:fs";
import * as z from "zod/mini";
import { decodeImage, ImageMagic } from "../criu/image-file.ts";
import { madeNamespaceKinds, NS_KINDS } from "../criu/ns-kinds.ts";
import { TaskKobjIdsEntrySchema, type TaskKobjIdsEntry } from "../gen/criu/core_pb.ts";
import { InventoryEntrySchema } from "../gen/criu/inventory_pb.ts";
import { PstreeEntrySchema } from "../gen/criu/pstree_pb.ts";
import { UsernsEntrySchema, type UidGidExtent } from "../gen/criu/userns_pb.ts";
import { invalidArgument } from "../errors.ts";
import { parseDetail } from "../runtime/schema-detail.ts";
import { readCheckpointImage } from "./image-paths.ts";

const idMapping = z.object({ containerID: z.number(), hostID: z.number(), size: z.number() });
/** The parts of an OCI spec this module reads. */
const specSchema = z.object({
  linux: z.optional(
    z.object({
      namespaces: z.optional(z.array(z.object({ type: z.string(), path: z.optional(z.string()) }))),
      uidMappings: z.optional(z.array(idMapping)),
      gidMappings: z.optional(z.array(idMapping)),
    }),
  ),
});
type NsSpec = z.infer<typeof specSchema>;
type IdMapping = z.infer<typeof idMapping>;

function parseSpec(spec: unknown, where: string): NsSpec {
  const r = parseDetail(specSchema, spec);
  if (!r.ok) throw invalidArgument(`${where}: the bundle's spec`, { detail: r.detail });
  return r.data;
}

/** The user namespace the spec gives the container: none (the host's), one of its own, or one joined by path. */
function userNamespace(s: NsSpec): { kind: "none" } | { kind: "new" } | { kind: "joined"; path: string } {
  const ns = (s.linux?.namespaces ?? []).find((n) => n.type === "user");
  if (!ns) return { kind: "none" };
  return ns.path ? { kind: "joined", path: ns.path } : { kind: "new" };
}

/** A joined user namespace's maps, as /proc/PID/uid_map and gid_map read (rows of container id, host id, size). */
export type JoinedUsernsMaps = (path: string) => { uidMap: string; gidMap: string } | undefined;

/** The maps of a user namespace given as /proc/PID/ns/user (undefined for any other path, such as a bind-mounted one). */
export const procUsernsMaps: JoinedUsernsMaps = (path) => {
  const m = /^\/proc\/(\d+)\/ns\/user$/.exec(path);
  if (!m) return undefined;
  const read = (name: string) => readFileSync(`/proc/${m[1]}/${name}`, "utf8");
  return { uidMap: read("uid_map"), gidMap: read("gid_map") };
};

function parseIdMap(text: string): IdMapping[] {
  return text.split("\n").flatMap((line) => {
    const f = line.trim().split(/\s+/).map(Number);
    return f.length === 3 && f.every((n) => Number.isInteger(n)) ? [{ containerID: f[0]!, hostID: f[1]!, size: f[2]! }] : [];
  });
}

/**
 * The host uid and gid of the root of the user namespace the spec gives the container, of its own or joined by
 * path (its mappings of id 0); undefined when it gives none. A joined one without mappings in the spec is read
 * through joinedMaps. A user namespace without a mapping of 0 is refused.
 */
export function userNamespaceRoot(spec: unknown, where: string, joinedMaps: JoinedUsernsMaps = procUsernsMaps): { uid: number; gid: number } | undefined {
  const s = parseSpec(spec, where);
  const userns = userNamespace(s);
  if (userns.kind === "none") return undefined;
  let uidMappings = s.linux?.uidMappings;
  let gidMappings = s.linux?.gidMappings;
  let from = "its linux.";
  if (userns.kind === "joined" && !uidMappings?.length && !gidMappings?.length) {
    let maps: ReturnType<JoinedUsernsMaps>;
    try {
      maps = joinedMaps(userns.path);
    } catch (e) {
      throw invalidArgument(`${where}: the user namespace ${userns.path}`, { detail: `its maps could not be read: ${(e as Error).message}` });
    }
    if (!maps) throw invalidArgument(`${where}: the bundle's spec`, { detail: `it joins the user namespace ${userns.path}, gives no linux.uidMappings and gidMappings, and the namespace's maps cannot be read from that path (give the mappings, or a /proc/PID/ns/user path)` });
    uidMappings = parseIdMap(maps.uidMap);
    gidMappings = parseIdMap(maps.gidMap);
    from = `the maps of ${userns.path}: `;
  }
  const root = (maps: IdMapping[] | undefined, what: string) => {
    const m = (maps ?? []).find((e) => e.containerID <= 0 && 0 < e.containerID + e.size);
    if (!m) throw invalidArgument(`${where}: the bundle's spec`, { detail: `it gives the container a user namespace, and ${from}${what} map no id 0` });
    return m.hostID - m.containerID;
  };
  return { uid: root(uidMappings, "uidMappings"), gid: root(gidMappings, "gidMappings") };
}

/** Whether the namespace of kind (as the spec names kinds) at path is the one the restoring CRIU runs in. */
export type HostNamespaceTest = (kind: string, path: string) => boolean;

const PROC_NS_NAME: Record<string, string> = { pid: "pid", network: "net", ipc: "ipc", uts: "uts", mount: "mnt" };

/** The shim's own namespace of that kind (the CRIU helpers it starts run in it) is the one at path: same device and inode. */
export const hostNamespace: HostNamespaceTest = (kind, path) => {
  const name = PROC_NS_NAME[kind];
  if (name === undefined) return false;
  try {
    const a = statSync(path);
    const b = statSync(`/proc/self/ns/${name}`);
    return a.dev === b.dev && a.ino === b.ino;
  } catch {
    return false;
  }
};

/** The ids the images give: the root task's and those of CRIU's own namespaces at the dump. */
export interface NamespaceIds {
  root: TaskKobjIdsEntry;
  criu: TaskKobjIdsEntry;
}

/**
 * Checks that the images make a new namespace exactly where the spec gives the container one, and that a user
 * namespace's maps are the spec's (see the module comment). userns reads the userns image of an id.
 */
export function checkNamespaceEntries(
  ids: NamespaceIds,
  spec: unknown,
  where: string,
  userns: (id: number) => { uidMap: UidGidExtent[]; gidMap: UidGidExtent[] },
  image = "ids image",
  isHostNamespace: HostNamespaceTest = hostNamespace,
): void {
  const s = parseSpec(spec, where);
  const given = new Map((s.linux?.namespaces ?? []).map((ns) => [ns.type, ns.path ? "joined" : "new"] as const));
  const paths = new Map((s.linux?.namespaces ?? []).flatMap((ns) => (ns.path ? [[ns.type, ns.path] as const] : [])));
  const madeKinds = madeNamespaceKinds(ids.root, ids.criu);
  for (const [kind] of NS_KINDS) {
    const made = madeKinds.includes(kind);
    const wanted = given.get(kind);
    if (made && wanted === undefined) throw invalidArgument(where, { detail: `${image}: it makes the tree a ${kind} namespace, and the spec gives the container none (it shares the host's)` });
    // A namespace joined by path that is the host's own (a pod on the host's network: its containers join the
    // pause's network namespace, the host's): keeping the tree in the restoring CRIU's is that namespace.
    if (!made && wanted === "joined" && kind !== "user" && isHostNamespace(kind, paths.get(kind)!)) continue;
    if (!made && wanted !== undefined) {
      throw invalidArgument(where, { detail: `${image}: it keeps the tree in the ${kind} namespace of the CRIU that restores it (the host's), and the spec gives the container ${wanted === "new" ? "one of its own" : "one by path"}` });
    }
  }
  const own = userNamespace(s);
  // A joined user namespace without mappings in the spec: cryo's CRIU checks the images' against its own.
  if (own.kind === "none" || (own.kind === "joined" && !s.linux?.uidMappings?.length && !s.linux?.gidMappings?.length)) return;
  const maps = userns(ids.root.userNsId);
  const same = (image: readonly UidGidExtent[], spec: readonly IdMapping[]) => {
    const a = image.map((e) => `${e.first}:${e.lowerFirst}:${e.count}`).sort();
    const b = spec.map((m) => `${m.containerID}:${m.hostID}:${m.size}`).sort();
    return a.length === b.length && a.every((x, i) => x === b[i]);
  };
  const show = (e: readonly UidGidExtent[]) => e.map((x) => `${x.first} ${x.lowerFirst} ${x.count}`).join(", ") || "none";
  if (!same(maps.uidMap, s.linux?.uidMappings ?? [])) throw invalidArgument(where, { detail: `userns-${ids.root.userNsId}.img: its uid map (${show(maps.uidMap)}) is not the spec's linux.uidMappings` });
  if (!same(maps.gidMap, s.linux?.gidMappings ?? [])) throw invalidArgument(where, { detail: `userns-${ids.root.userNsId}.img: its gid map (${show(maps.gidMap)}) is not the spec's linux.gidMappings` });
}

/** checkNamespaceEntries with the ids, inventory and userns images of imagesDir (a checked checkpoint directory). */
export function checkNamespaceImages(imagesDir: string, spec: unknown, where: string): void {
  const read = (name: string) => readCheckpointImage(imagesDir, name);
  const rootTask = decodeImage(PstreeEntrySchema, read("pstree.img"), "pstree.img", ImageMagic.pstree)[0];
  if (!rootTask) throw invalidArgument(`checkpoint ${imagesDir}`, { detail: "pstree.img: no task" });
  const idsName = `ids-${rootTask.pid}.img`;
  const root = decodeImage(TaskKobjIdsEntrySchema, read(idsName), idsName, ImageMagic.ids)[0];
  const criu = decodeImage(InventoryEntrySchema, read("inventory.img"), "inventory.img", ImageMagic.inventory, false)[0]?.rootIds;
  if (!root) throw invalidArgument(`checkpoint ${imagesDir}`, { detail: `${idsName}: no entry` });
  if (!criu) throw invalidArgument(`checkpoint ${imagesDir}`, { detail: "inventory.img: no root_ids" });
  checkNamespaceEntries({ root, criu }, spec, where, (id) => {
    const name = `userns-${id}.img`;
    const e = decodeImage(UsernsEntrySchema, read(name), name, ImageMagic.userns)[0];
    if (!e) throw invalidArgument(`checkpoint ${imagesDir}`, { detail: `${name}: no entry` });
    return e;
  }, idsName);
}
