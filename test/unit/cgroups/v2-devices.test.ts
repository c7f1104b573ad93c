import { describe, expect, test } from "bun:test";
import { runcDeviceRules, type DeviceRule } from "../../../src/cgroups/v1-devices.ts";
import { deviceFilterProgram, emulateV1Devices, v1DeviceAllowed, type DeviceState } from "../../../src/cgroups/v2-devices.ts";

const M = 1; // mknod
const R = 2; // read
const W = 4; // write

const rule = (allow: boolean, type: DeviceRule["type"], major: number | "*", minor: number | "*", access: string): DeviceRule => ({ allow, type, major, minor, access });
const denyAll = rule(false, "a", "*", "*", "rwm");
const allowAll = rule(true, "a", "*", "*", "rwm");

/**
 * A BPF interpreter for exactly the instructions the generator emits, over one struct bpf_cgroup_dev_ctx.
 * It decodes the raw bytes itself, so it also checks the encoding; anything else throws.
 */
function runDeviceProgram(prog: Uint8Array, type: "b" | "c", major: number, minor: number, access: number): number {
  const ctx = [((access << 16) | (type === "b" ? 1 : 2)) >>> 0, major, minor]; // u32 access_type, major, minor
  const reg: bigint[] = new Array(11).fill(0n);
  const holdsCtx = new Set([1]);
  const u64 = (n: number) => BigInt.asUintN(64, BigInt(n)); // a sign-extended immediate
  const set = (r: number, value: bigint) => {
    reg[r] = BigInt.asUintN(64, value);
    holdsCtx.delete(r);
  };
  const v = new DataView(prog.buffer, prog.byteOffset, prog.byteLength);
  for (let pc = 0, steps = 0; steps < 10_000; steps++) {
    if (pc < 0 || pc * 8 >= prog.length) throw new Error(`jump out of the program to ${pc}`);
    const code = v.getUint8(pc * 8);
    const dst = v.getUint8(pc * 8 + 1) & 0xf;
    const src = v.getUint8(pc * 8 + 1) >> 4;
    const off = v.getInt16(pc * 8 + 2, true);
    const imm = v.getInt32(pc * 8 + 4, true);
    const r = (n: number) => reg[n] ?? 0n;
    pc++;
    switch (code) {
      case 0x61: // r[dst] = *(u32 *)(r[src] + off)
        if (!holdsCtx.has(src) || off % 4 !== 0 || off > 8) throw new Error(`load from r${src}+${off}`);
        set(dst, BigInt(ctx[off / 4] ?? 0));
        break;
      case 0x54: // w[dst] &= imm
        set(dst, r(dst) & u64(imm) & 0xffffffffn);
        break;
      case 0x74: // w[dst] >>= imm
        set(dst, (r(dst) & 0xffffffffn) >> BigInt(imm));
        break;
      case 0xbc: // w[dst] = w[src]
        set(dst, r(src) & 0xffffffffn);
        break;
      case 0xb7: // r[dst] = imm
        set(dst, u64(imm));
        break;
      case 0x55: // if r[dst] != imm goto +off
        if (r(dst) !== u64(imm)) pc += off;
        break;
      case 0x5d: // if r[dst] != r[src] goto +off
        if (r(dst) !== r(src)) pc += off;
        break;
      case 0x15: // if r[dst] == imm goto +off
        if (r(dst) === u64(imm)) pc += off;
        break;
      case 0x95: // exit with r0
        return Number(r(0));
      default:
        throw new Error(`opcode 0x${code.toString(16)} at ${pc - 1}`);
    }
  }
  throw new Error("no exit");
}

/** Every (type, major, minor, access) over the numbers of the state's exceptions, their neighbours, and a few others. */
function probes(state: DeviceState): [type: "b" | "c", major: number, minor: number, access: number][] {
  const nums = (k: "major" | "minor") => [...new Set([0, 1, 7, 254, 0xfffff, ...state.exceptions.flatMap((e) => (e[k] === "*" ? [] : [e[k], e[k] + 1]))])];
  const out: [type: "b" | "c", major: number, minor: number, access: number][] = [];
  for (const type of ["b", "c"] as const) for (const major of nums("major")) for (const minor of nums("minor")) for (let access = 1; access <= 7; access++) out.push([type, major, minor, access]);
  return out;
}

