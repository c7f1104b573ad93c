import { create } from "@bufbuild/protobuf";
import { expect, test } from "bun:test";
import { checkNamespaceEntries, userNamespaceRoot, type NamespaceIds } from "../../../src/checkpoint/ns-image-check.ts";
import { Code, CryoError } from "../../../src/errors.ts";
import { TaskKobjIdsEntrySchema } from "../../../src/gen/criu/core_pb.ts";
import { UidGidExtentSchema } from "../../../src/gen/criu/userns_pb.ts";

// CRIU's own namespaces at the dump (the host's), and a container's root task in new ones of each kind.
const host = { vmId: 1, filesId: 1, fsId: 1, sighandId: 1, pidNsId: 10, netNsId: 11, ipcNsId: 12, utsNsId: 13, mntNsId: 14, userNsId: 15, cgroupNsId: 16, timeNsId: 17 };
const ids = (root: Partial<typeof host>): NamespaceIds => ({
  criu: create(TaskKobjIdsEntrySchema, host),
  root: create(TaskKobjIdsEntrySchema, { ...host, vmId: 2, filesId: 2, fsId: 2, sighandId: 2, ...root }),
});
// ctr's default spec: new pid, ipc, uts, mount and network namespaces, the host's user namespace.
const nsOf = (...types: string[]) => types.map((type) => ({ type }));
const ctrSpec = { linux: { namespaces: nsOf("pid", "ipc", "uts", "mount", "network") } };
const ctrIds = ids({ pidNsId: 20, netNsId: 21, ipcNsId: 22, utsNsId: 23, mntNsId: 24, timeNsId: 27 });
const extent = (first: number, lowerFirst: number, count: number) => create(UidGidExtentSchema, { first, lowerFirst, count });
const noUserns = () => {
  throw new Error("no userns image read");
};
const refusal = (f: () => void): CryoError => {
  try {
    f();
  } catch (e) {
    return e as CryoError;
  }
  throw new Error("not refused");
};

test("an honest container's ids pass: new namespaces where the spec gives them, the host's where it gives none; time and cgroup are not compared", () => {
  checkNamespaceEntries(ctrIds, ctrSpec, "w", noUserns);
  // Host network (ctr run --net-host): the network namespace stays CRIU's.
  checkNamespaceEntries(ids({ pidNsId: 20, ipcNsId: 22, utsNsId: 23, mntNsId: 24 }), { linux: { namespaces: nsOf("pid", "ipc", "uts", "mount") } }, "w", noUserns);
  // A network namespace joined by path (a pod's) is one CRIU must make too (an external one).
  checkNamespaceEntries(ctrIds, { linux: { namespaces: [...nsOf("pid", "ipc", "uts", "mount"), { type: "network", path: "/var/run/netns/pod" }] } }, "w", noUserns);
});

