import { deadlineExceeded } from "../../src/errors.ts";

/** Options for waitFor. */
export interface WaitForOptions {
  /** Give up after this long (default 30 s). */
  timeoutMs?: number;
  /** Pause between polls (default 50 ms). */
  intervalMs?: number;
  /** What is awaited, for the error message. */
  what?: string;
}

/**
 * Polls cond until it returns a value other than undefined/false/null, and returns that value.
 * A throwing cond counts as "not yet"; the last error is reported if the deadline passes.
 */
export async function waitFor<T>(cond: () => T | Promise<T>, options: WaitForOptions = {}): Promise<Exclude<T, false | null | undefined>> {
  const timeoutMs = options.timeoutMs ?? 30_000;
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  for (;;) {
    try {
      const value = await cond();
      if (value !== undefined && value !== null && value !== false) return value as Exclude<T, false | null | undefined>;
    } catch (err) {
      lastError = err;
    }
    if (Date.now() > deadline) {
      const detail = lastError === undefined ? `not true after ${timeoutMs} ms` : `not true after ${timeoutMs} ms; last error: ${String(lastError)}`;
      throw deadlineExceeded(`wait for ${options.what ?? "condition"}`, { detail });
    }
    await Bun.sleep(options.intervalMs ?? 50);
  }
}
