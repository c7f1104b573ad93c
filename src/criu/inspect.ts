/**
 * Inspecting a CRIU images directory without CRIU: process tree, memory size, open files, statistics.
 * Decodes the images with cryo's own generated protobuf types (proto/criu), so no python/crit is needed.
 */
import { existsSync } from "node:fs";
import { readdir, readFile, stat } from "node:fs/promises";
import { join } from "node:path";
import { CoreEntrySchema, SeccompMode, TaskKobjIdsEntrySchema, type TaskKobjIdsEntry } from "../gen/criu/core_pb.ts";
import { UsernsEntrySchema } from "../gen/criu/userns_pb.ts";
import { capabilityName, capabilityNumbers } from "./capabilities.ts";
import { FdTypes, FdinfoEntrySchema, FileEntrySchema, type FileEntry } from "../gen/criu/fdinfo_pb.ts";
import { InventoryEntrySchema } from "../gen/criu/inventory_pb.ts";
import { decodePagemap, PE_PARENT, PE_PRESENT } from "./pagemap.ts";
import { PstreeEntrySchema } from "../gen/criu/pstree_pb.ts";
import { notFound } from "../errors.ts";
import { decodeImage, ImageMagic } from "./image-file.ts";
import { readStats, type CriuStats } from "./stats.ts";
import { madeNamespaceKinds } from "./ns-kinds.ts";

/** CRIU's page unit on x86_64 and aarch64-4k, the machines cryo targets. */
export const PAGE_SIZE = 4096;

/** One task of the checkpointed tree. */
export interface CheckpointProcess {
  pid: number;
  ppid: number;
  pgid: number;
  sid: number;
  threads: number[];
  /** Command name from core-<pid>.img. */
  comm?: string;
  /** personality(2) of its main thread as cryo's CRIU recorded it for the restore (thread core field persona, patch 0011), when not 0. */
  personality?: number;
  /** The main thread's credentials and seccomp mode (core-<pid>.img), what a restore checks against the spec. */
  creds?: CheckpointCreds;
}

/** A task's credentials as its core image records them. */
export interface CheckpointCreds {
  uid: number;
  gid: number;
  /** Effective capabilities, "CAP_..." names. */
  effective: string[];
  /** The capability bounding set. */
  bounding: string[];
  noNewPrivs: boolean;
  seccomp: "disabled" | "strict" | "filter";
}

/** One open descriptor of a task. */
export interface CheckpointFile {
  pid: number;
  fd: number;
  type: string;
  /** Path (regular files, unix sockets) or a description (sockets, pipes). */
  path?: string;
}

/** Memory held in the images. */
export interface CheckpointMemory {
  /** Pages stored in this directory's pages-*.img. */
  pages: number;
  /** Pages the pagemaps say are in the parent images (incremental dumps). */
  pagesInParent: number;
  /** Pages the pagemaps mark lazy, in no image here (a post-copy dump's: its page server has them). */
  pagesLazy: number;
  /** pages * PAGE_SIZE. */
  bytes: number;
  /** Total size of the pages-*.img files on disk. */
  pagesImageBytes: number;
  /** Total size of zstd-compressed page images (pages-*.img.zst, a cryo compressed checkpoint). */
  compressedPagesImageBytes: number;
}

/** The namespaces a restore of the checkpoint makes for its tree, and a user namespace's maps ("inside outside count"). */
export interface CheckpointNamespaces {
  /** OCI names: pid, network, ipc, uts, mount, user. */
  made: string[];
  uidMap?: string[];
  gidMap?: string[];
}

/** What `cryo inspect DIR` shows. */
export interface CheckpointInspection {
  dir: string;
  imgVersion?: number;
  /** From the root task's ids and the inventory (absent when either is missing). */
  namespaces?: CheckpointNamespaces;
  processes: CheckpointProcess[];
  memory: CheckpointMemory;
  files: CheckpointFile[];
  stats: CriuStats;
  /** Total size of every file in the directory. */
  totalBytes: number;
  /** What is missing or does not add up (a truncated or damaged checkpoint: a restore of it would fail); empty when none. */
  problems: string[];
}

/** Options of inspectCheckpoint. */
export interface InspectOptions {
  /** The page images are not in the directory (cryo's local pages, post-copy): their sizes are not checked. */
  pagesElsewhere?: boolean;
}

