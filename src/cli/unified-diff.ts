/** A unified diff (`diff -u` format) of two texts, for `--dry-run` output. */

/**
 * Diffs two texts line by line. Edits made by cryo change one contiguous block, so the diff is the common
 * head and tail kept as context (3 lines) around one hunk; "" when the texts are equal.
 */
export function unifiedDiff(before: string, after: string, fromLabel: string, toLabel: string): string {
  if (before === after) return "";
  const a = lines(before);
  const b = lines(after);
  let head = 0;
  while (head < a.length && head < b.length && a[head] === b[head]) head++;
  let tail = 0;
  while (tail < a.length - head && tail < b.length - head && a[a.length - 1 - tail] === b[b.length - 1 - tail]) tail++;
  const context = 3;
  const from = Math.max(0, head - context);
  const aEnd = a.length - tail;
  const bEnd = b.length - tail;
  const aStop = Math.min(a.length, aEnd + context);
  const bStop = Math.min(b.length, bEnd + context);
  const out = [
    `--- ${fromLabel}`,
    `+++ ${toLabel}`,
    `@@ -${range(from, aStop - from)} +${range(from, bStop - from)} @@`,
    ...a.slice(from, head).map((l) => ` ${l}`),
    ...a.slice(head, aEnd).map((l) => `-${l}`),
    ...b.slice(head, bEnd).map((l) => `+${l}`),
    ...a.slice(aEnd, aStop).map((l) => ` ${l}`),
  ];
  return out.join("\n");
}

function range(start: number, count: number): string {
  return count === 1 ? `${start + 1}` : `${count === 0 ? start : start + 1},${count}`;
}

/** A text's lines; the newline that ends the last line does not start another. */
function lines(text: string): string[] {
  // An empty text (a config install creates, or an empty one) has no lines: not one empty line, which the diff
  // showed removed (`@@ -1 +1,5 @@` and a lone `-`) where `diff -u` says `@@ -0,0 +1,5 @@`.
  if (text === "") return [];
  const all = text.split("\n");
  if (text.endsWith("\n")) all.pop();
  return all;
}
