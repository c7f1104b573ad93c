import { describe, expect, test } from "bun:test";
import { createCryoCommands, runCli, type CliIo } from "../../../src/cli/index.ts";
import { archiveFlags, ctrErrorLine, parseCtrMajorVersion, parseImageList, parseTaskList } from "../../../src/cli/ctr-client.ts";
import { parseEventLine } from "../../../src/cli/task-create-watch.ts";
import { withMigrateHint } from "../../../src/cli/migrate.ts";
import { Code, CryoError } from "../../../src/errors.ts";

function captureIo(): CliIo & { stdout: string[]; stderr: string[] } {
  const stdout: string[] = [];
  const stderr: string[] = [];
  return { stdout, stderr, out: (t) => stdout.push(t), err: (t) => stderr.push(t) };
}

describe("cryo migrate: reading ctr", () => {
  test("ctr task ls rows", () => {
    const out = "TASK       PID      STATUS    \nc1         4242     RUNNING\nc2         0        CREATED\n";
    expect(parseTaskList(out)).toEqual([
      { id: "c1", pid: 4242, status: "RUNNING" },
      { id: "c2", pid: 0, status: "CREATED" },
    ]);
    expect(parseTaskList("TASK    PID    STATUS    \n")).toEqual([]);
  });

  test("ctr images ls rows, with a size that has a space in it", () => {
    const out =
      "REF                        TYPE                                    DIGEST            SIZE    PLATFORMS   LABELS \n" +
      "localhost/cryo-test:latest application/vnd.oci.image.index.v1+json sha256:cd44d05d 1.1 MiB linux/amd64 -      \n";
    expect(parseImageList(out)).toEqual([{ ref: "localhost/cryo-test:latest", mediaType: "application/vnd.oci.image.index.v1+json", digest: "sha256:cd44d05d" }]);
  });

  test("ctr's error line is the last `ctr: ` line", () => {
    expect(ctrErrorLine('time="x" level=error msg="a"\nctr: OCI runtime restore failed: boom: unknown\n')).toBe("ctr: OCI runtime restore failed: boom: unknown");
    expect(ctrErrorLine("", "just this\n")).toBe("just this");
    expect(ctrErrorLine("")).toBe("no output");
    const panic = "panic: provided file is not a console\n\ngoroutine 1 [running]:\nmain.main()\n\t/src/cmd/ctr/main.go:32 +0x125\n";
    expect(ctrErrorLine(panic)).toBe("panic: provided file is not a console");
  });

  test("ctr's major version, and --local for archives from ctr 2 on (its transfer service cut exports short)", () => {
    expect(parseCtrMajorVersion("ctr github.com/containerd/containerd 1.6.20~ds1\n")).toBe(1);
    expect(parseCtrMajorVersion("ctr github.com/containerd/containerd/v2 v2.3.4\n")).toBe(2);
    expect(parseCtrMajorVersion("ctr github.com/containerd/containerd/v2 v2.4.0-beta.0")).toBe(2);
    expect(parseCtrMajorVersion("ctr something")).toBeUndefined();
    expect(archiveFlags(1)).toEqual([]);
    expect(archiveFlags(undefined)).toEqual([]);
    expect(archiveFlags(2)).toEqual(["--local"]);
  });

  test("ctr events lines", () => {
    const line =
      '2026-11-28 14:18:25.053404121 +0000 UTC mig /tasks/create {"container_id":"t1m","bundle":"/b","checkpoint":"/tmp/ctrd-checkpoint2221355237","pid":0}';
    expect(parseEventLine(line)).toEqual({
      namespace: "mig",
      topic: "/tasks/create",
      event: { container_id: "t1m", bundle: "/b", checkpoint: "/tmp/ctrd-checkpoint2221355237", pid: 0 },
    });
    expect(parseEventLine("garbage")).toBeUndefined();
    expect(parseEventLine('2026-11-28 14:18:25.0 +0000 UTC mig /tasks/create {"broken"')).toBeUndefined();
  });
});

