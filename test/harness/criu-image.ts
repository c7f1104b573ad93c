import { create, toBinary, type DescMessage, type MessageInitShape } from "@bufbuild/protobuf";
import { IMG_COMMON_MAGIC } from "../../src/criu/image-file.ts";

/** A CRIU image file as CRIU writes one: the two magics, then each entry with its size. */
export function criuImage(magic: number, entries: Uint8Array[]): Uint8Array {
  const parts = entries.flatMap((e) => [new Uint8Array(new Uint32Array([e.length]).buffer), e]);
  const head = new Uint8Array(new Uint32Array([IMG_COMMON_MAGIC, magic]).buffer);
  return Buffer.concat([head, ...parts]);
}

/** The protobuf bytes of a message of schema made from init. */
export const encodeEntry = <D extends DescMessage>(schema: D, init: MessageInitShape<D>): Uint8Array => toBinary(schema, create(schema, init));
