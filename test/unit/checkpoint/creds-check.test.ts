import { create } from "@bufbuild/protobuf";
import { expect, test } from "bun:test";
import { checkThreadCreds, type CredsSpec, type ThreadCore } from "../../../src/checkpoint/creds-check.ts";
import { capabilityNumbers } from "../../../src/criu/capabilities.ts";
import { CoreEntrySchema, SeccompMode } from "../../../src/gen/criu/core_pb.ts";
import { SeccompFilterSchema, type SeccompFilter } from "../../../src/gen/criu/seccomp_pb.ts";
import { allowList, encode, ret, ALLOW } from "../seccomp/asm.ts";

// containerd's default capabilities: CHOWN DAC_OVERRIDE FSETID FOWNER MKNOD NET_RAW SETGID SETUID SETFCAP SETPCAP
// NET_BIND_SERVICE SYS_CHROOT KILL AUDIT_WRITE, as CRIU stores them (two 32-bit words).
const DEFAULT_CAPS = ["CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD", "CAP_NET_RAW", "CAP_SETGID", "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP", "CAP_NET_BIND_SERVICE", "CAP_SYS_CHROOT", "CAP_KILL", "CAP_AUDIT_WRITE"];
const DEFAULT_WORDS = [(1 << 0) | (1 << 1) | (1 << 4) | (1 << 3) | (1 << 27) | (1 << 13) | (1 << 6) | (1 << 7) | (1 << 31) | (1 << 8) | (1 << 10) | (1 << 18) | (1 << 5) | (1 << 29), 0];
const spec = (over: Partial<CredsSpec["process"]> = {}, linux?: CredsSpec["linux"]): CredsSpec => ({
  process: { capabilities: { bounding: DEFAULT_CAPS, effective: DEFAULT_CAPS, permitted: DEFAULT_CAPS }, noNewPrivileges: true, ...over },
  ...(linux ? { linux } : {}),
});

function thread(creds: Record<string, unknown> | undefined, extra: { seccompMode?: SeccompMode; seccompFilter?: number; tid?: number } = {}): ThreadCore {
  const core = create(CoreEntrySchema, {
    mtype: 1,
    tc: { taskState: 1, comm: "sh" },
    threadCore: { ...(creds ? { creds: { capBnd: DEFAULT_WORDS, capPrm: DEFAULT_WORDS, capEff: DEFAULT_WORDS, capInh: [0, 0], capAmb: [0, 0], noNewPrivs: 1, ...creds } } : {}), seccompMode: extra.seccompMode ?? SeccompMode.DISABLED, ...(extra.seccompFilter !== undefined ? { seccompFilter: extra.seccompFilter } : {}) },
  });
  return { pid: 1, tid: extra.tid ?? 1, core };
}

const refused = (threads: ThreadCore[], s: CredsSpec, filters: SeccompFilter[] = []) => {
  try {
    checkThreadCreds(threads, s, "restore container c1 from /ck", () => filters);
  } catch (err) {
    return (err as Error).message;
  }
  return "accepted";
};

test("capability words to numbers", () => {
  expect(capabilityNumbers([0b101, 1])).toEqual([0, 2, 32]);
  expect(capabilityNumbers(DEFAULT_WORDS).length).toBe(14);
});

test("a tree with the spec's capabilities, no_new_privs and no seccomp profile is accepted", () => {
  expect(refused([thread({}), thread({ capEff: [0, 0], capPrm: [1 << 5, 0] }, { tid: 2 })], spec())).toBe("accepted");
});

