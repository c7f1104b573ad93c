// Bad plugin for tests: returns output that is not JSON.
import { output } from "../sdk/assembly/index";

export function admit(): i32 {
  output('{"allow": true, "reason": "unterminated');
  return 0;
}

// Valid JSON of the wrong shape: "allow" must be a boolean.
export function checkpoint(): i32 {
  output('{"allow": "yes", "options": {"tcpEstablished": true}}');
  return 0;
}
