/**
 * Turning a failed runc command into a CryoError that carries the useful line of runc's log.
 *
 * runc is run with `--log <file> --log-format json`; each line is a logrus JSON record
 * ({"level":"error","msg":"...","time":"..."}). The last error-level msg is the reason.
 */
import { Code, CryoError } from "../errors.ts";
import { containerError, containerErrorKindOf, isRuncStateError } from "./container-errors.ts";

/** Returns the msg of the last error-level (or fatal/panic) record in runc's JSON log text. */
export function lastRuncError(logText: string): string | undefined {
  let found: string | undefined;
  for (const line of logText.split("\n")) {
    const t = line.trim();
    if (!t.startsWith("{")) continue;
    try {
      const rec = JSON.parse(t) as { level?: unknown; msg?: unknown };
      if ((rec.level === "error" || rec.level === "fatal" || rec.level === "panic") && typeof rec.msg === "string") found = rec.msg;
    } catch {
      // a torn line: skip it
    }
  }
  return found;
}

/**
 * Classifies runc's error message for `runc <command> <id>`: container-level errors get their codes
 * (does not exist -> NOT_FOUND, already exists -> ALREADY_EXISTS, invalid id -> INVALID_ARGUMENT,
 * paused/running/not running/not paused -> FAILED_PRECONDITION); anything else is UNKNOWN.
 * The message reads "<context>: <kind>: <runc's line>" (no kind for UNKNOWN). The context of create, start, exec and
 * restore is the words containerd's runc shim uses ("OCI runtime create failed", its pkg/process), which operators'
 * alerts and scripts look for in `kubectl describe` and containerd's errors: a create that runc fails reads, through
 * containerd, `failed to create shim task: OCI runtime create failed: runc create failed: ...` with either shim (the
 * CRI probe of the twenty-sixth session: cryo's said `runc create <id>: runc create failed: ...`). The others name
 * runc's command and the id: "runc kill c1: not found: container does not exist".
 */
export function runcError(command: string, id: string, message: string, cause?: unknown): CryoError {
  const context = RUNC_SHIM_WORDS[command] ?? `runc ${command}${id ? ` ${id}` : ""}`;
  const kind = containerErrorKindOf(message);
  if (kind !== undefined) {
    const e = containerError(kind, id, { detail: message, cause });
    // Keep the code and runc's line; name the command as the context.
    return new CryoError(e.code, `${context}: ${kindWord(e.code)}: ${message}`, { cause: cause ?? e });
  }
  if (isRuncStateError(message)) return new CryoError(Code.FAILED_PRECONDITION, `${context}: failed precondition: ${message}`, { cause });
  return new CryoError(Code.UNKNOWN, `${context}: ${message}`, { cause });
}

/** containerd's runc shim's words for a failed runc command (pkg/process init.go, init_state.go, exec.go). */
const RUNC_SHIM_WORDS: Readonly<Record<string, string>> = {
  create: "OCI runtime create failed",
  start: "OCI runtime start failed",
  exec: "OCI runtime exec failed",
  restore: "OCI runtime restore failed",
};

/**
 * Whether message is a failed `runc <command>` in containerd's runc shim's words ("OCI runtime exec failed: ..."), as
 * runcError writes it: the error already says what failed, and containerd names the process around it.
 */
export function isRuncShimFailure(command: string, message: string): boolean {
  const words = RUNC_SHIM_WORDS[command];
  return words !== undefined && message.startsWith(`${words}: `);
}

function kindWord(code: Code): string {
  switch (code) {
    case Code.NOT_FOUND:
      return "not found";
    case Code.ALREADY_EXISTS:
      return "already exists";
    case Code.INVALID_ARGUMENT:
      return "invalid argument";
    case Code.FAILED_PRECONDITION:
      return "failed precondition";
    default:
      return "unknown";
  }
}
