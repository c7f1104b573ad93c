/**
 * Freezing and thawing on cgroupfs, waiting (asynchronously, with back-off) until the kernel reports
 * the state reached. v1: freezer.state goes THAWED -> FREEZING -> FROZEN; a freeze that stays in
 * FREEZING (a task in an uninterruptible sleep, or one that forked mid-freeze) is retried by thawing
 * and freezing again, as runc does. v2: cgroup.freeze 1/0, done when cgroup.events says `frozen 1/0`.
 */
import { join } from "node:path";
import { deadlineExceeded } from "../errors.ts";
import { readText, sleep, writeValue } from "./cgroupfs.ts";
import type { FreezerState } from "./manager.ts";
import { parseFlatKeyed, parseFreezerState } from "./parse.ts";

const DEFAULT_TIMEOUT_MS = 5000;
/** After this many attempts stuck in FREEZING, thaw briefly and freeze again. */
const RETHAW_EVERY = 50;

/** Freezes a v1 freezer cgroup; DEADLINE_EXCEEDED (after thawing it back) when it never reaches FROZEN. */
export async function freezeV1(dir: string, timeoutMs = DEFAULT_TIMEOUT_MS): Promise<void> {
  const file = join(dir, "freezer.state");
  const deadline = Date.now() + timeoutMs;
  let delay = 0.1;
  for (let attempt = 1; ; attempt++) {
    if (attempt % RETHAW_EVERY === 0) {
      await writeValue(file, "THAWED");
      await sleep(10);
    }
    await writeValue(file, "FROZEN");
    const state = parseFreezerState(await readText(file));
    if (state === "FROZEN") return;
    if (Date.now() >= deadline) {
      await writeValue(file, "THAWED");
      throw deadlineExceeded(`freeze cgroup ${dir}`, { detail: `still ${state} after ${timeoutMs} ms` });
    }
    await sleep(delay);
    delay = Math.min(delay * 2, 10);
  }
}

/** Thaws a v1 freezer cgroup and waits for THAWED. */
export async function thawV1(dir: string, timeoutMs = DEFAULT_TIMEOUT_MS): Promise<void> {
  const file = join(dir, "freezer.state");
  const deadline = Date.now() + timeoutMs;
  let delay = 0.1;
  for (;;) {
    await writeValue(file, "THAWED");
    const state = parseFreezerState(await readText(file));
    if (state === "THAWED") return;
    if (Date.now() >= deadline) {
      throw deadlineExceeded(`thaw cgroup ${dir}`, { detail: `still ${state} after ${timeoutMs} ms` });
    }
    await sleep(delay);
    delay = Math.min(delay * 2, 10);
  }
}

/** Reads a v1 freezer state: "frozen" only when FROZEN (FREEZING counts as thawed: not all tasks stopped). */
export async function stateV1(dir: string): Promise<FreezerState> {
  return parseFreezerState(await readText(join(dir, "freezer.state"))) === "FROZEN" ? "frozen" : "thawed";
}

/** True when cgroup.events text says the cgroup is frozen. */
export function eventsFrozen(text: string): boolean {
  return parseFlatKeyed(text).get("frozen") === 1n;
}

async function setV2(dir: string, frozen: boolean, timeoutMs: number): Promise<void> {
  await writeValue(join(dir, "cgroup.freeze"), frozen ? "1" : "0");
  const deadline = Date.now() + timeoutMs;
  let delay = 0.1;
  for (;;) {
    if (eventsFrozen(await readText(join(dir, "cgroup.events"))) === frozen) return;
    if (Date.now() >= deadline) {
      if (frozen) await writeValue(join(dir, "cgroup.freeze"), "0");
      const what = frozen ? "freeze" : "thaw";
      throw deadlineExceeded(`${what} cgroup ${dir}`, { detail: `cgroup.events did not report frozen ${frozen ? 1 : 0} after ${timeoutMs} ms` });
    }
    await sleep(delay);
    delay = Math.min(delay * 2, 10);
  }
}

/** Freezes a v2 cgroup (cgroup.freeze 1) and waits for `frozen 1` in cgroup.events. */
export function freezeV2(dir: string, timeoutMs = DEFAULT_TIMEOUT_MS): Promise<void> {
  return setV2(dir, true, timeoutMs);
}

/** Thaws a v2 cgroup (cgroup.freeze 0) and waits for `frozen 0` in cgroup.events. */
export function thawV2(dir: string, timeoutMs = DEFAULT_TIMEOUT_MS): Promise<void> {
  return setV2(dir, false, timeoutMs);
}

/** Reads a v2 freezer state: "frozen" when cgroup.freeze is 1 and the kernel reports frozen. */
export async function stateV2(dir: string): Promise<FreezerState> {
  const [want, events] = await Promise.all([readText(join(dir, "cgroup.freeze")), readText(join(dir, "cgroup.events"))]);
  return want.trim() === "1" && eventsFrozen(events) ? "frozen" : "thawed";
}
