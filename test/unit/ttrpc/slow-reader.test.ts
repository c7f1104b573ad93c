import { describe, expect, test } from "bun:test";
import { create, toBinary } from "@bufbuild/protobuf";
import type { Socket } from "bun";
import { RequestSchema } from "../../../src/gen/ttrpc/request_pb.ts";
import { MessageType, createFrameDecoder, encodeFrame } from "../../../src/ttrpc/index.ts";
import { startEchoServer, until } from "./echo-fixture.ts";

/** Each answer of Big is 64 KiB, whatever the request: a peer that does not read makes the server queue them. */
const ANSWER = 64 << 10;
const REQUESTS = 1000;

describe("ttrpc server and a peer that does not read its answers", () => {
  test("the server stops reading its requests instead of queueing answers without bound, and serves them all once the peer reads", async () => {
    let handled = 0;
    await using s = startEchoServer((server) =>
      server.registerRaw("cryo.testing.v1.Big", "Big", async () => {
        handled++;
        return new Uint8Array(ANSWER);
      }),
    );
    const request = toBinary(RequestSchema, create(RequestSchema, { service: "cryo.testing.v1.Big", method: "Big", payload: new Uint8Array(16 << 10) }));
    let answers = 0;
    const decoder = createFrameDecoder({ frame: () => void answers++, oversized: () => {} });
    const peer: Socket<undefined> = await Bun.connect({
      unix: s.path,
      socket: { binaryType: "uint8array", data: (_s, chunk) => decoder.push(chunk) },
    });
    try {
      peer.pause(); // reads nothing until resumed
      const all: Uint8Array[] = [];
      for (let i = 0; i < REQUESTS; i++) all.push(encodeFrame(2 * i + 1, MessageType.REQUEST, 0, request));
      let rest = Buffer.concat(all);
      // Writes what the server takes; it stops taking once it holds its limit of answers.
      const end = Date.now() + 3000;
      while (rest.length > 0 && Date.now() < end) {
        const n = peer.write(rest);
        if (n > 0) rest = rest.subarray(n);
        await Bun.sleep(5);
      }
      await Bun.sleep(200);
      // Before: every request was read and answered into the queue (1000 x 64 KiB = 64 MiB held by the server).
      expect(rest.length).toBeGreaterThan(0);
      expect(handled).toBeLessThan(REQUESTS / 4);
      peer.resume();
      for (;;) {
        if (rest.length === 0) break;
        const n = peer.write(rest);
        if (n > 0) rest = rest.subarray(n);
        await Bun.sleep(1);
      }
      await until(() => answers === REQUESTS, `all ${REQUESTS} answers (got ${answers})`, 20_000);
      expect(handled).toBe(REQUESTS);
    } finally {
      peer.end();
    }
  }, 30_000);
});
