import { dirname, join, resolve } from "node:path";
import { unavailable } from "../../src/errors.ts";
import type { PrivateContainerd } from "../../src/containerd/index.ts";

/** The name of the test image (busybox-static, memhog, tcp-echo, tcp-client). */
export const testImage = "localhost/cryo-test:latest";

/** Where the fixture build put its outputs. */
export interface Fixtures {
  /** The OCI image archive of the test image. */
  archive: string;
  /** Directory with the static programs (memhog, tcp-echo, tcp-client) for use on the host. */
  binDir: string;
}

const buildScript = resolve(import.meta.dir, "../fixtures/build.sh");
let fixtures: Promise<Fixtures> | undefined;

/** Builds the fixtures (cached under build/fixtures, keyed by source hash) once per process. */
export function buildFixtures(): Promise<Fixtures> {
  fixtures ??= (async () => {
    const proc = Bun.spawn(["bash", buildScript], { stdout: "pipe", stderr: "pipe" });
    const [stdout, stderr, code] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited]);
    const archive = stdout.trim().split("\n").pop() ?? "";
    if (code !== 0 || archive === "") throw unavailable("build test fixtures", { detail: `exit ${code}: ${stderr.trim()}` });
    return { archive, binDir: join(dirname(archive), "bin") };
  })();
  fixtures.catch(() => (fixtures = undefined));
  return fixtures;
}

const imported = new Map<string, Promise<string>>();

/** Imports the test image into pc's content store (in namespace, default pc's) once per containerd and namespace; returns its name. */
export function ensureTestImage(pc: PrivateContainerd, namespace = pc.namespace): Promise<string> {
  const key = `${pc.address}\0${pc.pid}\0${namespace}`;
  let done = imported.get(key);
  if (done === undefined) {
    done = (async () => {
      const { archive } = await buildFixtures();
      await pc.ctrOk(["images", "import", archive], { namespace, timeoutMs: 120_000 });
      const list = await pc.ctrOk(["images", "ls", "-q"], { namespace });
      if (!list.split("\n").includes(testImage)) throw unavailable(`import ${testImage}`, { detail: `not listed after import: ${list}` });
      return testImage;
    })();
    imported.set(key, done);
    done.catch(() => imported.delete(key));
  }
  return done;
}

/** Builds the fixtures (once per process) and returns the host path of one of its static programs. */
export async function fixtureProgram(name: "memhog" | "tcp-echo" | "tcp-client" | "pause"): Promise<string> {
  return join((await buildFixtures()).binDir, name);
}
