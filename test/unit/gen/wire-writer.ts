// A deliberately tiny, independent protobuf writer for the wire tests: it spells out tags and
// values by hand so the expected bytes do not come from the library under test.

/** Encodes an unsigned or negative (two's complement, 10 bytes) integer as a varint. */
export function varint(value: number | bigint): number[] {
  let v = BigInt.asUintN(64, BigInt(value));
  const out: number[] = [];
  while (v >= 0x80n) {
    out.push(Number(v & 0x7fn) | 0x80);
    v >>= 7n;
  }
  out.push(Number(v));
  return out;
}

/** The key of a field: (number << 3) | wire type. */
export function key(field: number, wireType: 0 | 1 | 2 | 5): number[] {
  return varint((field << 3) | wireType);
}

/** A varint field (uint32, uint64, int32, bool, enum). */
export function vint(field: number, value: number | bigint | boolean): number[] {
  return [...key(field, 0), ...varint(typeof value === "boolean" ? (value ? 1 : 0) : value)];
}

/** A length-delimited field holding raw bytes (an embedded message or packed values). */
export function bytes(field: number, data: number[]): number[] {
  return [...key(field, 2), ...varint(data.length), ...data];
}

/** A string field. */
export function str(field: number, value: string): number[] {
  return bytes(field, [...new TextEncoder().encode(value)]);
}

/** A double field (wire type 1, little endian). */
export function f64(field: number, value: number): number[] {
  const b = new Uint8Array(8);
  new DataView(b.buffer).setFloat64(0, value, true);
  return [...key(field, 1), ...b];
}

/** Concatenates pieces into the final byte array. */
export function cat(...parts: number[][]): Uint8Array {
  return new Uint8Array(parts.flat());
}

/** Hex of a byte array, for readable assertion failures. */
export function hex(data: Uint8Array): string {
  return Buffer.from(data).toString("hex");
}
