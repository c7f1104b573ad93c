import { describe, expect, test } from "bun:test";
import {
  Code,
  CryoError,
  alreadyExists,
  deadlineExceeded,
  failedPrecondition,
  invalidArgument,
  notFound,
  notImplemented,
  unavailable,
  unknown,
} from "../../../src/errors.ts";
import { connect } from "../../../src/ttrpc/index.ts";
import { startEchoServer } from "./echo-fixture.ts";

// Every errors.ts helper, thrown by a handler, arrives at the client as the same code and message.
const table = [
  { name: "notFound", make: notFound, code: Code.NOT_FOUND, message: "thing t1: not found" },
  { name: "alreadyExists", make: alreadyExists, code: Code.ALREADY_EXISTS, message: "thing t1: already exists" },
  { name: "invalidArgument", make: invalidArgument, code: Code.INVALID_ARGUMENT, message: "thing t1: invalid argument" },
  { name: "failedPrecondition", make: failedPrecondition, code: Code.FAILED_PRECONDITION, message: "thing t1: failed precondition" },
  { name: "notImplemented", make: notImplemented, code: Code.UNIMPLEMENTED, message: "thing t1: not implemented" },
  { name: "unavailable", make: unavailable, code: Code.UNAVAILABLE, message: "thing t1: unavailable" },
  { name: "deadlineExceeded", make: deadlineExceeded, code: Code.DEADLINE_EXCEEDED, message: "thing t1: context deadline exceeded" },
  { name: "unknown", make: unknown, code: Code.UNKNOWN, message: "thing t1: unknown" },
] as const;

describe("error taxonomy through a real ttrpc round trip", () => {
  for (const row of table) {
    test(`${row.name} -> code ${row.code}`, async () => {
      await using s = startEchoServer((server) =>
        server.registerRaw("cryo.testing.v1.Errors", row.name, async () => {
          throw row.make("thing t1");
        }),
      );
      using c = await connect(s.path);
      let err: unknown;
      try {
        await c.callRaw("cryo.testing.v1.Errors", row.name, new Uint8Array(0));
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(CryoError);
      expect((err as CryoError).code).toBe(row.code);
      expect((err as CryoError).message).toBe(row.message);
    });
  }

  test("a status code outside the taxonomy arrives as UNKNOWN", async () => {
    await using s = startEchoServer((server) =>
      server.registerRaw("cryo.testing.v1.Errors", "Odd", async () => {
        throw new CryoError(99 as Code, "odd code");
      }),
    );
    using c = await connect(s.path);
    let err: unknown;
    try {
      await c.callRaw("cryo.testing.v1.Errors", "Odd", new Uint8Array(0));
    } catch (e) {
      err = e;
    }
    expect((err as CryoError).code).toBe(Code.UNKNOWN);
    expect((err as CryoError).message).toBe("odd code");
  });
});
