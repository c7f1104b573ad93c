/**
 * One error taxonomy for all of cryo.
 *
 * Errors are classified once, where their meaning is known (`notFound("container c1")`), carried as a
 * `CryoError` with a gRPC status code, and converted to a ttrpc status once, at dispatch
 * (`toStatus`). Errors that arrive from a peer become `CryoError`s again with `fromStatus`.
 *
 * Messages read "<context>: <kind>" (`container c1: not found`), the form containerd's errdefs
 * recognises when it maps a status message back to its own error kinds.
 */
import { statSync } from "node:fs";

/** gRPC status codes, as carried in google.rpc.Status.code on the ttrpc wire. */
export const Code = {
  OK: 0,
  CANCELLED: 1,
  UNKNOWN: 2,
  INVALID_ARGUMENT: 3,
  DEADLINE_EXCEEDED: 4,
  NOT_FOUND: 5,
  ALREADY_EXISTS: 6,
  PERMISSION_DENIED: 7,
  RESOURCE_EXHAUSTED: 8,
  FAILED_PRECONDITION: 9,
  ABORTED: 10,
  OUT_OF_RANGE: 11,
  UNIMPLEMENTED: 12,
  INTERNAL: 13,
  UNAVAILABLE: 14,
  DATA_LOSS: 15,
  UNAUTHENTICATED: 16,
} as const;

/** A gRPC status code number. */
export type Code = (typeof Code)[keyof typeof Code];

/** The kind word each code carries in messages, as containerd's errdefs spells it. */
const kindWords: Partial<Record<Code, string>> = {
  [Code.NOT_FOUND]: "not found",
  [Code.ALREADY_EXISTS]: "already exists",
  [Code.INVALID_ARGUMENT]: "invalid argument",
  [Code.FAILED_PRECONDITION]: "failed precondition",
  [Code.UNIMPLEMENTED]: "not implemented",
  [Code.UNAVAILABLE]: "unavailable",
  [Code.DEADLINE_EXCEEDED]: "context deadline exceeded",
  [Code.CANCELLED]: "context canceled",
  [Code.RESOURCE_EXHAUSTED]: "resource exhausted",
  [Code.PERMISSION_DENIED]: "permission denied",
};

/** Returns the lower-case name of a code (`not_found`), for logs. */
export function codeName(code: Code): string {
  for (const [name, value] of Object.entries(Code)) if (value === code) return name.toLowerCase();
  return `code_${code}`;
}

/** The one error class: a message, a gRPC code, and optionally the error that caused it. */
export class CryoError extends Error {
  override readonly name = "CryoError";
  constructor(
    readonly code: Code,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }

  /** Wraps any thrown value; a CryoError passes through unchanged, anything else is UNKNOWN. */
  static from(err: unknown, code: Code = Code.UNKNOWN): CryoError {
    if (err instanceof CryoError) return err;
    if (err instanceof Error) return new CryoError(code, err.message, { cause: err });
    return new CryoError(code, String(err));
  }

  /** Prefixes context to the message, keeping code and cause: `wrap("create c1")`. */
  wrap(context: string): CryoError {
    return new CryoError(this.code, `${context}: ${this.message}`, { cause: this });
  }
}

function make(code: Code) {
  const word = kindWords[code] ?? codeName(code);
  return (context: string, options?: { cause?: unknown; detail?: string }): CryoError => {
    const detail = options?.detail ? `: ${options.detail}` : "";
    return new CryoError(code, `${context}: ${word}${detail}`, options);
  };
}

/** `notFound("container c1")` -> "container c1: not found" (NOT_FOUND). */
export const notFound = make(Code.NOT_FOUND);
/** "…: context canceled" (CANCELLED). */
export const cancelled = make(Code.CANCELLED);
/** "…: already exists" (ALREADY_EXISTS). */
export const alreadyExists = make(Code.ALREADY_EXISTS);
/** "…: invalid argument" (INVALID_ARGUMENT). */
export const invalidArgument = make(Code.INVALID_ARGUMENT);
/** "…: failed precondition" (FAILED_PRECONDITION). */
export const failedPrecondition = make(Code.FAILED_PRECONDITION);
/** "…: not implemented" (UNIMPLEMENTED). */
export const notImplemented = make(Code.UNIMPLEMENTED);
/** "…: unavailable" (UNAVAILABLE). */
export const unavailable = make(Code.UNAVAILABLE);
/** "…: context deadline exceeded" (DEADLINE_EXCEEDED). */
export const deadlineExceeded = make(Code.DEADLINE_EXCEEDED);
/** "…: resource exhausted" (RESOURCE_EXHAUSTED): a size or count limit was hit. */
export const resourceExhausted = make(Code.RESOURCE_EXHAUSTED);
/** "…: unknown" (UNKNOWN): an error whose meaning nobody knows. */
export const unknown = make(Code.UNKNOWN);
/** "…: permission denied" (PERMISSION_DENIED). */
export const permissionDenied = make(Code.PERMISSION_DENIED);

