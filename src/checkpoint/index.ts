/**
 * src/checkpoint: what a cryo checkpoint holds and how its options resolve.
 *
 * The rest of cryo may use:
 * - `resolveCheckpointPlan({ defaults, annotations, request })` -> `CheckpointPlan` (config < annotations < request)
 * - `checkpointOptionsFromAny(any)`: the request's Any (runc's or cryo's CheckpointOptions) -> request options
 * - `CHECKPOINT_ANNOTATIONS` / `ANNOTATION_PREFIX`: the `cryo.checkpoint/<option>` keys
 * - `CheckpointMetadata` + read/write/parse: the cryo-checkpoint.json beside CRIU's images
 * - `containerDumpOpts` / `containerRestorePlan`: plan + runc container facts -> CriuOpts, the way runc sets CRIU up
 * - `prepareRestoreRoot`, `createRestoreMountpoints`: the restore root CRIU needs
 * - `inspectCommand`: `cryo inspect DIR`
 * - `compressImages` / `decompressImages` / `hasCompressedImages`: zstd page images (after a dump, before a restore)
 */
export {
  resolveCheckpointPlan,
  checkCombinations,
  requestOverrides,
  checkpointPlanSchema,
  checkpointOverridesSchema,
  BUILTIN_CHECKPOINT_PLAN,
  isPostCopy,
  parseDurationSeconds,
  networkLockAsked,
  postCopyPlan,
  type CheckpointPlan,
  type CheckpointOverrides,
  type CheckpointRequestOptions,
  type ResolveInput,
} from "./plan.ts";
export { ANNOTATION_PREFIX, CHECKPOINT_ANNOTATIONS, parseCheckpointAnnotations, type CheckpointAnnotation } from "./annotations.ts";
export { parseSize } from "./plan-enums.ts";
export { checkpointOptionsFromAny, CHECKPOINT_OPTION_TYPES } from "./request-options.ts";
export {
  METADATA_FILE,
  METADATA_VERSION,
  checkpointMetadataSchema,
  parseCheckpointMetadata,
  readCheckpointMetadata,
  writeCheckpointMetadata,
  type CheckpointMetadata,
} from "./metadata.ts";
export {
  containerDumpOpts,
  containerRestorePlan,
  runcContainerFrom,
  runcContainerSchema,
  readHostCgroupFacts,
  maskedFiles,
  externalNamespaceInodes,
  externalNsKey,
  type RuncContainer,
  type ContainerDumpInput,
  type ContainerRestoreInput,
  type ContainerRestorePlan,
  type HostCgroupFacts,
} from "./runc-criu.ts";
export { prepareRestoreRoot, createRestoreMountpoints, type RestoreRoot } from "./restore-root.ts";
export { inspectCommand, renderMetadata } from "./inspect-command.ts";
export {
  compressImages,
  decompressImages,
  hasCompressedImages,
  compressOptionsSchema,
  COMPRESSED_SUFFIX,
  DEFAULT_ZSTD_LEVEL,
  type CompressOptions,
  type CompressionReport,
  type CompressedFile,
} from "./compression.ts";
