/**
 * A spec's seccomp profile as runc keeps it in its state.json (libcontainer's configs.Seccomp, which runc's
 * specconv builds from the OCI `linux.seccomp` at create): `runc exec` installs this filter in every process it
 * starts in the container. A restored container's state.json is written by cryo (restore-state-file.ts); its
 * filter comes from the new spec through this conversion, never from the checkpoint, whose runc config could
 * carry none.
 *
 * The numbering is libcontainer's: actions Kill 1, Errno 2, Trap 3, Allow 4, Trace 5, Log 6, Notify 7,
 * KillThread 8, KillProcess 9; operators EqualTo 1, NotEqualTo 2, GreaterThan 3, GreaterThanOrEqualTo 4,
 * LessThan 5, LessThanOrEqualTo 6, MaskEqualTo 7; architectures by Go's names. An action, operator or
 * architecture runc would not know is refused, as runc refuses it.
 */
import * as z from "zod/mini";
import { invalidArgument } from "../errors.ts";
import { parseDetail } from "../runtime/schema-detail.ts";

const ACTIONS: Record<string, number> = {
  SCMP_ACT_KILL: 1,
  SCMP_ACT_ERRNO: 2,
  SCMP_ACT_TRAP: 3,
  SCMP_ACT_ALLOW: 4,
  SCMP_ACT_TRACE: 5,
  SCMP_ACT_LOG: 6,
  SCMP_ACT_NOTIFY: 7,
  SCMP_ACT_KILL_THREAD: 8,
  SCMP_ACT_KILL_PROCESS: 9,
};
const OPERATORS: Record<string, number> = {
  SCMP_CMP_EQ: 1,
  SCMP_CMP_NE: 2,
  SCMP_CMP_GT: 3,
  SCMP_CMP_GE: 4,
  SCMP_CMP_LT: 5,
  SCMP_CMP_LE: 6,
  SCMP_CMP_MASKED_EQ: 7,
};
const ARCHES: Record<string, string> = {
  SCMP_ARCH_X86: "x86",
  SCMP_ARCH_X86_64: "amd64",
  SCMP_ARCH_X32: "x32",
  SCMP_ARCH_ARM: "arm",
  SCMP_ARCH_AARCH64: "arm64",
  SCMP_ARCH_MIPS: "mips",
  SCMP_ARCH_MIPS64: "mips64",
  SCMP_ARCH_MIPS64N32: "mips64n32",
  SCMP_ARCH_MIPSEL: "mipsel",
  SCMP_ARCH_MIPSEL64: "mipsel64",
  SCMP_ARCH_MIPSEL64N32: "mipsel64n32",
  SCMP_ARCH_PPC: "ppc",
  SCMP_ARCH_PPC64: "ppc64",
  SCMP_ARCH_PPC64LE: "ppc64le",
  SCMP_ARCH_RISCV64: "riscv64",
  SCMP_ARCH_S390: "s390",
  SCMP_ARCH_S390X: "s390x",
};

const known = (table: Record<string, unknown>, what: string) => z.string().check(z.refine((v) => v in table, { message: `unknown ${what}` }));
const uint = z.number().check(z.int(), z.minimum(0));

/** `linux.seccomp` as runc reads it (OCI runtime spec, config-linux.md "Seccomp"). */
const specSeccompSchema = z.object({
  defaultAction: known(ACTIONS, "action"),
  defaultErrnoRet: z.optional(uint),
  architectures: z.optional(z.nullable(z.array(known(ARCHES, "architecture")))),
  flags: z.optional(z.nullable(z.array(z.string()))),
  listenerPath: z.optional(z.string()),
  listenerMetadata: z.optional(z.string()),
  syscalls: z.optional(
    z.nullable(
      z.array(
        z.object({
          names: z.array(z.string()),
          action: known(ACTIONS, "action"),
          errnoRet: z.optional(uint),
          args: z.optional(z.nullable(z.array(z.object({ index: uint, value: uint, valueTwo: z.optional(uint), op: known(OPERATORS, "operator") })))),
        }),
      ),
    ),
  ),
});

/**
 * The configs.Seccomp JSON runc would keep for the spec's `linux.seccomp`, or null when there is none (absent,
 * null, or without a default action, as runc treats it).
 */
export function runcSeccompConfig(value: unknown, where: string): Record<string, unknown> | null {
  if (value === undefined || value === null) return null;
  if (typeof value === "object" && !(value as { defaultAction?: unknown }).defaultAction) return null;
  const r = parseDetail(specSeccompSchema, value, "linux.seccomp");
  if (!r.ok) throw invalidArgument(`${where}: the bundle's spec`, { detail: r.detail.replace(/^(?!linux\.seccomp)/, "linux.seccomp.") });
  const s = r.data;
  const out: Record<string, unknown> = {
    default_action: ACTIONS[s.defaultAction],
    architectures: (s.architectures ?? []).map((a) => ARCHES[a]),
    syscalls: (s.syscalls ?? []).flatMap((rule) =>
      rule.names.map((name) => ({
        name,
        action: ACTIONS[rule.action],
        errnoRet: rule.errnoRet ?? null,
        args: (rule.args ?? []).map((a) => ({ index: a.index, value: a.value, value_two: a.valueTwo ?? 0, op: OPERATORS[a.op] })),
      })),
    ),
    default_errno_ret: s.defaultErrnoRet ?? null,
  };
  if (s.flags && s.flags.length > 0) out.flags = s.flags;
  if (s.listenerPath) out.listener_path = s.listenerPath;
  if (s.listenerMetadata) out.listener_metadata = s.listenerMetadata;
  return out;
}
