/**
 * Reading CRIU image files: a magic header, then size-prefixed protobuf entries.
 *
 * Layout (criu/image.c, criu/protobuf.c): a u32 head magic (IMG_COMMON_MAGIC, or IMG_SERVICE_MAGIC for
 * service images such as stats; inventory.img has none), a u32 magic of the image type, then entries,
 * each a little-endian u32 byte count followed by that many bytes of one protobuf message.
 */
import { fromBinary, type DescMessage, type MessageShape } from "@bufbuild/protobuf";
import { CryoError, Code } from "../errors.ts";

/** Head magic of ordinary images. */
export const IMG_COMMON_MAGIC = 0x54564319;
/** Head magic of service images (stats, irmap cache). */
export const IMG_SERVICE_MAGIC = 0x55105940;

/** Type magics of the images cryo reads (criu/include/magic.h). */
export const ImageMagic = {
  inventory: 0x58313116,
  pstree: 0x50273030,
  fdinfo: 0x56213732,
  pagemap: 0x56084025,
  core: 0x55053847,
  files: 0x56303138,
  stats: 0x57093306,
  netdev: 0x57373951,
  seccomp: 0x64413049,
  cgroup: 0x59383330,
  mnts: 0x55563928,
  ids: 0x54432030,
  userns: 0x55474906,
} as const;

/** Largest entry accepted; CRIU's own entries are far smaller. */
const MAX_ENTRY = 64 * 1024 * 1024;

/** Splits an image into its raw entries after checking its magics; `head` is false for inventory.img. */
export function imageEntries(bytes: Uint8Array, name: string, magic: number, head: number | false = IMG_COMMON_MAGIC): Uint8Array[] {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let off = 0;
  const u32 = (what: string): number => {
    if (off + 4 > bytes.byteLength) throw corrupt(name, `truncated ${what} at byte ${off}`);
    const v = view.getUint32(off, true);
    off += 4;
    return v;
  };
  if (head !== false) {
    const got = u32("head magic");
    if (got !== head) throw corrupt(name, `head magic 0x${got.toString(16)}, want 0x${head.toString(16)}`);
  }
  const got = u32("magic");
  if (got !== magic) throw corrupt(name, `magic 0x${got.toString(16)}, want 0x${magic.toString(16)}`);
  const entries: Uint8Array[] = [];
  while (off < bytes.byteLength) {
    const size = u32("entry size");
    if (size > MAX_ENTRY || off + size > bytes.byteLength) throw corrupt(name, `entry of ${size} bytes at byte ${off - 4} overruns the file`);
    entries.push(bytes.subarray(off, off + size));
    off += size;
  }
  return entries;
}

/** Decodes every entry of an image as schema. */
export function decodeImage<Desc extends DescMessage>(
  schema: Desc,
  bytes: Uint8Array,
  name: string,
  magic: number,
  head: number | false = IMG_COMMON_MAGIC,
): MessageShape<Desc>[] {
  return imageEntries(bytes, name, magic, head).map((entry, i) => decodeEntry(schema, entry, `${name} entry ${i}`));
}

/** Decodes one raw entry (from imageEntries) as schema; images such as pagemap mix a head and entries. */
export function decodeEntry<Desc extends DescMessage>(schema: Desc, entry: Uint8Array, name: string): MessageShape<Desc> {
  try {
    return fromBinary(schema, entry);
  } catch (err) {
    throw corrupt(name, err instanceof Error ? err.message : String(err));
  }
}

function corrupt(name: string, detail: string): CryoError {
  return new CryoError(Code.DATA_LOSS, `criu image ${name}: corrupt: ${detail}`);
}
