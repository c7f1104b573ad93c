import { afterAll, expect, test } from "bun:test";
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, truncateSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { checkCheckpointEntries } from "../../../src/checkpoint/dir-check.ts";
import { METADATA_FILE, MAX_METADATA_BYTES, readCheckpointMetadata } from "../../../src/checkpoint/metadata.ts";
import { Code, CryoError } from "../../../src/errors.ts";
import { errorOf } from "../../harness/error-of.ts";
import { readRestoreSource } from "../../../src/shim/restore-container.ts";
import { sampleCheckpointMetadata } from "../../harness/checkpoint-metadata.ts";

const root = mkdtempSync("/tmp/cryo-dircheck-");
afterAll(() => rmSync(root, { recursive: true, force: true }));

/** A directory shaped like an extracted checkpoint: flat images, the metadata, one subdirectory. */
function checkpointDir(): string {
  const d = mkdtempSync(join(root, "c-"));
  for (const f of ["inventory.img", "pages-1.img", "pagemap-1.img", METADATA_FILE, "descriptors.json"]) writeFileSync(join(d, f), "x");
  mkdirSync(join(d, "sub"));
  writeFileSync(join(d, "sub", "f"), "x");
  return d;
}

const refusal = errorOf;

test("a checkpoint of regular files and directories passes", () => {
  expect(() => checkCheckpointEntries(checkpointDir())).not.toThrow();
});

test("a symbolic link anywhere in the checkpoint is refused, dangling or not, before anything follows it", () => {
  const cases: [string, string][] = [
    ["pages-1.img.tmp", "/etc/profile.d/cryo-test-never-written.sh"], // dangling: a write would create it
    [`${METADATA_FILE}.tmp`, "/etc/passwd"],
    ["pages-2.img", "/etc/shadow"],
    ["sub/link", "/"],
  ];
  for (const [name, target] of cases) {
    const d = checkpointDir();
    symlinkSync(target, join(d, name));
    const e = refusal(() => checkCheckpointEntries(d));
    expect(e.code).toBe(Code.INVALID_ARGUMENT);
    expect(e.message).toContain(`${join(d, name)} is a symbolic link: a checkpoint holds only regular files and directories`);
  }
});

test("a FIFO and a device node are refused; so is a checkpoint directory that is itself a link", () => {
  const d = checkpointDir();
  Bun.spawnSync(["mkfifo", join(d, "descriptors.json.fifo")]);
  expect(refusal(() => checkCheckpointEntries(d)).message).toContain("is a FIFO");
  const d2 = checkpointDir();
  Bun.spawnSync(["mknod", join(d2, "zero"), "c", "1", "5"]);
  expect(refusal(() => checkCheckpointEntries(d2)).message).toContain("is a character device");
  const link = join(root, `link-${Date.now()}`);
  symlinkSync(checkpointDir(), link);
  expect(refusal(() => checkCheckpointEntries(link)).message).toContain("is a symbolic link");
});

test("readRestoreSource refuses a planted link before it reads the metadata", async () => {
  const d = checkpointDir();
  writeFileSync(join(d, METADATA_FILE), "not json at all");
  symlinkSync("/dev/zero", join(d, "descriptors.json.x"));
  const e = await readRestoreSource(d).then(() => undefined, (err) => CryoError.from(err));
  expect(e?.code).toBe(Code.INVALID_ARGUMENT);
  expect(e?.message).toContain("is a symbolic link"); // not "not JSON": the metadata was not read
});

test("readRestoreSource reads the images beside the metadata: a checkpoint whose metadata places them elsewhere is refused, naming where", async () => {
  const d = checkpointDir();
  writeFileSync(join(d, METADATA_FILE), JSON.stringify({ ...sampleCheckpointMetadata(), imagesDir: "sub" }));
  const e = await readRestoreSource(d).then(() => undefined, (err) => CryoError.from(err));
  expect(e?.code).toBe(Code.INVALID_ARGUMENT);
  expect(e?.message).toBe(`checkpoint ${d}: invalid argument: its metadata places CRIU's images in "sub"; a restore reads them beside cryo-checkpoint.json (imagesDir ".", as every cryo dump writes it)`);
  writeFileSync(join(d, METADATA_FILE), JSON.stringify({ ...sampleCheckpointMetadata(), imagesDir: "." }));
  writeFileSync(join(d, "descriptors.json"), JSON.stringify(["/dev/null", "pipe:[7]", "pipe:[8]"]));
  const source = await readRestoreSource(d);
  expect([source.metadata.imagesDir, source.descriptors]).toEqual([".", ["/dev/null", "pipe:[7]", "pipe:[8]"]]);
});

test("readRestoreSource: a descriptors.json that is not JSON, or not an array of strings, is INVALID_ARGUMENT naming it", async () => {
  const d = checkpointDir();
  writeFileSync(join(d, METADATA_FILE), JSON.stringify({ ...sampleCheckpointMetadata(), imagesDir: "." }));
  for (const [text, detail] of [["x", "not JSON"], ["[1]", "not a JSON array of strings"]] as const) {
    writeFileSync(join(d, "descriptors.json"), text);
    const e = await readRestoreSource(d).then(() => undefined, (err) => CryoError.from(err));
    expect([e?.code, e?.message]).toEqual([Code.INVALID_ARGUMENT, `checkpoint ${d}: descriptors.json: invalid argument: ${detail}`]);
  }
});

test("metadata over the size limit is refused without being read", async () => {
  const d = checkpointDir();
  truncateSync(join(d, METADATA_FILE), MAX_METADATA_BYTES + 1);
  const e = await readCheckpointMetadata(d).then(() => undefined, (err) => CryoError.from(err));
  expect(e?.code).toBe(Code.INVALID_ARGUMENT);
  expect(e?.message).toContain(`${MAX_METADATA_BYTES + 1} bytes, more than ${MAX_METADATA_BYTES}`);
});

test("cryo inspect of a directory that is no checkpoint says so, without walking it (a FIFO in it is not reached)", async () => {
  const { inspectCommand } = await import("../../../src/checkpoint/inspect-command.ts");
  const d = mkdtempSync(join(root, "not-"));
  mkdirSync(join(d, "deep"));
  Bun.spawnSync(["mkfifo", join(d, "deep", "fifo")]);
  const io = { out: () => {}, err: () => {} };
  const e = await inspectCommand.run([d], io).catch((x: unknown) => x as CryoError);
  expect((e as CryoError).code).toBe(Code.NOT_FOUND);
  expect((e as CryoError).message).toBe(`checkpoint ${d}: not found: not a checkpoint: neither ${METADATA_FILE} (cryo's) nor pstree.img (CRIU's images) in it`);
  const gone = await inspectCommand.run([join(d, "absent")], io).catch((x: unknown) => x as CryoError);
  expect((gone as CryoError).message).toBe(`checkpoint ${join(d, "absent")}: not found`);
  // A file given for DIR is named as such (it read "not a checkpoint: neither ... in it").
  writeFileSync(join(d, "file"), "x");
  const file = await inspectCommand.run([join(d, "file")], io).catch((x: unknown) => x as CryoError);
  expect([(file as CryoError).code, (file as CryoError).message]).toEqual([Code.FAILED_PRECONDITION, `checkpoint ${join(d, "file")}: failed precondition: ${join(d, "file")} is a file, not a directory`]);
});
