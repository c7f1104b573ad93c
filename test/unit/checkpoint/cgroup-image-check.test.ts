import { create, type MessageInitShape } from "@bufbuild/protobuf";
import { expect, test } from "bun:test";
import { checkCgroupEntries, hostCgroupNames } from "../../../src/checkpoint/cgroup-image-check.ts";
import { CgroupEntrySchema } from "../../../src/gen/criu/cgroup_pb.ts";

const CTR = "ns/ctr";
const host = hostCgroupNames("12:devices:/x\n11:memory:/x\n5:cpu,cpuacct:/x\n1:name=systemd:/x\n0::/x\n");

/** A cgroup.img entry as CRIU dumps a container: every task in the container's cgroup, one hierarchy per controller. */
function image(over: { paths?: Record<string, string>; dirs?: Record<string, MessageInitShape<typeof CgroupEntrySchema>["controllers"]>; prefix?: number } = {}) {
  const names = ["", "devices", "memory", "cpu,cpuacct"];
  return create(CgroupEntrySchema, {
    sets: [{ id: 1, ctls: names.map((name) => ({ name, path: over.paths?.[name] ?? `/${CTR}`, ...(over.prefix !== undefined ? { cgnsPrefix: over.prefix } : {}) })) }],
    controllers: names.flatMap((name) => over.dirs?.[name] ?? [{ cnames: name.split(","), dirs: [{ dirName: CTR, children: [{ dirName: "sub" }] }] }]),
  });
}

const refused = (e: ReturnType<typeof image>) => {
  try {
    checkCgroupEntries([e], "restore container c1 from /ck", host);
  } catch (err) {
    return (err as Error).message;
  }
  return "accepted";
};

test("a container's own cgroups, sub-cgroups and a cgroup namespace prefix at a component are accepted", () => {
  expect(refused(image())).toBe("accepted");
  expect(refused(image({ paths: { memory: `/${CTR}/sub`, "cpu,cpuacct": `/${CTR}/sub/deeper` } }))).toBe("accepted");
  expect(refused(image({ prefix: CTR.length + 1 }))).toBe("accepted");
  expect(refused(image({ prefix: "/ns".length }))).toBe("accepted");
  expect(refused(create(CgroupEntrySchema, {}))).toBe("accepted");
});

test("a path outside the container's cgroup is refused, naming the set, the controller and the path", () => {
  expect(refused(image({ paths: { devices: "/" } }))).toBe(
    'restore container c1 from /ck: invalid argument: cgroup.img: set 1\'s devices path "/" is not an absolute path without empty, "." or ".." components',
  );
  expect(refused(image({ paths: { devices: "/system.slice" } }))).toBe(
    'restore container c1 from /ck: invalid argument: cgroup.img: set 1\'s devices path "/system.slice" is not below "/ns/ctr", the container\'s cgroup',
  );
  expect(refused(image({ paths: { memory: `/${CTR}/../../` } }))).toContain('set 1\'s memory path "/ns/ctr/../../" is not an absolute path without empty, "." or ".." components');
  expect(refused(image({ paths: { memory: `/${CTR}/sub/..` } }))).toContain("is not an absolute path");
  // A string prefix is not a directory prefix: CRIU would rewrite "/ns/ctrx" to a sibling of the new root.
  expect(refused(image({ paths: { "": `/${CTR}x` } }))).toContain('set 1\'s cgroup v2 path "/ns/ctrx" is not below "/ns/ctr"');
  expect(refused(image({ paths: { memory: "ns/ctr" } }))).toContain("is not an absolute path");
});

test("a hierarchy recorded from its root (the tasks were at its root, as an older runc leaves a controller it does not know) is accepted with the path \"/\"", () => {
  const atRoot = { memory: [{ cnames: ["memory"], dirs: [{ dirName: "", children: [{ dirName: "ns", children: [{ dirName: "ctr" }] }] }] }] };
  expect(refused(image({ paths: { memory: "/" }, dirs: atRoot }))).toBe("accepted");
  // "/" stays refused where the hierarchy's directory is the container's cgroup, and where it has none.
  expect(refused(image({ paths: { memory: "/" } }))).toContain('set 1\'s memory path "/" is not an absolute path without empty');
  expect(refused(image({ paths: { memory: "/" }, dirs: { memory: [{ cnames: ["memory"], dirs: [] }] } }))).toContain('set 1\'s memory path "/" is not an absolute path');
});

