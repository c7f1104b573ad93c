/**
 * Compiles, ahead of the first call, the protobuf codecs a daemon uses for every container: protobuf-es
 * compiles a message's binary reader and writer (and those of every message it contains) on its first
 * decode or encode. A standby daemon (standby-main.ts) runs this while it waits, so the first Create,
 * Start and events of the container it takes do not pay for it.
 */
import { create, fromBinary, toBinary, type DescMessage, type DescService } from "@bufbuild/protobuf";
import { AnySchema } from "@bufbuild/protobuf/wkt";
import * as taskEvents from "../gen/containerd/events/task_pb.ts";
import { Events } from "../gen/containerd/services/events/ttrpc/v1/events_pb.ts";
import { Task as TaskV2 } from "../gen/containerd/runtime/task/v2/shim_pb.ts";
import { Task as TaskV3 } from "../gen/containerd/runtime/task/v3/shim_pb.ts";
import { OptionsSchema } from "../gen/containerd/runc/options/oci_pb.ts";

function warm(schema: DescMessage): void {
  fromBinary(schema, new Uint8Array(0));
  toBinary(schema, create(schema));
}

/** Decodes and encodes an empty message of every schema the daemon's calls and events use. */
export function warmDaemonCodecs(): void {
  for (const service of [TaskV2, TaskV3, Events] as DescService[]) {
    for (const m of service.methods) {
      warm(m.input);
      warm(m.output);
    }
  }
  for (const value of Object.values(taskEvents)) {
    if (typeof value === "object" && value !== null && (value as { kind?: string }).kind === "message") warm(value as DescMessage);
  }
  warm(AnySchema);
  warm(OptionsSchema);
}
