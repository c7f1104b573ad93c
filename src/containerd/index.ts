/** The private containerd ("embedded default"): what the CLI, tests and demos may use. */
export { PrivateContainerd, startPrivateContainerd, defaultBinDir, containerdBinary } from "./private-containerd.ts";
export type { StartPrivateContainerdOptions, StopOptions } from "./private-containerd.ts";
export { ctrAddress, runCtr, ctrBinary } from "./ctr.ts";
export type { CtrOptions, CtrResult } from "./ctr.ts";
export { containerdLayout } from "./layout.ts";
export type { ContainerdLayout } from "./layout.ts";
export { renderContainerdConfig, cryoRuntimeType, cryoRuntimeHandler, runcRuntimeType } from "./config.ts";
export { mountsUnder, unmountUnder, processAlive } from "./cleanup.ts";
export { GrpcUnixClient, createServiceClient } from "./grpc.ts";
export type { GrpcCallOptions, GrpcClientOptions, ServiceClient } from "./grpc.ts";
export { readImageInfo, resolveImageConfig, hostPlatform, maxImageBlobBytes } from "./image-info.ts";
export type { ContainerImageInfo, ReadImageInfoOptions, Platform, BlobDescriptor, BlobReader } from "./image-info.ts";
