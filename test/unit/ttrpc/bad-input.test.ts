import { describe, expect, test } from "bun:test";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { Code } from "../../../src/errors.ts";
import { EchoRequestSchema, EchoResponseSchema, SleepRequestSchema } from "../../../src/gen/cryo/testing/v1/echo_pb.ts";
import { RequestSchema, ResponseSchema } from "../../../src/gen/ttrpc/request_pb.ts";
import {
  HEADER_LENGTH,
  MAX_MESSAGE_LENGTH,
  MessageType,
  connect,
  createClient,
  encodeFrame,
  writeHeader,
} from "../../../src/ttrpc/index.ts";
import { Echo } from "../../../src/gen/cryo/testing/v1/echo_pb.ts";
import { rawPeer, startEchoServer, until, type RawPeer } from "./echo-fixture.ts";

function echoRequest(seq: bigint, extra: { timeoutNano?: bigint } = {}): Uint8Array {
  return toBinary(
    RequestSchema,
    create(RequestSchema, {
      service: "cryo.testing.v1.Echo",
      method: "Echo",
      payload: toBinary(EchoRequestSchema, create(EchoRequestSchema, { seq })),
      ...extra,
    }),
  );
}

/** Reads the next frame and decodes it as a Response. */
async function response(peer: RawPeer) {
  const { header, data } = await peer.next();
  expect(header.type).toBe(MessageType.RESPONSE);
  return { streamId: header.streamId, res: fromBinary(ResponseSchema, data) };
}

/** Proves the connection still serves a normal request on stream `id`. */
async function stillWorks(peer: RawPeer, id: number): Promise<void> {
  peer.send(encodeFrame(id, MessageType.REQUEST, 0, echoRequest(BigInt(id))));
  const { streamId, res } = await response(peer);
  expect(streamId).toBe(id);
  expect(res.status?.code ?? 0).toBe(Code.OK);
  expect(fromBinary(EchoResponseSchema, res.payload).seq).toBe(BigInt(id));
}

