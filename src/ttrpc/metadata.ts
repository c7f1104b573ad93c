/**
 * Request metadata: key/value pairs carried in ttrpc.Request.metadata. A key may repeat; values keep
 * their order. containerd sends the namespace under NAMESPACE_KEY.
 */
import { create } from "@bufbuild/protobuf";
import { KeyValueSchema, type KeyValue } from "../gen/ttrpc/request_pb.ts";

/** The metadata key under which containerd carries the namespace on ttrpc. */
export const NAMESPACE_KEY = "containerd-namespace-ttrpc";

/** Metadata as received: each key with its values in order. */
export type Metadata = ReadonlyMap<string, readonly string[]>;

/** Metadata as given by a caller: a record or a map, one value or several per key. */
export type MetadataInit =
  | Readonly<Record<string, string | readonly string[]>>
  | ReadonlyMap<string, string | readonly string[]>;

/** Turns caller metadata into wire key/values (keys in insertion order, repeated keys kept). */
export function toKeyValues(...inits: (MetadataInit | undefined)[]): KeyValue[] {
  const out: KeyValue[] = [];
  for (const init of inits) {
    if (init === undefined) continue;
    const entries = init instanceof Map ? [...init.entries()] : Object.entries(init);
    for (const [key, value] of entries as [string, string | readonly string[]][]) {
      const values = typeof value === "string" ? [value] : value;
      for (const v of values) out.push(create(KeyValueSchema, { key, value: v }));
    }
  }
  return out;
}

/** Groups wire key/values by key. */
export function fromKeyValues(kvs: readonly KeyValue[]): Map<string, string[]> {
  const md = new Map<string, string[]>();
  for (const { key, value } of kvs) {
    const values = md.get(key);
    if (values) values.push(value);
    else md.set(key, [value]);
  }
  return md;
}

/** The namespace carried in metadata (the first value of NAMESPACE_KEY), if any. */
export function namespaceOf(md: Metadata): string | undefined {
  return md.get(NAMESPACE_KEY)?.[0];
}
