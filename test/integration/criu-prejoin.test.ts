// createCriu({ warm: true }).prejoin: the waiting CRIU helper joins a restore's cgroups before the restore's
// request (so the kernel's cgroup moves overlap the caller's work), and releaseJoin kills a helper that no
// restore used, so that the cgroups can be removed. Root only (cgroupfs).
import { afterAll, expect, setDefaultTimeout, test } from "bun:test";
import { existsSync, mkdirSync, readFileSync } from "node:fs";
import { createCriu } from "../../src/criu/index.ts";
import { removeCgroupDirs, waitFor } from "../harness/index.ts";

setDefaultTimeout(60_000);
const name = `cryo-prejoin-${process.pid}`;
const dirs = ["/sys/fs/cgroup/pids", "/sys/fs/cgroup/unified"].filter((d) => existsSync(d)).map((d) => `${d}/${name}`);

afterAll(async () => {
  await removeCgroupDirs(dirs);
});

const procs = (d: string) => readFileSync(`${d}/cgroup.procs`, "utf8").trim().split("\n").filter((l) => l !== "");

test("prejoin: the warm helper joins the cgroups at once; releaseJoin kills it and the cgroups empty", async () => {
  expect(dirs.length).toBeGreaterThan(0);
  for (const d of dirs) mkdirSync(d);
  const criu = createCriu({ warm: true });
  criu.prewarm();
  criu.prejoin!(dirs);
  try {
  // No restore was asked for: the helper is in every cgroup anyway.
  const pid = await waitFor(() => {
    const p = procs(dirs[0]!);
    return p.length === 1 ? p[0] : undefined;
  }, { what: "the helper in the first cgroup", timeoutMs: 20_000 });
  for (const d of dirs) await waitFor(() => (procs(d).includes(pid) ? true : undefined), { what: `the helper in ${d}` });
  expect(readFileSync(`/proc/${pid}/cmdline`, "utf8")).toMatch(/__criu|worker-main\.ts/); // the helper, compiled or from source
  criu.releaseJoin!(dirs);
  for (const d of dirs) await waitFor(() => (procs(d).length === 0 ? true : undefined), { what: `${d} empty` });
  } finally {
    criu.releaseJoin!(dirs);
  }
  // Another prejoin without a waiting helper does nothing (the restore's helper would join then).
  criu.prejoin!(dirs);
  await Bun.sleep(200);
  for (const d of dirs) expect(procs(d)).toEqual([]);
});
