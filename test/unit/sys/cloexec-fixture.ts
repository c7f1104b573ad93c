// Helper program for cloexec.test.ts: a Bun child started with extra fds 3, 4, 5. Prints the fdinfo
// flags of fds 3..5 as found at startup (one JSON line), calls clearCloexec() on them when argv[2] is
// "clear", then execs bash with a plain execv(3) (as libcriu execs criu swrk; Bun's process.execve
// closes every fd above 2 itself, so it cannot show this), which prints the fds among 3..5 it kept.
import { readFileSync, writeSync } from "node:fs";
import { dlopen, FFIType, ptr } from "bun:ffi";
import { clearCloexec } from "../../../src/sys/index.ts";

const fds = [3, 4, 5];
const flags = (fd: number) => /flags:\s+(\d+)/.exec(readFileSync(`/proc/self/fdinfo/${fd}`, "utf8"))?.[1] ?? "none";
writeSync(1, `${JSON.stringify(Object.fromEntries(fds.map((fd) => [fd, flags(fd)])))}\n`);
if (process.argv[2] === "clear") for (const fd of fds) clearCloexec(fd);

const { execv } = dlopen("libc.so.6", { execv: { args: [FFIType.ptr, FFIType.ptr], returns: FFIType.i32 } }).symbols;
const strings = ["/bin/bash", "bash", "-c", "for f in 3 4 5; do [ -e /proc/$$/fd/$f ] && printf '%s ' $f; done; echo"].map((s) => Buffer.from(`${s}\0`));
const argv = new BigUint64Array([...strings.slice(1).map((b) => BigInt(ptr(b))), 0n]);
execv(strings[0]!, argv);
throw new Error("execv failed");