async function maybeRead(path: string): Promise<Uint8Array | undefined> {
  return existsSync(path) ? new Uint8Array(await readFile(path)) : undefined;
}

/** Reads a CRIU images directory; NOT_FOUND when it has no pstree.img. */
export async function inspectCheckpoint(dir: string, options: InspectOptions = {}): Promise<CheckpointInspection> {
  const problems: string[] = [];
  const pstreeBytes = await maybeRead(join(dir, "pstree.img"));
  if (!pstreeBytes) throw notFound(`criu images ${dir}`, { detail: "no pstree.img" });
  const pstree = decodeImage(PstreeEntrySchema, pstreeBytes, "pstree.img", ImageMagic.pstree);
  const inventoryBytes = await maybeRead(join(dir, "inventory.img"));
  const inventory = inventoryBytes ? decodeImage(InventoryEntrySchema, inventoryBytes, "inventory.img", ImageMagic.inventory, false)[0] : undefined;

  const fileTable = new Map<number, FileEntry>();
  const filesBytes = await maybeRead(join(dir, "files.img"));
  if (filesBytes) for (const f of decodeImage(FileEntrySchema, filesBytes, "files.img", ImageMagic.files)) fileTable.set(f.id, f);

  const processes: CheckpointProcess[] = [];
  const files: CheckpointFile[] = [];
  const memory: CheckpointMemory = { pages: 0, pagesInParent: 0, pagesLazy: 0, bytes: 0, pagesImageBytes: 0, compressedPagesImageBytes: 0 };
  const seenFdTables = new Set<number>();
  let namespaces: CheckpointNamespaces | undefined;
  for (const p of pstree) {
    const proc: CheckpointProcess = { pid: p.pid, ppid: p.ppid, pgid: p.pgid, sid: p.sid, threads: [...p.threads] };
    const core = await maybeRead(join(dir, `core-${p.pid}.img`));
    if (!core) problems.push(`core-${p.pid}.img is missing: process ${p.pid}'s registers, state and credentials`);
    if (core) {
      const [c] = decodeImage(CoreEntrySchema, core, `core-${p.pid}.img`, ImageMagic.core);
      if (c?.tc) proc.comm = c.tc.comm;
      if (c?.threadCore?.persona) proc.personality = c.threadCore.persona;
      const creds = c?.threadCore?.creds;
      if (creds) {
        proc.creds = {
          uid: creds.uid,
          gid: creds.gid,
          effective: capabilityNumbers(creds.capEff).map(capabilityName),
          bounding: capabilityNumbers(creds.capBnd).map(capabilityName),
          noNewPrivs: creds.noNewPrivs === 1,
          seccomp: c.threadCore?.seccompMode === SeccompMode.FILTER ? "filter" : c.threadCore?.seccompMode === SeccompMode.STRICT ? "strict" : "disabled",
        };
      }
    }
    processes.push(proc);

    const pagemap = await maybeRead(join(dir, `pagemap-${p.pid}.img`));
    if (pagemap) {
      // In the parent's images, in this one's pages-*.img, or lazy (served by a page server, in no pages-*.img).
      for (const r of decodePagemap(pagemap, `pagemap-${p.pid}.img`).runs) {
        const n = Number(r.pages);
        if (r.flags & PE_PARENT) memory.pagesInParent += n;
        else if (r.flags & PE_PRESENT) memory.pages += n;
        else memory.pagesLazy += n;
      }
    }

    const idsBytes = await maybeRead(join(dir, `ids-${p.pid}.img`));
    const ids = idsBytes ? decodeImage(TaskKobjIdsEntrySchema, idsBytes, `ids-${p.pid}.img`, ImageMagic.ids)[0] : undefined;
    if (ids && p === pstree[0] && inventory?.rootIds) namespaces = await madeNamespaces(dir, ids, inventory.rootIds);
    const filesId = ids?.filesId;
    if (filesId === undefined || seenFdTables.has(filesId)) continue;
    seenFdTables.add(filesId);
    const fdinfo = await maybeRead(join(dir, `fdinfo-${filesId}.img`));
    if (!fdinfo) continue;
    for (const fd of decodeImage(FdinfoEntrySchema, fdinfo, `fdinfo-${filesId}.img`, ImageMagic.fdinfo)) {
      const file: CheckpointFile = { pid: p.pid, fd: fd.fd, type: FdTypes[fd.type] ?? String(fd.type) };
      const path = describeFile(fileTable.get(fd.id));
      if (path !== undefined) file.path = path;
      files.push(file);
    }
  }
  memory.bytes = memory.pages * PAGE_SIZE;

  let totalBytes = 0;
  for (const name of await readdir(dir)) {
    const st = await stat(join(dir, name));
    if (!st.isFile()) continue;
    totalBytes += st.size;
    if (/^pages-\d+\.img$/.test(name)) memory.pagesImageBytes += st.size;
    if (/^pages-\d+\.img\.zst$/.test(name)) memory.compressedPagesImageBytes += st.size;
  }
  // Every page the pagemaps place in this directory is a page of the pages-*.img files (compressed ones are checked
  // when they are decompressed).
  if (!options.pagesElsewhere && memory.compressedPagesImageBytes === 0 && memory.pagesImageBytes !== memory.bytes) {
    problems.push(`pages-*.img hold ${memory.pagesImageBytes} bytes, the pagemaps ${memory.pages} pages (${memory.bytes} bytes)`);
  }
  const out: CheckpointInspection = { dir, processes, memory, files, stats: await readStats(dir), totalBytes, problems };
  if (inventory) out.imgVersion = inventory.imgVersion;
  if (namespaces) out.namespaces = namespaces;
  return out;
}

