/**
 * Container-level errors (the seed's list): already exists, invalid id, does not exist, paused,
 * running, not running, not paused — each a CryoError with the gRPC code containerd expects, and
 * the mapping from runc's (libcontainer's) error texts to them.
 */
import { Code, CryoError, alreadyExists, failedPrecondition, invalidArgument, notFound } from "../errors.ts";

/** The container-level error kinds. */
export type ContainerErrorKind =
  | "already_exists"
  | "invalid_id"
  | "does_not_exist"
  | "paused"
  | "running"
  | "not_running"
  | "not_paused";

/** The gRPC code of each container-level error kind. */
export const containerErrorCodes: Readonly<Record<ContainerErrorKind, Code>> = {
  already_exists: Code.ALREADY_EXISTS,
  invalid_id: Code.INVALID_ARGUMENT,
  does_not_exist: Code.NOT_FOUND,
  paused: Code.FAILED_PRECONDITION,
  running: Code.FAILED_PRECONDITION,
  not_running: Code.FAILED_PRECONDITION,
  not_paused: Code.FAILED_PRECONDITION,
};

/** Builds the CryoError for a container-level error: `containerError("not_running", "c1")` -> "container c1 is not running: failed precondition". */
export function containerError(kind: ContainerErrorKind, id: string, options?: { detail?: string; cause?: unknown }): CryoError {
  switch (kind) {
    case "already_exists":
      return alreadyExists(`container ${id}`, options);
    case "invalid_id":
      return invalidArgument(`container id ${JSON.stringify(id)}`, {
        ...options,
        detail: options?.detail ?? "must match [A-Za-z0-9_+,.-]+ and be a clean path segment",
      });
    case "does_not_exist":
      return notFound(`container ${id}`, options);
    case "paused":
      return failedPrecondition(`container ${id} is paused`, options);
    case "running":
      return failedPrecondition(`container ${id} is still running`, options);
    case "not_running":
      return failedPrecondition(`container ${id} is not running`, options);
    case "not_paused":
      return failedPrecondition(`container ${id} is not paused`, options);
  }
}

// runc 1.1 (libcontainer/error.go and the CLI's own checks), lower-cased, most specific first.
const runcTexts: ReadonlyArray<[RegExp, ContainerErrorKind]> = [
  [/container with given id already exists|already exists/, "already_exists"],
  [/invalid container id format|container id cannot be empty/, "invalid_id"],
  [/container does not exist|does not exist/, "does_not_exist"],
  [/container not paused/, "not_paused"],
  [/container not running|cannot exec in a stopped container|cannot start a container that has stopped|container process is already dead/, "not_running"],
  [/container paused|cannot exec in a paused container/, "paused"],
  [/container still running|container init still running|that is not stopped|cannot start an already running container/, "running"],
];

/** Maps a runc error message to a container-level error kind, or undefined when it is none of them. */
export function containerErrorKindOf(runcMessage: string): ContainerErrorKind | undefined {
  const m = runcMessage.toLowerCase();
  for (const [re, kind] of runcTexts) if (re.test(m)) return kind;
  return undefined;
}

/** Other runc texts that are state errors without a container-level kind ("cannot start a container in the paused state"). */
export function isRuncStateError(runcMessage: string): boolean {
  return /cannot start a container in the \w+ state|invalid state transition/.test(runcMessage.toLowerCase());
}

// libcontainer's idRegex in runc 1.1: ^[\w+-\.]+$ (Go \w = [0-9A-Za-z_]; "+-\." is the range '+'..'-' plus '.').
const idPattern = /^[0-9A-Za-z_+,.-]+$/;

/** Tells whether runc accepts id as a container id (its regex, and no "." / ".." path games). */
export function isValidContainerId(id: string): boolean {
  return idPattern.test(id) && id !== "." && id !== "..";
}

/** Throws the invalid_id error unless runc would accept id. */
export function assertValidContainerId(id: string): void {
  if (!isValidContainerId(id)) throw containerError("invalid_id", id);
}
