import { afterAll, expect, test } from "bun:test";
import { chmodSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { createCriu } from "../../../src/criu/index.ts";

const dir = mkdtempSync("/tmp/cryo-lazy-pages-");
afterAll(() => rmSync(dir, { recursive: true, force: true }));

// A stand-in for `criu lazy-pages`: reports readiness on its status fd (3), then exits as the real one does
// once every page is served (here: once the test says so).
const fakeCriu = join(dir, "criu");
const served = join(dir, "served");
writeFileSync(fakeCriu, `#!/bin/sh\nprintf '\\0' >&3\nwhile [ ! -e ${served} ]; do sleep 0.01; done\nexit 0\n`);
chmodSync(fakeCriu, 0o755);

const openFds = () => readdirSync("/proc/self/fd").length;

test("a lazy-pages daemon that served its pages leaves no descriptor open in the caller", async () => {
  const criu = createCriu({ criuBinary: fakeCriu });
  const serve = async () => {
    rmSync(served, { force: true });
    await using daemon = await criu.lazyPages({ imagesDir: join(dir, "images") });
    writeFileSync(served, "");
    await daemon.done;
  };
  await serve(); // whatever Bun opens once (its reader of child processes) is open before counting
  const before = openFds();
  for (let i = 0; i < 20; i++) await serve();
  await Bun.sleep(50);
  // before the thirty-first session the status socket stayed open: one more descriptor per lazy restore
  expect(openFds()).toBe(before);
});