/** The namespaces a restore makes for the tree (where the root task's ids differ from the dumping CRIU's own), and a user namespace's maps. */
async function madeNamespaces(dir: string, root: TaskKobjIdsEntry, criu: TaskKobjIdsEntry): Promise<CheckpointNamespaces> {
  const out: CheckpointNamespaces = { made: madeNamespaceKinds(root, criu) };
  if (out.made.includes("user")) {
    const bytes = await maybeRead(join(dir, `userns-${root.userNsId}.img`));
    const e = bytes ? decodeImage(UsernsEntrySchema, bytes, `userns-${root.userNsId}.img`, ImageMagic.userns)[0] : undefined;
    if (e) {
      const lines = (m: readonly { first: number; lowerFirst: number; count: number }[]) => m.map((x) => `${x.first} ${x.lowerFirst} ${x.count}`);
      out.uidMap = lines(e.uidMap);
      out.gidMap = lines(e.gidMap);
    }
  }
  return out;
}

function describeFile(f: FileEntry | undefined): string | undefined {
  if (!f) return undefined;
  if (f.reg) return f.reg.name;
  if (f.usk) {
    const name = Buffer.from(f.usk.name);
    if (name.length === 0) return "unix (unnamed)";
    return name[0] === 0 ? `unix @${name.subarray(1).toString("utf8")}` : `unix ${name.toString("utf8")}`;
  }
  if (f.isk) {
    const proto = f.isk.proto === 6 ? "tcp" : f.isk.proto === 17 ? "udp" : `proto ${f.isk.proto}`;
    const addr = (words: number[], port: number) => `${ipString(f.isk!.family, words)}:${port}`;
    const local = addr(f.isk.srcAddr, f.isk.srcPort);
    return f.isk.dstPort === 0 ? `${proto} ${local} (listen/unconnected)` : `${proto} ${local} -> ${addr(f.isk.dstAddr, f.isk.dstPort)}`;
  }
  if (f.pipe) return `pipe:[${f.pipe.pipeId}]`;
  if (f.tty) return `tty (info ${f.tty.ttyInfoId})`;
  return undefined;
}

/** CRIU stores addresses as u32 words in network byte order, read as little-endian integers. */
function ipString(family: number, words: number[]): string {
  const bytes = Buffer.alloc(words.length * 4);
  words.forEach((w, i) => bytes.writeUInt32LE(w >>> 0, i * 4));
  if (family === 2 || words.length === 1) return [...bytes.subarray(0, 4)].join(".");
  const parts: string[] = [];
  for (let i = 0; i < 16; i += 2) parts.push(bytes.readUInt16BE(i).toString(16));
  return `[${parts.join(":")}]`;
}

