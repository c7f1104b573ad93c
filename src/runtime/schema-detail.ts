/**
 * src/runtime's zod schemas: built on first use, parsed with zod/mini, issues reported in English.
 *
 * Every shim daemon loads src/runtime at start, on the critical path of each new container group's
 * first call. zod/mini loads and builds schemas faster than zod, and building a schema is still not
 * free (zod's constructors run cold at start), so the schemas are built when first used: a daemon's
 * start builds none, its first Create only runc's options. zod/mini does not register zod's English
 * messages (an issue reads "Invalid input" without them); the English error map is passed per parse,
 * not set globally, so details read as zod gives them ("Too small: expected string to have >=1
 * characters").
 */
import * as z from "zod/mini";
import en from "zod/v4/locales/en.js";

/** A schema built by build on the first call, the same schema afterwards. */
export function lazySchema<T extends z.ZodMiniType>(build: () => T): () => T {
  let schema: T | undefined;
  return () => (schema ??= build());
}

let english: z.core.$ZodErrorMap | undefined;

/** Parses value; on failure, detail is "path: message; ..." (zod's English messages; root names an issue at the top). */
export function parseDetail<T extends z.ZodMiniType>(schema: T, value: unknown, root = ""): { ok: true; data: z.output<T> } | { ok: false; detail: string } {
  const r = z.safeParse(schema, value, { error: (english ??= en().localeError) });
  if (r.success) return { ok: true, data: r.data };
  return { ok: false, detail: r.error.issues.map((i) => `${i.path.join(".") || root}: ${i.message}`).join("; ") };
}
