import { expect, test } from "bun:test";
import { parsePreciseJson, stringifyPreciseJson } from "../../../src/sys/precise-json.ts";

test("64-bit integers survive a parse and a stringify (an rlimit's RLIM_INFINITY, int64 limits); the rest is JSON.parse's", () => {
  // Found by hand: an exec of a container whose spec has rlimit core=18446744073709551615 (nerdctl --ulimit core=-1)
  // failed with cryo, runc refusing "cannot unmarshal number 18446744073709552000 ... of type uint64".
  const text = '{"rlimits":[{"type":"RLIMIT_CORE","hard":18446744073709551615,"soft":18446744073709551615}],"limit":9223372036854775807,"min":-9223372036854775808,"small":42,"f":1.5,"e":1e300,"s":"18446744073709551615"}';
  const v = parsePreciseJson(text) as Record<string, unknown>;
  expect((v.rlimits as { hard: unknown }[])[0]!.hard).toBe(18446744073709551615n);
  expect([v.limit, v.min, v.small, v.f, v.e, v.s]).toEqual([9223372036854775807n, -9223372036854775808n, 42, 1.5, 1e300, "18446744073709551615"]);
  expect(stringifyPreciseJson(v)).toBe(text.replace("1e300", "1e+300"));
  expect(() => parsePreciseJson("{")).toThrow();
});

test("a text without sixteen digits in a row (no integer beyond the safe range) parses as JSON.parse parses it", () => {
  const texts = ['{"a":9007199254740991,"b":-9007199254740991,"c":1.25,"d":"x","e":[1,2,{"f":null}]}', "[]", '"s"', "123456789012345"];
  for (const t of texts) expect(parsePreciseJson(t)).toEqual(JSON.parse(t));
  // Sixteen digits anywhere (a string, a fraction) take the exact path, whose answer is the same for them.
  expect(parsePreciseJson('{"s":"1234567890123456","f":0.1234567890123456,"n":9007199254740993}')).toEqual({ s: "1234567890123456", f: 0.1234567890123456, n: 9007199254740993n });
  expect(() => parsePreciseJson("{")).toThrow();
});
