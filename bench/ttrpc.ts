/**
 * ttrpc round trips per second on one unix-socket connection, sequentially and with 64 requests in
 * flight, next to a plain unix-socket echo of the same frame sizes (no protobuf, no dispatch) as the
 * physical limit. The server runs in its own process (bench/ttrpc-peer.ts), as the shim does.
 *
 *   node_modules/.bin/bun bench/ttrpc.ts [seconds per row, default 2]
 *
 * Rows are measured in alternating slices with the plain echo, so both see the same machine load.
 */
import { create, toBinary } from "@bufbuild/protobuf";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import os, { tmpdir } from "node:os";
import { join } from "node:path";
import { Echo, EchoRequestSchema, EchoResponseSchema } from "../src/gen/cryo/testing/v1/echo_pb.ts";
import { RequestSchema, ResponseSchema } from "../src/gen/ttrpc/request_pb.ts";
import { HEADER_LENGTH, MessageType, connect, createClient, encodeFrame } from "../src/ttrpc/index.ts";

const seconds = Number(process.argv[2] ?? 2);
const payloadSizes = [64, 4096];
const concurrencies = [1, 64];
const bun = process.execPath;
const dir = mkdtempSync(join(tmpdir(), "cryo-bench-ttrpc-"));

async function startPeer(mode: "ttrpc" | "echo") {
  const path = join(dir, `${mode}.sock`);
  const proc = Bun.spawn([bun, join(import.meta.dir, "ttrpc-peer.ts"), mode, path], { stdout: "inherit", stderr: "inherit" });
  const deadline = Date.now() + 10_000;
  while (!existsSync(path)) {
    if (Date.now() > deadline || proc.exitCode !== null) throw new Error(`${mode} peer did not start`);
    await Bun.sleep(10);
  }
  return {
    path,
    async stop() {
      proc.kill("SIGTERM");
      await proc.exited;
    },
  };
}

/** Runs `one` with `inFlight` callers looping for `ms`; returns completed round trips and elapsed seconds. */
async function run(inFlight: number, ms: number, one: () => Promise<unknown>): Promise<{ count: number; secs: number }> {
  let count = 0;
  const start = performance.now();
  const end = start + ms;
  await Promise.all(
    Array.from({ length: inFlight }, async () => {
      while (performance.now() < end) {
        await one();
        count++;
      }
    }),
  );
  return { count, secs: (performance.now() - start) / 1000 };
}

/**
 * Measures two transports in alternating 250 ms slices, so both see the same machine load (other
 * work on the box moves the absolute numbers; the ratio stays meaningful). Returns round trips/s each.
 */
async function measurePair(inFlight: number, a: () => Promise<unknown>, b: () => Promise<unknown>): Promise<[number, number]> {
  await run(inFlight, 200, a);
  await run(inFlight, 200, b);
  const slices = Math.max(1, Math.round((seconds * 1000) / 250));
  const tot = [
    { count: 0, secs: 0 },
    { count: 0, secs: 0 },
  ];
  for (let i = 0; i < slices; i++) {
    for (const [k, fn] of [a, b].entries()) {
      const r = await run(inFlight, 250, fn);
      tot[k]!.count += r.count;
      tot[k]!.secs += r.secs;
    }
  }
  return [tot[0]!.count / tot[0]!.secs, tot[1]!.count / tot[1]!.secs];
}

/** Frame sizes a ttrpc Echo call puts on the wire (request, response), header included. */
function ttrpcFrameSizes(payloadSize: number): [number, number] {
  const payload = new Uint8Array(payloadSize);
  const echoReq = toBinary(EchoRequestSchema, create(EchoRequestSchema, { payload, seq: 123456n }));
  const req = toBinary(RequestSchema, create(RequestSchema, { service: Echo.typeName, method: "Echo", payload: echoReq }));
  const echoRes = toBinary(EchoResponseSchema, create(EchoResponseSchema, { payload, seq: 123456n }));
  const res = toBinary(ResponseSchema, create(ResponseSchema, { status: {}, payload: echoRes }));
  return [HEADER_LENGTH + req.length, HEADER_LENGTH + res.length];
}

