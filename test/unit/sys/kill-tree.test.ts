import { expect, test } from "bun:test";
import { isAlive, killTree, processTree } from "../../../src/sys/proc.ts";
import { waitFor } from "../../harness/wait-for.ts";

// A shell with two children, one of which has a child of its own: the tree a restored container without its
// own PID namespace can have. Killing only the root would leave the other three running.
test("killTree ends the root and every descendant", async () => {
  await using proc = Bun.spawn(["sh", "-c", "sleep 60 & sh -c 'sleep 60 & wait' & wait"], { stdout: "ignore" });
  await waitFor(() => processTree(proc.pid).length === 4, { what: "the tree of four" });
  const tree = processTree(proc.pid);
  expect(tree[0]).toBe(proc.pid);
  killTree(proc.pid);
  await proc.exited;
  await waitFor(() => tree.every((p) => !isAlive(p)), { what: "every process of the tree gone" });
  expect(tree.filter(isAlive)).toEqual([]);
});

test("processTree and killTree of a pid that is gone", () => {
  const gone = Bun.spawnSync(["true"]).pid;
  expect(processTree(gone)).toEqual([gone]);
  expect(() => killTree(gone)).not.toThrow();
});
