/**
 * The ttrpc server: accepts unix-socket connections and dispatches requests to registered handlers.
 *
 * Dispatch is the one place where errors become statuses: a handler's thrown CryoError (or any other
 * throw, as UNKNOWN) turns into google.rpc.Status here. Protocol faults follow containerd/ttrpc's
 * server: a bad stream id or an undecodable Request is answered INVALID_ARGUMENT on that stream, an
 * oversized frame RESOURCE_EXHAUSTED (its data is discarded), an unknown service or method
 * UNIMPLEMENTED; unknown message types are ignored; in every case the connection lives on. Handlers
 * run concurrently; responses go out in completion order.
 */
import { create, fromBinary, toBinary, type DescMessage } from "@bufbuild/protobuf";
import type { GenService, GenServiceMethods } from "@bufbuild/protobuf/codegenv2";
import { chmodSync, existsSync, mkdirSync, unlinkSync } from "node:fs";
import { dirname } from "node:path";
import type { Socket } from "bun";
import {
  Code,
  CryoError,
  alreadyExists,
  deadlineExceeded,
  invalidArgument,
  notImplemented,
  toStatus,
  unavailable,
  type StatusLike,
} from "../errors.ts";
import { RequestSchema, ResponseSchema, type Request } from "../gen/ttrpc/request_pb.ts";
import { Connection, oversizedError, socketHandlers, type FrameHandler, type SocketSlot } from "./connection.ts";
import { MAX_MESSAGE_LENGTH, MessageType } from "./frame.ts";
import { fromKeyValues, namespaceOf } from "./metadata.ts";
import type { CallContext, RawHandler, ServiceImpl } from "./service.ts";

/** Options for createServer. */
export interface ServerOptions {
  /** Largest frame data accepted or sent (default 4 MiB, ttrpc's limit). */
  maxMessageLength?: number;
  /** Told about faults that have no caller to answer (a response that could not be sent). */
  onError?: (err: CryoError) => void;
}

/** Options for Server.listen. */
export interface ListenOptions {
  /** File mode of the socket (default 0o600: root only). */
  mode?: number;
}

/** A ttrpc server. */
export interface Server extends AsyncDisposable {
  /** Registers a service implemented with typed handlers; methods must be unary. */
  register<S extends GenServiceMethods>(service: GenService<S>, impl: ServiceImpl<S>): void;
  /** Registers one method on serialized payloads. */
  registerRaw(service: string, method: string, handler: RawHandler): void;
  /** Listens on a unix socket path (parent created 0700 if missing; socket chmod'ed to mode). */
  listen(path: string, options?: ListenOptions): void;
  /**
   * Serves on a unix socket that another process already bound and put in listening state (fd is
   * that socket, inherited). path is where it is bound: it is removed when the server stops.
   */
  listenFd(fd: number, path: string): void;
  /** Number of open connections. */
  readonly connections: number;
  /** Number of requests being handled. */
  readonly inFlight: number;
  /** Stops accepting, waits for requests in flight to be answered, then closes connections. */
  shutdown(): Promise<void>;
  /** Stops accepting and closes every connection now (handlers see their signal abort). */
  close(): Promise<void>;
}

/**
 * Answers waiting to be written beyond which a connection stops reading requests (connection.ts): a peer that
 * never reads its answers could otherwise make the server queue them without bound.
 */
export const PAUSE_READS_ABOVE = 1 << 20;

/**
 * Bytes of a connection's input decoded (and their requests dispatched) per turn of the event loop (connection.ts):
 * about 68 State requests, or one request of that size, before other connections and timers get their turn.
 */
export const READ_SLICE = 4 * 1024;

interface ConnState {
  lastStreamId: number;
  readonly inflight: Map<number, AbortController>;
}

