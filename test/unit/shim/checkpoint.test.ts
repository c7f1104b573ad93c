/** Pure parts of the shim's checkpoint/restore: stdio keys, inherit-fd plan, runc state for a restored container, cgroup paths. */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, test } from "bun:test";
import { BUILTIN_CHECKPOINT_PLAN, type CheckpointMetadata } from "../../../src/checkpoint/index.ts";
import type { PolicyEngine } from "../../../src/plugins/index.ts";
import {
  checkpointPolicy,
  countEstablished,
  pluginCheckpointOptions,
  pluginRestoreOptions,
  planWithCheckpointOptions,
  planWithRestoreOptions,
  restorePolicy,
} from "../../../src/shim/checkpoint-policy.ts";
import { externalFileKey, fdinfoMountId, mountIds, restoreInheritFds, stdioExternals } from "../../../src/shim/checkpoint-stdio.ts";
import { Code, CryoError } from "../../../src/errors.ts";
import { classifyCriuError } from "../../../src/shim/criu-errors.ts";
import { confineCgroupPaths, deviceRulesTarget, restoredCgroupPaths, restoredCgroupsPath, runcCgroupsPath } from "../../../src/shim/restore-cgroups.ts";
import { containerdExtraction, specLsmProfile } from "../../../src/shim/restore-container.ts";
import { processStartTicks, restoredRuncState, runcHooksFromSpec, runcSecurityFromSpec } from "../../../src/shim/restore-state-file.ts";

describe("stdio across a checkpoint", () => {
  test("mount ids and fdinfo mnt_id", () => {
    const mi = "97 55 0:48 / / rw,relatime - overlay overlay rw\n98 97 0:51 / /proc rw - proc proc rw\n";
    expect([...mountIds(mi)]).toEqual([97, 98]);
    expect(fdinfoMountId("pos:\t0\nflags:\t02\nmnt_id:\t27\nino:\t123\n")).toBe(27);
    expect(fdinfoMountId("pos: 0\n")).toBeUndefined();
  });

  test("external file keys are CRIU's file[%x:%lx]", () => {
    expect(externalFileKey(27, 16638413n)).toBe("file[1b:fde1cd]");
  });

  test("externals are listed once", () => {
    const k = "file[1b:10]";
    expect(stdioExternals([{ descriptor: "pipe:[1]", criuKey: null }, { descriptor: "/run/f", criuKey: k }, { descriptor: "/run/f", criuKey: k }])).toEqual([k]);
  });

  test("inherit plan: pipes by name, external files under both CRIU lookups, /dev/null reopened by CRIU", () => {
    const plan = restoreInheritFds(["pipe:[5]", "/run/containerd/fifo/1/c-stdout", "/run/containerd/fifo/1/c-stderr"], [null, "file[1b:a]", "file[1b:b]"], [10, 11, 12]);
    expect(plan).toEqual([
      { fd: 10, key: "pipe:[5]" },
      { fd: 11, key: "file[1b:a]" },
      { fd: 11, key: "ile[1b:a]" },
      { fd: 12, key: "file[1b:b]" },
      { fd: 12, key: "ile[1b:b]" },
    ]);
    expect(restoreInheritFds(["/dev/null", "pipe:[7]", "pipe:[7]"], undefined, [3, 4, 5])).toEqual([{ fd: 4, key: "pipe:[7]" }]);
  });
});

