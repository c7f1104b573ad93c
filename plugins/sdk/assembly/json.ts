// A small JSON reader and writer for AssemblyScript plugins (no WASI, no dependencies).
//
// parseJson(text) builds a tree of JsonValue; JsonValue.toString() writes it back. Numbers are
// f64 (exact for integers up to 2^53, enough for byte counts). Object key order is kept.

/** The kind of a JSON value. */
export enum JsonKind {
  Null,
  Bool,
  Number,
  String,
  Array,
  Object,
}

/** One JSON value: null, boolean, number, string, array or object. */
export class JsonValue {
  kind: JsonKind = JsonKind.Null;
  bool: bool = false;
  num: f64 = 0;
  str: string = "";
  items: JsonValue[] = [];
  keys: string[] = [];
  values: JsonValue[] = [];

  /** The JSON null. */
  static newNull(): JsonValue {
    return new JsonValue();
  }
  /** A boolean. */
  static newBool(b: bool): JsonValue {
    const v = new JsonValue();
    v.kind = JsonKind.Bool;
    v.bool = b;
    return v;
  }
  /** A number. */
  static newNumber(n: f64): JsonValue {
    const v = new JsonValue();
    v.kind = JsonKind.Number;
    v.num = n;
    return v;
  }
  /** A string. */
  static newString(s: string): JsonValue {
    const v = new JsonValue();
    v.kind = JsonKind.String;
    v.str = s;
    return v;
  }
  /** An empty array. */
  static newArray(): JsonValue {
    const v = new JsonValue();
    v.kind = JsonKind.Array;
    return v;
  }
  /** An empty object. */
  static newObject(): JsonValue {
    const v = new JsonValue();
    v.kind = JsonKind.Object;
    return v;
  }
  /** An array of strings. */
  static newStringArray(list: string[]): JsonValue {
    const v = JsonValue.newArray();
    for (let i = 0; i < list.length; i++) v.items.push(JsonValue.newString(list[i]));
    return v;
  }
  /** An object of string values. */
  static newStringMap(map: Map<string, string>): JsonValue {
    const v = JsonValue.newObject();
    const keys = map.keys();
    for (let i = 0; i < keys.length; i++) v.set(keys[i], JsonValue.newString(map.get(keys[i])));
    return v;
  }

  isNull(): bool {
    return this.kind == JsonKind.Null;
  }
  isObject(): bool {
    return this.kind == JsonKind.Object;
  }
  isArray(): bool {
    return this.kind == JsonKind.Array;
  }
  isString(): bool {
    return this.kind == JsonKind.String;
  }

  /** The member `key` of an object, or null (also when this is not an object). */
  get(key: string): JsonValue | null {
    if (this.kind != JsonKind.Object) return null;
    for (let i = 0; i < this.keys.length; i++) if (this.keys[i] == key) return this.values[i];
    return null;
  }
  /** True when this object has member `key`. */
  has(key: string): bool {
    return this.get(key) !== null;
  }
  /** Follows a path of object keys: path(["process", "capabilities"]). */
  path(keys: string[]): JsonValue | null {
    let cur: JsonValue | null = this;
    for (let i = 0; i < keys.length; i++) {
      if (cur === null) return null;
      cur = cur.get(keys[i]);
    }
    return cur;
  }
  /** Member `key` as a string, or `fallback`. */
  getString(key: string, fallback: string = ""): string {
    const v = this.get(key);
    return v !== null && v.kind == JsonKind.String ? v.str : fallback;
  }
  /** Member `key` as a boolean, or `fallback`. */
  getBool(key: string, fallback: bool = false): bool {
    const v = this.get(key);
    return v !== null && v.kind == JsonKind.Bool ? v.bool : fallback;
  }
  /** Member `key` as a number, or `fallback`. */
  getNumber(key: string, fallback: f64 = 0): f64 {
    const v = this.get(key);
    return v !== null && v.kind == JsonKind.Number ? v.num : fallback;
  }
  /** Member `key` as an array of its string items (other items skipped); empty when absent. */
  getStrings(key: string): string[] {
    const out: string[] = [];
    const v = this.get(key);
    if (v === null || v.kind != JsonKind.Array) return out;
    for (let i = 0; i < v.items.length; i++) if (v.items[i].kind == JsonKind.String) out.push(v.items[i].str);
    return out;
  }
  /** Member `key` as a string map (non-string members skipped); empty when absent. */
  getStringMap(key: string): Map<string, string> {
    const out = new Map<string, string>();
    const v = this.get(key);
    if (v === null || v.kind != JsonKind.Object) return out;
    for (let i = 0; i < v.keys.length; i++) if (v.values[i].kind == JsonKind.String) out.set(v.keys[i], v.values[i].str);
    return out;
  }

