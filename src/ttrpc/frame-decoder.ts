/**
 * A push-based frame decoder: feed it socket chunks of any size, it calls back once per complete
 * frame. It handles headers split across chunks, frames split across many chunks, and many frames
 * coalesced into one chunk. The length limit is checked as soon as a header is complete, before any
 * buffer for the data is allocated; an oversized frame's data is skipped as it streams by.
 */
import { HEADER_LENGTH, MAX_MESSAGE_LENGTH, readHeader, type FrameHeader } from "./frame.ts";

/** Where decoded frames go. */
export interface FrameSink {
  /** A complete frame; `data` is owned by the receiver (never reused by the decoder). */
  frame(header: FrameHeader, data: Uint8Array): void;
  /** A header whose length exceeds the limit; its data will be discarded without being buffered. */
  oversized(header: FrameHeader): void;
}

/** Options for createFrameDecoder. */
export interface FrameDecoderOptions {
  /** Largest accepted data length (default 4 MiB). */
  maxLength?: number;
  /** Allocates a data buffer (default `new Uint8Array(n)`); tests use it to count allocations. */
  allocate?: (length: number) => Uint8Array;
}

/** A push-based decoder for one connection's inbound byte stream. */
export interface FrameDecoder {
  /** Consumes one chunk, calling the sink for every frame it completes. */
  push(chunk: Uint8Array): void;
  /** Bytes held for an incomplete header or frame (0 between frames). */
  readonly pending: number;
  /** Bytes still to come of the frame whose data is being filled or discarded (0 between frames and in a header). */
  readonly awaiting: number;
}

/** Creates a decoder that delivers frames to `sink`. */
export function createFrameDecoder(sink: FrameSink, options: FrameDecoderOptions = {}): FrameDecoder {
  const maxLength = options.maxLength ?? MAX_MESSAGE_LENGTH;
  // Backed by an explicit ArrayBuffer: protobuf-es reads through a DataView on `.buffer`, which would
  // otherwise make the engine copy the bytes into a fresh ArrayBuffer on first access.
  const allocate = options.allocate ?? ((n: number) => new Uint8Array(new ArrayBuffer(n)));

  // State: collecting a header (headerFill bytes so far), filling a body, or discarding a body.
  const headerBuf = new Uint8Array(HEADER_LENGTH);
  let headerFill = 0;
  let header: FrameHeader | undefined;
  let body: Uint8Array | undefined;
  let bodyFill = 0;
  let discard = 0;

  function startFrame(h: FrameHeader): void {
    if (h.length > maxLength) {
      discard = h.length;
      sink.oversized(h);
      return;
    }
    if (h.length === 0) {
      sink.frame(h, new Uint8Array(0));
      return;
    }
    header = h;
    body = allocate(h.length);
    bodyFill = 0;
  }

  return {
    get pending() {
      return headerFill + bodyFill;
    },
    get awaiting() {
      return body !== undefined ? body.length - bodyFill : discard;
    },
    push(chunk: Uint8Array): void {
      let pos = 0;
      const end = chunk.length;
      while (pos < end) {
        if (discard > 0) {
          const n = Math.min(discard, end - pos);
          discard -= n;
          pos += n;
          continue;
        }
        if (body !== undefined && header !== undefined) {
          const n = Math.min(body.length - bodyFill, end - pos);
          body.set(chunk.subarray(pos, pos + n), bodyFill);
          bodyFill += n;
          pos += n;
          if (bodyFill === body.length) {
            const done = body;
            const h = header;
            body = undefined;
            header = undefined;
            bodyFill = 0;
            sink.frame(h, done);
          }
          continue;
        }
        if (headerFill === 0 && end - pos >= HEADER_LENGTH) {
          // Fast path: the whole header is in this chunk.
          const h = readHeader(chunk, pos);
          pos += HEADER_LENGTH;
          startFrame(h);
          continue;
        }
        const n = Math.min(HEADER_LENGTH - headerFill, end - pos);
        headerBuf.set(chunk.subarray(pos, pos + n), headerFill);
        headerFill += n;
        pos += n;
        if (headerFill === HEADER_LENGTH) {
          headerFill = 0;
          startFrame(readHeader(headerBuf));
        }
      }
    },
  };
}
