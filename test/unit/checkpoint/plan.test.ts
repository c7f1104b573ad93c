import { describe, expect, test } from "bun:test";
import { create } from "@bufbuild/protobuf";
import { anyPack } from "@bufbuild/protobuf/wkt";
import { CheckpointOptionsSchema as RuncOpts } from "../../../src/gen/containerd/runc/options/oci_pb.ts";
import { CgroupMode, CheckpointOptionsSchema as CryoOpts, Compression, NetworkLock } from "../../../src/gen/cryo/v1/options_pb.ts";
import {
  checkCombinations,
  BUILTIN_CHECKPOINT_PLAN,
  CHECKPOINT_ANNOTATIONS,
  checkpointOptionsFromAny,
  isPostCopy,
  networkLockAsked,
  parseCheckpointAnnotations,
  parseSize,
  parseDurationSeconds,
  postCopyPlan,
  resolveCheckpointPlan,
} from "../../../src/checkpoint/index.ts";
import { Code, CryoError } from "../../../src/errors.ts";
import { checkpointPlanSchema } from "../../../src/checkpoint/plan.ts";

function err(fn: () => unknown): CryoError {
  try {
    fn();
  } catch (e) {
    return e as CryoError;
  }
  throw new Error("expected an error");
}

describe("checkpoint plan resolution", () => {
  test("with nothing set, the built-in defaults: leave running, soft cgroups, no compression", () => {
    expect(resolveCheckpointPlan({})).toEqual(BUILTIN_CHECKPOINT_PLAN);
    expect(BUILTIN_CHECKPOINT_PLAN.leaveRunning).toBe(true);
    expect(BUILTIN_CHECKPOINT_PLAN.cgroupMode).toBe("soft");
  });

  test("config < annotations < request", () => {
    const plan = resolveCheckpointPlan({
      defaults: { compression: "zstd", compressionLevel: 3, cgroupMode: "full", tcpEstablished: false },
      annotations: { "cryo.checkpoint/compression-level": "9", "cryo.checkpoint/tcp-established": "true", "cryo.checkpoint/manage-cgroups-mode": "strict", other: "x" },
      request: { kind: "cryo", options: create(CryoOpts, { cgroupMode: CgroupMode.IGNORE }) },
    });
    expect(plan.compression).toBe("zstd"); // config only
    expect(plan.compressionLevel).toBe(9); // annotation beats config
    expect(plan.tcpEstablished).toBe(true); // annotation beats config
    expect(plan.cgroupMode).toBe("ignore"); // request beats annotation
  });

  test("unset request fields fall through to annotations", () => {
    const plan = resolveCheckpointPlan({
      annotations: { "cryo.checkpoint/exit": "true", "cryo.checkpoint/compression": "zstd" },
      request: { kind: "cryo", options: create(CryoOpts, { compression: Compression.UNSPECIFIED }) },
    });
    expect(plan.leaveRunning).toBe(false);
    expect(plan.compression).toBe("zstd");
  });

  test("runc's CheckpointOptions as ctr containers checkpoint --task sends them", () => {
    const plan = resolveCheckpointPlan({
      request: { kind: "runc", options: create(RuncOpts, { fileLocks: true, openTcp: true, terminal: true, externalUnixSockets: true, emptyNamespaces: ["network"], cgroupsMode: "full", exit: true, imagePath: "/img", workPath: "/work", parentPath: "../p" }) },
    });
    expect(plan).toMatchObject({
      fileLocks: true,
      tcpEstablished: true,
      shellJob: true,
      externalUnixSockets: true,
      emptyNamespaces: ["net"],
      cgroupMode: "full",
      leaveRunning: false,
      imagePath: "/img",
      workPath: "/work",
      parentPath: "../p",
    });
  });

  test("bad request values are INVALID_ARGUMENT naming the option", () => {
    const e1 = err(() => resolveCheckpointPlan({ request: { kind: "runc", options: create(RuncOpts, { cgroupsMode: "hard" }) } }));
    expect(e1.code).toBe(Code.INVALID_ARGUMENT);
    expect(e1.message).toContain('cgroups mode "hard"');
    const e2 = err(() => resolveCheckpointPlan({ request: { kind: "runc", options: create(RuncOpts, { emptyNamespaces: ["ipc"] }) } }));
    expect(e2.message).toContain("only network");
    const e3 = err(() => resolveCheckpointPlan({ request: { kind: "cryo", options: create(CryoOpts, { pageServerAddress: "10.0.0.1" }) } }));
    expect(e3.message).toContain("address and port go together");
    const e3b = err(() => resolveCheckpointPlan({ request: { kind: "cryo", options: create(CryoOpts, { pageServerAddress: "10.0.0.1 ", pageServerPort: 27000 }) } }));
    expect(e3b.message).toBe(`cryo checkpoint options: page_server_address: invalid argument: "10.0.0.1 ": want an IPv4 or IPv6 address or a host name (letters, digits, '-' and '.')`);
    const e3c = err(() => resolveCheckpointPlan({ request: { kind: "cryo", options: create(CryoOpts, { pageServerAddress: "10.0.0.1", pageServerPort: 70000 }) } }));
    expect(e3c.message).toBe("cryo checkpoint options: page_server_port: invalid argument: 70000: a port is at most 65535");
    const e4 = err(() => resolveCheckpointPlan({ request: { kind: "cryo", options: create(CryoOpts, { preDump: true, lazyPages: true }) } }));
    expect(e4.message).toContain("pre-dump cannot be combined with lazy pages");
    const e5 = err(() => resolveCheckpointPlan({ defaults: { logLevel: 9 } }));
    expect(e5.message).toContain("config file");
  });

  test("a value out of range or options that cannot go together name where each was set", () => {
    const range = err(() => resolveCheckpointPlan({ annotations: { "cryo.checkpoint/log-level": "7" } }));
    expect(range.message).toBe('checkpoint options: invalid argument: logLevel (annotation cryo.checkpoint/log-level="7"): Too big: expected number to be <=4');
    const mixed = err(() => resolveCheckpointPlan({ defaults: { lazyPages: true }, defaultsLabel: "config /c.toml [checkpoint]", annotations: { "cryo.checkpoint/pre-dump": "yes" } }));
    expect(mixed.message).toBe('checkpoint options: invalid argument: pre-dump cannot be combined with lazy pages (preDump from annotation cryo.checkpoint/pre-dump="yes"; lazyPages from config /c.toml [checkpoint])');
    const request = err(() => resolveCheckpointPlan({ annotations: { "cryo.checkpoint/local-pages": "true" }, request: { kind: "cryo", options: create(CryoOpts, { autoDedup: true }) } }));
    expect(request.message).toContain('local-pages cannot be combined with auto-dedup (localPages from annotation cryo.checkpoint/local-pages="true"; autoDedup from the request\'s options)');
    const port = err(() => resolveCheckpointPlan({ defaults: { pageServer: { address: "10.0.0.1", port: 0 } } }));
    expect(port.message).toContain("needs its port (pageServer from the config file's [checkpoint])");
    // A status path gets its byte from a post-copy dump's page server only; before, it was taken and did nothing.
    const status = err(() => resolveCheckpointPlan({ annotations: { "cryo.checkpoint/status-path": "/run/x", "cryo.checkpoint/lazy-pages": "true" } }));
    expect(status.message).toBe(
      'checkpoint options: invalid argument: status-path is for post-copy (lazy-pages with a page-server): it gets one byte once the page server serves (statusPath from annotation cryo.checkpoint/status-path="/run/x"; lazyPages from annotation cryo.checkpoint/lazy-pages="true")',
    );
    expect(resolveCheckpointPlan({ annotations: { "cryo.checkpoint/status-path": "/run/x", "cryo.checkpoint/lazy-pages": "true", "cryo.checkpoint/page-server": "127.0.0.1:0" } }).statusPath).toBe("/run/x");
    const fromRequest = resolveCheckpointPlan({ request: { kind: "cryo", options: create(CryoOpts, { lazyPages: true, pageServerAddress: "127.0.0.1", pageServerPort: 27000, statusPath: "/run/s" }) } });
    expect(fromRequest.statusPath).toBe("/run/s");
  });

  test("the same combinations are refused in a plan the checkpoint plugins changed (checkCombinations)", () => {
    const plan = resolveCheckpointPlan({});
    expect(() => checkCombinations(plan)).not.toThrow();
    const byPlugins = () => " (as the checkpoint plugins left them)";
    expect(err(() => checkCombinations({ ...plan, preDump: true, lazyPages: true }, byPlugins)).message).toBe(
      "checkpoint options: invalid argument: pre-dump cannot be combined with lazy pages (as the checkpoint plugins left them)",
    );
    expect(err(() => checkCombinations({ ...plan, localPages: true, compression: "zstd" })).message).toContain("local-pages cannot be combined with compression=zstd");
    expect(err(() => checkCombinations({ ...plan, pageServer: { address: "10.0.0.1", port: 0 } })).message).toContain("page-server port 0");
  });

  test("cryo's options carry every CRIU option", () => {
    const plan = resolveCheckpointPlan({
      request: {
        kind: "cryo",
        options: create(CryoOpts, {
          tcpClose: true,
          skipInFlight: true,
          preDump: true,
          trackMem: true,
          autoDedup: true,
          pageServerAddress: "127.0.0.1",
          pageServerPort: 27000,
          lsmProfile: "apparmor:p",
          lsmMountContext: "system_u:object_r:container_file_t:s0",
          external: ["mnt[/data]:data"],
          logLevel: 2,
        }),
      },
    });
    expect(plan).toMatchObject({
      tcpClose: true,
      tcpSkipInFlight: true,
      preDump: true,
      trackMem: true,
      autoDedup: true,
      pageServer: { address: "127.0.0.1", port: 27000 },
      lsmProfile: "apparmor:p",
      lsmMountContext: "system_u:object_r:container_file_t:s0",
      external: ["mnt[/data]:data"],
      logLevel: 2,
    });
  });

  test("CRIU's older mount engine is no checkpoint option (CRIU refuses it on a dump; the restoring host chooses it): asked for, INVALID_ARGUMENT saying where it belongs", () => {
    const where = /\[restore\] mntns_compat_mode/;
    expect(() => resolveCheckpointPlan({ request: { kind: "cryo", options: create(CryoOpts, { mntnsCompatMode: true }) } })).toThrow(where);
    expect(() => resolveCheckpointPlan({ annotations: { "cryo.checkpoint/mntns-compat-mode": "true" } })).toThrow(where);
    expect(resolveCheckpointPlan({}).mntnsCompatMode).toBe(false);
  });
});

