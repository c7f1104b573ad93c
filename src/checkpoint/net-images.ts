/**
 * CRIU's images of a container's network namespace that restore nothing, removed after a dump.
 *
 * CRIU restores a network namespace it dumped into a fresh one, and for that it runs iproute2 and
 * iptables: `ip route restore` (IPv4 and IPv6), `ip rule flush`, `ip rule delete table local` and
 * `ip rule restore`, `iptables-legacy-restore` and `ip6tables-legacy-restore` (where iptables uses the
 * nft backend; nftables itself goes through libnftables, in process). Each is a process started by
 * CRIU's restore, 3-6 ms apiece here. For a container that set up no routes, rules or legacy iptables
 * of its own (the usual case), each of them restores exactly what the fresh namespace already has.
 *
 * CRIU reads a missing image as an empty one and skips the tool for it (`open_image` gives an empty
 * image on ENOENT; `restore_ip_dump`, `restore_rule` and `restore_iptables` return early on it). So
 * removing such an image gives the same namespace without the processes. Removed, and only when the
 * whole file is recognised:
 * - `route-N.img`, `route6-N.img`: iproute2's route dump magic and no route after it;
 * - `iptables-N.img`, `ip6tables-N.img`: empty (iptables-legacy-save printed nothing);
 * - `rule-N.img`: iproute2's rule dump magic and exactly the kernel's three default IPv4 rules
 *   (`fib_default_rules_init`: priority 0 table local, 32766 main, 32767 default), which CRIU would
 *   flush and add back.
 * - `ifaddr-N.img`: iproute2's address dump magic and exactly loopback's two kernel-made addresses
 *   (127.0.0.1/8 and ::1/128, scope host, permanent, forever), when `netdev-N.img` says loopback is up:
 *   CRIU restores loopback's flags first (up), and bringing loopback up makes the kernel add exactly those
 *   two (`ip addr restore` would add them back, one more process).
 * Anything else (other routes, rules or addresses, rules with selectors, marks or other attributes, a
 * dump format this does not know) is left for CRIU.
 */
import { readdirSync, readFileSync, rmSync } from "node:fs";
import { join } from "node:path";

/** iproute2's `ip route save` header (little-endian u32 at offset 0). */
export const ROUTE_DUMP_MAGIC = 0x45311224;
/** iproute2's `ip rule save` header. */
export const RULE_DUMP_MAGIC = 0x71706986;

const RTM_NEWRULE = 32;
const AF_INET = 2;
const FR_ACT_TO_TBL = 1;
const RTPROT_KERNEL = 2;
// FRA_* attribute types (linux/fib_rules.h).
const FRA_PRIORITY = 6;
const FRA_SUPPRESS_PREFIXLEN = 14;
const FRA_TABLE = 15;
const FRA_PROTOCOL = 21;

/** The kernel's default IPv4 rules, in the order it lists them: [table, priority]. */
const DEFAULT_RULES: readonly (readonly [number, number])[] = [
  [255, 0],
  [254, 32766],
  [253, 32767],
];

/** A route dump that holds no route: the magic and nothing else. */
export function isEmptyRouteDump(buf: Uint8Array): boolean {
  return buf.length === 4 && new DataView(buf.buffer, buf.byteOffset, 4).getUint32(0, true) === ROUTE_DUMP_MAGIC;
}

