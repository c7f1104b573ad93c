/** Test harness: a private containerd per test file, ctr, the test image, waiting and unique names. */
export { PrivateContainerd, startPrivateContainerd, runCtr, mountsUnder, processAlive } from "../../src/containerd/index.ts";
export type { CtrOptions, CtrResult, StartPrivateContainerdOptions } from "../../src/containerd/index.ts";
export { waitFor } from "./wait-for.ts";
export type { WaitForOptions } from "./wait-for.ts";
export { uniqueId } from "./unique-id.ts";
export { buildFixtures, ensureTestImage, fixtureProgram, testImage } from "./test-image.ts";
export type { Fixtures } from "./test-image.ts";
export { containerRootfs, readContainerFile, readCounter, taskPid } from "./container-files.ts";
export { taskStatus } from "./task-status.ts";
export { removeContainer } from "./remove-container.ts";
export type { RemoveContainerOptions } from "./remove-container.ts";
export { compileStaticC } from "./compile-c.ts";
export { killPids, readTrimmed } from "./host-files.ts";
export * from "./cri-index.ts";
export { buildPlugins } from "./plugins.ts";
export { checkpointCriuTar, checkpointMetadata, criuTarEntries, criuTarMediaType, taskApiRestoreInputs, type TaskApiRestoreInputs } from "./checkpoint-image.ts";
export { freePort } from "./free-port.ts";
export { parseCtrEvent, startCtrEvents, type CtrEvent, type CtrEvents } from "./ctr-events.ts";
