// Bad plugin for tests: keeps `bytes` bytes (default 6 MiB) per call in a new Extism variable. Variables
// outlive the call, in the host's memory, not the plugin's: without a cap on them, a plugin limited to
// 16 MiB grew the runner by 6 MiB with every container.
import { Var } from "../sdk/assembly/index";
import { config, output } from "../sdk/assembly/index";

export function admit(): i32 {
  const seen = Var.getString("calls");
  const n = seen === null ? 0 : <i32>parseInt(seen);
  Var.set("hoard-" + n.toString(), new Uint8Array(<i32>parseInt(config("bytes", "6291456"))));
  Var.set("calls", Uint8Array.wrap(String.UTF8.encode((n + 1).toString())));
  output('{"allow":true,"reason":"calls: ' + (n + 1).toString() + '"}');
  return 0;
}