/** One rule of a rule dump: table and priority, or undefined when it is anything but a plain "lookup table" rule. */
function plainRule(view: DataView, off: number, len: number): [number, number] | undefined {
  // struct nlmsghdr (16) + struct fib_rule_hdr (12).
  if (len < 28 || view.getUint16(off + 4, true) !== RTM_NEWRULE) return undefined;
  const h = off + 16;
  // family, dst_len, src_len, tos, table, res1, res2, action
  const b = (i: number) => view.getUint8(h + i);
  const table = b(4);
  if (b(0) !== AF_INET || b(1) !== 0 || b(2) !== 0 || b(3) !== 0 || b(5) !== 0 || b(6) !== 0 || b(7) !== FR_ACT_TO_TBL) return undefined;
  if (view.getUint32(h + 8, true) !== 0) return undefined; // flags (invert, ...)
  let tableAttr: number | undefined;
  let priority = 0;
  for (let a = h + 12; a < off + len; ) {
    if (a + 4 > off + len) return undefined;
    const alen = view.getUint16(a, true);
    const type = view.getUint16(a + 2, true) & 0x3fff;
    if (alen < 4 || a + alen > off + len) return undefined;
    const u32 = () => (alen === 8 ? view.getUint32(a + 4, true) : undefined);
    switch (type) {
      case FRA_TABLE:
        tableAttr = u32();
        if (tableAttr === undefined) return undefined;
        break;
      case FRA_PRIORITY: {
        const p = u32();
        if (p === undefined) return undefined;
        priority = p;
        break;
      }
      case FRA_SUPPRESS_PREFIXLEN:
        if (u32() !== 0xffffffff) return undefined; // -1: not set
        break;
      case FRA_PROTOCOL:
        if (alen !== 5 || view.getUint8(a + 4) !== RTPROT_KERNEL) return undefined;
        break;
      default:
        return undefined; // a selector, mark, goto, ...: not a default rule
    }
    a += (alen + 3) & ~3;
  }
  if (tableAttr !== undefined && tableAttr !== table) return undefined;
  return [table, priority];
}

/** A rule dump that holds exactly the kernel's three default IPv4 rules. */
export function isDefaultRuleDump(buf: Uint8Array): boolean {
  const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  if (buf.length < 4 || view.getUint32(0, true) !== RULE_DUMP_MAGIC) return false;
  const rules: [number, number][] = [];
  for (let off = 4; off < buf.length; ) {
    if (off + 16 > buf.length) return false;
    const len = view.getUint32(off, true);
    if (len < 16 || off + len > buf.length) return false;
    const rule = plainRule(view, off, len);
    if (!rule) return false;
    rules.push(rule);
    off += (len + 3) & ~3;
  }
  return rules.length === DEFAULT_RULES.length && rules.every(([t, p], i) => t === DEFAULT_RULES[i]![0] && p === DEFAULT_RULES[i]![1]);
}

/** iproute2's `ip addr save` header. */
export const ADDR_DUMP_MAGIC = 0x47361222;

const RTM_NEWADDR = 20;
const AF_INET6 = 10;
const IFA_F_PERMANENT = 0x80;
const RT_SCOPE_HOST = 254;
const IFAPROT_KERNEL_LO = 1;
// IFA_* attribute types (linux/if_addr.h).
const IFA_ADDRESS = 1;
const IFA_LOCAL = 2;
const IFA_LABEL = 3;
const IFA_CACHEINFO = 6;
const IFA_FLAGS = 8;
const IFA_PROTO = 11;

