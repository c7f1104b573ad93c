import { describe, expect, test } from "bun:test";
import { parse } from "smol-toml";
import { addCryoRuntime, removeCryoRuntime, splitTomlKey } from "../../../src/cli/containerd-config-edit.ts";
import { unifiedDiff } from "../../../src/cli/unified-diff.ts";

const base = `# my containerd
version = 2
root = "/var/lib/containerd"   # keep this comment

[plugins."io.containerd.grpc.v1.cri".containerd]
  default_runtime_name = "runc"
  [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
    runtime_type = "io.containerd.runc.v2"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
      SystemdCgroup = true
`;

const cryoOf = (text: string) => (parse(text) as any).plugins["io.containerd.grpc.v1.cri"].containerd.runtimes.cryo;

describe("containerd config edit", () => {
  test("add appends the handler table and keeps every other line, comments included", () => {
    const { text, changed } = addCryoRuntime(base, "c.toml");
    expect(changed).toBe(true);
    expect(text.startsWith(base)).toBe(true);
    expect(cryoOf(text)).toEqual({ runtime_type: "io.containerd.cryo.v2" });
    expect((parse(text) as any).plugins["io.containerd.grpc.v1.cri"].containerd.runtimes.runc.options.SystemdCgroup).toBe(true);
  });

  test("add twice changes nothing; remove restores the original byte for byte", () => {
    const once = addCryoRuntime(base, "c.toml").text;
    expect(addCryoRuntime(once, "c.toml")).toEqual({ text: once, changed: false });
    const removed = removeCryoRuntime(once, "c.toml");
    expect(removed).toEqual({ text: base, changed: true });
    expect(removeCryoRuntime(base, "c.toml")).toEqual({ text: base, changed: false });
  });

  test("the handler's settings (pod and container annotations, options.ConfigPath) go into its table; the same again changes nothing, another value is refused; remove takes the options table too", () => {
    const settings = { podAnnotations: ["cryo.checkpoint/*", "io.cryo.*"], containerAnnotations: ["cryo.notify/*"], configPath: "/etc/cryo/config.toml" };
    const { text, changed } = addCryoRuntime(base, "c.toml", settings);
    expect(changed).toBe(true);
    expect(cryoOf(text)).toEqual({
      runtime_type: "io.containerd.cryo.v2",
      pod_annotations: ["cryo.checkpoint/*", "io.cryo.*"],
      container_annotations: ["cryo.notify/*"],
      options: { ConfigPath: "/etc/cryo/config.toml" },
    });
    expect(addCryoRuntime(text, "c.toml", settings)).toEqual({ text, changed: false });
    // Without settings asked for, a handler that has some is cryo's and stays as it is.
    expect(addCryoRuntime(text, "c.toml")).toEqual({ text, changed: false });
    expect(() => addCryoRuntime(text, "c.toml", { ...settings, podAnnotations: ["cryo.*"] })).toThrow(
      'containerd config c.toml: failed precondition: its runtime handler "cryo" has another pod_annotations than asked for (pod_annotations = ["cryo.checkpoint/*","io.cryo.*"]); run `cryo uninstall` first, or edit it by hand',
    );
    // A handler without them, asked for one: refused the same way, naming what it has (nothing).
    const plainHandler = addCryoRuntime(base, "c.toml").text;
    expect(() => addCryoRuntime(plainHandler, "c.toml", { configPath: "/x.toml" })).toThrow("has another options than asked for (options = null)");
    expect(removeCryoRuntime(text, "c.toml")).toEqual({ text: base, changed: true });
  });

  test("a file without a trailing newline, and a bare `version = 2`, get a valid table", () => {
    expect(cryoOf(addCryoRuntime("version = 2", "c.toml").text).runtime_type).toBe("io.containerd.cryo.v2");
    const fromEmpty = addCryoRuntime("version = 2\n", "c.toml").text;
    expect(removeCryoRuntime(fromEmpty, "c.toml").text).toBe("version = 2\n");
  });

  test("remove cuts the handler's subtables and stops at the next table", () => {
    const text = `version = 2
[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.cryo]
  runtime_type = "io.containerd.cryo.v2"
[plugins.'io.containerd.grpc.v1.cri'.containerd.runtimes.cryo.options]
  ConfigPath = "/etc/cryo/plugins.toml"
[plugins."io.containerd.internal.v1.opt"]
  path = "/opt"
`;
    const out = removeCryoRuntime(text, "c.toml").text;
    expect(out).toBe(`version = 2\n[plugins."io.containerd.internal.v1.opt"]\n  path = "/opt"\n`);
  });

  test("refuses version 1, other versions, bad TOML, a foreign cryo handler and forms a text edit cannot handle", () => {
    expect(() => addCryoRuntime(`root = "/x"\n`, "c.toml")).toThrow("containerd config c.toml: failed precondition: version 1");
    expect(() => addCryoRuntime(`version = 1\n`, "c.toml")).toThrow("version 1");
    expect(() => addCryoRuntime(`version = 5\n`, "c.toml")).toThrow("version 5: cryo edits version 2, 3 and 4 configs only");
    expect(() => addCryoRuntime(`version = "2"\n`, "c.toml")).toThrow('version "2" is a string, not a number (write `version = 2`, without quotes)');
    expect(() => addCryoRuntime(`version = 2\n[a\n`, "c.toml")).toThrow(/not valid TOML: .* \(line 2, column 3\)$/);
    // A float: containerd itself refuses it; install wrote the handler and said to restart containerd.
    expect(() => addCryoRuntime(`version = 2.0\n`, "c.toml")).toThrow("containerd config c.toml: invalid argument: version 2.0 is a float, not an integer: containerd refuses it (write `version = 2`)");
    const foreign = `version = 2\n[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.cryo]\n  runtime_type = "io.containerd.kata.v2"\n`;
    expect(() => addCryoRuntime(foreign, "c.toml")).toThrow('runtime handler "cryo" with runtime_type "io.containerd.kata.v2"');
    // uninstall leaves it alone too (it cut it out).
    expect(() => removeCryoRuntime(foreign, "c.toml")).toThrow(
      'containerd config c.toml: failed precondition: its runtime handler "cryo" has runtime_type "io.containerd.kata.v2", not io.containerd.cryo.v2: not cryo\'s, left alone',
    );
    const inline = `version = 2\n[plugins."io.containerd.grpc.v1.cri".containerd]\n  runtimes = { runc = { runtime_type = "io.containerd.runc.v2" } }\n`;
    expect(() => addCryoRuntime(inline, "c.toml")).toThrow("would make it invalid TOML");
    const inlineCryo = `version = 2\n[plugins."io.containerd.grpc.v1.cri".containerd.runtimes]\n  cryo = { runtime_type = "io.containerd.cryo.v2" }\n`;
    expect(() => removeCryoRuntime(inlineCryo, "c.toml")).toThrow("edit it by hand");
  });

  test.each([3, 4])("a version %d config (containerd 2.x) gets the handler under the CRI runtime plugin, and loses it byte for byte", (version) => {
    const v3 = `version = ${version}
root = '/var/lib/containerd'

[plugins]
  [plugins.'io.containerd.cri.v1.runtime']
    enable_selinux = false
    [plugins.'io.containerd.cri.v1.runtime'.containerd]
      default_runtime_name = 'runc'
      [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes]
        [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc]
          runtime_type = 'io.containerd.runc.v2'
          [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc.options]
            SystemdCgroup = false
`;
    const { text, changed } = addCryoRuntime(v3, "c.toml");
    expect(changed).toBe(true);
    expect(text.startsWith(v3)).toBe(true);
    expect(text).toContain(`[plugins."io.containerd.cri.v1.runtime".containerd.runtimes.cryo]`);
    const doc = parse(text) as any;
    expect(doc.plugins["io.containerd.cri.v1.runtime"].containerd.runtimes.cryo).toEqual({ runtime_type: "io.containerd.cryo.v2" });
    expect(doc.plugins["io.containerd.grpc.v1.cri"]).toBeUndefined();
    expect(addCryoRuntime(text, "c.toml")).toEqual({ text, changed: false });
    expect(removeCryoRuntime(text, "c.toml")).toEqual({ text: v3, changed: true });
    // A handler under version 2's path in a version 3 file is not cryo's entry there: containerd 2.x reads only the new path.
    const misplaced = `version = ${version}\n[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.cryo]\n  runtime_type = "io.containerd.cryo.v2"\n`;
    expect(removeCryoRuntime(misplaced, "c.toml")).toEqual({ text: misplaced, changed: false });
    expect((parse(addCryoRuntime(misplaced, "c.toml").text) as any).plugins["io.containerd.cri.v1.runtime"].containerd.runtimes.cryo.runtime_type).toBe("io.containerd.cryo.v2");
  });

  test("dotted keys split with quotes of both kinds", () => {
    expect(splitTomlKey(`plugins."io.containerd.grpc.v1.cri" . containerd.'a.b'`)).toEqual(["plugins", "io.containerd.grpc.v1.cri", "containerd", "a.b"]);
    expect(splitTomlKey(`a."b`)).toBeUndefined();
    expect(splitTomlKey(`a b`)).toBeUndefined();
  });

  test("the diff is a unified diff with three lines of context", () => {
    const before = "1\n2\n3\n4\n5\n";
    expect(unifiedDiff(before, before, "a", "b")).toBe("");
    // From nothing (install's new config): no line removed, as diff -u against an empty file prints it.
    expect(unifiedDiff("", "version = 2\n\nx = 1\n", "a", "b")).toBe(["--- a", "+++ b", "@@ -0,0 +1,3 @@", "+version = 2", "+", "+x = 1"].join("\n"));
    expect(unifiedDiff("x = 1\n", "", "a", "b")).toBe(["--- a", "+++ b", "@@ -1 +0,0 @@", "-x = 1"].join("\n"));
    expect(unifiedDiff(before, "1\n2\n3\n4\n5\n6\n", "a", "b")).toBe(["--- a", "+++ b", "@@ -3,3 +3,4 @@", " 3", " 4", " 5", "+6"].join("\n"));
    expect(unifiedDiff("1\n2\n3\n4\n5\n6\n7\n8\n", "1\n2\n3\n4\n6\n7\n8\n", "a", "b")).toBe(
      ["--- a", "+++ b", "@@ -2,7 +2,6 @@", " 2", " 3", " 4", "-5", " 6", " 7", " 8"].join("\n"),
    );
  });
});
