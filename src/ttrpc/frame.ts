/**
 * The ttrpc frame: a 10-byte header followed by the message data.
 *
 *   bytes 0..3  data length, big-endian uint32 (excluding the header; at most 4 MiB, so byte 0 is always 0)
 *   bytes 4..7  stream id, big-endian uint32 (odd for client-initiated streams, increasing)
 *   byte  8     message type (request 1, response 2, data 3)
 *   byte  9     flags (meaning depends on the type)
 *
 * The facts come from containerd/ttrpc (channel.go, PROTOCOL.md).
 */

/** Length of the fixed frame header in bytes. */
export const HEADER_LENGTH = 10;

/** Largest data length a frame may carry (4 MiB); larger frames are discarded and answered RESOURCE_EXHAUSTED. */
export const MAX_MESSAGE_LENGTH = 4 << 20;

/** Message types (header byte 8). */
export const MessageType = {
  /** Starts a stream; carries a ttrpc.Request. */
  REQUEST: 0x1,
  /** Ends a stream; carries a ttrpc.Response. */
  RESPONSE: 0x2,
  /** Stream data (streaming RPCs only; cryo's services are unary). */
  DATA: 0x3,
} as const;

/** A message type number; other values may arrive from a peer and are treated as unknown. */
export type MessageType = (typeof MessageType)[keyof typeof MessageType];

/** Header flags (header byte 9). */
export const Flag = {
  /** Request/data: no more data will come from the sender. */
  REMOTE_CLOSED: 0x1,
  /** Request: the sender will stream more data. */
  REMOTE_OPEN: 0x2,
  /** Data: the frame carries no data. */
  NO_DATA: 0x4,
} as const;

/** A decoded frame header. */
export interface FrameHeader {
  /** Bytes 0..3: data length, excluding the header. */
  length: number;
  /** Bytes 4..7: stream id. */
  streamId: number;
  /** Byte 8: message type (not validated here: unknown types are the dispatcher's business). */
  type: number;
  /** Byte 9: flags. */
  flags: number;
}

/** Reads a header from the first 10 bytes at `offset` of `buf` (the caller guarantees they are there). */
export function readHeader(buf: Uint8Array, offset = 0): FrameHeader {
  // Plain byte arithmetic: no DataView, so a socket chunk's backing ArrayBuffer is never materialized.
  const b = (i: number) => buf[offset + i]!;
  return {
    length: ((b(0) << 24) | (b(1) << 16) | (b(2) << 8) | b(3)) >>> 0,
    streamId: ((b(4) << 24) | (b(5) << 16) | (b(6) << 8) | b(7)) >>> 0,
    type: b(8),
    flags: b(9),
  };
}

/** Writes a header into the first 10 bytes at `offset` of `buf`. */
export function writeHeader(buf: Uint8Array, header: FrameHeader, offset = 0): void {
  const { length, streamId } = header;
  buf[offset] = length >>> 24;
  buf[offset + 1] = length >>> 16;
  buf[offset + 2] = length >>> 8;
  buf[offset + 3] = length;
  buf[offset + 4] = streamId >>> 24;
  buf[offset + 5] = streamId >>> 16;
  buf[offset + 6] = streamId >>> 8;
  buf[offset + 7] = streamId;
  buf[offset + 8] = header.type;
  buf[offset + 9] = header.flags;
}

/**
 * Builds one frame (header + data) in a single buffer. It does not check the length limit: callers
 * check `data.length <= MAX_MESSAGE_LENGTH` first, so that tests can still build oversized frames.
 */
export function encodeFrame(streamId: number, type: number, flags: number, data: Uint8Array): Uint8Array {
  const frame = new Uint8Array(HEADER_LENGTH + data.length);
  writeHeader(frame, { length: data.length, streamId, type, flags });
  frame.set(data, HEADER_LENGTH);
  return frame;
}