describe("post-copy (lazy pages with a page server)", () => {
  test("the source ends: leave-running from ctr's runc options gives way; without a page server nothing changes", () => {
    const annotations = { "cryo.checkpoint/lazy-pages": "true", "cryo.checkpoint/page-server": "127.0.0.1:27000" };
    const plan = resolveCheckpointPlan({ annotations, request: { kind: "runc", options: create(RuncOpts, { exit: false, fileLocks: true }) } });
    expect(isPostCopy(plan)).toBe(true);
    expect(plan.leaveRunning).toBe(false);
    expect(plan.pageServer).toEqual({ address: "127.0.0.1", port: 27000 });
    // Lazy pages alone are a restore-time choice: the source keeps running.
    const lazyOnly = resolveCheckpointPlan({ annotations: { "cryo.checkpoint/lazy-pages": "true" } });
    expect(isPostCopy(lazyOnly)).toBe(false);
    expect(lazyOnly.leaveRunning).toBe(true);
    // A page server without lazy pages receives the pages of an ordinary dump.
    expect(isPostCopy(resolveCheckpointPlan({ annotations: { "cryo.checkpoint/page-server": "127.0.0.1:27000" } }))).toBe(false);
    // A plugin's plan goes through postCopyPlan again.
    expect(postCopyPlan({ ...lazyOnly, pageServer: { address: "::1", port: 1 } }).leaveRunning).toBe(false);
    expect(postCopyPlan(lazyOnly)).toBe(lazyOnly);
  });

  test("page-server port 0 (a free port chosen at the dump) only for post-copy", () => {
    const any = resolveCheckpointPlan({ annotations: { "cryo.checkpoint/lazy-pages": "true", "cryo.checkpoint/page-server": "10.0.0.5:0" } });
    expect(any.pageServer).toEqual({ address: "10.0.0.5", port: 0 });
    expect(isPostCopy(any)).toBe(true);
    const e = (() => {
      try {
        resolveCheckpointPlan({ annotations: { "cryo.checkpoint/page-server": "10.0.0.5:0" } });
      } catch (err) {
        return err as { code: number; message: string };
      }
      throw new Error("no error");
    })();
    expect(e.message).toContain("port 0");
    expect(() => parseCheckpointAnnotations({ "cryo.checkpoint/page-server": "10.0.0.5:65536" })).toThrow("want HOST:PORT");
  });

  test("page-server's host is an address or a host name, refused here rather than by CRIU after the freeze", () => {
    for (const [value, host] of [["10.0.0.5:27000", "10.0.0.5"], ["[fd00::5]:27000", "fd00::5"], ["pages-1.example:27000", "pages-1.example"]]) {
      expect(parseCheckpointAnnotations({ "cryo.checkpoint/page-server": value! }).pageServer).toEqual({ address: host!, port: 27000 });
    }
    for (const bad of ["10.0.0.5/24:27000", "a b:27000", "-x:27000", "host:1:27000", "[10.0.0.5:27000"]) {
      const e = err(() => parseCheckpointAnnotations({ "cryo.checkpoint/page-server": bad }));
      expect(e.code).toBe(Code.INVALID_ARGUMENT);
      expect(e.message).toContain("want an IPv4 or IPv6 address or a host name");
    }
    // The plan's own schema (what a plugin's or a request's options are checked against) refuses it too.
    expect(() => checkpointPlanSchema.parse({ ...BUILTIN_CHECKPOINT_PLAN, lazyPages: true, pageServer: { address: "a b", port: 1 } })).toThrow("want an IPv4");
  });

  test("an LSM profile is apparmor:NAME, selinux:LABEL or none:, refused here rather than by CRIU at the restore", () => {
    for (const ok of ["apparmor:cryo-restored", "selinux:system_u:system_r:container_t:s0", "none:", "none:x"]) {
      expect(parseCheckpointAnnotations({ "cryo.checkpoint/lsm-profile": ok }).lsmProfile).toBe(ok);
      expect(checkpointPlanSchema.parse({ ...BUILTIN_CHECKPOINT_PLAN, lsmProfile: ok }).lsmProfile).toBe(ok);
    }
    for (const bad of ["foo", "apparmor", "apparmor:", "selinux:", "smack:x", "AppArmor:x"]) {
      const e = err(() => parseCheckpointAnnotations({ "cryo.checkpoint/lsm-profile": bad }));
      expect(e.code).toBe(Code.INVALID_ARGUMENT);
      expect(e.message).toBe(`annotation cryo.checkpoint/lsm-profile=${JSON.stringify(bad)}: invalid argument: want apparmor:NAME, selinux:LABEL or none:`);
      expect(() => checkpointPlanSchema.parse({ ...BUILTIN_CHECKPOINT_PLAN, lsmProfile: bad })).toThrow("want apparmor:NAME");
    }
    const e = err(() => resolveCheckpointPlan({ request: { kind: "cryo", options: create(CryoOpts, { lsmProfile: "foo" }) } }));
    expect([e.code, e.message]).toEqual([Code.INVALID_ARGUMENT, 'cryo checkpoint options: lsm_profile: invalid argument: "foo": want apparmor:NAME, selinux:LABEL or none:']);
  });
});

