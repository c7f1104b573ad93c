/** readRegularFile: a FIFO, a socket or a device is refused at once (FAILED_PRECONDITION), never read. */
import { expect, test } from "bun:test";
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Code, CryoError } from "../../../src/errors.ts";
import { readBundleSpec } from "../../../src/shim/bundle-spec.ts";
import { readRegularFile } from "../../../src/sys/regular-file.ts";

function errorOf(f: () => unknown): CryoError {
  try {
    f();
  } catch (err) {
    return err as CryoError;
  }
  throw new Error("no error");
}

test("a FIFO, a socket, a device and a directory are refused without blocking; a regular file is read", async () => {
  const dir = mkdtempSync(join(tmpdir(), "cryo-regular-"));
  try {
    const fifo = join(dir, "fifo");
    expect(Bun.spawnSync(["mkfifo", fifo]).exitCode).toBe(0);
    // No writer ever comes: a blocking open would hang this test.
    const f = errorOf(() => readRegularFile(fifo, "bundle /b: config.json"));
    expect(f.code).toBe(Code.FAILED_PRECONDITION);
    expect(f.message).toBe(`bundle /b: config.json: failed precondition: ${fifo} is a FIFO, not a regular file`);
    const sock = join(dir, "sock");
    const server = Bun.listen({ unix: sock, socket: { data() {} } });
    try {
      const s = errorOf(() => readRegularFile(sock));
      expect(s.code).toBe(Code.FAILED_PRECONDITION);
      expect(s.message).toContain("is a socket, not a regular file");
    } finally {
      server.stop(true);
    }
    const zero = join(dir, "zero");
    symlinkSync("/dev/zero", zero);
    expect(errorOf(() => readRegularFile(zero)).message).toContain("is a device, not a regular file");
    mkdirSync(join(dir, "d"));
    expect(errorOf(() => readRegularFile(join(dir, "d"))).code).toBe(Code.FAILED_PRECONDITION);
    writeFileSync(join(dir, "f"), "text");
    expect(readRegularFile(join(dir, "f")).toString()).toBe("text");
    expect((errorOf(() => readRegularFile(join(dir, "none"))) as unknown as { code: string }).code).toBe("ENOENT");
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("a bundle whose config.json is a FIFO is FAILED_PRECONDITION naming it, at once", () => {
  const bundle = mkdtempSync(join(tmpdir(), "cryo-fifo-bundle-"));
  try {
    expect(Bun.spawnSync(["mkfifo", join(bundle, "config.json")]).exitCode).toBe(0);
    const e = errorOf(() => readBundleSpec(bundle));
    expect(e.code).toBe(Code.FAILED_PRECONDITION);
    expect(e.message).toBe(`bundle ${bundle}: config.json: failed precondition: ${bundle}/config.json is a FIFO, not a regular file`);
  } finally {
    rmSync(bundle, { recursive: true, force: true });
  }
});
