/**
 * A checkpoint right after Start (`ctr run -d`, then `ctr task checkpoint`). `runc start` returns before its init's
 * execve is through (runc closes every descriptor, the exec FIFO's among them, right before the execve:
 * src/shim/init-exec.ts), and a dump that met the init still runc init failed in CRIU with `Can't lookup mount=N for
 * fd=-3 path=/` (runc's executable is a detached bind mount), UNKNOWN. That window is normally well under a ms; a
 * seccomp agent (runc's listenerPath, SCMP_ACT_NOTIFY on execve) holds the init's execve here as long as a test needs.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { chmodSync, copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { compileStaticC, ctrErrorHasCode, removeContainer, startPrivateContainerd, taskStatus, uniqueId, waitFor, type PrivateContainerd } from "../harness/index.ts";
import { RUNC_INIT_COMM } from "../../src/shim/init-exec.ts";
import { Task as TaskV2 } from "../../src/gen/containerd/runtime/task/v2/shim_pb.ts";
import { connect } from "../../src/ttrpc/index.ts";

const RUNTIME = "io.containerd.cryo.v2";
const RUNC_ROOT = "/run/containerd/runc";
let pc: PrivateContainerd;
let ns: string;
let dir: string;
let agentBin: string;

/**
 * runc's seccomp agent protocol: runc connects to listenerPath and sends the container's state with the notify fd
 * (SCM_RIGHTS). Every notification is answered CONTINUE, but only once the file argv[2] exists; the file argv[3] is
 * made at the first. A notification whose task was interrupted (a freeze, CRIU's seize) is gone (ENOENT): the
 * restarted syscall brings a new one.
 */
const AGENT_C = `
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/seccomp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <unistd.h>

int main(int argc, char **argv) {
  if (argc != 4) return 2;
  int s = socket(AF_UNIX, SOCK_STREAM, 0);
  struct sockaddr_un a = { .sun_family = AF_UNIX };
  strncpy(a.sun_path, argv[1], sizeof(a.sun_path) - 1);
  if (bind(s, (void *)&a, sizeof(a)) || listen(s, 1)) { perror("listen"); return 1; }
  int c = accept(s, NULL, NULL);
  if (c < 0) { perror("accept"); return 1; }
  static char buf[1 << 16];
  char cbuf[CMSG_SPACE(sizeof(int) * 4)];
  struct iovec iov = { buf, sizeof(buf) };
  struct msghdr m = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf, .msg_controllen = sizeof(cbuf) };
  if (recvmsg(c, &m, 0) < 0) { perror("recvmsg"); return 1; }
  struct cmsghdr *cm = CMSG_FIRSTHDR(&m);
  if (!cm || cm->cmsg_type != SCM_RIGHTS) { fprintf(stderr, "no fd\\n"); return 1; }
  int fd;
  memcpy(&fd, CMSG_DATA(cm), sizeof(int));
  close(c);
  struct seccomp_notif_sizes sz;
  if (syscall(SYS_seccomp, SECCOMP_GET_NOTIF_SIZES, 0, &sz)) { perror("sizes"); return 1; }
  struct seccomp_notif *req = calloc(1, sz.seccomp_notif);
  struct seccomp_notif_resp *resp = calloc(1, sz.seccomp_notif_resp);
  for (;;) {
    memset(req, 0, sz.seccomp_notif);
    if (ioctl(fd, SECCOMP_IOCTL_NOTIF_RECV, req)) {
      if (errno == ENOENT || errno == EINTR) continue;
      perror("recv");
      return 0;
    }
    close(open(argv[3], O_CREAT | O_WRONLY, 0600));
    while (access(argv[2], F_OK) != 0) usleep(5000);
    memset(resp, 0, sz.seccomp_notif_resp);
    resp->id = req->id;
    resp->flags = SECCOMP_USER_NOTIF_FLAG_CONTINUE;
    ioctl(fd, SECCOMP_IOCTL_NOTIF_SEND, resp);
  }
}
`;

beforeAll(async () => {
  ns = uniqueId("startexec");
  pc = await startPrivateContainerd({ namespace: ns });
  dir = mkdtempSync(join(tmpdir(), "cryo-startexec-"));
  agentBin = compileStaticC(dir, "seccomp-agent", AGENT_C);
  // `ctr run --config` takes the whole spec, rootfs included: busybox alone.
  mkdirSync(join(dir, "rootfs", "bin"), { recursive: true });
  copyFileSync("/bin/busybox", join(dir, "rootfs", "bin", "busybox"));
  chmodSync(join(dir, "rootfs", "bin", "busybox"), 0o755);
}, 120_000);

afterAll(async () => {
  await pc?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
}, 120_000);