/** Creates a ttrpc server with no services. */
export function createServer(options: ServerOptions = {}): Server {
  const maxLength = options.maxMessageLength ?? MAX_MESSAGE_LENGTH;
  const onError = options.onError ?? (() => {});
  const services = new Map<string, Map<string, RawHandler>>();
  const conns = new Map<Connection, ConnState>();
  let listener: { stop(closeActive?: boolean): void } | undefined;
  let socketPath: string | undefined;
  let inFlight = 0;
  let idleWaiters: (() => void)[] = [];

  function respond(conn: Connection, streamId: number, status: StatusLike, payload?: Uint8Array): void {
    if (conn.closed) return;
    let bytes = toBinary(ResponseSchema, create(ResponseSchema, { status, payload: payload ?? new Uint8Array(0) }));
    if (bytes.length > maxLength) {
      const st = toStatus(oversizedError(bytes.length, maxLength));
      bytes = toBinary(ResponseSchema, create(ResponseSchema, { status: st }));
    }
    try {
      conn.send(streamId, MessageType.RESPONSE, 0, bytes);
    } catch (err) {
      onError(CryoError.from(err).wrap(`ttrpc: respond on stream ${streamId}`));
    }
  }

  function respondError(conn: Connection, streamId: number, err: unknown): void {
    respond(conn, streamId, toStatus(err));
  }

  async function run(conn: Connection, st: ConnState, streamId: number, req: Request, handler: RawHandler) {
    const ac = new AbortController();
    st.inflight.set(streamId, ac);
    inFlight++;
    const timeoutNs = req.timeoutNano;
    let timer: ReturnType<typeof setTimeout> | undefined;
    let deadline: number | undefined;
    const metadata = fromKeyValues(req.metadata);
    const ctx: CallContext = {
      service: req.service,
      method: req.method,
      metadata,
      namespace: namespaceOf(metadata),
      get deadline() {
        return deadline;
      },
      signal: ac.signal,
    };
    try {
      let work = handler(req.payload, ctx);
      if (timeoutNs !== 0n) {
        const ms = Number(timeoutNs) / 1e6;
        // Beyond setTimeout's range (about 24 days) a deadline is as good as none.
        if (ms < 2 ** 31 - 1) {
          deadline = Date.now() + ms;
          const expired = new Promise<never>((_, reject) => {
            timer = setTimeout(
              () => {
                const e = deadlineExceeded(`${req.service}/${req.method}`);
                ac.abort(e);
                reject(e);
              },
              Math.max(0, ms),
            );
          });
          work.catch(() => {}); // its outcome no longer matters once the deadline won
          work = Promise.race([work, expired]);
        }
      }
      const out = await work;
      if (!(out instanceof Uint8Array)) throw new CryoError(Code.INTERNAL, "ttrpc: handler returned no payload");
      respond(conn, streamId, { code: Code.OK, message: "" }, out);
    } catch (err) {
      respondError(conn, streamId, err);
    } finally {
      clearTimeout(timer);
      st.inflight.delete(streamId);
      inFlight--;
      if (inFlight === 0) for (const wake of idleWaiters.splice(0)) wake();
    }
  }

  function handlerFor(st: ConnState): FrameHandler {
    return {
      frame(conn, header, data) {
        const id = header.streamId;
        if (id % 2 !== 1) {
          respondError(conn, id, invalidArgument(`stream ${id}`, { detail: "client-initiated stream ids must be odd" }));
          return;
        }
        if (header.type === MessageType.REQUEST) {
          if (id <= st.lastStreamId) {
            respondError(conn, id, invalidArgument(`stream ${id}`, { detail: "stream ids cannot be reused and must increase" }));
            return;
          }
          st.lastStreamId = id;
          let req: Request;
          try {
            req = fromBinary(RequestSchema, data);
          } catch (err) {
            respondError(conn, id, invalidArgument("unmarshal request", { cause: err, detail: String((err as Error).message ?? err) }));
            return;
          }
          const handler = services.get(req.service)?.get(req.method);
          if (handler === undefined) {
            const what = services.has(req.service) ? `method ${req.service}/${req.method}` : `service ${req.service}`;
            respondError(conn, id, notImplemented(what));
            return;
          }
          void run(conn, st, id, req, handler);
        } else if (header.type === MessageType.DATA) {
          respondError(conn, id, invalidArgument(`stream ${id}`, { detail: "not an active stream (cryo serves unary methods only)" }));
        }
        // Responses and unknown types from a client are ignored, as ttrpc does for forward compatibility.
      },
      oversized(conn, header) {
        respondError(conn, header.streamId, oversizedError(header.length, maxLength));
      },
      closed(conn) {
        const reason = unavailable("ttrpc: connection closed");
        for (const ac of st.inflight.values()) ac.abort(reason);
        conns.delete(conn);
      },
    };
  }

  function addRaw(service: string, method: string, handler: RawHandler): void {
    let methods = services.get(service);
    if (methods === undefined) services.set(service, (methods = new Map()));
    if (methods.has(method)) throw alreadyExists(`ttrpc method ${service}/${method}`);
    methods.set(method, handler);
  }

  function typed(input: DescMessage, output: DescMessage, fn: (req: never, ctx: CallContext) => Promise<unknown>): RawHandler {
    return async (payload, ctx) => {
      let req;
      try {
        req = fromBinary(input, payload);
      } catch (err) {
        // The decoder's words ("premature EOF", "invalid wire type 7 at offset 3") say what is wrong with the bytes.
        throw invalidArgument(`${ctx.service}/${ctx.method}: decode ${input.typeName}`, { cause: err, detail: String((err as Error).message ?? err) });
      }
      const res = await fn(req as never, ctx);
      return toBinary(output, create(output, res as never));
    };
  }

  async function stopListening(): Promise<void> {
    listener?.stop(false);
    listener = undefined;
    if (socketPath !== undefined) {
      try {
        unlinkSync(socketPath);
      } catch {
        // already gone
      }
      socketPath = undefined;
    }
  }

  const acceptHandlers = {
    ...socketHandlers,
    open(socket: Socket<SocketSlot>) {
      socket.data = {};
      const st: ConnState = { lastStreamId: 0, inflight: new Map() };
      const conn = new Connection(socket, handlerFor(st), maxLength, PAUSE_READS_ABOVE, READ_SLICE);
      conns.set(conn, st);
    },
  };

  const server: Server = {
    register(service, impl) {
      for (const m of service.methods) {
        if (m.methodKind !== "unary") throw notImplemented(`ttrpc streaming method ${service.typeName}/${m.name}`);
        const fn = (impl as Record<string, unknown>)[m.localName];
        if (typeof fn !== "function") throw invalidArgument(`ttrpc service ${service.typeName}`, { detail: `no handler for ${m.localName}` });
        addRaw(service.typeName, m.name, typed(m.input, m.output, fn.bind(impl) as never));
      }
    },
    registerRaw: addRaw,
    listen(path, opts = {}) {
      if (listener !== undefined) throw alreadyExists(`ttrpc listener on ${socketPath}`);
      const dir = dirname(path);
      if (!existsSync(dir)) mkdirSync(dir, { recursive: true, mode: 0o700 });
      if (existsSync(path)) throw alreadyExists(`socket ${path}`);
      const mode = opts.mode ?? 0o600;
      // The umask makes bind(2) create the socket with `mode` already, so there is no moment in which
      // it is more open than asked; the chmod below then sets it exactly.
      const oldUmask = process.umask(0o777 & ~mode);
      try {
        listener = Bun.listen<SocketSlot>({ unix: path, data: {}, socket: acceptHandlers });
      } catch (err) {
        throw unavailable(`ttrpc listen ${path}`, { cause: err, detail: (err as Error).message });
      } finally {
        process.umask(oldUmask);
      }
      socketPath = path;
      chmodSync(path, mode);
    },
    listenFd(fd, path) {
      if (listener !== undefined) throw alreadyExists(`ttrpc listener on ${socketPath}`);
      try {
        // Bun.listen adopts an already listening descriptor with `fd` (its types only declare it for connect).
        listener = Bun.listen<SocketSlot>({ fd, data: {}, socket: acceptHandlers } as unknown as Parameters<typeof Bun.listen<SocketSlot>>[0]);
      } catch (err) {
        throw unavailable(`ttrpc listen on fd ${fd} (${path})`, { cause: err, detail: (err as Error).message });
      }
      socketPath = path;
    },
    get connections() {
      return conns.size;
    },
    get inFlight() {
      return inFlight;
    },
    async shutdown() {
      await stopListening();
      while (inFlight > 0) await new Promise<void>((resolve) => idleWaiters.push(resolve));
      await Promise.all([...conns.keys()].map((c) => c.end()));
    },
    async close() {
      await stopListening();
      for (const c of [...conns.keys()]) c.close();
      idleWaiters.splice(0).forEach((wake) => wake());
    },
    async [Symbol.asyncDispose]() {
      await server.close();
    },
  };
  return server;
}
