/** The shim's version string (Connect, `-v`); its own file so that `-v` loads nothing else. */
export const SHIM_VERSION = "cryo 0.1.0";
