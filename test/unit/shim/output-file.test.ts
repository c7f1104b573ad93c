/** A file:// log is opened when the IO is prepared, before the process runs, and only as a regular file. */
import { expect, test } from "bun:test";
import { closeSync, constants as fsc, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Code, CryoError } from "../../../src/errors.ts";
import { nullLogger } from "../../../src/shim/logger.ts";
import { openOutputFile, prepareIo } from "../../../src/shim/stdio.ts";

async function errorOf(p: Promise<unknown>): Promise<CryoError> {
  return p.then(() => new CryoError(Code.OK, "no error"), (e: unknown) => e as CryoError);
}

test("a file:// log that is a FIFO (with or without a reader) is INVALID_ARGUMENT at once; one that cannot be made fails prepareIo", async () => {
  const dir = mkdtempSync(join(tmpdir(), "cryo-outfile-"));
  try {
    const fifo = join(dir, "fifo");
    expect(Bun.spawnSync(["mkfifo", fifo]).exitCode).toBe(0);
    const io = (stdout: string) => prepareIo({ stdin: "", stdout, stderr: "", terminal: false }, { id: "c1", namespace: "ns", log: nullLogger });
    // No reader: a blocking open for writing would wait for ever.
    const e = await errorOf(io(`file://${fifo}`));
    expect(e.code).toBe(Code.INVALID_ARGUMENT);
    expect(e.message).toBe(`log file ${fifo}: invalid argument: ${fifo} is a FIFO or a socket, not a regular file`);
    // A reader: the open succeeds, fstat refuses it.
    const reader = openSync(fifo, fsc.O_RDONLY | fsc.O_NONBLOCK);
    try {
      const r = await errorOf(io(`file://${fifo}`));
      expect(r.message).toBe(`log file ${fifo}: invalid argument: ${fifo} is a FIFO, not a regular file`);
    } finally {
      closeSync(reader);
    }
    writeFileSync(join(dir, "file"), "");
    const bad = await errorOf(io(`file://${join(dir, "file")}/sub/log`));
    expect(bad.code).toBe(Code.FAILED_PRECONDITION);
    expect(bad.message).toContain(`log file ${join(dir, "file")}/sub/log`);
    // A regular log: opened now, appended to.
    const log = join(dir, "logs", "c1.log");
    const fd = openOutputFile(log);
    closeSync(fd);
    const ok = await io(`file://${log}`);
    expect(ok.stdio[1]).toBeNumber();
    ok.abort();
    expect(readFileSync(log, "utf8")).toBe("");
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
