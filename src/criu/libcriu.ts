/**
 * The libcriu binding: bun:ffi over libcriu.so, loaded once into a table of functions.
 *
 * Only the handle-based `criu_local_*` API is bound, so two checkpoints never share options. Every
 * call that talks to CRIU (dump, restore, check, ...) forks `criu swrk` and blocks the calling thread
 * until CRIU answers: call them only from the helper process (see helper.ts), never from the shim's
 * event loop. This file and nothing else in src/criu touches bun:ffi.
 */
import { dlopen, FFIType, JSCallback, CString, type Pointer, read } from "bun:ffi";
import { CryoError, Code, unavailable } from "../errors.ts";

/** Where the setup installs libcriu; override with CRYO_LIBCRIU. */
export const DEFAULT_LIBCRIU_PATH = "/usr/local/lib/libcriu.so";

const { ptr, i32, u32, bool, void: v } = FFIType;
const h = ptr; // criu_opts *
const s = ptr; // const char * (NUL-terminated buffer kept alive by the caller)

/** Every libcriu symbol cryo uses, with its C signature. */
const symbols = {
  criu_local_init_opts: { args: [ptr], returns: i32 },
  criu_local_free_opts: { args: [h], returns: v },
  criu_local_set_service_binary: { args: [h, s], returns: i32 },
  criu_local_set_pid: { args: [h, i32], returns: v },
  criu_local_set_images_dir_fd: { args: [h, i32], returns: v },
  criu_local_set_parent_images: { args: [h, s], returns: i32 },
  criu_local_set_work_dir_fd: { args: [h, i32], returns: v },
  criu_local_set_leave_running: { args: [h, bool], returns: v },
  criu_local_set_ext_unix_sk: { args: [h, bool], returns: v },
  criu_local_add_unix_sk: { args: [h, u32], returns: i32 },
  criu_local_set_tcp_established: { args: [h, bool], returns: v },
  criu_local_set_tcp_skip_in_flight: { args: [h, bool], returns: v },
  criu_local_set_tcp_close: { args: [h, bool], returns: v },
  criu_local_set_weak_sysctls: { args: [h, bool], returns: v },
  criu_local_set_evasive_devices: { args: [h, bool], returns: v },
  criu_local_set_shell_job: { args: [h, bool], returns: v },
  criu_local_set_skip_file_rwx_check: { args: [h, bool], returns: v },
  criu_local_set_orphan_pts_master: { args: [h, bool], returns: v },
  criu_local_set_file_locks: { args: [h, bool], returns: v },
  criu_local_set_track_mem: { args: [h, bool], returns: v },
  criu_local_set_auto_dedup: { args: [h, bool], returns: v },
  criu_local_set_force_irmap: { args: [h, bool], returns: v },
  criu_local_set_link_remap: { args: [h, bool], returns: v },
  criu_local_set_log_level: { args: [h, i32], returns: v },
  criu_local_set_log_file: { args: [h, s], returns: i32 },
  criu_local_set_root: { args: [h, s], returns: i32 },
  criu_local_set_manage_cgroups: { args: [h, bool], returns: v },
  criu_local_set_manage_cgroups_mode: { args: [h, i32], returns: v },
  criu_local_set_freeze_cgroup: { args: [h, s], returns: i32 },
  criu_local_set_lsm_profile: { args: [h, s], returns: i32 },
  criu_local_set_lsm_mount_context: { args: [h, s], returns: i32 },
  criu_local_set_timeout: { args: [h, u32], returns: v },
  criu_local_set_auto_ext_mnt: { args: [h, bool], returns: v },
  criu_local_set_ext_sharing: { args: [h, bool], returns: v },
  criu_local_set_ext_masters: { args: [h, bool], returns: v },
  criu_local_add_ext_mount: { args: [h, s, s], returns: i32 },
  criu_local_add_veth_pair: { args: [h, s, s], returns: i32 },
  criu_local_add_cg_root: { args: [h, s, s], returns: i32 },
  criu_local_add_enable_fs: { args: [h, s], returns: i32 },
  criu_local_add_skip_mnt: { args: [h, s], returns: i32 },
  criu_local_set_ghost_limit: { args: [h, u32], returns: v },
  criu_local_add_irmap_path: { args: [h, s], returns: i32 },
  criu_local_add_cg_props: { args: [h, s], returns: i32 },
  criu_local_add_cg_props_file: { args: [h, s], returns: i32 },
  criu_local_add_cg_dump_controller: { args: [h, s], returns: i32 },
  criu_local_add_cg_yard: { args: [h, s], returns: i32 },
  criu_local_add_inherit_fd: { args: [h, i32, s], returns: i32 },
  criu_local_add_external: { args: [h, s], returns: i32 },
  criu_local_set_page_server_address_port: { args: [h, s, i32], returns: i32 },
  criu_local_set_pre_dump_mode: { args: [h, i32], returns: i32 },
  criu_local_set_network_lock: { args: [h, i32], returns: i32 },
  criu_local_join_ns_add: { args: [h, s, s, s], returns: i32 },
  criu_local_set_mntns_compat_mode: { args: [h, bool], returns: v },
  criu_local_set_config_file: { args: [h, s], returns: i32 },
  criu_local_set_empty_ns: { args: [h, i32], returns: v },
  criu_local_set_notify_cb: { args: [h, FFIType.function], returns: v },
  criu_notify_pid: { args: [ptr], returns: i32 },
  criu_get_orphan_pts_master_fd: { args: [], returns: i32 },
  criu_local_check: { args: [h], returns: i32 },
  criu_local_dump: { args: [h], returns: i32 },
  criu_local_pre_dump: { args: [h], returns: i32 },
  criu_local_restore: { args: [h], returns: i32 },
  criu_local_restore_child: { args: [h], returns: i32 },
  criu_local_get_version: { args: [h], returns: i32 },
  criu_local_feature_check: { args: [h, ptr, u32], returns: i32 },
} as const;

