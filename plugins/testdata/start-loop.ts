// Bad plugin for tests: its top-level code (the module's start function, run at instantiation) never returns.
import { output } from "../sdk/assembly/index";

let n: i64 = 0;
while (n >= 0) n = (n + 1) & 0xffff;

export function admit(): i32 {
  output('{"allow":true}');
  return 0;
}