/** The probes on which the program's answer differs from the emulator's. */
function disagreements(prog: Uint8Array, state: DeviceState): string[] {
  return probes(state)
    .filter(([t, ma, mi, acc]) => runDeviceProgram(prog, t, ma, mi, acc) !== (v1DeviceAllowed(state, t, ma, mi, acc) ? 1 : 0))
    .map(([t, ma, mi, acc]) => `${t} ${ma}:${mi} access ${acc}`);
}

describe("the v1 emulator", () => {
  test("deny-all then allows: exceptions merge by type/major/minor", () => {
    const state = emulateV1Devices([denyAll, rule(true, "c", 1, 3, "rw"), rule(true, "b", 8, "*", "r"), rule(true, "c", 1, 3, "m")]);
    expect(state).toEqual({
      defaultAllow: false,
      exceptions: [
        { type: "c", major: 1, minor: 3, access: M | R | W },
        { type: "b", major: 8, minor: "*", access: R },
      ],
    });
    expect(v1DeviceAllowed(state, "c", 1, 3, R | W)).toBe(true);
    expect(v1DeviceAllowed(state, "b", 8, 16, R)).toBe(true);
    expect(v1DeviceAllowed(state, "b", 8, 16, R | W)).toBe(false); // more than the exception gives
    expect(v1DeviceAllowed(state, "c", 8, 16, R)).toBe(false); // the other type
    expect(v1DeviceAllowed(state, "c", 1, 5, R)).toBe(false);
  });

  test("allow-all then denies: an access is refused when it overlaps an exception", () => {
    const state = emulateV1Devices([allowAll, rule(false, "c", 1, 1, "rwm"), rule(false, "b", "*", "*", "w")]);
    expect(state).toEqual({
      defaultAllow: true,
      exceptions: [
        { type: "c", major: 1, minor: 1, access: M | R | W },
        { type: "b", major: "*", minor: "*", access: W },
      ],
    });
    expect(v1DeviceAllowed(state, "c", 1, 1, R)).toBe(false);
    expect(v1DeviceAllowed(state, "c", 1, 2, R | W)).toBe(true);
    expect(v1DeviceAllowed(state, "b", 254, 0, R)).toBe(true);
    expect(v1DeviceAllowed(state, "b", 254, 0, R | W)).toBe(false);
  });

  test("a rule of the default's kind narrows only an exactly matching exception, and 'a' resets", () => {
    // deny-by-default: deny removes access bits; the last bit removed drops the exception.
    expect(emulateV1Devices([denyAll, rule(true, "c", 10, 229, "rwm"), rule(false, "c", 10, 229, "w")]).exceptions).toEqual([{ type: "c", major: 10, minor: 229, access: M | R }]);
    expect(emulateV1Devices([denyAll, rule(true, "c", 10, 229, "rw"), rule(false, "c", 10, 229, "rwm")]).exceptions).toEqual([]);
    // No hole in a wildcard (v1 ignores it silently; runc's emulator refuses such a list).
    const wildcard = emulateV1Devices([denyAll, rule(true, "c", "*", "*", "rwm"), rule(false, "c", 1, 1, "rwm")]);
    expect(wildcard.exceptions).toEqual([{ type: "c", major: "*", minor: "*", access: M | R | W }]);
    expect(v1DeviceAllowed(wildcard, "c", 1, 1, R)).toBe(true);
    // allow-by-default: allow removes bits of a deny exception.
    expect(emulateV1Devices([allowAll, rule(false, "c", 1, 1, "rw"), rule(true, "c", 1, 1, "r")]).exceptions).toEqual([{ type: "c", major: 1, minor: 1, access: W }]);
    // Any type-a rule is the bare "a" on v1: a reset, whatever its access.
    expect(emulateV1Devices([denyAll, rule(true, "c", 1, 3, "rwm"), rule(true, "a", "*", "*", "r")])).toEqual({ defaultAllow: true, exceptions: [] });
    expect(emulateV1Devices([])).toEqual({ defaultAllow: false, exceptions: [] });
  });

  test("runc's defaults: mknod of anything, rwm of the usual character devices, nothing else", () => {
    const state = emulateV1Devices(runcDeviceRules([{ allow: false, access: "rwm" }]));
    expect(state.defaultAllow).toBe(false);
    expect(state.exceptions).toHaveLength(12);
    expect(v1DeviceAllowed(state, "c", 1, 3, R | W)).toBe(true); // /dev/null
    expect(v1DeviceAllowed(state, "c", 136, 4, R | W)).toBe(true); // /dev/pts/4
    expect(v1DeviceAllowed(state, "c", 1, 1, M)).toBe(true); // mknod c 1:1
    expect(v1DeviceAllowed(state, "c", 1, 1, R)).toBe(false); // open /dev/mem
    expect(v1DeviceAllowed(state, "b", 254, 0, M)).toBe(true);
    expect(v1DeviceAllowed(state, "b", 254, 0, R)).toBe(false); // the root disk
    expect(v1DeviceAllowed(state, "c", 10, 229, R | W)).toBe(false); // /dev/fuse, not given
    expect(v1DeviceAllowed(state, "c", 10, 200, M | R | W)).toBe(true); // /dev/net/tun
  });
});

