import { describe, expect, test } from "bun:test";
import { create, toBinary } from "@bufbuild/protobuf";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Socket } from "bun";
import { Code, CryoError } from "../../../src/errors.ts";
import { ResponseSchema } from "../../../src/gen/ttrpc/request_pb.ts";
import {
  HEADER_LENGTH,
  MAX_MESSAGE_LENGTH,
  MessageType,
  connect,
  createFrameDecoder,
  encodeFrame,
  writeHeader,
} from "../../../src/ttrpc/index.ts";

/** A scripted misbehaving server: `answer(streamId, socket)` decides what each request gets. */
function rawServer(answer: (streamId: number, socket: Socket<undefined>) => void) {
  const dir = mkdtempSync(join(tmpdir(), "cryo-ttrpc-peer-"));
  const path = join(dir, "peer.sock");
  const listener = Bun.listen({
    unix: path,
    socket: {
      binaryType: "uint8array",
      open(socket) {
        const decoder = createFrameDecoder({
          frame: (h) => answer(h.streamId, socket),
          oversized: () => {},
        });
        (socket as unknown as { decoder: typeof decoder }).decoder = decoder;
      },
      data(socket, chunk) {
        (socket as unknown as { decoder: ReturnType<typeof createFrameDecoder> }).decoder.push(chunk);
      },
    },
  });
  return {
    path,
    [Symbol.dispose]() {
      listener.stop(true);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

const ok = (payload: Uint8Array) => toBinary(ResponseSchema, create(ResponseSchema, { payload }));

async function failure(p: Promise<unknown>): Promise<CryoError> {
  try {
    await p;
  } catch (err) {
    expect(err).toBeInstanceOf(CryoError);
    return err as CryoError;
  }
  throw new Error("expected the call to fail");
}

/** Writes all of `bytes`, waiting out partial writes. */
async function writeAll(socket: Socket<undefined>, bytes: Uint8Array): Promise<void> {
  let at = 0;
  while (at < bytes.length) {
    const n = socket.write(bytes.subarray(at));
    if (n > 0) at += n;
    else await Bun.sleep(1);
  }
}

describe("ttrpc client against a misbehaving server", () => {
  test("each bad answer fails only its own call; the connection keeps working", async () => {
    // Answers are written strictly one after another, so the 4 MiB discard never interleaves with others.
    let chain = Promise.resolve();
    const send = (socket: Socket<undefined>, bytes: Uint8Array) => {
      chain = chain.then(() => writeAll(socket, bytes));
    };
    using peer = rawServer((id, socket) => {
      switch (id) {
        case 1: {
          // An oversized response: the client must discard it and fail stream 1 with RESOURCE_EXHAUSTED.
          const header = new Uint8Array(HEADER_LENGTH);
          writeHeader(header, { length: MAX_MESSAGE_LENGTH + 1, streamId: 1, type: MessageType.RESPONSE, flags: 0 });
          send(socket, header);
          send(socket, new Uint8Array(MAX_MESSAGE_LENGTH + 1));
          break;
        }
        case 3:
          send(socket, encodeFrame(3, MessageType.DATA, 0, new Uint8Array([1])));
          break;
        case 5:
          send(socket, encodeFrame(5, MessageType.RESPONSE, 0, new Uint8Array([0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f])));
          break;
        case 7:
          // An answer for a stream nobody opened is dropped; then the real answer.
          send(socket, encodeFrame(99, MessageType.RESPONSE, 0, ok(new Uint8Array([9]))));
          send(socket, encodeFrame(7, MessageType.RESPONSE, 0, ok(new Uint8Array([7]))));
          break;
        case 9:
          chain = chain.then(() => socket.terminate());
          break;
      }
    });
    using c = await connect(peer.path);
    const empty = new Uint8Array(0);
    const oversized = await failure(c.callRaw("s", "m", empty));
    expect(oversized.code).toBe(Code.RESOURCE_EXHAUSTED);
    const data = await failure(c.callRaw("s", "m", empty));
    expect(data.code).toBe(Code.UNKNOWN);
    expect(data.message).toContain("unexpected message type 3");
    const garbage = await failure(c.callRaw("s", "m", empty));
    expect(garbage.code).toBe(Code.UNKNOWN);
    expect(garbage.message).toContain("decode response");
    expect(await c.callRaw("s", "m", empty)).toEqual(new Uint8Array([7]));
    const gone = await failure(c.callRaw("s", "m", empty));
    expect(gone.code).toBe(Code.UNAVAILABLE);
    await c.done;
    expect(c.closed).toBe(true);
    expect(c.inFlight).toBe(0);
  });
});
