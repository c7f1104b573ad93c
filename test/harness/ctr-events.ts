/** `ctr events` as a test watches it: a running subscription whose stdout lines are collected as they come. */

/** A running `ctr events`. */
export interface CtrEvents {
  /** Every line printed so far: `<Go time> <namespace> <topic> <event as JSON>`. */
  lines: string[];
  stderr(): Promise<string>;
  stop(): Promise<void>;
}

/** One line of `ctr events`, split. */
export interface CtrEvent {
  time: string;
  namespace: string;
  topic: string;
  event: Record<string, unknown>;
}

/** Starts `ctr events namespace==NAMESPACE` against containerd at address. */
export function startCtrEvents(address: string, namespace: string): CtrEvents {
  const proc = Bun.spawn(["ctr", "--address", address, "events", `namespace==${namespace}`], {
    stdin: "ignore",
    stdout: "pipe",
    stderr: "pipe",
  });
  const lines: string[] = [];
  const reading = (async () => {
    const decoder = new TextDecoder();
    let partial = "";
    for await (const chunk of proc.stdout) {
      partial += decoder.decode(chunk, { stream: true });
      const parts = partial.split("\n");
      partial = parts.pop() ?? "";
      lines.push(...parts.filter((l) => l.length > 0));
    }
  })();
  return {
    lines,
    stderr: () => new Response(proc.stderr).text(),
    async stop() {
      proc.kill("SIGTERM");
      await proc.exited;
      await reading;
    },
  };
}

/**
 * A protobuf Timestamp as ctr 1.6 prints it (RFC 3339, nanoseconds kept): ctr 2.x prints `{"seconds":S,"nanos":N}`
 * instead, so events read the same from both.
 */
function timestampsAsText(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(timestampsAsText);
  if (typeof value !== "object" || value === null) return value;
  const entries = Object.entries(value);
  const keys = entries.map(([k]) => k).sort();
  if (keys.length > 0 && keys.every((k) => k === "seconds" || k === "nanos") && entries.every(([, v]) => typeof v === "number")) {
    const { seconds = 0, nanos = 0 } = value as { seconds?: number; nanos?: number };
    const whole = new Date(seconds * 1000).toISOString().slice(0, 19);
    return nanos === 0 ? `${whole}Z` : `${whole}.${String(nanos).padStart(9, "0").replace(/0+$/, "")}Z`;
  }
  return Object.fromEntries(entries.map(([k, v]) => [k, timestampsAsText(v)]));
}

/** Splits a `ctr events` line; undefined for anything else. */
export function parseCtrEvent(line: string): CtrEvent | undefined {
  const m = /^(.+ UTC) (\S+) (\S+) (\{.*\})$/.exec(line);
  if (!m) return undefined;
  try {
    return { time: m[1]!, namespace: m[2]!, topic: m[3]!, event: timestampsAsText(JSON.parse(m[4]!)) as Record<string, unknown> };
  } catch {
    return undefined;
  }
}
