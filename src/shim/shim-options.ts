/**
 * The runtime options the shim uses, as one plain shape whatever protobuf message carried them
 * (runtime-options.ts decodes those). No protobuf here: `start` and `delete` load this.
 */
import type { GroupingPolicy } from "./grouping-policy.ts";

/** The runtime options the shim uses, whatever message carried them. */
export interface ShimOptions {
  /** runc binary (name on PATH or absolute path). */
  binaryName: string;
  /** runc --root. */
  root: string;
  systemdCgroup: boolean;
  noPivotRoot: boolean;
  noNewKeyring: boolean;
  ioUid: number;
  ioGid: number;
  shimCgroup: string;
  configPath: string;
  /** Grouping policy, when the options say; undefined leaves it to the environment and the default. */
  grouping: GroupingPolicy | undefined;
}

/** runc's default state root for containerd's runc shim, which cryo shares so `runc list` sees both. */
export const DEFAULT_RUNC_ROOT = "/run/containerd/runc";

/** Options when nothing was sent. */
export function defaultShimOptions(): ShimOptions {
  return {
    binaryName: "runc",
    root: DEFAULT_RUNC_ROOT,
    systemdCgroup: false,
    noPivotRoot: false,
    noNewKeyring: false,
    ioUid: 0,
    ioGid: 0,
    shimCgroup: "",
    configPath: "",
    grouping: undefined,
  };
}

