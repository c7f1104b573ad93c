// cryo plugin SDK for AssemblyScript: typed hook inputs/outputs, a JSON reader/writer, and the
// abort handler every cryo plugin is built with (`--use abort=.../cryoAbort`, see plugins/build.sh).

import { Host, LogLevel } from "@extism/as-pdk";

export * from "./json";
export * from "./hooks";
export { Host, LogLevel, Config, Var } from "@extism/as-pdk";

/** Logs `message` at info level through the host (cryo shows it in its log, tagged with the plugin name). */
export function log(message: string): void {
  Host.log(LogLevel.Info, message);
}

/** The abort handler: reports the message to the host, then traps (the call fails with that message). */
export function cryoAbort(message: string | null, fileName: string | null, line: u32, column: u32): void {
  const where = fileName === null ? "" : " (" + fileName + ":" + line.toString() + ":" + column.toString() + ")";
  Host.log(LogLevel.Error, "abort: " + (message === null ? "" : message) + where);
  unreachable();
}
