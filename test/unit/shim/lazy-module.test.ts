/** lazyModule: what the daemon loads on first use (engine.ts) is loaded once, and a failed load is a clear CryoError. */
import { describe, expect, test } from "bun:test";
import { Code, CryoError } from "../../../src/errors.ts";
import { lazyModule } from "../../../src/shim/lazy-module.ts";

describe("lazyModule", () => {
  test("loads on the first call only, and every call gets the same module", async () => {
    let loads = 0;
    const mod = lazyModule("a test module", async () => {
      loads++;
      return { value: 42 };
    });
    expect(loads).toBe(0);
    const [a, b] = await Promise.all([mod(), mod()]);
    const c = await mod();
    expect(loads).toBe(1);
    expect(a).toBe(b);
    expect(c).toBe(a);
    expect(c.value).toBe(42);
  });

  test("a real dynamic import resolves to the module", async () => {
    const mod = lazyModule("the version module", () => import("../../../src/shim/version.ts"));
    expect(typeof (await mod()).SHIM_VERSION).toBe("string");
  });

  test("a failed load rejects with an INTERNAL CryoError naming what was loaded, and the next call tries again", async () => {
    let loads = 0;
    const mod = lazyModule("the widget code (widget.ts)", async () => {
      loads++;
      if (loads === 1) throw new Error("Cannot find module './widget.ts'");
      return { ok: true };
    });
    const err = await mod().then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(CryoError);
    expect((err as CryoError).code).toBe(Code.INTERNAL);
    expect((err as CryoError).message).toBe("shim: loading the widget code (widget.ts) failed: Cannot find module './widget.ts'");
    expect(((err as CryoError).cause as Error).message).toBe("Cannot find module './widget.ts'");
    expect((await mod()).ok).toBe(true);
    expect(loads).toBe(2);
  });

  test("a module that does not exist gives a CryoError, not a raw import error", async () => {
    const mod = lazyModule("a missing module", () => import("../../../src/shim/no-such-module.ts" as string));
    const err = await mod().then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(CryoError);
    expect((err as CryoError).code).toBe(Code.INTERNAL);
    expect((err as CryoError).message).toStartWith("shim: loading a missing module failed: ");
  });
});
