// A client of bench/shim-flood.ts, in a process of its own so that its work does not slow the probes: sends N State
// calls for one container at once over C connections to a shim daemon's socket, then prints the failures.
// Usage: bun bench/flood-client.ts SOCKET NAMESPACE ID N C
import { Task as TaskV2 } from "../src/gen/containerd/runtime/task/v2/shim_pb.ts";
import { connect } from "../src/ttrpc/index.ts";

const [socket, namespace, id, n, c] = process.argv.slice(2);
const clients = await Promise.all(Array.from({ length: Number(c) }, () => connect(socket!)));
let failed = 0;
await Promise.all(Array.from({ length: Number(n) }, (_, i) => clients[i % clients.length]!.call(TaskV2, "state", { id: id! } as never, { namespace: namespace!, timeoutMs: 600_000 }).catch(() => void failed++)));
for (const x of clients) x.close();
console.log(JSON.stringify({ failed }));
