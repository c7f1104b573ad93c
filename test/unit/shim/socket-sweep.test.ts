/** The sweep of the socket directory: files of daemons killed after their last Delete go, every other file stays. */
import { afterEach, expect, test } from "bun:test";
import { existsSync, mkdirSync, mkdtempSync, rmSync, utimesSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { close, listenUnixSocket } from "../../../src/sys/index.ts";
import { lockSocket, STALE_PENDING_MS } from "../../../src/shim/socket-lock.ts";
import { removeIfDead, sweepDeadSockets, SWEEP_MIN_AGE_MS } from "../../../src/shim/socket-sweep.ts";

const dirs: string[] = [];
const listeners: { stop(closeActive?: boolean): void }[] = [];
afterEach(() => {
  for (const l of listeners.splice(0)) l.stop(true);
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

const hex = (c: string) => c.repeat(64);

/** A socket file nothing listens on any more: bound, then its descriptor closed (a SIGKILLed daemon's). */
function deadSocket(path: string): void {
  close(listenUnixSocket(path));
}

function liveSocket(path: string): void {
  listeners.push(Bun.listen({ unix: path, socket: { data() {} } }));
}

test("a killed daemon's socket and markers, a killed start's lock file and a killed standby's launch marker go; live, young, locked and own sockets stay", async () => {
  const dir = mkdtempSync(join(tmpdir(), "cryo-sweep-"));
  dirs.push(dir);
  const later = Date.now() + SWEEP_MIN_AGE_MS + STALE_PENDING_MS + 5_000;
  const future = new Date(later);
  // dead, with a marker directory whose marker is stale by `later`
  deadSocket(join(dir, hex("a")));
  mkdirSync(join(dir, `${hex("a")}.pending`));
  writeFileSync(join(dir, `${hex("a")}.pending`, "c1"), "");
  liveSocket(join(dir, hex("b")));
  // dead but young at `later` (bound "just now")
  deadSocket(join(dir, hex("c")));
  utimesSync(join(dir, hex("c")), future, future);
  // dead, but a `start` holds its lock
  deadSocket(join(dir, hex("d")));
  const held = await lockSocket(join(dir, hex("d")));
  // the lock file of a `start` killed while it held it (no socket was bound)
  writeFileSync(join(dir, `${hex("7")}.lock`), "");
  // this daemon's own socket (dead here: never removed by its own sweep)
  deadSocket(join(dir, hex("e")));
  // marker directories without a socket: one with a stale marker, one with a fresh one
  mkdirSync(join(dir, `${hex("f")}.pending`));
  writeFileSync(join(dir, `${hex("f")}.pending`, "c2"), "");
  mkdirSync(join(dir, `${hex("9")}.pending`));
  writeFileSync(join(dir, `${hex("9")}.pending`, "c3"), "");
  utimesSync(join(dir, `${hex("9")}.pending`, "c3"), future, future);
  // not a daemon's socket
  deadSocket(join(dir, "standby-0123.sock"));
  // launch markers of standbys: one left by a standby killed while it loaded, one being launched now
  writeFileSync(join(dir, "standby-0123.sock.launching"), "4242");
  writeFileSync(join(dir, "standby-4567.sock.launching"), "4243");
  utimesSync(join(dir, "standby-4567.sock.launching"), future, future);

  const removed = await sweepDeadSockets(dir, join(dir, hex("e")), later);
  held();
  expect(removed.sort()).toEqual([`${hex("7")}.lock`, hex("a"), `${hex("f")}.pending`, "standby-0123.sock.launching"].sort());
  for (const gone of [hex("a"), `${hex("a")}.pending`, `${hex("7")}.lock`, `${hex("f")}.pending`, "standby-0123.sock.launching"]) expect(existsSync(join(dir, gone))).toBe(false);
  for (const kept of [hex("b"), hex("c"), hex("d"), hex("e"), `${hex("9")}.pending`, "standby-0123.sock", "standby-4567.sock.launching"]) {
    expect(existsSync(join(dir, kept))).toBe(true);
  }
});

test("removeIfDead: a socket that answers is kept, one that does not is removed with its markers", async () => {
  const dir = mkdtempSync(join(tmpdir(), "cryo-sweep-"));
  dirs.push(dir);
  liveSocket(join(dir, "live"));
  deadSocket(join(dir, "dead"));
  mkdirSync(join(dir, "dead.pending"));
  expect(await removeIfDead(join(dir, "live"))).toBe(false);
  expect(await removeIfDead(join(dir, "dead"))).toBe(true);
  expect(existsSync(join(dir, "live"))).toBe(true);
  expect(existsSync(join(dir, "dead"))).toBe(false);
  expect(existsSync(join(dir, "dead.pending"))).toBe(false);
  expect(existsSync(join(dir, "dead.lock"))).toBe(false);
});
