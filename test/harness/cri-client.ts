/**
 * A CRI (runtime.v1) client for tests: what the kubelet would send to containerd's CRI plugin, over the
 * private containerd's gRPC socket. `runtime` and `image` have one function per method of the
 * RuntimeService and ImageService subsets in proto/k8s/runtime/v1/api.proto.
 */
import { ImageService, RuntimeService } from "../../src/gen/k8s/runtime/v1/api_pb.ts";
import { GrpcUnixClient, createServiceClient, type ServiceClient } from "./cri-grpc.ts";

/** The methods of the CRI RuntimeService subset. */
export type CriRuntimeClient = ServiceClient<typeof RuntimeService extends { method: infer M } ? { [K in keyof M]: M[K] } : never>;
/** The methods of the CRI ImageService subset. */
export type CriImageClient = ServiceClient<typeof ImageService extends { method: infer M } ? { [K in keyof M]: M[K] } : never>;

/** A CRI client on one gRPC connection; close it (or `using`) when done. */
export class CriClient implements Disposable {
  /** RuntimeService: pod sandboxes, containers, exec. */
  readonly runtime: CriRuntimeClient;
  /** ImageService: images CRI knows. */
  readonly image: CriImageClient;
  private readonly grpc: GrpcUnixClient;

  constructor(
    /** containerd's gRPC socket. */
    readonly socketPath: string,
  ) {
    this.grpc = new GrpcUnixClient(socketPath);
    this.runtime = createServiceClient(this.grpc, RuntimeService) as CriRuntimeClient;
    this.image = createServiceClient(this.grpc, ImageService) as CriImageClient;
  }

  /** Closes the connection. */
  close(): void {
    this.grpc.close();
  }

  /** Same as close(). */
  [Symbol.dispose](): void {
    this.close();
  }
}

/** Opens a CRI client on a containerd gRPC socket (e.g. PrivateContainerd.address). */
export function connectCri(socketPath: string): CriClient {
  return new CriClient(socketPath);
}
