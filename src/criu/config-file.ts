/**
 * The CRIU configuration file cryo writes for the options libcriu has no setter for.
 *
 * CRIU reads it (criu_local_set_config_file -> RPC `config_file`) after the RPC options and lets it
 * override them. Only these options go this way: lazy-pages (with, for a lazy dump, its page server's
 * address and port), leave-stopped, display-stats, and whatever the caller puts in `configExtra`;
 * everything else uses a libcriu setter.
 */
import type { CriuOpts } from "./options.ts";

/** Option names cryo itself writes into the configuration file (documented in docs/criu.md). */
export const CONFIG_FILE_OPTIONS = ["lazy-pages", "leave-stopped", "display-stats"] as const;

/** The configuration file's lines for opts (empty when no option needs the file). */
export function configFileLines(opts: CriuOpts): string[] {
  const lines: string[] = [];
  if (opts.lazyPages) lines.push("lazy-pages");
  // A lazy dump's own page server (post-copy): where it listens for the restoring host's lazy-pages daemon.
  if (opts.lazyPages && opts.pageServer) lines.push(`address ${quote(opts.pageServer.address)}`, `port ${opts.pageServer.port}`);
  if (opts.leaveStopped) lines.push("leave-stopped");
  if (opts.displayStats) lines.push("display-stats");
  for (const [name, value] of Object.entries(opts.configExtra ?? {})) {
    lines.push(value === true ? name : `${name} ${quote(value)}`);
  }
  return lines;
}

/** The whole file: the caller's own file first (if any), then cryo's lines, which win. */
export function renderConfigFile(opts: CriuOpts, userFileText?: string): string | undefined {
  const lines = configFileLines(opts);
  if (lines.length === 0 && userFileText === undefined) return undefined;
  const head = userFileText === undefined ? "" : `${userFileText.trimEnd()}\n`;
  return `${head}# written by cryo\n${lines.join("\n")}\n`;
}

function quote(value: string): string {
  return /^[^\s"#]+$/.test(value) ? value : `"${value.replace(/\\/g, "\\\\").replace(/"/g, '\\"')}"`;
}
