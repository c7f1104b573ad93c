// Helper program for console-socket.test.ts: opens argv[3] read-only and sends its descriptor to the
// unix socket at argv[2] with SCM_RIGHTS (through a second FFI socket, in another process), then exits.
import { openSync } from "node:fs";
import { sendFd } from "../../../src/sys/index.ts";

const [socketPath, file, name] = process.argv.slice(2);
if (socketPath === undefined || file === undefined) throw new Error("usage: send-fd-fixture SOCKET FILE [NAME]");
sendFd(socketPath, openSync(file, "r"), name ?? file);
