/**
 * A small gRPC client over node:http2 on a unix socket: unary and server-streaming calls, for talking
 * to containerd's own API (and its CRI plugin in tests) without a gRPC library.
 *
 * Wire form (gRPC over HTTP/2): request headers `:method POST`, `:path /<package.Service>/<Method>`,
 * `content-type: application/grpc`, `te: trailers`, `grpc-timeout`, and optional metadata (containerd
 * reads its namespace from `containerd-namespace`); request and response bodies are length-prefixed
 * messages: 1 byte compressed flag (0), 4 bytes big-endian length, the protobuf bytes. The outcome is
 * `grpc-status` (and percent-encoded `grpc-message`) in the trailers, or in the headers of a
 * trailers-only response. A non-zero status becomes a CryoError with that code (fromStatus).
 */
import http2 from "node:http2";
import net from "node:net";
import type { DescMessage, DescMethod, MessageInitShape, MessageShape } from "@bufbuild/protobuf";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import type { GenService, GenServiceMethods } from "@bufbuild/protobuf/codegenv2";
import { Code, CryoError, deadlineExceeded, fromStatus, resourceExhausted, unavailable } from "../errors.ts";

/** Per-call options. */
export interface GrpcCallOptions {
  /** Fail with DEADLINE_EXCEEDED after this long (default 60 s); also sent to the server as grpc-timeout. */
  timeoutMs?: number;
}

/** Options of a client (one connection). */
export interface GrpcClientOptions {
  /** Sent as `containerd-namespace` metadata on every call. */
  namespace?: string;
  /** Further metadata sent on every call (lower-case names). */
  metadata?: Record<string, string>;
}

/** The largest single response message accepted (containerd's own default send limit is 16 MiB). */
const maxMessageBytes = 16 << 20;
/** Length of the message prefix: compressed flag (byte 0) and big-endian length (bytes 1-4). */
const prefixBytes = 5;

/** Frames one message: flag 0 (not compressed), big-endian length, bytes. */
export function frameMessage(bytes: Uint8Array): Uint8Array {
  const out = new Uint8Array(prefixBytes + bytes.length);
  new DataView(out.buffer).setUint32(1, bytes.length);
  out.set(bytes, prefixBytes);
  return out;
}

/** Reads exactly one length-prefixed, uncompressed message out of a complete response body. */
export function unframeMessage(body: Uint8Array, what: string): Uint8Array {
  const messages: Uint8Array[] = [];
  const rest = createUnframer(what, (m) => messages.push(m)).push(body);
  if (rest !== 0 || messages.length !== 1) {
    throw new CryoError(Code.INTERNAL, `${what}: response body of ${body.length} bytes holds ${messages.length} complete messages and ${rest} bytes more (want exactly one)`);
  }
  return messages[0] as Uint8Array;
}

/** Splits a stream of bytes into length-prefixed messages; `push` returns how many bytes wait for the rest of a message. */
function createUnframer(what: string, onMessage: (bytes: Uint8Array) => void): { push(chunk: Uint8Array): number } {
  let pending = new Uint8Array(0);
  return {
    push(chunk) {
      let buf: Uint8Array = pending.length === 0 ? chunk : concat(pending, chunk);
      while (buf.length >= prefixBytes) {
        const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
        if (view.getUint8(0) !== 0) throw new CryoError(Code.INTERNAL, `${what}: compressed response messages are not supported`);
        const length = view.getUint32(1);
        if (length > maxMessageBytes) throw resourceExhausted(what, { detail: `response message of ${length} bytes` });
        if (buf.length < prefixBytes + length) break;
        onMessage(buf.slice(prefixBytes, prefixBytes + length));
        buf = buf.subarray(prefixBytes + length);
      }
      pending = buf.slice();
      return pending.length;
    },
  };
}

function concat(a: Uint8Array, b: Uint8Array): Uint8Array {
  const out = new Uint8Array(a.length + b.length);
  out.set(a, 0);
  out.set(b, a.length);
  return out;
}

function headerText(value: string | string[] | number | undefined): string | undefined {
  if (value === undefined) return undefined;
  return Array.isArray(value) ? value.join(",") : String(value);
}

function decodeGrpcMessage(text: string | undefined): string {
  if (text === undefined) return "";
  try {
    return decodeURIComponent(text);
  } catch {
    return text;
  }
}

type UnaryMethod<I extends DescMessage, O extends DescMessage> = DescMethod & { methodKind: "unary"; input: I; output: O };
type ServerStreamingMethod<I extends DescMessage, O extends DescMessage> = DescMethod & { methodKind: "server_streaming"; input: I; output: O };

/** A gRPC client holding one HTTP/2 connection to a unix socket; close it (or `using`) when done. */
export class GrpcUnixClient implements Disposable {
  private readonly session: http2.ClientHttp2Session;
  private sessionError: Error | undefined;
  private readonly metadata: Record<string, string>;

  constructor(
    /** The unix socket path of the gRPC server. */
    readonly socketPath: string,
    options: GrpcClientOptions = {},
  ) {
    this.metadata = { ...options.metadata };
    if (options.namespace !== undefined) this.metadata["containerd-namespace"] = options.namespace;
    this.session = http2.connect("http://localhost", { createConnection: () => net.connect(socketPath) });
    this.session.on("error", (err: Error) => {
      this.sessionError = err;
    });
  }

