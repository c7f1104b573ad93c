/**
 * A minimal unary gRPC client over node:http2 on a unix socket, for driving containerd's CRI plugin in
 * tests (no grpc library: gRPC over HTTP/2 is a POST per call).
 *
 * Wire form (gRPC over HTTP/2): request headers `:method POST`, `:path /<package.Service>/<Method>`,
 * `content-type: application/grpc`, `te: trailers`, optional `grpc-timeout`; body and response body are
 * length-prefixed messages: 1 byte compressed flag (0), 4 bytes big-endian length, the protobuf bytes.
 * The outcome is `grpc-status` (and percent-encoded `grpc-message`) in the trailers, or in the headers of
 * a trailers-only response. A non-zero status becomes a CryoError with that code (fromStatus).
 */
import http2 from "node:http2";
import net from "node:net";
import type { DescMessage, DescMethod, MessageInitShape, MessageShape } from "@bufbuild/protobuf";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import type { GenService, GenServiceMethods } from "@bufbuild/protobuf/codegenv2";
import { Code, CryoError, deadlineExceeded, fromStatus, resourceExhausted, unavailable } from "../../src/errors.ts";

/** Per-call options. */
export interface GrpcCallOptions {
  /** Fail with DEADLINE_EXCEEDED after this long (default 60 s); also sent to the server as grpc-timeout. */
  timeoutMs?: number;
}

/** The largest response message accepted (containerd's own default send limit is 16 MiB). */
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
  if (body.length < prefixBytes) throw new CryoError(Code.INTERNAL, `${what}: response body of ${body.length} bytes has no message`);
  const view = new DataView(body.buffer, body.byteOffset, body.byteLength);
  if (view.getUint8(0) !== 0) throw new CryoError(Code.INTERNAL, `${what}: compressed response messages are not supported`);
  const length = view.getUint32(1);
  if (length > maxMessageBytes) throw resourceExhausted(what, { detail: `response message of ${length} bytes` });
  if (body.length !== prefixBytes + length) {
    throw new CryoError(Code.INTERNAL, `${what}: response body is ${body.length} bytes, message prefix says ${prefixBytes + length}`);
  }
  return body.subarray(prefixBytes);
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

/** A unary gRPC client holding one HTTP/2 connection to a unix socket; close it (or `using`) when done. */
export class GrpcUnixClient implements Disposable {
  private readonly session: http2.ClientHttp2Session;
  private sessionError: Error | undefined;

  constructor(
    /** The unix socket path of the gRPC server. */
    readonly socketPath: string,
  ) {
    this.session = http2.connect("http://localhost", { createConnection: () => net.connect(socketPath) });
    this.session.on("error", (err: Error) => {
      this.sessionError = err;
    });
  }

  /** Calls one unary method with input; resolves to the decoded output, or rejects with a CryoError. */
  call<I extends DescMessage, O extends DescMessage>(
    method: DescMethod & { methodKind: "unary"; input: I; output: O },
    input: MessageInitShape<I>,
    options: GrpcCallOptions = {},
  ): Promise<MessageShape<O>> {
    const path = `/${method.parent.typeName}/${method.name}`;
    const timeoutMs = options.timeoutMs ?? 60_000;
    const body = frameMessage(toBinary(method.input, create(method.input, input)));
    return new Promise<MessageShape<O>>((resolve, reject) => {
      if (this.sessionError !== undefined || this.session.destroyed) {
        reject(unavailable(`grpc ${path} on ${this.socketPath}`, { detail: String(this.sessionError ?? "connection closed") }));
        return;
      }
      let stream: http2.ClientHttp2Stream;
      try {
        stream = this.session.request({
          ":method": "POST",
          ":path": path,
          "content-type": "application/grpc",
          te: "trailers",
          "grpc-timeout": `${timeoutMs}m`,
        });
      } catch (err) {
        reject(unavailable(`grpc ${path} on ${this.socketPath}`, { cause: err, detail: String(err) }));
        return;
      }
      const chunks: Buffer[] = [];
      let received = 0;
      let status: string | undefined;
      let message: string | undefined;
      let settled = false;
      const finish = (fn: () => void) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        fn();
      };
      const timer = setTimeout(() => {
        finish(() => reject(deadlineExceeded(`grpc ${path}`, { detail: `no answer within ${timeoutMs} ms` })));
        stream.close(http2.constants.NGHTTP2_CANCEL);
      }, timeoutMs);
      const takeStatus = (headers: http2.IncomingHttpHeaders) => {
        status ??= headerText(headers["grpc-status"]);
        message ??= headerText(headers["grpc-message"]);
      };
      stream.on("response", (headers) => {
        const httpStatus = headers[":status"];
        if (httpStatus !== 200) {
          finish(() => reject(unavailable(`grpc ${path}`, { detail: `HTTP status ${httpStatus}` })));
          stream.close(http2.constants.NGHTTP2_CANCEL);
          return;
        }
        takeStatus(headers); // a trailers-only response carries the status here
      });
      stream.on("trailers", takeStatus);
      stream.on("data", (chunk: Buffer) => {
        received += chunk.length;
        if (received > prefixBytes + maxMessageBytes) {
          finish(() => reject(resourceExhausted(`grpc ${path}`, { detail: `response larger than ${maxMessageBytes} bytes` })));
          stream.close(http2.constants.NGHTTP2_CANCEL);
          return;
        }
        chunks.push(chunk);
      });
      stream.on("error", (err: Error) => {
        finish(() => reject(unavailable(`grpc ${path} on ${this.socketPath}`, { cause: err, detail: String(err) })));
      });
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
          try {
            const bytes = unframeMessage(new Uint8Array(Buffer.concat(chunks)), `grpc ${path}`);
            resolve(fromBinary(method.output, bytes));
          } catch (err) {
            reject(CryoError.from(err, Code.INTERNAL));
          }
        });
      });
      stream.end(body);
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
      client.call(method as DescMethod & { methodKind: "unary" }, input, options);
  }
  return out as ServiceClient<M>;
}