  /** Sets (or replaces) member `key` of an object; returns this. */
  set(key: string, value: JsonValue): JsonValue {
    for (let i = 0; i < this.keys.length; i++) {
      if (this.keys[i] == key) {
        this.values[i] = value;
        return this;
      }
    }
    this.keys.push(key);
    this.values.push(value);
    return this;
  }
  /** Returns member `key`, creating an empty object there when absent. */
  child(key: string): JsonValue {
    const v = this.get(key);
    if (v !== null && v.kind == JsonKind.Object) return v;
    const created = JsonValue.newObject();
    this.set(key, created);
    return created;
  }
  /** Appends to an array; returns this. */
  push(value: JsonValue): JsonValue {
    this.items.push(value);
    return this;
  }

  /** Writes this value as compact JSON. */
  toString(): string {
    const parts: string[] = [];
    writeValue(this, parts);
    return parts.join("");
  }
}

function writeValue(v: JsonValue, out: string[]): void {
  switch (v.kind) {
    case JsonKind.Null:
      out.push("null");
      break;
    case JsonKind.Bool:
      out.push(v.bool ? "true" : "false");
      break;
    case JsonKind.Number:
      out.push(formatNumber(v.num));
      break;
    case JsonKind.String:
      out.push(quote(v.str));
      break;
    case JsonKind.Array:
      out.push("[");
      for (let i = 0; i < v.items.length; i++) {
        if (i > 0) out.push(",");
        writeValue(v.items[i], out);
      }
      out.push("]");
      break;
    default:
      out.push("{");
      for (let i = 0; i < v.keys.length; i++) {
        if (i > 0) out.push(",");
        out.push(quote(v.keys[i]));
        out.push(":");
        writeValue(v.values[i], out);
      }
      out.push("}");
  }
}

function formatNumber(n: f64): string {
  if (!isFinite(n)) return "null";
  if (n == Math.floor(n) && Math.abs(n) < 9007199254740992.0) return (<i64>n).toString();
  return n.toString();
}

const HEX = "0123456789abcdef";

/** Quotes a string as a JSON string literal. */
export function quote(s: string): string {
  const parts: string[] = ['"'];
  let start = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c >= 0x20 && c != 0x22 && c != 0x5c) continue;
    if (i > start) parts.push(s.substring(start, i));
    start = i + 1;
    if (c == 0x22) parts.push('\\"');
    else if (c == 0x5c) parts.push("\\\\");
    else if (c == 0x0a) parts.push("\\n");
    else if (c == 0x0d) parts.push("\\r");
    else if (c == 0x09) parts.push("\\t");
    else parts.push("\\u00" + HEX.charAt(c >> 4) + HEX.charAt(c & 15));
  }
  if (start < s.length) parts.push(s.substring(start));
  parts.push('"');
  return parts.join("");
}

class Parser {
  pos: i32 = 0;
  constructor(public text: string) {}

  fail(what: string): void {
    throw new Error("JSON input: " + what + " at offset " + this.pos.toString());
  }

  skipSpace(): void {
    while (this.pos < this.text.length) {
      const c = this.text.charCodeAt(this.pos);
      if (c != 0x20 && c != 0x0a && c != 0x0d && c != 0x09) break;
      this.pos++;
    }
  }

  expectWord(word: string): void {
    if (this.text.substr(this.pos, word.length) != word) this.fail("unexpected token");
    this.pos += word.length;
  }