describe("network lock", () => {
  test("nftables unless the config, an annotation or the request says iptables or skip; a bad value names the key", () => {
    expect(BUILTIN_CHECKPOINT_PLAN.networkLock).toBe("nftables");
    expect(resolveCheckpointPlan({ defaults: { networkLock: "iptables" } }).networkLock).toBe("iptables");
    expect(resolveCheckpointPlan({ defaults: { networkLock: "iptables" }, annotations: { "cryo.checkpoint/network-lock": "nftables" } }).networkLock).toBe("nftables");
    expect(resolveCheckpointPlan({ annotations: { "cryo.checkpoint/network-lock": "nftables" }, request: { kind: "cryo", options: create(CryoOpts, { networkLock: NetworkLock.IPTABLES }) } }).networkLock).toBe("iptables");
    expect(resolveCheckpointPlan({ request: { kind: "cryo", options: create(CryoOpts, { networkLock: NetworkLock.UNSPECIFIED }) } }).networkLock).toBe("nftables");
    // skip: no lock, asked for (cryo also picks it by itself for a namespace with only loopback).
    expect(resolveCheckpointPlan({ annotations: { "cryo.checkpoint/network-lock": "skip" } }).networkLock).toBe("skip");
    // cryo's own options message can ask for it too (before, its enum stopped at iptables), and refuses a value it does
    // not know (before, taken as unset).
    expect(resolveCheckpointPlan({ annotations: { "cryo.checkpoint/network-lock": "nftables" }, request: { kind: "cryo", options: create(CryoOpts, { networkLock: NetworkLock.SKIP }) } }).networkLock).toBe("skip");
    expect(err(() => resolveCheckpointPlan({ request: { kind: "cryo", options: create(CryoOpts, { networkLock: 7 as NetworkLock }) } })).message).toBe("cryo checkpoint options: network_lock: invalid argument: unknown value 7");
    // Asked for or not: only an asked-for method keeps cryo from choosing none for a loopback-only namespace.
    expect(networkLockAsked({})).toBe(false);
    expect(networkLockAsked({ annotations: { "cryo.checkpoint/tcp-established": "true" }, request: { kind: "runc", options: create(RuncOpts, { exit: false }) } })).toBe(false);
    expect(networkLockAsked({ annotations: { "cryo.checkpoint/network-lock": "nftables" } })).toBe(true);
    expect(networkLockAsked({ defaults: { networkLock: "iptables" } })).toBe(true);
    expect(networkLockAsked({ request: { kind: "cryo", options: create(CryoOpts, { networkLock: NetworkLock.NFTABLES }) } })).toBe(true);
    const e = err(() => parseCheckpointAnnotations({ "cryo.checkpoint/network-lock": "none" }));
    expect(e.code).toBe(Code.INVALID_ARGUMENT);
    expect(e.message).toContain('cryo.checkpoint/network-lock="none"');
  });
});

