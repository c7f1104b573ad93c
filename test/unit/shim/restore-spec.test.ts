import { expect, test } from "bun:test";
import { runcContainerFrom } from "../../../src/checkpoint/runc-criu.ts";
import { Code } from "../../../src/errors.ts";
import { errorOf } from "../../harness/error-of.ts";
import { confineToSpec } from "../../../src/shim/restore-spec.ts";

/** The dumped container as its checkpoint's runc state has it (what a crafted checkpoint controls). */
const dumped = (over: { mounts?: unknown[]; devices?: unknown[]; namespaces?: unknown[] } = {}) =>
  runcContainerFrom({
    id: "c1",
    init_process_pid: 10,
    config: {
      rootfs: "/b/rootfs",
      mounts: over.mounts ?? [
        { device: "proc", source: "proc", destination: "/proc" },
        { device: "bind", source: "/srv/data-on-dump-host", destination: "/data" },
      ],
      devices: over.devices ?? [{ path: "/dev/null" }, { path: "/dev/tty" }],
      namespaces: over.namespaces ?? [{ type: "NEWPID", path: "" }, { type: "NEWNET", path: "/proc/1/ns/net" }, { type: "NEWNS", path: "" }],
    },
  });

const spec = {
  mounts: [
    { destination: "/proc", type: "proc", source: "proc" },
    { destination: "/data/", type: "none", source: "/srv/data", options: ["rbind", "rw"] },
  ],
  linux: {
    devices: [{ path: "/dev/fuse" }],
    namespaces: [{ type: "pid" }, { type: "network", path: "/var/run/netns/n1" }, { type: "mount" }],
  },
};

const refusal = errorOf;

test("bind sources and joined namespaces come from the spec, not the checkpoint", () => {
  const c = confineToSpec(dumped(), spec, "w");
  expect(c.config.mounts.find((m) => m.destination === "/data")?.source).toBe("/srv/data");
  expect(c.config.mounts.find((m) => m.destination === "/proc")?.source).toBe("proc");
  expect(c.config.namespaces).toEqual([
    { type: "NEWPID", path: "" },
    { type: "NEWNET", path: "/var/run/netns/n1" },
    { type: "NEWNS", path: "" },
  ]);
  // A namespace path the checkpoint names but the spec does not: the tree gets its own namespace, joins nothing of the host.
  const noJoin = confineToSpec(dumped(), { ...spec, linux: { namespaces: [{ type: "pid" }, { type: "network" }, { type: "mount" }] } }, "w");
  expect(noJoin.config.namespaces.find((n) => n.type === "NEWNET")?.path).toBe("");
});

test("a bind mount the spec lacks, and a device neither runc's default nor the spec's, are refused", () => {
  const e1 = refusal(() => confineToSpec(dumped({ mounts: [{ device: "bind", source: "/", destination: "/host" }] }), spec, "restore container c1"));
  expect(e1.code).toBe(Code.INVALID_ARGUMENT);
  expect(e1.message).toContain("the checkpoint has a bind mount at /host that the bundle's spec does not have");
  // a spec mount at that destination that is not a bind does not count
  expect(() => confineToSpec(dumped({ mounts: [{ device: "bind", source: "/", destination: "/proc" }] }), spec, "w")).toThrow("bind mount at /proc");
  const e2 = refusal(() => confineToSpec(dumped({ devices: [{ path: "/etc" }] }), spec, "w"));
  expect(e2.message).toContain("the checkpoint has device /etc, which is neither runc's default nor in the bundle's spec");
  expect(() => confineToSpec(dumped({ devices: [{ path: "/dev/sda" }] }), spec, "w")).toThrow("device /dev/sda");
  expect(() => confineToSpec(dumped({ devices: [{ path: "/dev/fuse" }, { path: "/dev/urandom" }] }), spec, "w")).not.toThrow();
});

test("a relative bind source is the bundle's", () => {
  const rel = { ...spec, mounts: [{ destination: "/data", type: "bind", source: "data/../shared" }] };
  expect(confineToSpec(dumped(), rel, "w").config.mounts.find((m) => m.destination === "/data")?.source).toBe("/b/shared");
});

test("the checkpoint and the spec must name the same kinds of namespace", () => {
  // A pod's network namespace the checkpoint does not have: the tree would come back in the host's network.
  const pod = { ...spec, linux: { namespaces: [...spec.linux.namespaces, { type: "user" }] } };
  expect(() => confineToSpec(dumped(), pod, "w")).toThrow("the spec has NEWUSER, the checkpoint not");
  const hostNet = { ...spec, linux: { namespaces: [{ type: "pid" }, { type: "mount" }] } };
  expect(() => confineToSpec(dumped(), hostNet, "w")).toThrow("the checkpoint has NEWNET, the spec not");
});

test("a malformed spec is an INVALID_ARGUMENT that names it", () => {
  const e = refusal(() => confineToSpec(dumped(), { mounts: [{ destination: 3 }] }, "restore container c1"));
  expect(e.code).toBe(Code.INVALID_ARGUMENT);
  expect(e.message).toContain("restore container c1: the bundle's spec");
});
