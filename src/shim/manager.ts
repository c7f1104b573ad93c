/**
 * The manager owns the binary's life: it parses containerd's command line and runs `start`
 * (launch or reuse a daemon, print its address), `delete` (clean up after a dead shim), or, with
 * no action, serves as the daemon.
 *
 * Each action loads only its own modules (dynamic import): containerd launches this binary for every
 * container, and module loading is most of a launch's cost (docs/shim.md, "Speed").
 */
import { CryoError } from "../errors.ts";
import { parseShimFlags, SHIM_USAGE } from "./flags.ts";
import { REVISION, SHIM_VERSION } from "./version.ts";

/** The binary's name, for messages. */
export const SHIM_NAME = "containerd-shim-cryo-v2";

async function writeStdout(bytes: Uint8Array): Promise<void> {
  await Bun.write(Bun.stdout, bytes);
}

/** Runs the shim binary with argv (without the program name); resolves with the exit code. */
export async function runShim(argv: readonly string[], env: Record<string, string | undefined> = process.env): Promise<number> {
  try {
    const flags = parseShimFlags(argv, env, process.cwd());
    if (flags.help) {
      await writeStdout(new TextEncoder().encode(SHIM_USAGE));
      return 0;
    }
    if (flags.version) {
      // The layout of containerd's runc shim's -v (Version, Revision, then its toolchain's version).
      await writeStdout(new TextEncoder().encode(`${SHIM_NAME}:\n  Version:  ${SHIM_VERSION}\n  Revision: ${REVISION || "(run from source)"}\n  Bun version: ${Bun.version}\n`));
      return 0;
    }
    if (flags.info) {
      // containerd 2.x's `-info` (info.ts): no namespace, no id; the options Any on stdin.
      const { answerInfo } = await import("./info.ts");
      const stdin = new Uint8Array(await Bun.stdin.arrayBuffer());
      await writeStdout(answerInfo(stdin, (msg) => process.stderr.write(`${SHIM_NAME}: ${msg}\n`)));
      return 0;
    }
    if (!flags.namespace) throw new CryoError(3, "shim namespace cannot be empty");
    switch (flags.action) {
      case "start": {
        const { startShim } = await import("./start.ts");
        await writeStdout(await startShim(flags, env, new Uint8Array(await Bun.stdin.arrayBuffer())));
        return 0;
      }
      case "delete": {
        const [{ deleteShim }, { createLogger }] = await Promise.all([import("./cleanup.ts"), import("./logger.ts")]);
        const log = createLogger({ level: flags.debug ? "debug" : "warn" });
        await writeStdout(await deleteShim(flags, log));
        return 0;
      }
      case "": {
        const { serveDaemon } = await import("./daemon.ts");
        return await serveDaemon(flags);
      }
    }
  } catch (err) {
    const e = CryoError.from(err);
    process.stderr.write(`${SHIM_NAME}: ${e.message}\n`);
    return 1;
  }
}
