/**
 * Which plugins apply to a container: namespace globs, image globs and annotation rules.
 *
 * Globs: `*` matches any run of characters (including `/` and `:`), `?` exactly one; everything
 * else is literal. A rule that is absent or empty matches everything; every present rule must match.
 */
import type { MatchRules } from "./config.ts";

/** What a container looks like to the matcher. */
export interface MatchSubject {
  namespace: string;
  annotations: Record<string, string>;
  /** The image reference, or null when unknown (then image rules do not match). */
  image: string | null;
}

const globCache = new Map<string, RegExp>();

/** True when `text` matches the glob `pattern` as a whole. */
export function globMatch(pattern: string, text: string): boolean {
  let re = globCache.get(pattern);
  if (!re) {
    const body = pattern.replace(/[.+^${}()|[\]\\*?]/g, (c) => (c === "*" ? ".*" : c === "?" ? "." : `\\${c}`));
    re = new RegExp(`^${body}$`, "s");
    globCache.set(pattern, re);
  }
  return re.test(text);
}

/** True when a plugin's match rules select this container. */
export function matches(rules: MatchRules, subject: MatchSubject): boolean {
  if (rules.namespaces?.length && !rules.namespaces.some((g) => globMatch(g, subject.namespace))) return false;
  if (rules.images?.length) {
    const image = subject.image;
    if (image === null || !rules.images.some((g) => globMatch(g, image))) return false;
  }
  for (const [key, valueGlob] of Object.entries(rules.annotations ?? {})) {
    const value = subject.annotations[key];
    if (value === undefined || !globMatch(valueGlob, value)) return false;
  }
  return true;
}
