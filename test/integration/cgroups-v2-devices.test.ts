// Device rules on cgroup v2, on the real kernel: the program built from runc's rules is attached to a new
// cgroup2 directory, and a shell that moves itself into that cgroup tries devices. Nodes are made with
// mknod in a temporary directory (c 1:1 is /dev/mem's numbers, b 7:0 is loop0's), so the test does not
// depend on what /dev holds; on this kernel c 1:1 has no driver, so an open the cgroup lets through
// fails with ENXIO instead of EPERM. Everything created is removed; only the shells started here are ended.
import { afterAll, describe, expect, test } from "bun:test";
import { closeSync, constants, existsSync, mkdirSync, mkdtempSync, openSync, rmdirSync, rmSync } from "node:fs";
import { join } from "node:path";
import { hostCgroupMounts } from "../../src/cgroups/index.ts";
import { runcDeviceRules, type SpecDeviceRule } from "../../src/cgroups/v1-devices.ts";
import { applyV2DeviceRules } from "../../src/cgroups/v2-devices.ts";
import { BPF_CGROUP_DEVICE, BPF_F_ALLOW_MULTI, bpfProgQuery } from "../../src/sys/index.ts";
import { uniqueId, waitFor } from "../harness/index.ts";

const unified = (await hostCgroupMounts()).unified;
const canRun = process.getuid?.() === 0 && unified !== undefined && existsSync("/sys/dev/block/7:0");

const EPERM = "Operation not permitted";
const ENXIO = "No such device or address";

const children: Bun.Subprocess[] = [];
const cgroups: string[] = [];
const tmp = mkdtempSync("/tmp/cryo-devcg-");

afterAll(async () => {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill("SIGKILL");
  await Promise.all(children.map((c) => c.exited));
  for (const dir of cgroups) if (existsSync(dir)) await waitFor(() => (rmdirSync(dir), true), { what: `rmdir ${dir}`, timeoutMs: 5_000 });
  rmSync(tmp, { recursive: true, force: true });
});

/** A new cgroup2 directory with the program for runc's rules (the spec's, then runc's defaults) attached. */
function cgroupWithRules(spec: SpecDeviceRule[]): string {
  const dir = join(unified!, uniqueId("cryo-devcg"));
  mkdirSync(dir);
  cgroups.push(dir);
  applyV2DeviceRules(dir, runcDeviceRules(spec));
  return dir;
}

// $1: the cgroup to move into ("" stays put); $2: a directory for the nodes. Prints "<check>: ok" or "<check>: <error>".
const script = `
[ -z "$1" ] || echo $$ > "$1/cgroup.procs" || exit 90
try() { name=$1; shift; if err=$("$@" 2>&1 >/dev/null); then echo "$name: ok"; else echo "$name: \${err:-failed}"; fi; }
rd() { head -c 1 "$1"; }
wr() { : > "$1"; }
echo "cgroup: $(grep '^0::' /proc/$$/cgroup)"
try read-null rd /dev/null
try write-null wr /dev/null
try mknod-mem mknod "$2/mem" c 1 1
try read-mem rd "$2/mem"
try write-mem wr "$2/mem"
try mknod-loop mknod "$2/loop0" b 7 0
try read-loop rd "$2/loop0"
try write-loop wr "$2/loop0"
`;

/** Runs the checks in a shell that first joins cgroupDir (or stays where it is); check name -> result. */
async function checks(cgroupDir: string): Promise<Record<string, string>> {
  const nodes = mkdtempSync(join(tmp, "nodes-"));
  const child = Bun.spawn(["sh", "-c", script, "sh", cgroupDir, nodes], { stdout: "pipe", stderr: "pipe" });
  children.push(child);
  const [out, err, code] = await Promise.all([new Response(child.stdout).text(), new Response(child.stderr).text(), child.exited]);
  expect({ code, err }).toEqual({ code: 0, err: "" });
  return Object.fromEntries(out.trim().split("\n").map((l) => [l.slice(0, l.indexOf(":")), l.slice(l.indexOf(":") + 2)]));
}

const verdict = (result: string | undefined) => (result === "ok" ? "ok" : result?.includes(EPERM) ? "EPERM" : result?.includes(ENXIO) ? "ENXIO" : result);

