/**
 * The CRIU client's watchdog when a restore's tree loses a task while CRIU waits for the tree, and the helper's
 * answer comes as well: libcriu answers "no answer from CRIU" (ECOMM) once CRIU's socket closes, which the
 * watchdog's own kill of CRIU causes. A fake helper stands in for the real one: a "criu" waiting for its child
 * (do_wait, as CRIU's wait for the tree's tasks), a tree in a pid namespace of its own whose task 2 is killed and
 * left unreaped, and that answer written at once (in a real restore it can reach the client in the moment between
 * the watchdog's kill of CRIU and its kill of the helper: seen once in criu-process under load).
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createCriu } from "../../../src/criu/client.ts";
import { Code, CryoError } from "../../../src/errors.ts";

let dir: string;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), "cryo-treewatch-"));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

test("a task of the tree dead while CRIU waits, and libcriu's ECOMM answer too: the call fails naming the task", async () => {
  const criuScript = join(dir, "criu");
  writeFileSync(criuScript, "#!/bin/sh\nsleep 600\n");
  chmodSync(criuScript, 0o755);
  const helper = join(dir, "helper.sh");
  const ecomm = JSON.stringify({ type: "result", ok: false, op: "restore", rc: -70, errno: 0, logErrors: [], durationMs: 1 });
  writeFileSync(
    helper,
    `#!/bin/sh\n"${criuScript}" &\nunshare --pid --fork sh -c 'sleep 600 & kill -9 $!; exec sleep 600' &\necho '${ecomm}'\nexec sleep 600\n`,
  );
  chmodSync(helper, 0o755);
  const criu = createCriu({ helper: [helper], criuBinary: "/bin/true" });
  const err = await criu.restore({ imagesDir: dir }, { liveTasks: [1, 2], notify: false, signal: AbortSignal.timeout(20_000) }).catch((e: unknown) => e);
  expect(err).toBeInstanceOf(CryoError);
  expect((err as CryoError).code).toBe(Code.UNAVAILABLE);
  // Before: "criu restore ...: unavailable: CRIU ended without an answer: it was killed or crashed".
  expect((err as CryoError).message).toMatch(/^criu restore \S+: unavailable: task 2 \(pid \d+\) of the tree being restored killed by signal 9 before CRIU answered/);
}, 30_000);
