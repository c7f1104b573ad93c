/**
 * The shim's log: logrus-style text lines ("time=... level=... msg=...") written without blocking to
 * one descriptor. The daemon's stderr is containerd's `log` FIFO in the first bundle (opened
 * non-blocking by `start`), so containerd copies these lines into its own log; a line that cannot be
 * written at once (FIFO full, containerd gone) is dropped rather than stalling the shim.
 */
import { writeSync } from "node:fs";

/** Log levels, least to most severe. */
export type LogLevel = "debug" | "info" | "warn" | "error";

const rank: Record<LogLevel, number> = { debug: 0, info: 1, warn: 2, error: 3 };

/** A leveled logger. */
export interface Logger {
  debug(msg: string, fields?: Record<string, unknown>): void;
  info(msg: string, fields?: Record<string, unknown>): void;
  warn(msg: string, fields?: Record<string, unknown>): void;
  error(msg: string, fields?: Record<string, unknown>): void;
  /** A logger that adds fields to every line. */
  with(fields: Record<string, unknown>): Logger;
}

function quote(v: unknown): string {
  const s = typeof v === "string" ? v : JSON.stringify(v);
  return /^[A-Za-z0-9_./:@-]+$/.test(s) ? s : JSON.stringify(s);
}

/** Formats one line as logrus' text formatter does. */
export function formatLine(level: LogLevel, msg: string, fields: Record<string, unknown>, now = new Date()): string {
  let line = `time=${quote(now.toISOString())} level=${level} msg=${quote(msg)}`;
  for (const [k, v] of Object.entries(fields)) if (v !== undefined) line += ` ${k}=${quote(v)}`;
  return line + "\n";
}

/** Creates a logger writing to a descriptor (default 2) or to a sink function (tests). */
export function createLogger(options: { level: LogLevel; fd?: number; sink?: (line: string) => void; fields?: Record<string, unknown> }): Logger {
  const fd = options.fd ?? 2;
  const sink =
    options.sink ??
    ((line: string) => {
      try {
        writeSync(fd, line);
      } catch {
        // FIFO full or reader gone: drop the line.
      }
    });
  const min = rank[options.level];
  const make = (base: Record<string, unknown>): Logger => {
    const emit = (level: LogLevel, msg: string, fields?: Record<string, unknown>) => {
      if (rank[level] < min) return;
      sink(formatLine(level, msg, { ...base, ...fields }));
    };
    return {
      debug: (m, f) => emit("debug", m, f),
      info: (m, f) => emit("info", m, f),
      warn: (m, f) => emit("warn", m, f),
      error: (m, f) => emit("error", m, f),
      with: (f) => make({ ...base, ...f }),
    };
  };
  return make({ runtime: "io.containerd.cryo.v2", ...options.fields });
}

/** A logger that discards everything. */
export const nullLogger: Logger = createLogger({ level: "error", sink: () => {} });
