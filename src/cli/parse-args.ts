import { type ParseArgsOptionsConfig, parseArgs } from "node:util";
import type { z } from "zod";
import { invalidArgument } from "../errors.ts";

/** What parseCliArgs returns: the checked flags and the positional arguments. */
export interface ParsedArgs<T> {
  values: T;
  positionals: string[];
}

/**
 * node's parseArgs (strict), which keeps the last of a repeated single-valued option without a word: here a
 * repeat of an option that is not `multiple` is an error naming it (`--hook admit --hook restore` would
 * otherwise test the restore hook). Throws plain Errors, as parseArgs does.
 */
export function parseStrictArgs<O extends ParseArgsOptionsConfig>(args: string[], options: O, allowPositionals: boolean) {
  const parsed = parseArgs({ args, options, allowPositionals, strict: true, tokens: true });
  const seen = new Set<string>();
  for (const t of parsed.tokens) {
    if (t.kind !== "option" || options[t.name]?.multiple) continue;
    if (seen.has(t.name)) throw new Error(`Option '--${t.name}' is given more than once; it takes one ${options[t.name]?.type === "boolean" ? "mention" : "value"}`);
    seen.add(t.name);
  }
  return parsed;
}

/**
 * Parses a command's arguments with parseStrictArgs, then checks the flags with schema; any failure is
 * INVALID_ARGUMENT carrying the usage line. positionals bounds how many positional arguments are allowed.
 */
export function parseCliArgs<S extends z.ZodType>(
  args: string[],
  options: ParseArgsOptionsConfig,
  schema: S,
  usage: string,
  positionals: { min?: number; max?: number } = { max: 0 },
): ParsedArgs<z.infer<S>> {
  let parsed: { values: unknown; positionals: string[] };
  try {
    parsed = parseStrictArgs(args, options, (positionals.max ?? Infinity) > 0);
  } catch (err) {
    throw invalidArgument("arguments", { detail: `${err instanceof Error ? err.message : String(err)}\nusage: ${usage}` });
  }
  const n = parsed.positionals.length;
  if (n < (positionals.min ?? 0) || n > (positionals.max ?? Infinity)) {
    const { min = 0, max = Infinity } = positionals;
    const want = min === max ? `${min}` : max === Infinity ? `at least ${min}` : min === 0 ? `at most ${max}` : `${min} to ${max}`;
    throw invalidArgument("arguments", { detail: `expected ${want} positional argument(s), got ${n}\nusage: ${usage}` });
  }
  const checked = schema.safeParse(parsed.values);
  if (!checked.success) {
    // Issues name the flag as typed ("--format: ..."), one per line.
    const issues = checked.error.issues.map((i) => {
      if (i.path.length === 0) return i.message;
      const flag = `--${i.path.join(".")}`;
      // A required flag left out reads as such, not as zod's "expected string, received undefined".
      if (i.code === "invalid_type" && i.message.endsWith("received undefined")) return `${flag} is required`;
      // A number flag given a word: node's parser hands over the word, the schema's coerce makes it NaN.
      if (i.code === "invalid_type" && (i as { received?: unknown }).received === "NaN") return `${flag}: want a number`;
      return `${flag}: ${i.message}`;
    });
    throw invalidArgument("arguments", { detail: `${issues.join("; ")}\nusage: ${usage}` });
  }
  return { values: checked.data, positionals: parsed.positionals };
}
