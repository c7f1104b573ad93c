import { afterAll, describe, expect, test } from "bun:test";
import { chmodSync, existsSync, mkdirSync, mkdtempSync, rmSync, statSync, symlinkSync, utimesSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { criuBinary, criuRestoresPersonality, criuStopsDumpsOnSigterm, ensurePrivateDir, PERSONALITY_PATCH, SIGTERM_ABORT_PATCH } from "../../../src/criu/binary.ts";

const dir = mkdtempSync("/tmp/cryo-criu-binary-");
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const uid = process.geteuid?.() ?? 0;
const mode = (p: string) => statSync(p).mode & 0o777;

describe("ensurePrivateDir", () => {
  test("makes a missing directory 0700", () => {
    const d = join(dir, "missing");
    expect(ensurePrivateDir(d, uid)).toBe(true);
    expect(mode(d)).toBe(0o700);
    expect(ensurePrivateDir(d, uid)).toBe(true); // and keeps it
  });

  test("replaces a directory open to others, with what it held", () => {
    const d = join(dir, "open");
    mkdirSync(d);
    chmodSync(d, 0o777);
    writeFileSync(join(d, "criu.kdat"), "forged");
    expect(ensurePrivateDir(d, uid)).toBe(true);
    expect(mode(d)).toBe(0o700);
    expect(existsSync(join(d, "criu.kdat"))).toBe(false);
  });

  test("replaces another user's directory", () => {
    const d = join(dir, "other");
    mkdirSync(d, { mode: 0o700 });
    writeFileSync(join(d, "criu.kdat"), "forged");
    expect(ensurePrivateDir(d, uid + 1)).toBe(false); // this process cannot make one owned by uid+1
    expect(existsSync(join(d, "criu.kdat"))).toBe(false);
  });

  test("replaces a symlink and a file, leaving the symlink's target alone", () => {
    const target = join(dir, "target");
    mkdirSync(target, { mode: 0o700 });
    writeFileSync(join(target, "keep"), "x");
    const link = join(dir, "link");
    symlinkSync(target, link);
    expect(ensurePrivateDir(link, uid)).toBe(true);
    expect(statSync(link).isDirectory()).toBe(true);
    expect(existsSync(join(target, "keep"))).toBe(true);
    const file = join(dir, "file");
    writeFileSync(file, "x");
    expect(ensurePrivateDir(file, uid)).toBe(true);
    expect(statSync(file).isDirectory()).toBe(true);
  });

  test("fails when the parent does not exist", () => {
    expect(ensurePrivateDir(join(dir, "no", "such"), uid)).toBe(false);
  });
});

describe("criuBinary", () => {
  test("CRYO_CRIU wins", () => {
    expect(criuBinary({ CRYO_CRIU: "/opt/criu" }, { binary: join(dir, "nope"), kdatDir: join(dir, "k0") })).toBe("/opt/criu");
  });

  test("cryo's build when installed and its cache directory is safe, else the host's", () => {
    const bin = join(dir, "criu");
    writeFileSync(bin, "#!/bin/sh\n");
    expect(criuBinary({}, { binary: join(dir, "absent"), kdatDir: join(dir, "k1") })).toBe("criu");
    expect(criuBinary({}, { binary: bin, kdatDir: join(dir, "k2") })).toBe(bin);
    expect(mode(join(dir, "k2"))).toBe(0o700);
    expect(criuBinary({}, { binary: bin, kdatDir: join(dir, "no", "such") })).toBe("criu");
  });
});

describe("criuStopsDumpsOnSigterm", () => {
  const build = (name: string, record: string | undefined) => {
    const d = join(dir, name);
    mkdirSync(d);
    if (record !== undefined) writeFileSync(join(d, "criu.build"), record);
    return join(d, "criu");
  };

  test("yes for a build whose record lists the patch as applied", () => {
    expect(criuStopsDumpsOnSigterm(build("applied", `criu 4.2.1\n0006-x.patch abc applied\n${SIGTERM_ABORT_PATCH} def applied\n`))).toBe(true);
  });

  test("no when the patch was skipped, is not listed, or there is no record", () => {
    expect(criuStopsDumpsOnSigterm(build("skipped", `criu 4.2.1\n${SIGTERM_ABORT_PATCH} def skipped\n`))).toBe(false);
    expect(criuStopsDumpsOnSigterm(build("unlisted", "criu 4.2.1\n0006-x.patch abc applied\n"))).toBe(false);
    expect(criuStopsDumpsOnSigterm(build("none", undefined))).toBe(false);
  });

  test("no for a criu found on PATH (the host's)", () => {
    expect(criuStopsDumpsOnSigterm("criu")).toBe(false);
  });

  test("a record written again is read again", () => {
    const binary = build("rewritten", "criu 4.2.1\n");
    expect(criuStopsDumpsOnSigterm(binary)).toBe(false);
    writeFileSync(join(dir, "rewritten", "criu.build"), `criu 4.2.1\n${SIGTERM_ABORT_PATCH} def applied\n`);
    const later = new Date(Date.now() + 5000);
    utimesSync(join(dir, "rewritten", "criu.build"), later, later);
    expect(criuStopsDumpsOnSigterm(binary)).toBe(true);
  });
});

describe("criuRestoresPersonality", () => {
  const build = (name: string, record: string) => {
    const d = join(dir, name);
    mkdirSync(d);
    writeFileSync(join(d, "criu.build"), record);
    return join(d, "criu");
  };

  test("yes only for a build whose record lists patch 0011 as applied, whatever the other patches", () => {
    const both = build("p-both", `criu 4.2.1\n${SIGTERM_ABORT_PATCH} def applied\n${PERSONALITY_PATCH} 123 applied\n`);
    expect(criuRestoresPersonality(both)).toBe(true);
    expect(criuStopsDumpsOnSigterm(both)).toBe(true);
    const abortOnly = build("p-abort", `criu 4.2.1\n${SIGTERM_ABORT_PATCH} def applied\n`);
    expect(criuRestoresPersonality(abortOnly)).toBe(false);
    expect(criuStopsDumpsOnSigterm(abortOnly)).toBe(true);
    const skipped = build("p-skipped", `criu 4.2.1\n${PERSONALITY_PATCH} 123 skipped\n`);
    expect(criuRestoresPersonality(skipped)).toBe(false);
    expect(criuRestoresPersonality("criu")).toBe(false);
  });
});
