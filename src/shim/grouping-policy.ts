/** Grouping policy names: how containers share shim daemons (see grouping.ts). No protobuf here: `start` loads this. */
import { invalidArgument } from "../errors.ts";

/** How containers share shim daemons. */
export type GroupingPolicy = "per-container" | "per-pod" | "per-namespace";

const groupingNames: Record<string, GroupingPolicy> = {
  "per-container": "per-container",
  container: "per-container",
  "per-pod": "per-pod",
  pod: "per-pod",
  "per-namespace": "per-namespace",
  namespace: "per-namespace",
};

/**
 * Parses a grouping policy name ("per-container", "per-pod", "per-namespace"); INVALID_ARGUMENT otherwise, naming
 * where the name came from (`annotation io.cryo.shim.grouping="x"`), as a bad checkpoint annotation is named.
 */
export function parseGroupingPolicy(text: string, from = "grouping policy"): GroupingPolicy {
  const p = groupingNames[text.trim().toLowerCase()];
  if (!p) throw invalidArgument(`${from}=${JSON.stringify(text)}`, { detail: "expected per-container, per-pod or per-namespace" });
  return p;
}