test("a path of a controller the image has no directory for, a bad directory name or prefix: refused", () => {
  expect(refused(image({ dirs: { devices: [{ cnames: ["devices"], dirs: [] }] } }))).toContain('set 1\'s devices path "/ns/ctr" is not below a directory of its controller (the image has none)');
  expect(refused(image({ dirs: { memory: [{ cnames: ["memory"], dirs: [{ dirName: CTR, children: [{ dirName: "../../evil" }] }] }] } }))).toBe(
    'restore container c1 from /ck: invalid argument: cgroup.img: directory "ns/ctr/../../evil" has an empty, "." or ".." component',
  );
  // The hierarchy's root as the top-level directory takes "/" only: CRIU would make "/ns/ctr" the new root + "ns/ctr".
  expect(refused(image({ dirs: { memory: [{ cnames: ["memory"], dirs: [{ dirName: "" }] }] } }))).toContain('set 1\'s memory path "/ns/ctr" is not "/" itself (the image records the hierarchy from its root)');
  expect(refused(image({ dirs: { memory: [{ cnames: ["memory"], dirs: [{ dirName: "", children: [{ dirName: "" }] }] }] } }))).toContain('directory "" has an empty');
  expect(refused(image({ dirs: { memory: [{ cnames: ["memory"], dirs: [{ dirName: "/abs" }] }] } }))).toContain('directory "/abs" has an empty');
  // Inside a component ("/ns/c|tr"), or past the top-level directory's name.
  expect(refused(image({ prefix: 5 }))).toContain("has a cgroup namespace prefix of 5, which does not end at one of the components of \"/ns/ctr\"");
  expect(refused(image({ paths: { memory: `/${CTR}/sub` }, prefix: CTR.length + 5 }))).toContain("cgroup namespace prefix of 11");
});

test("controller names that are not this host's hierarchies, two directories or two hierarchies for one controller, a directory no set is below: refused", () => {
  expect([...host].sort()).toEqual(["", "cpu", "cpuacct", "devices", "memory", "name=systemd"]);
  // CRIU mounts the hierarchy in its yard with the names as options and directory: never anything of the image's.
  expect(refused(image({ dirs: { memory: [{ cnames: ["memory,release_agent=/x"], dirs: [{ dirName: CTR }] }] } }))).toBe(
    'restore container c1 from /ck: invalid argument: cgroup.img: hierarchy "memory,release_agent=/x" names controller "memory,release_agent=/x", which is not a hierarchy of this host ("devices", "memory", "cpu", "cpuacct", "name=systemd", "")',
  );
  expect(refused(image({ dirs: { memory: [{ cnames: ["../../etc"], dirs: [{ dirName: CTR }] }] } }))).toContain('names controller "../../etc", which is not a hierarchy of this host');
  expect(refused(image({ paths: { memory: `/${CTR}` }, dirs: { memory: [{ cnames: ["memory"], dirs: [{ dirName: CTR }, { dirName: "ns/ctrx" }] }] } }))).toContain(
    'hierarchy "memory" has 2 top-level directories ("ns/ctr", "ns/ctrx"); a container\'s tasks are below one, its cgroup',
  );
  expect(refused(image({ dirs: { devices: [{ cnames: ["devices"], dirs: [{ dirName: CTR }] }, { cnames: ["devices"], dirs: [{ dirName: CTR }] }] } }))).toContain('controller "devices" appears in two hierarchies');
  // A hierarchy no set refers to: CRIU would make and chmod "system.slice" from the root.
  const extra = image();
  extra.controllers.push(create(CgroupEntrySchema, { controllers: [{ cnames: ["name=systemd"], dirs: [{ dirName: "system.slice", dirPerms: { mode: 0o777, uid: 1000, gid: 1000 } }] }] }).controllers[0]!);
  expect(refused(extra)).toContain('directory "system.slice" of controller "name=systemd" is in no set (CRIU would use it from the hierarchy\'s root)');
});

