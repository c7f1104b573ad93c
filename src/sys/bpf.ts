/**
 * bpf(2) through libc's syscall(): loading a program, attaching it to a cgroup, listing what is attached,
 * detaching it again.
 *
 * Each command fills the first bytes of `union bpf_attr` (include/uapi/linux/bpf.h) and passes their
 * length; the kernel zeroes the rest. Offsets are commented per field; everything is little-endian
 * LP64 (x86_64, aarch64). cryo uses it for the cgroup v2 device filter (src/cgroups/v2-devices.ts).
 */
import { ptr } from "bun:ffi";
import { invalidArgument } from "../errors.ts";
import { errno, libc, sysError } from "./libc.ts";

/** The bpf(2) syscall number of this architecture (asm-generic: 280; x86_64: 321). */
const SYS_bpf = process.arch === "x64" ? 321 : process.arch === "arm64" ? 280 : undefined;

const BPF_PROG_LOAD = 5;
const BPF_PROG_ATTACH = 8;
const BPF_PROG_DETACH = 9;
const BPF_PROG_GET_FD_BY_ID = 13;
const BPF_OBJ_GET_INFO_BY_FD = 15;
const BPF_PROG_QUERY = 16;

/** enum bpf_prog_type: a device filter of a cgroup (v2). */
export const BPF_PROG_TYPE_CGROUP_DEVICE = 15;
/** enum bpf_attach_type: device access checks of a cgroup and its descendants. */
export const BPF_CGROUP_DEVICE = 6;
/** Attach flag: several programs on one cgroup, all of which must allow (runc's flag). */
export const BPF_F_ALLOW_MULTI = 2;

/** The kernel's limit of programs per cgroup and attach type (BPF_CGROUP_MAX_PROGS). */
const MAX_PROGS = 64;

/** bpf(cmd, attr, attr.length): the result, or -1 with errno set. */
function bpf(cmd: number, attr: Uint8Array): number {
  if (SYS_bpf === undefined) throw invalidArgument(`bpf on ${process.arch}`, { detail: "no syscall number for this architecture" });
  return Number(libc.syscall(SYS_bpf, cmd, attr, attr.length));
}

/** Options of bpfProgLoad: the program type, its license string, and the size of the verifier log kept on failure (0: none). */
export interface BpfProgLoadOptions {
  type: number;
  license: string;
  logSize?: number;
  name?: string;
}

/**
 * BPF_PROG_LOAD: loads raw instructions (8 bytes each) and returns the program's descriptor (close-on-exec).
 * On failure the load is repeated with the verifier log on, and the error carries the log's last lines.
 */
export function bpfProgLoad(insns: Uint8Array, options: BpfProgLoadOptions): number {
  if (insns.length === 0 || insns.length % 8 !== 0) throw invalidArgument(`bpf program of ${insns.length} bytes`, { detail: "not a whole number of instructions" });
  const license = Buffer.from(`${options.license}\0`);
  const name = Buffer.from((options.name ?? "").replace(/[^A-Za-z0-9_.]/g, "_").slice(0, 15)); // the kernel's allowed characters
  const load = (log: Uint8Array | undefined): number => {
    const attr = new Uint8Array(64);
    const v = new DataView(attr.buffer);
    v.setUint32(0, options.type, true); // prog_type
    v.setUint32(4, insns.length / 8, true); // insn_cnt
    v.setBigUint64(8, BigInt(ptr(insns)), true); // insns
    v.setBigUint64(16, BigInt(ptr(license)), true); // license
    if (log) {
      v.setUint32(24, 1, true); // log_level
      v.setUint32(28, log.length, true); // log_size
      v.setBigUint64(32, BigInt(ptr(log)), true); // log_buf
    }
    // kern_version @40 and prog_flags @44 stay 0
    attr.set(name, 48); // prog_name[16], NUL-terminated by the zeroes after it
    return bpf(BPF_PROG_LOAD, attr);
  };
  const fd = load(undefined);
  if (fd >= 0) return fd;
  const err = errno();
  const logSize = options.logSize ?? 0;
  const e = sysError("bpf(BPF_PROG_LOAD)", err);
  if (logSize <= 0) throw e;
  // The second try, with the log on, may fail differently (ENOSPC for a truncated log): keep the first errno.
  const log = new Uint8Array(logSize);
  const again = load(log);
  if (again >= 0) return again;
  const text = Buffer.from(log.subarray(0, Math.max(0, log.indexOf(0)))).toString("utf8");
  // The reason is at the end, before the statistics ("processed N insns ...").
  const lines = text.split("\n").map((l) => l.trim()).filter((l) => l !== "" && !l.startsWith("processed ") && !l.startsWith("verification time"));
  if (lines.length > 0) e.message += `: verifier: ${lines.slice(-2).join("; ")}`;
  throw e;
}

