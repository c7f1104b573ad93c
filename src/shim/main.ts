/** Entry point of containerd-shim-cryo-v2: everything lives in the manager. */
import { runShim } from "./manager.ts";

process.exit(await runShim(process.argv.slice(2)));
