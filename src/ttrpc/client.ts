/**
 * The ttrpc client: one connection, many requests in flight, each on its own odd, increasing stream
 * id. A response is matched to its request by stream id, in whatever order it comes. A non-OK status
 * becomes a CryoError (fromStatus) with the peer's code and message.
 *
 * Deadlines: `timeoutMs` is sent as the request's timeout_nano (the server enforces it) and also
 * enforced here, so a call settles with DEADLINE_EXCEEDED even when the server never answers.
 */
import { create, fromBinary, toBinary, type MessageInitShape, type MessageShape } from "@bufbuild/protobuf";
import type { GenService, GenServiceMethods } from "@bufbuild/protobuf/codegenv2";
import {
  Code,
  CryoError,
  deadlineExceeded,
  fromStatus,
  invalidArgument,
  unavailable,
  unknown,
} from "../errors.ts";
import { RequestSchema, ResponseSchema } from "../gen/ttrpc/request_pb.ts";
import { Connection, oversizedError, socketHandlers, type FrameHandler, type SocketSlot } from "./connection.ts";
import { MAX_MESSAGE_LENGTH, MessageType } from "./frame.ts";
import { NAMESPACE_KEY, toKeyValues, type MetadataInit } from "./metadata.ts";

/** Per-call options. */
export interface CallOptions {
  /** Deadline relative to now, in milliseconds (sent as timeout_nano). */
  timeoutMs?: number;
  /** Extra metadata for this call (added after the client's default metadata). */
  metadata?: MetadataInit;
  /** Sets the containerd namespace ("containerd-namespace-ttrpc") for this call. */
  namespace?: string;
  /** Abandons the call locally (CANCELLED); ttrpc has no cancel frame, so the server is not told. */
  signal?: AbortSignal;
}

/** Options for connect. */
export interface ClientOptions {
  /** Metadata sent with every call. */
  metadata?: MetadataInit;
  /** containerd namespace sent with every call unless a call sets its own. */
  namespace?: string;
  /** Largest frame data sent or accepted (default 4 MiB). */
  maxMessageLength?: number;
}

/** A ttrpc client connection. */
export interface Client extends Disposable {
  /** Calls a method of a generated service, typed from its descriptor (`call(Echo, "echo", {...})`). */
  call<S extends GenServiceMethods, M extends keyof S & string>(
    service: GenService<S>,
    method: M,
    req: MessageInitShape<S[M]["input"]>,
    options?: CallOptions,
  ): Promise<MessageShape<S[M]["output"]>>;
  /** Calls a method by its wire names with a serialized payload; resolves to the serialized response. */
  callRaw(service: string, method: string, payload: Uint8Array, options?: CallOptions): Promise<Uint8Array>;
  /** Number of calls waiting for a response. */
  readonly inFlight: number;
  /** True once the connection is closed. */
  readonly closed: boolean;
  /** Resolves when the connection closes (either side). */
  readonly done: Promise<void>;
  /** Closes the connection; calls in flight fail with UNAVAILABLE. */
  close(): void;
  /** The underlying connection engine (tests use it to send raw bytes). */
  readonly connection: Connection;
}

/** Typed methods of one service bound to a client: `createClient(Echo, c).echo({ payload })`. */
export type ServiceClient<S extends GenServiceMethods> = {
  [K in keyof S]: (
    req: MessageInitShape<S[K]["input"]>,
    options?: CallOptions,
  ) => Promise<MessageShape<S[K]["output"]>>;
};

interface Pending {
  resolve(payload: Uint8Array): void;
  reject(err: CryoError): void;
}

/** Largest client stream id (stream ids are uint32 and odd). */
const MAX_STREAM_ID = 0xffff_ffff;

