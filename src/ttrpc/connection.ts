/**
 * The connection engine shared by the ttrpc server and client: one unix socket, a frame decoder on
 * the way in, a batching write queue with backpressure on the way out. What a frame means (request
 * dispatch, response matching) is the role's business, given as a FrameHandler.
 *
 * Writes: frames sent in the same tick are coalesced into one socket write (queued, flushed in a
 * microtask). When the kernel buffer is full, `socket.write` takes only part; the rest waits for the
 * socket's `drain` callback, and later frames queue behind it, so frames never interleave.
 *
 * Reads (server role): when more than `pauseReadsAbove` bytes wait to be written, the connection stops reading
 * the socket until they are written, as containerd/ttrpc's server stops receiving while its sender blocks. A peer
 * that sends requests and never reads the answers then meets a full socket, not an ever-growing queue here.
 *
 * Reads are also taken `readSlice` bytes at a time (server role): the rest of a bigger chunk waits for the next turn of
 * the event loop, the socket paused meanwhile. A chunk is whatever the kernel had buffered (219 KB seen, some 3,600
 * small requests), and every request in it was dispatched before anything else ran: a peer that pipelined 100,000 requests
 * over 20 connections held one call of another peer for up to 21.9 s (bench/shim-flood.ts --state).
 */
import type { Socket } from "bun";
import { Code, CryoError } from "../errors.ts";
import { createFrameDecoder, type FrameDecoder } from "./frame-decoder.ts";
import { HEADER_LENGTH, MAX_MESSAGE_LENGTH, writeHeader, type FrameHeader } from "./frame.ts";

/** What a role (server or client) does with the frames of one connection. */
export interface FrameHandler {
  /** A complete frame arrived. */
  frame(conn: Connection, header: FrameHeader, data: Uint8Array): void;
  /** A frame longer than the limit arrived; its data is being discarded. */
  oversized(conn: Connection, header: FrameHeader): void;
  /** The connection is gone (peer closed, error, or local close); called once. */
  closed(conn: Connection, error?: Error): void;
}

/** The error ttrpc gives for a message over the limit (RESOURCE_EXHAUSTED). */
export function oversizedError(length: number, max = MAX_MESSAGE_LENGTH): CryoError {
  return new CryoError(
    Code.RESOURCE_EXHAUSTED,
    `message length ${length} exceeds maximum message size of ${max}`,
  );
}

/** Socket data slot: the engine attaches itself to the Bun socket it drives. */
export interface SocketSlot {
  conn?: Connection;
}

/** One ttrpc connection over a Bun socket (holds the socket; dispose or close it). */
export class Connection {
  private readonly decoder: FrameDecoder;
  private queue: Uint8Array[] = [];
  private queued = 0;
  private backlog: Uint8Array | undefined;
  private flushScheduled = false;
  private isClosed = false;
  private readsPaused = false;
  /** Input not decoded yet (the rest of a chunk beyond readSlice), decoded in later turns; the socket is paused meanwhile. */
  private input: Uint8Array[] = [];
  private inputScheduled = false;
  private readonly closedPromise: Promise<void>;
  private resolveClosed!: () => void;

  constructor(
    private readonly socket: Socket<SocketSlot>,
    private readonly handler: FrameHandler,
    readonly maxLength = MAX_MESSAGE_LENGTH,
    private readonly pauseReadsAbove = Infinity,
    private readonly readSlice = Infinity,
  ) {
    socket.data.conn = this;
    this.closedPromise = new Promise((resolve) => (this.resolveClosed = resolve));
    this.decoder = createFrameDecoder(
      {
        frame: (header, data) => this.handler.frame(this, header, data),
        oversized: (header) => this.handler.oversized(this, header),
      },
      { maxLength },
    );
  }

  /** True once the connection is closed (no more frames in or out). */
  get closed(): boolean {
    return this.isClosed;
  }

  /** Resolves when the connection has closed. */
  get done(): Promise<void> {
    return this.closedPromise;
  }

  /** Bytes accepted by send() but not yet taken by the kernel. */
  get pendingBytes(): number {
    return this.queued + (this.backlog?.length ?? 0);
  }

  /**
   * Queues one frame. Throws RESOURCE_EXHAUSTED (and sends nothing) when data exceeds the limit,
   * UNAVAILABLE when the connection is closed.
   */
  send(streamId: number, type: number, flags: number, data: Uint8Array): void {
    if (this.isClosed) throw new CryoError(Code.UNAVAILABLE, "ttrpc: connection closed");
    if (data.length > this.maxLength) throw oversizedError(data.length, this.maxLength);
    const frame = new Uint8Array(HEADER_LENGTH + data.length);
    writeHeader(frame, { length: data.length, streamId, type, flags });
    frame.set(data, HEADER_LENGTH);
    this.sendBytes(frame);
  }

  /** Queues raw bytes as they are (tests use it to send malformed input). */
  sendBytes(bytes: Uint8Array): void {
    if (this.isClosed) throw new CryoError(Code.UNAVAILABLE, "ttrpc: connection closed");
    this.queue.push(bytes);
    this.queued += bytes.length;
    if (this.backlog !== undefined) {
      // Nothing is flushed before the socket drains: the queue behind the backlog is measured here.
      this.paceReads();
    } else if (!this.flushScheduled) {
      this.flushScheduled = true;
      queueMicrotask(() => this.flush());
    }
  }

