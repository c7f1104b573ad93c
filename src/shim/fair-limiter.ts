/**
 * A limit on jobs running at once, shared by keys (a daemon's containers), with a fair queue: jobs beyond the limit
 * wait, each key's in arrival order, and a freed slot goes to the next key in turn (round-robin), not to the oldest
 * job. So one key with a hundred jobs waiting delays another key's single job by at most one job per other key
 * waiting, never by the hundred. Nothing is refused: jobs only wait.
 *
 * With `leaseMs`, a job that runs longer gives its slot up (it runs on, uncounted): a few stuck jobs (a `runc exec`
 * that hangs, up to runc's own 120 s timeout) must not hold every other key's jobs behind them.
 */

/** Runs keyed jobs with at most `limit` at once. */
export interface FairLimiter {
  /** Runs job when a slot is free and it is key's turn; resolves or rejects with its result. */
  run<T>(key: string, job: () => Promise<T> | T): Promise<T>;
  /** Jobs allowed at once (at least 1); raising it starts waiting jobs at once. */
  limit: number;
  /** Jobs running now and holding a slot (not those past their lease). */
  readonly active: number;
  /** Jobs waiting for a slot. */
  readonly waiting: number;
}

/** Creates a limiter that runs at most `limit` jobs at once; with leaseMs, a job holds its slot that long at most. */
export function createFairLimiter(limit: number, opts: { leaseMs?: number } = {}): FairLimiter {
  let max = checkLimit(limit);
  const leaseMs = opts.leaseMs;
  let active = 0;
  let waiting = 0;
  // Each key's waiting jobs in order, and the keys with jobs waiting in their turn order.
  const queues = new Map<string, (() => void)[]>();
  const turns: string[] = [];

  const next = () => {
    while (active < max && turns.length > 0) {
      const key = turns.shift()!;
      const q = queues.get(key)!;
      const start = q.shift()!;
      if (q.length > 0) turns.push(key);
      else queues.delete(key);
      waiting--;
      active++;
      start();
    }
  };

  return {
    async run<T>(key: string, job: () => Promise<T> | T): Promise<T> {
      if (active < max && turns.length === 0) {
        active++;
      } else {
        waiting++;
        await new Promise<void>((resolve) => {
          const q = queues.get(key);
          if (q) q.push(resolve);
          else {
            queues.set(key, [resolve]);
            turns.push(key);
          }
        });
      }
      let held = true;
      const release = () => {
        if (!held) return;
        held = false;
        active--;
        next();
      };
      const lease = leaseMs !== undefined ? setTimeout(release, leaseMs) : undefined;
      lease?.unref?.();
      try {
        return await job();
      } finally {
        clearTimeout(lease);
        release();
      }
    },
    get limit() {
      return max;
    },
    set limit(n: number) {
      max = checkLimit(n);
      next();
    },
    get active() {
      return active;
    },
    get waiting() {
      return waiting;
    },
  };
}

function checkLimit(n: number): number {
  if (!Number.isInteger(n) || n < 1) throw new RangeError(`fair limiter: limit ${n} is not a whole number of at least 1`);
  return n;
}
