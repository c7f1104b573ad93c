/**
 * CriuOpts: every CRIU option cryo can pass, as one validated plain object.
 *
 * This is the request body the helper process receives; `apply-options.ts` turns it into libcriu
 * setter calls plus, for the options libcriu has no setter for, lines of a CRIU configuration file.
 */
import { z } from "zod";
import { CGROUP_MODES, CONFIG_EXTRA_NAME, JOIN_NS } from "./wire.ts";

/** Cgroup manage modes (`--manage-cgroups=MODE`); "default" lets CRIU pick (soft). */
export const cgroupModeSchema = z.enum(CGROUP_MODES);
/** A cgroup manage mode. */
export type CgroupMode = z.infer<typeof cgroupModeSchema>;

/** Namespaces CRIU can restore empty (`--empty-ns`); CRIU accepts only net today. */
export const emptyNsSchema = z.enum(["net"]);

/** Namespaces a restore can join instead of creating (`--join-ns`). */
export const joinNsSchema = z.object({
  ns: z.enum(JOIN_NS),
  file: z.string().min(1),
  extra: z.string().optional(),
});

const key = z.string().min(1).max(4096);

/** Every CRIU option cryo supports for dump, pre-dump and restore. */
export const criuOptsSchema = z
  .object({
    /** Directory of the images (opened by the helper and passed as an fd). */
    imagesDir: z.string().min(1),
    /** Work directory for logs and stats; defaults to imagesDir. */
    workDir: z.string().min(1).optional(),
    /** Parent images for an incremental dump: a path relative to imagesDir (CRIU's rule), e.g. "../pre1". */
    parentImages: z.string().min(1).optional(),
    /** Root task to dump. */
    pid: z.number().int().positive().optional(),
    /** Root of the restored tree's mount namespace (the bundle's rootfs). */
    root: z.string().min(1).optional(),
    leaveRunning: z.boolean().optional(),
    /** Leave the tasks stopped after dump or restore (config file: `leave-stopped`). */
    leaveStopped: z.boolean().optional(),
    tcpEstablished: z.boolean().optional(),
    tcpClose: z.boolean().optional(),
    tcpSkipInFlight: z.boolean().optional(),
    extUnixSk: z.boolean().optional(),
    /** Inodes of external unix sockets allowed with extUnixSk. */
    unixSkInodes: z.array(z.number().int().nonnegative()).optional(),
    shellJob: z.boolean().optional(),
    fileLocks: z.boolean().optional(),
    trackMem: z.boolean().optional(),
    autoDedup: z.boolean().optional(),
    linkRemap: z.boolean().optional(),
    forceIrmap: z.boolean().optional(),
    irmapPaths: z.array(key).optional(),
    evasiveDevices: z.boolean().optional(),
    weakSysctls: z.boolean().optional(),
    orphanPtsMaster: z.boolean().optional(),
    skipFileRwxCheck: z.boolean().optional(),
    manageCgroups: z.boolean().optional(),
    manageCgroupsMode: cgroupModeSchema.optional(),
    /** Cgroup whose freezer CRIU uses to stop the tree (v1 freezer path or v2 cgroup path). */
    freezeCgroup: z.string().min(1).optional(),
    /** `--cgroup-root [controller:]path`: where the restored cgroups go. */
    cgRoots: z.array(z.object({ controller: z.string().optional(), path: key })).optional(),
    cgYard: z.string().min(1).optional(),
    cgDumpControllers: z.array(z.string().min(1)).optional(),
    cgProps: z.string().optional(),
    cgPropsFile: z.string().optional(),
    emptyNs: z.array(emptyNsSchema).optional(),
    joinNs: z.array(joinNsSchema).optional(),
    lsmProfile: z.string().min(1).optional(),
    lsmMountContext: z.string().min(1).optional(),
    /** `--ext-mount-map KEY:VAL`; on dump KEY is the mount point and VAL the key, on restore KEY the key and VAL the source. */
    extMounts: z.array(z.object({ key, value: key })).optional(),
    autoExtMnt: z.boolean().optional(),
    extSharing: z.boolean().optional(),
    extMasters: z.boolean().optional(),
    /** `--external` entries: "net[INODE]:KEY", "mnt[KEY]:VAL", "dev[MAJ/MIN]:KEY", "tty[RDEV:DEV]", ... */
    external: z.array(key).optional(),
    /** `--veth-pair IN=OUT` on restore. */
    vethPairs: z.array(z.object({ inside: z.string().min(1), outside: z.string().min(1) })).optional(),
    /** `--inherit-fd fd[N]:KEY`: fd N of the helper process (the caller passes it as an extra stdio fd). */
    inheritFds: z.array(z.object({ fd: z.number().int().nonnegative(), key })).optional(),
    skipMounts: z.array(key).optional(),
    enableFs: z.array(z.string().min(1)).optional(),
    ghostLimit: z.number().int().nonnegative().optional(),
    /** Seconds CRIU may take to freeze the tree. */
    timeout: z.number().int().positive().optional(),
    preDumpMode: z.enum(["splice", "read"]).optional(),
    networkLock: z.enum(["iptables", "nftables", "skip"]).optional(),
    pageServer: z.object({ address: z.string().min(1), port: z.number().int().min(0).max(65535) }).optional(),
    mntnsCompatMode: z.boolean().optional(),
    /** Restore with pages served on demand by a lazy-pages daemon (config file: `lazy-pages`). */
    lazyPages: z.boolean().optional(),
    /** CRIU prints its statistics into the log (config file: `display-stats`). */
    displayStats: z.boolean().optional(),
    /** CRIU log verbosity 0..4 (default 4 so failures can be explained). */
    logLevel: z.number().int().min(0).max(4).optional(),
    /** Log file name, relative to workDir (default dump.log / pre-dump.log / restore.log). */
    logFile: z.string().min(1).optional(),
    /** A configuration file of the caller's, merged into the one cryo writes (its lines come first). */
    configFile: z.string().min(1).optional(),
    /** Extra CRIU configuration-file options, `{ "file-validation": "buildid", "ghost-fiemap": true }`. */
    configExtra: z.record(z.string().regex(CONFIG_EXTRA_NAME), z.union([z.string(), z.literal(true)])).optional(),
    /** Binary libcriu forks as `criu swrk` (default "criu" from PATH). */
    serviceBinary: z.string().min(1).optional(),
  })
  .strict();

/** Every CRIU option cryo supports, as plain data. */
export type CriuOpts = z.infer<typeof criuOptsSchema>;