test("capabilities beyond the spec's, missing credentials, no_new_privs off, seccomp off: refused, naming the thread", () => {
  const sysAdmin = [DEFAULT_WORDS[0]! | (1 << 21), 0];
  expect(refused([thread({ capBnd: sysAdmin })], spec())).toBe(
    "restore container c1 from /ck: invalid argument: task 1: its bounding capabilities hold CAP_SYS_ADMIN, which the spec's bounding set does not grant",
  );
  expect(refused([thread({}), thread({ capEff: [0, 1 << (40 - 32)] }, { tid: 7 })], spec())).toContain("thread 7 of task 1: its effective capabilities hold CAP_CHECKPOINT_RESTORE, which the spec's capabilities do not grant");
  expect(refused([thread({ capAmb: [1 << 16, 0] })], spec())).toContain("its ambient capabilities hold CAP_SYS_MODULE");
  // A spec without NET_RAW refuses a tree that still has it.
  const noRaw = DEFAULT_CAPS.filter((c) => c !== "CAP_NET_RAW");
  expect(refused([thread({})], spec({ capabilities: { bounding: noRaw, effective: noRaw, permitted: noRaw } }))).toContain("its bounding capabilities hold CAP_NET_RAW");
  // No capabilities in the spec at all: none in the tree.
  expect(refused([thread({})], spec({ capabilities: undefined }))).toContain("CAP_CHOWN");
  expect(refused([thread(undefined)], spec())).toContain("task 1: its core image has no credentials");
  expect(refused([{ pid: 3, tid: 3, core: undefined }], spec())).toContain("task 3: no core-3.img");
  expect(refused([thread({ noNewPrivs: 0 })], spec())).toContain("no_new_privs is off, and the spec sets noNewPrivileges");
  expect(refused([thread({ noNewPrivs: 0 })], spec({ noNewPrivileges: false }))).toBe("accepted");
  expect(refused([thread({})], spec({}, { seccomp: { defaultAction: "SCMP_ACT_ERRNO" } }))).toContain("it has no seccomp filter, and the spec has a seccomp profile");
  expect(refused([thread({}, { seccompMode: SeccompMode.FILTER })], spec({}, { seccomp: { defaultAction: "SCMP_ACT_ERRNO" } }))).toContain("task 1: its core image names no seccomp filter");
});

test("zombies are skipped; no_new_privs unrecorded; the spec's uid and gid held where they cannot change; seccomp {} is none", () => {
  const zombie: ThreadCore = { pid: 5, tid: 5, core: create(CoreEntrySchema, { mtype: 1, tc: { taskState: 2, comm: "defunct" } }) };
  expect(refused([thread({}), zombie], spec())).toBe("accepted");
  // An image from a CRIU that did not record no_new_privs (older than 3.19).
  const old = thread({});
  delete (old.core!.threadCore!.creds as { noNewPrivs?: number }).noNewPrivs;
  expect(refused([old], spec())).toContain("its image does not record no_new_privs (taken by a CRIU older than 3.19)");
  // A "restricted" spec: uid 1000, noNewPrivileges, no CAP_SETUID or CAP_SETGID.
  const few = ["CAP_NET_BIND_SERVICE"];
  const restricted = spec({ user: { uid: 1000, gid: 1000 }, capabilities: { bounding: few, effective: few, permitted: few } });
  const none = { capBnd: [1 << 10, 0], capPrm: [0, 0], capEff: [0, 0] };
  expect(refused([thread({ ...none, uid: 1000, euid: 1000, suid: 1000, fsuid: 1000, gid: 1000, egid: 1000, sgid: 1000, fsgid: 1000 })], restricted)).toBe("accepted");
  expect(refused([thread({ ...none, uid: 1000, euid: 0, suid: 1000, fsuid: 0, gid: 1000, egid: 1000, sgid: 1000, fsgid: 1000 })], restricted)).toContain(
    "task 1: its uids are 1000/0/1000/0, and the spec runs it as uid 1000 with noNewPrivileges and without CAP_SETUID",
  );
  expect(refused([thread({ ...none, uid: 1000, euid: 1000, suid: 1000, fsuid: 1000, gid: 0, egid: 1000, sgid: 1000, fsgid: 1000 })], restricted)).toContain("its gids are 0/1000/1000/1000");
  // With CAP_SETUID granted, or without noNewPrivileges, a task may have changed them.
  expect(refused([thread({ uid: 33, euid: 33, suid: 33, fsuid: 33 })], spec({ user: { uid: 1000, gid: 1000 } }))).toBe("accepted");
  expect(refused([thread({ ...none, uid: 0, euid: 0, suid: 0, fsuid: 0, noNewPrivs: 0 })], spec({ user: { uid: 1000, gid: 1000 }, noNewPrivileges: false, capabilities: { bounding: few, effective: few, permitted: few } }))).toBe("accepted");
  expect(refused([thread({})], spec({}, { seccomp: {} }))).toBe("accepted");
});

