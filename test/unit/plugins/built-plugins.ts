// Builds the example and test plugins (plugins/build.sh skips those that are up to date) and
// returns the folder holding the .wasm files. Used by the host and engine tests.
import { join } from "node:path";

const root = join(import.meta.dir, "../../..");

/** Runs plugins/build.sh once per test process; returns build/plugins. */
export function builtPlugins(): string {
  const r = Bun.spawnSync(["bash", join(root, "plugins/build.sh")], { stdout: "pipe", stderr: "pipe" });
  if (r.exitCode !== 0) throw new Error(`plugins/build.sh failed: ${r.stderr.toString()}`);
  return join(root, "build/plugins");
}

/** A sample hook input from plugins/testdata/inputs. */
export async function sampleInput(name: string): Promise<any> {
  return Bun.file(join(root, "plugins/testdata/inputs", `${name}.json`)).json();
}

/** The CryoError a promise rejects with (fails the test when it resolves or rejects with something else). */
export async function rejection(p: Promise<unknown>): Promise<import("../../../src/errors.ts").CryoError> {
  const { CryoError } = await import("../../../src/errors.ts");
  try {
    await p;
  } catch (err) {
    if (err instanceof CryoError) return err;
    throw err;
  }
  throw new Error("expected a rejection");
}
