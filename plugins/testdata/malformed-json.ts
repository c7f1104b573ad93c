// Bad plugin for tests: returns output that is not JSON.
import { config, output } from "../sdk/assembly/index";

export function admit(): i32 {
  output('{"allow": true, "reason": "unterminated');
  return 0;
}

// Valid JSON of the wrong shape: "allow" must be a boolean.
export function checkpoint(): i32 {
  output('{"allow": "yes", "options": {"tcpEstablished": true}}');
  return 0;
}

// Valid JSON with a key the schema does not know, named by `key_length` characters (default 8): an
// error that quotes the key must stay within ttrpc's 4 MiB message limit however long the key is.
export function restore(): i32 {
  output('{"allow": true, "' + "k".repeat(<i32>parseInt(config("key_length", "8"))) + '": 1}');
  return 0;
}
