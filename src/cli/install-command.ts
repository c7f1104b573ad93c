import { existsSync, statSync } from "node:fs";
import { dirname, join } from "node:path";
import { z } from "zod";
import { cryoRuntimeHandler, cryoRuntimeType, defaultBinDir } from "../containerd/index.ts";
import { failedPrecondition } from "../errors.ts";
import type { CliCommand, CliIo } from "./command-table.ts";
import { addCryoRuntime, parseConfig, removeCryoRuntime, type ConfigEdit } from "./containerd-config-edit.ts";
import { configTarget, installBinary, readConfig, removeBinary, writeConfigAtomic } from "./install-files.ts";
import { checkNamedPath } from "./named-path.ts";
import { parseCliArgs } from "./parse-args.ts";
import { unifiedDiff } from "./unified-diff.ts";

/** How to restart containerd here: systemd's command where systemd runs (sd_booted: /run/systemd/system), else nothing more. */
export function restartHint(systemdDir = "/run/systemd/system"): string {
  return existsSync(systemdDir) ? ": systemctl restart containerd" : " (no systemd runs here: restart it as it was started)";
}

/** The system containerd's config file. */
export const defaultContainerdConfig = "/etc/containerd/config.toml";
/** Where `cryo install` puts the binaries. */
export const defaultInstallBinDir = "/usr/local/bin";
/** The binaries `cryo install` copies from the build directory. */
export const installedBinaries = ["containerd-shim-cryo-v2", "cryo"] as const;

const configDiffLabels = (path: string) => [`${path}`, `${path} (after)`] as const;

/** Applies (or, dry, only prints) a config edit; prints the diff either way. */
function applyConfigEdit(path: string, before: string, edit: ConfigEdit, dryRun: boolean, io: CliIo): void {
  if (!edit.changed) {
    io.out(`${path}: unchanged (the ${cryoRuntimeHandler} handler is ${before.includes(cryoRuntimeType) ? "already there" : "not there"})`);
    return;
  }
  const [from, to] = configDiffLabels(path);
  io.out(unifiedDiff(before, edit.text, from, to));
  if (dryRun) return;
  const { backup } = writeConfigAtomic(path, edit.text);
  io.out(backup !== undefined ? `${path}: written (previous content in ${backup})` : `${path}: created`);
}

/** The CRI plugin's names in disabled_plugins: containerd 1.x's, and containerd 2.x's CRI plugins. */
const criPluginNames = new Set(["cri", "io.containerd.grpc.v1.cri", "io.containerd.cri.v1.runtime", "io.containerd.cri.v1.images"]);

function criDisabled(doc: Record<string, unknown>): boolean {
  const disabled = doc.disabled_plugins;
  return Array.isArray(disabled) && disabled.some((p) => typeof p === "string" && criPluginNames.has(p));
}

const installUsage = "cryo install [-c|--config FILE] [--bin-dir DIR] [--from DIR] [--pod-annotations LIST] [--container-annotations LIST] [--config-path FILE] [--dry-run]";

