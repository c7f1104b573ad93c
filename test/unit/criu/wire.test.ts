// wire.ts checks the helper protocol's lines by hand (the helper loads no zod); these tests hold it in
// step with the zod schemas of options.ts and protocol.ts, which stay the reference.
import { describe, expect, test } from "bun:test";
import { Code, CryoError } from "../../../src/errors.ts";
import { criuOptsSchema } from "../../../src/criu/options.ts";
import { helperMessageSchema, helperRequestSchema, replyMessageSchema } from "../../../src/criu/protocol.ts";
import { checkHelperMessage, checkHelperRequest, checkReply, CRIU_OPTS_FIELDS, criuOptsProblem } from "../../../src/criu/wire.ts";

const full = {
  imagesDir: "/i",
  workDir: "/w",
  parentImages: "../p",
  pid: 42,
  root: "/r",
  leaveRunning: true,
  leaveStopped: false,
  tcpEstablished: true,
  tcpClose: false,
  tcpSkipInFlight: true,
  extUnixSk: true,
  unixSkInodes: [0, 12],
  shellJob: true,
  fileLocks: true,
  trackMem: false,
  autoDedup: false,
  linkRemap: true,
  forceIrmap: true,
  irmapPaths: ["/etc"],
  evasiveDevices: true,
  weakSysctls: true,
  orphanPtsMaster: true,
  skipFileRwxCheck: true,
  manageCgroups: true,
  manageCgroupsMode: "soft",
  freezeCgroup: "/sys/fs/cgroup/freezer/x",
  cgRoots: [{ controller: "", path: "/a" }, { path: "/b" }],
  cgYard: "/y",
  cgDumpControllers: ["cpu"],
  cgProps: "",
  cgPropsFile: "/p",
  emptyNs: ["net"],
  joinNs: [{ ns: "net", file: "/proc/1/ns/net", extra: "x" }],
  lsmProfile: "apparmor:x",
  lsmMountContext: "ctx",
  extMounts: [{ key: "/etc/hosts", value: "/etc/hosts" }],
  autoExtMnt: true,
  extSharing: true,
  extMasters: true,
  external: ["mnt[/m]:m"],
  vethPairs: [{ inside: "eth0", outside: "veth0" }],
  inheritFds: [{ fd: 3, key: "pipe:[1]" }],
  skipMounts: ["/proc/kcore"],
  enableFs: ["hugetlbfs"],
  ghostLimit: 0,
  timeout: 10,
  preDumpMode: "read",
  networkLock: "nftables",
  pageServer: { address: "10.0.0.1", port: 0 },
  mntnsCompatMode: true,
  lazyPages: true,
  displayStats: true,
  logLevel: 4,
  logFile: "dump.log",
  configFile: "/c.conf",
  configExtra: { "file-validation": "buildid", "ghost-fiemap": true },
  serviceBinary: "/usr/local/sbin/criu",
};

/** Options each of which one schema must refuse (one bad field each). */
const badOpts: Record<string, unknown>[] = [
  {},
  { imagesDir: "" },
  { imagesDir: 1 },
  { imagesDir: "/i", bogus: true },
  { imagesDir: "/i", pid: 0 },
  { imagesDir: "/i", pid: 1.5 },
  { imagesDir: "/i", pid: "1" },
  { imagesDir: "/i", leaveRunning: "yes" },
  { imagesDir: "/i", unixSkInodes: [-1] },
  { imagesDir: "/i", irmapPaths: ["x".repeat(4097)] },
  { imagesDir: "/i", irmapPaths: "/etc" },
  { imagesDir: "/i", manageCgroupsMode: "sometimes" },
  { imagesDir: "/i", cgRoots: [{ controller: "cpu" }] },
  { imagesDir: "/i", cgRoots: [{ path: "" }] },
  { imagesDir: "/i", emptyNs: ["pid"] },
  { imagesDir: "/i", joinNs: [{ ns: "disk", file: "/f" }] },
  { imagesDir: "/i", joinNs: [{ ns: "net" }] },
  { imagesDir: "/i", extMounts: [{ key: "/a" }] },
  { imagesDir: "/i", vethPairs: [{ inside: "", outside: "v" }] },
  { imagesDir: "/i", inheritFds: [{ fd: -1, key: "k" }] },
  { imagesDir: "/i", inheritFds: [{ fd: 3, key: "" }] },
  { imagesDir: "/i", ghostLimit: -1 },
  { imagesDir: "/i", timeout: 0 },
  { imagesDir: "/i", preDumpMode: "mmap" },
  { imagesDir: "/i", networkLock: "none" },
  { imagesDir: "/i", pageServer: { address: "a", port: 65536 } },
  { imagesDir: "/i", pageServer: { address: "a" } },
  { imagesDir: "/i", logLevel: 5 },
  { imagesDir: "/i", configExtra: { "--evil\nx": true } },
  { imagesDir: "/i", configExtra: { Upper: true } },
  { imagesDir: "/i", configExtra: { ok: false } },
  { imagesDir: "/i", configExtra: { ok: 1 } },
  { imagesDir: "/i", configExtra: [] },
  { imagesDir: "/i", serviceBinary: "" },
];

