/**
 * The device rules of a container on cgroup v2: a BPF_PROG_TYPE_CGROUP_DEVICE program, as runc attaches it.
 *
 * cgroup v2 has no devices.allow/devices.deny; the kernel asks the BPF programs attached to the task's
 * cgroup (and its ancestors) instead. So that the same DeviceRule list (runcDeviceRules, v1-devices.ts)
 * decides the same way on v1 and v2, the list is first run through an emulator of the v1 controller
 * (security/device_cgroup.c: from deny-all, each rule in order; a type-`a` rule resets to allow-all or
 * deny-all), and the program is generated from the resulting state: a default and its exceptions.
 *
 * The program reads struct bpf_cgroup_dev_ctx { u32 access_type (access << 16 | type); u32 major; u32 minor }
 * into registers, then has one block per exception, which jumps to the next block on a mismatch and
 * otherwise returns; the last block returns the default (1 allows, 0 denies). v1's checks are matched
 * exactly: with deny-by-default an access is allowed when it is a subset of one exception's access
 * (match_exception); with allow-by-default it is denied when it overlaps one (match_exception_partial).
 * The emulator assumes an allow-all parent, as a container's parent cgroup is on a usual host.
 */
import { closeSync, constants, openSync } from "node:fs";
import { CryoError, invalidArgument } from "../errors.ts";
import { BPF_CGROUP_DEVICE, BPF_F_ALLOW_MULTI, BPF_PROG_TYPE_CGROUP_DEVICE, bpfProgAttach, bpfProgDetach, bpfProgGetFdById, bpfProgId, bpfProgLoad, bpfProgQuery, close } from "../sys/index.ts";
import type { DeviceRule } from "./v1-devices.ts";

/** Access bit "m"; the bits are the same in v1's device_cgroup.c (DEVCG_ACC_*) and in BPF (BPF_DEVCG_ACC_*). */
export const ACC_MKNOD = 1;
/** Access bit "r". */
export const ACC_READ = 2;
/** Access bit "w". */
export const ACC_WRITE = 4;

/** Device type numbers of bpf_cgroup_dev_ctx (BPF_DEVCG_DEV_*). */
const DEV_BLOCK = 1;
const DEV_CHAR = 2;

/** One exception to the default: a device pattern and the access bits it covers. */
export interface DeviceException {
  type: "b" | "c";
  major: number | "*";
  minor: number | "*";
  access: number;
}

/** The v1 devices controller's state: allow or deny by default, and the exceptions to that. */
export interface DeviceState {
  defaultAllow: boolean;
  exceptions: DeviceException[];
}

/** The access bits of an access string such as "rwm". */
export function accessBits(access: string): number {
  return (access.includes("m") ? ACC_MKNOD : 0) | (access.includes("r") ? ACC_READ : 0) | (access.includes("w") ? ACC_WRITE : 0);
}

/** The state the v1 kernel reaches from deny-all after the rules, in order (what v1DeviceWrites makes it write). */
export function emulateV1Devices(rules: readonly DeviceRule[]): DeviceState {
  let defaultAllow = false;
  let exceptions: DeviceException[] = [];
  for (const r of rules) {
    if (r.type === "a") {
      // v1DeviceWrites writes any type-a rule as the bare "a": a reset, whatever its major, minor and access.
      defaultAllow = r.allow;
      exceptions = [];
      continue;
    }
    const bits = accessBits(r.access);
    const i = exceptions.findIndex((e) => e.type === r.type && e.major === r.major && e.minor === r.minor);
    const found = exceptions[i];
    if (r.allow !== defaultAllow) {
      // dev_exception_add: merge into the exception of the same type/major/minor, or append one.
      if (found) found.access |= bits;
      else exceptions.push({ type: r.type, major: r.major, minor: r.minor, access: bits });
    } else if (found) {
      // dev_exception_rm: only an exactly matching exception loses bits (a rule cannot punch a hole in a wildcard).
      found.access &= ~bits;
      if (found.access === 0) exceptions.splice(i, 1);
    }
  }
  return { defaultAllow, exceptions };
}

/** v1's decision for one access (bits) to a device: the reference the program must agree with. */
export function v1DeviceAllowed(state: DeviceState, type: "b" | "c", major: number, minor: number, access: number): boolean {
  const matches = (e: DeviceException) => e.type === type && (e.major === "*" || e.major === major) && (e.minor === "*" || e.minor === minor);
  if (state.defaultAllow) return !state.exceptions.some((e) => matches(e) && (access & e.access) !== 0);
  return state.exceptions.some((e) => matches(e) && (access & ~e.access) === 0);
}

// Opcodes (include/uapi/linux/bpf_common.h, bpf.h): class | op | source.
const LDX_MEM_W = 0x61; // BPF_LDX | BPF_MEM | BPF_W
const ALU32_AND_K = 0x54; // BPF_ALU | BPF_AND | BPF_K
const ALU32_RSH_K = 0x74; // BPF_ALU | BPF_RSH | BPF_K
const ALU32_MOV_X = 0xbc; // BPF_ALU | BPF_MOV | BPF_X
const ALU64_MOV_K = 0xb7; // BPF_ALU64 | BPF_MOV | BPF_K
const JNE_K = 0x55; // BPF_JMP | BPF_JNE | BPF_K
const JNE_X = 0x5d; // BPF_JMP | BPF_JNE | BPF_X
const JEQ_K = 0x15; // BPF_JMP | BPF_JEQ | BPF_K
const EXIT = 0x95; // BPF_JMP | BPF_EXIT

