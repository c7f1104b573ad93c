/** The linger decision's input: which container's deletion seals a daemon's group (grouping-seal.ts). */
import { expect, test } from "bun:test";
import { groupKey } from "../../../src/shim/grouping.ts";
import { CONTAINER_TYPE_ANNOTATION, createGroupSeal, RUNC_GROUP_ANNOTATION, SANDBOX_ID_ANNOTATION, sealsGroup } from "../../../src/shim/grouping-seal.ts";

const sandboxId = "5f0c2a";
const sandbox = { [SANDBOX_ID_ANNOTATION]: sandboxId, [CONTAINER_TYPE_ANNOTATION]: "sandbox" };
const member = { [SANDBOX_ID_ANNOTATION]: sandboxId, [CONTAINER_TYPE_ANNOTATION]: "container" };

test("the CRI sandbox container seals its pod's group; nothing else does", () => {
  const key = groupKey("per-pod", sandboxId, "k8s.io", sandbox);
  expect(key).toBe(`group/${sandboxId}`);
  expect(sealsGroup(key, sandboxId, sandbox)).toBe(true);
  // a container of the pod, even one that (wrongly) has the sandbox's id but not its type
  expect(sealsGroup(key, "c1", member)).toBe(false);
  expect(sealsGroup(key, sandboxId, member)).toBe(false);
  expect(sealsGroup(key, sandboxId, { [CONTAINER_TYPE_ANNOTATION]: "sandbox" })).toBe(false);
  // a sandbox of another pod, and other groupings
  expect(sealsGroup(key, "other", { [SANDBOX_ID_ANNOTATION]: "other", [CONTAINER_TYPE_ANNOTATION]: "sandbox" })).toBe(false);
  expect(sealsGroup(groupKey("per-namespace", sandboxId, "k8s.io", sandbox), sandboxId, sandbox)).toBe(false);
  expect(sealsGroup(groupKey("per-container", sandboxId, "k8s.io", sandbox), sandboxId, sandbox)).toBe(false);
  expect(sealsGroup("", "", {})).toBe(false);
});

test("a runc group annotation other than the sandbox id keeps the group open", () => {
  const grouped = { ...sandbox, [RUNC_GROUP_ANNOTATION]: "team" };
  const key = groupKey("per-pod", sandboxId, "k8s.io", grouped);
  expect(key).toBe("group/team");
  expect(sealsGroup(key, sandboxId, grouped)).toBe(false);
  // the key forced to the sandbox's name is still not sealed by it while the runc group names another one
  expect(sealsGroup(`group/${sandboxId}`, sandboxId, grouped)).toBe(false);
  const same = { ...sandbox, [RUNC_GROUP_ANNOTATION]: sandboxId };
  expect(sealsGroup(groupKey("per-pod", sandboxId, "k8s.io", same), sandboxId, same)).toBe(true);
});

test("createGroupSeal: sealed only after the sandbox's init is deleted; annotations read only for the candidate", () => {
  const seal = createGroupSeal(`group/${sandboxId}`);
  const read: string[] = [];
  const annotationsOf = (id: string, a: Record<string, string>) => () => (read.push(id), a);
  seal.created(sandboxId, annotationsOf(sandboxId, sandbox));
  seal.created("c1", annotationsOf("c1", member));
  expect(read).toEqual([sandboxId]);
  expect(seal.sealed).toBe(false);
  seal.deleted("c1");
  expect(seal.sealed).toBe(false);
  seal.deleted(sandboxId);
  expect(seal.sealed).toBe(true);
});

test("createGroupSeal: a daemon without a key, a non-sandbox namesake, or unreadable annotations never seals", () => {
  const unknown = createGroupSeal("");
  unknown.created(sandboxId, () => sandbox);
  unknown.deleted(sandboxId);
  expect(unknown.sealed).toBe(false);

  const namesake = createGroupSeal(`group/${sandboxId}`);
  namesake.created(sandboxId, () => member);
  namesake.deleted(sandboxId);
  expect(namesake.sealed).toBe(false);

  const broken = createGroupSeal(`group/${sandboxId}`);
  broken.created(sandboxId, () => {
    throw new Error("config.json: not valid JSON");
  });
  broken.deleted(sandboxId);
  expect(broken.sealed).toBe(false);

  const namespace = createGroupSeal("namespace/k8s.io");
  namespace.created(sandboxId, () => sandbox);
  namespace.deleted(sandboxId);
  expect(namespace.sealed).toBe(false);
});

test("createGroupSeal: a failed Create of the pod's sandbox seals the group; of a member, another key's or unreadable, not", () => {
  const failed = createGroupSeal(`group/${sandboxId}`);
  failed.createFailed(sandboxId, () => sandbox);
  expect(failed.sealed).toBe(true);

  const member_ = createGroupSeal(`group/${sandboxId}`);
  member_.created(sandboxId, () => sandbox);
  member_.createFailed("c1", () => member);
  expect(member_.sealed).toBe(false);

  const broken = createGroupSeal(`group/${sandboxId}`);
  broken.createFailed(sandboxId, () => {
    throw new Error("config.json: no such file");
  });
  expect(broken.sealed).toBe(false);

  const namespace = createGroupSeal("namespace/k8s.io");
  namespace.createFailed(sandboxId, () => sandbox);
  expect(namespace.sealed).toBe(false);
});
