/** A name unique across concurrent test runs: `<prefix>-<pid>-<random>` (lowercase, safe for containerd ids and namespaces). */
export function uniqueId(prefix = "t"): string {
  return `${prefix}-${process.pid}-${crypto.randomUUID().slice(0, 8)}`;
}