test("images that keep the tree in a namespace of the host's where the spec gives one are refused, and the reverse", () => {
  // The network namespace's id made equal to CRIU's: the restored tree would run in the host's network.
  const hostNet = refusal(() => checkNamespaceEntries(ids({ pidNsId: 20, ipcNsId: 22, utsNsId: 23, mntNsId: 24 }), ctrSpec, "restore x", noUserns, "ids-1.img"));
  expect(hostNet.code).toBe(Code.INVALID_ARGUMENT);
  expect(hostNet.message).toBe("restore x: invalid argument: ids-1.img: it keeps the tree in the network namespace of the CRIU that restores it (the host's), and the spec gives the container one of its own");
  const joined = refusal(() => checkNamespaceEntries(ids({ pidNsId: 20, ipcNsId: 22, utsNsId: 23, mntNsId: 24 }), { linux: { namespaces: [...nsOf("pid", "ipc", "uts", "mount"), { type: "network", path: "/p" }] } }, "w", noUserns));
  expect(joined.message).toContain("the network namespace of the CRIU that restores it (the host's), and the spec gives the container one by path");
  // Unless the path is the host's own namespace (a host-network pod's containers join the pause's, the host's):
  // the real one, /proc/self/ns/net, by the default test, and the test's answer otherwise.
  const hostPod = { linux: { namespaces: [...nsOf("pid", "ipc", "uts", "mount"), { type: "network", path: "/proc/self/ns/net" }] } };
  checkNamespaceEntries(ids({ pidNsId: 20, ipcNsId: 22, utsNsId: 23, mntNsId: 24 }), hostPod, "w", noUserns);
  checkNamespaceEntries(ids({ pidNsId: 20, ipcNsId: 22, utsNsId: 23, mntNsId: 24 }), { linux: { namespaces: [...nsOf("pid", "ipc", "uts", "mount"), { type: "network", path: "/p" }] } }, "w", noUserns, "ids", (kind, path) => kind === "network" && path === "/p");
  const notHost = refusal(() => checkNamespaceEntries(ids({ pidNsId: 20, ipcNsId: 22, utsNsId: 23, mntNsId: 24 }), hostPod, "w", noUserns, "ids", () => false));
  expect(notHost.message).toContain("and the spec gives the container one by path");
  // A user namespace joined by path is never taken for the host's.
  const userJoined = refusal(() => checkNamespaceEntries(ids({ pidNsId: 20, netNsId: 21, ipcNsId: 22, utsNsId: 23, mntNsId: 24 }), { linux: { namespaces: [...nsOf("pid", "ipc", "uts", "mount", "network"), { type: "user", path: "/proc/self/ns/user" }] } }, "w", noUserns));
  expect(userJoined.message).toContain("it keeps the tree in the user namespace of the CRIU that restores it (the host's), and the spec gives the container one by path");
  // A user namespace the spec does not give.
  const extra = refusal(() => checkNamespaceEntries(ids({ pidNsId: 20, netNsId: 21, ipcNsId: 22, utsNsId: 23, mntNsId: 24, userNsId: 25 }), ctrSpec, "w", noUserns, "ids-1.img"));
  expect(extra.message).toBe("w: invalid argument: ids-1.img: it makes the tree a user namespace, and the spec gives the container none (it shares the host's)");
});

test("a user namespace of the container's own: its maps must be the spec's, in any order", () => {
  const spec = {
    linux: {
      namespaces: nsOf("pid", "ipc", "uts", "mount", "network", "user"),
      uidMappings: [{ containerID: 0, hostID: 100000, size: 65536 }],
      gidMappings: [
        { containerID: 1, hostID: 200001, size: 10 },
        { containerID: 0, hostID: 200000, size: 1 },
      ],
    },
  };
  const withUserns = ids({ pidNsId: 20, netNsId: 21, ipcNsId: 22, utsNsId: 23, mntNsId: 24, userNsId: 25 });
  const read: number[] = [];
  const maps = (uid0: number) => (id: number) => {
    read.push(id);
    return { uidMap: [extent(0, uid0, 65536)], gidMap: [extent(0, 200000, 1), extent(1, 200001, 10)] };
  };
  checkNamespaceEntries(withUserns, spec, "w", maps(100000));
  expect(read).toEqual([25]);
  // The container's root mapped to the host's.
  const hostRoot = refusal(() => checkNamespaceEntries(withUserns, spec, "w", maps(0)));
  expect(hostRoot.code).toBe(Code.INVALID_ARGUMENT);
  expect(hostRoot.message).toBe("w: invalid argument: userns-25.img: its uid map (0 0 65536) is not the spec's linux.uidMappings");
  // No user namespace made, although the spec gives one: the tree would run as the host's root.
  const none = refusal(() => checkNamespaceEntries(ctrIds, spec, "w", maps(100000)));
  expect(none.message).toContain("it keeps the tree in the user namespace of the CRIU that restores it (the host's), and the spec gives the container one of its own");
  const fewer = refusal(() => checkNamespaceEntries(withUserns, spec, "w", () => ({ uidMap: [extent(0, 100000, 65536)], gidMap: [extent(0, 200000, 1)] })));
  expect(fewer.message).toBe("w: invalid argument: userns-25.img: its gid map (0 200000 1) is not the spec's linux.gidMappings");
});

