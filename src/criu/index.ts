/**
 * src/criu: CRIU through libcriu (bun:ffi), run in a helper process off the event loop.
 *
 * The rest of cryo may use:
 * - `createCriu()` -> dump / preDump / restore / restoreLazy / lazyPages / check / version / features, with notify events
 * - `CriuOpts` (+ `criuOptsSchema`): every CRIU option as plain data
 * - `readStats` / `decodeStats`: CRIU's dump and restore statistics
 * - `inspectCheckpoint` / `renderInspect`: process tree, memory, files and stats of an images directory
 * - `runCriuHelper` + `CRIU_HELPER_ARG`: a compiled binary whose argv[2] (or argv[1]) is "__criu" must call
 *   `process.exit(runCriuHelper())` before doing anything else. Entry points should import it from
 *   `./helper.ts` itself (a dynamic import): this index brings the client, stats and inspection
 *   (protobuf) and zod, which the helper does not need and whose evaluation would be most of its start.
 * - `prewarmCriuHelper()` from `./warm.ts` itself (light, no zod): starts the warm helper that
 *   `createCriu({ warm: true })` clients take, before the caller loads the rest of src/criu.
 * Nothing else here is for use outside src/criu, except helper.ts for the compiled entry's `__criu` (see above).
 */
export { createCriu, classify } from "./client.ts";
export { helperCommand } from "./warm.ts";
export type { Criu, CriuCallOptions, CriuRestoreCallOptions, CriuConfig, CriuFeatures, DumpResult, RestoreResult, LazyPagesOptions, LazyPagesServer, LazyPagesSummary, LazyRestoreResult, CriuLazyRestoreCallOptions, NotifyEvent } from "./client.ts";
export { criuOptsSchema, cgroupModeSchema, type CriuOpts, type CgroupMode } from "./options.ts";
export { CONFIG_FILE_OPTIONS, configFileLines } from "./config-file.ts";
export { CRIU_HELPER_ARG } from "./wire.ts";
export type { NotifyAction } from "./protocol.ts";
export { decodeStats, readStats, type CriuStats, type DumpStats, type RestoreStats } from "./stats.ts";
export { criuLogErrors } from "./log.ts";
export { runCriuHelper } from "./helper.ts";

/** True when argv asks this process to be the CRIU helper (`cryo __criu`, `containerd-shim-cryo-v2 __criu`). */
export function isCriuHelperInvocation(argv: readonly string[] = process.argv): boolean {
  return argv[1] === "__criu" || argv[2] === "__criu";
}
export { inspectCheckpoint, renderInspect, PAGE_SIZE, type CheckpointInspection, type CheckpointProcess, type CheckpointFile, type CheckpointMemory } from "./inspect.ts";
