/**
 * src/runtime: runc as the lifecycle engine, and runc's on-disk state. The rest of cryo uses what
 * is exported here.
 */
export {
  checkExecProcessShape,
  createRunc,
  readPidFile,
  processSpecSchema,
  runcCliStateSchema,
  type Runc,
  type RuncOptions,
  type CallOptions,
  type CreateOptions,
  type ExecOptions,
  type ProcessSpec,
  type RuncCliState,
  type Stdio,
} from "./runc.ts";
export { isRuncShimFailure, lastRuncError, runcError } from "./runc-errors.ts";
export {
  containerError,
  containerErrorCodes,
  containerErrorKindOf,
  isValidContainerId,
  assertValidContainerId,
  type ContainerErrorKind,
} from "./container-errors.ts";
export { readRuncState, parseRuncState, runcStateSchema, labelsToAnnotations, type RuncState } from "./state-file.ts";
export { listContainers, containerStatus, isFrozen, type ContainerListing, type ContainerStatus } from "./list.ts";
export { matchesRuntime, RUNTIME_NAME, SHIM_BINARY } from "./runtime-name.ts";
