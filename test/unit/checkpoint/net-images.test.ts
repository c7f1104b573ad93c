import { afterEach, expect, test } from "bun:test";
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { create, toBinary } from "@bufbuild/protobuf";
import { isDefaultRuleDump, isEmptyRouteDump, isLoopbackDefaultAddrDump, pruneNoopNetImages, restoresNothing, ROUTE_DUMP_MAGIC, RULE_DUMP_MAGIC } from "../../../src/checkpoint/net-images.ts";
import { loopbackUpIndex } from "../../../src/checkpoint/net-devices.ts";
import { IMG_COMMON_MAGIC, ImageMagic } from "../../../src/criu/image-file.ts";
import { NetDeviceEntrySchema, NetDeviceType } from "../../../src/gen/criu/netdev_pb.ts";

// `ip rule save` of a fresh container network namespace on this machine (kernel 6.18, iproute2 6.1), as CRIU
// stored it in rule-10.img: the magic, then local (pref 0), main (32766) and default (32767).
const FRESH_RULES = Buffer.from(
  "86697071340000002000020024530b6bbf44000002000000ff0000010000000008000f00ff00000008000e00ffffffff05001500020000003c0000002000020024530b6bbf44000002000000fe0000010000000008000f00fe00000008000e00ffffffff050015000200000008000600fe7f00003c0000002000020024530b6bbf44000002000000fd0000010000000008000f00fd00000008000e00ffffffff050015000200000008000600ff7f0000",
  "hex",
);

// `ip addr save` of a container's network namespace (loopback up) on this machine, as CRIU stored it in
// ifaddr-10.img: the magic, then 127.0.0.1/8 (address, local, label lo, flags, cache info) and ::1/128
// (address, cache info, flags, protocol kernel_lo).
const LO_ADDRS = Buffer.from(
  "221236474c0000001400020035880b6baa1d0000020880fe01000000080001007f000001080002007f000001070003006c6f0000080008008000000014000600ffffffffffffffff5086440050864400500000001400020035880b6baa1d00000a8080fe01000000140001000000000000000000000000000000000114000600ffffffffffffffff5086440050864400080008008000000005000b0001000000",
  "hex",
);

/** A netdev image (CRIU's head and netdev magics, size-prefixed entries) of these links. */
function netdevImage(links: { type: NetDeviceType; ifindex: number; flags: number; name: string }[]): Buffer {
  const parts = [u32(IMG_COMMON_MAGIC), u32(ImageMagic.netdev)];
  for (const l of links) {
    const entry = toBinary(NetDeviceEntrySchema, create(NetDeviceEntrySchema, { ...l, mtu: 65536 }));
    parts.push(u32(entry.length), Buffer.from(entry));
  }
  return Buffer.concat(parts);
}
const LO_UP = { type: NetDeviceType.ND_TYPE_LOOPBACK, ifindex: 1, flags: 0x10049, name: "lo" };

function u32(n: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(n >>> 0);
  return b;
}

function attr(type: number, value: Buffer): Buffer {
  const len = 4 + value.length;
  const b = Buffer.alloc((len + 3) & ~3);
  b.writeUInt16LE(len, 0);
  b.writeUInt16LE(type, 2);
  value.copy(b, 4);
  return b;
}

interface RuleOpts {
  family?: number;
  srcLen?: number;
  table: number;
  action?: number;
  flags?: number;
  attrs: Buffer[];
}

/** One RTM_NEWRULE message as iproute2 writes it. */
function rule(o: RuleOpts): Buffer {
  const frh = Buffer.alloc(12);
  frh.writeUInt8(o.family ?? 2, 0);
  frh.writeUInt8(o.srcLen ?? 0, 2);
  frh.writeUInt8(o.table, 4);
  frh.writeUInt8(o.action ?? 1, 7);
  frh.writeUInt32LE(o.flags ?? 0, 8);
  const body = Buffer.concat([frh, ...o.attrs]);
  const hdr = Buffer.alloc(16);
  hdr.writeUInt32LE(16 + body.length, 0);
  hdr.writeUInt16LE(32, 4); // RTM_NEWRULE
  hdr.writeUInt16LE(2, 6); // NLM_F_MULTI
  return Buffer.concat([hdr, body]);
}

const TABLE = (t: number) => attr(15, u32(t));
const PRIORITY = (p: number) => attr(6, u32(p));
const defaults = (extra: (i: number) => Buffer[] = () => []) =>
  [
    [255, 0],
    [254, 32766],
    [253, 32767],
  ].map(([t, p], i) => rule({ table: t!, attrs: [TABLE(t!), ...(p ? [PRIORITY(p)] : []), ...extra(i)] }));
const dump = (...rules: Buffer[]) => Buffer.concat([u32(RULE_DUMP_MAGIC), ...rules]);

