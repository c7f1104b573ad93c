import pkg from "../../package.json" with { type: "json" };
import { invalidArgument } from "../errors.ts";
import type { CliCommand } from "./command-table.ts";

/** cryo's version, from package.json (compiled into the binary). */
export const cryoVersion: string = pkg.version;

/** `cryo version`: cryo's and Bun's versions. */
export const versionCommand: CliCommand = {
  path: ["version"],
  summary: "print cryo's version",
  usage: "cryo version",
  async run(args, io) {
    if (args.length > 0) throw invalidArgument("arguments", { detail: `cryo version takes none, got ${args.join(" ")}\nusage: cryo version` });
    io.out(`cryo ${cryoVersion} (bun ${Bun.version})`);
    return 0;
  },
};
