import { describe, expect, test } from "bun:test";
import { parse } from "smol-toml";
import { containerdLayout, renderContainerdConfig } from "../../../src/containerd/index.ts";

describe("private containerd config", () => {
  const layout = containerdLayout("/tmp/cryo-x");
  const config = parse(renderContainerdConfig(layout)) as Record<string, any>;

  test("keeps every path under the one directory", () => {
    expect(config.version).toBe(2);
    expect(config.root).toBe("/tmp/cryo-x/root");
    expect(config.state).toBe("/tmp/cryo-x/state");
    expect(config.grpc.address).toBe("/tmp/cryo-x/containerd.sock");
    expect(config.plugins["io.containerd.internal.v1.opt"].path).toBe("/tmp/cryo-x/opt");
  });

  test("leaves ttrpc to containerd's default and turns the debug socket off", () => {
    expect(config.ttrpc.address).toBe("");
    expect(layout.ttrpcAddress).toBe("/tmp/cryo-x/containerd.sock.ttrpc");
    expect(config.debug.address).toBe("");
  });

  test("registers cryo as CRI handler next to runc as default", () => {
    const cri = config.plugins["io.containerd.grpc.v1.cri"];
    expect(cri.restrict_oom_score_adj).toBe(true);
    expect(cri.containerd.default_runtime_name).toBe("runc");
    expect(cri.containerd.runtimes.runc.runtime_type).toBe("io.containerd.runc.v2");
    expect(cri.containerd.runtimes.cryo.runtime_type).toBe("io.containerd.cryo.v2");
  });
});
