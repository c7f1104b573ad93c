import { expect, test } from "bun:test";
import { placeInShimCgroup } from "../../../src/shim/shim-cgroup.ts";

test("a shim_cgroup the cgroup code refuses is named as the runtime option, before any cgroup is touched", async () => {
  await expect(placeInShimCgroup(process.pid, "/../x")).rejects.toThrow("shim cgroup /../x: cgroupsPath /../x: invalid argument: must not contain ..");
  await expect(placeInShimCgroup(process.pid, "a:b:c")).rejects.toThrow(/^shim cgroup a:b:c: cgroupsPath a:b:c: invalid argument: systemd cgroup paths/);
});
