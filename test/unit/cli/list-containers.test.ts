import { afterAll, describe, expect, test } from "bun:test";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createCryoCommands, runCli, type CliIo } from "../../../src/cli/index.ts";
import { bundleNamespace, containersJson, containersTable, namespaceRoots, selectContainers, type NamespacedListing } from "../../../src/cli/list-containers.ts";

const base = mkdtempSync(join(tmpdir(), "cryo-list-"));
afterAll(() => rmSync(base, { recursive: true, force: true }));

/** A stopped container's state.json (pid 0 never matches a live init) with a bundle in namespace ns. */
function writeState(root: string, id: string, ns: string, labels: string[] = []): void {
  const bundle = `/x/state/io.containerd.runtime.v2.task/${ns}/${id}`;
  mkdirSync(join(root, id), { recursive: true });
  writeFileSync(
    join(root, id, "state.json"),
    JSON.stringify({
      id,
      init_process_pid: 0,
      init_process_start: 0,
      created: "2026-01-02T03:04:05.123456789Z",
      config: { rootfs: `${bundle}/rootfs`, version: "1.0.2-dev", labels: [`bundle=${bundle}`, ...labels] },
    }),
  );
}

writeState(base, "cryo-a", "ns1", ["k=v"]);
writeState(base, "cryo-b", "ns2");
writeState(join(base, "ns1"), "runc-a", "ns1");
mkdirSync(join(base, "empty-ns"));

function captureIo(): CliIo & { stdout: string[]; stderr: string[] } {
  const stdout: string[] = [];
  const stderr: string[] = [];
  return { stdout, stderr, out: (t) => stdout.push(t), err: (t) => stderr.push(t) };
}

describe("cryo list", () => {
  test("a bundle path names its containerd namespace", () => {
    expect(bundleNamespace("/run/containerd/io.containerd.runtime.v2.task/k8s.io/abc")).toBe("k8s.io");
    expect(bundleNamespace("/srv/bundles/abc")).toBe("");
  });

  test("namespace roots are the subdirectories without a state.json", () => {
    expect(namespaceRoots(base)).toEqual(["empty-ns", "ns1"]);
    expect(namespaceRoots(join(base, "absent"))).toEqual([]);
  });

  test("a root lists its own containers; a namespace adds <base>/<ns>; all lists every namespace", () => {
    expect(selectContainers({ kind: "root", root: base }).map((r) => r.id)).toEqual(["cryo-a", "cryo-b"]);
    expect(selectContainers({ kind: "namespace", base, namespace: "ns1" }).map((r) => r.id)).toEqual(["cryo-a", "runc-a"]);
    expect(selectContainers({ kind: "all", base }).map((r) => `${r.namespace}/${r.id}`)).toEqual(["ns1/cryo-a", "ns1/runc-a", "ns2/cryo-b"]);
    const [row] = selectContainers({ kind: "root", root: base });
    expect(row).toMatchObject({ id: "cryo-a", pid: 0, status: "stopped", annotations: { k: "v" }, ociVersion: "1.0.2-dev" });
  });

  test("the table is laid out as runc's tabwriter does", () => {
    const row: NamespacedListing = {
      namespace: "n",
      ociVersion: "1",
      id: "c1",
      pid: 42,
      status: "running",
      bundle: "/b",
      rootfs: "/b/rootfs",
      created: "2026-01-02T03:04:05Z",
      owner: "root",
    };
    expect(containersTable([row], false)).toBe(
      ["ID          PID         STATUS      BUNDLE      CREATED                OWNER", "c1          42          running     /b          2026-01-02T03:04:05Z   root"].join("\n"),
    );
    expect(containersTable([], true)).toBe("NAMESPACE   ID          PID         STATUS      BUNDLE      CREATED     OWNER");
    expect(JSON.parse(containersJson([row], false))).toEqual([{ ociVersion: "1", id: "c1", pid: 42, status: "running", bundle: "/b", rootfs: "/b/rootfs", created: "2026-01-02T03:04:05Z", owner: "root" }]);
    expect(JSON.parse(containersJson([row], true))[0].namespace).toBe("n");
  });

  test("flags: json, quiet, and conflicting selections are usage errors", async () => {
    const table = createCryoCommands();
    const io = captureIo();
    expect(await runCli(table, ["list", "--root", base, "--format", "json"], io)).toBe(0);
    expect(JSON.parse(io.stdout[0]!).map((r: { id: string }) => r.id)).toEqual(["cryo-a", "cryo-b"]);
    expect(await runCli(table, ["list", "--base", base, "-A", "-q"], io)).toBe(0);
    // Every namespace: NAMESPACE/ID (one id may be in two namespaces).
    expect(io.stdout[1]).toMatch(/^[^/\n]+\/cryo-a\n[^/\n]+\/runc-a\n[^/\n]+\/cryo-b$/);
    expect(await runCli(table, ["list", "--root", base, "-q"], io)).toBe(0);
    expect(io.stdout[2]).toBe("cryo-a\ncryo-b");
    expect(await runCli(table, ["list", "--root", base, "--namespace", "ns1"], io)).toBe(2);
    expect(await runCli(table, ["list", "--format", "yaml"], io)).toBe(2);
    expect(await runCli(table, ["list", "extra"], io)).toBe(2);
    expect(io.stderr.at(-1)).toContain("usage: cryo list");
  });
});

test("a container whose state.json cannot be read is named on stderr and the rest are listed, as runc list does", async () => {
  const root = mkdtempSync(join(tmpdir(), "cryo-list-broken-"));
  try {
    writeState(root, "good", "ns1");
    mkdirSync(join(root, "torn"));
    writeFileSync(join(root, "torn", "state.json"), '{"id": "torn", "init_pro');
    mkdirSync(join(root, "no-state")); // a namespace root or a half-removed container: not a container, not named
    const io = captureIo();
    expect(await runCli(createCryoCommands(), ["list", "--root", root, "-q"], io)).toBe(0);
    expect(io.stdout).toEqual(["good"]);
    expect(io.stderr).toHaveLength(1);
    expect(io.stderr[0]).toStartWith(`cryo list: load container ${join(root, "torn")}: `);
    expect(io.stderr[0]).toContain("state.json");
    const skipped: string[] = [];
    expect(selectContainers({ kind: "all", base: root }, (dir) => skipped.push(dir)).map((r) => r.id)).toEqual(["good"]);
    expect(skipped).toEqual([join(root, "torn")]);
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});
