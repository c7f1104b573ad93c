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

/** Parses a grouping policy name ("per-container", "per-pod", "per-namespace"); INVALID_ARGUMENT otherwise. */
export function parseGroupingPolicy(text: string): GroupingPolicy {
  const p = groupingNames[text.trim().toLowerCase()];
  if (!p) throw invalidArgument(`grouping policy ${JSON.stringify(text)}`, { detail: "expected per-container, per-pod or per-namespace" });
  return p;
}