/** A raw echo client: sends a frame of the request size, a round trip completes per frame-size of bytes back. */
async function rawEchoClient(path: string, frameSize: number) {
  const frame = encodeFrame(1, MessageType.REQUEST, 0, new Uint8Array(frameSize - HEADER_LENGTH));
  let received = 0;
  let completed = 0;
  const waiters: (() => void)[] = [];
  const queue: Uint8Array[] = [];
  const socket = await Bun.connect({
    unix: path,
    socket: {
      binaryType: "uint8array",
      data(_s, chunk) {
        received += chunk.length;
        while (received >= frameSize) {
          received -= frameSize;
          completed++;
          waiters.shift()?.();
        }
      },
      drain(s) {
        while (queue.length > 0) {
          const head = queue[0]!;
          const n = s.write(head);
          if (n < head.length) {
            if (n > 0) queue[0] = head.subarray(n);
            return;
          }
          queue.shift();
        }
      },
    },
  });
  return {
    roundTrip(): Promise<void> {
      const done = new Promise<void>((resolve) => waiters.push(resolve));
      if (queue.length > 0) queue.push(frame);
      else {
        const n = socket.write(frame);
        if (n < frame.length) queue.push(frame.subarray(Math.max(n, 0)));
      }
      return done;
    },
    get completed() {
      return completed;
    },
    close: () => socket.terminate(),
  };
}

interface Row {
  transport: string;
  payload: number;
  frames: string;
  inFlight: number;
  rps: number;
}

const rows: Row[] = [];
const ttrpcPeer = await startPeer("ttrpc");
const echoPeer = await startPeer("echo");
try {
  for (const size of payloadSizes) {
    const [reqFrame, resFrame] = ttrpcFrameSizes(size);
    for (const inFlight of concurrencies) {
      const client = await connect(ttrpcPeer.path);
      const echo = createClient(Echo, client);
      const raw = await rawEchoClient(echoPeer.path, reqFrame);
      const payload = new Uint8Array(size).fill(7);
      let seq = 0n;
      const [rps, rawRps] = await measurePair(
        inFlight,
        () => echo.echo({ payload, seq: seq++ }),
        () => raw.roundTrip(),
      );
      client.close();
      raw.close();
      rows.push({ transport: "ttrpc Echo/Echo", payload: size, frames: `${reqFrame}/${resFrame}`, inFlight, rps });
      rows.push({ transport: "plain unix echo", payload: size, frames: `${reqFrame}/${reqFrame}`, inFlight, rps: rawRps });
    }
  }
} finally {
  await ttrpcPeer.stop();
  await echoPeer.stop();
  rmSync(dir, { recursive: true, force: true });
}

const fmt = (n: number) => Math.round(n).toLocaleString("en-US");
console.log(`ttrpc benchmark: one connection, server in a separate process, ${seconds}s per row in 250 ms slices alternating with the plain echo (Bun ${Bun.version}, ${navigator.hardwareConcurrency} cpus, load average ${os.loadavg()[0]!.toFixed(2)})`);
console.log("");
const header = ["transport", "payload B", "frame B req/res", "in flight", "round trips/s", "µs/round trip", "vs plain echo"];
const table = rows.map((r) => {
  const plain = rows.find((p) => p.transport === "plain unix echo" && p.payload === r.payload && p.inFlight === r.inFlight)!;
  return [
    r.transport,
    String(r.payload),
    r.frames,
    String(r.inFlight),
    fmt(r.rps),
    (1e6 / r.rps * (r.inFlight)).toFixed(1),
    `${((r.rps / plain.rps) * 100).toFixed(0)}%`,
  ];
});
const widths = header.map((h, i) => Math.max(h.length, ...table.map((row) => row[i]!.length)));
const line = (cells: string[]) => cells.map((c, i) => (i < 3 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join("  ");
console.log(line(header));
console.log(widths.map((w) => "-".repeat(w)).join("  "));
for (const row of table) console.log(line(row));
console.log("");
console.log("µs/round trip is the latency each caller sees (in flight / throughput).");
