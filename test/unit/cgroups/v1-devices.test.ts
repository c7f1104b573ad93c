import { expect, test } from "bun:test";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { applyV1DeviceRules, RUNC_DEFAULT_DEVICE_RULES, runcDeviceRules, v1DeviceWrites } from "../../../src/cgroups/v1-devices.ts";

test("containerd's default spec (deny all) gives runc's list: deny-all, then runc's defaults", () => {
  const writes = v1DeviceWrites(runcDeviceRules([{ allow: false, access: "rwm" }]));
  expect(writes.slice(0, 2)).toEqual([["devices.deny", "a"], ["devices.deny", "a"]]);
  expect(writes.slice(2).map(([f, l]) => `${f === "devices.allow" ? "allow" : "deny"} ${l}`)).toEqual([
    "allow c *:* m",
    "allow b *:* m",
    "allow c 1:3 rwm",
    "allow c 1:8 rwm",
    "allow c 1:7 rwm",
    "allow c 5:0 rwm",
    "allow c 1:5 rwm",
    "allow c 1:9 rwm",
    "allow c 5:1 rwm",
    "allow c 136:* rwm",
    "allow c 5:2 rwm",
    "allow c 10:200 rwm",
  ]);
});

test("no spec rules still starts from deny-all (runc's emulator starts there); a privileged spec allows all", () => {
  expect(v1DeviceWrites(runcDeviceRules(undefined))[0]).toEqual(["devices.deny", "a"]);
  expect(runcDeviceRules(undefined)).toEqual([...RUNC_DEFAULT_DEVICE_RULES]);
  const privileged = v1DeviceWrites(runcDeviceRules([{ allow: true, access: "rwm" }]));
  expect(privileged[1]).toEqual(["devices.allow", "a"]);
});

test("spec rules keep their order, with -1 or absent major/minor as *, and bad rules are refused", () => {
  const rules = runcDeviceRules([
    { allow: false, type: "a", access: "rwm" },
    { allow: true, type: "c", major: 10n, minor: 229n, access: "rw" }, // --device /dev/fuse
    { allow: false, type: "b", major: 8n, minor: -1n, access: "r" },
  ]);
  expect(v1DeviceWrites(rules).slice(1, 4)).toEqual([["devices.deny", "a"], ["devices.allow", "c 10:229 rw"], ["devices.deny", "b 8:* r"]]);
  expect(() => runcDeviceRules([{ allow: true, type: "x" }])).toThrow("device rule type");
  expect(() => runcDeviceRules([{ allow: true, type: "c", access: "rwx" }])).toThrow("device rule access");
  expect(() => runcDeviceRules([{ allow: true, type: "c", major: 1n << 40n }])).toThrow("out of range");
});

test("applyV1DeviceRules writes each line to its file, in order", () => {
  const dir = mkdtempSync("/tmp/cryo-devices-");
  try {
    // Regular files stand in for the cgroup's: each write replaces the content, so the last line of each remains.
    writeFileSync(join(dir, "devices.allow"), "");
    writeFileSync(join(dir, "devices.deny"), "");
    applyV1DeviceRules(dir, runcDeviceRules([{ allow: false, access: "rwm" }]));
    expect(readFileSync(join(dir, "devices.deny"), "utf8")).toBe("a");
    expect(readFileSync(join(dir, "devices.allow"), "utf8")).toBe("c 10:200 rwm");
    expect(() => applyV1DeviceRules(join(dir, "missing"), [])).toThrow(`devices cgroup ${join(dir, "missing")}: write "a" to devices.deny`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
