/**
 * ttrpc over unix sockets: what the rest of cryo may use.
 *
 * - createServer(): register generated services (typed handlers) or raw methods, listen on a socket.
 * - connect(path) + createClient(Service, client): typed calls with timeouts and metadata.
 * - NAMESPACE_KEY: the metadata key containerd uses for the namespace.
 * The frame codec and connection engine are exported for tests and benchmarks.
 */
export { createServer, type Server, type ServerOptions, type ListenOptions } from "./server.ts";
export { connect, createClient, type Client, type ClientOptions, type CallOptions, type ServiceClient } from "./client.ts";
export type { CallContext, RawHandler, ServiceImpl, MethodImpl } from "./service.ts";
export { NAMESPACE_KEY, namespaceOf, type Metadata, type MetadataInit } from "./metadata.ts";
export { HEADER_LENGTH, MAX_MESSAGE_LENGTH, MessageType, Flag, encodeFrame, readHeader, writeHeader, type FrameHeader } from "./frame.ts";
export { createFrameDecoder, type FrameDecoder, type FrameSink, type FrameDecoderOptions } from "./frame-decoder.ts";
export { Connection } from "./connection.ts";
