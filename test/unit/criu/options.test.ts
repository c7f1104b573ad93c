import { describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { configFileLines, renderConfigFile } from "../../../src/criu/config-file.ts";
import { criuLogErrors, criuLogLastLine } from "../../../src/criu/log.ts";
import { criuOptsSchema } from "../../../src/criu/options.ts";
import { classify, resultError } from "../../../src/criu/client.ts";
import { helperRequestSchema } from "../../../src/criu/protocol.ts";
import { isCriuHelperInvocation } from "../../../src/criu/index.ts";
import { Code } from "../../../src/errors.ts";

describe("CRIU configuration file", () => {
  test("only options without a libcriu setter go into it", () => {
    const opts = criuOptsSchema.parse({ imagesDir: "/i", lazyPages: true, leaveStopped: true, displayStats: true, tcpEstablished: true, shellJob: true });
    expect(configFileLines(opts)).toEqual(["lazy-pages", "leave-stopped", "display-stats"]);
  });

  test("a lazy dump's page server (post-copy) goes into the file as address and port; a plain page server does not", () => {
    const lazy = criuOptsSchema.parse({ imagesDir: "/i", lazyPages: true, pageServer: { address: "10.0.0.1", port: 27000 } });
    expect(configFileLines(lazy)).toEqual(["lazy-pages", "address 10.0.0.1", "port 27000"]);
    const v6 = criuOptsSchema.parse({ imagesDir: "/i", lazyPages: true, pageServer: { address: "::1", port: 1 } });
    expect(configFileLines(v6)).toEqual(["lazy-pages", "address ::1", "port 1"]);
    // Pages sent to a page server (not lazy) go through libcriu's setter.
    expect(renderConfigFile(criuOptsSchema.parse({ imagesDir: "/i", pageServer: { address: "10.0.0.1", port: 27000 } }))).toBeUndefined();
  });

  test("no file when nothing needs one; extras are quoted; the caller's file comes first", () => {
    expect(renderConfigFile(criuOptsSchema.parse({ imagesDir: "/i", tcpClose: true }))).toBeUndefined();
    const text = renderConfigFile(criuOptsSchema.parse({ imagesDir: "/i", configExtra: { "file-validation": "buildid", "ghost-fiemap": true, "tls-cert": "/a b" } }), "tcp-close\n")!;
    expect(text.split("\n")).toEqual(["tcp-close", "# written by cryo", "file-validation buildid", "ghost-fiemap", 'tls-cert "/a b"', ""]);
  });

  test("option names in configExtra are validated", () => {
    expect(criuOptsSchema.safeParse({ imagesDir: "/i", configExtra: { "--evil\nx": true } }).success).toBe(false);
    expect(criuOptsSchema.safeParse({ imagesDir: "/i", bogus: 1 }).success).toBe(false);
  });
});

describe("errors from CRIU", () => {
  const log = [
    "(00.001) Version: 4.2.1",
    "(00.002) Error (criu/util.c:1534): rlimit: Can't setup RLIMIT_NOFILE for self: Operation not permitted",
    "(00.003) Error (criu/pstree.c:304): The root process 5 is not a session leader. Consider using --shell-job option",
    "(00.004) Error (criu/cr-dump.c:1975): Dumping FAILED.",
  ].join("\n");

  test("the log's error lines are kept, the benign rlimit line is dropped", () => {
    expect(criuLogErrors(log)).toEqual([
      "(00.003) Error (criu/pstree.c:304): The root process 5 is not a session leader. Consider using --shell-job option",
      "(00.004) Error (criu/cr-dump.c:1975): Dumping FAILED.",
    ]);
  });

  test("a failed restore's error lines end at its \"Restoring FAILED.\" line: the cgroup daemon's lines after it are dropped", () => {
    const restore = [
      "(00.010) 1: Error (criu/files-reg.c:2149): File bin/sleep has bad size 100 (expect 12345)",
      "(00.011) Error (criu/cr-restore.c:2447): Restoring FAILED.",
      "(00.022418) Error (criu/cgroup.c:1970): cg: cgroupd: recv req error: No such file or directory",
    ].join("\n");
    expect(criuLogErrors(restore)).toEqual([
      "(00.010) 1: Error (criu/files-reg.c:2149): File bin/sleep has bad size 100 (expect 12345)",
      "(00.011) Error (criu/cr-restore.c:2447): Restoring FAILED.",
    ]);
    // A log without that line (a dump, a lazy-pages daemon) keeps its last error lines.
    expect(criuLogErrors(`${log}\n(00.005) Error (criu/x.c:1): later`).at(-1)).toBe("(00.005) Error (criu/x.c:1): later");
  });

  test("the unix socket an 'External socket is used' error refuses is kept with it (CRIU 4.2's lines, as seen here)", () => {
    const unix = [
      "(00.023329) unix: \tRunaway socket: ino 226894 peer_ino 294266 family    1 type    1 state  1 name /us/s.sock",
      "(00.023330) unix: \tDumping extern: ino 226894",
      "(00.023626) Error (criu/sk-unix.c:874): unix: External socket is used. Consider using --ext-unix-sk option.",
    ].join("\n");
    expect(criuLogErrors(unix)).toEqual([
      "(00.023329) unix: \tRunaway socket: ino 226894 peer_ino 294266 family    1 type    1 state  1 name /us/s.sock",
      "(00.023626) Error (criu/sk-unix.c:874): unix: External socket is used. Consider using --ext-unix-sk option.",
    ]);
  });

  test("libcriu return values and CRIU's errno map to codes", () => {
    expect(classify(-111, 0)).toBe(Code.UNAVAILABLE);
    expect(classify(-70, 0)).toBe(Code.UNAVAILABLE);
    expect(classify(-74, 0)).toBe(Code.FAILED_PRECONDITION);
    expect(classify(-52, 3)).toBe(Code.NOT_FOUND);
    expect(classify(-52, 28)).toBe(Code.RESOURCE_EXHAUSTED);
    expect(classify(-52, 13)).toBe(Code.PERMISSION_DENIED);
    expect(classify(-52, 0)).toBe(Code.UNKNOWN);
  });

  test("a failed result becomes an error with the log lines and the log path", () => {
    const e = resultError("criu dump pid 5", {
      type: "result",
      ok: false,
      op: "dump",
      rc: -52,
      errno: 28,
      logFile: "/w/dump.log",
      logErrors: ["(00.1) Error (criu/image.c:1): write: No space left on device"],
      durationMs: 1,
    });
    expect(e.code).toBe(Code.RESOURCE_EXHAUSTED);
    expect(e.message).toBe("criu dump pid 5: resource exhausted (rc -52, errno 28): (00.1) Error (criu/image.c:1): write: No space left on device (log: /w/dump.log)");
  });

  test("a CRIU that ended without an answer is named as such, with where its log ends", () => {
    const result = { type: "result" as const, ok: false, op: "dump" as const, rc: -70, errno: 17, logFile: "/w/dump.log", logErrors: [], durationMs: 1 };
    const stderr = "Failed unpacking response: File exists\nCan't receive response: File exists\n";
    const e = resultError("criu dump pid 5", result, undefined, stderr, 42, "(00.29) page-xfer: buf 400/1");
    expect(e.code).toBe(Code.UNAVAILABLE);
    expect(e.message).toBe("criu dump pid 5: unavailable: CRIU (pid 42) ended without an answer: it was killed or crashed; its log ends: (00.29) page-xfer: buf 400/1 (log: /w/dump.log)");
    // Error lines CRIU logged before it went are worth more than the last line; no pid seen, none named.
    const logged = resultError("criu dump pid 5", { ...result, logErrors: ["(00.1) Error (criu/mem.c:1): boom"] }, undefined, stderr, undefined, "x");
    expect(logged.message).toBe("criu dump pid 5: unavailable: CRIU ended without an answer: it was killed or crashed: (00.1) Error (criu/mem.c:1): boom (log: /w/dump.log)");
  });

  test("the last line of a CRIU log", () => {
    const dir = mkdtempSync(join(tmpdir(), "cryo-log-"));
    try {
      writeFileSync(join(dir, "a.log"), `${"x".repeat(5000)}\n(00.1) first\n(00.2) last line\n\n`);
      expect(criuLogLastLine(join(dir, "a.log"))).toBe("(00.2) last line");
      writeFileSync(join(dir, "b.log"), "");
      expect(criuLogLastLine(join(dir, "b.log"))).toBeUndefined();
      expect(criuLogLastLine(join(dir, "missing.log"))).toBeUndefined();
      writeFileSync(join(dir, "c.log"), `${"y".repeat(300)}\n`);
      expect(criuLogLastLine(join(dir, "c.log"))).toBe(`${"y".repeat(200)}...`);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe("helper protocol", () => {
  test("requests are validated", () => {
    expect(helperRequestSchema.safeParse({ op: "dump", opts: { imagesDir: "/i", pid: 1 }, waitFor: ["network-lock"] }).success).toBe(true);
    expect(helperRequestSchema.safeParse({ op: "format-disk" }).success).toBe(false);
    expect(helperRequestSchema.safeParse({ op: "dump", waitFor: ["not-an-action"] }).success).toBe(false);
  });

  test("the helper marker is recognised from source and compiled argv", () => {
    expect(isCriuHelperInvocation(["bun", "/$bunfs/root/containerd-shim-cryo-v2", "__criu"])).toBe(true);
    expect(isCriuHelperInvocation(["/usr/bin/cryo", "__criu"])).toBe(true);
    expect(isCriuHelperInvocation(["bun", "/$bunfs/root/cryo", "inspect"])).toBe(false);
  });
});
