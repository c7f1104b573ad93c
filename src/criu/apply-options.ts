/**
 * Applies a CriuOpts to a libcriu criu_opts handle, one setter per option.
 *
 * Runs in the helper process only. String arguments are NUL-terminated buffers collected in `keep`,
 * which the caller holds until the libcriu call that uses them has returned.
 */
import type { Pointer } from "bun:ffi";
import { invalidArgument } from "../errors.ts";
import { CgMode, NetworkLock, PreDumpMode, type LibCriu } from "./libcriu.ts";
import type { CriuOpts } from "./options.ts";

/** CLONE_NEWNET, the only namespace CRIU accepts in --empty-ns. */
const CLONE_NEWNET = 0x40000000;

/** What the helper opened for this request. */
export interface OpenedDirs {
  imagesFd: number;
  workFd: number;
  /** Absolute path of the configuration file cryo wrote, if any. */
  configPath?: string;
}

/** Calls every setter opts needs on handle; returns the buffers to keep alive across the call. */
export function applyOptions(lib: LibCriu, handle: Pointer, opts: CriuOpts, dirs: OpenedDirs, defaultLog: string): Buffer[] {
  const f = lib.fn;
  const keep: Buffer[] = [];
  const c = (s: string): Buffer => {
    const b = lib.cstr(s);
    keep.push(b);
    return b;
  };
  const check = (name: string, rc: number): void => {
    if (rc < 0) throw invalidArgument(`criu option ${name}`, { detail: `libcriu returned ${rc}` });
  };
  const flag = (value: boolean | undefined, set: (h: Pointer, v: boolean) => void): void => {
    if (value !== undefined) set(handle, value);
  };

  if (opts.serviceBinary) check("service binary", f.criu_local_set_service_binary(handle, c(opts.serviceBinary)));
  f.criu_local_set_images_dir_fd(handle, dirs.imagesFd);
  f.criu_local_set_work_dir_fd(handle, dirs.workFd);
  f.criu_local_set_log_level(handle, opts.logLevel ?? 4);
  check("log file", f.criu_local_set_log_file(handle, c(opts.logFile ?? defaultLog)));
  if (opts.pid !== undefined) f.criu_local_set_pid(handle, opts.pid);
  if (opts.parentImages) check("parent images", f.criu_local_set_parent_images(handle, c(opts.parentImages)));
  if (opts.root) check("root", f.criu_local_set_root(handle, c(opts.root)));

  flag(opts.leaveRunning, f.criu_local_set_leave_running);
  flag(opts.tcpEstablished, f.criu_local_set_tcp_established);
  flag(opts.tcpClose, f.criu_local_set_tcp_close);
  flag(opts.tcpSkipInFlight, f.criu_local_set_tcp_skip_in_flight);
  flag(opts.extUnixSk, f.criu_local_set_ext_unix_sk);
  for (const ino of opts.unixSkInodes ?? []) check("unix sk", f.criu_local_add_unix_sk(handle, ino));
  flag(opts.shellJob, f.criu_local_set_shell_job);
  flag(opts.fileLocks, f.criu_local_set_file_locks);
  flag(opts.trackMem, f.criu_local_set_track_mem);
  flag(opts.autoDedup, f.criu_local_set_auto_dedup);
  flag(opts.linkRemap, f.criu_local_set_link_remap);
  flag(opts.forceIrmap, f.criu_local_set_force_irmap);
  for (const p of opts.irmapPaths ?? []) check("irmap path", f.criu_local_add_irmap_path(handle, c(p)));
  flag(opts.evasiveDevices, f.criu_local_set_evasive_devices);
  flag(opts.weakSysctls, f.criu_local_set_weak_sysctls);
  flag(opts.orphanPtsMaster, f.criu_local_set_orphan_pts_master);
  flag(opts.skipFileRwxCheck, f.criu_local_set_skip_file_rwx_check);
  flag(opts.manageCgroups, f.criu_local_set_manage_cgroups);
  if (opts.manageCgroupsMode) f.criu_local_set_manage_cgroups_mode(handle, CgMode[opts.manageCgroupsMode]);
  if (opts.freezeCgroup) check("freeze cgroup", f.criu_local_set_freeze_cgroup(handle, c(opts.freezeCgroup)));
  for (const r of opts.cgRoots ?? []) {
    const ctrl = r.controller === undefined ? null : c(r.controller);
    check("cgroup root", f.criu_local_add_cg_root(handle, ctrl, c(r.path)));
  }
  if (opts.cgYard) check("cgroup yard", f.criu_local_add_cg_yard(handle, c(opts.cgYard)));
  for (const ctl of opts.cgDumpControllers ?? []) check("cgroup dump controller", f.criu_local_add_cg_dump_controller(handle, c(ctl)));
  if (opts.cgProps !== undefined) check("cgroup props", f.criu_local_add_cg_props(handle, c(opts.cgProps)));
  if (opts.cgPropsFile) check("cgroup props file", f.criu_local_add_cg_props_file(handle, c(opts.cgPropsFile)));
  if (opts.emptyNs?.length) f.criu_local_set_empty_ns(handle, opts.emptyNs.includes("net") ? CLONE_NEWNET : 0);
  for (const j of opts.joinNs ?? []) {
    check(`join ns ${j.ns}`, f.criu_local_join_ns_add(handle, c(j.ns), c(j.file), j.extra === undefined ? null : c(j.extra)));
  }
  if (opts.lsmProfile) check("lsm profile", f.criu_local_set_lsm_profile(handle, c(opts.lsmProfile)));
  if (opts.lsmMountContext) check("lsm mount context", f.criu_local_set_lsm_mount_context(handle, c(opts.lsmMountContext)));
  for (const m of opts.extMounts ?? []) check(`ext mount ${m.key}`, f.criu_local_add_ext_mount(handle, c(m.key), c(m.value)));
  flag(opts.autoExtMnt, f.criu_local_set_auto_ext_mnt);
  flag(opts.extSharing, f.criu_local_set_ext_sharing);
  flag(opts.extMasters, f.criu_local_set_ext_masters);
  for (const e of opts.external ?? []) check(`external ${e}`, f.criu_local_add_external(handle, c(e)));
  for (const v of opts.vethPairs ?? []) check(`veth pair ${v.inside}`, f.criu_local_add_veth_pair(handle, c(v.inside), c(v.outside)));
  for (const i of opts.inheritFds ?? []) check(`inherit fd ${i.key}`, f.criu_local_add_inherit_fd(handle, i.fd, c(i.key)));
  for (const m of opts.skipMounts ?? []) check(`skip mount ${m}`, f.criu_local_add_skip_mnt(handle, c(m)));
  for (const fs of opts.enableFs ?? []) check(`enable fs ${fs}`, f.criu_local_add_enable_fs(handle, c(fs)));
  if (opts.ghostLimit !== undefined) f.criu_local_set_ghost_limit(handle, opts.ghostLimit);
  if (opts.timeout !== undefined) f.criu_local_set_timeout(handle, opts.timeout);
  if (opts.preDumpMode) check("pre-dump mode", f.criu_local_set_pre_dump_mode(handle, PreDumpMode[opts.preDumpMode]));
  if (opts.networkLock) check("network lock", f.criu_local_set_network_lock(handle, NetworkLock[opts.networkLock]));
  // A lazy (post-copy) dump serves its pages itself: its address and port go through the configuration
  // file (config-file.ts), as `criu dump --lazy-pages --address --port` takes them. Through the RPC's page
  // server field CRIU would read them as a page server to send to, since it applies the configuration
  // file's lazy-pages only after that field.
  if (opts.pageServer && !opts.lazyPages) {
    // libcriu's setter ends in `return -ENOMEM` on every path (lib/c/criu.c, CRIU 4.x), success included,
    // so its result says nothing. Its only real failure is an allocation of a few bytes.
    f.criu_local_set_page_server_address_port(handle, c(opts.pageServer.address), opts.pageServer.port);
  }
  flag(opts.mntnsCompatMode, f.criu_local_set_mntns_compat_mode);
  if (dirs.configPath) check("config file", f.criu_local_set_config_file(handle, c(dirs.configPath)));
  return keep;
}
