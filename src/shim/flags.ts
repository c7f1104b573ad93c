/**
 * The shim's command line as containerd writes it (Go `flag` syntax: `-name value`, `-name=value`,
 * `--name value`; boolean flags stand alone), plus the environment containerd sets for it.
 *
 * containerd 1.6 runs `<shim> -namespace NS -address GRPC -publish-binary BIN -id ID [-debug] start`
 * with TTRPC_ADDRESS in the environment and the runtime options on stdin, and
 * `<shim> ... -id ID -bundle PATH delete` for cleanup; containerd 2.x adds GRPC_ADDRESS, NAMESPACE and
 * MAX_SHIM_VERSION to the environment and writes BootstrapParams to `start`'s stdin. The daemon that
 * `start` launches is run with `-socket PATH` and no action.
 */
// zod/mini: the same validation as zod with a fraction of its load time; this runs at every launch of the binary.
import { resolve } from "node:path";
import * as z from "zod/mini";
import { invalidArgument } from "../errors.ts";
import { checkIdentifier } from "./identifiers.ts";

/** What the command line and environment say. */
export interface ShimFlags {
  /** The action: "start", "delete", or "" to serve. */
  action: "" | "start" | "delete";
  namespace: string;
  id: string;
  /** containerd's gRPC address (the -address flag). */
  address: string;
  /** containerd's ttrpc address for events (TTRPC_ADDRESS, else address + ".ttrpc"). */
  ttrpcAddress: string;
  publishBinary: string;
  /** Bundle directory: -bundle, else the working directory. */
  bundle: string;
  /** Socket path the daemon serves on (daemon only). */
  socket: string;
  debug: boolean;
  version: boolean;
  info: boolean;
  /** -h, -help: print SHIM_USAGE (it was "unknown flag"). */
  help: boolean;
  /** MAX_SHIM_VERSION from containerd 2.x (0 when absent). */
  maxShimVersion: number;
}

/** Each flag the binary takes, with what it is, for SHIM_USAGE. */
const FLAG_DOCS: readonly (readonly [string, string])[] = [
  ["-namespace NS", "containerd namespace of the container"],
  ["-id ID", "the container's id"],
  ["-address ADDR", "containerd's gRPC address"],
  ["-publish-binary BIN", "containerd's binary (passed on to the daemon; cryo publishes events over ttrpc)"],
  ["-bundle DIR", "the bundle (default: the working directory)"],
  ["-socket PATH", "the socket a daemon serves on (start gives it)"],
  ["-debug-socket PATH", "accepted and ignored (containerd's runc shim's debug socket)"],
  ["-debug", "debug logging"],
  ["-v, -version", "print the version and revision"],
  ["-info", "containerd 2.x: print a RuntimeInfo for the runtime options on stdin"],
  ["-h, -help", "this text"],
];

const boolFlags = new Set(["debug", "v", "version", "info", "h", "help"]);
const stringFlags = new Set(["namespace", "id", "address", "publish-binary", "bundle", "socket", "debug-socket"]);

/**
 * What -h prints. The binary is containerd's to run, not an operator's: it says so, and names the actions. Every flag
 * parseShimFlags takes is listed (the unit test checks both ways).
 */
export const SHIM_USAGE =
  "usage: containerd-shim-cryo-v2 [flags] [start|delete]\n" +
  "containerd runs this binary for the runtime io.containerd.cryo.v2 (start, delete; a daemon with -socket and no action);\n" +
  "run containers with `ctr run --runtime io.containerd.cryo.v2`, and see `cryo help` for the operator's commands.\n\nflags:\n" +
  FLAG_DOCS.map(([flag, what]) => `  ${flag.padEnd(20)} ${what}\n`).join("");

/** Every flag name parseShimFlags takes (for the unit test that keeps SHIM_USAGE whole). */
export const SHIM_FLAG_NAMES: readonly string[] = [...boolFlags, ...stringFlags];

