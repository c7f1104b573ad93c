import { describe, expect, test } from "bun:test";
import { statSync } from "node:fs";
import { join } from "node:path";
import { Code, CryoError, notFound } from "../../../src/errors.ts";
import { Echo } from "../../../src/gen/cryo/testing/v1/echo_pb.ts";
import { MAX_MESSAGE_LENGTH, NAMESPACE_KEY, connect, createClient, createServer } from "../../../src/ttrpc/index.ts";
import { startEchoServer, until } from "./echo-fixture.ts";

async function rejection(p: Promise<unknown>): Promise<CryoError> {
  try {
    await p;
  } catch (err) {
    expect(err).toBeInstanceOf(CryoError);
    return err as CryoError;
  }
  throw new Error("expected the call to fail");
}

describe("ttrpc server and client", () => {
  test("echo round trip through the typed client", async () => {
    await using s = startEchoServer();
    using c = await connect(s.path);
    const echo = createClient(Echo, c);
    const res = await echo.echo({ payload: new Uint8Array([1, 2, 3]), seq: 42n });
    expect(res.$typeName).toBe("cryo.testing.v1.EchoResponse");
    expect(res.payload).toEqual(new Uint8Array([1, 2, 3]));
    expect(res.seq).toBe(42n);
    expect(s.server.connections).toBe(1);
  });

  test("100 interleaved requests on one connection, answered out of order, each correctly", async () => {
    await using s = startEchoServer();
    using c = await connect(s.path);
    const echo = createClient(Echo, c);
    const completed: number[] = [];
    const calls = Array.from({ length: 100 }, (_, i) => {
      // Delays 0..49 ms in a scrambled order, so later requests often finish first.
      const delayMs = (i * 37) % 50;
      return echo.sleep({ delayMs, seq: BigInt(i) }).then((r) => {
        completed.push(i);
        return r;
      });
    });
    expect(c.inFlight).toBe(100);
    const results = await Promise.all(calls);
    results.forEach((r, i) => expect(r.seq).toBe(BigInt(i)));
    expect(completed.length).toBe(100);
    expect(completed).not.toEqual([...completed].sort((a, b) => a - b));
    expect(s.observed.maxConcurrent).toBeGreaterThan(1);
    expect(c.inFlight).toBe(0);
  });

  test("large payloads in flight together survive partial writes (backpressure)", async () => {
    await using s = startEchoServer();
    using c = await connect(s.path);
    const echo = createClient(Echo, c);
    const payloads = Array.from({ length: 12 }, (_, i) => new Uint8Array(1 << 20).fill(i + 1));
    const results = await Promise.all(payloads.map((p, i) => echo.echo({ payload: p, seq: BigInt(i) })));
    results.forEach((r, i) => {
      expect(r.seq).toBe(BigInt(i));
      expect(r.payload).toEqual(payloads[i]!);
    });
  });

  test("timeout: the call fails DEADLINE_EXCEEDED and the server aborts the handler", async () => {
    await using s = startEchoServer();
    using c = await connect(s.path);
    const echo = createClient(Echo, c);
    const err = await rejection(echo.sleep({ delayMs: 60_000, seq: 7n }, { timeoutMs: 30 }));
    expect(err.code).toBe(Code.DEADLINE_EXCEEDED);
    expect(err.message).toBe("cryo.testing.v1.Echo/Sleep: context deadline exceeded");
    await until(() => s.observed.aborted.has(7n), "the server-side deadline to abort the handler");
    const reason = s.observed.aborted.get(7n) as CryoError;
    expect(reason.code).toBe(Code.DEADLINE_EXCEEDED);
    // The connection is still good.
    expect((await echo.echo({ seq: 8n })).seq).toBe(8n);
  });

  test("unknown service and unknown method are UNIMPLEMENTED", async () => {
    await using s = startEchoServer();
    using c = await connect(s.path);
    const svc = await rejection(c.callRaw("no.such.Service", "Do", new Uint8Array(0)));
    expect(svc.code).toBe(Code.UNIMPLEMENTED);
    expect(svc.message).toBe("service no.such.Service: not implemented");
    const m = await rejection(c.callRaw("cryo.testing.v1.Echo", "Nope", new Uint8Array(0)));
    expect(m.code).toBe(Code.UNIMPLEMENTED);
    expect(m.message).toBe("method cryo.testing.v1.Echo/Nope: not implemented");
  });

  test("an oversized request is refused before sending, and the connection keeps working", async () => {
    await using s = startEchoServer();
    using c = await connect(s.path);
    const echo = createClient(Echo, c);
    const err = await rejection(echo.echo({ payload: new Uint8Array(MAX_MESSAGE_LENGTH + 1) }));
    expect(err.code).toBe(Code.RESOURCE_EXHAUSTED);
    expect(err.message).toContain(`exceeds maximum message size of ${MAX_MESSAGE_LENGTH}`);
    // Close to the limit still goes through, both ways.
    const big = new Uint8Array(MAX_MESSAGE_LENGTH - 64).fill(9);
    expect((await echo.echo({ payload: big, seq: 1n })).payload).toEqual(big);
  });

  test("a handler's response over the limit becomes RESOURCE_EXHAUSTED, not a dead connection", async () => {
    await using s = startEchoServer((server) =>
      server.registerRaw("cryo.testing.v1.Big", "Get", async () => new Uint8Array(MAX_MESSAGE_LENGTH + 10)),
    );
    using c = await connect(s.path);
    const err = await rejection(c.callRaw("cryo.testing.v1.Big", "Get", new Uint8Array(0)));
    expect(err.code).toBe(Code.RESOURCE_EXHAUSTED);
    expect((await createClient(Echo, c).echo({ seq: 2n })).seq).toBe(2n);
  });

  test("a handler throwing notFound reaches the client as NOT_FOUND with its message", async () => {
    await using s = startEchoServer((server) =>
      server.registerRaw("cryo.testing.v1.Fail", "NotFound", async () => {
        throw notFound("container c1");
      }),
    );
    using c = await connect(s.path);
    const err = await rejection(c.callRaw("cryo.testing.v1.Fail", "NotFound", new Uint8Array(0)));
    expect(err.code).toBe(Code.NOT_FOUND);
    expect(err.message).toBe("container c1: not found");
  });

  test("a handler throwing a plain Error is UNKNOWN with its message; the server lives on", async () => {
    await using s = startEchoServer((server) =>
      server.registerRaw("cryo.testing.v1.Fail", "Plain", async () => {
        throw new Error("boom");
      }),
    );
    using c = await connect(s.path);
    const err = await rejection(c.callRaw("cryo.testing.v1.Fail", "Plain", new Uint8Array(0)));
    expect(err.code).toBe(Code.UNKNOWN);
    expect(err.message).toBe("boom");
    expect((await createClient(Echo, c).echo({ seq: 3n })).seq).toBe(3n);
  });

  test("a request payload that does not decode as the input message is INVALID_ARGUMENT", async () => {
    await using s = startEchoServer();
    using c = await connect(s.path);
    const err = await rejection(c.callRaw("cryo.testing.v1.Echo", "Echo", new Uint8Array([0xff, 0xff, 0xff])));
    expect(err.code).toBe(Code.INVALID_ARGUMENT);
    // The decoder's own words follow (bench/ttrpc-fuzz.ts found the message ending at "invalid argument").
    expect(err.message).toMatch(/^cryo\.testing\.v1\.Echo\/Echo: decode cryo\.testing\.v1\.EchoRequest: invalid argument: \S/);
    const truncated = await rejection(c.callRaw("cryo.testing.v1.Echo", "Echo", new Uint8Array([0x0a, 0x7f, 0x61])));
    expect(truncated.message).toBe("cryo.testing.v1.Echo/Echo: decode cryo.testing.v1.EchoRequest: invalid argument: premature EOF");
  });

  test("metadata and namespace pass through", async () => {
    await using s = startEchoServer((server) =>
      server.registerRaw("cryo.testing.v1.Meta", "Get", async (_p, ctx) =>
        new TextEncoder().encode(
          JSON.stringify({ md: Object.fromEntries(ctx.metadata), ns: ctx.namespace, svc: ctx.service, m: ctx.method }),
        ),
      ),
    );
    using c = await connect(s.path, { metadata: { client: "cryo-test" } });
    const out = await c.callRaw("cryo.testing.v1.Meta", "Get", new Uint8Array(0), {
      namespace: "ns-1",
      metadata: new Map<string, string | string[]>([
        ["a", "1"],
        ["b", ["x", "y"]],
      ]),
    });
    expect(JSON.parse(new TextDecoder().decode(out))).toEqual({
      md: { client: ["cryo-test"], a: ["1"], b: ["x", "y"], [NAMESPACE_KEY]: ["ns-1"] },
      ns: "ns-1",
      svc: "cryo.testing.v1.Meta",
      m: "Get",
    });
  });

  test("a client-level namespace applies to every call", async () => {
    await using s = startEchoServer((server) =>
      server.registerRaw("cryo.testing.v1.Meta", "Ns", async (_p, ctx) => new TextEncoder().encode(ctx.namespace ?? "")),
    );
    using c = await connect(s.path, { namespace: "default-ns" });
    expect(new TextDecoder().decode(await c.callRaw("cryo.testing.v1.Meta", "Ns", new Uint8Array(0)))).toBe("default-ns");
  });

  test("a call abandoned with its signal is CANCELLED; a late answer is dropped", async () => {
    await using s = startEchoServer();
    using c = await connect(s.path);
    const echo = createClient(Echo, c);
    const ac = new AbortController();
    const p = echo.sleep({ delayMs: 30, seq: 1n }, { signal: ac.signal });
    ac.abort();
    expect((await rejection(p)).code).toBe(Code.CANCELLED);
    await until(() => s.server.inFlight === 0, "the server to finish the abandoned call");
    expect((await echo.echo({ seq: 2n })).seq).toBe(2n);
  });

  test("the socket is 0600 and a missing parent directory is created 0700", async () => {
    await using s = startEchoServer();
    expect(statSync(s.path).mode & 0o777).toBe(0o600);
    expect(statSync(s.path).isSocket()).toBe(true);
    expect(statSync(join(s.dir, "run")).mode & 0o777).toBe(0o700);
  });

  test("listening on an existing path is ALREADY_EXISTS", async () => {
    await using s = startEchoServer();
    const other = createServer();
    let err: unknown;
    try {
      other.listen(s.path);
    } catch (e) {
      err = e;
    }
    expect((err as CryoError).code).toBe(Code.ALREADY_EXISTS);
    await other.close();
  });

  test("connecting to nothing is UNAVAILABLE", async () => {
    await using s = startEchoServer();
    const err = await rejection(connect(join(s.dir, "nobody.sock")));
    expect(err.code).toBe(Code.UNAVAILABLE);
  });

  test("close: calls in flight fail UNAVAILABLE, handlers are aborted, the socket file is removed", async () => {
    const s = startEchoServer();
    using c = await connect(s.path);
    const p = createClient(Echo, c).sleep({ delayMs: 60_000, seq: 5n });
    await until(() => s.observed.started.has(5n), "the handler to start");
    await s[Symbol.asyncDispose]();
    expect((await rejection(p)).code).toBe(Code.UNAVAILABLE);
    await c.done;
    expect(c.closed).toBe(true);
    expect(s.observed.aborted.has(5n)).toBe(true);
    expect(await Bun.file(s.path).exists()).toBe(false);
    expect((await rejection(c.callRaw("x", "y", new Uint8Array(0)))).code).toBe(Code.UNAVAILABLE);
  });

  test("shutdown answers requests in flight, then closes", async () => {
    await using s = startEchoServer();
    using c = await connect(s.path);
    const p = createClient(Echo, c).sleep({ delayMs: 50, seq: 9n });
    await until(() => s.observed.started.has(9n), "the handler to start");
    await s.server.shutdown();
    expect((await p).seq).toBe(9n);
    await c.done;
    expect(s.server.connections).toBe(0);
    expect(s.observed.aborted.size).toBe(0);
  });
});

describe("ttrpc listen mode", () => {
  test("a custom mode is applied and the process umask is left as it was", async () => {
    const before = process.umask();
    await using s = startEchoServer();
    const path = join(s.dir, "other.sock");
    const server = createServer();
    server.listen(path, { mode: 0o660 });
    try {
      expect(statSync(path).mode & 0o777).toBe(0o660);
      expect(process.umask()).toBe(before);
    } finally {
      await server.close();
    }
  });
});