  value(depth: i32): JsonValue {
    if (depth > 256) this.fail("nesting too deep");
    this.skipSpace();
    if (this.pos >= this.text.length) this.fail("unexpected end");
    const c = this.text.charCodeAt(this.pos);
    if (c == 0x7b) return this.object(depth);
    if (c == 0x5b) return this.array(depth);
    if (c == 0x22) return JsonValue.newString(this.string());
    if (c == 0x74) {
      this.expectWord("true");
      return JsonValue.newBool(true);
    }
    if (c == 0x66) {
      this.expectWord("false");
      return JsonValue.newBool(false);
    }
    if (c == 0x6e) {
      this.expectWord("null");
      return JsonValue.newNull();
    }
    return JsonValue.newNumber(this.number());
  }

  object(depth: i32): JsonValue {
    const v = JsonValue.newObject();
    this.pos++;
    this.skipSpace();
    if (this.text.charCodeAt(this.pos) == 0x7d) {
      this.pos++;
      return v;
    }
    while (true) {
      this.skipSpace();
      if (this.text.charCodeAt(this.pos) != 0x22) this.fail("expected a member name");
      const key = this.string();
      this.skipSpace();
      if (this.text.charCodeAt(this.pos) != 0x3a) this.fail("expected ':'");
      this.pos++;
      v.keys.push(key);
      v.values.push(this.value(depth + 1));
      this.skipSpace();
      const c = this.text.charCodeAt(this.pos);
      this.pos++;
      if (c == 0x2c) continue;
      if (c == 0x7d) return v;
      this.fail("expected ',' or '}'");
    }
    return v;
  }

  array(depth: i32): JsonValue {
    const v = JsonValue.newArray();
    this.pos++;
    this.skipSpace();
    if (this.text.charCodeAt(this.pos) == 0x5d) {
      this.pos++;
      return v;
    }
    while (true) {
      v.items.push(this.value(depth + 1));
      this.skipSpace();
      const c = this.text.charCodeAt(this.pos);
      this.pos++;
      if (c == 0x2c) continue;
      if (c == 0x5d) return v;
      this.fail("expected ',' or ']'");
    }
    return v;
  }

  string(): string {
    this.pos++; // opening quote
    const parts: string[] = [];
    let start = this.pos;
    while (true) {
      if (this.pos >= this.text.length) this.fail("unterminated string");
      const c = this.text.charCodeAt(this.pos);
      if (c == 0x22) {
        parts.push(this.text.substring(start, this.pos));
        this.pos++;
        return parts.join("");
      }
      if (c != 0x5c) {
        this.pos++;
        continue;
      }
      parts.push(this.text.substring(start, this.pos));
      const e = this.text.charCodeAt(this.pos + 1);
      this.pos += 2;
      if (e == 0x22) parts.push('"');
      else if (e == 0x5c) parts.push("\\");
      else if (e == 0x2f) parts.push("/");
      else if (e == 0x62) parts.push("\b");
      else if (e == 0x66) parts.push("\f");
      else if (e == 0x6e) parts.push("\n");
      else if (e == 0x72) parts.push("\r");
      else if (e == 0x74) parts.push("\t");
      else if (e == 0x75) {
        const code = <i32>parseInt(this.text.substr(this.pos, 4), 16);
        if (this.pos + 4 > this.text.length || code < 0) this.fail("bad \\u escape");
        parts.push(String.fromCharCode(code));
        this.pos += 4;
      } else this.fail("bad escape");
      start = this.pos;
    }
    return "";
  }

  number(): f64 {
    const start = this.pos;
    while (this.pos < this.text.length) {
      const c = this.text.charCodeAt(this.pos);
      if ((c >= 0x30 && c <= 0x39) || c == 0x2d || c == 0x2b || c == 0x2e || c == 0x65 || c == 0x45) this.pos++;
      else break;
    }
    if (this.pos == start) this.fail("unexpected character");
    const n = parseFloat(this.text.substring(start, this.pos));
    if (isNaN(n)) this.fail("bad number");
    return n;
  }
}

/** Parses JSON text; malformed input aborts the call with a message naming the offset. */
export function parseJson(text: string): JsonValue {
  const p = new Parser(text);
  const v = p.value(0);
  p.skipSpace();
  if (p.pos != text.length) p.fail("trailing characters");
  return v;
}
