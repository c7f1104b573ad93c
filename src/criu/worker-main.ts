/**
 * Entry point of the CRIU helper process when cryo runs from source (`bun src/criu/worker-main.ts`).
 * Compiled binaries enter the same code through their `__criu` argument (see index.ts).
 */
import { runCriuHelper } from "./helper.ts";

process.exitCode = runCriuHelper();