/** The family of one address message when it is one of loopback's kernel-made addresses on ifindex `lo`; else undefined. */
function loopbackDefault(view: DataView, off: number, len: number, lo: number): number | undefined {
  // struct nlmsghdr (16) + struct ifaddrmsg (8): family, prefixlen, flags, scope, index (u32).
  if (len < 24 || view.getUint16(off + 4, true) !== RTM_NEWADDR) return undefined;
  const h = off + 16;
  const family = view.getUint8(h);
  const v6 = family === AF_INET6;
  if (family !== AF_INET && !v6) return undefined;
  if (view.getUint8(h + 1) !== (v6 ? 128 : 8) || view.getUint8(h + 2) !== IFA_F_PERMANENT || view.getUint8(h + 3) !== RT_SCOPE_HOST || view.getUint32(h + 4, true) !== lo) return undefined;
  const addr = v6 ? [...Array(15).fill(0), 1] : [127, 0, 0, 1];
  const isAddr = (a: number, alen: number) => alen === 4 + addr.length && addr.every((b, i) => view.getUint8(a + 4 + i) === b);
  let address = false;
  for (let a = h + 8; a < off + len; ) {
    if (a + 4 > off + len) return undefined;
    const alen = view.getUint16(a, true);
    const type = view.getUint16(a + 2, true) & 0x3fff;
    if (alen < 4 || a + alen > off + len) return undefined;
    switch (type) {
      case IFA_ADDRESS:
        if (!isAddr(a, alen)) return undefined;
        address = true;
        break;
      case IFA_LOCAL:
        if (v6 || !isAddr(a, alen)) return undefined;
        break;
      case IFA_LABEL: // "lo\0"
        if (v6 || alen !== 7 || view.getUint8(a + 4) !== 0x6c || view.getUint8(a + 5) !== 0x6f || view.getUint8(a + 6) !== 0) return undefined;
        break;
      case IFA_CACHEINFO: // preferred and valid lifetimes: forever (then the kernel's time stamps)
        if (alen !== 20 || view.getUint32(a + 4, true) !== 0xffffffff || view.getUint32(a + 8, true) !== 0xffffffff) return undefined;
        break;
      case IFA_FLAGS:
        if (alen !== 8 || view.getUint32(a + 4, true) !== IFA_F_PERMANENT) return undefined;
        break;
      case IFA_PROTO:
        if (alen !== 5 || view.getUint8(a + 4) !== IFAPROT_KERNEL_LO) return undefined;
        break;
      default:
        return undefined; // a broadcast, an anycast, a peer, ...: not the kernel's
    }
    a += (alen + 3) & ~3;
  }
  return address ? family : undefined;
}

/** An address dump that holds exactly loopback's two kernel-made addresses (127.0.0.1/8, ::1/128) on ifindex lo. */
export function isLoopbackDefaultAddrDump(buf: Uint8Array, lo: number): boolean {
  const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  if (buf.length < 4 || view.getUint32(0, true) !== ADDR_DUMP_MAGIC) return false;
  const families: number[] = [];
  for (let off = 4; off < buf.length; ) {
    if (off + 16 > buf.length) return false;
    const len = view.getUint32(off, true);
    if (len < 16 || off + len > buf.length) return false;
    const family = loopbackDefault(view, off, len, lo);
    if (family === undefined) return false;
    families.push(family);
    off += (len + 3) & ~3;
  }
  return families.length === 2 && families.includes(AF_INET) && families.includes(AF_INET6);
}

/**
 * Whether the image file `name` with content `buf` restores nothing into a fresh network namespace;
 * `loopbackUp` gives the ifindex of the namespace's loopback when its netdev image says it is up (for
 * ifaddr images; undefined: down, or not known).
 */
export function restoresNothing(name: string, buf: Uint8Array, loopbackUp: () => number | undefined = () => undefined): boolean {
  if (/^route6?-\d+\.img$/.test(name)) return isEmptyRouteDump(buf);
  if (/^ip6?tables-\d+\.img$/.test(name)) return buf.length === 0;
  if (/^rule-\d+\.img$/.test(name)) return isDefaultRuleDump(buf);
  if (/^ifaddr-\d+\.img$/.test(name)) {
    const lo = loopbackUp();
    return lo !== undefined && isLoopbackDefaultAddrDump(buf, lo);
  }
  return false;
}

/**
 * Removes the network images of `dir` that restore nothing; returns their names. `loopbackUpIndex` reads a
 * netdev image (net-devices.ts, passed in so that this module does not load CRIU's protobuf descriptors);
 * without it, address images stay.
 */
export function pruneNoopNetImages(dir: string, loopbackUpIndex?: (netdev: Uint8Array) => number | undefined): string[] {
  const removed: string[] = [];
  for (const name of readdirSync(dir)) {
    if (!/^(route6?|rule|ip6?tables|ifaddr)-\d+\.img$/.test(name)) continue;
    const path = join(dir, name);
    const loopbackUp = () => {
      try {
        return loopbackUpIndex?.(readFileSync(join(dir, name.replace(/^ifaddr-/, "netdev-"))));
      } catch {
        return undefined;
      }
    };
    if (!restoresNothing(name, readFileSync(path), loopbackUp)) continue;
    rmSync(path);
    removed.push(name);
  }
  return removed.sort();
}