/** BPF_PROG_ATTACH: attaches program progFd to targetFd (a cgroup directory's descriptor) for attachType. */
export function bpfProgAttach(targetFd: number, progFd: number, attachType: number, flags: number): void {
  const attr = new Uint8Array(16);
  const v = new DataView(attr.buffer);
  v.setUint32(0, targetFd, true); // target_fd
  v.setUint32(4, progFd, true); // attach_bpf_fd
  v.setUint32(8, attachType, true); // attach_type
  v.setUint32(12, flags, true); // attach_flags
  if (bpf(BPF_PROG_ATTACH, attr) < 0) throw sysError(`bpf(BPF_PROG_ATTACH, type ${attachType})`);
}

/** BPF_PROG_QUERY: the ids of the programs attached to targetFd itself for attachType, and the flags they were attached with. */
export function bpfProgQuery(targetFd: number, attachType: number): { ids: number[]; attachFlags: number } {
  const ids = new Uint32Array(MAX_PROGS);
  const attr = new Uint8Array(40);
  const v = new DataView(attr.buffer);
  v.setUint32(0, targetFd, true); // target_fd
  v.setUint32(4, attachType, true); // attach_type
  // query_flags @8 stays 0: this cgroup's own programs, not the effective ones of its ancestors
  v.setBigUint64(16, BigInt(ptr(ids)), true); // prog_ids
  v.setUint32(24, MAX_PROGS, true); // prog_cnt: in, the room; out, the count
  if (bpf(BPF_PROG_QUERY, attr) < 0) throw sysError(`bpf(BPF_PROG_QUERY, type ${attachType})`);
  return { ids: [...ids.subarray(0, v.getUint32(24, true))], attachFlags: v.getUint32(12, true) };
}

/** BPF_PROG_DETACH: detaches program progFd from targetFd for attachType. */
export function bpfProgDetach(targetFd: number, progFd: number, attachType: number): void {
  const attr = new Uint8Array(16);
  const v = new DataView(attr.buffer);
  v.setUint32(0, targetFd, true); // target_fd
  v.setUint32(4, progFd, true); // attach_bpf_fd
  v.setUint32(8, attachType, true); // attach_type
  if (bpf(BPF_PROG_DETACH, attr) < 0) throw sysError(`bpf(BPF_PROG_DETACH, type ${attachType})`);
}

/** BPF_PROG_GET_FD_BY_ID: a descriptor (close-on-exec) of the loaded program with this id. */
export function bpfProgGetFdById(id: number): number {
  const attr = new Uint8Array(12);
  new DataView(attr.buffer).setUint32(0, id, true); // prog_id; next_id @4 and open_flags @8 stay 0
  const fd = bpf(BPF_PROG_GET_FD_BY_ID, attr);
  if (fd < 0) throw sysError(`bpf(BPF_PROG_GET_FD_BY_ID, ${id})`);
  return fd;
}

/** BPF_OBJ_GET_INFO_BY_FD on a program: its id (struct bpf_prog_info: type @0, id @4). */
export function bpfProgId(progFd: number): number {
  const info = new Uint8Array(8);
  const attr = new Uint8Array(16);
  const v = new DataView(attr.buffer);
  v.setUint32(0, progFd, true); // bpf_fd
  v.setUint32(4, info.length, true); // info_len: the kernel fills no more than this
  v.setBigUint64(8, BigInt(ptr(info)), true); // info
  if (bpf(BPF_OBJ_GET_INFO_BY_FD, attr) < 0) throw sysError("bpf(BPF_OBJ_GET_INFO_BY_FD)");
  return new DataView(info.buffer).getUint32(4, true);
}
