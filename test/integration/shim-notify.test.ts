/**
 * sd_notify through the cryo shim, against a private containerd that runs as systemd runs a notify service
 * (NOTIFY_SOCKET in its environment): that socket reaches no container, and `cryo.notify/socket` forwards a
 * container's sd_notify messages to a host socket of the user's, also after a restore. The host sockets are served by a small static program
 * that writes each datagram it gets to a file; the container sends with another, bound in.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { compileStaticC } from "../harness/compile-c.ts";
import { ensureTestImage, removeContainer, startPrivateContainerd, taskPid, taskStatus, testImage, uniqueId, waitFor, type PrivateContainerd } from "../harness/index.ts";

const RUNTIME = "io.containerd.cryo.v2";
const LISTEN_C = `#include <sys/socket.h>
#include <sys/un.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
int main(int argc, char **argv) {
  int s = socket(AF_UNIX, SOCK_DGRAM, 0);
  struct sockaddr_un a = {.sun_family = AF_UNIX};
  strncpy(a.sun_path, argv[1], sizeof(a.sun_path) - 1);
  if (bind(s, (struct sockaddr *)&a, sizeof a)) { perror("bind"); return 1; }
  FILE *out = fopen(argv[2], "a");
  char buf[4096];
  for (;;) {
    ssize_t n = recv(s, buf, sizeof buf, 0);
    if (n < 0) { perror("recv"); return 1; }
    fwrite(buf, 1, n, out); fputs("\\n--\\n", out); fflush(out);
  }
}
`;
const SDNOTIFY_C = `#include <sys/socket.h>
#include <sys/un.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
int main(int argc, char **argv) {
  const char *p = getenv("NOTIFY_SOCKET");
  if (!p) { fprintf(stderr, "no NOTIFY_SOCKET\\n"); return 2; }
  int s = socket(AF_UNIX, SOCK_DGRAM, 0);
  struct sockaddr_un a = {.sun_family = AF_UNIX};
  strncpy(a.sun_path, p, sizeof(a.sun_path) - 1);
  for (int i = 1; i < argc; i++)
    if (sendto(s, argv[i], strlen(argv[i]), 0, (struct sockaddr *)&a, sizeof a) < 0) { perror("sendto"); return 1; }
  return 0;
}
`;

let pc: PrivateContainerd;
let ns: string;
let dir: string;
let listen: string;
const listeners: ReturnType<typeof Bun.spawn>[] = [];

/** Serves a unixgram socket at <dir>/<name>.sock; returns its path and a reader of what it got, one datagram per entry (trimmed: runc ends each with a newline). */
function socketOf(name: string): { path: string; got: () => string[] } {
  const path = join(dir, `${name}.sock`);
  const out = join(dir, `${name}.out`);
  listeners.push(Bun.spawn([listen, path, out], { stdout: "ignore", stderr: "inherit" }));
  return { path, got: () => (existsSync(out) ? readFileSync(out, "utf8").split("\n--\n").map((d) => d.trim()).filter((d) => d !== "") : []) };
}

let systemd: ReturnType<typeof socketOf>;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "cryo-notify-"));
  listen = compileStaticC(dir, "listen", LISTEN_C);
  compileStaticC(dir, "sdnotify", SDNOTIFY_C);
  systemd = socketOf("systemd");
  await waitFor(() => existsSync(systemd.path) || undefined, { what: "the systemd socket" });
  ns = uniqueId("notify");
  pc = await startPrivateContainerd({ namespace: ns, env: { NOTIFY_SOCKET: systemd.path } });
  await ensureTestImage(pc);
}, 120_000);

afterAll(async () => {
  await pc?.stop();
  for (const l of listeners) l.kill();
  await Promise.all(listeners.map((l) => l.exited));
  rmSync(dir, { recursive: true, force: true });
}, 60_000);

const remove = (id: string) => removeContainer(pc, id, { stopped: "not-running" });
const withSdnotify = ["--mount", `type=bind,src=DIR,dst=/nb,options=rbind:ro`];
const bindTools = () => withSdnotify.map((a) => a.replace("DIR", dir));

test("containerd's own NOTIFY_SOCKET (systemd's) reaches no container: ctr run -d answers, and the container has neither the variable nor runc's /run/notify", async () => {
  // containerd itself told "systemd" it is ready: the variable is in its environment, and so in its shims'.
  expect(systemd.got()).toContain("READY=1");
  const id = uniqueId("plain");
  // Before the fix, runc proxied the socket into the container and `runc start` waited for READY=1: ctr run hung.
  await pc.ctrOk(["run", "-d", "--runtime", RUNTIME, testImage, id, "sleep", "1000"], { timeoutMs: 60_000 });
  expect(await taskStatus(pc, id)).toBe("RUNNING");
  const pid = (await taskPid(pc, id))!;
  expect(readFileSync(`/proc/${pid}/environ`, "utf8").split("\0").filter((v) => v.startsWith("NOTIFY_SOCKET="))).toEqual([]);
  expect(readFileSync(`/proc/${pid}/mountinfo`, "utf8")).not.toContain(" /run/notify ");
  await remove(id);
}, 120_000);