describe("runc state of a restored container", () => {
  test("start time is field 22 of /proc/<pid>/stat, even with spaces and parens in comm", () => {
    const fields = Array.from({ length: 50 }, (_, i) => String(i + 3));
    fields[0] = "S";
    const stat = `1234 (a (b) c) ${fields.join(" ")}`;
    expect(processStartTicks(stat)).toBe(22);
  });

  test("new id, pid, bundle, rootfs, namespaces and stdio; everything else kept", () => {
    const old = {
      id: "c1",
      init_process_pid: 100,
      init_process_start: 5,
      created: "2026-01-01T00:00:00Z",
      config: { rootfs: "/old/rootfs", labels: ["bundle=/old", "k=v"], mounts: [] },
      rootless: false,
      cgroup_paths: { memory: "/sys/fs/cgroup/memory/ns/c1" },
      namespace_paths: { NEWNET: "/proc/100/ns/net" },
      external_descriptors: ["pipe:[1]"],
      intel_rdt_path: "",
    };
    const s = restoredRuncState(old, {
      id: "c2",
      pid: 200,
      startTicks: 77,
      created: "2026-02-02T00:00:00.000Z",
      bundle: "/new",
      rootfs: "/new/rootfs",
      cgroupPaths: { memory: "/sys/fs/cgroup/memory/ns/c1" },
      descriptors: ["pipe:[9]", "/run/f1", "/run/f2"],
      security: runcSecurityFromSpec({}, "restore c2"),
    });
    expect(s).toMatchObject({
      id: "c2",
      init_process_pid: 200,
      init_process_start: 77,
      created: "2026-02-02T00:00:00.000Z",
      config: { rootfs: "/new/rootfs", labels: ["k=v", "bundle=/new"], mounts: [] },
      namespace_paths: { NEWNET: "/proc/200/ns/net" },
      external_descriptors: ["pipe:[9]", "/run/f1", "/run/f2"],
      intel_rdt_path: "",
      rootless: false,
    });
    expect(old.config.rootfs).toBe("/old/rootfs"); // the input is not changed
  });

  test("state.json takes what runc exec confines its processes with from the new spec: seccomp, LSM labels, no_new_privs", () => {
    // A checkpoint whose runc config drops the filter and no_new_privs and names an unconfined profile.
    const old = { id: "c1", config: { rootfs: "/old", seccomp: null, no_new_privileges: false, app_armor_profile: "unconfined", Process_Label: "spc_t" } };
    const spec = {
      process: { noNewPrivileges: true, apparmorProfile: "cri-containerd.apparmor.d" },
      linux: {
        seccomp: {
          defaultAction: "SCMP_ACT_ERRNO",
          architectures: ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86"],
          syscalls: [
            { names: ["read", "write"], action: "SCMP_ACT_ALLOW" },
            { names: ["clone"], action: "SCMP_ACT_ALLOW", args: [{ index: 0, value: 2114060288, op: "SCMP_CMP_MASKED_EQ" }] },
            { names: ["clone3"], action: "SCMP_ACT_ERRNO", errnoRet: 38 },
          ],
        },
      },
    };
    const s = restoredRuncState(old, { id: "c2", pid: 2, startTicks: 1, created: "t", bundle: "/b", rootfs: "/b/rootfs", cgroupPaths: {}, descriptors: [], security: runcSecurityFromSpec(spec, "restore c2") });
    const cfg = s.config as Record<string, unknown>;
    expect(cfg.seccomp).toEqual({
      default_action: 2,
      architectures: ["amd64", "x86"],
      syscalls: [
        { name: "read", action: 4, errnoRet: null, args: [] },
        { name: "write", action: 4, errnoRet: null, args: [] },
        { name: "clone", action: 4, errnoRet: null, args: [{ index: 0, value: 2114060288, value_two: 0, op: 7 }] },
        { name: "clone3", action: 2, errnoRet: 38, args: [] },
      ],
      default_errno_ret: null,
    });
    expect(cfg).toMatchObject({ no_new_privileges: true, app_armor_profile: "cri-containerd.apparmor.d", process_label: "", mount_label: "" });
    expect(cfg.Process_Label).toBeUndefined(); // the checkpoint's, in any case, goes
    expect(() => runcSecurityFromSpec({ linux: { seccomp: { defaultAction: "SCMP_ACT_BOGUS" } } }, "restore c2")).toThrow("linux.seccomp.defaultAction: unknown action");
    expect(runcSecurityFromSpec({ linux: { seccomp: {} } }, "restore c2").seccomp).toBeNull();
    // CRIU's label for the restored tasks: the spec's, never the images'.
    expect(specLsmProfile(runcSecurityFromSpec(spec, "restore c2"))).toEqual({ lsmProfile: "apparmor:cri-containerd.apparmor.d" });
    expect(specLsmProfile(runcSecurityFromSpec({ process: { selinuxLabel: "system_u:system_r:container_t:s0:c1,c2" } }, "restore c2"))).toEqual({ lsmProfile: "selinux:system_u:system_r:container_t:s0:c1,c2" });
    expect(specLsmProfile(runcSecurityFromSpec({}, "restore c2"))).toEqual({});
  });

  test("state.json takes its hooks and Intel RDT from the new spec (the restore's resctrl group, or none), never the checkpoint's", () => {
    const planted = [{ path: "/bin/sh", args: ["sh", "-c", "touch /tmp/pwned"] }];
    const old = {
      id: "c1",
      config: { rootfs: "/old/rootfs", Hooks: { poststop: planted, prestart: planted }, intel_rdt: { closID: "x" } },
      intel_rdt_path: "/sys/fs/resctrl/../../etc",
    };
    const facts = { id: "c2", pid: 2, startTicks: 1, created: "t", bundle: "/b", rootfs: "/b/rootfs", cgroupPaths: {}, descriptors: [], security: runcSecurityFromSpec({}, "restore c2") };
    const none = restoredRuncState(old, facts);
    const cfg = none.config as Record<string, unknown>;
    expect(cfg.Hooks).toEqual({ prestart: null, createRuntime: null, createContainer: null, startContainer: null, poststart: null, poststop: null });
    expect(cfg.intel_rdt).toBeUndefined();
    expect(none.intel_rdt_path).toBe("");
    // The group the restore made or joined for the new spec (cgroups/intel-rdt.ts): runc delete removes one of the container's own.
    const withRdt = restoredRuncState(old, { ...facts, intelRdt: { path: "/sys/fs/resctrl/c2", config: { l3_cache_schema: "L3:0=f" } } });
    expect(withRdt.intel_rdt_path).toBe("/sys/fs/resctrl/c2");
    expect((withRdt.config as Record<string, unknown>).intel_rdt).toEqual({ l3_cache_schema: "L3:0=f" });
    const withSpec = restoredRuncState(old, { ...facts, specHooks: { poststop: [{ path: "/usr/bin/cleanup", args: ["cleanup", "x"], timeout: 5 }], poststart: [] } });
    expect((withSpec.config as Record<string, unknown>).Hooks).toMatchObject({
      poststop: [{ path: "/usr/bin/cleanup", args: ["cleanup", "x"], env: null, dir: "", timeout: 5_000_000_000 }],
      poststart: null,
      prestart: null,
    });
    // Go's decoder matches keys regardless of case, the later winning: a second "hooks" is refused, not kept.
    expect(() => restoredRuncState({ ...old, config: { ...old.config, hooks: { poststop: planted } } }, facts)).toThrow('keys "Hooks" and "hooks" differ only in case');
    // Only runc's keys at the top, namespace paths under the restored init, cgroupfs.
    const crafted = restoredRuncState({ ...old, Cgroup_Paths: { memory: "/x" }, namespace_paths: { NEWNET: "/proc/1/ns/net", NEWNS: "/var/run/x", BOGUS: "/y" }, config: { ...old.config, cgroups: { Systemd: true, name: "system.slice" } } }, facts);
    expect(Object.keys(crafted).sort()).toEqual(["cgroup_paths", "config", "created", "external_descriptors", "id", "init_process_pid", "init_process_start", "intel_rdt_path", "namespace_paths", "rootless"]);
    expect(crafted.namespace_paths).toEqual({ NEWNET: "/proc/2/ns/net", NEWNS: "/proc/2/ns/mnt" });
    expect((crafted.config as Record<string, unknown>).cgroups).toEqual({ path: "", scope_prefix: "", devices: [], Systemd: false, Rootless: false });
    const withRules = restoredRuncState(old, { ...facts, cgroupsPath: "/ns/c2", deviceRules: [{ allow: false, type: "a", major: "*", minor: "*", access: "rwm" }, { allow: true, type: "c", major: 1, minor: 3, access: "rwm" }] });
    expect((withRules.config as Record<string, unknown>).cgroups).toMatchObject({ path: "/ns/c2", devices: [{ type: 97, major: -1, minor: -1, permissions: "rwm", allow: false }, { type: 99, major: 1, minor: 3, permissions: "rwm", allow: true }] });
    expect(() => runcHooksFromSpec({ poststop: [{ path: "relative" }] })).toThrow("spec hooks.poststop");
    expect(() => runcHooksFromSpec({ prestart: "/bin/sh" })).toThrow("spec hooks.prestart");
    expect(() => runcHooksFromSpec({ poststart: [{ path: "/x", timeout: -1 }] })).toThrow("spec hooks.poststart");
  });

  test("device rules go to the v1 devices cgroup when the host has one (hybrid too), else to the cgroup2 directory", () => {
    expect(deviceRulesTarget({ devices: "/sys/fs/cgroup/devices/ns/c1", "": "/sys/fs/cgroup/unified/ns/c1" })).toEqual({ version: 1, dir: "/sys/fs/cgroup/devices/ns/c1" });
    expect(deviceRulesTarget({ "": "/sys/fs/cgroup/ns/c1" })).toEqual({ version: 2, dir: "/sys/fs/cgroup/ns/c1" });
    expect(deviceRulesTarget({ memory: "/sys/fs/cgroup/memory/ns/c1" })).toBeUndefined();
  });

  test("restored cgroup paths must lie below this host's hierarchy of their own key", () => {
    const mounts = { mode: "hybrid" as const, v1: new Map([["memory", "/sys/fs/cgroup/memory"], ["name=systemd", "/sys/fs/cgroup/systemd"]]), unified: "/sys/fs/cgroup/unified" };
    const ok = { memory: "/sys/fs/cgroup/memory/ns/c1", "name=systemd": "/sys/fs/cgroup/systemd/ns/c1", "": "/sys/fs/cgroup/unified/ns/c1" };
    expect(() => confineCgroupPaths(ok, mounts, "w")).not.toThrow();
    const bad: [Record<string, string>, string][] = [
      [{ memory: "/etc/cron.d/x" }, "cgroup path /etc/cron.d/x is not below this host's memory hierarchy at /sys/fs/cgroup/memory"],
      [{ memory: "/sys/fs/cgroup/memory" }, "is not below"], // the hierarchy's root itself
      [{ memory: "/sys/fs/cgroup/memory/../../../etc" }, "is not below"],
      [{ memory: "/sys/fs/cgroup/memory/a/./b" }, "is not below"],
      [{ memory: "/sys/fs/cgroup/systemd/ns/c1" }, "is not below this host's memory hierarchy"], // another controller's tree
      [{ "": "/sys/fs/cgroup/memory/ns/c1" }, "cgroup2 hierarchy at /sys/fs/cgroup/unified"],
      [{ rdma: "/sys/fs/cgroup/rdma/ns/c1" }, "cgroup hierarchy rdma (/sys/fs/cgroup/rdma/ns/c1) is not mounted on this host"],
    ];
    for (const [paths, detail] of bad) expect(() => confineCgroupPaths(paths, mounts, "checkpoint /x: cgroups")).toThrow(detail);
  });

  test("cgroup paths are this host's mounts joined with the spec's cgroupsPath, for the hierarchies of the checkpoint; never its own paths", () => {
    const mounts = { mode: "hybrid" as const, v1: new Map([["memory", "/sys/fs/cgroup/memory"]]), unified: "/sys/fs/cgroup/unified" };
    const meta = { cgroups: { version: 1, paths: { memory: "/sys/fs/cgroup/memory/ns/c1", "": "/sys/fs/cgroup/unified/ns/c1" }, cgroupsPath: "/ns/c1" } } as unknown as CheckpointMetadata;
    expect(restoredCgroupPaths(meta, "/ns/c1", mounts)).toEqual(meta.cgroups.paths);
    expect(restoredCgroupPaths(meta, "/ns/c9", mounts)).toEqual({ memory: "/sys/fs/cgroup/memory/ns/c9", "": "/sys/fs/cgroup/unified/ns/c9" });
    // A checkpoint naming another service's cgroup gets the spec's all the same.
    const crafted = { cgroups: { version: 1, paths: { memory: "/sys/fs/cgroup/memory/system.slice/sshd.service" }, cgroupsPath: "/ns/c1" } } as unknown as CheckpointMetadata;
    expect(restoredCgroupPaths(crafted, "/ns/c1", mounts)).toEqual({ memory: "/sys/fs/cgroup/memory/ns/c1" });
    // A hierarchy it was in that this host lacks.
    const other = { cgroups: { version: 1, paths: { rdma: "/sys/fs/cgroup/rdma/ns/c1" }, cgroupsPath: "/ns/c1" } } as unknown as CheckpointMetadata;
    expect(() => restoredCgroupPaths(other, "/ns/c1", mounts)).toThrow("cgroup hierarchy rdma");
    expect(() => restoredCgroupPaths(meta, "/ns/../../etc", mounts)).toThrow("must not contain ..");
  });

  test("a relative cgroupsPath restores below the daemon's own cgroups, where runc made the original (not below the root)", () => {
    // Found by hand: `ctr run --cgroup rel/x` by a shim in memory cgroup /svc: runc put the container in memory
    // /svc/rel/x, runc's restore too, cryo's restore in /rel/x. Also runc's default for a spec without a cgroupsPath,
    // the bare id.
    const mounts = { mode: "hybrid" as const, v1: new Map([["memory", "/sys/fs/cgroup/memory"], ["pids", "/sys/fs/cgroup/pids"]]), unified: "/sys/fs/cgroup/unified" };
    const meta = { cgroups: { version: 1, paths: { memory: "/sys/fs/cgroup/memory/svc/rel/x", pids: "/sys/fs/cgroup/pids/rel/x", "": "/sys/fs/cgroup/unified/rel/x" }, cgroupsPath: "rel/x" } } as unknown as CheckpointMetadata;
    const own = new Map([["memory", "/svc"], ["pids", "/"], ["", "/"]]);
    expect(restoredCgroupPaths(meta, "rel/x", mounts, own)).toEqual(meta.cgroups.paths);
    expect(restoredCgroupPaths(meta, "/rel/x", mounts, own)).toEqual({ memory: "/sys/fs/cgroup/memory/rel/x", pids: "/sys/fs/cgroup/pids/rel/x", "": "/sys/fs/cgroup/unified/rel/x" });
    // runc keeps the path as given, cleaned (state.json config.cgroups.path).
    expect([runcCgroupsPath("rel//x/"), runcCgroupsPath("/rel/x"), runcCgroupsPath("c1")]).toEqual(["rel/x", "/rel/x", "c1"]);
  });

  test("a copy restored under a new id or namespace gets a cgroup of its own where the spec names its source's (containerd's default path)", () => {
    const src = { containerId: "c1", namespace: "ns" };
    // ctr containers restore under a new id: the spec keeps /ns/c1.
    expect(restoredCgroupsPath("/ns/c1", "copy", "ns", src)).toBe("/ns/copy");
    expect(restoredCgroupsPath("ns/c1", "copy", "ns", src)).toBe("/ns/copy"); // runc's relative form
    // Into another namespace, under the same id.
    expect(restoredCgroupsPath("/ns/c1", "c1", "other", src)).toBe("/other/c1");
    // The same id and namespace (the source gone): the spec's.
    expect(restoredCgroupsPath("/ns/c1", "c1", "ns", src)).toBe("/ns/c1");
    // A path that is not the source's default (CRI's, a client's own): the spec's.
    expect(restoredCgroupsPath("/kubepods/besteffort/pod1/abc", "copy", "k8s.io", src)).toBe("/kubepods/besteffort/pod1/abc");
    expect(restoredCgroupsPath("/ns/other", "copy", "ns", src)).toBe("/ns/other");
    // Metadata without the source's namespace, or no namespace for the restore: the spec's.
    expect(restoredCgroupsPath("/ns/c1", "copy", "ns", { containerId: "c1" })).toBe("/ns/c1");
    expect(restoredCgroupsPath("/ns/c1", "copy", undefined, src)).toBe("/ns/c1");
  });

  test("a copy's own checkpoint: its restore, under a new id or its own, gets the new container's cgroup, not the first source's its spec still names", () => {
    // b was restored from c1's checkpoint: its spec names /ns/c1, runc's state the cgroup it ran in, /ns/b.
    const ofCopy = { containerId: "b", namespace: "ns", cgroups: { version: 1 as const, paths: {}, cgroupsPath: "/ns/c1" }, runcState: { config: { cgroups: { path: "/ns/b" } } } };
    expect(restoredCgroupsPath("/ns/c1", "c", "ns", ofCopy)).toBe("/ns/c");
    expect(restoredCgroupsPath("ns/c1/", "c", "ns", ofCopy)).toBe("/ns/c");
    expect(restoredCgroupsPath("/ns/c1", "b", "ns", ofCopy)).toBe("/ns/b");
    expect(restoredCgroupsPath("/ns/c1", "b", "other", ofCopy)).toBe("/other/b");
    // A spec path the copy did not carry (a client's own, set at the restore): the spec's.
    expect(restoredCgroupsPath("/mine/x", "c", "ns", ofCopy)).toBe("/mine/x");
    // A source that ran where its spec said (a client's own path shared on purpose): the spec's.
    const shared = { ...ofCopy, runcState: { config: { cgroups: { path: "/ns/c1" } } } };
    expect(restoredCgroupsPath("/ns/c1", "c", "ns", shared)).toBe("/ns/c1");
    expect(restoredCgroupsPath("/ns/c1", "b", "ns", shared)).toBe("/ns/c1");
    // No runc state path recorded: as before.
    expect(restoredCgroupsPath("/ns/c1", "c", "ns", { ...ofCopy, runcState: {} })).toBe("/ns/c1");
  });
});