/** One instruction before encoding; `next` jumps go to the start of the following block. */
type Insn = { code: number; dst: number; src?: number; off?: number | "next"; imm?: number };

/** A major or minor as a jump immediate, which the kernel sign-extends: 0 to 2^31-1. */
function immediate(n: number, what: string): number {
  if (Number.isInteger(n) && n >= 0 && n <= 0x7fffffff) return n;
  throw invalidArgument(`device rule ${what} ${n}`, { detail: "out of range" });
}

/** The instructions of one exception: mismatch -> next block, match -> return the opposite of the default. */
function exceptionBlock(e: DeviceException, defaultAllow: boolean): Insn[] {
  return [
    { code: JNE_K, dst: 2, off: "next", imm: e.type === "b" ? DEV_BLOCK : DEV_CHAR },
    ...(e.major === "*" ? [] : [{ code: JNE_K, dst: 4, off: "next" as const, imm: immediate(e.major, "major") }]),
    ...(e.minor === "*" ? [] : [{ code: JNE_K, dst: 5, off: "next" as const, imm: immediate(e.minor, "minor") }]),
    { code: ALU32_MOV_X, dst: 1, src: 3 }, // r1 = access & exception's access
    { code: ALU32_AND_K, dst: 1, imm: e.access },
    defaultAllow
      ? { code: JEQ_K, dst: 1, off: "next", imm: 0 } // no overlap: not this exception
      : { code: JNE_X, dst: 1, src: 3, off: "next" }, // not a subset: not this exception
    { code: ALU64_MOV_K, dst: 0, imm: defaultAllow ? 0 : 1 },
    { code: EXIT, dst: 0 },
  ];
}

/** The BPF_PROG_TYPE_CGROUP_DEVICE program that decides as the v1 state does, as raw struct bpf_insn bytes. */
export function deviceFilterProgram(state: DeviceState): Uint8Array {
  const insns: Insn[] = [
    { code: LDX_MEM_W, dst: 2, src: 1, off: 0 }, // r2 = ctx->access_type
    { code: ALU32_AND_K, dst: 2, imm: 0xffff }, //    & 0xffff: the type
    { code: LDX_MEM_W, dst: 3, src: 1, off: 0 }, // r3 = ctx->access_type
    { code: ALU32_RSH_K, dst: 3, imm: 16 }, //        >> 16: the access
    { code: LDX_MEM_W, dst: 4, src: 1, off: 4 }, // r4 = ctx->major
    { code: LDX_MEM_W, dst: 5, src: 1, off: 8 }, // r5 = ctx->minor
  ];
  for (const e of state.exceptions) {
    const block = exceptionBlock(e, state.defaultAllow);
    insns.push(...block.map((insn, i) => (insn.off === "next" ? { ...insn, off: block.length - i - 1 } : insn)));
  }
  insns.push({ code: ALU64_MOV_K, dst: 0, imm: state.defaultAllow ? 1 : 0 }, { code: EXIT, dst: 0 });

  // struct bpf_insn { u8 code; u8 dst_reg:4, src_reg:4; s16 off; s32 imm } (little-endian bitfields).
  const out = new Uint8Array(insns.length * 8);
  const v = new DataView(out.buffer);
  insns.forEach((insn, i) => {
    v.setUint8(i * 8, insn.code);
    v.setUint8(i * 8 + 1, ((insn.src ?? 0) << 4) | insn.dst);
    v.setInt16(i * 8 + 2, insn.off === "next" ? 0 : (insn.off ?? 0), true);
    v.setInt32(i * 8 + 4, insn.imm ?? 0, true);
  });
  return out;
}

/**
 * Attaches the program for the rules to the cgroup v2 directory cgroupDir (BPF_F_ALLOW_MULTI, as runc does), then
 * detaches every other device program attached to that directory itself, as runc does: a retried restore into an
 * existing cgroup replaces the earlier rules instead of stacking them (the kernel allows only what all programs
 * allow). The new program goes on first, so the cgroup is never without a filter.
 */
export function applyV2DeviceRules(cgroupDir: string, rules: readonly DeviceRule[]): void {
  let progFd = -1;
  let dirFd = -1;
  try {
    const program = deviceFilterProgram(emulateV1Devices(rules));
    progFd = bpfProgLoad(program, { type: BPF_PROG_TYPE_CGROUP_DEVICE, license: "Apache-2.0", logSize: 64 * 1024, name: "cryo_devices" });
    dirFd = openSync(cgroupDir, constants.O_RDONLY | constants.O_DIRECTORY);
    bpfProgAttach(dirFd, progFd, BPF_CGROUP_DEVICE, BPF_F_ALLOW_MULTI);
    const ours = bpfProgId(progFd);
    for (const id of bpfProgQuery(dirFd, BPF_CGROUP_DEVICE).ids) {
      if (id === ours) continue;
      const old = bpfProgGetFdById(id);
      try {
        bpfProgDetach(dirFd, old, BPF_CGROUP_DEVICE);
      } finally {
        close(old);
      }
    }
  } catch (err) {
    throw CryoError.from(err).wrap(`devices cgroup ${cgroupDir}`);
  } finally {
    // The attachment holds its own reference to the program.
    if (dirFd >= 0) closeSync(dirFd);
    if (progFd >= 0) close(progFd);
  }
}