/** The loaded libcriu functions, typed from the symbol table. */
export type LibCriuSymbols = ReturnType<typeof dlopen<typeof symbols>>["symbols"];

/** enum criu_cg_mode, as libcriu numbers it. */
export const CgMode = { ignore: 0, none: 1, props: 2, soft: 3, full: 4, strict: 5, default: 6 } as const;
/** enum criu_pre_dump_mode. */
export const PreDumpMode = { splice: 1, read: 2 } as const;
/** enum criu_network_lock_method. */
export const NetworkLock = { iptables: 1, nftables: 2, skip: 3 } as const;
/** CRIU_LOG_* levels. */
export const LogLevel = { msg: 0, error: 1, warn: 2, info: 3, debug: 4 } as const;

/** The loaded library: its functions, errno access and the helpers that keep FFI details here. */
export interface LibCriu {
  readonly path: string;
  readonly fn: LibCriuSymbols;
  /** errno of the calling thread right after the last libcriu call (libcriu sets it to CRIU's cr_errno). */
  errno(): number;
  /** A NUL-terminated copy of s for a `const char *` argument; keep the returned buffer alive across the call. */
  cstr(s: string): Buffer;
  /** Allocates a criu_opts handle with libcriu's defaults. */
  newOpts(): Pointer;
  /** Reads the action string CRIU passes to a notify callback. */
  readString(p: Pointer): string;
  /** Wraps fn as a C notify callback `int (*)(char *action, CriuNotify *na)`; close() it after the call. */
  notifyCallback(fn: (action: Pointer, na: Pointer) => number): JSCallback;
}

let cached: LibCriu | undefined;
let cachedError: CryoError | undefined;

/** Loads libcriu once (later calls return the same table); UNAVAILABLE names the missing library or symbol. */
export function loadLibCriu(path = process.env.CRYO_LIBCRIU ?? DEFAULT_LIBCRIU_PATH): LibCriu {
  if (cached) return cached;
  if (cachedError) throw cachedError;
  try {
    cached = open(path);
    return cached;
  } catch (err) {
    cachedError = CryoError.from(err, Code.UNAVAILABLE);
    throw cachedError;
  }
}

function open(path: string): LibCriu {
  let lib: ReturnType<typeof dlopen<typeof symbols>>;
  try {
    lib = dlopen(path, symbols);
  } catch (err) {
    // Bun names the missing library or symbol (`Symbol "criu_local_dump" not found in ...`).
    throw unavailable(`libcriu ${path}`, { cause: err, detail: err instanceof Error ? err.message : String(err) });
  }
  const libc = dlopen("libc.so.6", {
    __errno_location: { args: [], returns: ptr },
  });
  const errnoPtr = (): Pointer => libc.symbols.__errno_location() as Pointer;
  return {
    path,
    fn: lib.symbols,
    errno: () => read.i32(errnoPtr(), 0),
    cstr: (str) => Buffer.from(`${str}\0`, "utf8"),
    newOpts() {
      const out = new BigUint64Array(1);
      const rc = lib.symbols.criu_local_init_opts(out);
      const handle = Number(out[0]);
      if (rc !== 0 || handle === 0) throw unavailable("libcriu criu_local_init_opts", { detail: `returned ${rc}` });
      return handle as Pointer;
    },
    readString: (p) => new CString(p).toString(),
    notifyCallback: (fn) => new JSCallback(fn, { args: [ptr, ptr], returns: i32 }),
  };
}
