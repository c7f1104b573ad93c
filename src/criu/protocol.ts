/**
 * The helper-process protocol, as zod schemas: the reference for the lines' shapes and their types. At run
 * time the lines are checked by wire.ts (no zod: the helper's start-up must not pay for zod); the
 * unit tests hold the two in step.
 *
 * One JSON request line on the helper's stdin, newline-delimited JSON
 * messages on its stdout (notify events, then exactly one result), and JSON reply lines on stdin for
 * the notify events the request asked to wait for.
 *
 *   caller -> helper  {"op":"dump","opts":{...},"waitFor":["network-lock"]}
 *   helper -> caller  {"type":"calling"}      (a dump, pre-dump or restore: libcriu's call, which starts CRIU, comes next)
 *   helper -> caller  {"type":"notify","seq":1,"action":"pre-dump","pid":0,"wait":false}
 *   helper -> caller  {"type":"notify","seq":2,"action":"network-lock","pid":0,"wait":true}
 *   caller -> helper  {"type":"reply","seq":2,"ok":true}
 *   helper -> caller  {"type":"result","ok":true,"rc":0,...}
 */
import { z } from "zod";
import { criuOptsSchema } from "./options.ts";
import { HELPER_OPS, NOTIFY_ACTIONS } from "./wire.ts";

/** The marker argument that makes the cryo binaries run as the CRIU helper. */
export { CRIU_HELPER_ARG } from "./wire.ts";

/** Operations the helper performs. */
export const helperOpSchema = z.enum(HELPER_OPS);
/** A helper operation. */
export type HelperOp = z.infer<typeof helperOpSchema>;

/** Notify actions CRIU sends (criu/action-scripts.c). */
export const notifyActionSchema = z.enum(NOTIFY_ACTIONS);
/** A CRIU notify action. */
export type NotifyAction = z.infer<typeof notifyActionSchema>;

/** The request line. */
export const helperRequestSchema = z
  .object({
    op: helperOpSchema,
    opts: criuOptsSchema.optional(),
    /** Restore the tree as a child of the helper (rst_sibling), like runc; default true. */
    restoreChild: z.boolean().optional(),
    /**
     * Cgroup directories the helper moves itself into before calling libcriu (restore), so that
     * `criu swrk` and the restored tree start in the container's cgroups, as runc does with criu.
     * The helper then passes its own /proc/self/cgroup paths as CRIU's cgroup roots, for every controller
     * opts.cgRoots does not name.
     */
    joinCgroups: z.array(z.string().min(1)).optional(),
    /** Notify actions for which the helper blocks CRIU until the caller replies. */
    waitFor: z.array(notifyActionSchema).optional(),
    /**
     * A directory the helper copies CRIU's log and stats-<op> file into after the call (success or
     * not), so that post-dump file work happens in the helper, not on the caller's event loop.
     */
    copyLogsTo: z.string().min(1).optional(),
    /**
     * A helper started before the call (warm) cannot inherit the caller's descriptors: opts.inheritFds
     * then name descriptors of this pid, which the helper copies with pidfd_getfd before the call.
     */
    inheritFrom: z.number().int().positive().optional(),
    /**
     * false: no notify callback at all (CRIU then makes no notify round trips to the helper, several of
     * them inside the frozen window of a dump). Default true.
     */
    notify: z.boolean().optional(),
    /** After a successful call, ask CRIU's version and put it in the result (criuVersion). */
    reportVersion: z.boolean().optional(),
  })
  .strict();
/** The request line, parsed. */
export type HelperRequest = z.infer<typeof helperRequestSchema>;

/** A notify event as the helper reports it. */
export const notifyMessageSchema = z.object({
  type: z.literal("notify"),
  seq: z.number().int(),
  action: z.string(),
  /** Root task pid CRIU reports (0 when the action has none). */
  pid: z.number().int(),
  /** True when CRIU is blocked until the caller replies. */
  wait: z.boolean(),
  /** For orphan-pts-master: the master's fd number inside the helper (take it with pidfd_getfd before replying). */
  fd: z.number().int().optional(),
  /** The helper's pid, for pidfd_getfd. */
  helperPid: z.number().int(),
});
/** A notify event. */
export type NotifyMessage = z.infer<typeof notifyMessageSchema>;

/** The caller's answer to a waiting notify event; ok=false makes CRIU abort the operation. */
export const replyMessageSchema = z.object({
  type: z.literal("reply"),
  seq: z.number().int(),
  ok: z.boolean(),
  message: z.string().optional(),
});
/** A reply line. */
export type ReplyMessage = z.infer<typeof replyMessageSchema>;

/** The last message: what libcriu returned, and on failure the useful lines of CRIU's log. */
export const resultMessageSchema = z.object({
  type: z.literal("result"),
  ok: z.boolean(),
  op: helperOpSchema,
  /** libcriu's return value (restore: the root pid; version: the version number). */
  rc: z.number().int(),
  /** errno after the call (CRIU's cr_errno for a failed RPC). */
  errno: z.number().int(),
  /** gRPC code and message when the helper failed before or around the call. */
  code: z.number().int().optional(),
  message: z.string().optional(),
  logFile: z.string().optional(),
  logErrors: z.array(z.string()),
  /** The notify action a caller's reply refused, if that is why CRIU stopped. */
  refusedBy: z.string().optional(),
  features: z.object({ memTrack: z.boolean(), lazyPages: z.boolean(), pidfdStore: z.boolean() }).optional(),
  /** CRIU's version (libcriu's number), when the request asked for it (reportVersion). */
  criuVersion: z.number().int().positive().optional(),
  durationMs: z.number(),
  /** From the helper's start to the request's arrival (how long it sat warm), in ms. */
  idleMs: z.number().optional(),
});
/** The result message. */
export type ResultMessage = z.infer<typeof resultMessageSchema>;

/**
 * Sent right before libcriu's call of a dump, pre-dump or restore (which starts CRIU): from then on a CRIU that is not
 * there has either not been forked yet or has already answered (see the client's abort).
 */
export const callingMessageSchema = z.object({ type: z.literal("calling") });
/** The calling message. */
export type CallingMessage = z.infer<typeof callingMessageSchema>;

/** Anything the helper writes on stdout. */
export const helperMessageSchema = z.discriminatedUnion("type", [callingMessageSchema, notifyMessageSchema, resultMessageSchema]);
/** A helper stdout line, parsed. */
export type HelperMessage = z.infer<typeof helperMessageSchema>;
