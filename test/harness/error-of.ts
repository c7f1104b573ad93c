import { CryoError } from "../../src/errors.ts";

/** The CryoError fn throws; fails the test when fn returns. */
export function errorOf(fn: () => unknown): CryoError {
  try {
    fn();
  } catch (err) {
    return CryoError.from(err);
  }
  throw new Error("expected an error, got none");
}
