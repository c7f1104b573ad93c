/** Linux capabilities as CRIU's images store them (core-<tid>.img, thread_core.creds). */

/** Linux's capabilities by number (include/uapi/linux/capability.h), CAP_ prefix omitted. */
export const CAPABILITIES: readonly string[] = [
  "CHOWN", "DAC_OVERRIDE", "DAC_READ_SEARCH", "FOWNER", "FSETID", "KILL", "SETGID", "SETUID", "SETPCAP", "LINUX_IMMUTABLE",
  "NET_BIND_SERVICE", "NET_BROADCAST", "NET_ADMIN", "NET_RAW", "IPC_LOCK", "IPC_OWNER", "SYS_MODULE", "SYS_RAWIO", "SYS_CHROOT",
  "SYS_PTRACE", "SYS_PACCT", "SYS_ADMIN", "SYS_BOOT", "SYS_NICE", "SYS_RESOURCE", "SYS_TIME", "SYS_TTY_CONFIG", "MKNOD", "LEASE",
  "AUDIT_WRITE", "AUDIT_CONTROL", "SETFCAP", "MAC_OVERRIDE", "MAC_ADMIN", "SYSLOG", "WAKE_ALARM", "BLOCK_SUSPEND", "AUDIT_READ",
  "PERFMON", "BPF", "CHECKPOINT_RESTORE",
];

/** The capability numbers of a CRIU capability set (32-bit words, lowest first). */
export function capabilityNumbers(words: readonly number[]): number[] {
  const out: number[] = [];
  words.forEach((w, i) => {
    for (let bit = 0; bit < 32; bit++) if ((w >>> bit) & 1) out.push(i * 32 + bit);
  });
  return out;
}

/** "CAP_<NAME>" for a capability number ("capability N" beyond the table). */
export function capabilityName(n: number): string {
  return CAPABILITIES[n] ? `CAP_${CAPABILITIES[n]}` : `capability ${n}`;
}

/** The capability numbers an OCI spec list names ("CAP_NET_RAW" or "NET_RAW"); names this table does not know are skipped, as runc skips them. */
export function specCapabilities(list: unknown): Set<number> {
  const out = new Set<number>();
  if (!Array.isArray(list)) return out;
  for (const name of list) {
    const i = typeof name === "string" ? CAPABILITIES.indexOf(name.replace(/^CAP_/, "")) : -1;
    if (i >= 0) out.add(i);
  }
  return out;
}

/** Every capability number any of the spec's `process.capabilities` sets grants. */
export function grantedCapabilities(capabilities: Partial<Record<string, unknown>> | undefined): Set<number> {
  return new Set(Object.values(capabilities ?? {}).flatMap((set) => [...specCapabilities(set)]));
}

/** The number of "CAP_<NAME>". */
export function capabilityNumber(name: string): number {
  const i = CAPABILITIES.indexOf(name.replace(/^CAP_/, ""));
  if (i < 0) throw new Error(`unknown capability ${name}`);
  return i;
}