test("a user namespace joined by path (a pod's): the images make one; its maps are held to the spec's where it gives them, else left to CRIU", () => {
  const joinedUser = [...nsOf("pid", "ipc", "uts", "mount", "network"), { type: "user", path: "/proc/9/ns/user" }];
  const withUserns = ids({ pidNsId: 20, netNsId: 21, ipcNsId: 22, utsNsId: 23, mntNsId: 24, userNsId: 25 });
  const maps = (uid0: number) => () => ({ uidMap: [extent(0, uid0, 65536)], gidMap: [extent(0, 100000, 65536)] });
  const specMaps = { uidMappings: [{ containerID: 0, hostID: 100000, size: 65536 }], gidMappings: [{ containerID: 0, hostID: 100000, size: 65536 }] };
  checkNamespaceEntries(withUserns, { linux: { namespaces: joinedUser, ...specMaps } }, "w", maps(100000));
  const other = refusal(() => checkNamespaceEntries(withUserns, { linux: { namespaces: joinedUser, ...specMaps } }, "w", maps(0)));
  expect(other.message).toBe("w: invalid argument: userns-25.img: its uid map (0 0 65536) is not the spec's linux.uidMappings");
  // No mappings in the spec: cryo's CRIU compares the images' with the joined namespace's (scripts/criu/0006).
  checkNamespaceEntries(withUserns, { linux: { namespaces: joinedUser } }, "w", noUserns);
  // Images that make none would leave the tree in the host's user namespace.
  const none = refusal(() => checkNamespaceEntries(ctrIds, { linux: { namespaces: joinedUser } }, "w", noUserns));
  expect(none.message).toContain("it keeps the tree in the user namespace of the CRIU that restores it (the host's), and the spec gives the container one by path");
});

test("userNamespaceRoot: the host ids of the container's 0, for a user namespace of its own or joined by path", () => {
  const maps = { uidMappings: [{ containerID: 0, hostID: 100000, size: 65536 }], gidMappings: [{ containerID: 0, hostID: 300000, size: 65536 }] };
  const notRead = () => {
    throw new Error("maps read");
  };
  expect(userNamespaceRoot({ linux: { namespaces: nsOf("pid", "user"), ...maps } }, "w", notRead)).toEqual({ uid: 100000, gid: 300000 });
  expect(userNamespaceRoot({ linux: { namespaces: nsOf("pid"), ...maps } }, "w", notRead)).toBeUndefined();
  // Joined by path: the spec's mappings where it gives them, else the namespace's own, read through its path.
  expect(userNamespaceRoot({ linux: { namespaces: [{ type: "user", path: "/proc/9/ns/user" }], ...maps } }, "w", notRead)).toEqual({ uid: 100000, gid: 300000 });
  const paths: string[] = [];
  const joined = (path: string) => {
    paths.push(path);
    return path === "/proc/9/ns/user" ? { uidMap: "         0     100000      65536\n", gidMap: "         1     400001      9\n         0     400000      1\n" } : undefined;
  };
  expect(userNamespaceRoot({ linux: { namespaces: [{ type: "user", path: "/proc/9/ns/user" }] } }, "w", joined)).toEqual({ uid: 100000, gid: 400000 });
  const unreadable = refusal(() => userNamespaceRoot({ linux: { namespaces: [{ type: "user", path: "/run/pod/userns" }] } }, "w", joined));
  expect(unreadable.code).toBe(Code.INVALID_ARGUMENT);
  expect(unreadable.message).toContain("it joins the user namespace /run/pod/userns, gives no linux.uidMappings and gidMappings, and the namespace's maps cannot be read from that path");
  expect(paths).toEqual(["/proc/9/ns/user", "/run/pod/userns"]);
  const gone = refusal(() => userNamespaceRoot({ linux: { namespaces: [{ type: "user", path: "/proc/9/ns/user" }] } }, "w", () => {
    throw new Error("ENOENT: no such file or directory");
  }));
  expect(gone.message).toBe("w: the user namespace /proc/9/ns/user: invalid argument: its maps could not be read: ENOENT: no such file or directory");
  // Other ids on both sides.
  expect(userNamespaceRoot({ linux: { namespaces: nsOf("user"), uidMappings: [{ containerID: 0, hostID: 5, size: 1 }], gidMappings: [{ containerID: 0, hostID: 6, size: 2 }] } }, "w")).toEqual({ uid: 5, gid: 6 });
  const unmapped = refusal(() => userNamespaceRoot({ linux: { namespaces: nsOf("user"), uidMappings: [{ containerID: 1, hostID: 100001, size: 10 }], gidMappings: maps.gidMappings } }, "w"));
  expect(unmapped.code).toBe(Code.INVALID_ARGUMENT);
  expect(unmapped.message).toBe("w: the bundle's spec: invalid argument: it gives the container a user namespace, and its linux.uidMappings map no id 0");
  const bad = refusal(() => userNamespaceRoot({ linux: { namespaces: nsOf("user"), uidMappings: [{ containerID: "0" }] } }, "w"));
  expect(bad.code).toBe(Code.INVALID_ARGUMENT);
  expect(bad.message).toContain("w: the bundle's spec");
});
