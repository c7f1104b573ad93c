import { describe, expect, test } from "bun:test";
import type { DumpResult } from "../../../src/criu/client.ts";
import type { PostCopyServing } from "../../../src/shim/checkpoint-dump.ts";
import type { Logger } from "../../../src/shim/logger.ts";
import { DEFAULT_POST_COPY_TIMEOUT_MS, postCopyTimeoutMs, watchPostCopy } from "../../../src/shim/post-copy.ts";

function recorder(): { log: Logger; lines: string[] } {
  const lines: string[] = [];
  const at = (level: string) => (msg: string) => void lines.push(`${level} ${msg}`);
  const log = { debug: at("debug"), info: at("info"), warn: at("warn"), error: at("error") } as unknown as Logger;
  return { log, lines };
}

function fakeServing(): { serving: PostCopyServing; resolve: (r: DumpResult) => void; reject: (e: unknown) => void; aborted: unknown[] } {
  let resolve!: (r: DumpResult) => void;
  let reject!: (e: unknown) => void;
  const done = new Promise<DumpResult>((a, b) => ((resolve = a), (reject = b)));
  const aborted: unknown[] = [];
  const serving: PostCopyServing = {
    done,
    pageServer: { address: "127.0.0.1", port: 27000 },
    abort(reason) {
      aborted.push(reason);
      reject(reason); // as the CRIU client does: the killed helper's call rejects
    },
  };
  return { serving, resolve, reject, aborted };
}

const result: DumpResult = { stats: {}, events: [], durationMs: 1, callMs: 1, warm: false };

describe("post-copy timeout", () => {
  test("from CRYO_POST_COPY_TIMEOUT_MS when a positive integer, else the default", () => {
    expect(postCopyTimeoutMs({})).toBe(DEFAULT_POST_COPY_TIMEOUT_MS);
    expect(postCopyTimeoutMs({ CRYO_POST_COPY_TIMEOUT_MS: "1500" })).toBe(1500);
    for (const bad of ["0", "-5", "1.5", "soon", ""]) expect(postCopyTimeoutMs({ CRYO_POST_COPY_TIMEOUT_MS: bad })).toBe(DEFAULT_POST_COPY_TIMEOUT_MS);
  });
});

describe("watchPostCopy", () => {
  test("every page sent: ended is true, nothing is aborted", async () => {
    const f = fakeServing();
    const { log, lines } = recorder();
    const w = watchPostCopy({ id: "c1", pid: 0, serving: f.serving, networkLock: "nftables", timeoutMs: 60_000, log });
    f.resolve(result);
    expect(await w.ended).toBe(true);
    expect(f.aborted).toEqual([]);
    expect(lines.some((l) => l.startsWith("info") && l.includes("every page sent from 127.0.0.1:27000"))).toBe(true);
  });

  test("no restore within the timeout: the page server is stopped, ended is false and the log says why", async () => {
    const f = fakeServing();
    const { log, lines } = recorder();
    const w = watchPostCopy({ id: "c2", pid: 0, serving: f.serving, networkLock: "iptables", timeoutMs: 20, log });
    expect(await w.ended).toBe(false);
    expect(f.aborted.length).toBe(1);
    expect(lines.some((l) => l.startsWith("warn") && l.includes("no restore took every page within 20 ms"))).toBe(true);
  });

  test("stop (the container is deleted) aborts once; a transfer that fails by itself is logged with CRIU's error", async () => {
    const f = fakeServing();
    const { log } = recorder();
    const w = watchPostCopy({ id: "c3", pid: 0, serving: f.serving, networkLock: "nftables", timeoutMs: 60_000, log });
    w.stop("container c3 deleted");
    w.stop("again");
    expect(await w.ended).toBe(false);
    expect(f.aborted.length).toBe(1);

    const g = fakeServing();
    const r = recorder();
    const w2 = watchPostCopy({ id: "c4", pid: 0, serving: g.serving, networkLock: "nftables", timeoutMs: 60_000, log: r.log });
    g.reject(new Error("criu dump: Lazy pages transfer FAILED"));
    expect(await w2.ended).toBe(false);
    expect(g.aborted).toEqual([]);
    expect(r.lines.some((l) => l.includes("Lazy pages transfer FAILED"))).toBe(true);
  });
});

describe("loopbackOnlyNetns", () => {
  test("false for a process in this process's network namespace, and for one that is gone", async () => {
    const { loopbackOnlyNetns } = await import("../../../src/shim/checkpoint-dump.ts");
    expect(loopbackOnlyNetns(process.pid)).toBe(false);
    expect(loopbackOnlyNetns(2 ** 22 + 1)).toBe(false);
  });

  test("noTcpSockets: the namespace's sockstat counts no TCP socket, hashed or in TIME_WAIT, IPv4 or IPv6", async () => {
    const { noTcpSockets } = await import("../../../src/shim/checkpoint-dump.ts");
    const stat = (inuse: number, tw: number) => `sockets: used 0\nTCP: inuse ${inuse} orphan 0 tw ${tw} alloc 1 mem 293\nUDP: inuse 0 mem 0\n`;
    const stat6 = (inuse: number) => `TCP6: inuse ${inuse}\nUDP6: inuse 0\n`;
    expect(noTcpSockets(stat(0, 0), stat6(0))).toBe(true);
    expect(noTcpSockets(stat(0, 0))).toBe(true); // no IPv6
    expect(noTcpSockets(stat(1, 0), stat6(0))).toBe(false);
    expect(noTcpSockets(stat(0, 2), stat6(0))).toBe(false);
    expect(noTcpSockets(stat(0, 0), stat6(1))).toBe(false);
    expect(noTcpSockets("TCP: inuse 0\n", stat6(0))).toBe(false); // not the format known
    expect(noTcpSockets(stat(0, 0), "UDP6: inuse 0\n")).toBe(false);
  });
});