/** What a file system call was doing, in words, for node's syscall names. */
const fsVerbs: Record<string, string> = {
  open: "open",
  read: "read",
  write: "write",
  scandir: "list",
  opendir: "list",
  mkdir: "create",
  rm: "remove",
  rmdir: "remove",
  unlink: "remove",
  rename: "replace",
  copyfile: "copy",
  stat: "look up",
  lstat: "look up",
  access: "use",
  chmod: "change the mode of",
  chown: "change the owner of",
  posix_spawn: "run",
  spawn: "run",
};

/** The first existing component of path (from /) that is not a directory, with what it is; undefined when none. */
function nonDirectoryIn(path: string): string | undefined {
  const parts = path.split("/").filter((p) => p !== "");
  for (let i = 1; i <= parts.length; i++) {
    const prefix = `${path.startsWith("/") ? "/" : ""}${parts.slice(0, i).join("/")}`;
    let st;
    try {
      st = statSync(prefix);
    } catch {
      return undefined;
    }
    if (st.isDirectory()) continue;
    const what = st.isFile() ? "a file" : st.isSocket() ? "a socket" : st.isFIFO() ? "a FIFO" : st.isCharacterDevice() || st.isBlockDevice() ? "a device" : "not a directory";
    return what === "not a directory" ? `${prefix} is not a directory` : `${prefix} is ${what}, not a directory`;
  }
  return undefined;
}

/**
 * Classifies a failed file system call (node's errors carry code, syscall and path; path is the fallback for those
 * without, such as a read of a directory) made for context, in words instead of errno names (`cryo containerd start`
 * with a --dir that is a file printed `EEXIST: file already exists, mkdir '/x'`): a path that is not there is
 * NOT_FOUND; one of the wrong kind (a file where a directory is wanted, or the reverse) or on a read-only file system
 * FAILED_PRECONDITION; one this user may not use PERMISSION_DENIED, naming the uid; a full file system
 * RESOURCE_EXHAUSTED. A CryoError passes unchanged; anything else keeps its message (UNKNOWN).
 */
export function fsError(context: string, err: unknown, path?: string): CryoError {
  if (err instanceof CryoError) return err;
  const e = err as { code?: string; syscall?: string; path?: string; dest?: string };
  // A copy, rename or link that found no room or a read-only file system names where it wrote (node's `dest`), not its source.
  const written = e.code === "ENOSPC" || e.code === "EDQUOT" || e.code === "EROFS" ? e.dest : undefined;
  const at = written ?? e.path ?? path ?? "";
  const detailed = (detail: string) => ({ cause: err, detail });
  switch (e.code) {
    case "ENOENT":
      // The context names the path already in the usual case (`config /x: not found`); another path is named.
      return notFound(context, at === "" || context.includes(at) ? { cause: err } : detailed(`no ${at}`));
    case "ENOTDIR":
    case "EEXIST": {
      const file = nonDirectoryIn(at);
      if (file !== undefined) return failedPrecondition(context, detailed(file));
      return e.code === "EEXIST" ? alreadyExists(context, detailed(`${at} exists`)) : failedPrecondition(context, detailed(`${at}: a part of it is not a directory`));
    }
    case "EISDIR":
      return failedPrecondition(context, detailed(`${at} is a directory, not a file`));
    case "EACCES":
    case "EPERM":
      return permissionDenied(context, detailed(`uid ${process.getuid?.() ?? "?"} may not ${fsVerbs[e.syscall ?? ""] ?? e.syscall ?? "use"} ${at}`));
    case "EROFS":
      return failedPrecondition(context, detailed(`${at} is on a read-only file system`));
    case "ENOSPC":
    case "EDQUOT":
      return resourceExhausted(context, detailed(`no space left for ${at}`));
    case "ELOOP":
      return failedPrecondition(context, detailed(`${at}: too many levels of symbolic links`));
    case "ENAMETOOLONG":
      // A request's path (a stdio FIFO, a checkpoint directory) of thousands of characters: its own fault, not UNKNOWN.
      return invalidArgument(context, detailed(`the path (${at.length} characters) or one of its names is too long (Linux allows 4095 and 255)`));
    default:
      return CryoError.from(err).wrap(context);
  }
}

/** The plain shape of a google.rpc.Status, without the generated type (ttrpc builds the message). */
export interface StatusLike {
  code: number;
  message: string;
}

/** Converts any error to a status, once, at the ttrpc dispatch edge. */
export function toStatus(err: unknown): StatusLike {
  const e = CryoError.from(err);
  return { code: e.code, message: e.message };
}

/** Converts a status received from a peer back into a CryoError (code kept; unknown codes become UNKNOWN). */
export function fromStatus(status: StatusLike): CryoError {
  const known = (Object.values(Code) as number[]).includes(status.code);
  return new CryoError(known ? (status.code as Code) : Code.UNKNOWN, status.message);
}

/** True when err is a CryoError with the given code. */
export function isCode(err: unknown, code: Code): boolean {
  return err instanceof CryoError && err.code === code;
}