/** Human-readable text of an inspection, for `cryo inspect DIR`. */
export function renderInspect(x: CheckpointInspection): string {
  const lines: string[] = [];
  const mib = (b: number) => `${(b / 1024 / 1024).toFixed(1)} MiB`;
  lines.push(`Checkpoint ${x.dir}${x.imgVersion !== undefined ? ` (image version ${x.imgVersion})` : ""}`);
  lines.push(`Size on disk: ${mib(x.totalBytes)}`);
  if (x.namespaces) {
    const n = x.namespaces;
    lines.push(`Namespaces the restore makes: ${n.made.join(", ") || "none (the restoring CRIU's)"}`);
    if (n.uidMap) lines.push(`  user namespace uid map: ${n.uidMap.join("; ")}; gid map: ${(n.gidMap ?? []).join("; ")}`);
  }
  lines.push("", "Process tree:");
  const children = new Map<number, CheckpointProcess[]>();
  for (const p of x.processes) children.set(p.ppid, [...(children.get(p.ppid) ?? []), p]);
  const pids = new Set(x.processes.map((p) => p.pid));
  const walk = (p: CheckpointProcess, depth: number) => {
    const threads = p.threads.length > 1 ? `, ${p.threads.length} threads` : "";
    // As /proc/PID/personality prints it (%08x).
    const persona = p.personality === undefined ? "" : `, personality 0x${(p.personality >>> 0).toString(16).padStart(8, "0")}`;
    lines.push(`${"  ".repeat(depth + 1)}${p.pid} ${p.comm ?? "?"} (pgid ${p.pgid}, sid ${p.sid}${threads}${persona})`);
    for (const c of children.get(p.pid) ?? []) walk(c, depth + 1);
  };
  for (const root of x.processes.filter((p) => !pids.has(p.ppid))) walk(root, 0);
  const withCreds = x.processes.filter((p) => p.creds);
  if (withCreds.length > 0) {
    lines.push("", "Credentials (main thread; a restore checks every thread against the spec):");
    for (const p of withCreds) {
      const c = p.creds!;
      const same = c.bounding.join(",") === c.effective.join(",");
      lines.push(`  ${p.pid} uid ${c.uid} gid ${c.gid}; effective ${c.effective.join(",") || "none"}; bounding ${same ? "the same" : c.bounding.join(",") || "none"}; no_new_privs ${c.noNewPrivs ? "on" : "off"}; seccomp ${c.seccomp}`);
    }
  }
  lines.push("", "Memory:");
  const pages = (n: number) => `${n} page${n === 1 ? "" : "s"}`;
  lines.push(`  ${pages(x.memory.pages)} (${mib(x.memory.bytes)}) in this image, ${pages(x.memory.pagesInParent)} in the parent${x.memory.pagesLazy > 0 ? `, ${pages(x.memory.pagesLazy)} lazy (with the page server)` : ""}`);
  // Not a line of 0 MiB beside the compressed images (or for local pages, which the metadata part names).
  if (x.memory.pagesImageBytes > 0 || x.memory.compressedPagesImageBytes === 0) lines.push(`  pages-*.img on disk: ${mib(x.memory.pagesImageBytes)}`);
  if (x.memory.compressedPagesImageBytes > 0) lines.push(`  pages-*.img.zst on disk (compressed): ${mib(x.memory.compressedPagesImageBytes)}`);
  lines.push("", "Open files:");
  for (const f of x.files) lines.push(`  ${f.pid} fd ${f.fd} ${f.type}${f.path ? ` ${f.path}` : ""}`);
  if (x.files.length === 0) lines.push("  (none recorded)");
  const d = x.stats.dump;
  if (d) {
    lines.push("", "Dump statistics:");
    lines.push(`  freezing time  ${d.freezingTimeUs} us`, `  frozen time    ${d.frozenTimeUs} us`);
    lines.push(`  memdump time   ${d.memdumpTimeUs} us`, `  memwrite time  ${d.memwriteTimeUs} us`);
    lines.push(`  pages scanned ${d.pagesScanned}, skipped (parent) ${d.pagesSkippedParent}, written ${d.pagesWritten}, lazy ${d.pagesLazy}`);
  }
  if (x.problems.length > 0) {
    lines.push("", "Problems (a restore of this checkpoint would fail):");
    for (const p of x.problems) lines.push(`  ${p}`);
  }
  const r = x.stats.restore;
  if (r) {
    lines.push("", "Restore statistics:");
    lines.push(`  forking time   ${r.forkingTimeUs} us`, `  restore time   ${r.restoreTimeUs} us`);
    lines.push(`  pages compared ${r.pagesCompared}, skipped (cow) ${r.pagesSkippedCow}, restored ${r.pagesRestored ?? "?"}`);
  }
  return `${lines.join("\n")}\n`;
}
