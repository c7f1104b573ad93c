/** The CRI part of the test harness: a CRI client over containerd's gRPC socket and the helpers around it. */
export { CriClient, connectCri } from "./cri-client.ts";
export type { CriImageClient, CriRuntimeClient } from "./cri-client.ts";
export { GrpcUnixClient, createServiceClient, frameMessage, unframeMessage } from "./cri-grpc.ts";
export type { GrpcCallOptions, ServiceClient } from "./cri-grpc.ts";
export { cgroupDirs, criNamespace, criPauseImage, ensureCriImages, parentPid, removeAllPods, removeCgroupParent, shimProcesses, startCriSetup, stopCriSetup } from "./cri-pod.ts";
export type { CriSetup, ShimProcess } from "./cri-pod.ts";
export { streamCri } from "./cri-stream.ts";
export type { StreamResult } from "./cri-stream.ts";