test("cryo.notify/socket: the container's READY=1 reaches the host socket with MAINPID, after Start answered; and what the restored process sends", async () => {
  const app = socketOf("app");
  await waitFor(() => existsSync(app.path) || undefined, { what: "the app socket" });
  // A 64-character id, as Kubernetes gives: runc's own proxy could not bind its socket path (111 bytes).
  const id = `${uniqueId("ready")}-${"0".repeat(64)}`.slice(0, 64);
  // Ready after a second; then a STATUS= line each time /tmp/again appears.
  const script = "sleep 1; /nb/sdnotify READY=1 MAINPID=1; while true; do sleep 0.2; if [ -e /tmp/again ]; then rm /tmp/again; /nb/sdnotify STATUS=again; fi; done";
  await pc.ctrOk(["run", "-d", "--runtime", RUNTIME, "--annotation", `cryo.notify/socket=${app.path}`, ...bindTools(), testImage, id, "sh", "-c", script], { timeoutMs: 60_000 });
  // Start answered before the process was ready.
  expect(app.got()).toEqual([]);
  expect(await taskStatus(pc, id)).toBe("RUNNING");
  const pid = (await taskPid(pc, id))!;
  expect(readFileSync(`/proc/${pid}/environ`, "utf8").split("\0")).toContain("NOTIFY_SOCKET=/run/notify/notify.sock");
  // The container's MAINPID (its own namespace's) is dropped; the init's host pid goes with READY=1.
  await waitFor(() => (app.got().length >= 1 ? true : undefined), { what: "READY=1 forwarded" });
  expect(app.got()).toEqual([`READY=1\nMAINPID=${pid}`]);
  // The shim's log reaches containerd's through a FIFO, after the datagram: it is waited for (read at once, it was
  // not there yet in one fresh-clone run).
  const forwarded = `container ${id}: READY=1 forwarded to ${app.path}`;
  await waitFor(() => (readFileSync(pc.layout.log, "utf8").includes(forwarded) ? true : undefined), { what: "the shim's log of the forward" });
  expect(systemd.got().filter((d) => d.includes("MAINPID"))).toEqual([]); // nothing of it went to containerd's socket
  await pc.ctrOk(["task", "exec", "--exec-id", "again1", id, "touch", "/tmp/again"]);
  await waitFor(() => (app.got().length >= 2 ? true : undefined), { what: "STATUS= forwarded" });
  expect(app.got()[1]).toBe("STATUS=again");

  // Checkpointed and restored: runc's notify directory is the new container's, and the daemon serves its socket again.
  const ref = `localhost/checkpoint/${id}:1`;
  await pc.ctrOk(["containers", "checkpoint", "--task", id, ref], { timeoutMs: 120_000 });
  await remove(id);
  const r = await pc.ctr(["containers", "restore", "--live", id, ref], { timeoutMs: 120_000 });
  expect(r.stderr).toBe("");
  expect(r.exitCode).toBe(0);
  const restored = (await taskPid(pc, id))!;
  expect(readFileSync(`/proc/${restored}/mountinfo`, "utf8")).toContain(`/run/containerd/runc/${ns}/${id}/notify /run/notify `);
  await pc.ctrOk(["task", "exec", "--exec-id", "again2", id, "touch", "/tmp/again"]);
  await waitFor(() => (app.got().length >= 3 ? true : undefined), { what: "the restored process's STATUS= forwarded" });
  expect(app.got()[2]).toBe("STATUS=again");
  await remove(id);
  expect(existsSync(`/run/containerd/runc/${ns}/${id}`)).toBe(false);
  await pc.ctr(["images", "rm", "--sync", ref]);
}, 180_000);

test("cryo.notify/socket: a bad path fails ctr run naming the annotation; a socket that is not there leaves the container running and a warning", async () => {
  const bad = uniqueId("bad");
  const r = await pc.ctr(["run", "-d", "--runtime", RUNTIME, "--annotation", "cryo.notify/socket=relative/path", testImage, bad, "sleep", "1000"], { timeoutMs: 60_000 });
  expect(r.exitCode).not.toBe(0);
  expect(r.stderr).toContain("annotation cryo.notify/socket: invalid argument");
  expect(await taskPid(pc, bad)).toBeUndefined();
  await pc.ctr(["containers", "rm", bad]);
  expect(existsSync(`/run/containerd/runc/${ns}/${bad}`)).toBe(false);

  const id = uniqueId("gone");
  const gone = join(dir, "nobody.sock");
  await pc.ctrOk(["run", "-d", "--runtime", RUNTIME, "--annotation", `cryo.notify/socket=${gone}`, ...bindTools(), testImage, id, "sh", "-c", "/nb/sdnotify READY=1; exec sleep 1000"], { timeoutMs: 60_000 });
  expect(await taskStatus(pc, id)).toBe("RUNNING");
  await waitFor(() => (readFileSync(pc.layout.log, "utf8").includes(`container ${id}: sd_notify to ${gone}: `) ? true : undefined), { what: "the failed forward logged" });
  expect(await taskStatus(pc, id)).toBe("RUNNING");
  await remove(id);
}, 120_000);
