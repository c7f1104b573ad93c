/** The shim's version string (Connect, `-v`); its own file so that `-v` loads nothing else. */
export const SHIM_VERSION = "cryo 0.1.0";

// Defined by scripts/build.ts (bun build --define) in the compiled binaries; absent when run from source.
declare const CRYO_REVISION: string | undefined;

/** The git revision the binary was built from ("abc123def456", "...-dirty", "unknown"), "" when run from source. */
export const REVISION: string = typeof CRYO_REVISION === "string" ? CRYO_REVISION : "";

/** The version with the revision, for what a checkpoint records and what operators read: "cryo 0.1.0 (abc123def456)". */
export const VERSION_WITH_REVISION = REVISION === "" ? SHIM_VERSION : `${SHIM_VERSION} (${REVISION})`;
