// Bad plugin for tests: returns output that is not JSON.
import { output } from "../sdk/assembly/index";

export function admit(): i32 {
  output('{"allow": true, "reason": "unterminated');
  return 0;
}
