/**
 * The `ctr` calls `cryo migrate` makes against one containerd (address + namespace), with ctr's output
 * parsed and checked: container info, task and image listings, content blobs. A failed ctr call becomes
 * a CryoError carrying ctr's last error line.
 */
import { z } from "zod";
import { runCtr } from "../containerd/index.ts";
import { Code, CryoError, invalidArgument, notFound } from "../errors.ts";

/** A task row of `ctr task ls`. */
export interface TaskRow {
  id: string;
  pid: number;
  status: string;
}

/** An image row of `ctr images ls`. */
export interface ImageRow {
  ref: string;
  mediaType: string;
  digest: string;
}

/** What `ctr containers info` says about a container (the fields migrate uses). */
export const containerInfoSchema = z
  .object({
    ID: z.string().min(1),
    Image: z.string(),
    Runtime: z.object({ Name: z.string().min(1) }).loose(),
    Snapshotter: z.string().optional(),
  })
  .loose();

/** A parsed `ctr containers info`. */
export type ContainerInfo = z.infer<typeof containerInfoSchema>;

/** An OCI index as stored in the content store (descriptors' media types are what migrate checks). */
export const ociIndexSchema = z
  .object({
    manifests: z
      .array(z.object({ mediaType: z.string(), digest: z.string(), size: z.number() }).loose())
      .nullish()
      .transform((v) => v ?? []),
    annotations: z.record(z.string(), z.string()).optional(),
  })
  .loose();

/** Parses `ctr task ls` (TASK PID STATUS). */
export function parseTaskList(stdout: string): TaskRow[] {
  return stdout
    .split("\n")
    .slice(1)
    .map((line) => line.trim().split(/\s+/))
    .filter((cells) => cells.length >= 3 && cells[0] !== "")
    .map(([id, pid, status]) => ({ id: id!, pid: Number(pid), status: status! }));
}

/** Parses `ctr images ls` (REF TYPE DIGEST SIZE PLATFORMS LABELS; SIZE has a space, the first three do not). */
export function parseImageList(stdout: string): ImageRow[] {
  return stdout
    .split("\n")
    .slice(1)
    .map((line) => line.trim().split(/\s+/))
    .filter((cells) => cells.length >= 3 && cells[0] !== "")
    .map(([ref, mediaType, digest]) => ({ ref: ref!, mediaType: mediaType!, digest: digest! }));
}

/**
 * The line that says why ctr failed, for messages: its last `ctr: ...` error line; else the `panic: ...` line of a
 * ctr that panicked (ctr 2.x's `containers restore` of a terminal container does, "provided file is not a
 * console"), whose last line is only a stack frame; else its last line.
 */
export function ctrErrorLine(stderr: string, stdout = ""): string {
  const lines = `${stderr}\n${stdout}`.split("\n").map((l) => l.trim()).filter((l) => l !== "");
  return lines.findLast((l) => l.startsWith("ctr: ")) ?? lines.find((l) => l.startsWith("panic: ")) ?? lines.at(-1) ?? "no output";
}

/**
 * The major version in `ctr --version`'s line ("ctr github.com/containerd/containerd 1.6.20~ds1",
 * "ctr github.com/containerd/containerd/v2 v2.3.4"); undefined when the line has none.
 */
export function parseCtrMajorVersion(line: string): number | undefined {
  const m = /\sv?(\d+)\.\d+[^\s]*\s*$/.exec(line.trim());
  return m ? Number(m[1]) : undefined;
}

/**
 * Flags for `ctr images export` and `ctr images import` of the ctr in use: `--local` for ctr 2.x, which otherwise
 * streams the archive through containerd's transfer service. Seen with containerd 2.3.4 here: 5 of 30
 * `ctr images export` runs of a checkpoint image wrote a cut-off archive and exited 0 (`--local`: 0 of 30), and the
 * import then failed "short read: expected N bytes but got M: unexpected EOF". ctr 1.x has neither the service nor
 * the flag.
 */
export function archiveFlags(major: number | undefined): string[] {
  return major !== undefined && major >= 2 ? ["--local"] : [];
}

let ctrMajor: Promise<number | undefined> | undefined;

/** The major version of the ctr binary runCtr runs (asked once per process). */
export function ctrMajorVersion(): Promise<number | undefined> {
  ctrMajor ??= (async () => {
    const r = await runCtr("", ["--version"]).catch(() => undefined);
    return r && r.exitCode === 0 ? parseCtrMajorVersion(r.stdout) : undefined;
  })();
  return ctrMajor;
}

/** ctr against one containerd and namespace. */
export interface CtrClient {
  readonly address: string;
  readonly namespace: string;
  /** Runs ctr; a non-zero exit is a CryoError (NOT_FOUND when ctr says "not found") naming what. */
  run(args: readonly string[], what: string, timeoutMs?: number): Promise<string>;
  /** The container's info, or undefined when it does not exist. */
  containerInfo(id: string): Promise<ContainerInfo | undefined>;
  /** The container's task, or undefined when it has none. */
  task(id: string): Promise<TaskRow | undefined>;
  /** The image named ref, or undefined. */
  image(ref: string): Promise<ImageRow | undefined>;
  /** A content blob parsed as JSON. */
  contentJson(digest: string): Promise<unknown>;
}

/** Creates a CtrClient for address and namespace; timeoutMs is the default deadline of one ctr call. */
export function createCtrClient(address: string, namespace: string, timeoutMs: number): CtrClient {
  const client: CtrClient = {
    address,
    namespace,
    async run(args, what, timeout = timeoutMs) {
      const r = await runCtr(address, args, { namespace, timeoutMs: timeout, deadline: true });
      if (r.exitCode !== 0) {
        const line = ctrErrorLine(r.stderr, r.stdout);
        const code = /not found|does not exist/i.test(line) ? Code.NOT_FOUND : Code.UNKNOWN;
        throw new CryoError(code, `${what} (ctr --address ${address} -n ${namespace} ${args.join(" ")}): ${line}`);
      }
      return r.stdout;
    },
    async containerInfo(id) {
      const r = await runCtr(address, ["containers", "info", id], { namespace, timeoutMs });
      if (r.exitCode !== 0) {
        if (/not found/i.test(r.stderr)) return undefined;
        throw new CryoError(Code.UNKNOWN, `container ${id} at ${address}: ${ctrErrorLine(r.stderr)}`);
      }
      let json: unknown;
      try {
        json = JSON.parse(r.stdout);
      } catch (err) {
        throw invalidArgument(`ctr containers info ${id}`, { cause: err, detail: "output is not JSON" });
      }
      const parsed = containerInfoSchema.safeParse(json);
      if (!parsed.success) throw invalidArgument(`ctr containers info ${id}`, { detail: z.prettifyError(parsed.error) });
      return parsed.data;
    },
    async task(id) {
      return parseTaskList(await client.run(["tasks", "ls"], "list tasks")).find((t) => t.id === id);
    },
    async image(ref) {
      return parseImageList(await client.run(["images", "ls"], "list images")).find((i) => i.ref === ref);
    },
    async contentJson(digest) {
      const text = await client.run(["content", "get", digest], `read content ${digest}`);
      try {
        return JSON.parse(text);
      } catch (err) {
        throw invalidArgument(`content ${digest}`, { cause: err, detail: "not JSON" });
      }
    },
  };
  return client;
}

/** NOT_FOUND for a container missing at an address. */
export function containerNotFound(id: string, address: string, namespace: string): CryoError {
  return notFound(`container ${id} in namespace ${namespace} at ${address}`);
}
