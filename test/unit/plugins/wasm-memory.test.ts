import { describe, expect, test } from "bun:test";
import { capModuleMemory } from "../../../src/plugins/wasm-memory.ts";

// (module (memory 2) (export "memory" (memory 0)))
const noMax = new Uint8Array([0, 0x61, 0x73, 0x6d, 1, 0, 0, 0, 5, 3, 1, 0, 2, 7, 10, 1, 6, 0x6d, 0x65, 0x6d, 0x6f, 0x72, 0x79, 2, 0]);
// (module (memory 1 1000))  -- max 1000 = 0xe8 0x07
const withMax = new Uint8Array([0, 0x61, 0x73, 0x6d, 1, 0, 0, 0, 5, 5, 1, 1, 1, 0xe8, 0x07]);

function memoryOf(bytes: Uint8Array): WebAssembly.Memory {
  const mod = new WebAssembly.Module(bytes);
  if (!WebAssembly.Module.exports(mod).some((e) => e.name === "memory")) throw new Error("no memory export");
  return new WebAssembly.Instance(mod).exports.memory as WebAssembly.Memory;
}

describe("capModuleMemory", () => {
  test("adds a maximum that memory.grow cannot pass", () => {
    const capped = capModuleMemory(noMax, 4, "plugin t");
    expect(capped).toMatchObject({ initialPages: 2, maxPages: 4 });
    const mem = memoryOf(capped.bytes);
    expect(mem.grow(2)).toBe(2);
    expect(() => mem.grow(1)).toThrow(RangeError);
  });

  test("lowers a larger declared maximum and keeps a smaller one", () => {
    expect(capModuleMemory(withMax, 512, "p").maxPages).toBe(512);
    expect(capModuleMemory(withMax, 5000, "p").maxPages).toBe(1000);
    expect(() => new WebAssembly.Module(capModuleMemory(withMax, 512, "p").bytes)).not.toThrow();
  });

  test("refuses modules that need more than the cap, have no memory, or are not wasm", () => {
    expect(() => capModuleMemory(noMax, 1, "plugin t")).toThrow("plugin t: invalid argument: needs 2 pages");
    expect(() => capModuleMemory(new Uint8Array([0, 0x61, 0x73, 0x6d, 1, 0, 0, 0]), 4, "plugin t")).toThrow("module defines no memory of its own");
    expect(() => capModuleMemory(new TextEncoder().encode("not wasm at all"), 4, "plugin t")).toThrow("not a WebAssembly module");
  });
});
