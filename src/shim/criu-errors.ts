/**
 * A sharper gRPC code for a CRIU failure that libcriu reports only as "failed" (UNKNOWN), from the
 * cause CRIU's log lines name: a read-only or full target, a refused permission, or container state
 * that needs a checkpoint option (an established TCP connection, an external unix socket) or that CRIU cannot
 * dump at all (a unix stream connection to a host socket).
 */
import { statSync } from "node:fs";
import { Code, CryoError } from "../errors.ts";

/** Log phrases and the code each one means, with what to do where cryo has the knob. The first match wins. */
/** The hint for a unix stream socket connected to peer (its name, when CRIU gives one) outside the container. */
function streamHalfHint(peer: string | undefined): string {
  return `a unix stream socket of the container is connected to ${named(peer) ?? "a socket"} outside it: CRIU cannot dump one half of a stream connection, with or without ext-unix-sk (cryo.checkpoint/ext-unix-sk lets it dump only datagram sockets connected outside); close the connection before the checkpoint, or run its peer in the container (a host socket reached through a bind mount is outside it, and so is a process exec'd into the container, which the checkpoint does not hold)`;
}

/** A socket's name as CRIU logs it, or undefined for an unnamed one (CRIU 4.2 prints "null" or "(null)"). */
function named(name: string | undefined): string | undefined {
  return name === undefined || name === "" || name === "null" || name === "(null)" ? undefined : name;
}

