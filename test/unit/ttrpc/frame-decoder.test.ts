import { describe, expect, test } from "bun:test";
import {
  HEADER_LENGTH,
  MAX_MESSAGE_LENGTH,
  MessageType,
  createFrameDecoder,
  encodeFrame,
  readHeader,
  writeHeader,
  type FrameHeader,
} from "../../../src/ttrpc/index.ts";

interface Got {
  frames: { header: FrameHeader; data: Uint8Array }[];
  oversized: FrameHeader[];
  allocations: number[];
}

function decoder(maxLength?: number) {
  const got: Got = { frames: [], oversized: [], allocations: [] };
  const d = createFrameDecoder(
    {
      frame: (header, data) => got.frames.push({ header, data }),
      oversized: (header) => got.oversized.push(header),
    },
    {
      maxLength,
      allocate: (n) => {
        got.allocations.push(n);
        return new Uint8Array(n);
      },
    },
  );
  return { d, got };
}

function bytes(n: number, seed: number): Uint8Array {
  const b = new Uint8Array(n);
  for (let i = 0; i < n; i++) b[i] = (i * 31 + seed) & 0xff;
  return b;
}

function concat(...parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

describe("frame header", () => {
  test("fields sit at their byte ranges, big-endian", () => {
    const f = encodeFrame(0x01020304, MessageType.RESPONSE, 0x05, new Uint8Array([0xaa, 0xbb]));
    expect([...f]).toEqual([0, 0, 0, 2, 1, 2, 3, 4, 2, 5, 0xaa, 0xbb]);
    expect(readHeader(f)).toEqual({ length: 2, streamId: 0x01020304, type: 2, flags: 5 });
  });

  test("writeHeader and readHeader round-trip at an offset", () => {
    const buf = new Uint8Array(3 + HEADER_LENGTH);
    const h = { length: MAX_MESSAGE_LENGTH, streamId: 0xffffffff, type: 3, flags: 4 };
    writeHeader(buf, h, 3);
    expect(readHeader(buf, 3)).toEqual(h);
  });
});

describe("frame decoder", () => {
  const frames = [
    { id: 1, type: MessageType.REQUEST, data: bytes(100, 1) },
    { id: 3, type: MessageType.REQUEST, data: new Uint8Array(0) },
    { id: 5, type: MessageType.RESPONSE, data: bytes(7, 2) },
    { id: 7, type: MessageType.DATA, data: bytes(3000, 3) },
  ];
  const stream = concat(...frames.map((f) => encodeFrame(f.id, f.type, 0, f.data)));

  function expectAll(got: Got) {
    expect(got.oversized).toEqual([]);
    expect(got.frames.map((f) => f.header.streamId)).toEqual(frames.map((f) => f.id));
    expect(got.frames.map((f) => f.header.type)).toEqual(frames.map((f) => f.type));
    for (let i = 0; i < frames.length; i++) expect(got.frames[i]!.data).toEqual(frames[i]!.data);
  }

  test("coalesced: many frames in one chunk", () => {
    const { d, got } = decoder();
    d.push(stream);
    expectAll(got);
    expect(d.pending).toBe(0);
  });

  test("split: one byte at a time", () => {
    const { d, got } = decoder();
    for (let i = 0; i < stream.length; i++) d.push(stream.subarray(i, i + 1));
    expectAll(got);
    expect(d.pending).toBe(0);
  });

  test("every split point of a two-chunk delivery", () => {
    for (let cut = 0; cut <= stream.length; cut += 7) {
      const { d, got } = decoder();
      d.push(stream.subarray(0, cut));
      d.push(stream.subarray(cut));
      expectAll(got);
    }
  });

  test("awaiting: the bytes still to come of the frame being filled or discarded", () => {
    const { d, got } = decoder(100);
    const f = encodeFrame(9, MessageType.REQUEST, 0, bytes(50, 1));
    expect(d.awaiting).toBe(0);
    d.push(f.subarray(0, 4));
    expect(d.awaiting).toBe(0); // a header is not a frame's data yet
    d.push(f.subarray(4, HEADER_LENGTH + 20));
    expect(d.awaiting).toBe(30);
    d.push(f.subarray(HEADER_LENGTH + 20));
    expect([d.awaiting, got.frames.length]).toEqual([0, 1]);
    const big = new Uint8Array(HEADER_LENGTH + 10);
    writeHeader(big, { length: 150, streamId: 11, type: MessageType.REQUEST, flags: 0 });
    d.push(big);
    expect(d.awaiting).toBe(140); // discarded as it streams past
  });

  test("partial header waits for the rest", () => {
    const { d, got } = decoder();
    const f = encodeFrame(9, MessageType.REQUEST, 0, bytes(5, 9));
    d.push(f.subarray(0, 4));
    expect(got.frames).toEqual([]);
    expect(d.pending).toBe(4);
    d.push(f.subarray(4, 10));
    expect(got.frames).toEqual([]);
    expect(got.allocations).toEqual([5]);
    d.push(f.subarray(10));
    expect(got.frames.length).toBe(1);
    expect(got.frames[0]!.data).toEqual(bytes(5, 9));
  });

  test("decoded data does not alias the pushed chunk", () => {
    const { d, got } = decoder();
    const f = encodeFrame(1, MessageType.REQUEST, 0, bytes(4, 4));
    d.push(f);
    f.fill(0);
    expect(got.frames[0]!.data).toEqual(bytes(4, 4));
  });

  test("exactly the maximum size is accepted", () => {
    const { d, got } = decoder();
    const data = bytes(MAX_MESSAGE_LENGTH, 5);
    const f = encodeFrame(1, MessageType.REQUEST, 0, data);
    d.push(f.subarray(0, 1 << 20));
    d.push(f.subarray(1 << 20));
    expect(got.oversized).toEqual([]);
    expect(got.frames.length).toBe(1);
    expect(got.frames[0]!.data.length).toBe(MAX_MESSAGE_LENGTH);
    expect(got.frames[0]!.data).toEqual(data);
  });

  test("maximum + 1 is rejected at the header, without allocating, and its data is skipped", () => {
    const { d, got } = decoder();
    const header = new Uint8Array(HEADER_LENGTH);
    writeHeader(header, { length: MAX_MESSAGE_LENGTH + 1, streamId: 3, type: MessageType.REQUEST, flags: 0 });
    d.push(header);
    expect(got.oversized).toEqual([{ length: MAX_MESSAGE_LENGTH + 1, streamId: 3, type: 1, flags: 0 }]);
    expect(got.allocations).toEqual([]);
    // The data streams by in chunks and is discarded; the next frame decodes normally.
    const body = new Uint8Array(64 * 1024);
    let left = MAX_MESSAGE_LENGTH + 1;
    while (left > 0) {
      const n = Math.min(left, body.length);
      d.push(body.subarray(0, n));
      left -= n;
    }
    expect(got.allocations).toEqual([]);
    expect(got.frames).toEqual([]);
    d.push(encodeFrame(5, MessageType.REQUEST, 0, bytes(3, 6)));
    expect(got.frames.map((f) => f.header.streamId)).toEqual([5]);
    expect(got.frames[0]!.data).toEqual(bytes(3, 6));
  });

  test("an oversized frame coalesced with the next one", () => {
    const { d, got } = decoder(16);
    const big = encodeFrame(1, MessageType.REQUEST, 0, bytes(17, 1));
    const ok = encodeFrame(3, MessageType.REQUEST, 0, bytes(16, 2));
    d.push(concat(big, ok));
    expect(got.oversized.map((h) => h.streamId)).toEqual([1]);
    expect(got.frames.map((f) => f.header.streamId)).toEqual([3]);
    expect(got.allocations).toEqual([16]);
  });

  test("a garbage length (first byte non-zero) is treated as oversized, never allocated", () => {
    const { d, got } = decoder();
    d.push(new TextEncoder().encode("GET / HTTP/1.1\r\n"));
    expect(got.oversized.length).toBe(1);
    expect(got.oversized[0]!.length).toBe(0x47455420);
    expect(got.allocations).toEqual([]);
  });
});
