/** The gRPC-over-node:http2 unix-socket client, now in src/containerd/grpc.ts (tests keep importing it from here). */
export { GrpcUnixClient, createServiceClient, frameMessage, unframeMessage } from "../../src/containerd/grpc.ts";
export type { GrpcCallOptions, GrpcClientOptions, ServiceClient } from "../../src/containerd/grpc.ts";
