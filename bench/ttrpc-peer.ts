/**
 * Server side of bench/ttrpc.ts, run in its own process: `bun bench/ttrpc-peer.ts ttrpc|echo <socket>`.
 * "ttrpc" serves cryo.testing.v1.Echo; "echo" writes every byte it reads straight back (the physical limit).
 */
import type { Socket } from "bun";
import { Echo } from "../src/gen/cryo/testing/v1/echo_pb.ts";
import { createServer } from "../src/ttrpc/index.ts";

const [mode, path] = process.argv.slice(2);
if (path === undefined || (mode !== "ttrpc" && mode !== "echo")) {
  console.error("usage: ttrpc-peer.ts ttrpc|echo <socket>");
  process.exit(2);
}

if (mode === "ttrpc") {
  const server = createServer();
  server.register(Echo, {
    async echo(req) {
      return { payload: req.payload, seq: req.seq };
    },
    async sleep(req) {
      await Bun.sleep(req.delayMs);
      return { seq: req.seq };
    },
  });
  server.listen(path);
  process.on("SIGTERM", () => void server.close().then(() => process.exit(0)));
} else {
  // Echo with backpressure: bytes the kernel does not take now wait for drain, in order.
  const backlog = new Map<Socket<undefined>, Uint8Array[]>();
  const flush = (s: Socket<undefined>) => {
    const q = backlog.get(s);
    while (q && q.length > 0) {
      const head = q[0]!;
      const n = s.write(head);
      if (n < head.length) {
        if (n > 0) q[0] = head.subarray(n);
        return;
      }
      q.shift();
    }
  };
  const listener = Bun.listen({
    unix: path,
    socket: {
      binaryType: "uint8array",
      open: (s) => void backlog.set(s, []),
      data(s, chunk) {
        const q = backlog.get(s)!;
        if (q.length > 0) q.push(chunk.slice());
        else {
          const n = s.write(chunk);
          if (n < chunk.length) q.push(chunk.slice(Math.max(n, 0)));
        }
      },
      drain: flush,
      close: (s) => void backlog.delete(s),
    },
  });
  process.on("SIGTERM", () => {
    listener.stop(true);
    process.exit(0);
  });
}