describe("the BPF program", () => {
  const cases: [string, DeviceRule[]][] = [
    ["runc's defaults", runcDeviceRules([{ allow: false, access: "rwm" }])],
    ["runc's defaults plus c 1:1 r and b 7:* rw", runcDeviceRules([{ allow: false, access: "rwm" }, { allow: true, type: "c", major: 1n, minor: 1n, access: "r" }, { allow: true, type: "b", major: 7n, access: "rw" }])],
    ["privileged (allow all)", runcDeviceRules([{ allow: true, access: "rwm" }])],
    ["allow-all with denies", [allowAll, rule(false, "c", 1, 1, "rwm"), rule(false, "b", "*", "*", "w"), rule(false, "c", 136, "*", "m"), rule(false, "b", 8, 0, "r")]],
    ["deny-all, nothing else", [denyAll]],
  ];

  for (const [name, rules] of cases) {
    test(`decides as the emulator on every probe: ${name}`, () => {
      const state = emulateV1Devices(rules);
      expect(disagreements(deviceFilterProgram(state), state)).toEqual([]);
    });
  }

  test("answers what v1 says for runc's defaults plus c 1:1 r", () => {
    const prog = deviceFilterProgram(emulateV1Devices(runcDeviceRules([{ allow: false, access: "rwm" }, { allow: true, type: "c", major: 1n, minor: 1n, access: "r" }])));
    const table: [type: "b" | "c", major: number, minor: number, access: number, allowed: number][] = [
      ["c", 1, 3, R | W, 1],
      ["c", 1, 3, M | R | W, 1],
      ["c", 1, 1, R, 1],
      ["c", 1, 1, R | W, 0],
      ["c", 1, 1, W, 0],
      ["c", 1, 1, M, 1],
      ["c", 1, 2, R, 0],
      ["c", 136, 0, R | W, 1],
      ["c", 137, 0, R, 0],
      ["b", 254, 0, R, 0],
      ["b", 254, 0, M, 1],
      ["b", 1, 3, R, 0], // /dev/null's numbers, as a block device
      ["c", 10, 200, R, 1],
      ["c", 10, 229, R, 0],
    ];
    expect(table.map(([t, ma, mi, acc]) => runDeviceProgram(prog, t, ma, mi, acc))).toEqual(table.map((row) => row[4]));
  });

  test("the checks have teeth: a program with the wrong default disagrees, and the encoding is the kernel's", () => {
    const state = emulateV1Devices(runcDeviceRules([]));
    const prog = deviceFilterProgram(state);
    const wrong = prog.slice();
    wrong[wrong.length - 12] = 1; // the imm of the last MOV r0: deny -> allow
    expect(disagreements(wrong, state).length).toBeGreaterThan(0);
    // r2 = *(u32 *)(r1 + 0): code 0x61, dst 2 in the low nibble, src 1 in the high one.
    expect([...prog.subarray(0, 8)]).toEqual([0x61, 0x12, 0, 0, 0, 0, 0, 0]);
    // mov r0, 0; exit.
    expect([...prog.subarray(-16)]).toEqual([0xb7, 0, 0, 0, 0, 0, 0, 0, 0x95, 0, 0, 0, 0, 0, 0, 0]);
    // Six loads, then a default and exit: an allow-all list has no blocks.
    expect(deviceFilterProgram({ defaultAllow: true, exceptions: [] }).length).toBe(8 * 8);
  });

  test("a major or minor a jump immediate cannot hold is refused", () => {
    expect(() => deviceFilterProgram({ defaultAllow: false, exceptions: [{ type: "c", major: 2 ** 31, minor: 0, access: R }] })).toThrow("device rule major 2147483648: invalid argument: out of range");
  });
});