describe.skipIf(!canRun)("device rules on cgroup v2 (a BPF_CGROUP_DEVICE program)", () => {
  test("outside any program, every node opens (c 1:1 has no driver here: ENXIO)", async () => {
    const r = await checks("");
    expect(Object.fromEntries(Object.entries(r).filter(([k]) => k !== "cgroup").map(([k, v]) => [k, verdict(v)]))).toEqual({
      "read-null": "ok",
      "write-null": "ok",
      "mknod-mem": "ok",
      "read-mem": "ENXIO",
      "write-mem": "ENXIO",
      "mknod-loop": "ok",
      "read-loop": "ok",
      "write-loop": "ok",
    });
  });

  test("runc's defaults: /dev/null opens, mknod works, opening c 1:1 or a block device is EPERM", async () => {
    const dir = cgroupWithRules([]);
    // The descriptors are closed; the attachment keeps the program: one, attached with BPF_F_ALLOW_MULTI.
    const fd = openSync(dir, constants.O_RDONLY | constants.O_DIRECTORY);
    try {
      const q = bpfProgQuery(fd, BPF_CGROUP_DEVICE);
      expect({ programs: q.ids.length, flags: q.attachFlags }).toEqual({ programs: 1, flags: BPF_F_ALLOW_MULTI });
    } finally {
      closeSync(fd);
    }
    const r = await checks(dir);
    expect(r.cgroup).toBe(`0::${dir.slice(unified!.length)}`);
    expect(Object.fromEntries(Object.entries(r).filter(([k]) => k !== "cgroup").map(([k, v]) => [k, verdict(v)]))).toEqual({
      "read-null": "ok",
      "write-null": "ok",
      "mknod-mem": "ok", // c *:* m
      "read-mem": "EPERM",
      "write-mem": "EPERM",
      "mknod-loop": "ok", // b *:* m
      "read-loop": "EPERM",
      "write-loop": "EPERM",
    });
  });

  test("spec rules c 1:1 r and b 7:0 r let those devices be read, not written", async () => {
    const dir = cgroupWithRules([
      { allow: false, access: "rwm" }, // containerd's default spec: deny all first
      { allow: true, type: "c", major: 1n, minor: 1n, access: "r" },
      { allow: true, type: "b", major: 7n, minor: 0n, access: "r" },
    ]);
    const r = await checks(dir);
    expect(r.cgroup).toBe(`0::${dir.slice(unified!.length)}`);
    expect({ readMem: verdict(r["read-mem"]), writeMem: verdict(r["write-mem"]), readLoop: verdict(r["read-loop"]), writeLoop: verdict(r["write-loop"]) }).toEqual({
      readMem: "ENXIO", // past the cgroup check, to the (absent) driver
      writeMem: "EPERM",
      readLoop: "ok",
      writeLoop: "EPERM",
    });
  });

  test("applying rules again replaces the program (a retried restore into the same cgroup): one program, the new rules", async () => {
    const dir = cgroupWithRules([]); // runc's defaults: c 1:1 and b 7:0 are EPERM
    const attached = () => {
      const fd = openSync(dir, constants.O_RDONLY | constants.O_DIRECTORY);
      try {
        return bpfProgQuery(fd, BPF_CGROUP_DEVICE).ids;
      } finally {
        closeSync(fd);
      }
    };
    const [first] = attached();
    applyV2DeviceRules(dir, runcDeviceRules([{ allow: true, type: "c", major: 1n, minor: 1n, access: "r" }, { allow: true, type: "b", major: 7n, minor: 0n, access: "rw" }]));
    const now = attached();
    expect(now.length).toBe(1);
    expect(now[0]).not.toBe(first);
    // Stacked, the defaults' program would still refuse both: only the new rules decide.
    const r = await checks(dir);
    expect({ readMem: verdict(r["read-mem"]), writeMem: verdict(r["write-mem"]), readLoop: verdict(r["read-loop"]), writeLoop: verdict(r["write-loop"]) }).toEqual({
      readMem: "ENXIO",
      writeMem: "EPERM",
      readLoop: "ok",
      writeLoop: "ok",
    });
  });

  test("errors name the directory: a missing one, and one that is not a cgroup", () => {
    const missing = join(unified!, uniqueId("cryo-devcg-missing"));
    expect(() => applyV2DeviceRules(missing, runcDeviceRules([]))).toThrow(`devices cgroup ${missing}: `);
    expect(() => applyV2DeviceRules(tmp, runcDeviceRules([]))).toThrow(`devices cgroup ${tmp}: bpf(BPF_PROG_ATTACH, type 6): Bad file descriptor (errno 9)`);
  });
});
