/**
 * A hard memory cap for a plugin: the module's own memory declaration gets a maximum.
 *
 * Extism's JS host limits only the memory it hands out itself (input, output, vars); a plugin's
 * linear memory grows with memory.grow up to 4 GiB. cryo rewrites the memory section of the module
 * (id 5) so that its maximum is at most the configured number of 64 KiB pages: memory.grow past it
 * fails inside the plugin (AssemblyScript's allocator then traps), and the host process never
 * grows beyond the cap.
 */
import { invalidArgument } from "../errors.ts";

/** One WebAssembly page. */
export const wasmPageBytes = 65536;

function readLeb(bytes: Uint8Array, at: number): [value: number, next: number] {
  let result = 0;
  let shift = 0;
  for (;;) {
    const b = bytes[at++];
    if (b === undefined) throw new Error("truncated LEB128");
    result += (b & 0x7f) * 2 ** shift;
    shift += 7;
    if ((b & 0x80) === 0) return [result, at];
    if (shift > 35) throw new Error("LEB128 too long");
  }
}

function writeLeb(value: number): number[] {
  const out: number[] = [];
  do {
    let b = value % 128;
    value = Math.floor(value / 128);
    if (value !== 0) b |= 0x80;
    out.push(b);
  } while (value !== 0);
  return out;
}

/** The result of capping a module's memory. */
export interface CappedModule {
  bytes: Uint8Array<ArrayBuffer>;
  /** Pages the module starts with. */
  initialPages: number;
  /** The maximum now declared (≤ the cap). */
  maxPages: number;
}

/**
 * Returns a copy of a wasm binary whose memory maximum is at most `maxPages`. `what` names the
 * plugin in errors. A module without its own memory, or one that needs more than the cap to start,
 * is refused.
 */
export function capModuleMemory(wasm: Uint8Array, maxPages: number, what: string): CappedModule {
  const fail = (detail: string) => invalidArgument(what, { detail });
  if (wasm.length < 8 || wasm[0] !== 0 || wasm[1] !== 0x61 || wasm[2] !== 0x73 || wasm[3] !== 0x6d) throw fail("not a WebAssembly module");
  let at = 8;
  try {
    while (at < wasm.length) {
      const id = wasm[at]!;
      const [size, payload] = readLeb(wasm, at + 1);
      const end = payload + size;
      if (end > wasm.length) throw new Error("section runs past the end of the file");
      if (id === 5) {
        const [count, first] = readLeb(wasm, payload);
        if (count !== 1) throw new Error(`${count} memories (cryo supports exactly one)`);
        const flags = wasm[first]!;
        if (flags & ~0x01) throw new Error(`unsupported memory flags 0x${flags.toString(16)} (shared or 64-bit memory)`);
        const [initial, afterMin] = readLeb(wasm, first + 1);
        let declaredMax = Infinity;
        let afterLimits = afterMin;
        if (flags & 0x01) [declaredMax, afterLimits] = readLeb(wasm, afterMin);
        if (afterLimits !== end) throw new Error("malformed memory section");
        if (initial > maxPages) throw fail(`needs ${initial} pages (${initial * wasmPageBytes} bytes) of memory to start, above its limit of ${maxPages} pages`);
        const max = Math.min(declaredMax, maxPages);
        const body = [1, 0x01, ...writeLeb(initial), ...writeLeb(max)];
        const section = [5, ...writeLeb(body.length), ...body];
        const out = new Uint8Array(at + section.length + (wasm.length - end));
        out.set(wasm.subarray(0, at), 0);
        out.set(section, at);
        out.set(wasm.subarray(end), at + section.length);
        return { bytes: out, initialPages: initial, maxPages: max };
      }
      at = end;
    }
  } catch (err) {
    if (err instanceof Error && err.name === "CryoError") throw err;
    throw fail(`cannot read module: ${(err as Error).message}`);
  }
  throw fail("module defines no memory of its own");
}
