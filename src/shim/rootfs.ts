/**
 * The container's root filesystem as containerd hands it over: a list of mounts (overlay, bind, ...)
 * that the shim mounts onto <bundle>/rootfs before `runc create`, and unmounts after `runc delete`.
 *
 * Mounting spawns mount(8) (src/sys has no mount(2) yet). Unmounting first counts the mounts stacked
 * on the target in /proc/self/mountinfo and runs umount(8) that many times, so a bundle with nothing
 * mounted costs no process at all.
 */
import { mkdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { invalidArgument } from "../errors.ts";
import type { RootfsMount } from "./ports.ts";

/** Runs mount(8)/umount(8); resolves with its exit code and stderr. */
async function run(argv: string[]): Promise<{ code: number; stderr: string }> {
  const p = Bun.spawn(argv, { stdin: "ignore", stdout: "ignore", stderr: "pipe" });
  const [stderr, code] = await Promise.all([new Response(p.stderr).text(), p.exited]);
  return { code, stderr: stderr.trim() };
}

/** Mounts containerd's rootfs mounts onto <bundle>/rootfs, in order. */
export async function mountRootfs(bundle: string, mounts: readonly RootfsMount[]): Promise<void> {
  const target = join(bundle, "rootfs");
  mkdirSync(target, { recursive: true });
  for (const m of mounts) {
    const argv = ["mount", "-t", m.type, m.source, target];
    if (m.options.length > 0) argv.splice(1, 0, "-o", m.options.join(","));
    const r = await run(argv);
    if (r.code !== 0) throw invalidArgument(`rootfs mount ${m.type} ${m.source}`, { detail: r.stderr || `mount exited ${r.code}` });
  }
}

/** Unescapes mountinfo's octal escapes (`\040` for a space). */
function unescapeMountPath(s: string): string {
  return s.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));
}

/** How many mounts sit exactly on path, from /proc/self/mountinfo text (field 5 is the mount point). */
export function mountsAt(mountinfo: string, path: string): number {
  let n = 0;
  for (const line of mountinfo.split("\n")) {
    const fields = line.split(" ");
    if (fields.length > 4 && unescapeMountPath(fields[4]!) === path) n++;
  }
  return n;
}

/** Unmounts everything stacked on <bundle>/rootfs; nothing mounted is fine. */
export async function unmountRootfs(bundle: string): Promise<void> {
  const target = join(bundle, "rootfs");
  let count: number;
  try {
    count = mountsAt(readFileSync("/proc/self/mountinfo", "utf8"), target);
  } catch {
    count = 8; // cannot tell: try until umount fails
  }
  for (let i = 0; i < count; i++) {
    const r = await run(["umount", target]);
    if (r.code !== 0) return;
  }
}