const CAUSES: { re: RegExp; code: Code; word: string; hint?: string | ((m: RegExpExecArray) => string) }[] = [
  {
    re: /Can't dump ghost file (.*) of (\d+) size, increase limit/,
    code: Code.FAILED_PRECONDITION,
    word: "failed precondition",
    // The limit is the dump's (CRIU's 1 MiB, or the option's value): the file's size is what CRIU's line gives.
    hint: (m) =>
      `${m[1]} (${m[2]} bytes), a deleted file the container still holds open, is larger than the dump's ghost-file limit (CRIU's default 1 MiB, or the ghost-limit option's value): raise it with the annotation cryo.checkpoint/ghost-limit (e.g. 64M), cryo.v1.CheckpointOptions.ghost_limit or [checkpoint] ghost_limit`,
  },
  {
    re: /Can't fork for \d+: File exists/,
    code: Code.ALREADY_EXISTS,
    word: "already exists",
    hint: "CRIU restores each task with its pid, and that pid is in use in the PID namespace the container is restored into (one it joins by path: another process holds it, or zombies keep it as their process group or session; a namespace whose init reaps frees those)",
  },
  {
    // cryo's CRIU (scripts/criu/0006): a user namespace joined by path whose maps are not the checkpointed one's.
    re: /Can't restore into the user namespace \S+: its maps are not the images'/,
    code: Code.FAILED_PRECONDITION,
    word: "failed precondition",
    hint: "the container's files and processes hold ids in the terms of the user namespace it was checkpointed in: restore it into one with the same uid and gid maps",
  },
  {
    // A listening or bound socket of the tree: the host network (or a network namespace the container joins) has
    // that address in use, e.g. by the original, still running, of a container restored under a new name.
    re: /Can't bind (?:inet|unix)? ?socket.*Address already in use/,
    code: Code.FAILED_PRECONDITION,
    word: "failed precondition",
    hint: "a socket the container had bound needs its address again, and something in the network namespace it is restored into holds it (with the host's network: another process of the host, or the original container if it still runs): free the address, or restore into a network namespace of the container's own",
  },
  {
    // CRIU binds each external mount (a bind of the spec) at a mount point it made as the checkpointed mount was, and
    // the kernel's move_mount refuses (EINVAL) to put a file onto a directory or a directory onto a file. Seen with a
    // bind source that was replaced by a file between checkpoint and restore (runc's restore: "not a directory").
    re: /Failed to move_mount from (\S+) to \S+: Invalid argument/,
    code: Code.FAILED_PRECONDITION,
    word: "failed precondition",
    hint: (m) => `${m[1]} ${kindOfPath(m[1]!)}: a bind mount's source must be of the kind it was at the checkpoint (a directory, or a file)`,
  },
  {
    // CRIU's dump without --file-locks of a tree holding a flock, POSIX or OFD lock (criu/file-lock.c).
    re: /Some file locks are hold by dumping tasks/,
    code: Code.FAILED_PRECONDITION,
    word: "failed precondition",
    hint: "the container holds file locks, which CRIU dumps only when asked: set the annotation cryo.checkpoint/file-locks=true, cryo.v1.CheckpointOptions.file_locks or [checkpoint] file_locks = true (ctr containers checkpoint sends runc's options with file locks on)",
  },
  {
    // A file the tree held open (or its cwd, a watched directory, a fifo) is not in the root the restore got. CRIU
    // names it relative to the container's root, or absolutely for fsnotify.
    re: /Can't open file (\S+) on restore: No such file or directory|fsnotify: Unable to open (\S+): No such file or directory|Can't open fake fifo \S+ \[(\S+)\]: No such file or directory/,
    code: Code.FAILED_PRECONDITION,
    word: "failed precondition",
    hint: (m) => {
      const path = (m[1] ?? m[2] ?? m[3]!).replace(/^\/?/, "/");
      return `the container had ${path} open, and the restored root file system has no ${path}: what a container writes lives in its writable layer, which a checkpoint carries only when asked (ctr containers checkpoint --rw, then ctr containers restore --rw); a file of a bind mount must be in its source`;
    },
  },
  {
    // CRIU's check of a file the tree had open or mapped (criu/files-reg.c): its size or mode in the restored root
    // differs from the one the dump recorded (a binary or library replaced, a file of the rootfs edited, a root file
    // system other than the checkpointed one, a bind source changed on the host). CRIU names it relative to the
    // container's root, and a file of a bind mount by its path there: both are said, since the spec's mounts are not known here.
    re: /File (\S+) has bad (size|mode) (\S+) \(expect (\S+)\)/,
    code: Code.FAILED_PRECONDITION,
    word: "failed precondition",
    hint: (m) => {
      const path = m[1]!.replace(/^\/?/, "/");
      const what = m[2] === "size" ? `${m[3]} bytes, the checkpoint recorded ${m[4]}` : `mode ${m[3]}, the checkpoint recorded ${m[4]}`;
      return `the container had ${path} open or mapped, and it changed since the checkpoint (${what}; in the root file system, or in the source of a bind mount there): restore onto the root file system and bind sources it was checkpointed with`;
    },
  },
  {
    // CRIU's tty_verify_ctty (criu/tty.c): a process holds /dev/tty open (an interactive shell with job control does)
    // and no pty of its session has that session for its foreground process group. Seen with `ctr run -t ... sh` and
    // a command typed at its prompt still running, under runc's shim too.
    re: /ctty inheritance detected sid\/pgrp \d+, no PTY peer with sid\/pgrp needed/,
    code: Code.FAILED_PRECONDITION,
    word: "failed precondition",
    hint: "the container's terminal has a job in the foreground (a command running in the foreground of an interactive shell): CRIU dumps a controlling terminal only while its session's own process group has the foreground; checkpoint once the command has ended, or run it in the background",
  },
  {
    // CRIU's dump without --tcp-established of a tree with a connected TCP socket (criu/sk-inet.c).
    re: /Connected TCP socket, consider using --tcp-established option/,
    code: Code.FAILED_PRECONDITION,
    word: "failed precondition",
    hint: "the container has an established TCP connection, which CRIU dumps only when asked: set the annotation cryo.checkpoint/tcp-established=true (ctr run --annotation), cryo.v1.CheckpointOptions.tcp_established or [checkpoint] tcp_established = true; the restore then needs the connection's addresses again (the container's own network namespace, or the same host's), or cryo.checkpoint/tcp-close=true to restore it closed",
  },
  {
    // CRIU's dump without --ext-unix-sk of a tree with a unix socket whose peer it does not dump (criu/sk-unix.c):
    // a socket of the host reached through a bind mount. The "Runaway socket" line before it (criu/log.ts keeps
    // it) is the peer's: type 1 is SOCK_STREAM, which ext-unix-sk does not allow either.
    re: /(?:Runaway socket: ino \d+ peer_ino \d+ family +\d+ type +(\d+) state +\d+ name ([^;\s]*)[^;]*;.*)?External socket is used\. Consider using --ext-unix-sk option/,
    code: Code.FAILED_PRECONDITION,
    word: "failed precondition",
    hint: (m) =>
      m[1] === "1"
        ? streamHalfHint(m[2])
        : `a unix socket of the container is connected to ${named(m[2]) ?? "one"} outside it (a host socket reached through a bind mount): set the annotation cryo.checkpoint/ext-unix-sk=true (ctr run --annotation), cryo.v1.CheckpointOptions.external_unix_sockets or [checkpoint] ext_unix_sk = true, with which CRIU dumps a datagram socket connected outside; a stream connection it cannot dump`,
  },
  {
    // With --ext-unix-sk, a stream socket connected outside the tree: CRIU dumps only datagram ones (criu/sk-unix.c;
    // CRIU 4.2 names the peer after the line).
    re: /Can't dump half of stream unix connection\.(?: name: \S+; peer name: ([^;\s]+))?/,
    code: Code.FAILED_PRECONDITION,
    word: "failed precondition",
    hint: (m) => streamHalfHint(m[1]),
  },
  {
    // A unix socket whose peer is in no network namespace CRIU dumps (a host socket reached through a bind mount,
    // connected from the container's network namespace): CRIU finds no peer, with or without --ext-unix-sk.
    re: /Unix socket (\d+) without peer (\d+)/,
    code: Code.FAILED_PRECONDITION,
    word: "failed precondition",
    hint: (m) =>
      `unix socket ${m[1]} of the container is connected to socket ${m[2]}, which is not among the sockets the dump takes (a host socket reached through a bind mount lives in another network namespace): CRIU cannot dump it, with or without ext-unix-sk; close it before the checkpoint, or run its peer in the container`,
  },
  {
    // A descriptor on a mount the dumped mount namespace does not have (criu/files-reg.c): an open POSIX message
    // queue (mq_open: its mount is the kernel's internal one of the IPC namespace), or a file of a detached mount.
    re: /Can't lookup mount=(\d+) for fd=(\d+) path=([^;\s]+)/,
    code: Code.FAILED_PRECONDITION,
    word: "failed precondition",
    hint: (m) =>
      `the container holds fd ${m[2]} open on ${m[3]} of a mount (id ${m[1]}) that is not in its mount table: an open POSIX message queue (mq_open, whose mount is the kernel's own) or a file of a mount since detached, which CRIU cannot dump: close it before the checkpoint`,
  },
  {
    // A connection to a listening unix socket of the container that its server has not accepted yet, with data sent
    // on it (criu/sk-unix.c): CRIU cannot read the queued data out of the not yet accepted socket. Both runtimes.
    re: /Non-empty write queue on an in-flight socket (0x[0-9a-f]+)/,
    code: Code.FAILED_PRECONDITION,
    word: "failed precondition",
    hint: (m) =>
      `a unix socket of the container (inode ${m[1]}) is a connection its listener has not accepted yet, with data already sent on it, which CRIU cannot dump: checkpoint once the server has accepted it`,
  },
  {
    // A process of the container in a PID namespace of its own (unshare -p, a sandbox): CRIU 4.2 dumps none (criu/namespaces.c).
    re: /Can't dump nested pid namespace for (\d+)/,
    code: Code.FAILED_PRECONDITION,
    word: "failed precondition",
    hint: (m) => `process ${m[1]} of the container is in a PID namespace of its own (unshare -p, a sandbox), which CRIU cannot dump: checkpoint once it has ended`,
  },
  {
    // Two processes (not threads) of the container sharing their memory (clone with CLONE_VM, a vfork child
    // mid-way), their root and working directory (CLONE_FS) or their signal handlers: CRIU 4.2 dumps none of these
    // (criu/cr-dump.c get_task_ids; "IO" is its name for the signal handlers). A shared descriptor table it dumps.
    re: /Can't make (VM|FS|IO) id for (\d+)/,
    code: Code.FAILED_PRECONDITION,
    word: "failed precondition",
    hint: (m) => {
      const what = m[1] === "VM" ? "its memory (clone with CLONE_VM, or a vfork child that has not exec'd yet)" : m[1] === "FS" ? "its root and working directory (clone with CLONE_FS)" : "its signal handlers (clone with CLONE_SIGHAND)";
      return `process ${m[2]} of the container shares ${what} with another process that is not its thread, which CRIU cannot dump: checkpoint once it has ended`;
    },
  },
  {
    // A task of the container traced by another process (ptrace: a debugger, strace, a supervisor): CRIU's seize
    // (PTRACE_SEIZE through the frozen cgroup, compel's infect.c) fails with EPERM, and CRIU retries until its
    // timeout, calling it a zombie found while seizing (criu/seize.c). Both runtimes.
    re: /Unable to interrupt task: (\d+) \(Operation not permitted\)/,
    code: Code.FAILED_PRECONDITION,
    word: "failed precondition",
    hint: (m) => `process ${m[1]} of the container could not be seized (EPERM): it is being traced by another process (ptrace: a debugger, strace), and CRIU cannot dump a traced process: checkpoint once the tracer has detached`,
  },
  {
    // A descriptor of a kind CRIU has no dumper for (criu/files-ext.c): a userfaultfd, a perf event, ... named by
    // CRIU with its link (anon_inode:[...]).
    re: /Can't dump file (\d+) of that type \[\d+\] \(([^)]*\)?)\)/,
    code: Code.FAILED_PRECONDITION,
    word: "failed precondition",
    hint: (m) => `the container holds fd ${m[1]} open on ${m[2]!.replace(/^anon /, "")}, a kind of descriptor CRIU cannot dump: close it before the checkpoint`,
  },
  {
    // The parasite could not pass a task's descriptors to CRIU over its unix socket (EINVAL): the kernel refuses to
    // pass an io_uring instance (SCM_RIGHTS), seen with one io_uring_setup descriptor here. CRIU names no fd.
    re: /send_fds failed \(-22\)/,
    code: Code.FAILED_PRECONDITION,
    word: "failed precondition",
    hint: "a descriptor of the container could not be passed to CRIU (EINVAL from the kernel): an io_uring instance (io_uring_setup) is one the kernel never passes, and CRIU cannot dump it: close it before the checkpoint",
  },
  { re: /No space left on device|Disk quota exceeded/, code: Code.RESOURCE_EXHAUSTED, word: "resource exhausted" },
  { re: /Read-only file system/, code: Code.FAILED_PRECONDITION, word: "failed precondition" },
  { re: /Permission denied|Operation not permitted/, code: Code.PERMISSION_DENIED, word: "permission denied" },
];

