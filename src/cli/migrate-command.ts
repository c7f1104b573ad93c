import { z } from "zod";
import type { CliCommand } from "./command-table.ts";
import { migrateContainer } from "./migrate.ts";
import { parseCliArgs } from "./parse-args.ts";

const migrateUsage = "cryo migrate CONTAINER --from ADDRESS --to ADDRESS [-n|--namespace NS] [--new-id ID] [--rw] [--keep] [--timeout SECONDS]";

/** `cryo migrate`: move a running container from one containerd to another (checkpoint, copy, restore). */
export const migrateCommand: CliCommand = {
  path: ["migrate"],
  summary: "move a running container between two containerds (checkpoint, copy the image, restore)",
  usage: `${migrateUsage}

Runs, with ctr: \`ctr containers checkpoint --task [--rw] CONTAINER REF\` at --from, exports REF (and the
container's image when the target lacks it) and imports it at --to, \`ctr containers restore --live [--rw]
ID REF\` at --to, waits for the task to run there, then kills and removes CONTAINER at --from. REF is
removed from both content stores afterwards. If anything fails before the restored task runs, the target
is cleaned up and CONTAINER keeps running at --from. Works for any runtime with checkpoint/restore
(io.containerd.cryo.v2, io.containerd.runc.v2).

  --from ADDRESS    the source containerd's socket (e.g. /run/containerd/containerd.sock)
  --to ADDRESS      the target containerd's socket
  -n, --namespace   containerd namespace at both ends (default "default")
  --new-id ID       the container's id at the target (default: the same). Two containerds on one machine
                    share runc's state root, so a same-machine move needs a new id
  --rw              carry the container's rw layer (the files it wrote) along
  --keep            leave the source container running (copy instead of move)
  --timeout SECONDS deadline of each ctr call (default 300)`,
  async run(args, io) {
    const { values, positionals } = parseCliArgs(
      args,
      {
        from: { type: "string" },
        to: { type: "string" },
        namespace: { type: "string", short: "n" },
        "new-id": { type: "string" },
        rw: { type: "boolean" },
        keep: { type: "boolean" },
        timeout: { type: "string" },
      },
      z.object({
        from: z.string().min(1, "required"),
        to: z.string().min(1, "required"),
        namespace: z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._-]*$/, "not a containerd namespace name").optional(),
        "new-id": z.string().min(1).optional(),
        rw: z.boolean().optional(),
        keep: z.boolean().optional(),
        timeout: z.coerce.number().positive().optional(),
      }),
      migrateUsage,
      { min: 1, max: 1 },
    );
    // Ctrl-C or SIGTERM: finish the ctr call under way, then clean up as after a failure (it killed cryo in the middle,
    // leaving the checkpoint image, the target's copy and cryo's work directory, and a checkpoint's ctr running on).
    const abort = new AbortController();
    const onSignal = (name: string) => () => {
      if (abort.signal.aborted) return;
      io.err(`cryo migrate: ${name}: stopping after the step under way, then cleaning up`);
      abort.abort(name);
    };
    const onInt = onSignal("SIGINT");
    const onTerm = onSignal("SIGTERM");
    process.on("SIGINT", onInt);
    process.on("SIGTERM", onTerm);
    const result = await migrateContainer(
      {
        signal: abort.signal,
        id: positionals[0]!,
        from: values.from,
        to: values.to,
        namespace: values.namespace,
        newId: values["new-id"],
        rw: values.rw,
        keep: values.keep,
        timeoutMs: values.timeout !== undefined ? values.timeout * 1000 : undefined,
      },
      (line) => io.out(line),
    ).finally(() => {
      process.off("SIGINT", onInt);
      process.off("SIGTERM", onTerm);
    });
    io.out(
      `migrated ${result.id} -> ${result.newId} at ${values.to} (pid ${result.pid})${result.sourceRemoved ? "" : `; ${result.id} still runs at ${values.from}`}`,
    );
    return 0;
  },
};