/** Connects to a ttrpc server on a unix socket; rejects with UNAVAILABLE when nobody answers. */
export async function connect(path: string, options: ClientOptions = {}): Promise<Client> {
  const maxLength = options.maxMessageLength ?? MAX_MESSAGE_LENGTH;
  const pending = new Map<number, Pending>();
  let nextStreamId = 1;
  let closeReason: CryoError | undefined;

  const handler: FrameHandler = {
    frame(_conn, header, data) {
      const p = pending.get(header.streamId);
      if (p === undefined) return; // late answer to an abandoned call, or an unknown stream: dropped, as ttrpc does
      pending.delete(header.streamId);
      if (header.type !== MessageType.RESPONSE) {
        p.reject(unknown(`ttrpc stream ${header.streamId}`, { detail: `unexpected message type ${header.type} for a unary call` }));
        return;
      }
      let res;
      try {
        res = fromBinary(ResponseSchema, data);
      } catch (err) {
        p.reject(unknown(`ttrpc stream ${header.streamId}: decode response`, { cause: err }));
        return;
      }
      if (res.status !== undefined && res.status.code !== Code.OK) p.reject(fromStatus(res.status));
      else p.resolve(res.payload);
    },
    oversized(_conn, header) {
      const p = pending.get(header.streamId);
      pending.delete(header.streamId);
      p?.reject(oversizedError(header.length, maxLength));
    },
    closed(_conn, error) {
      closeReason = unavailable("ttrpc: connection closed", error ? { cause: error, detail: error.message } : undefined);
      for (const p of pending.values()) p.reject(closeReason);
      pending.clear();
    },
  };

  let conn: Connection;
  try {
    const socket = await Bun.connect<SocketSlot>({ unix: path, data: {}, socket: socketHandlers });
    conn = new Connection(socket, handler, maxLength);
  } catch (err) {
    throw unavailable(`ttrpc connect ${path}`, { cause: err, detail: (err as Error).message });
  }

  function callRaw(service: string, method: string, payload: Uint8Array, opts: CallOptions = {}): Promise<Uint8Array> {
    if (conn.closed) return Promise.reject(closeReason ?? unavailable("ttrpc: connection closed"));
    if (opts.signal?.aborted) return Promise.reject(new CryoError(Code.CANCELLED, `${service}/${method}: context canceled`));
    if (nextStreamId > MAX_STREAM_ID) return Promise.reject(new CryoError(Code.RESOURCE_EXHAUSTED, "ttrpc: stream ids exhausted on this connection"));
    let timeoutNano = 0n;
    if (opts.timeoutMs !== undefined) {
      if (!(opts.timeoutMs > 0) || !Number.isFinite(opts.timeoutMs)) {
        return Promise.reject(invalidArgument(`${service}/${method}: timeoutMs ${opts.timeoutMs}`));
      }
      timeoutNano = BigInt(Math.round(opts.timeoutMs * 1e6));
    }
    const ns = opts.namespace ?? options.namespace;
    const metadata = toKeyValues(options.metadata, opts.metadata, ns !== undefined ? { [NAMESPACE_KEY]: ns } : undefined);
    const bytes = toBinary(RequestSchema, create(RequestSchema, { service, method, payload, timeoutNano, metadata }));
    if (bytes.length > maxLength) return Promise.reject(oversizedError(bytes.length, maxLength));

    const id = nextStreamId;
    nextStreamId += 2;
    return new Promise<Uint8Array>((resolve, reject) => {
      let timer: ReturnType<typeof setTimeout> | undefined;
      const onAbort = () => settle(() => reject(new CryoError(Code.CANCELLED, `${service}/${method}: context canceled`)));
      const settle = (fn: () => void) => {
        clearTimeout(timer);
        opts.signal?.removeEventListener("abort", onAbort);
        pending.delete(id);
        fn();
      };
      pending.set(id, {
        resolve: (p) => settle(() => resolve(p)),
        reject: (e) => settle(() => reject(e)),
      });
      if (opts.timeoutMs !== undefined) {
        timer = setTimeout(() => settle(() => reject(deadlineExceeded(`${service}/${method}`))), opts.timeoutMs);
      }
      opts.signal?.addEventListener("abort", onAbort, { once: true });
      try {
        conn.send(id, MessageType.REQUEST, 0, bytes);
      } catch (err) {
        settle(() => reject(CryoError.from(err)));
      }
    });
  }

  const client: Client = {
    async call(service, method, req, opts) {
      const m = service.method[method];
      if (m === undefined) throw invalidArgument(`ttrpc method ${service.typeName}/${method}`, { detail: "not in the service descriptor" });
      const payload = toBinary(m.input, create(m.input, req as never));
      const out = await callRaw(service.typeName, m.name, payload, opts);
      try {
        return fromBinary(m.output, out) as never;
      } catch (err) {
        throw unknown(`${service.typeName}/${m.name}: decode ${m.output.typeName}`, { cause: err });
      }
    },
    callRaw,
    get inFlight() {
      return pending.size;
    },
    get closed() {
      return conn.closed;
    },
    get done() {
      return conn.done;
    },
    close() {
      conn.close();
    },
    get connection() {
      return conn;
    },
    [Symbol.dispose]() {
      conn.close();
    },
  };
  return client;
}

/** Binds a generated service to a client: one typed function per method, by localName. */
export function createClient<S extends GenServiceMethods>(service: GenService<S>, client: Client): ServiceClient<S> {
  const out: Record<string, unknown> = {};
  for (const m of service.methods) {
    out[m.localName] = (req: never, opts?: CallOptions) => client.call(service, m.localName as keyof S & string, req, opts);
  }
  return out as ServiceClient<S>;
}