/** An annotation pattern CRI matches keys against (a glob, `*` within a segment): letters, digits, `._-/*`. */
const annotationPattern = z.string().regex(/^[A-Za-z0-9._/*-]+$/, "an annotation pattern is letters, digits and ._-/* (e.g. cryo.checkpoint/*)");
/** A comma-separated list of annotation patterns. */
const annotationList = z
  .string()
  .transform((s) => s.split(",").map((p) => p.trim()))
  .pipe(z.array(annotationPattern).min(1));

/** `cryo install`: register cryo in a system containerd (binaries + CRI runtime handler). */
export const installCommand: CliCommand = {
  path: ["install"],
  summary: "install cryo's binaries and register the runtime handler in a system containerd's config",
  usage: `${installUsage}

Copies containerd-shim-cryo-v2 and cryo from --from (default: next to this cryo binary, or the repo's
build/bin) to --bin-dir (default ${defaultInstallBinDir}), and adds the CRI runtime handler "${cryoRuntimeHandler}"
(runtime_type ${cryoRuntimeType}) to the containerd config (default ${defaultContainerdConfig}; version 2, as
containerd 1.6 and 1.7 write it, or version 3, containerd 2.x's).
The rest of the file is kept as it is; the old file is saved as FILE.bak and the new one written atomically.
Running it again changes nothing. A missing config file is created (version = 2 plus the handler).

  --pod-annotations LIST        the handler's pod_annotations: the pod annotations CRI copies into the containers'
                                OCI specs, comma-separated glob patterns (cryo reads cryo.checkpoint/*, io.cryo.* and
                                cryo.notify/* there; docs/cri.md). None by default: a pod's author then sets nothing
                                the shim acts on
  --container-annotations LIST  the same for container annotations (container_annotations)
  --config-path FILE            the handler's options.ConfigPath: cryo's config file (docs/config.md) for the pods of
                                the handler, an absolute path
  --dry-run   print the config diff and what would be copied; change nothing`,
  async run(args, io) {
    const { values } = parseCliArgs(
      args,
      {
        config: { type: "string", short: "c" },
        "bin-dir": { type: "string" },
        from: { type: "string" },
        "pod-annotations": { type: "string" },
        "container-annotations": { type: "string" },
        "config-path": { type: "string" },
        "dry-run": { type: "boolean" },
      },
      z.object({
        config: z.string().min(1).optional(),
        "bin-dir": z.string().min(1).optional(),
        from: z.string().min(1).optional(),
        "pod-annotations": annotationList.optional(),
        "container-annotations": annotationList.optional(),
        "config-path": z.string().startsWith("/", "an absolute path (the shim reads it wherever containerd starts it)").regex(/^[^\0-\x1f]*$/, "no control characters").optional(),
        "dry-run": z.boolean().optional(),
      }),
      installUsage,
    );
    const dryRun = values["dry-run"] === true;
    const configPath = values.config ?? defaultContainerdConfig;
    const binDir = values["bin-dir"] ?? defaultInstallBinDir;
    const from = values.from ?? defaultBinDir();
    if (from === undefined) throw failedPrecondition("cryo binaries", { detail: "no build directory found; run `npm run build` or pass --from DIR" });
    // A --from that is not there, or is a file, is said so as for any path a command names (docs/cli.md), not as
    // two missing binaries.
    checkNamedPath(`cryo binaries in ${from}`, from, "directory");
    const missing = installedBinaries.filter((name) => !existsSync(join(from, name)));
    if (missing.length > 0) throw failedPrecondition(`cryo binaries in ${from}`, { detail: `${missing.join(", ")} missing; run \`npm run build\` or pass --from DIR` });

    // Check the config before touching anything: a refused config installs nothing.
    const { text, exists } = readConfig(configPath);
    // An empty file is a config to write, as a missing one (containerd would read it as version 1 defaults).
    const blank = exists && text.trim() === "";
    const before = exists && !blank ? text : "version = 2\n";
    const settings = { podAnnotations: values["pod-annotations"], containerAnnotations: values["container-annotations"], configPath: values["config-path"] };
    const edit = addCryoRuntime(before, configPath, settings);
    const created = !exists || blank;
    // A config that cannot be written fails before the binaries are copied.
    const configDir = dirname(configTarget(configPath));
    // A dry run says so too: it is to show what the real run would do.
    if (!(existsSync(configDir) && statSync(configDir).isDirectory())) {
      throw failedPrecondition(`containerd config ${configPath}`, { detail: `its directory ${configDir} does not exist` });
    }

    for (const name of installedBinaries) {
      const outcome = installBinary(join(from, name), binDir, name, dryRun);
      io.out(`${binDir}/${name}: ${outcome === "unchanged" ? "unchanged" : `${dryRun ? "would be " : ""}${outcome} from ${from}/${name}`}`);
    }
    applyConfigEdit(configPath, exists ? text : "", created ? { text: edit.text, changed: true } : edit, dryRun, io);
    if (dryRun) {
      io.out("dry run: nothing was changed");
      return 0;
    }
    if (settings.configPath !== undefined && !existsSync(settings.configPath)) {
      io.out(`note: ${settings.configPath} (--config-path) does not exist yet: every container of the handler fails at Create until it does (cryo config check FILE checks it)`);
    }
    if (criDisabled(parseConfig(edit.text, configPath).doc)) {
      io.out(`note: the CRI plugin is disabled in ${configPath}; the handler only matters to CRI (Kubernetes). ctr --runtime ${cryoRuntimeType} works without it.`);
    }
    io.out(
      [
        edit.changed || created ? `restart containerd to load the new handler${restartHint()}` : "containerd's config already had the handler: no restart needed for it",
        "  (running containers keep running: their shims outlive a containerd restart)",
        `containerd finds ${installedBinaries[0]} on its PATH: make sure ${binDir} is on it`,
        `use it:  ctr run --runtime ${cryoRuntimeType} IMAGE ID`,
        `         or a Kubernetes RuntimeClass with handler: ${cryoRuntimeHandler}`,
      ].join("\n"),
    );
    return 0;
  },
};

const uninstallUsage = "cryo uninstall [-c|--config FILE] [--bin-dir DIR] [--remove-binaries] [--dry-run]";

/** `cryo uninstall`: remove the runtime handler from the config (and, when asked, the binaries). */
export const uninstallCommand: CliCommand = {
  path: ["uninstall"],
  summary: "remove cryo's runtime handler from a containerd config (and its binaries with --remove-binaries)",
  usage: `${uninstallUsage}

Removes the "${cryoRuntimeHandler}" handler table that cryo install added from the containerd config (default
${defaultContainerdConfig}), keeping the rest of the file; FILE.bak keeps the previous content. With
--remove-binaries it also deletes containerd-shim-cryo-v2 and cryo from --bin-dir (default ${defaultInstallBinDir}).

  --dry-run   print the config diff and what would be removed; change nothing`,
  async run(args, io) {
    const { values } = parseCliArgs(
      args,
      { config: { type: "string", short: "c" }, "bin-dir": { type: "string" }, "remove-binaries": { type: "boolean" }, "dry-run": { type: "boolean" } },
      z.object({ config: z.string().min(1).optional(), "bin-dir": z.string().min(1).optional(), "remove-binaries": z.boolean().optional(), "dry-run": z.boolean().optional() }),
      uninstallUsage,
    );
    const dryRun = values["dry-run"] === true;
    const configPath = values.config ?? defaultContainerdConfig;
    const binDir = values["bin-dir"] ?? defaultInstallBinDir;
    // A --bin-dir that is there but is no directory is said so, as install says it, before anything changes (it read
    // "<file>/cryo: not there"); one that is not there holds nothing to remove.
    if (values["remove-binaries"] === true && existsSync(binDir)) checkNamedPath(`bin dir ${binDir}`, binDir, "directory");
    const { text, exists } = readConfig(configPath);
    const edit = exists ? removeCryoRuntime(text, configPath) : { text, changed: false };
    // No config is no handler: nothing to remove (exit 0, as a second uninstall), said as such rather than "unchanged".
    if (exists) applyConfigEdit(configPath, text, edit, dryRun, io);
    else io.out(`${configPath}: does not exist; no ${cryoRuntimeHandler} handler to remove`);
    if (values["remove-binaries"] === true) {
      for (const name of installedBinaries) {
        const outcome = removeBinary(binDir, name, dryRun);
        io.out(`${binDir}/${name}: ${outcome === "absent" ? "not there" : dryRun ? "would be removed" : "removed"}`);
      }
    }
    if (dryRun) {
      io.out("dry run: nothing was changed");
      return 0;
    }
    if (edit.changed) {
      io.out(
        [
          `restart containerd to drop the handler${restartHint()}`,
          `  (containers already running with ${cryoRuntimeType} keep their shims until they are deleted)`,
        ].join("\n"),
      );
    }
    return 0;
  },
};