  /** Calls one unary method with input; resolves to the decoded output, or rejects with a CryoError. */
  async call<I extends DescMessage, O extends DescMessage>(
    method: UnaryMethod<I, O>,
    input: MessageInitShape<I>,
    options: GrpcCallOptions = {},
  ): Promise<MessageShape<O>> {
    const path = `/${method.parent.typeName}/${method.name}`;
    const messages: Uint8Array[] = [];
    await this.exchange(path, toBinary(method.input, create(method.input, input)), options, (m) => {
      if (messages.length > 0) throw new CryoError(Code.INTERNAL, `grpc ${path}: more than one response message to a unary call`);
      messages.push(m);
    });
    const bytes = messages[0];
    if (bytes === undefined) throw new CryoError(Code.INTERNAL, `grpc ${path}: no response message`);
    return fromBinary(method.output, bytes);
  }

  /**
   * Calls one server-streaming method; onMessage sees each response message in order (throwing from it
   * cancels the call and rejects with that error). Resolves when the server ends the stream with OK.
   */
  async stream<I extends DescMessage, O extends DescMessage>(
    method: ServerStreamingMethod<I, O>,
    input: MessageInitShape<I>,
    onMessage: (message: MessageShape<O>) => void,
    options: GrpcCallOptions = {},
  ): Promise<void> {
    const path = `/${method.parent.typeName}/${method.name}`;
    await this.exchange(path, toBinary(method.input, create(method.input, input)), options, (m) => onMessage(fromBinary(method.output, m)));
  }

  /** One request message out, response messages in (each through onMessage), then the status. */
  private exchange(path: string, request: Uint8Array, options: GrpcCallOptions, onMessage: (bytes: Uint8Array) => void): Promise<void> {
    const timeoutMs = options.timeoutMs ?? 60_000;
    const where = `grpc ${path} on ${this.socketPath}`;
    return new Promise<void>((resolve, reject) => {
      if (this.sessionError !== undefined || this.session.destroyed) {
        reject(unavailable(where, { detail: String(this.sessionError ?? "connection closed") }));
        return;
      }
      let stream: http2.ClientHttp2Stream;
      try {
        stream = this.session.request({
          ...this.metadata,
          ":method": "POST",
          ":path": path,
          "content-type": "application/grpc",
          te: "trailers",
          "grpc-timeout": `${Math.max(1, Math.ceil(timeoutMs))}m`,
        });
      } catch (err) {
        reject(unavailable(where, { cause: err, detail: String(err) }));
        return;
      }
      let status: string | undefined;
      let message: string | undefined;
      let settled = false;
      const finish = (fn: () => void) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        fn();
      };
      const fail = (err: unknown) => {
        finish(() => reject(CryoError.from(err, Code.INTERNAL)));
        if (!stream.closed) stream.close(http2.constants.NGHTTP2_CANCEL);
      };
      const timer = setTimeout(() => fail(deadlineExceeded(`grpc ${path}`, { detail: `no answer within ${timeoutMs} ms` })), timeoutMs);
      const unframer = createUnframer(`grpc ${path}`, onMessage);
      const takeStatus = (headers: http2.IncomingHttpHeaders) => {
        status ??= headerText(headers["grpc-status"]);
        message ??= headerText(headers["grpc-message"]);
      };
      stream.on("response", (headers) => {
        const httpStatus = headers[":status"];
        if (httpStatus !== 200) {
          fail(unavailable(`grpc ${path}`, { detail: `HTTP status ${httpStatus}` }));
          return;
        }
        takeStatus(headers); // a trailers-only response carries the status here
      });
      stream.on("trailers", takeStatus);
      stream.on("data", (chunk: Buffer) => {
        if (settled) return;
        try {
          unframer.push(new Uint8Array(chunk.buffer, chunk.byteOffset, chunk.byteLength));
        } catch (err) {
          fail(err);
        }
      });
      stream.on("error", (err: Error) => fail(unavailable(where, { cause: err, detail: String(err) })));
      stream.on("close", () => {
        finish(() => {
          if (status === undefined) {
            reject(unavailable(`grpc ${path}`, { detail: `stream closed without grpc-status (${this.sessionError ?? "no error"})` }));
            return;
          }
          const code = Number(status);
          if (code !== 0) {
            reject(fromStatus({ code, message: `${path}: ${decodeGrpcMessage(message)}` }));
            return;
          }
          resolve();
        });
      });
      stream.end(frameMessage(request));
    });
  }

  /** Closes the connection (calls in flight fail). */
  close(): void {
    if (!this.session.destroyed) this.session.destroy();
  }

  /** Same as close(). */
  [Symbol.dispose](): void {
    this.close();
  }
}

/** Functions named like a service's methods (lowerCamelCase), each calling that unary method. */
export type ServiceClient<M extends GenServiceMethods> = {
  [K in keyof M]: M[K] extends { methodKind: "unary"; input: infer I extends DescMessage; output: infer O extends DescMessage }
    ? (input: MessageInitShape<I>, options?: GrpcCallOptions) => Promise<MessageShape<O>>
    : never;
};

/** A typed client for every unary method of a generated service, over client's connection. */
export function createServiceClient<M extends GenServiceMethods>(client: GrpcUnixClient, service: GenService<M>): ServiceClient<M> {
  const out: Record<string, unknown> = {};
  for (const [localName, method] of Object.entries(service.method) as [string, DescMethod][]) {
    if (method.methodKind !== "unary") continue;
    out[localName] = (input: MessageInitShape<DescMessage>, options?: GrpcCallOptions) =>
      client.call(method as UnaryMethod<DescMessage, DescMessage>, input, options);
  }
  return out as ServiceClient<M>;
}