const envSchema = z.object({
  TTRPC_ADDRESS: z.optional(z.string()),
  GRPC_ADDRESS: z.optional(z.string()),
  NAMESPACE: z.optional(z.string()),
  MAX_SHIM_VERSION: z.optional(z.string().check(z.regex(/^\d*$/, "MAX_SHIM_VERSION must be a number"))),
});

/** Parses argv (without the program name) and the environment; unknown flags are an INVALID_ARGUMENT. */
export function parseShimFlags(argv: readonly string[], env: Record<string, string | undefined>, cwd: string): ShimFlags {
  const strings = new Map<string, string>();
  const bools = new Map<string, boolean>();
  let i = 0;
  for (; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === "--") {
      i++;
      break;
    }
    if (!arg.startsWith("-") || arg === "-") break;
    const body = arg.replace(/^--?/, "");
    const eq = body.indexOf("=");
    const name = eq >= 0 ? body.slice(0, eq) : body;
    const inline = eq >= 0 ? body.slice(eq + 1) : undefined;
    if (boolFlags.has(name)) {
      if (inline === undefined) bools.set(name, true);
      else if (/^(1|t|true|T|TRUE|True)$/.test(inline)) bools.set(name, true);
      else if (/^(0|f|false|F|FALSE|False)$/.test(inline)) bools.set(name, false);
      else throw invalidArgument(`flag -${name}`, { detail: `bad boolean ${JSON.stringify(inline)}` });
    } else if (stringFlags.has(name)) {
      if (inline !== undefined) strings.set(name, inline);
      else {
        const value = argv[i + 1];
        if (value === undefined) throw invalidArgument(`flag -${name}`, { detail: "needs a value" });
        strings.set(name, value);
        i++;
      }
    } else {
      throw invalidArgument(`flag -${name}`, { detail: "unknown flag" });
    }
  }
  const rest = argv.slice(i);
  const action = rest[0] ?? "";
  if (action !== "" && action !== "start" && action !== "delete") {
    throw invalidArgument(`action ${JSON.stringify(action)}`, { detail: "expected start, delete or none" });
  }
  const e = envSchema.safeParse(env);
  if (!e.success) throw invalidArgument("shim environment", { detail: e.error.issues.map((x) => x.message).join("; ") });
  const address = strings.get("address") ?? e.data.GRPC_ADDRESS ?? "";
  // The namespace names runc's root (<root>/<namespace>) and the id the daemon's group and bundle: containerd's
  // identifier rule, as for the requests' (task-service.ts checkRequestIds). Absent for -v and -info.
  const namespace = strings.get("namespace") ?? e.data.NAMESPACE ?? "";
  if (namespace !== "") checkIdentifier("flag -namespace", namespace);
  const id = strings.get("id") ?? "";
  if (id !== "") checkIdentifier("flag -id", id);
  const ttrpcAddress = e.data.TTRPC_ADDRESS || (address ? `${address}.ttrpc` : "");
  return {
    action,
    namespace,
    id,
    address,
    ttrpcAddress,
    publishBinary: strings.get("publish-binary") ?? "",
    bundle: resolve(cwd, strings.get("bundle") || "."),
    socket: strings.get("socket") ?? "",
    debug: bools.get("debug") ?? false,
    version: (bools.get("v") ?? false) || (bools.get("version") ?? false),
    info: bools.get("info") ?? false,
    help: (bools.get("h") ?? false) || (bools.get("help") ?? false),
    maxShimVersion: e.data.MAX_SHIM_VERSION ? Number(e.data.MAX_SHIM_VERSION) : 0,
  };
}

/** Builds the daemon's argv from the start action's flags (the daemon serves; it has no action). */
export function daemonArgs(f: ShimFlags, socket: string): string[] {
  const args = ["-namespace", f.namespace, "-id", f.id, "-address", f.address, "-publish-binary", f.publishBinary, "-bundle", f.bundle, "-socket", socket];
  if (f.debug) args.push("-debug");
  return args;
}
