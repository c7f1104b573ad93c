import { expect, test } from "bun:test";
import { create, toBinary } from "@bufbuild/protobuf";
import type { Socket } from "bun";
import { RequestSchema } from "../../../src/gen/ttrpc/request_pb.ts";
import { MessageType, createFrameDecoder, encodeFrame } from "../../../src/ttrpc/index.ts";
import { startEchoServer, until } from "./echo-fixture.ts";

const FLOOD = 3000;

/** A peer on its own connection: sends one frame per call and counts the answers. */
async function peer(path: string) {
  let answers = 0;
  const decoder = createFrameDecoder({ frame: () => void answers++, oversized: () => {} });
  const socket: Socket<undefined> = await Bun.connect({ unix: path, socket: { binaryType: "uint8array", data: (_s, chunk) => decoder.push(chunk) } });
  return { socket, answers: () => answers };
}

test("a peer that pipelines thousands of requests in one write does not hold another connection's request until all of them are handled", async () => {
  let flooded = 0;
  let floodedAtQuiet = -1;
  await using s = startEchoServer((server) => {
    server.registerRaw("cryo.testing.v1.Flood", "Slow", async () => {
      // Each request costs the loop a little, as a State does in the shim daemon (interpreted, no JIT): ~0.2 ms.
      const t = performance.now();
      while (performance.now() - t < 0.2) {}
      flooded++;
      return new Uint8Array(0);
    });
    server.registerRaw("cryo.testing.v1.Flood", "Quiet", async () => {
      floodedAtQuiet = flooded;
      return new Uint8Array(0);
    });
  });
  const frame = (service: string, method: string, id: number) => encodeFrame(id, MessageType.REQUEST, 0, toBinary(RequestSchema, create(RequestSchema, { service, method, payload: new Uint8Array(0) })));
  const flood = await peer(s.path);
  const quiet = await peer(s.path);
  try {
    const all = Buffer.concat(Array.from({ length: FLOOD }, (_, i) => frame("cryo.testing.v1.Flood", "Slow", 2 * i + 1)));
    let rest = all.subarray(flood.socket.write(all));
    quiet.socket.write(frame("cryo.testing.v1.Flood", "Quiet", 1));
    while (rest.length > 0) {
      await Bun.sleep(1);
      rest = rest.subarray(Math.max(0, flood.socket.write(rest)));
    }
    await until(() => quiet.answers() === 1, "the quiet peer's answer", 10_000);
    await until(() => flood.answers() === FLOOD, `all ${FLOOD} answers`, 20_000);
    // Before, every request of the chunk the server read (as much as the kernel held: here all of them) was
    // dispatched before the quiet peer's was read at all.
    expect(floodedAtQuiet).toBeGreaterThanOrEqual(0);
    expect(floodedAtQuiet).toBeLessThan(FLOOD / 2);
  } finally {
    flood.socket.end();
    quiet.socket.end();
  }
}, 30_000);
