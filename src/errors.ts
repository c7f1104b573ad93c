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
