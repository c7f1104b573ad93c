import { describe, expect, test } from "bun:test";
import { Code, CryoError } from "../../../src/errors.ts";
import { uniqueId, waitFor } from "../../harness/index.ts";

describe("waitFor", () => {
  test("returns the first truthy value, polling through falsy ones and throws", async () => {
    let calls = 0;
    const value = await waitFor(
      () => {
        calls++;
        if (calls === 1) throw new Error("not yet");
        return calls >= 3 ? `ready after ${calls}` : undefined;
      },
      { intervalMs: 1 },
    );
    expect(value).toBe("ready after 3");
  });

  test("fails with DEADLINE_EXCEEDED naming what it waited for and the last error", async () => {
    const err = await waitFor(
      () => {
        throw new Error("still broken");
      },
      { timeoutMs: 20, intervalMs: 5, what: "the thing" },
    ).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(CryoError);
    expect((err as CryoError).code).toBe(Code.DEADLINE_EXCEEDED);
    expect((err as CryoError).message).toContain("wait for the thing: context deadline exceeded");
    expect((err as CryoError).message).toContain("still broken");
  });

  test("0 is a value, not a failure to wait for", async () => {
    expect(await waitFor(() => 0)).toBe(0);
  });
});

describe("uniqueId", () => {
  test("is prefixed, lowercase and different each time", () => {
    const a = uniqueId("ns");
    expect(a).toMatch(/^ns-\d+-[0-9a-f]{8}$/);
    expect(uniqueId("ns")).not.toBe(a);
  });
});
