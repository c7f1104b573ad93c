/** Whether a daemon is behind a unix socket: a listener whose backlog is full is (Bun reports its refusal as ECONNREFUSED). */
import { afterEach, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { close, listenUnixSocket } from "../../../src/sys/index.ts";
import { listensHere, unixConnectError, unixSocketServed } from "../../../src/sys/unix-connect.ts";

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

test("a listener whose backlog is full is served: `start` reuses its daemon instead of replacing its socket", async () => {
  const dir = mkdtempSync(join(tmpdir(), "cryo-served-"));
  dirs.push(dir);
  const path = join(dir, "sock");
  const fd = listenUnixSocket(path, { backlog: 0 });
  const held: Bun.Socket[] = [];
  try {
    // nothing accepts: the backlog fills, and the next connection is refused as if nothing listened
    for (let i = 0; i < 4; i++) {
      const s = await Bun.connect({ unix: path, socket: { data() {} } }).catch(() => undefined);
      if (s) held.push(s);
    }
    expect(await unixConnectError(path, 1000)).toBe("ECONNREFUSED");
    expect(listensHere(path)).toBe(true);
    expect(await unixSocketServed(path)).toBe(true);
  } finally {
    for (const s of held) s.end();
    close(fd);
  }
  // the listener closed: its file is left, nothing serves it
  expect(listensHere(path)).toBe(false);
  expect(await unixSocketServed(path)).toBe(false);
  expect(await unixSocketServed(join(dir, "none"))).toBe(false);
});

test("listensHere reads /proc/net/unix: only a listening socket of that path", () => {
  const table = [
    "Num       RefCount Protocol Flags    Type St Inode Path",
    "0000000000000000: 00000002 00000000 00010000 0001 01 1001 /run/cryo/s/aaa",
    "0000000000000000: 00000003 00000000 00000000 0001 03 1002 /run/cryo/s/bbb",
    "0000000000000000: 00000002 00000000 00010000 0001 01 1003 @abstract",
  ].join("\n");
  expect(listensHere("/run/cryo/s/aaa", table)).toBe(true);
  expect(listensHere("/run/cryo/s/bbb", table)).toBe(false);
  expect(listensHere("/run/cryo/s/ccc", table)).toBe(false);
});
