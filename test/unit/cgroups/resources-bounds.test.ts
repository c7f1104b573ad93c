/** LinuxResources with more list and map entries than any real container has are refused before the schema walks them. */
import { expect, test } from "bun:test";
import { Code, CryoError } from "../../../src/errors.ts";
import { MAX_RESOURCE_ENTRIES, parseLinuxResources } from "../../../src/cgroups/resources.ts";

const rule = (n: number) => ({ allow: true, type: "c", major: 195, minor: n % 256, access: "rwm" });
const throttle = (n: number) => ({ major: 8, minor: n, rate: 104857600 });

test("up to MAX_RESOURCE_ENTRIES entries in all pass (1000 device rules and 1000 throttles among them); one more is INVALID_ARGUMENT", () => {
  const big = {
    devices: Array.from({ length: 1000 }, (_, n) => rule(n)),
    blockIO: { throttleReadBpsDevice: Array.from({ length: 1000 }, (_, n) => throttle(n)) },
    hugepageLimits: [{ pageSize: "2MB", limit: 1073741824 }],
    unified: { "memory.high": "500000000" },
  };
  expect(parseLinuxResources(big).devices?.length).toBe(1000);
  const full = { devices: Array.from({ length: MAX_RESOURCE_ENTRIES - 2 }, (_, n) => rule(n)), unified: { "memory.high": "1", "memory.low": "1" } };
  expect(parseLinuxResources(full).devices?.length).toBe(MAX_RESOURCE_ENTRIES - 2);
  const over = { ...full, blockIO: { weightDevice: [{ major: 8, minor: 0, weight: 100 }] } };
  let err: unknown;
  try {
    parseLinuxResources(over);
  } catch (e) {
    err = e;
  }
  expect(err).toBeInstanceOf(CryoError);
  expect((err as CryoError).code).toBe(Code.INVALID_ARGUMENT);
  expect((err as CryoError).message).toBe(`linux resources: invalid argument: ${MAX_RESOURCE_ENTRIES + 1} device rules, block-device entries, hugepage limits, priorities, rdma and unified entries in all; at most ${MAX_RESOURCE_ENTRIES}`);
  // null sections count as none, as the schema takes them.
  expect(parseLinuxResources({ blockIO: null, network: null, devices: null }).devices).toBeNull();
});
