/**
 * `cryo pages ls` and `cryo pages rm NAME...`: the page store of checkpoints taken with local pages
 * (local-pages.ts). Entries outlive the checkpoint images that refer to them; these commands are how an
 * operator sees and frees them. `--store DIR` (default: CRYO_PAGE_STORE, else /var/lib/cryo/pages).
 */
import { existsSync, rmSync } from "node:fs";
import { join } from "node:path";
import { z } from "zod";
import type { CliCommand } from "../cli/command-table.ts";
import { parseCliArgs } from "../cli/parse-args.ts";
import { invalidArgument, notFound } from "../errors.ts";
import { listPageStore, pageStoreRoot } from "./local-pages.ts";

const LS_USAGE = "cryo pages ls [--store DIR]";
const RM_USAGE = "cryo pages rm [--store DIR] NAME...";
const storeFlag = { store: { type: "string" } } as const;
const storeSchema = z.object({ store: z.string().startsWith("/", "--store takes an absolute path").optional() });

function mib(bytes: number): string {
  return `${(bytes / 2 ** 20).toFixed(1)} MiB`;
}

/** `cryo pages ls`: one line per entry (name, files, size, last change). */
export const pagesListCommand: CliCommand = {
  path: ["pages", "ls"],
  summary: "list the page store's entries (checkpoints taken with cryo.checkpoint/local-pages)",
  usage: LS_USAGE,
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
  usage: RM_USAGE,
  async run(args, io) {
    const { values, positionals } = parseCliArgs(args, storeFlag, storeSchema, RM_USAGE, { min: 1 });
    const root = values.store ?? pageStoreRoot(process.env);
    for (const name of positionals) {
      if (name.includes("/") || name === "." || name === "..") throw invalidArgument(`page store entry ${JSON.stringify(name)}`, { detail: "a name as `cryo pages ls` prints it" });
    }
    const missing = positionals.filter((name) => !existsSync(join(root, name)));
    if (missing.length > 0) throw notFound(`page store ${root}`, { detail: `no entry ${missing.join(", ")}` });
    for (const name of positionals) {
      rmSync(join(root, name), { recursive: true, force: true });
      io.out(`removed ${name}`);
    }
    return 0;
  },
};
