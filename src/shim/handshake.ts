/**
 * The two `start` handshakes.
 *
 * containerd 1.6/1.7 (legacy): stdin carries the runtime options as a serialized protobuf Any (or
 * nothing); the shim prints the bare socket address on stdout.
 *
 * containerd 2.x (bootstrap): stdin carries containerd.runtime.bootstrap.v1.BootstrapParams (instance
 * id, namespace, addresses, log level, socket dir, runtime options as an extension); the shim prints a
 * serialized BootstrapResult {version, address, protocol}. A legacy Any can decode as BootstrapParams
 * by accident, so, as containerd does, the params count only if their instance id and namespace match
 * the command line.
 */
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import type { Any } from "@bufbuild/protobuf/wkt";
import { invalidArgument } from "../errors.ts";
import {
  BootstrapParamsSchema,
  BootstrapResultSchema,
  LogLevel,
  type BootstrapParams,
} from "../gen/containerd/runtime/bootstrap/v1/bootstrap_pb.ts";
import { decodeShimOptions, decodeShimOptionsBytes, type ShimOptions } from "./runtime-options.ts";

/** The task API version the daemon serves at best (containerd.task.v3.Task, beside v2). */
export const SHIM_API_VERSION = 3;

/** What `start` learned from its stdin. */
export type StartInput =
  | { kind: "legacy"; options: ShimOptions }
  | {
      kind: "bootstrap";
      options: ShimOptions;
      ttrpcAddress: string;
      grpcAddress: string;
      debug: boolean;
      socketDir: string | undefined;
      containerdVersion: string;
    };

function tryBootstrap(bytes: Uint8Array, id: string, namespace: string): BootstrapParams | undefined {
  if (bytes.length === 0) return undefined;
  try {
    const p = fromBinary(BootstrapParamsSchema, bytes);
    return p.instanceId === id && p.namespace === namespace ? p : undefined;
  } catch {
    return undefined;
  }
}

/** Reads `start`'s stdin bytes in either handshake; the id and namespace come from the command line. */
export function decodeStartInput(bytes: Uint8Array, id: string, namespace: string): StartInput {
  const p = tryBootstrap(bytes, id, namespace);
  if (!p) return { kind: "legacy", options: decodeShimOptionsBytes(bytes) };
  let optionsAny: Any | undefined;
  for (const ext of p.extensions) {
    const name = ext.value?.typeUrl.slice(ext.value.typeUrl.lastIndexOf("/") + 1) ?? "";
    if (name === "containerd.runc.v1.Options" || name === "cryo.v1.RuntimeOptions" || name === "runtimeoptions.v1.Options") {
      optionsAny = ext.value;
      break;
    }
  }
  return {
    kind: "bootstrap",
    options: decodeShimOptions(optionsAny),
    ttrpcAddress: p.containerdTtrpcAddress,
    grpcAddress: p.containerdGrpcAddress,
    debug: p.logLevel < LogLevel.INFO,
    socketDir: p.socketDir,
    containerdVersion: p.containerdVersion,
  };
}

/** What `start` prints on stdout for the handshake it was called with. */
export function encodeStartOutput(input: StartInput, address: string): Uint8Array {
  if (input.kind === "legacy") return new TextEncoder().encode(address);
  if (!address.startsWith("unix://")) throw invalidArgument(`shim address ${address}`, { detail: "expected unix://" });
  return toBinary(BootstrapResultSchema, create(BootstrapResultSchema, { version: SHIM_API_VERSION, address, protocol: "ttrpc" }));
}
