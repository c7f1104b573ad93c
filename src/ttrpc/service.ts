/**
 * How services are described to the server: handlers typed from protobuf-es service descriptors
 * (no second code generator), and the context every handler receives.
 */
import type { MessageInitShape, MessageShape } from "@bufbuild/protobuf";
import type { GenServiceMethods } from "@bufbuild/protobuf/codegenv2";
import type { Metadata } from "./metadata.ts";

/** What a handler knows about its call. */
export interface CallContext {
  /** Full service name, e.g. "containerd.task.v2.Task". */
  readonly service: string;
  /** Method name as on the wire, e.g. "Create". */
  readonly method: string;
  /** Request metadata by key. */
  readonly metadata: Metadata;
  /** The containerd namespace from metadata ("containerd-namespace-ttrpc"), if sent. */
  readonly namespace: string | undefined;
  /** Absolute deadline in epoch milliseconds from the request's timeout_nano, if any. */
  readonly deadline: number | undefined;
  /** Aborted when the deadline passes (reason: a DEADLINE_EXCEEDED CryoError), the client disconnects, or the server closes. */
  readonly signal: AbortSignal;
}

/** A handler on serialized messages: request payload in, response payload out. */
export type RawHandler = (payload: Uint8Array, ctx: CallContext) => Promise<Uint8Array>;

/** One typed handler: the decoded request in, an init shape of the output message out. */
export type MethodImpl<M extends GenServiceMethods[string]> = (
  req: MessageShape<M["input"]>,
  ctx: CallContext,
) => Promise<MessageInitShape<M["output"]>>;

/** The implementation of a whole service, keyed by protobuf-es localName (lowerCamelCase): `{ create, start, ... }`. */
export type ServiceImpl<S extends GenServiceMethods> = { [K in keyof S]: MethodImpl<S[K]> };
