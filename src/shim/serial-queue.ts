/**
 * One serial queue per container: every mutating call for a container runs to completion, in
 * arrival order, before the next starts. This replaces locks; Wait and reads do not queue.
 */

/** Runs async jobs one at a time in the order they were queued. */
export interface SerialQueue {
  /** Queues a job; resolves or rejects with its result. A failing job does not stop the queue. */
  run<T>(job: () => Promise<T> | T): Promise<T>;
  /** Jobs queued or running. */
  readonly pending: number;
  /** Resolves when nothing is queued or running. */
  idle(): Promise<void>;
}

/** Creates an empty serial queue. */
export function createSerialQueue(): SerialQueue {
  let tail: Promise<unknown> = Promise.resolve();
  let pending = 0;
  return {
    run<T>(job: () => Promise<T> | T): Promise<T> {
      pending++;
      const result = tail.then(() => job());
      tail = result.then(
        () => {
          pending--;
        },
        () => {
          pending--;
        },
      );
      return result;
    },
    get pending() {
      return pending;
    },
    async idle() {
      while (pending > 0) await tail;
    },
  };
}
