import { z } from "zod";
import { fsError, invalidArgument } from "../errors.ts";
import type { CliCommand } from "./command-table.ts";
import { containersJson, containersTable, defaultRuncRoot, selectContainers, type ListSelection } from "./list-containers.ts";
import { parseCliArgs } from "./parse-args.ts";

const listUsage = "cryo list [--root DIR | [--base DIR] (-n|--namespace NS | -A|--all-namespaces)] [-f|--format table|json] [-q|--quiet]";

/** `cryo list`: the runc containers on disk, like `runc list`, read from state.json without running runc. */
export const listCommand: CliCommand = {
  path: ["list"],
  summary: "list the runc containers on disk (like runc list), cryo's and runc shim's",
  usage: `${listUsage}

Reads runc's state directories (state.json, /proc, the freezer cgroup) and prints one row per container:
id, init pid, status (created, running, paused, stopped), bundle, created, owner; --format json prints
runc's JSON (ociVersion, id, pid, status, bundle, rootfs, created, annotations, owner).

  --root DIR             list exactly this runc root (as runc --root DIR list); without --root, --namespace
                         or --all-namespaces: every namespace under the base (${defaultRuncRoot}), as -A
  -n, --namespace NS     containerd namespace NS: <base>/NS (the per-namespace root cryo's shim and
                         containerd's runc shim use), and the containers kept directly in the base (as a plain
                         runc --root <base> keeps them) whose bundle is in NS
  -A, --all-namespaces   everything under the base, with a NAMESPACE column (a "namespace" field in JSON)
  --base DIR             the base for --namespace/--all-namespaces (default ${defaultRuncRoot})
  -f, --format FORMAT    table (default) or json
  -q, --quiet            print only the ids (NAMESPACE/ID for every namespace)`,
  async run(args, io) {
    const { values } = parseCliArgs(
      args,
      {
        root: { type: "string" },
        base: { type: "string" },
        namespace: { type: "string", short: "n" },
        "all-namespaces": { type: "boolean", short: "A" },
        format: { type: "string", short: "f" },
        quiet: { type: "boolean", short: "q" },
      },
      z.object({
        root: z.string().min(1).optional(),
        base: z.string().min(1).optional(),
        namespace: z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._-]*$/, "not a containerd namespace name").optional(),
        "all-namespaces": z.boolean().optional(),
        format: z.enum(["table", "json"]).optional(),
        quiet: z.boolean().optional(),
      }),
      listUsage,
    );
    const all = values["all-namespaces"] === true;
    if (values.root !== undefined && (values.namespace !== undefined || all || values.base !== undefined)) {
      throw invalidArgument("--root", { detail: "names one runc root; it does not combine with --base, --namespace or --all-namespaces" });
    }
    if (values.namespace !== undefined && all) throw invalidArgument("--namespace", { detail: "does not combine with --all-namespaces" });
    const base = values.base ?? defaultRuncRoot;
    // Without --root or --namespace every namespace's root under the base is listed (runc keeps one root per namespace).
    const everyNamespace = all || (values.root === undefined && values.namespace === undefined);
    const selection: ListSelection =
      values.root !== undefined
        ? { kind: "root", root: values.root }
        : values.namespace !== undefined
          ? { kind: "namespace", base, namespace: values.namespace }
          : { kind: "all", base };
    let rows;
    try {
      // As runc list: a container whose state cannot be read is named on stderr, and the others are listed.
      rows = selectContainers(selection, (dir, reason) => io.err(`cryo list: load container ${dir}: ${reason}`));
    } catch (err) {
      // A root that is a file, or one this user may not read, in words (node's `EACCES: permission denied, scandir` before).
      throw fsError(selection.kind === "root" ? `runc root ${selection.root}` : `runc roots in ${selection.base}`, err);
    }
    if (values.quiet === true) {
      // Every namespace: NAMESPACE/ID, as one id may be in several namespaces (the table has a NAMESPACE column).
      if (rows.length > 0) io.out(rows.map((r) => (everyNamespace ? `${r.namespace}/${r.id}` : r.id)).join("\n"));
    } else if (values.format === "json") io.out(containersJson(rows, everyNamespace));
    else io.out(containersTable(rows, everyNamespace));
    return 0;
  },
};
