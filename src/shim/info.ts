/**
 * `-info`: what the shim says about itself to containerd 2.x. containerd writes the runtime options (a
 * serialized Any, possibly empty) to stdin and reads one containerd.types.RuntimeInfo from stdout.
 *
 * containerd 2.2+ asks before every task Create of a runtime not named io.containerd.runc.* until an answer
 * comes (then caches it), and logs "failed to load runtime info" each time it does not; CRI asks once per
 * handler at start, and takes the OCI runtime's features from the answer (recursive read-only mounts, user
 * namespaces with idmapped mounts). cryo creates containers through runc, so the features are runc's own
 * (`<BinaryName> features`), passed through as runc printed them, as containerd's runc shim does.
 */
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { AnySchema, type Any } from "@bufbuild/protobuf/wkt";
import * as z from "zod/mini";
import { unknown } from "../errors.ts";
import { RuntimeInfoSchema } from "../gen/containerd/types/introspection_pb.ts";
import { decodeShimOptionsBytes } from "./runtime-options.ts";
import { REVISION, SHIM_VERSION } from "./version.ts";

/** The runtime's name, as containerd registers it. */
export const RUNTIME_NAME = "io.containerd.cryo.v2";

/** The type URL containerd registers for runtime-spec's features.Features (core/runtime/typeurl.go), a JSON value. */
export const FEATURES_TYPE_URL = "types.containerd.io/opencontainers/runtime-spec/1/features/Features";

/** The two fields runtime-spec's features.md makes REQUIRED; the rest is passed on unread. */
const FeaturesSchema = z.looseObject({ ociVersionMin: z.string(), ociVersionMax: z.string() });

/** Checks `runc features` output; the bytes are passed on as they are when they are a features document. */
export function checkFeatures(stdout: Uint8Array, binary: string): Uint8Array {
  let doc: unknown;
  try {
    doc = JSON.parse(new TextDecoder().decode(stdout));
  } catch (err) {
    throw unknown(`${binary} features`, { cause: err, detail: "output is not JSON" });
  }
  const r = FeaturesSchema.safeParse(doc);
  if (!r.success) throw unknown(`${binary} features`, { detail: `not a runtime-spec features document: ${z.prettifyError(r.error)}` });
  return stdout;
}

/** Builds the RuntimeInfo answer: options echoed once decoded, features when the OCI runtime gave them. */
export function runtimeInfo(options: Any | undefined, features: Uint8Array | undefined): Uint8Array {
  return toBinary(
    RuntimeInfoSchema,
    create(RuntimeInfoSchema, {
      name: RUNTIME_NAME,
      version: { version: SHIM_VERSION.replace(/^cryo /, ""), revision: REVISION },
      options,
      features: features ? create(AnySchema, { typeUrl: FEATURES_TYPE_URL, value: features }) : undefined,
    }),
  );
}

/**
 * Answers `-info` for the options bytes containerd wrote. Bad options are an error (containerd reports it
 * with the stderr line); an OCI runtime without `features` (as youki was) leaves the features out, as
 * containerd's runc shim does, so containerd treats the runtime as one that does not say.
 */
export function answerInfo(stdin: Uint8Array, warn: (msg: string) => void = () => {}): Uint8Array {
  const binary = decodeShimOptionsBytes(stdin).binaryName;
  // decodeShimOptionsBytes has parsed the bytes as an Any of a type cryo knows: echo it.
  const options = stdin.length > 0 ? fromBinary(AnySchema, stdin) : undefined;
  let run: Bun.SyncSubprocess<"pipe", "pipe">;
  try {
    run = Bun.spawnSync([binary, "features"], { stdin: "ignore", stdout: "pipe", stderr: "pipe" });
  } catch (err) {
    // As containerd's runc shim: an OCI runtime that is not there is an error, not a runtime without features.
    throw unknown(`run ${binary} features`, { cause: err, detail: (err as Error).message });
  }
  if (run.success) return runtimeInfo(options, checkFeatures(run.stdout, binary));
  warn(`${binary} features: exit status ${run.exitCode}: ${run.stderr.toString().trim()}; answering without features`);
  return runtimeInfo(options, undefined);
}
