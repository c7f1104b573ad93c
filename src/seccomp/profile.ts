/**
 * A spec's seccomp profile against a dumped thread's seccomp filters: does every system call the profile
 * denies, whatever its arguments, stay denied by the filters CRIU would restore?
 *
 * The profile (OCI `linux.seccomp`) denies a call outright when
 * - its default action denies (SCMP_ACT_ERRNO, _KILL, _KILL_THREAD, _KILL_PROCESS, _TRAP) and no rule lets the
 *   call run under any arguments (a rule naming it with SCMP_ACT_ALLOW, _LOG, _TRACE or _NOTIFY, or with
 *   an action this module does not know), or
 * - its default action lets calls run and a rule without argument conditions denies the call, and no rule lets
 *   it run.
 * Calls a rule allows only for some arguments are not checked: runc's filter for them depends on the
 * arguments, and telling a permissive filter from runc's would take the profile's compilation.
 *
 * The thread's filters form a chain (the last installed first); the kernel runs all of them and the most
 * restrictive answer wins, so a call stays denied when one filter of the chain denies it for every argument
 * (bpf.ts returnsByNr). Checked for each ABI a task of the host can call with: on x86_64 the x86_64, x32
 * and i386 numbers (a task can make 32-bit calls through int 0x80). Other architectures have no table here:
 * their filters are not checked.
 */
import * as z from "zod/mini";
import { invalidArgument } from "../errors.ts";
import { parseDetail } from "../runtime/schema-detail.ts";
import { checkFilter, mayRun, returnsByNr, type SockFilter } from "./bpf.ts";
import { I386, X32, X86_64 } from "./syscall-table.ts";

/** An ABI the kernel runs calls of: its AUDIT_ARCH_* value and its call numbers by name. */
export interface Abi {
  name: string;
  arch: number;
  calls: Map<string, number>;
}

const AUDIT_ARCH_X86_64 = 0xc000003e;
const AUDIT_ARCH_I386 = 0x40000003;

const table = (pairs: string) => new Map(pairs.split(" ").map((p) => [p.slice(0, p.indexOf("=")), Number(p.slice(p.indexOf("=") + 1))] as const));

let x86Abis: Abi[] | undefined;

/** The ABIs a task on this host's architecture can call with; undefined where there is no table. */
export function hostAbis(arch: string = process.arch): Abi[] | undefined {
  if (arch !== "x64") return undefined;
  return (x86Abis ??= [
    { name: "x86_64", arch: AUDIT_ARCH_X86_64, calls: table(X86_64) },
    { name: "x32", arch: AUDIT_ARCH_X86_64, calls: table(X32) },
    { name: "i386", arch: AUDIT_ARCH_I386, calls: table(I386) },
  ]);
}

const DENY = new Set(["SCMP_ACT_KILL", "SCMP_ACT_KILL_PROCESS", "SCMP_ACT_KILL_THREAD", "SCMP_ACT_TRAP", "SCMP_ACT_ERRNO"]);

/** The parts of `linux.seccomp` read here (OCI runtime spec, config-linux.md "Seccomp"). */
const profileSchema = z.object({
  defaultAction: z.string(),
  syscalls: z.optional(
    z.array(
      z.object({
        names: z.array(z.string()),
        action: z.string(),
        args: z.optional(z.nullable(z.array(z.unknown()))),
      }),
    ),
  ),
});

export type SeccompProfile = z.output<typeof profileSchema>;

/** The profile in the spec's `linux.seccomp`, or undefined when there is none (absent, null, or without a default action, as runc treats it). */
export function specProfile(value: unknown, where: string): SeccompProfile | undefined {
  if (value === undefined || value === null) return undefined;
  if (typeof value === "object" && !("defaultAction" in value && (value as { defaultAction?: unknown }).defaultAction)) return undefined;
  const r = parseDetail(profileSchema, value, "linux.seccomp");
  if (!r.ok) throw invalidArgument(`${where}: the bundle's spec`, { detail: r.detail.replace(/^(?!linux\.seccomp)/, "linux.seccomp.") });
  return r.data;
}

/** The names of `names` that the profile denies whatever the arguments (see the module comment). */
export function deniedOutright(profile: SeccompProfile, names: Iterable<string>): Set<string> {
  const runs = new Set<string>();
  const deniedAlways = new Set<string>();
  for (const rule of profile.syscalls ?? []) {
    const denies = DENY.has(rule.action);
    for (const name of rule.names) {
      if (!denies) runs.add(name);
      else if (!rule.args || rule.args.length === 0) deniedAlways.add(name);
    }
  }
  const out = new Set<string>();
  const defaultDenies = DENY.has(profile.defaultAction);
  for (const name of names) {
    if (runs.has(name)) continue;
    if (defaultDenies || deniedAlways.has(name)) out.add(name);
  }
  return out;
}

/** A call a chain lets run although the profile denies it outright. */
export interface Escape {
  call: string;
  abi: string;
}

/**
 * Checks chains against one profile (see the module comment), remembering each filter's answer by its
 * instructions: the tasks of a tree usually carry copies of one chain, one per thread in seccomp.img.
 */
export class ChainChecker {
  /** Per ABI, the calls the profile denies outright, with their numbers. */
  private readonly denied: { abi: Abi; calls: [string, number][] }[];
  /** A filter's instructions -> per ABI, the numbers of those calls it may let run. */
  private readonly mayRunByFilter = new Map<string, Map<string, Set<number>>>();

  constructor(profile: SeccompProfile, abis: readonly Abi[]) {
    this.denied = abis.map((abi) => ({ abi, calls: [...deniedOutright(profile, abi.calls.keys())].map((c) => [c, abi.calls.get(c)! >>> 0] as [string, number]) }));
  }

  /**
   * The first call the profile denies outright that no filter of the chain denies for every argument, on any
   * of the ABIs; undefined when every such call stays denied. Each filter is checked as the kernel would before
   * installing it (INVALID_ARGUMENT otherwise).
   */
  escape(chain: readonly SockFilter[][], what: string): Escape | undefined {
    const verdicts = chain.map((f, i) => {
      const key = f.map((x) => `${x.code},${x.jt},${x.jf},${x.k}`).join(";");
      let v = this.mayRunByFilter.get(key);
      if (!v) {
        checkFilter(f, `${what}: filter ${i + 1} of ${chain.length}`);
        v = new Map();
        for (const { abi, calls } of this.denied) {
          const runs = new Set<number>();
          for (const [nr, r] of returnsByNr(f, abi.arch, calls.map(([, n]) => n), what)) if (r.unknown || [...r.values].some(mayRun)) runs.add(nr);
          v.set(abi.name, runs);
        }
        this.mayRunByFilter.set(key, v);
      }
      return v;
    });
    for (const { abi, calls } of this.denied) {
      for (const [call, nr] of calls) if (verdicts.every((v) => v.get(abi.name)!.has(nr))) return { call, abi: abi.name };
    }
    return undefined;
  }
}
