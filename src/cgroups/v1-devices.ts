/**
 * The device rules of a container, on the v1 devices controller, as runc sets them.
 *
 * runc applies them itself when it creates a container. A restore makes the container's cgroups in cryo
 * (restore-cgroups.ts), so cryo must set them: a new devices cgroup inherits its parent's list, `a *:*
 * rwm` on a usual host, and a restored container would then open any device of the host. The rules are
 * runc's (libcontainer/specconv): from deny-all, the spec's `linux.resources.devices` in order, then runc's
 * default allowed devices. They are written in that order, each to `devices.allow` or `devices.deny`: the
 * kernel applies a list the same way (a type-`a` rule resets the whole list to deny-all or allow-all).
 *
 * cgroup v2 has no such files: runc attaches a BPF program there, and so does cryo (v2-devices.ts, same rules).
 */
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { CryoError, invalidArgument } from "../errors.ts";

/** One rule: `type major:minor access`, with "*" for any major or minor. */
export interface DeviceRule {
  allow: boolean;
  type: "a" | "b" | "c";
  major: number | "*";
  minor: number | "*";
  access: string;
}

/** runc 1.1's default allowed devices (specconv.AllowedDevices), appended after the spec's rules. */
export const RUNC_DEFAULT_DEVICE_RULES: readonly DeviceRule[] = [
  { allow: true, type: "c", major: "*", minor: "*", access: "m" },
  { allow: true, type: "b", major: "*", minor: "*", access: "m" },
  { allow: true, type: "c", major: 1, minor: 3, access: "rwm" }, // /dev/null
  { allow: true, type: "c", major: 1, minor: 8, access: "rwm" }, // /dev/random
  { allow: true, type: "c", major: 1, minor: 7, access: "rwm" }, // /dev/full
  { allow: true, type: "c", major: 5, minor: 0, access: "rwm" }, // /dev/tty
  { allow: true, type: "c", major: 1, minor: 5, access: "rwm" }, // /dev/zero
  { allow: true, type: "c", major: 1, minor: 9, access: "rwm" }, // /dev/urandom
  { allow: true, type: "c", major: 5, minor: 1, access: "rwm" }, // /dev/console
  { allow: true, type: "c", major: 136, minor: "*", access: "rwm" }, // /dev/pts/*
  { allow: true, type: "c", major: 5, minor: 2, access: "rwm" }, // /dev/ptmx
  { allow: true, type: "c", major: 10, minor: 200, access: "rwm" }, // /dev/net/tun
];

/** An OCI `linux.resources.devices` entry, as parseLinuxResources returns it. */
export interface SpecDeviceRule {
  allow: boolean;
  type?: string | null;
  major?: bigint | null;
  minor?: bigint | null;
  access?: string | null;
}

function number(v: bigint | null | undefined, what: string): number | "*" {
  if (v === undefined || v === null || v < 0n) return "*"; // OCI: absent or -1 means any
  if (v > 0xfffffn) throw invalidArgument(`device rule ${what} ${v}`, { detail: "out of range" });
  return Number(v);
}

/** The container's rules, runc's way: the spec's in order, then runc's defaults. INVALID_ARGUMENT for a malformed rule. */
export function runcDeviceRules(spec: readonly SpecDeviceRule[] | null | undefined): DeviceRule[] {
  const out: DeviceRule[] = [];
  for (const r of spec ?? []) {
    const type = r.type ?? "a";
    if (type !== "a" && type !== "b" && type !== "c") throw invalidArgument(`device rule type ${JSON.stringify(type)}`, { detail: "expected a, b or c" });
    const access = r.access ?? "rwm";
    if (!/^[rwm]{1,3}$/.test(access)) throw invalidArgument(`device rule access ${JSON.stringify(access)}`, { detail: "expected letters of rwm" });
    out.push({ allow: r.allow, type, major: number(r.major, "major"), minor: number(r.minor, "minor"), access });
  }
  return [...out, ...RUNC_DEFAULT_DEVICE_RULES];
}

/**
 * The writes that set rules on a devices cgroup: [file, line] in order. runc's list starts from deny-all (its
 * emulator's zero value), so the first write resets the cgroup to deny-all.
 */
export function v1DeviceWrites(rules: readonly DeviceRule[]): ["devices.allow" | "devices.deny", string][] {
  return [["devices.deny", "a"], ...rules.map((r): ["devices.allow" | "devices.deny", string] => [r.allow ? "devices.allow" : "devices.deny", r.type === "a" ? "a" : `${r.type} ${r.major}:${r.minor} ${r.access}`])];
}

/** Writes the rules into the v1 devices cgroup directory dir. */
export function applyV1DeviceRules(dir: string, rules: readonly DeviceRule[]): void {
  for (const [file, line] of v1DeviceWrites(rules)) {
    try {
      writeFileSync(join(dir, file), line);
    } catch (err) {
      throw CryoError.from(err).wrap(`devices cgroup ${dir}: write ${JSON.stringify(line)} to ${file}`);
    }
  }
}