describe("cryo migrate: arguments", () => {
  test("missing or bad arguments are usage errors, before any containerd is asked", async () => {
    const table = createCryoCommands();
    const io = captureIo();
    expect(await runCli(table, ["migrate", "c1", "--to", "/b.sock"], io)).toBe(2);
    expect(io.stderr.at(-1)).toContain("from");
    expect(await runCli(table, ["migrate", "--from", "/a.sock", "--to", "/b.sock"], io)).toBe(2);
    expect(await runCli(table, ["migrate", "c1", "c2", "--from", "/a.sock", "--to", "/b.sock"], io)).toBe(2);
    expect(await runCli(table, ["migrate", "c1", "--from", "/a.sock", "--to", "unix:///a.sock"], io)).toBe(2);
    expect(io.stderr.at(-1)).toBe("cryo migrate: --to unix:///a.sock: invalid argument: is the source containerd; give another containerd's address");
    expect(await runCli(table, ["migrate", "c1", "--from", "/a.sock", "--to", "/b.sock", "--new-id", "bad/id"], io)).toBe(2);
    expect(await runCli(table, ["migrate", "c1", "--from", "/a.sock", "--to", "/b.sock", "--timeout", "-1"], io)).toBe(2);
  });

  test("a socket path that does not exist fails before ctr is run, naming the flag (ctr waited its 10 s dial timeout to say so)", async () => {
    const io = captureIo();
    expect(await runCli(createCryoCommands(), ["migrate", "c1", "--from", "unix:///nonexistent/a.sock", "--to", "/b.sock"], io)).toBe(1);
    expect(io.stderr.at(-1)).toBe("cryo migrate: containerd at unix:///nonexistent/a.sock (--from): unavailable: no such socket; nothing was done");
  });

  test("a file or a directory given for a socket is named as such before ctr is run (ctr's \"connection refused\" before)", async () => {
    const { mkdtempSync, rmSync, writeFileSync } = await import("node:fs");
    const dir = mkdtempSync("/tmp/cryo-migrate-args-");
    try {
      writeFileSync(`${dir}/file`, "");
      const io = captureIo();
      expect(await runCli(createCryoCommands(), ["migrate", "c1", "--from", `${dir}/file`, "--to", dir], io)).toBe(1);
      expect(io.stderr.at(-1)).toBe(`cryo migrate: containerd at ${dir}/file (--from): failed precondition: ${dir}/file is a file, not a containerd socket; nothing was done`);
      expect(await runCli(createCryoCommands(), ["migrate", "c1", "--from", `unix://${dir}`, "--to", `${dir}/file`], io)).toBe(1);
      expect(io.stderr.at(-1)).toBe(`cryo migrate: containerd at unix://${dir} (--from): failed precondition: ${dir} is a directory, not a containerd socket; nothing was done`);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test("a socket nothing listens on (left by a containerd that died) is UNAVAILABLE in words, before ctr is run (ctr's \"failed to dial ... connection refused\" under \"container c1 at\" before)", async () => {
    const { mkdtempSync, rmSync } = await import("node:fs");
    const { createServer } = await import("node:net");
    const dir = mkdtempSync("/tmp/cryo-migrate-args-");
    // A listener for the other end, so that the dead one is the only thing wrong.
    const server = createServer((c) => c.destroy());
    try {
      // A socket file whose process is gone: bound by a python3 that exits without removing it.
      const bound = Bun.spawnSync(["python3", "-c", `import socket; socket.socket(socket.AF_UNIX).bind("${dir}/dead.sock")`]);
      expect(bound.exitCode).toBe(0);
      await new Promise<void>((resolve) => server.listen(`${dir}/live.sock`, resolve));
      const io = captureIo();
      expect(await runCli(createCryoCommands(), ["migrate", "c1", "--from", `${dir}/dead.sock`, "--to", `${dir}/live.sock`, "--new-id", "c2"], io)).toBe(1);
      expect(io.stderr.at(-1)).toBe(`cryo migrate: containerd at ${dir}/dead.sock (--from): unavailable: nothing listens on ${dir}/dead.sock (a socket left by a containerd that is no longer running?); nothing was done`);
      expect(await runCli(createCryoCommands(), ["migrate", "c1", "--from", `${dir}/live.sock`, "--to", `unix://${dir}/dead.sock`, "--new-id", "c2"], io)).toBe(1);
      expect(io.stderr.at(-1)).toBe(`cryo migrate: containerd at unix://${dir}/dead.sock (--to): unavailable: nothing listens on ${dir}/dead.sock (a socket left by a containerd that is no longer running?); nothing was done`);
      expect(await runCli(createCryoCommands(), ["pages", "prune", "--store", `${dir}/store`, "--address", `${dir}/dead.sock`, "--dry-run"], io)).toBe(1);
      expect(io.stderr.at(-1)).toBe(`cryo pages prune: containerd at ${dir}/dead.sock: unavailable: nothing listens on ${dir}/dead.sock (a socket left by a containerd that is no longer running?); nothing was removed`);
      expect(io.stdout).toEqual([]);
    } finally {
      server.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test("a relative socket path is checked as an absolute one is (it went to ctr unchecked: \"connection refused\", or 10 s then \"context deadline exceeded\")", async () => {
    const { mkdtempSync, rmSync, writeFileSync } = await import("node:fs");
    const { relative } = await import("node:path");
    const dir = mkdtempSync("/tmp/cryo-migrate-args-");
    try {
      writeFileSync(`${dir}/file`, "");
      const file = relative(process.cwd(), `${dir}/file`);
      const io = captureIo();
      expect(await runCli(createCryoCommands(), ["migrate", "c1", "--from", file, "--to", `${dir}/b.sock`], io)).toBe(1);
      expect(io.stderr.at(-1)).toBe(`cryo migrate: containerd at ${file} (--from): failed precondition: ${file} is a file, not a containerd socket; nothing was done`);
      const missing = relative(process.cwd(), `${dir}/a.sock`);
      expect(await runCli(createCryoCommands(), ["migrate", "c1", "--from", missing, "--to", `${dir}/file`], io)).toBe(1);
      expect(io.stderr.at(-1)).toBe(`cryo migrate: containerd at ${missing} (--from): unavailable: no such socket; nothing was done`);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe("cryo migrate: checkpoint image names", () => {
  test("container ids become valid image name components", async () => {
    const { refComponent } = await import("../../../src/cli/migrate.ts");
    expect(refComponent("c1")).toBe("c1");
    expect(refComponent("My_Container.v2")).toBe("my-container-v2");
    expect(refComponent("__")).toBe("container");
  });
});

describe("cryo migrate's hint", () => {
  test("the shim's --rw hint names cryo migrate's --rw too, only when --rw was not given", () => {
    const hint = new CryoError(Code.FAILED_PRECONDITION, "restore container c: failed precondition: the container had /tmp/x open, ... (ctr containers checkpoint --rw, then ctr containers restore --rw); a file of a bind mount must be in its source");
    const e = withMigrateHint(hint, false) as CryoError;
    expect(e.code).toBe(Code.FAILED_PRECONDITION);
    expect(e.message).toEndWith("a file of a bind mount must be in its source (with cryo migrate: --rw)");
    expect(withMigrateHint(hint, true)).toBe(hint);
    const other = new CryoError(Code.UNKNOWN, "restore container c: criu failed");
    expect(withMigrateHint(other, false)).toBe(other);
  });
});
