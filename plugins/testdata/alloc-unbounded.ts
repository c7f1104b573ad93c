// Bad plugin for tests: allocates memory until something stops it.
import { output } from "../sdk/assembly/index";

const hoard: Array<Uint8Array> = [];

export function admit(): i32 {
  while (true) {
    const chunk = new Uint8Array(1 << 20);
    chunk[0] = 1;
    hoard.push(chunk);
  }
  output('{"allow":true}');
  return 0;
}