describe("ttrpc server under bad input", () => {
  test("an oversized frame is discarded and answered RESOURCE_EXHAUSTED; the same connection still works", async () => {
    await using s = startEchoServer();
    using peer = await rawPeer(s.path);
    const header = new Uint8Array(HEADER_LENGTH);
    writeHeader(header, { length: MAX_MESSAGE_LENGTH + 1, streamId: 1, type: MessageType.REQUEST, flags: 0 });
    peer.send(header);
    peer.send(new Uint8Array(MAX_MESSAGE_LENGTH + 1).fill(0x5a));
    const { streamId, res } = await response(peer);
    expect(streamId).toBe(1);
    expect(res.status?.code).toBe(Code.RESOURCE_EXHAUSTED);
    expect(res.status?.message).toBe(
      `message length ${MAX_MESSAGE_LENGTH + 1} exceeds maximum message size of ${MAX_MESSAGE_LENGTH}`,
    );
    await stillWorks(peer, 3);
  });

  test("a request whose payload is not a ttrpc.Request is INVALID_ARGUMENT on its stream", async () => {
    await using s = startEchoServer();
    using peer = await rawPeer(s.path);
    peer.send(encodeFrame(1, MessageType.REQUEST, 0, new Uint8Array([0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f])));
    const { streamId, res } = await response(peer);
    expect(streamId).toBe(1);
    expect(res.status?.code).toBe(Code.INVALID_ARGUMENT);
    expect(res.status?.message).toStartWith("unmarshal request: invalid argument");
    await stillWorks(peer, 3);
  });

  test("even and reused stream ids are INVALID_ARGUMENT", async () => {
    await using s = startEchoServer();
    using peer = await rawPeer(s.path);
    peer.send(encodeFrame(2, MessageType.REQUEST, 0, echoRequest(2n)));
    let r = await response(peer);
    expect(r.streamId).toBe(2);
    expect(r.res.status?.code).toBe(Code.INVALID_ARGUMENT);
    expect(r.res.status?.message).toContain("must be odd");
    await stillWorks(peer, 5);
    peer.send(encodeFrame(5, MessageType.REQUEST, 0, echoRequest(5n)));
    r = await response(peer);
    expect(r.streamId).toBe(5);
    expect(r.res.status?.code).toBe(Code.INVALID_ARGUMENT);
    expect(r.res.status?.message).toContain("must increase");
    await stillWorks(peer, 7);
  });

  test("a data frame for a stream that is not open is INVALID_ARGUMENT", async () => {
    await using s = startEchoServer();
    using peer = await rawPeer(s.path);
    peer.send(encodeFrame(1, MessageType.DATA, 0, new Uint8Array([1, 2])));
    const { streamId, res } = await response(peer);
    expect(streamId).toBe(1);
    expect(res.status?.code).toBe(Code.INVALID_ARGUMENT);
    await stillWorks(peer, 3);
  });

  test("a frame of unknown type is ignored (no answer), the next request is served", async () => {
    await using s = startEchoServer();
    using peer = await rawPeer(s.path);
    peer.send(encodeFrame(1, 0x7f, 0, new Uint8Array([1, 2, 3])));
    // The first frame back must be the answer to stream 3: nothing was sent for stream 1.
    await stillWorks(peer, 3);
  });

  test("the server enforces timeout_nano: DEADLINE_EXCEEDED and the handler's signal aborts", async () => {
    await using s = startEchoServer();
    using peer = await rawPeer(s.path);
    const req = create(RequestSchema, {
      service: "cryo.testing.v1.Echo",
      method: "Sleep",
      payload: toBinary(SleepRequestSchema, create(SleepRequestSchema, { delayMs: 60_000, seq: 11n })),
      timeoutNano: 20_000_000n,
    });
    peer.send(encodeFrame(1, MessageType.REQUEST, 0, toBinary(RequestSchema, req)));
    const { streamId, res } = await response(peer);
    expect(streamId).toBe(1);
    expect(res.status?.code).toBe(Code.DEADLINE_EXCEEDED);
    expect(res.status?.message).toBe("cryo.testing.v1.Echo/Sleep: context deadline exceeded");
    expect(s.observed.aborted.has(11n)).toBe(true);
    await stillWorks(peer, 3);
  });

  test("garbage bytes on one connection do not affect another", async () => {
    await using s = startEchoServer();
    using good = await connect(s.path);
    const echo = createClient(Echo, good);
    const inFlight = echo.sleep({ delayMs: 30, seq: 1n });
    using bad = await rawPeer(s.path);
    await until(() => s.server.connections === 2, "both connections");
    bad.send(new TextEncoder().encode("GET / HTTP/1.1\r\nHost: cryo\r\n\r\n\x00\x01\x02garbage"));
    // "GET " read as a length is far over the limit: the server answers RESOURCE_EXHAUSTED and keeps discarding.
    const first = await bad.next();
    expect(fromBinary(ResponseSchema, first.data).status?.code).toBe(Code.RESOURCE_EXHAUSTED);
    expect((await inFlight).seq).toBe(1n);
    expect((await echo.echo({ seq: 2n })).seq).toBe(2n);
    bad.close();
    await until(() => s.server.connections === 1, "the bad connection to go");
    expect((await echo.echo({ seq: 3n })).seq).toBe(3n);
  });

  test("a client that disconnects mid-request: its handler is aborted, the server keeps serving", async () => {
    await using s = startEchoServer();
    const peer = await rawPeer(s.path);
    const req = create(RequestSchema, {
      service: "cryo.testing.v1.Echo",
      method: "Sleep",
      payload: toBinary(SleepRequestSchema, create(SleepRequestSchema, { delayMs: 60_000, seq: 21n })),
    });
    peer.send(encodeFrame(1, MessageType.REQUEST, 0, toBinary(RequestSchema, req)));
    await until(() => s.observed.started.has(21n), "the handler to start");
    peer.close();
    await until(() => s.observed.aborted.has(21n), "the handler to be aborted");
    await until(() => s.server.connections === 0 && s.server.inFlight === 0, "the connection to be gone");
    using c = await connect(s.path);
    expect((await createClient(Echo, c).echo({ seq: 22n })).seq).toBe(22n);
  });

  test("a header cut short by a disconnect leaves the server serving others", async () => {
    await using s = startEchoServer();
    const peer = await rawPeer(s.path);
    peer.send(new Uint8Array([0, 0, 0]));
    await until(() => s.server.connections === 1, "the connection");
    peer.close();
    await until(() => s.server.connections === 0, "the connection to go");
    using c = await connect(s.path);
    expect((await createClient(Echo, c).echo({ seq: 1n })).seq).toBe(1n);
  });
});
