/** Test fixture: a ttrpc server with cryo.testing.v1.Echo on a temp socket, and a raw-socket peer. */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Socket } from "bun";
import { Echo } from "../../../src/gen/cryo/testing/v1/echo_pb.ts";
import {
  createFrameDecoder,
  createServer,
  type CallContext,
  type FrameHeader,
  type Server,
} from "../../../src/ttrpc/index.ts";

/** What the Echo handlers observed. */
export interface Observed {
  /** Highest number of Sleep calls running at once. */
  maxConcurrent: number;
  /** Abort reasons of Sleep calls whose signal fired, by seq. */
  aborted: Map<bigint, unknown>;
  /** Sleep calls started, by seq. */
  started: Set<bigint>;
}

/** A server with Echo registered on a fresh socket in a fresh temp dir. */
export interface EchoServer extends AsyncDisposable {
  server: Server;
  path: string;
  dir: string;
  observed: Observed;
}

/** Waits for a condition, polling, with a deadline. */
export async function until(cond: () => boolean, what: string, timeoutMs = 5000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await Bun.sleep(2);
  }
}

/** Starts an Echo server; Sleep honours its signal (ends early with the abort reason). */
export function startEchoServer(setup?: (server: Server) => void): EchoServer {
  const dir = mkdtempSync(join(tmpdir(), "cryo-ttrpc-"));
  const path = join(dir, "run", "ttrpc.sock");
  const observed: Observed = { maxConcurrent: 0, aborted: new Map(), started: new Set() };
  let running = 0;
  const server = createServer();
  server.register(Echo, {
    async echo(req) {
      return { payload: req.payload, seq: req.seq };
    },
    async sleep(req, ctx: CallContext) {
      observed.started.add(req.seq);
      running++;
      observed.maxConcurrent = Math.max(observed.maxConcurrent, running);
      try {
        await new Promise<void>((resolve, reject) => {
          const t = setTimeout(resolve, req.delayMs);
          ctx.signal.addEventListener("abort", () => {
            clearTimeout(t);
            observed.aborted.set(req.seq, ctx.signal.reason);
            reject(ctx.signal.reason);
          });
        });
      } finally {
        running--;
      }
      return { seq: req.seq };
    },
  });
  setup?.(server);
  server.listen(path);
  return {
    server,
    path,
    dir,
    observed,
    async [Symbol.asyncDispose]() {
      await server.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** A peer that speaks raw frames, for malformed input. */
export interface RawPeer extends Disposable {
  send(bytes: Uint8Array): void;
  /** The next frame from the server (in arrival order). */
  next(timeoutMs?: number): Promise<{ header: FrameHeader; data: Uint8Array }>;
  readonly closed: boolean;
  close(): void;
}

/** Connects a raw peer to a ttrpc socket. */
export async function rawPeer(path: string): Promise<RawPeer> {
  const frames: { header: FrameHeader; data: Uint8Array }[] = [];
  let closed = false;
  const decoder = createFrameDecoder({
    frame: (header, data) => frames.push({ header, data }),
    oversized: (header) => frames.push({ header, data: new Uint8Array(0) }),
  });
  const socket: Socket<undefined> = await Bun.connect({
    unix: path,
    socket: {
      binaryType: "uint8array",
      data: (_s, chunk) => decoder.push(chunk),
      close: () => {
        closed = true;
      },
    },
  });
  const queue: Uint8Array[] = [];
  let retry: ReturnType<typeof setTimeout> | undefined;
  const pump = (): void => {
    retry = undefined;
    while (queue.length > 0 && !closed) {
      const head = queue[0]!;
      const n = socket.write(head);
      if (n < head.length) {
        if (n > 0) queue[0] = head.subarray(n);
        retry ??= setTimeout(pump, 1);
        return;
      }
      queue.shift();
    }
  };
  return {
    send(bytes) {
      // In order: whatever the kernel does not take now is retried before anything sent later.
      queue.push(bytes);
      pump();
    },
    async next(timeoutMs = 5000) {
      await until(() => frames.length > 0, "a frame from the server", timeoutMs);
      return frames.shift()!;
    },
    get closed() {
      return closed;
    },
    close() {
      socket.terminate();
    },
    [Symbol.dispose]() {
      socket.terminate();
    },
  };
}
