/**
 * Runtime options: the protobuf Any containerd hands the shim (on `start`'s stdin, in a bootstrap
 * extension, or in CreateTaskRequest.options), turned into one plain internal shape.
 *
 * Accepted: containerd.runc.v1.Options (what containerd and ctr send for runc-compatible runtimes),
 * cryo.v1.RuntimeOptions (cryo's own), runtimeoptions.v1.Options (CRI's generic form: only its
 * config path is used), and containerd.linux.runc.CreateOptions (the v1 linux runtime's, which ctr 1.6
 * sends to a runtime not named io.containerd.runc.* for `ctr run --no-pivot`, `--uidmap`, `--gidmap`: its
 * runc fields are used, and its restore fields, which only the v1 runtime's Create read, are refused).
 * Type URLs are matched on the message name after the last "/", so both containerd's bare names and
 * "type.googleapis.com/..." work.
 */
import { fromBinary } from "@bufbuild/protobuf";
import { AnySchema, type Any } from "@bufbuild/protobuf/wkt";
import { CryoError, invalidArgument } from "../errors.ts";
import { OptionsSchema as RuncOptionsSchema } from "../gen/containerd/runc/options/oci_pb.ts";
import { CreateOptionsSchema as LinuxCreateOptionsSchema } from "../gen/containerd/linux/runctypes/runc_pb.ts";
import { OptionsSchema as CriOptionsSchema } from "../gen/containerd/runtimeoptions/v1/api_pb.ts";
import { Grouping, RuntimeOptionsSchema } from "../gen/cryo/v1/options_pb.ts";
import { defaultShimOptions, type ShimOptions } from "./shim-options.ts";

export { parseGroupingPolicy, type GroupingPolicy } from "./grouping-policy.ts";
export { DEFAULT_RUNC_ROOT, defaultShimOptions, type ShimOptions } from "./shim-options.ts";

function messageName(typeUrl: string): string {
  return typeUrl.slice(typeUrl.lastIndexOf("/") + 1);
}

/** The fields runc's Options and cryo's RuntimeOptions share (same names, same meaning). */
type RuncFields = Pick<ShimOptions, "binaryName" | "root" | "systemdCgroup" | "noPivotRoot" | "noNewKeyring" | "ioUid" | "ioGid" | "shimCgroup">;

function copyRuncFields(o: ShimOptions, m: RuncFields, name: string): void {
  // The shim runs runc in "/" for most calls and in the bundle for delete: a relative root or binary path would name
  // two places (a container created under /<root> whose delete then failed, its task never removed).
  if (m.binaryName.includes("/") && !m.binaryName.startsWith("/")) {
    throw invalidArgument(`runtime options ${name}`, { detail: `binary_name ${JSON.stringify(m.binaryName)}: a relative path; give a name on PATH or an absolute path` });
  }
  if (m.root && !m.root.startsWith("/")) throw invalidArgument(`runtime options ${name}`, { detail: `root ${JSON.stringify(m.root)}: a relative path; give an absolute one` });
  if (m.binaryName) o.binaryName = m.binaryName;
  if (m.root) o.root = m.root;
  o.systemdCgroup = m.systemdCgroup;
  o.noPivotRoot = m.noPivotRoot;
  o.noNewKeyring = m.noNewKeyring;
  o.ioUid = m.ioUid;
  o.ioGid = m.ioGid;
  o.shimCgroup = m.shimCgroup;
}

const groupingOf: Partial<Record<Grouping, ShimOptions["grouping"]>> = {
  [Grouping.PER_CONTAINER]: "per-container",
  [Grouping.PER_POD]: "per-pod",
  [Grouping.PER_NAMESPACE]: "per-namespace",
};

/** Decodes runtime options from an Any; undefined or empty gives the defaults; an unknown type is INVALID_ARGUMENT. */
export function decodeShimOptions(any: Any | undefined): ShimOptions {
  const o = defaultShimOptions();
  if (!any || (any.typeUrl === "" && any.value.length === 0)) return o;
  const name = messageName(any.typeUrl);
  try {
    switch (name) {
      case "containerd.runc.v1.Options": {
        copyRuncFields(o, fromBinary(RuncOptionsSchema, any.value), name);
        return o;
      }
      case "cryo.v1.RuntimeOptions": {
        const m = fromBinary(RuntimeOptionsSchema, any.value);
        copyRuncFields(o, m, name);
        o.configPath = m.configPath;
        if (m.grouping !== Grouping.UNSPECIFIED && !(m.grouping in groupingOf)) {
          throw invalidArgument(`runtime options ${name}`, { detail: `grouping ${m.grouping}: expected 1 (per container), 2 (per pod) or 3 (per namespace)` });
        }
        o.grouping = groupingOf[m.grouping];
        return o;
      }
      case "containerd.linux.runc.CreateOptions": {
        const m = fromBinary(LinuxCreateOptionsSchema, any.value);
        const restoreFields = [
          ["open_tcp", m.openTcp],
          ["external_unix_sockets", m.externalUnixSockets],
          ["terminal", m.terminal],
          ["file_locks", m.fileLocks],
          ["empty_namespaces", m.emptyNamespaces.length > 0],
          ["cgroups_mode", m.cgroupsMode !== ""],
          ["criu_work_path", m.criuWorkPath !== ""],
          ["criu_image_path", m.criuImagePath !== ""],
        ].flatMap(([k, set]) => (set ? [k] : []));
        if (restoreFields.length > 0) {
          throw invalidArgument(`runtime options ${name}`, { detail: `${restoreFields.join(", ")}: restore options of containerd's v1 linux runtime; cryo restores from CreateTaskRequest.checkpoint` });
        }
        o.noPivotRoot = m.noPivotRoot;
        o.noNewKeyring = m.noNewKeyring;
        o.shimCgroup = m.shimCgroup;
        o.ioUid = m.ioUid;
        o.ioGid = m.ioGid;
        return o;
      }
      case "runtimeoptions.v1.Options": {
        const m = fromBinary(CriOptionsSchema, any.value);
        o.configPath = m.configPath;
        return o;
      }
    }
  } catch (err) {
    if (err instanceof CryoError) throw err;
    throw invalidArgument(`runtime options ${name}`, { cause: err, detail: err instanceof Error ? err.message : String(err) });
  }
  throw invalidArgument(`runtime options type ${JSON.stringify(any.typeUrl)}`, { detail: "unsupported" });
}

/** Decodes a serialized Any (as on containerd 1.6's `start` stdin); empty input gives the defaults. */
export function decodeShimOptionsBytes(bytes: Uint8Array): ShimOptions {
  if (bytes.length === 0) return defaultShimOptions();
  let any: Any;
  try {
    any = fromBinary(AnySchema, bytes);
  } catch (err) {
    throw invalidArgument("runtime options", { cause: err, detail: "not a protobuf Any" });
  }
  return decodeShimOptions(any);
}