/** The agent for one container, and `ctr run -d` of a busybox sleep whose execve it holds until go(). */
async function heldRun(id: string) {
  const sock = join(dir, `${id}.sock`);
  const goFile = join(dir, `${id}.go`);
  const heldFile = join(dir, `${id}.held`);
  const agent = Bun.spawn([agentBin, sock, goFile, heldFile], { stdout: "ignore", stderr: "pipe" });
  await waitFor(() => existsSync(sock) || undefined, { what: "the seccomp agent's socket" });
  const base = JSON.parse(await pc.ctrOk(["oci", "spec"])) as { process: object; linux: object };
  const spec = {
    ...base,
    root: { path: join(dir, "rootfs") },
    process: { ...base.process, args: ["/bin/busybox", "sleep", "1000"], noNewPrivileges: true },
    linux: {
      ...base.linux,
      cgroupsPath: `/${ns}/${id}`,
      seccomp: { defaultAction: "SCMP_ACT_ALLOW", listenerPath: sock, architectures: ["SCMP_ARCH_X86_64"], syscalls: [{ names: ["execve", "execveat"], action: "SCMP_ACT_NOTIFY" }] },
    },
  };
  const specFile = join(dir, `${id}.json`);
  writeFileSync(specFile, JSON.stringify(spec));
  const run = pc.ctr(["run", "-d", "--runtime", RUNTIME, "--config", specFile, id], { timeoutMs: 60_000 });
  const initComm = () => {
    const pid = (JSON.parse(readFileSync(join(RUNC_ROOT, ns, id, "state.json"), "utf8")) as { init_process_pid: number }).init_process_pid;
    return readFileSync(`/proc/${pid}/comm`, "utf8").trim();
  };
  return {
    run,
    held: () => waitFor(() => existsSync(heldFile) || undefined, { what: "the init's execve held by the agent" }),
    go: () => writeFileSync(goFile, ""),
    initComm,
    async cleanup() {
      writeFileSync(goFile, "");
      await removeContainer(pc, id).catch(() => {});
      agent.kill(9);
      await agent.exited;
    },
  };
}

test("Start answers at once, as runc's shim does; a checkpoint right after ctr run -d waits for the init's execve (in the pause it begins with) and dumps it", async () => {
  const id = uniqueId("held");
  const h = await heldRun(id);
  try {
    await h.held();
    const r = await h.run;
    expect({ code: r.exitCode, stderr: r.stderr }).toEqual({ code: 0, stderr: "" });
    // Start did not wait for the execve (it cost every ctr run up to ~8 ms under load when it did).
    expect(h.initComm()).toBe(RUNC_INIT_COMM);
    // The execve goes on 1 s from now, within the 2 s the pause waits; before, the checkpoint failed in CRIU.
    const timer = setTimeout(h.go, 1_000);
    const c = await pc.ctr(["task", "checkpoint", id], { timeoutMs: 60_000 });
    clearTimeout(timer);
    expect({ comm: h.initComm(), code: c.exitCode, stderr: c.stderr }).toEqual({ comm: "busybox", code: 0, stderr: "" });
    expect(await taskStatus(pc, id)).toBe("RUNNING");
  } finally {
    await h.cleanup();
  }
}, 120_000);

test("a checkpoint through the task API right after Start (no pause first) waits for the init's execve itself and dumps it", async () => {
  const id = uniqueId("heldapi");
  const h = await heldRun(id);
  const images = mkdtempSync(join(dir, "images-"));
  let client: Awaited<ReturnType<typeof connect>> | undefined;
  try {
    await h.held();
    expect((await h.run).exitCode).toBe(0);
    client = await connect(readFileSync(join(pc.state, "io.containerd.runtime.v2.task", ns, id, "address"), "utf8").trim().replace(/^unix:\/\//, ""));
    expect(h.initComm()).toBe(RUNC_INIT_COMM);
    const timer = setTimeout(h.go, 1_000);
    await client.call(TaskV2, "checkpoint", { id, path: images }, { namespace: ns, timeoutMs: 60_000 });
    clearTimeout(timer);
    expect(h.initComm()).toBe("busybox");
    expect(existsSync(join(images, "inventory.img"))).toBe(true);
    expect(await taskStatus(pc, id)).toBe("RUNNING");
  } finally {
    client?.close();
    await h.cleanup();
  }
}, 120_000);

test("an init whose execve is held past the pause's wait: the checkpoint is refused UNAVAILABLE, saying to retry, the container runs on, and a retry after the exec dumps it", async () => {
  const id = uniqueId("stuck");
  const h = await heldRun(id);
  try {
    await h.held();
    const r = await h.run; // Start answered at once
    expect({ code: r.exitCode, stderr: r.stderr }).toEqual({ code: 0, stderr: "" });
    expect(h.initComm()).toBe(RUNC_INIT_COMM);
    const c = await pc.ctr(["task", "checkpoint", id], { timeoutMs: 60_000 });
    expect(c.exitCode).not.toBe(0);
    expect(c.stderr).toContain("is still runc init");
    expect(c.stderr).toContain("retry once the container runs its process");
    expect(c.stderr).not.toContain("Can't lookup mount");
    expect(ctrErrorHasCode(c.stderr, "unavailable")).toBe(true);
    expect(await taskStatus(pc, id)).toBe("RUNNING"); // containerd resumed it
    h.go();
    await waitFor(() => h.initComm() === "busybox" || undefined, { what: "the init to exec busybox" });
    const again = await pc.ctr(["task", "checkpoint", id], { timeoutMs: 60_000 });
    expect({ code: again.exitCode, stderr: again.stderr }).toEqual({ code: 0, stderr: "" });
  } finally {
    await h.cleanup();
  }
}, 120_000);
