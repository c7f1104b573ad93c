// Bad plugin for tests: never returns.
import { output } from "../sdk/assembly/index";

export function admit(): i32 {
  let n: i64 = 0;
  while (n >= 0) n = (n + 1) & 0xffff;
  output('{"allow":true}');
  return 0;
}