test("seccomp filters: each thread's chain in seccomp.img must deny what the profile denies outright", () => {
  const profile = { seccomp: { defaultAction: "SCMP_ACT_ERRNO", syscalls: [{ names: ["read", "write", "exit"], action: "SCMP_ACT_ALLOW" }] } };
  const filter = (insns: Parameters<typeof encode>[0], prev?: number) => create(SeccompFilterSchema, { filter: encode(insns), ...(prev !== undefined ? { prev } : {}) });
  const strict = filter(allowList([0, 1, 60]));
  const open = filter([ret(ALLOW)]);
  // Thread 1 with the strict filter; thread 2 with a permissive one installed on top of it (prev: 0).
  const filters = [strict, filter([ret(ALLOW)], 0), open];
  const t1 = thread({}, { seccompMode: SeccompMode.FILTER, seccompFilter: 0 });
  const t2 = thread({}, { seccompMode: SeccompMode.FILTER, seccompFilter: 1, tid: 2 });
  expect(refused([t1, t2], spec({}, profile), filters)).toBe("accepted");
  // A thread whose only filter allows everything.
  expect(refused([t1, thread({}, { seccompMode: SeccompMode.FILTER, seccompFilter: 2, tid: 3 })], spec({}, profile), filters)).toBe(
    "restore container c1 from /ck: invalid argument: thread 3 of task 1: its seccomp filters let open (x86_64) run, which the spec's seccomp profile denies",
  );
  // Indexes outside seccomp.img, a loop, a filter that is not whole instructions.
  expect(refused([thread({}, { seccompMode: SeccompMode.FILTER, seccompFilter: 9 })], spec({}, profile), filters)).toContain("task 1: its seccomp filter 9 is not in seccomp.img (3 filters)");
  expect(refused([thread({}, { seccompMode: SeccompMode.FILTER, seccompFilter: 1 })], spec({}, profile), [filter([ret(ALLOW)], 1), filter([ret(ALLOW)], 0)])).toContain("its seccomp filters form a loop at filter 1");
  expect(refused([t1], spec({}, profile), [create(SeccompFilterSchema, { filter: new Uint8Array(5) })])).toContain("seccomp.img filter 0: invalid argument: a seccomp filter of 5 bytes");
  // Without a profile the filters are not read.
  expect(refused([thread({}, { seccompMode: SeccompMode.FILTER, seccompFilter: 2 })], spec(), filters)).toBe("accepted");
});

test("threads with the leader's filters: CRIU records them on the leader, flagged TSYNC, and seccomp off on the others; accepted when the leader's chain is", () => {
  const profile = { seccomp: { defaultAction: "SCMP_ACT_ERRNO", syscalls: [{ names: ["read", "write", "exit"], action: "SCMP_ACT_ALLOW" }] } };
  const filter = (insns: Parameters<typeof encode>[0], flags: number, prev?: number) => create(SeccompFilterSchema, { filter: encode(insns), flags, ...(prev !== undefined ? { prev } : {}) });
  const leader = (last: number) => thread({}, { seccompMode: SeccompMode.FILTER, seccompFilter: last });
  const off = (tid: number) => thread({}, { tid });
  // As the dump of `threads 4 tsync` under `ctr run --seccomp` has them: the profile's filter, then the program's, both TSYNC.
  const tsynced = [filter(allowList([0, 1, 60]), 1), filter([ret(ALLOW)], 1, 0)];
  expect(refused([leader(1), off(6), off(7)], spec({}, profile), tsynced)).toBe("accepted");
  // Only the oldest filter is TSYNC: the threads get it alone, which is checked (and here the strict one).
  expect(refused([leader(1), off(6)], spec({}, profile), [filter(allowList([0, 1, 60]), 1), filter([ret(ALLOW)], 0, 0)])).toBe("accepted");
  // The TSYNC part of the leader's chain allows what the profile denies: the thread is named.
  expect(refused([thread({}, { seccompMode: SeccompMode.FILTER, seccompFilter: 1 }), off(6)], spec({}, profile), [filter([ret(ALLOW)], 1), filter(allowList([0, 1, 60]), 0, 0)])).toBe(
    "restore container c1 from /ck: invalid argument: thread 6 of task 1: its seccomp filters let open (x86_64) run, which the spec's seccomp profile denies",
  );
  // No TSYNC filter in the leader's chain, a leader without filters, or the leader itself without: refused as before.
  expect(refused([leader(1), off(6)], spec({}, profile), [filter(allowList([0, 1, 60]), 0), filter([ret(ALLOW)], 0, 0)])).toContain("thread 6 of task 1: it has no seccomp filter, and the spec has a seccomp profile");
  expect(refused([off(1), off(6)], spec({}, profile), tsynced)).toContain("task 1: it has no seccomp filter");
  expect(refused([leader(1), { ...off(6), pid: 2 }], spec({}, profile), tsynced)).toContain("thread 6 of task 2: it has no seccomp filter");
});

test("a checkpoint without pstree.img is refused as not a whole CRIU dump, naming the file", async () => {
  const { mkdtempSync, rmSync } = await import("node:fs");
  const { readThreadCores } = await import("../../../src/checkpoint/creds-check.ts");
  const d = mkdtempSync("/tmp/cryo-nopstree-");
  try {
    expect(() => readThreadCores(d)).toThrow(`checkpoint ${d}: invalid argument: it has no pstree.img: not a whole CRIU dump`);
  } finally {
    rmSync(d, { recursive: true, force: true });
  }
});
