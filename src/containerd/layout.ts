import { basename, dirname, join, resolve } from "node:path";

/** Where everything of one private containerd lives, all under one directory. */
export interface ContainerdLayout {
  /** The directory that holds everything below. */
  dir: string;
  /** The generated config file. */
  config: string;
  /** containerd's persistent root (content store, snapshots, metadata). */
  root: string;
  /** containerd's state directory (runtime state, shim bundles). */
  state: string;
  /** The directory containerd's `opt` plugin installs into (kept private too). */
  opt: string;
  /** The gRPC socket (`ctr --address`). */
  address: string;
  /** The ttrpc socket, containerd's default `<address>.ttrpc`. */
  ttrpcAddress: string;
  /** containerd's stdout and stderr. */
  log: string;
  /** The PID of the running containerd, written by whoever started it. */
  pidFile: string;
  /** containerd's XDG_RUNTIME_DIR: it makes its checkpoint dump and extraction dirs here (1.6 never removes the latter). */
  tmp: string;
  /**
   * ctr's IO FIFOs for this containerd's tasks (`ctr --fifo-dir`, which PrivateContainerd.ctr gives), removed with the
   * directory: in ctr's default, /run/containerd/fifo, a detached task's FIFOs stay for good.
   */
  fifo: string;
}

/**
 * The name of a directory containerd extracted a checkpoint image into for a restore: Go's os.MkdirTemp with the
 * pattern "ctrd-checkpoint" (digits appended), in its XDG_RUNTIME_DIR or the temp dir. containerd (1.6 and 2.x)
 * never removes it.
 */
export const CONTAINERD_EXTRACTION_NAME = /^ctrd-checkpoint\d+$/;

/**
 * The name of the directory containerd makes for a Checkpoint it sends (1.6: "ctd-checkpoint", 2.x:
 * "ctrd-checkpoint", digits appended), in the same place, and removes when the request ends.
 */
export const CONTAINERD_CHECKPOINT_NAME = /^ctr?d-checkpoint\d+$/;

/**
 * Whether dir has a name of containerd's (name) and lies directly in containerd's temp directory: Go's
 * os.MkdirTemp($XDG_RUNTIME_DIR, ...), the temp dir ($TMPDIR or /tmp) where that variable is unset, as the shim's
 * environment (containerd's) says.
 */
export function inContainerdTemp(dir: string, name: RegExp, env: Record<string, string | undefined> = process.env): boolean {
  const base = env.XDG_RUNTIME_DIR || env.TMPDIR || "/tmp";
  return name.test(basename(dir)) && dirname(resolve(dir)) === resolve(base);
}

/** Returns the layout of a private containerd under dir. */
export function containerdLayout(dir: string): ContainerdLayout {
  const address = join(dir, "containerd.sock");
  return {
    dir,
    config: join(dir, "config.toml"),
    root: join(dir, "root"),
    state: join(dir, "state"),
    opt: join(dir, "opt"),
    address,
    ttrpcAddress: `${address}.ttrpc`,
    log: join(dir, "containerd.log"),
    pidFile: join(dir, "containerd.pid"),
    tmp: join(dir, "tmp"),
    fifo: join(dir, "fifo"),
  };
}

/** The longest path a unix socket may have (sun_path is 108 bytes with its NUL). */
export const maxSocketPath = 107;