describe("wire: the helper's hand checks agree with the zod schemas", () => {
  test("the hand check covers exactly criuOptsSchema's fields", () => {
    expect(Object.keys(CRIU_OPTS_FIELDS).sort()).toEqual(Object.keys(criuOptsSchema.shape).sort());
    // every field is exercised by the sample below
    expect(Object.keys(full).sort()).toEqual(Object.keys(criuOptsSchema.shape).sort());
  });

  test("valid options pass both", () => {
    expect(criuOptsSchema.safeParse(full).success).toBe(true);
    expect(criuOptsProblem(full)).toBeUndefined();
    expect(criuOptsProblem({ imagesDir: "/i" })).toBeUndefined();
  });

  test.each(badOpts.map((o) => [JSON.stringify(o), o] as const))("both refuse %s", (_name, o) => {
    expect(criuOptsSchema.safeParse(o).success).toBe(false);
    expect(criuOptsProblem(o)).toBeString();
  });

  test("requests: valid and invalid ones, with the first bad field named", () => {
    const requests: [unknown, boolean][] = [
      [{ op: "dump", opts: { imagesDir: "/i", pid: 1 }, waitFor: ["network-lock"], notify: false, reportVersion: true, copyLogsTo: "/c" }, true],
      [{ op: "restore", opts: full, restoreChild: false, joinCgroups: ["/sys/fs/cgroup/x"], inheritFrom: 7 }, true],
      [{ op: "version" }, true],
      [{ op: "format-disk" }, false],
      [{ op: "dump", waitFor: ["not-an-action"] }, false],
      [{ op: "dump", extra: 1 }, false],
      [{ op: "restore", joinCgroups: [""] }, false],
      [{ op: "restore", inheritFrom: 0 }, false],
      [{ op: "dump", opts: { imagesDir: "/i", pid: -1 } }, false],
      [{ opts: { imagesDir: "/i" } }, false],
      ["dump", false],
      [null, false],
    ];
    for (const [req, ok] of requests) {
      expect([req, helperRequestSchema.safeParse(req).success]).toEqual([req, ok]);
      let error: unknown;
      try {
        expect(checkHelperRequest(req)).toBe(req as never);
      } catch (err) {
        error = err;
      }
      expect([req, error === undefined]).toEqual([req, ok]);
      if (!ok) {
        expect(error).toBeInstanceOf(CryoError);
        expect((error as CryoError).code).toBe(Code.INVALID_ARGUMENT);
        expect((error as CryoError).message).toStartWith("criu helper request: invalid argument: request");
      }
    }
    expect(() => checkHelperRequest({ op: "dump", opts: { imagesDir: "/i", pid: -1 } })).toThrow("request.opts.pid: expected an integer in 1..");
  });

  test("helper messages and replies", () => {
    const lines: unknown[] = [
      { type: "calling" },
      { type: "calling", extra: 1 },
      { type: "calling", seq: "x" },
      { type: "notify", seq: 1, action: "pre-dump", pid: 0, wait: false, helperPid: 9 },
      { type: "notify", seq: 2, action: "orphan-pts-master", pid: 5, wait: true, fd: 7, helperPid: 9 },
      { type: "notify", seq: 2, action: "x", pid: 5, wait: "yes", helperPid: 9 },
      { type: "notify", seq: 1, action: "pre-dump", pid: 0, wait: false },
      { type: "result", ok: true, op: "restore", rc: 42, errno: 0, logErrors: [], durationMs: 1.5, idleMs: 3, criuVersion: 40201 },
      { type: "result", ok: false, op: "dump", rc: -52, errno: 28, logFile: "/l", logErrors: ["e"], refusedBy: "post-dump", code: 8, message: "m", durationMs: 1 },
      { type: "result", ok: true, op: "features", rc: 0, errno: 0, logErrors: [], durationMs: 1, features: { memTrack: false, lazyPages: true, pidfdStore: true } },
      { type: "result", ok: true, op: "features", rc: 0, errno: 0, logErrors: [], durationMs: 1, features: { memTrack: false } },
      { type: "result", ok: true, op: "erase", rc: 0, errno: 0, logErrors: [], durationMs: 1 },
      { type: "result", ok: true, op: "dump", rc: 0, errno: 0, durationMs: 1 },
      { type: "other" },
      [],
      "result",
    ];
    for (const line of lines) {
      expect([line, checkHelperMessage(line) !== undefined]).toEqual([line, helperMessageSchema.safeParse(line).success]);
    }
    const replies: unknown[] = [
      { type: "reply", seq: 2, ok: true },
      { type: "reply", seq: 2, ok: false, message: "no" },
      { type: "reply", seq: "2", ok: true },
      { type: "reply", seq: 2 },
      { type: "notify", seq: 2, ok: true },
    ];
    for (const r of replies) expect([r, checkReply(r) !== undefined]).toEqual([r, replyMessageSchema.safeParse(r).success]);
  });
});