test("a route dump is empty only when it is the magic alone", () => {
  expect(isEmptyRouteDump(u32(ROUTE_DUMP_MAGIC))).toBe(true);
  expect(isEmptyRouteDump(Buffer.concat([u32(ROUTE_DUMP_MAGIC), Buffer.alloc(28)]))).toBe(false);
  expect(isEmptyRouteDump(u32(RULE_DUMP_MAGIC))).toBe(false);
  expect(isEmptyRouteDump(new Uint8Array())).toBe(false);
});

test("the rule dump of a fresh namespace holds the kernel's default rules", () => {
  expect(isDefaultRuleDump(FRESH_RULES)).toBe(true);
  // Built here the same way, and without the attributes older kernels do not send.
  expect(isDefaultRuleDump(dump(...defaults()))).toBe(true);
  expect(isDefaultRuleDump(dump(...defaults(() => [attr(14, u32(0xffffffff)), attr(21, Buffer.from([2]))])))).toBe(true);
});

test("any rule that is not a default makes the dump one to restore", () => {
  const [local, main, dflt] = defaults();
  expect(isDefaultRuleDump(dump(local!, main!))).toBe(false); // one deleted
  expect(isDefaultRuleDump(dump(local!, main!, dflt!, rule({ table: 100, attrs: [TABLE(100), PRIORITY(100)] })))).toBe(false); // one added
  expect(isDefaultRuleDump(dump(local!, rule({ table: 254, attrs: [TABLE(254), PRIORITY(1000)] }), dflt!))).toBe(false); // moved
  expect(isDefaultRuleDump(dump(local!, rule({ table: 254, srcLen: 24, attrs: [TABLE(254), PRIORITY(32766), attr(2, u32(0x0a000000))] }), dflt!))).toBe(false); // "from 10.0.0.0/24"
  expect(isDefaultRuleDump(dump(...defaults((i) => (i === 1 ? [attr(10, u32(7))] : []))))).toBe(false); // fwmark
  expect(isDefaultRuleDump(dump(...defaults((i) => (i === 1 ? [attr(21, Buffer.from([4]))] : []))))).toBe(false); // proto static
  expect(isDefaultRuleDump(dump(local!, rule({ table: 254, flags: 2, attrs: [TABLE(254), PRIORITY(32766)] }), dflt!))).toBe(false); // not
  expect(isDefaultRuleDump(dump(local!, rule({ table: 254, action: 6, attrs: [TABLE(254), PRIORITY(32766)] }), dflt!))).toBe(false); // prohibit
  expect(isDefaultRuleDump(dump(...defaults().map((r) => Buffer.concat([r.subarray(0, 16), Buffer.from([10]), r.subarray(17)]))))).toBe(false); // IPv6
});

test("a rule dump that cannot be read whole is one to restore", () => {
  expect(isDefaultRuleDump(FRESH_RULES.subarray(0, FRESH_RULES.length - 4))).toBe(false);
  expect(isDefaultRuleDump(Buffer.concat([FRESH_RULES, Buffer.alloc(3)]))).toBe(false);
  expect(isDefaultRuleDump(Buffer.concat([u32(ROUTE_DUMP_MAGIC), FRESH_RULES.subarray(4)]))).toBe(false);
  expect(isDefaultRuleDump(u32(RULE_DUMP_MAGIC))).toBe(false);
  const badAttr = Buffer.from(FRESH_RULES);
  badAttr.writeUInt16LE(200, 4 + 28); // the first rule's first attribute runs past its message
  expect(isDefaultRuleDump(badAttr)).toBe(false);
});

test("restoresNothing goes by the image's name", () => {
  expect(restoresNothing("route-10.img", u32(ROUTE_DUMP_MAGIC))).toBe(true);
  expect(restoresNothing("route6-10.img", u32(ROUTE_DUMP_MAGIC))).toBe(true);
  expect(restoresNothing("iptables-10.img", new Uint8Array())).toBe(true);
  expect(restoresNothing("ip6tables-10.img", new Uint8Array())).toBe(true);
  expect(restoresNothing("iptables-10.img", Buffer.from("*filter\n:INPUT ACCEPT [0:0]\nCOMMIT\n"))).toBe(false);
  expect(restoresNothing("rule-10.img", FRESH_RULES)).toBe(true);
  expect(restoresNothing("ifaddr-10.img", new Uint8Array())).toBe(false); // not an address dump
  expect(restoresNothing("ifaddr-10.img", LO_ADDRS)).toBe(false); // no netdev image: loopback may be down
  expect(restoresNothing("ifaddr-10.img", LO_ADDRS, () => loopbackUpIndex(netdevImage([LO_UP])))).toBe(true);
  expect(restoresNothing("nftables-10.img", new Uint8Array())).toBe(false);
  expect(restoresNothing("route-10.img.zst", u32(ROUTE_DUMP_MAGIC))).toBe(false);
});

