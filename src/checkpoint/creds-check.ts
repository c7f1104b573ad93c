/**
 * What the checkpoint's tasks may be restored with: their credentials and seccomp state, against the new
 * bundle's spec.
 *
 * CRIU restores each thread's capabilities, no_new_privs and seccomp mode exactly as its core image
 * (core-<tid>.img, thread_core) says, as root: a crafted checkpoint could give a restored task every
 * capability (CAP_SYS_MODULE in a container without a user namespace is the host's kernel), drop
 * no_new_privs, or leave seccomp off, whatever the spec grants. runc's restore does not look. cryo refuses,
 * before anything is made, a checkpoint in which any thread
 * - has no credentials in its core image (CRIU then restores it with its own, root's full set; only images
 *   older than CRIU 1.x lack them);
 * - has a capability bounding set with a capability outside the spec's bounding set, or an inheritable,
 *   permitted, effective or ambient set with one the spec grants in none of its sets;
 * - lacks no_new_privs when the spec's `process.noNewPrivileges` is set;
 * - has no seccomp filter when the spec has a `linux.seccomp` profile (the filter itself is CRIU's to
 *   restore: its contents are not compared).
 * uids and gids are not compared: a task of the container may change them as far as its capabilities allow.
 */
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { CoreEntrySchema, SeccompMode, type CoreEntry } from "../gen/criu/core_pb.ts";
import { PstreeEntrySchema } from "../gen/criu/pstree_pb.ts";
import { decodeImage, ImageMagic } from "../criu/image-file.ts";
import { invalidArgument } from "../errors.ts";
import { CAPABILITIES, capabilityName, capabilityNumbers } from "../criu/capabilities.ts";

/** The spec fields the check reads (OCI runtime spec). */
export interface CredsSpec {
  process?: { capabilities?: Partial<Record<"bounding" | "effective" | "permitted" | "inheritable" | "ambient", unknown>>; noNewPrivileges?: unknown };
  linux?: { seccomp?: unknown };
}

/** One thread of the dumped tree and its core image (undefined: the image is missing). */
export interface ThreadCore {
  pid: number;
  tid: number;
  core: CoreEntry | undefined;
}

/** The capability numbers a spec list names; names this kernel's table does not know are skipped, as runc skips them. */
function specCapabilities(list: unknown): Set<number> {
  const out = new Set<number>();
  if (!Array.isArray(list)) return out;
  for (const name of list) {
    const i = typeof name === "string" ? CAPABILITIES.indexOf(name.replace(/^CAP_/, "")) : -1;
    if (i >= 0) out.add(i);
  }
  return out;
}

/** Checks every thread against the spec (see the module comment); INVALID_ARGUMENT naming the first thread and what it has. */
export function checkThreadCreds(threads: readonly ThreadCore[], spec: CredsSpec, where: string): void {
  const caps = spec.process?.capabilities ?? {};
  const bounding = specCapabilities(caps.bounding);
  const granted = new Set([...bounding, ...specCapabilities(caps.effective), ...specCapabilities(caps.permitted), ...specCapabilities(caps.inheritable), ...specCapabilities(caps.ambient)]);
  const noNewPrivileges = spec.process?.noNewPrivileges === true;
  const seccomp = spec.linux?.seccomp !== undefined && spec.linux?.seccomp !== null;
  for (const t of threads) {
    const who = t.tid === t.pid ? `task ${t.pid}` : `thread ${t.tid} of task ${t.pid}`;
    const refuse = (detail: string) => invalidArgument(where, { detail: `${who}: ${detail}` });
    const creds = t.core?.threadCore?.creds;
    if (!t.core) throw refuse(`no core-${t.tid}.img`);
    if (!creds) throw refuse("its core image has no credentials (CRIU would restore it with its own, root's)");
    const sets: [string, number[], Set<number>, string][] = [
      ["bounding", creds.capBnd, bounding, "bounding set"],
      ["permitted", creds.capPrm, granted, "capabilities"],
      ["effective", creds.capEff, granted, "capabilities"],
      ["inheritable", creds.capInh, granted, "capabilities"],
      ["ambient", creds.capAmb, granted, "capabilities"],
    ];
    for (const [name, words, allowed, specSets] of sets) {
      const extra = capabilityNumbers(words).filter((c) => !allowed.has(c));
      if (extra.length > 0) throw refuse(`its ${name} capabilities hold ${extra.map(capabilityName).join(", ")}, which the spec's ${specSets} do${specSets === "bounding set" ? "es" : ""} not grant`);
    }
    if (noNewPrivileges && creds.noNewPrivs !== 1) throw refuse("no_new_privs is off, and the spec sets noNewPrivileges");
    if (seccomp && t.core.threadCore?.seccompMode !== SeccompMode.FILTER) throw refuse("it has no seccomp filter, and the spec has a seccomp profile");
  }
}

/** Reads pstree.img and the core image of every thread of imagesDir (a checked checkpoint directory). */
export function readThreadCores(imagesDir: string): ThreadCore[] {
  const read = (name: string) => new Uint8Array(readFileSync(join(imagesDir, name)));
  const out: ThreadCore[] = [];
  for (const task of decodeImage(PstreeEntrySchema, read("pstree.img"), "pstree.img", ImageMagic.pstree)) {
    const tids = task.threads.length > 0 ? task.threads : [task.pid];
    for (const tid of tids) {
      const name = `core-${tid}.img`;
      const core = existsSync(join(imagesDir, name)) ? decodeImage(CoreEntrySchema, read(name), name, ImageMagic.core)[0] : undefined;
      out.push({ pid: task.pid, tid, core });
    }
  }
  return out;
}
