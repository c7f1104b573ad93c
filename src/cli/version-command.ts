import pkg from "../../package.json" with { type: "json" };
import { z } from "zod";
import type { CliCommand } from "./command-table.ts";
import { REVISION } from "../shim/version.ts";
import { parseCliArgs } from "./parse-args.ts";

/** cryo's version, from package.json (compiled into the binary). */
export const cryoVersion: string = pkg.version;

/** `cryo version`: cryo's and Bun's versions. */
export const versionCommand: CliCommand = {
  path: ["version"],
  summary: "print cryo's version",
  usage: "cryo version",
  async run(args, io) {
    parseCliArgs(args, {}, z.object({}), "cryo version");
    io.out(`cryo ${cryoVersion} (${REVISION ? `revision ${REVISION}, ` : ""}bun ${Bun.version})`);
    return 0;
  },
};
