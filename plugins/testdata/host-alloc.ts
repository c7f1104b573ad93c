// Bad plugin for tests: exceeds its memory limit in Extism's host memory, not in its own linear memory
// (or, with `holds`, in its own far from the cap).
// It logs `logs` lines (default 0), then sets its output `count` times (default 2) from one buffer of
// `bytes` bytes (default 10 MiB): each output is a new block of Extism's, none is freed within the call,
// so with a 16 MiB limit the second one passes the cap while the plugin's own memory holds one buffer.
import { config, Host, log } from "../sdk/assembly/index";

// With `hold` (bytes) and `holds` (count), it first keeps that many arrays of its own: 12 MiB twice under a 16 MiB
// limit makes AssemblyScript's allocator trap (`unreachable`, no abort message) with the memory at 12 MiB.
const held: Array<Uint8Array> = [];

export function admit(): i32 {
  const holds = <i32>parseInt(config("holds", "0"));
  for (let i = 0; i < holds; i++) held.push(new Uint8Array(<i32>parseInt(config("hold", "0"))));
  const logs = <i32>parseInt(config("logs", "0"));
  for (let i = 0; i < logs; i++) log("line " + i.toString());
  const buf = new Uint8Array(<i32>parseInt(config("bytes", "10485760")));
  const count = <i32>parseInt(config("count", "2"));
  for (let i = 0; i < count; i++) Host.output(buf);
  return 0;
}
