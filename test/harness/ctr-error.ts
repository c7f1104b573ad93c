// How ctr shows an error's gRPC code, which differs between ctr 1.x and 2.x.
let ctrMajor: number | undefined;

/** The major version of the `ctr` on PATH (1 for Debian's 1.6, 2 for a containerd 2.x build). */
function ctrMajorVersion(): number {
  if (ctrMajor === undefined) {
    const out = Bun.spawnSync(["ctr", "--version"]).stdout.toString();
    ctrMajor = Number(/ v?(\d+)\.\d+\S*\s*$/.exec(out)?.[1] ?? 1);
  }
  return ctrMajor;
}

/**
 * Whether ctr's error output names the gRPC code `code` ("failed precondition", ...). ctr 1.x ends the line with
 * the code's text, which only the code puts there; ctr 2.x prints the message alone, so there the code's text
 * must be in the message (cryo's errors carry it: "<what>: failed precondition: ...").
 */
export function ctrErrorHasCode(stderr: string, code: string): boolean {
  return ctrMajorVersion() >= 2 ? stderr.includes(`: ${code}`) : stderr.trim().endsWith(code);
}