describe("local pages", () => {
  test("set by annotation, config default or cryo's request options", () => {
    expect(BUILTIN_CHECKPOINT_PLAN.localPages).toBe(false);
    expect(resolveCheckpointPlan({ annotations: { "cryo.checkpoint/local-pages": "true" } }).localPages).toBe(true);
    expect(resolveCheckpointPlan({ defaults: { localPages: true } }).localPages).toBe(true);
    expect(resolveCheckpointPlan({ defaults: { localPages: true }, annotations: { "cryo.checkpoint/local-pages": "false" } }).localPages).toBe(false);
    expect(resolveCheckpointPlan({ request: { kind: "cryo", options: create(CryoOpts, { localPages: true }) } }).localPages).toBe(true);
  });

  test("refused with the options that need the pages in the images directory, naming each", () => {
    const clash = (annotations: Record<string, string>) => err(() => resolveCheckpointPlan({ annotations: { "cryo.checkpoint/local-pages": "true", ...annotations } }));
    const e = clash({ "cryo.checkpoint/compression": "zstd", "cryo.checkpoint/auto-dedup": "true" });
    expect(e.code).toBe(Code.INVALID_ARGUMENT);
    expect(e.message).toContain("local-pages cannot be combined with compression=zstd, auto-dedup");
    expect(clash({ "cryo.checkpoint/pre-dump": "true" }).message).toContain("pre-dump");
    expect(clash({ "cryo.checkpoint/parent-path": "../p" }).message).toContain("parent-path");
    expect(clash({ "cryo.checkpoint/page-server": "127.0.0.1:27000" }).message).toContain("page-server");
    // lazy pages are a restore-time choice: they combine
    expect(resolveCheckpointPlan({ annotations: { "cryo.checkpoint/local-pages": "true", "cryo.checkpoint/lazy-pages": "true" } }).lazyPages).toBe(true);
  });
});