/** What a path is now, for a hint: "is a directory", "is a file", "does not exist". */
function kindOfPath(path: string): string {
  try {
    const st = statSync(path);
    return st.isDirectory() ? "is a directory" : st.isFile() ? "is a file" : "is neither a file nor a directory";
  } catch {
    return "does not exist";
  }
}

/** The code a CRIU error message points at, or undefined when it names no known cause. */
export function criuCauseCode(message: string): { code: Code; word: string; hint?: string } | undefined {
  for (const c of CAUSES) {
    const m = c.re.exec(message);
    if (m) return { code: c.code, word: c.word, hint: typeof c.hint === "function" ? c.hint(m) : c.hint };
  }
  return undefined;
}

/** Re-codes an UNKNOWN CRIU error by the cause its log lines name, adding what to do where cryo knows; other errors keep their code. */
export function classifyCriuError(err: unknown): CryoError {
  const e = CryoError.from(err);
  const cause = criuCauseCode(e.message);
  if (!cause) return e;
  // Coded already (from CRIU's errno): only the hint is added.
  if (e.code !== Code.UNKNOWN) return cause.hint && cause.code === e.code ? new CryoError(e.code, `${e.message}; ${cause.hint}`, { cause: e }) : e;
  const message = e.message.replace(/: unknown \(rc /, `: ${cause.word} (rc `);
  return new CryoError(cause.code, cause.hint ? `${message}; ${cause.hint}` : message, { cause: e });
}
