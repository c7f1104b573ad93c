/**
 * `cryo pages ls`, `cryo pages rm NAME...` and `cryo pages prune --address A`: the page store of
 * checkpoints taken with local pages (local-pages.ts). Entries outlive the checkpoint images that refer
 * to them; these commands are how an operator sees and frees them. `--store DIR` (default:
 * CRYO_PAGE_STORE, else /var/lib/cryo/pages).
 */
import { lstatSync, rmSync } from "node:fs";
import { join } from "node:path";
import { z } from "zod";
import type { CliCommand } from "../cli/command-table.ts";
import { parseCliArgs } from "../cli/parse-args.ts";
import { checkSocketListens, checkSocketPath } from "../cli/named-path.ts";
import { fsError, invalidArgument, notFound } from "../errors.ts";
import { DEFAULT_PAGE_STORE, listPageStore, pageStoreRoot } from "./local-pages.ts";
import { pageReferences, prunePageStore } from "./pages-prune.ts";

const LS_USAGE = "cryo pages ls [--store DIR]";
const RM_USAGE = "cryo pages rm [--store DIR] NAME...";
const PRUNE_USAGE = "cryo pages prune --address ADDRESS [--address ADDRESS...] [--store DIR] [--older-than MINUTES] [--dry-run]";
const storeFlag = { store: { type: "string" } } as const;
const storeSchema = z.object({ store: z.string().startsWith("/", "an absolute path is needed").optional() });

function mib(bytes: number): string {
  return `${(bytes / 2 ** 20).toFixed(1)} MiB`;
}

/** `cryo pages ls`: one line per entry (name, files, size, last change). */
export const pagesListCommand: CliCommand = {
  path: ["pages", "ls"],
  summary: "list the page store's entries (checkpoints taken with cryo.checkpoint/local-pages)",
  usage: `${LS_USAGE}

Lists the entries of the page store (--store, default $CRYO_PAGE_STORE or ${DEFAULT_PAGE_STORE}): one per checkpoint
taken with cryo.checkpoint/local-pages, whose memory stayed on this host. Each line: name, files, size, last change.`,
  async run(args, io) {
    const { values } = parseCliArgs(args, storeFlag, storeSchema, LS_USAGE);
    const root = values.store ?? pageStoreRoot(process.env);
    const entries = listPageStore(root);
    io.out(`page store ${root}: ${entries.length} entr${entries.length === 1 ? "y" : "ies"}, ${mib(entries.reduce((s, e) => s + e.bytes, 0))}`);
    for (const e of entries) io.out(`${e.name}\t${e.files} file(s)\t${mib(e.bytes)}\t${e.modified.toISOString()}`);
    return 0;
  },
};

/** `cryo pages rm NAME...`: removes entries; a restore of their checkpoints then fails. */
export const pagesRemoveCommand: CliCommand = {
  path: ["pages", "rm"],
  summary: "remove page store entries (their checkpoints can no longer be restored)",
  usage: `${RM_USAGE}

Removes the named entries (as \`cryo pages ls\` prints them) from the page store: the checkpoints that refer to them
can no longer be restored. \`cryo pages prune\` removes only the entries no checkpoint image refers to.`,
  async run(args, io) {
    const { values, positionals } = parseCliArgs(args, storeFlag, storeSchema, RM_USAGE, { min: 1 });
    const root = values.store ?? pageStoreRoot(process.env);
    for (const name of positionals) {
      if (name.includes("/") || name === "." || name === "..") throw invalidArgument(`page store entry ${JSON.stringify(name)}`, { detail: "a name as `cryo pages ls` prints it" });
    }
    // An entry this user may not see is not a missing one (existsSync said "no entry" for both).
    const missing = positionals.filter((name) => {
      try {
        lstatSync(join(root, name));
        return false;
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === "ENOENT") return true;
        throw fsError(`page store ${root}`, err, root);
      }
    });
    if (missing.length > 0) throw notFound(`page store ${root}`, { detail: `no entry ${missing.join(", ")}` });
    for (const name of positionals) {
      try {
        rmSync(join(root, name), { recursive: true, force: true });
      } catch (err) {
        throw fsError(`page store ${root}`, err, join(root, name));
      }
      io.out(`removed ${name}`);
    }
    return 0;
  },
};

const pruneSchema = z.object({
  address: z.array(z.string().min(1)).min(1, "--address is required: the containerd(s) whose checkpoint images may refer to entries"),
  store: z.string().startsWith("/", "an absolute path is needed").optional(),
  // A string of digits: z.coerce took "" (an unset shell variable) for 0, which prunes entries of checkpoints in progress.
  "older-than": z
    .string()
    .regex(/^\d+(\.\d+)?$/, "want minutes, 0 or more (a number)")
    .transform(Number)
    .default(60),
  "dry-run": z.boolean().default(false),
});

/**
 * `cryo pages prune`: removes the entries that no checkpoint image of the given containerd(s) refers
 * to and that are older than --older-than minutes (default 60: a checkpoint in progress has its entry
 * before containerd has its image). Nothing is removed when any image cannot be read.
 */
export const pagesPruneCommand: CliCommand = {
  path: ["pages", "prune"],
  summary: "remove page store entries no checkpoint image of the given containerd(s) refers to",
  usage: `${PRUNE_USAGE}

Removes the page store's entries that no checkpoint image of the containerd(s) at --address refers to and that are
older than --older-than minutes (default 60: a checkpoint still being taken has its entry before containerd has its
image). Nothing is removed when any image cannot be read. --dry-run lists what would go.`,
  async run(args, io) {
    const { values } = parseCliArgs(
      args,
      { address: { type: "string", multiple: true }, store: { type: "string" }, "older-than": { type: "string" }, "dry-run": { type: "boolean" } },
      pruneSchema,
      PRUNE_USAGE,
    );
    const root = values.store ?? pageStoreRoot(process.env);
    // ctr waits 10 s to dial a socket that is not there: say so at once.
    for (const a of values.address) checkSocketPath(`containerd at ${a}`, a.replace(/^unix:\/\//, ""), "nothing was removed");
    for (const a of values.address) await checkSocketListens(`containerd at ${a}`, a.replace(/^unix:\/\//, ""), "nothing was removed");
    const references = (await Promise.all(values.address.map((a) => pageReferences(a)))).flat();
    const r = prunePageStore(root, references, values["older-than"] * 60_000, { dryRun: values["dry-run"], addresses: values.address });
    for (const k of r.kept) io.out(`kept ${k.name}: ${k.why}`);
    for (const name of r.removed) io.out(`${values["dry-run"] ? "would remove" : "removed"} ${name}`);
    io.out(`page store ${root}: ${r.removed.length} ${values["dry-run"] ? "to remove" : "removed"}, ${r.kept.length} kept`);
    return 0;
  },
};
