/** Takes the socket lock of argv[2], says "held" on stdout, and keeps it until killed (socket-lock.test.ts). */
import { lockSocket } from "../../../src/shim/socket-lock.ts";

await lockSocket(process.argv[2]!);
process.stdout.write("held\n");
await Bun.sleep(120_000);