describe("cryo.checkpoint/* annotations", () => {
  test("every documented key parses", () => {
    const values: Record<string, string> = {
      exit: "false",
      "leave-running": "true",
      "manage-cgroups-mode": "soft",
      "empty-ns": "network",
      "page-server": "[::1]:27000",
      external: "mnt[/a]:a, net[123]:n",
      compression: "zstd",
      "network-lock": "iptables",
      "compression-level": "3",
      "log-level": "2",
      "ghost-limit": "64M",
      timeout: "2m",
      "work-path": "/w",
      "status-path": "/s",
      "lsm-profile": "apparmor:x",
    };
    const annotations: Record<string, string> = {};
    for (const key of Object.keys(CHECKPOINT_ANNOTATIONS)) annotations[`cryo.checkpoint/${key}`] = values[key] ?? (key.includes("path") || key.startsWith("lsm") ? "x" : "yes");
    delete annotations["cryo.checkpoint/exit"]; // exit and leave-running set the same field
    const o = parseCheckpointAnnotations(annotations);
    expect(o.pageServer).toEqual({ address: "::1", port: 27000 });
    expect(o.external).toEqual(["mnt[/a]:a", "net[123]:n"]);
    expect(o.emptyNamespaces).toEqual(["net"]);
    expect(o.tcpEstablished).toBe(true);
    expect(o.ghostLimit).toBe(64 * 1024 * 1024);
    expect(o.timeoutSeconds).toBe(120);
    expect(Object.keys(o).length).toBe(Object.keys(CHECKPOINT_ANNOTATIONS).length - 1);
  });

  test("unknown keys and bad values are INVALID_ARGUMENT naming the key", () => {
    expect(err(() => parseCheckpointAnnotations({ "cryo.checkpoint/tcp-establised": "true" })).message).toContain("cryo.checkpoint/tcp-establised");
    expect(err(() => parseCheckpointAnnotations({ "cryo.checkpoint/file-locks": "maybe" })).message).toBe('annotation cryo.checkpoint/file-locks="maybe": invalid argument: want true or false (or yes/no, on/off, 1/0)');
    expect(err(() => parseCheckpointAnnotations({ "cryo.checkpoint/page-server": "host" })).code).toBe(Code.INVALID_ARGUMENT);
    expect(err(() => parseCheckpointAnnotations({ "cryo.checkpoint/compression": "gzip" })).code).toBe(Code.INVALID_ARGUMENT);
    expect(err(() => parseCheckpointAnnotations({ "cryo.checkpoint/ghost-limit": "64 MB please" })).message).toContain('cryo.checkpoint/ghost-limit="64 MB please": invalid argument: want bytes, or a number with K, M or G (binary units)');
  });

  test("ghost-limit: bytes or binary units, annotation < request; beyond CRIU's 32 bits refused; it reaches CRIU's options", () => {
    expect(["1048576", "512K", "64m", "2G", "8MiB", " 3 M "].map((v) => parseSize(v))).toEqual([1048576, 512 * 1024, 64 * 1024 ** 2, 2 * 1024 ** 3, 8 * 1024 ** 2, 3 * 1024 ** 2]);
    expect(["", "-1", "1T", "1.5M", "M"].map((v) => parseSize(v))).toEqual([undefined, undefined, undefined, undefined, undefined]);
    const annotations = { "cryo.checkpoint/ghost-limit": "16M" };
    expect(resolveCheckpointPlan({ annotations }).ghostLimit).toBe(16 * 1024 ** 2);
    expect(resolveCheckpointPlan({ annotations, request: { kind: "cryo", options: create(CryoOpts, { ghostLimit: 4096 }) } }).ghostLimit).toBe(4096);
    expect(resolveCheckpointPlan({}).ghostLimit).toBe(0);
    expect(err(() => resolveCheckpointPlan({ annotations: { "cryo.checkpoint/ghost-limit": "4G" } })).code).toBe(Code.INVALID_ARGUMENT);
  });

  test("timeout: seconds or with s, m, h; a week at most; none by default", () => {
    expect(["90", "90s", "15m", "2h", " 3 M ", "0"].map((v) => parseDurationSeconds(v))).toEqual([90, 90, 900, 7200, 180, 0]);
    expect(["", "-1", "1d", "1.5m", "m", "169h"].map((v) => parseDurationSeconds(v))).toEqual([undefined, undefined, undefined, undefined, undefined, undefined]);
    expect(resolveCheckpointPlan({ annotations: { "cryo.checkpoint/timeout": "5m" } }).timeoutSeconds).toBe(300);
    expect(resolveCheckpointPlan({ defaults: { timeoutSeconds: 60 }, annotations: { "cryo.checkpoint/timeout": "0" } }).timeoutSeconds).toBe(0);
    expect(resolveCheckpointPlan({ defaults: { timeoutSeconds: 60 } }).timeoutSeconds).toBe(60);
    expect(resolveCheckpointPlan({}).timeoutSeconds).toBe(0);
    expect(err(() => parseCheckpointAnnotations({ "cryo.checkpoint/timeout": "soon" })).message).toContain('cryo.checkpoint/timeout="soon": invalid argument: want seconds, or a number with s, m or h (at most a week)');
  });

  test("exit=true means leave-running=false", () => {
    expect(parseCheckpointAnnotations({ "cryo.checkpoint/exit": "true" }).leaveRunning).toBe(false);
  });

  test("work, image and status paths must be absolute (the shim daemon's working directory is /): INVALID_ARGUMENT naming the key or field", () => {
    for (const key of ["work-path", "status-path"]) {
      const e = err(() => resolveCheckpointPlan({ annotations: { [`cryo.checkpoint/${key}`]: "relwp" } }));
      expect(e.code).toBe(Code.INVALID_ARGUMENT);
      expect(e.message).toContain(`cryo.checkpoint/${key}="relwp"`);
      expect(e.message).toContain("absolute");
      // A status path only with post-copy (lazy pages with a page server).
      const postCopy: Record<string, string> = key === "status-path" ? { "cryo.checkpoint/lazy-pages": "true", "cryo.checkpoint/page-server": "127.0.0.1:0" } : {};
      expect(resolveCheckpointPlan({ annotations: { [`cryo.checkpoint/${key}`]: "/w", ...postCopy } })).toMatchObject(key === "work-path" ? { workPath: "/w" } : { statusPath: "/w" });
    }
    // parent-path stays relative to the images directory (CRIU's rule).
    expect(resolveCheckpointPlan({ annotations: { "cryo.checkpoint/parent-path": "../p" } }).parentPath).toBe("../p");
    for (const [field, opts] of [["work_path", { workPath: "w" }], ["image_path", { imagePath: "i" }]] as const) {
      const e = err(() => resolveCheckpointPlan({ request: { kind: "runc", options: create(RuncOpts, opts) } }));
      expect(e.code).toBe(Code.INVALID_ARGUMENT);
      expect(e.message).toContain(`runc checkpoint options: ${field}`);
    }
    for (const [field, opts] of [["work_path", { workPath: "w" }], ["image_path", { imagePath: "i" }], ["status_path", { statusPath: "s" }]] as const) {
      const e = err(() => resolveCheckpointPlan({ request: { kind: "cryo", options: create(CryoOpts, opts) } }));
      expect(e.code).toBe(Code.INVALID_ARGUMENT);
      expect(e.message).toContain(`cryo checkpoint options: ${field}`);
    }
  });

  test("a work, image or status path with a NUL byte is INVALID_ARGUMENT naming it (node's file calls threw a TypeError: UNKNOWN)", () => {
    const cases: [string, () => unknown][] = [
      ["runc checkpoint options: image_path", () => resolveCheckpointPlan({ request: { kind: "runc", options: create(RuncOpts, { imagePath: "/tmp/a\0b" }) } })],
      ["runc checkpoint options: work_path", () => resolveCheckpointPlan({ request: { kind: "runc", options: create(RuncOpts, { workPath: "/tmp/a\0b" }) } })],
      ["cryo checkpoint options: image_path", () => resolveCheckpointPlan({ request: { kind: "cryo", options: create(CryoOpts, { imagePath: "/tmp/a\0b" }) } })],
      ["annotation cryo.checkpoint/work-path", () => resolveCheckpointPlan({ annotations: { "cryo.checkpoint/work-path": "/tmp/a\0b" } })],
      // The config file's [checkpoint] defaults and a plugin's plan go through the plan's schema.
      ["checkpoint defaults in the config file: invalid argument: imagePath: has a NUL byte", () => resolveCheckpointPlan({ defaults: { imagePath: "/tmp/a\0b" } })],
      ["parentPath", () => resolveCheckpointPlan({ annotations: { "cryo.checkpoint/parent-path": "../a\0b" } })],
    ];
    for (const [where, call] of cases) {
      const e = err(call);
      expect(e.code).toBe(Code.INVALID_ARGUMENT);
      expect(e.message).toContain(where);
      expect(e.message).toContain("NUL byte");
    }
  });

  test("exit and leave-running that contradict each other are INVALID_ARGUMENT naming both; agreeing ones are kept", () => {
    for (const [exit, leaveRunning] of [["true", "true"], ["false", "no"]]) {
      for (const annotations of [
        { "cryo.checkpoint/exit": exit!, "cryo.checkpoint/leave-running": leaveRunning! },
        { "cryo.checkpoint/leave-running": leaveRunning!, "cryo.checkpoint/exit": exit! },
      ]) {
        const e = err(() => resolveCheckpointPlan({ annotations }));
        expect(e.code).toBe(Code.INVALID_ARGUMENT);
        expect(e.message).toContain(`cryo.checkpoint/exit="${exit}"`);
        expect(e.message).toContain(`cryo.checkpoint/leave-running="${leaveRunning}"`);
      }
    }
    expect(resolveCheckpointPlan({ annotations: { "cryo.checkpoint/exit": "true", "cryo.checkpoint/leave-running": "false" } }).leaveRunning).toBe(false);
    expect(resolveCheckpointPlan({ annotations: { "cryo.checkpoint/exit": "no", "cryo.checkpoint/leave-running": "yes" } }).leaveRunning).toBe(true);
  });
});

describe("request options in an Any", () => {
  test("runc's and cryo's messages are recognised by type URL", () => {
    const runc = anyPack(RuncOpts, create(RuncOpts, { fileLocks: true }));
    const r = checkpointOptionsFromAny(runc);
    expect(r?.kind).toBe("runc");
    const cryo = anyPack(CryoOpts, create(CryoOpts, { tcpClose: true }));
    const c = checkpointOptionsFromAny({ typeUrl: "cryo.v1.CheckpointOptions", value: cryo.value });
    expect(c?.kind === "cryo" && c.options.tcpClose).toBe(true);
    expect(checkpointOptionsFromAny(undefined)).toBeUndefined();
    expect(checkpointOptionsFromAny({ typeUrl: "", value: new Uint8Array() })).toBeUndefined();
  });

  test("other types are INVALID_ARGUMENT", () => {
    expect(err(() => checkpointOptionsFromAny({ typeUrl: "foo.Bar", value: new Uint8Array() })).code).toBe(Code.INVALID_ARGUMENT);
  });
});