describe("CRIU failures get the code their log names", () => {
  const failed = (lines: string) => new CryoError(Code.UNKNOWN, `criu dump pid 7: unknown (rc -52, errno 0): ${lines} (log: /w/dump.log)`);
  test.each([
    ["Error (criu/log.c:226): Can't create log file dump.log: Read-only file system", Code.FAILED_PRECONDITION, "failed precondition"],
    ["Error (criu/image.c:1): Unable to write: No space left on device", Code.RESOURCE_EXHAUSTED, "resource exhausted"],
    ["Error (criu/sk-inet.c:200): inet: Connected TCP socket, consider using --tcp-established option.", Code.FAILED_PRECONDITION, "failed precondition"],
    ["Error (criu/files.c:1): Permission denied", Code.PERMISSION_DENIED, "permission denied"],
  ])("%s", (line, code, word) => {
    const e = classifyCriuError(failed(line));
    expect(e.code).toBe(code);
    expect(e.message).toContain(`criu dump pid 7: ${word} (rc -52`);
    expect(e.message).toContain(line);
  });

  test("a cause cryo has a knob or an explanation for gets it after CRIU's line, coded already or not", () => {
    const ghost = classifyCriuError(failed("Error (criu/files-reg.c:1031): Can't dump ghost file /tmp/big of 8388608 size, increase limit"));
    expect(ghost.code).toBe(Code.FAILED_PRECONDITION);
    expect(ghost.message).toEndWith("raise it with the annotation cryo.checkpoint/ghost-limit (e.g. 64M), cryo.v1.CheckpointOptions.ghost_limit or [checkpoint] ghost_limit");
    // The file and its size, and no limit the dump may not have had (the hint said "1 MiB unless set" whatever was set).
    expect(ghost.message).toContain("/tmp/big (8388608 bytes), a deleted file the container still holds open, is larger than the dump's ghost-file limit");
    // libcriu's errno 17 coded it ALREADY_EXISTS already.
    const taken = new CryoError(Code.ALREADY_EXISTS, "criu restore /i: already exists (rc -52, errno 17): (00.006365) Error (criu/cr-restore.c:1237): Can't fork for 6: File exists");
    const e = classifyCriuError(taken);
    expect(e.code).toBe(Code.ALREADY_EXISTS);
    expect(e.message).toStartWith(taken.message);
    expect(e.message).toContain("that pid is in use in the PID namespace the container is restored into");
    // cryo's CRIU (patch 0006) on a joined user namespace with other maps than the checkpoint's.
    const maps = classifyCriuError(failed("Error (criu/namespaces.c:1736): Can't restore into the user namespace /run/pod/userns: its maps are not the images'"));
    expect(maps.code).toBe(Code.FAILED_PRECONDITION);
    expect(maps.message).toEndWith("restore it into one with the same uid and gid maps");
    // A host-network listener restored while its port is taken (CRIU 4.2's line, as seen here).
    const port = classifyCriuError(failed("(00.012372)      1: Error (criu/sk-inet.c:1059): inet: Can't bind inet socket (id 7): Address already in use"));
    expect(port.code).toBe(Code.FAILED_PRECONDITION);
    expect(port.message).toContain("criu dump pid 7: failed precondition (rc -52");
    expect(port.message).toEndWith("free the address, or restore into a network namespace of the container's own");
    // File locks without --file-locks (CRIU 4.2's line): the knobs that turn it on.
    const locks = classifyCriuError(failed("(00.087742) Error (criu/file-lock.c:110): Some file locks are hold by dumping tasks! You can try --file-locks to dump them."));
    expect(locks.code).toBe(Code.FAILED_PRECONDITION);
    expect(locks.message).toContain("set the annotation cryo.checkpoint/file-locks=true");
    // A terminal container whose interactive shell runs a command in the foreground (CRIU 4.2's lines, seen by a helper
    // session with ctr run -t ... sh and `sleep 1000` typed at its prompt; runc's shim fails the same way).
    const job = classifyCriuError(failed("(00.067972) Error (criu/tty.c:2281): tty: ctty inheritance detected sid/pgrp 1, no PTY peer with sid/pgrp needed; (00.068276) Error (criu/cr-dump.c:2033): Dumping FAILED."));
    expect(job.code).toBe(Code.FAILED_PRECONDITION);
    expect(job.message).toContain("criu dump pid 7: failed precondition (rc -52");
    expect(job.message).toEndWith("checkpoint once the command has ended, or run it in the background");
    // A file of the writable layer, restored without it (CRIU 4.2's lines, seen by a helper session): a file, the cwd,
    // an inotify watch's directory, a fifo; each named from the container's root.
    for (const [line, path] of [
      ["(00.012408)      1: Error (criu/files-reg.c:2353): Can't open file tmp/lock1 on restore: No such file or directory; (00.012410)      1: Error (criu/files-reg.c:2267): Can't open file tmp/lock1: No such file or directory", "/tmp/lock1"],
      ["(00.033950)      1: Error (criu/fsnotify.c:510): fsnotify: Unable to open /tmp/watchdir: No such file or directory", "/tmp/watchdir"],
      ["(00.013564)      6: Error (criu/fifo.c:98): Can't open fake fifo 0xd [tmp/zoo.fifo]: No such file or directory", "/tmp/zoo.fifo"],
    ] as const) {
      const gone = classifyCriuError(failed(line));
      expect(gone.code).toBe(Code.FAILED_PRECONDITION);
      expect(gone.message).toEndWith(`; the container had ${path} open, and the restored root file system has no ${path}: what a container writes lives in its writable layer, which a checkpoint carries only when asked (ctr containers checkpoint --rw, then ctr containers restore --rw); a file of a bind mount must be in its source`);
    }
    // A file the tree had open or mapped that changed in the restored root since the dump (CRIU 4.2's files-reg.c lines).
    for (const [line, end] of [
      ["(00.019) 1: Error (criu/files-reg.c:2199): File bin/busybox has bad size 1048580 (expect 1048576)", "/bin/busybox open or mapped, and it changed since the checkpoint (1048580 bytes, the checkpoint recorded 1048576; in the root file system, or in the source of a bind mount there)"],
      ["(00.019) 1: Error (criu/files-reg.c:2210): File etc/passwd has bad mode 0100600 (expect 0100644)", "/etc/passwd open or mapped, and it changed since the checkpoint (mode 0100600, the checkpoint recorded 0100644; in the root file system, or in the source of a bind mount there)"],
    ] as const) {
      const changed = classifyCriuError(new CryoError(Code.UNKNOWN, `criu restore /i: unknown (rc -52, errno 0): ${line}; (00.02) Error (criu/cr-restore.c:2447): Restoring FAILED.`));
      expect(changed.code).toBe(Code.FAILED_PRECONDITION);
      expect(changed.message).toContain("criu restore /i: failed precondition (rc -52");
      expect(changed.message).toEndWith(`; the container had ${end}: restore onto the root file system and bind sources it was checkpointed with`);
    }
    // Sockets (CRIU 4.2's lines, seen here with ctr containers checkpoint): each names what allows it, or says nothing does.
    const tcp = classifyCriuError(failed("(00.006904) Error (criu/sk-inet.c:200): inet: Connected TCP socket, consider using --tcp-established option.; (00.006910) Error (criu/cr-dump.c:1545): Dump files (pid: 22215) failed with -1"));
    expect(tcp.code).toBe(Code.FAILED_PRECONDITION);
    expect(tcp.message).toContain("set the annotation cryo.checkpoint/tcp-established=true (ctr run --annotation), cryo.v1.CheckpointOptions.tcp_established or [checkpoint] tcp_established = true");
    const ext = classifyCriuError(failed("(00.023626) Error (criu/sk-unix.c:874): unix: External socket is used. Consider using --ext-unix-sk option.; (00.023694) Error (criu/cr-dump.c:2033): Dumping FAILED."));
    expect(ext.code).toBe(Code.FAILED_PRECONDITION);
    expect(ext.message).toContain("set the annotation cryo.checkpoint/ext-unix-sk=true (ctr run --annotation), cryo.v1.CheckpointOptions.external_unix_sockets or [checkpoint] ext_unix_sk = true");
    // With the "Runaway socket" line (the peer) CRIU logs before it: a stream peer is one no option allows; a datagram one ext-unix-sk does.
    const runaway = (type: number) => `(00.023329) unix: \tRunaway socket: ino 226894 peer_ino 294266 family    1 type    ${type} state  1 name /us/s.sock; (00.023626) Error (criu/sk-unix.c:874): unix: External socket is used. Consider using --ext-unix-sk option.`;
    const stream = classifyCriuError(failed(runaway(1)));
    expect(stream.code).toBe(Code.FAILED_PRECONDITION);
    expect(stream.message).toContain("; a unix stream socket of the container is connected to /us/s.sock outside it: CRIU cannot dump one half of a stream connection, with or without ext-unix-sk");
    expect(stream.message).not.toContain("set the annotation");
    expect(classifyCriuError(failed(runaway(2))).message).toContain("; a unix socket of the container is connected to /us/s.sock outside it (a host socket reached through a bind mount): set the annotation cryo.checkpoint/ext-unix-sk=true");
    const half = classifyCriuError(failed("(00.017198) Error (criu/sk-unix.c:881): unix: Can't dump half of stream unix connection. name: (null); peer name: /tmp/us/s.sock; (00.017388) Error (criu/cr-dump.c:2033): Dumping FAILED."));
    expect(half.code).toBe(Code.FAILED_PRECONDITION);
    expect(half.message).toContain("criu dump pid 7: failed precondition (rc -52");
    expect(half.message).toEndWith("; a unix stream socket of the container is connected to /tmp/us/s.sock outside it: CRIU cannot dump one half of a stream connection, with or without ext-unix-sk (cryo.checkpoint/ext-unix-sk lets it dump only datagram sockets connected outside); close the connection before the checkpoint, or run its peer in the container (a host socket reached through a bind mount is outside it, and so is a process exec'd into the container, which the checkpoint does not hold)");
    expect(classifyCriuError(failed("Error (criu/sk-unix.c:881): unix: Can't dump half of stream unix connection.")).message).toContain("is connected to a socket outside it");
    const nopeer = classifyCriuError(failed("(00.005634) Error (criu/sk-unix.c:418): unix: Unix socket 220743 without peer 219685; (00.005647) Error (criu/cr-dump.c:1545): Dump files (pid: 25204) failed with -1"));
    expect(nopeer.code).toBe(Code.FAILED_PRECONDITION);
    expect(nopeer.message).toContain("unix socket 220743 of the container is connected to socket 219685, which is not among the sockets the dump takes");
    // An open POSIX message queue (test/fixtures/mqhold.c, CRIU 4.2's line as seen here; runc's shim: criu failed: type NOTIFY).
    const mq = classifyCriuError(failed("(00.006641) Error (criu/files-reg.c:1790): Can't lookup mount=718 for fd=3 path=/zoo; (00.006652) Error (criu/cr-dump.c:1545): Dump files (pid: 28803) failed with -1"));
    expect(mq.code).toBe(Code.FAILED_PRECONDITION);
    expect(mq.message).toContain("criu dump pid 7: failed precondition (rc -52");
    expect(mq.message).toContain("the container holds fd 3 open on /zoo of a mount (id 718) that is not in its mount table: an open POSIX message queue");
    // A connection not yet accepted with data sent on it, and a nested PID namespace (CRIU 4.2's lines, as seen here; runc's shim: criu failed: type NOTIFY).
    const inflight = classifyCriuError(failed("(00.015375) Error (criu/sk-unix.c:506): unix: Non-empty write queue on an in-flight socket 0x12c8d; (00.015402) Error (criu/cr-dump.c:1621): Dump files (pid: 28483) failed with -1"));
    expect(inflight.code).toBe(Code.FAILED_PRECONDITION);
    expect(inflight.message).toContain("a unix socket of the container (inode 0x12c8d) is a connection its listener has not accepted yet, with data already sent on it, which CRIU cannot dump");
    const pidns = classifyCriuError(failed("(00.003322) Error (criu/namespaces.c:461): Can't dump nested pid namespace for 4397; (00.003325) Error (criu/namespaces.c:701): Can't make pidns id"));
    expect(pidns.code).toBe(Code.FAILED_PRECONDITION);
    expect(pidns.message).toContain("process 4397 of the container is in a PID namespace of its own (unshare -p, a sandbox), which CRIU cannot dump");
    // Processes that share their memory or fs info (clone CLONE_VM / CLONE_FS, CRIU 4.2's lines as seen here).
    const vm = classifyCriuError(failed("(00.003480) Error (criu/cr-dump.c:745): Can't make VM id for 12568; (00.003650) Error (criu/cr-dump.c:2109): Dumping FAILED."));
    expect(vm.code).toBe(Code.FAILED_PRECONDITION);
    expect(vm.message).toContain("process 12568 of the container shares its memory (clone with CLONE_VM, or a vfork child that has not exec'd yet) with another process that is not its thread, which CRIU cannot dump");
    expect(classifyCriuError(failed("Error (criu/cr-dump.c:752): Can't make FS id for 13135;")).message).toContain("process 13135 of the container shares its root and working directory (clone with CLONE_FS)");
    // A traced process (PTRACE_SEIZE by another process of the container; CRIU 4.2's lines as seen here).
    const traced = classifyCriuError(failed("(09.856191) Warn  (compel/src/lib/infect.c:132): Unable to interrupt task: 15252 (Operation not permitted); (09.856201) Error (criu/seize.c:335): zombie 15252 (comm prog) found while seizing; (10.0) Error (criu/cr-dump.c:1777): Timeout reached. Try to interrupt: 0"));
    expect(traced.code).toBe(Code.FAILED_PRECONDITION);
    expect(traced.message).toContain("process 15252 of the container could not be seized (EPERM): it is being traced by another process");
    // A userfaultfd and an io_uring instance (CRIU 4.2's lines as seen here; runc's shim fails too).
    const uffd = classifyCriuError(failed("(00.016769) Error (criu/files-ext.c:94): Can't dump file 3 of that type [600] (anon anon_inode:[userfaultfd]); (00.016793) Error (criu/cr-dump.c:1621): Dump files (pid: 29771) failed with -1"));
    expect(uffd.code).toBe(Code.FAILED_PRECONDITION);
    expect(uffd.message).toContain("the container holds fd 3 open on anon_inode:[userfaultfd], a kind of descriptor CRIU cannot dump");
    const uring = classifyCriuError(failed("pie: 1: Error (criu/pie/parasite.c:588): send_fds failed (-22); (00.011695) Error (criu/parasite-syscall.c:280): Can't retrieve FDs from socket"));
    expect(uring.code).toBe(Code.FAILED_PRECONDITION);
    expect(uring.message).toContain("an io_uring instance (io_uring_setup) is one the kernel never passes");
    // A stream connection to a process exec'd into the container (not in the checkpoint): CRIU names the peer "null".
    const execPeer = classifyCriuError(failed("(00.267539) unix: \tRunaway socket: ino 1215171 peer_ino 1215075 family    1 type    1 state  1 name null; (00.267543) Error (criu/sk-unix.c:874): unix: External socket is used. Consider using --ext-unix-sk option."));
    expect(execPeer.code).toBe(Code.FAILED_PRECONDITION);
    expect(execPeer.message).toContain("a unix stream socket of the container is connected to a socket outside it: CRIU cannot dump");
    expect(execPeer.message).toContain("and so is a process exec'd into the container, which the checkpoint does not hold");
    // A bind source that became a file (CRIU 4.2's mount-v2 line, as seen here): the hint says what the source is now.
    const dir = mkdtempSync(join(tmpdir(), "cryo-bind-kind-"));
    try {
      writeFileSync(join(dir, "src"), "file\n");
      const line = (src: string) => `(00.0311) mnt-v2: Error (criu/mount-v2.c:305): mnt-v2: Failed to move_mount from ${src} to /tmp/.criu.mntns.xyz/mnt-12: Invalid argument`;
      const bind = classifyCriuError(failed(line(join(dir, "src"))));
      expect(bind.code).toBe(Code.FAILED_PRECONDITION);
      expect(bind.message).toEndWith(`; ${join(dir, "src")} is a file: a bind mount's source must be of the kind it was at the checkpoint (a directory, or a file)`);
      expect(classifyCriuError(failed(line(dir))).message).toContain(`; ${dir} is a directory: `);
      expect(classifyCriuError(failed(line(join(dir, "gone")))).message).toContain(`; ${join(dir, "gone")} does not exist: `);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test("unknown causes and already classified errors stay as they are", () => {
    expect(classifyCriuError(failed("Error (criu/x.c:1): something else")).code).toBe(Code.UNKNOWN);
    const nf = new CryoError(Code.NOT_FOUND, "criu images dir /x: not found");
    expect(classifyCriuError(nf)).toBe(nf);
  });
});

describe("policy plugins at checkpoint and restore", () => {
  const plan = BUILTIN_CHECKPOINT_PLAN;
  const fakeEngine = (over: { checkpoint?: object; restore?: object; deny?: string }): PolicyEngine & { seen: unknown[] } => {
    const seen: unknown[] = [];
    return {
      seen,
      plugins: ["fake"],
      admit: () => Promise.reject(new Error("unused")),
      async checkpointOptions(input) {
        seen.push(input);
        if (over.deny) throw new CryoError(Code.PERMISSION_DENIED, `denied by plugin fake: ${over.deny}`);
        return { options: { ...input.requested, ...over.checkpoint }, consulted: ["fake"] };
      },
      async restoreAdmission(input) {
        seen.push(input);
        return { options: { ...input.requested, ...over.restore }, consulted: ["fake"] };
      },
      warm: () => Promise.resolve(),
      close: () => Promise.resolve(),
    };
  };

  test("ESTABLISHED lines of /proc/<pid>/net/tcp are counted", () => {
    const text = [
      "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode",
      "   0: 00000000:1B58 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1 1",
      "   1: 0100007F:1B58 0100007F:C350 01 00000000:00000000 00:00000000 00000000     0        0 2 1",
      "   2: 0100007F:C350 0100007F:1B58 01 00000000:00000000 00:00000000 00000000     0        0 3 1",
    ].join("\n");
    expect(countEstablished(text)).toBe(2);
    expect(countEstablished("")).toBe(0);
  });

  test("the checkpoint chain sees the plan in its names, and its options become the plan", async () => {
    const engine = fakeEngine({ checkpoint: { tcpEstablished: true, cgroupsMode: "full", emptyNamespaces: ["network"] } });
    const out = await checkpointPolicy(engine, { id: "c1", namespace: "ns", annotations: { a: "b" }, pid: 1, cgroupPaths: {}, plan });
    expect(out).toMatchObject({ tcpEstablished: true, cgroupMode: "full", emptyNamespaces: ["net"], leaveRunning: true });
    expect(engine.seen[0]).toMatchObject({ id: "c1", namespace: "ns", annotations: { a: "b" }, image: null, requested: { leaveRunning: true, cgroupsMode: "soft" } });
  });

  test("no engine (no plugin of the config has a checkpoint or restore hook): the plan and the options as they are", async () => {
    const image = () => Promise.reject(new Error("the image is read only for a plugin"));
    expect(await checkpointPolicy(undefined, { id: "c1", namespace: "ns", annotations: {}, pid: 1, cgroupPaths: {}, plan, image })).toBe(plan);
    const meta = { options: plan } as unknown as CheckpointMetadata;
    expect(await restorePolicy(undefined, { id: "c2", namespace: "ns", meta })).toBe(plan);
  });

  test("a deny stops the checkpoint; a bad namespace from a plugin is INVALID_ARGUMENT", async () => {
    await expect(checkpointPolicy(fakeEngine({ deny: "too big" }), { id: "c1", namespace: "ns", annotations: {}, pid: 1, cgroupPaths: {}, plan })).rejects.toMatchObject({ code: Code.PERMISSION_DENIED });
    const bad = fakeEngine({ checkpoint: { emptyNamespaces: ["pid"] } });
    await expect(checkpointPolicy(bad, { id: "c1", namespace: "ns", annotations: {}, pid: 1, cgroupPaths: {}, plan })).rejects.toMatchObject({ code: Code.INVALID_ARGUMENT });
  });

  test("the restore chain gets the checkpoint's origin and options; its options are used", async () => {
    const meta = {
      containerId: "c1",
      host: { hostname: "h1", kernel: "6.18", arch: "x64", criuVersion: 40201, cryoVersion: "x" },
      finishedAt: "2026-11-28T00:00:00.000Z",
      spec: { annotations: { "cryo.checkpoint/tcp-established": "true" } },
      options: plan,
    } as unknown as CheckpointMetadata;
    const engine = fakeEngine({ restore: { tcpEstablished: true, cgroupsMode: "ignore" } });
    const out = await restorePolicy(engine, { id: "c2", namespace: "ns", meta });
    expect(out).toMatchObject({ tcpEstablished: true, cgroupMode: "ignore" });
    expect(engine.seen[0]).toMatchObject({
      id: "c2",
      checkpoint: { containerId: "c1", originHost: "h1", kernel: "6.18", criuVersion: "40201", createdAt: "2026-11-28T00:00:00.000Z", annotations: { "cryo.checkpoint/tcp-established": "true" } },
      requested: { tcpEstablished: false, cgroupsMode: "soft" },
    });
    expect(pluginRestoreOptions(plan).tcpClose).toBe(false);
    expect(planWithRestoreOptions(plan, {}).tcpEstablished).toBe(false);
    expect(pluginCheckpointOptions(planWithCheckpointOptions(plan, { lazyPages: true })).lazyPages).toBe(true);
  });

  test("engine settings: a plugin sees compression, its level, the network lock, the ghost limit and the timeout, and may set them", async () => {
    const base = { ...plan, compression: "none" as const, compressionLevel: 0, networkLock: "nftables" as const, ghostLimit: 0, timeoutSeconds: 0 };
    const engine = fakeEngine({ checkpoint: { compression: "zstd", compressionLevel: 3, networkLock: "iptables", ghostLimit: 8 << 20, timeoutSeconds: 90 } });
    const out = await checkpointPolicy(engine, { id: "c1", namespace: "ns", annotations: {}, pid: 1, cgroupPaths: {}, plan: base });
    expect(out).toMatchObject({ compression: "zstd", compressionLevel: 3, networkLock: "iptables", ghostLimit: 8 << 20, timeoutSeconds: 90 });
    expect(engine.seen[0]).toMatchObject({ requested: { compression: "none", compressionLevel: 0, networkLock: "nftables", ghostLimit: 0, timeoutSeconds: 0 } });
    // Values the plan does not allow are INVALID_ARGUMENT, naming the option.
    const bad = fakeEngine({ checkpoint: { compressionLevel: 40 } as never });
    const e = await checkpointPolicy(bad, { id: "c1", namespace: "ns", annotations: {}, pid: 1, cgroupPaths: {}, plan: base }).catch((x: unknown) => x);
    expect(e).toMatchObject({ code: Code.INVALID_ARGUMENT });
    expect(String((e as Error).message)).toContain("compressionLevel");
  });
});

test("containerd's extraction of a checkpoint image: ctrd-checkpoint<digits> directly in XDG_RUNTIME_DIR, else TMPDIR, else /tmp", () => {
  expect(containerdExtraction("/tmp/ctrd-checkpoint123", {})).toBe(true);
  expect(containerdExtraction("/run/user/0/ctrd-checkpoint9", { XDG_RUNTIME_DIR: "/run/user/0", TMPDIR: "/var/tmp" })).toBe(true);
  expect(containerdExtraction("/var/tmp/ctrd-checkpoint9", { TMPDIR: "/var/tmp" })).toBe(true);
  expect(containerdExtraction("/var/tmp/ctrd-checkpoint9/", { TMPDIR: "/var/tmp/" })).toBe(true);
  // Anything else is a path a client gave, or another directory: left alone.
  expect(containerdExtraction("/tmp/ctrd-checkpoint9", { XDG_RUNTIME_DIR: "/run/user/0" })).toBe(false);
  expect(containerdExtraction("/tmp/x/ctrd-checkpoint9", {})).toBe(false);
  expect(containerdExtraction("/tmp/ctrd-checkpoint", {})).toBe(false);
  expect(containerdExtraction("/tmp/ctrd-checkpoint9x", {})).toBe(false);
  expect(containerdExtraction("/srv/images", {})).toBe(false);
});