  /** Closes the socket now; queued frames not yet written are dropped. */
  close(): void {
    if (this.isClosed) return;
    this.socket.terminate();
    this.onClose();
  }

  /**
   * Closes after everything queued has reached the kernel (graceful). Resolves once closed.
   */
  async end(): Promise<void> {
    if (this.isClosed) return;
    this.flush();
    while (!this.isClosed && this.pendingBytes > 0) {
      await new Promise<void>((resolve) => {
        this.drainWaiters.push(resolve);
      });
    }
    if (!this.isClosed) {
      this.socket.end();
      this.onClose();
    }
  }

  [Symbol.dispose](): void {
    this.close();
  }

  private drainWaiters: (() => void)[] = [];

  /** Socket `data` callback. */
  onData(chunk: Uint8Array): void {
    if (this.isClosed) return;
    if (this.input.length > 0) {
      this.input.push(chunk);
      return;
    }
    this.decode(chunk);
  }

  /**
   * Decodes at most readSlice bytes of chunk now, beyond the rest of a frame being filled (copying a big request's data
   * is cheap, dispatching many small ones is not), and keeps the rest for a later turn (the socket paused until then).
   */
  private decode(chunk: Uint8Array): void {
    const slice = this.readSlice + this.decoder.awaiting;
    const now = chunk.length > slice ? chunk.subarray(0, slice) : chunk;
    try {
      this.decoder.push(now);
    } catch (err) {
      // A role handler failed in a way it did not handle itself: this connection's state is unknown.
      this.socket.terminate();
      this.onClose(err instanceof Error ? err : new Error(String(err)));
      return;
    }
    if (now.length < chunk.length) {
      this.input.unshift(chunk.subarray(now.length));
      if (!this.inputScheduled) {
        this.inputScheduled = true;
        this.socket.pause();
        setImmediate(() => this.decodeLater());
      }
    }
  }

  /** The next slice of the input kept back; the socket reads again once none is left (unless paceReads holds it). */
  private decodeLater(): void {
    if (this.isClosed) return;
    const next = this.input.shift();
    if (next !== undefined) this.decode(next);
    if (this.isClosed) return;
    if (this.input.length > 0) {
      setImmediate(() => this.decodeLater());
      return;
    }
    this.inputScheduled = false;
    if (!this.readsPaused) this.socket.resume();
  }

  /** Socket `drain` callback: the kernel has room again. */
  onDrain(): void {
    this.flush();
  }

  /** Socket `close`/`error` callback. */
  onClose(error?: Error): void {
    if (this.isClosed) return;
    this.isClosed = true;
    this.queue = [];
    this.queued = 0;
    this.backlog = undefined;
    this.input = [];
    for (const wake of this.drainWaiters.splice(0)) wake();
    try {
      this.handler.closed(this, error);
    } finally {
      this.resolveClosed();
    }
  }

  private flush(): void {
    this.flushScheduled = false;
    if (this.isClosed) return;
    if (this.backlog !== undefined) {
      if (!this.write(this.backlog)) {
        this.paceReads();
        return;
      }
      this.backlog = undefined;
    }
    if (this.queue.length > 0) {
      const parts = this.queue;
      const total = this.queued;
      this.queue = [];
      this.queued = 0;
      let bytes: Uint8Array;
      if (parts.length === 1) bytes = parts[0]!;
      else {
        bytes = new Uint8Array(total);
        let at = 0;
        for (const p of parts) {
          bytes.set(p, at);
          at += p.length;
        }
      }
      this.write(bytes);
    }
    this.paceReads();
    if (this.pendingBytes === 0) for (const wake of this.drainWaiters.splice(0)) wake();
  }

  /** Stops reading while more than pauseReadsAbove bytes wait to be written; reads again once all are written. */
  private paceReads(): void {
    if (this.isClosed) return;
    const pending = this.pendingBytes;
    if (pending > this.pauseReadsAbove && !this.readsPaused) {
      this.readsPaused = true;
      this.socket.pause();
    } else if (pending === 0 && this.readsPaused) {
      this.readsPaused = false;
      if (!this.inputScheduled) this.socket.resume();
    }
  }

  /** Writes what the kernel takes; keeps the rest as backlog. Returns true when all was written. */
  private write(bytes: Uint8Array): boolean {
    const n = this.socket.write(bytes);
    if (n < 0) {
      this.onClose(new Error("ttrpc: write on a closed socket"));
      return false;
    }
    if (n < bytes.length) {
      this.backlog = bytes.subarray(n);
      return false;
    }
    return true;
  }
}

/** Bun socket handlers that route events to the Connection attached to each socket. */
export const socketHandlers = {
  binaryType: "uint8array" as const,
  data(socket: Socket<SocketSlot>, chunk: Uint8Array) {
    socket.data.conn?.onData(chunk);
  },
  drain(socket: Socket<SocketSlot>) {
    socket.data.conn?.onDrain();
  },
  close(socket: Socket<SocketSlot>, error?: Error) {
    socket.data.conn?.onClose(error);
  },
  error(socket: Socket<SocketSlot>, error: Error) {
    socket.data.conn?.onClose(error);
  },
};