let dir: string | undefined;
afterEach(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
  dir = undefined;
});

test("loopback's two kernel-made addresses restore nothing when loopback is up; any other address, or loopback down, is CRIU's", () => {
  expect(isLoopbackDefaultAddrDump(LO_ADDRS, 1)).toBe(true);
  expect(isLoopbackDefaultAddrDump(LO_ADDRS, 2)).toBe(false); // on another link
  expect(loopbackUpIndex(netdevImage([LO_UP]))).toBe(1);
  expect(loopbackUpIndex(netdevImage([{ ...LO_UP, flags: 0x8 }]))).toBeUndefined(); // down
  expect(loopbackUpIndex(netdevImage([{ ...LO_UP, type: NetDeviceType.ND_TYPE_VETH, name: "eth0" }]))).toBeUndefined();
  expect(loopbackUpIndex(netdevImage([{ ...LO_UP, type: NetDeviceType.ND_TYPE_VETH, ifindex: 2, name: "eth0" }, { ...LO_UP, ifindex: 7 }]))).toBe(7);
  expect(loopbackUpIndex(Buffer.from("not an image"))).toBeUndefined();
  const v4 = LO_ADDRS.subarray(4, 4 + 0x4c);
  const v6 = LO_ADDRS.subarray(4 + 0x4c);
  const dump = (...msgs: Buffer[]) => Buffer.concat([LO_ADDRS.subarray(0, 4), ...msgs]);
  expect(isLoopbackDefaultAddrDump(dump(v6, v4), 1)).toBe(true); // either order
  expect(isLoopbackDefaultAddrDump(dump(v4), 1)).toBe(false); // IPv6 off: the kernel would add ::1 back
  expect(isLoopbackDefaultAddrDump(dump(v4, v6, v4), 1)).toBe(false);
  expect(isLoopbackDefaultAddrDump(dump(), 1)).toBe(false);
  // One byte changed at a time in the IPv4 message: the prefix, flags, scope, the address, the label, a lifetime.
  for (const at of [17, 18, 19, 20, 27, 31, 39, 43, 52, 60]) {
    const other = Buffer.from(v4);
    other[at] = other[at]! ^ 0x01;
    expect(isLoopbackDefaultAddrDump(dump(other, v6), 1)).toBe(false);
  }
  // A second address on loopback (127.0.0.2/8) makes it one to restore.
  const second = Buffer.from(v4);
  second[31] = 2;
  second[39] = 2;
  expect(isLoopbackDefaultAddrDump(dump(v4, v6, second), 1)).toBe(false);
  expect(isLoopbackDefaultAddrDump(Buffer.concat([dump(v4, v6), Buffer.alloc(3)]), 1)).toBe(false); // trailing bytes
});

test("pruneNoopNetImages removes only the images that restore nothing", () => {
  dir = mkdtempSync(join(tmpdir(), "cryo-net-images-"));
  const files: Record<string, Uint8Array> = {
    "route-10.img": u32(ROUTE_DUMP_MAGIC),
    "route6-10.img": Buffer.concat([u32(ROUTE_DUMP_MAGIC), Buffer.alloc(60, 1)]), // a route of its own
    "rule-10.img": FRESH_RULES,
    "iptables-10.img": new Uint8Array(),
    "ip6tables-10.img": Buffer.from("*filter\nCOMMIT\n"),
    "ifaddr-10.img": Buffer.alloc(160, 1),
    "netdev-10.img": new Uint8Array(),
    "pages-1.img": new Uint8Array(),
  };
  for (const [name, data] of Object.entries(files)) writeFileSync(join(dir, name), data);
  expect(pruneNoopNetImages(dir)).toEqual(["iptables-10.img", "route-10.img", "rule-10.img"]);
  expect(readdirSync(dir).sort()).toEqual(["ifaddr-10.img", "ip6tables-10.img", "netdev-10.img", "pages-1.img", "route6-10.img"]);
  expect(pruneNoopNetImages(dir)).toEqual([]);
  // Loopback's default addresses go once its netdev image says it is up.
  writeFileSync(join(dir, "ifaddr-10.img"), LO_ADDRS);
  expect(pruneNoopNetImages(dir, loopbackUpIndex)).toEqual([]);
  writeFileSync(join(dir, "netdev-10.img"), netdevImage([LO_UP]));
  expect(pruneNoopNetImages(dir)).toEqual([]); // no netdev decoder: addresses stay
  expect(pruneNoopNetImages(dir, loopbackUpIndex)).toEqual(["ifaddr-10.img"]);
});
