/**
 * JSON whose 64-bit integers survive: containerd's (Go's) JSON carries uint64 and int64 fields, and an OCI rlimit of
 * RLIM_INFINITY is 18446744073709551615, which a JavaScript number rounds to 18446744073709552000. runc then refuses
 * the spec ("cannot unmarshal number 18446744073709552000 ... of type uint64"). Integers beyond Number's safe range
 * are parsed into bigints from their source text, and bigints are written back as their digits.
 */

/** JSON.parse's reviver context (JSON.parse source text access; Bun has it). */
type ReviverContext = { source?: string } | undefined;

const integerLiteral = /^-?\d+$/;

function preciseIntegers(this: unknown, _key: string, value: unknown, context?: ReviverContext): unknown {
  if (typeof value !== "number" || Number.isSafeInteger(value)) return value;
  const source = context?.source;
  return source !== undefined && integerLiteral.test(source) ? BigInt(source) : value;
}

/** Sixteen digits in a row: every integer beyond Number.MAX_SAFE_INTEGER (9007199254740991) has at least that many. */
const longDigits = /\d{16}/;

/**
 * JSON.parse, with integers beyond Number.MAX_SAFE_INTEGER as bigints (exact). Throws as JSON.parse does. A text
 * without sixteen digits in a row has no such integer and is parsed without the reviver, which made the parse 4 to
 * 10 times slower (85 ms for an exec spec of 3.5 MB, on the daemon's event loop: bench/update-validate.ts).
 */
export function parsePreciseJson(text: string): unknown {
  if (!longDigits.test(text)) return JSON.parse(text);
  return JSON.parse(text, preciseIntegers as (this: unknown, key: string, value: unknown) => unknown);
}

/** JSON.rawJSON (the same proposal's; not in TypeScript's lib yet). */
const rawJSON = (JSON as unknown as { rawJSON(text: string): unknown }).rawJSON;

/** JSON.stringify, with bigints written as integer literals (what parsePreciseJson made of them); space as JSON.stringify's. */
export function stringifyPreciseJson(value: unknown, space?: number): string {
  return JSON.stringify(value, (_key, v: unknown) => (typeof v === "bigint" ? rawJSON(String(v)) : v), space);
}
