import { expect, test } from "bun:test";
import { pidsInNamespaceTree, procReader, type ProcReader } from "../../../src/shim/pid-ns.ts";

test("a cgroup's processes that are the container's: in its PID namespace, or below one that is (nested namespaces); not another container's", () => {
  // 10: the copy's init (ns A), 11: exec'd into the copy (ns A, parent the shim 5), 12: in a nested namespace B below 11,
  // 20: the original's init (ns C) and 21 its child; 5: the shim, outside.
  const ns: Record<number, string> = { 1: "H", 5: "H", 10: "A", 11: "A", 12: "B", 20: "C", 21: "C" };
  const parent: Record<number, number> = { 5: 1, 10: 5, 11: 5, 12: 11, 20: 5, 21: 20 };
  const reader: ProcReader = { pidNs: (p) => ns[p], ppid: (p) => parent[p] };
  expect(pidsInNamespaceTree([10, 11, 12, 20, 21], "A", reader)).toEqual([10, 11, 12]);
  expect(pidsInNamespaceTree([10, 11, 12, 20, 21], "C", reader)).toEqual([20, 21]);
  // Gone meanwhile: not the container's (nothing to signal).
  expect(pidsInNamespaceTree([99], "A", reader)).toEqual([]);
});

test("the /proc reader: this process's PID namespace and parent", () => {
  expect(procReader.pidNs(process.pid)).toMatch(/^pid:\[\d+\]$/);
  expect(procReader.ppid(process.pid)).toBe(process.ppid);
  expect(procReader.pidNs(2 ** 22 + 1)).toBeUndefined();
});
