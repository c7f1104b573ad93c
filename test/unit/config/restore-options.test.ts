/**
 * From the config's `[restore]` and the restore plugins' options to CRIU's restore options: the path
 * restore-container.ts takes (restoreSettings -> restoreDecision -> containerRestorePlan).
 */
import { describe, expect, test } from "bun:test";
import { containerRestorePlan, resolveCheckpointPlan, runcContainerFrom, type CheckpointMetadata } from "../../../src/checkpoint/index.ts";
import { parseConfig, restoreSettings } from "../../../src/config/index.ts";
import type { PolicyEngine, RestoreInput, RestoreOptions } from "../../../src/plugins/index.ts";
import { restoreDecision } from "../../../src/shim/checkpoint-policy.ts";

const recorded = resolveCheckpointPlan({ defaults: { tcpEstablished: true } });
const meta = {
  host: { hostname: "h1", kernel: "6.18", arch: "x64", criuVersion: 40201, cryoVersion: "x" },
  finishedAt: "2026-11-28T00:00:00.000Z",
  spec: { annotations: {} },
  options: recorded,
} as unknown as CheckpointMetadata;
const container = runcContainerFrom({ id: "c2", init_process_pid: 1, config: { rootfs: "/b/rootfs", mounts: [], namespaces: [{ type: "network" }] } });

/** A policy engine whose one restore plugin answers `answer` (what a plugin's restore export returns). */
function engineAnswering(answer: RestoreOptions | null): PolicyEngine & { seen: RestoreInput[] } {
  const seen: RestoreInput[] = [];
  return {
    seen,
    plugins: answer === null ? [] : ["p"],
    admit: () => Promise.reject(new Error("not used")),
    checkpointOptions: () => Promise.reject(new Error("not used")),
    async restoreAdmission(input) {
      seen.push(input);
      return { options: { ...input.requested, ...answer }, consulted: ["p"] };
    },
    warm: () => Promise.resolve(),
    close: () => Promise.resolve(),
  };
}

function criuOpts(plan: typeof recorded, vethPairs: { inside: string; outside: string }[]) {
  return containerRestorePlan({ plan, vethPairs, container, imagesDir: "/img", criuRoot: "/r", host: { v1Mountpoints: [] }, cgroupPaths: {}, descriptors: [] }).opts;
}

describe("restore options", () => {
  const config = parseConfig('[restore]\ntcp_close = true\nlsm_profile = "apparmor:host"\nveth_pairs = [{ inside = "eth0", outside = "vethA" }]\n', "/c.toml");

  test("the config's [restore] settings reach CRIU without plugins", async () => {
    const base = restoreSettings(meta.options, config.restore);
    const choice = await restoreDecision(engineAnswering(null), { id: "c2", namespace: "ns", meta, base });
    const opts = criuOpts(choice.plan, choice.vethPairs);
    expect(opts.tcpClose).toBe(true);
    expect(opts.tcpEstablished).toBe(true);
    expect(opts.lsmProfile).toBe("apparmor:host");
    expect(opts.vethPairs).toEqual([{ inside: "eth0", outside: "vethA" }]);
  });

  test("a restore plugin sees the config's settings and its veth pairs, tcp close and LSM profile win", async () => {
    const engine = engineAnswering({ tcpClose: false, lsmProfile: "apparmor:plugin", vethPairs: [{ inside: "eth1", outside: "vethB" }] });
    const base = restoreSettings(meta.options, config.restore);
    const choice = await restoreDecision(engine, { id: "c2", namespace: "ns", meta, base });
    expect(engine.seen[0]!.requested).toMatchObject({ tcpClose: true, lsmProfile: "apparmor:host", vethPairs: [{ inside: "eth0", outside: "vethA" }] });
    const opts = criuOpts(choice.plan, choice.vethPairs);
    expect(opts.tcpClose).toBe(false);
    expect(opts.lsmProfile).toBe("apparmor:plugin");
    expect(opts.vethPairs).toEqual([{ inside: "eth1", outside: "vethB" }]);
  });

  test("a plugin that names no veth pairs keeps the config's; with nothing configured CRIU gets none", async () => {
    const kept = await restoreDecision(engineAnswering({ tcpClose: true }), { id: "c2", namespace: "ns", meta, base: restoreSettings(meta.options, config.restore) });
    expect(kept.vethPairs).toEqual([{ inside: "eth0", outside: "vethA" }]);
    const none = await restoreDecision(engineAnswering(null), { id: "c2", namespace: "ns", meta, base: restoreSettings(meta.options, {}) });
    expect(criuOpts(none.plan, none.vethPairs).vethPairs).toBeUndefined();
    expect(criuOpts(none.plan, none.vethPairs).tcpClose).toBe(false);
  });
});
