/**
 * Which runc roots `cryo list` reads and how rows are printed. Under one base directory (default
 * /run/containerd/runc) cryo's shim and containerd's runc shim keep one root per namespace
 * (`<base>/<ns>/<id>/state.json`); a flat root (`<base>/<id>`, e.g. a plain `runc --root`) is read too.
 * A row's namespace comes from the root it was found in (`<base>/<ns>`) or, for the flat layout, from
 * its bundle path (`.../io.containerd.runtime.v2.task/<ns>/<id>`).
 */
import { existsSync, readdirSync, statSync } from "node:fs";
import { basename, dirname, join } from "node:path";
import { listContainers, type ContainerListing } from "../runtime/index.ts";

/** The base of runc's per-namespace roots when containerd sends no root (src/shim DEFAULT_RUNC_ROOT). */
export const defaultRuncRoot = "/run/containerd/runc";

/** A `runc list` row with the containerd namespace it belongs to ("" when unknown). */
export interface NamespacedListing extends ContainerListing {
  namespace: string;
}

/** What to list: one root exactly, a namespace of a base, or everything under a base. */
export type ListSelection =
  | { kind: "root"; root: string }
  | { kind: "namespace"; base: string; namespace: string }
  | { kind: "all"; base: string };

/** The containerd namespace a bundle path belongs to, "" when the path is not a containerd v2 task bundle. */
export function bundleNamespace(bundle: string): string {
  const nsDir = dirname(bundle);
  return basename(dirname(nsDir)) === "io.containerd.runtime.v2.task" ? basename(nsDir) : "";
}

function isContainerDir(dir: string): boolean {
  return existsSync(join(dir, "state.json"));
}

/** Subdirectories of base that are runc roots of a namespace (directories without a state.json). */
export function namespaceRoots(base: string): string[] {
  let names: string[];
  try {
    names = readdirSync(base).sort();
  } catch (err) {
    if ((err as { code?: string }).code === "ENOENT") return [];
    throw err;
  }
  return names.filter((name) => {
    const dir = join(base, name);
    try {
      return statSync(dir).isDirectory() && !isContainerDir(dir);
    } catch {
      return false;
    }
  });
}

/**
 * Lists the containers a selection names, sorted by namespace then id. A container whose state.json cannot be read
 * is left out and named to onSkipped (runc list says `load container ID: ...` on stderr).
 */
export function selectContainers(selection: ListSelection, onSkipped?: (dir: string, reason: string) => void): NamespacedListing[] {
  const flat = (root: string): NamespacedListing[] => listContainers(root, onSkipped).map((row) => ({ ...row, namespace: bundleNamespace(row.bundle) }));
  const nested = (root: string, namespace: string): NamespacedListing[] => listContainers(root, onSkipped).map((row) => ({ ...row, namespace }));
  let rows: NamespacedListing[];
  switch (selection.kind) {
    case "root":
      rows = flat(selection.root);
      break;
    case "namespace":
      rows = [...flat(selection.base).filter((r) => r.namespace === selection.namespace), ...nested(join(selection.base, selection.namespace), selection.namespace)];
      break;
    case "all":
      rows = [...flat(selection.base), ...namespaceRoots(selection.base).flatMap((ns) => nested(join(selection.base, ns), ns))];
      break;
  }
  return rows.sort((a, b) => a.namespace.localeCompare(b.namespace) || a.id.localeCompare(b.id));
}

/** The JSON `runc list --format json` prints for rows (without the namespace), plus it when withNamespace. */
export function containersJson(rows: readonly NamespacedListing[], withNamespace: boolean): string {
  const out = rows.map(({ namespace, ...row }) => (withNamespace ? { namespace, ...row } : row));
  return JSON.stringify(out);
}

/**
 * The table `runc list` prints (Go tabwriter: minimum cell width 12, padding 3, the last column unpadded),
 * with a NAMESPACE column first when withNamespace.
 */
export function containersTable(rows: readonly NamespacedListing[], withNamespace: boolean): string {
  const header = ["ID", "PID", "STATUS", "BUNDLE", "CREATED", "OWNER"];
  const cells = rows.map((r) => [r.id, String(r.pid), r.status, r.bundle, r.created, r.owner]);
  const table = withNamespace ? [["NAMESPACE", ...header], ...rows.map((r, i) => [r.namespace, ...cells[i]!])] : [header, ...cells];
  const widths = table[0]!.map((_, col) => Math.max(12, ...table.map((line) => line[col]!.length + 3)));
  return table.map((line) => line.map((cell, col) => (col === line.length - 1 ? cell : cell.padEnd(widths[col]!))).join("")).join("\n");
}
