import { describe, expect, test } from "bun:test";
import { Code, CryoError } from "../../../src/errors.ts";
import {
  hugepageDirToSize,
  hugetlbSizes,
  limitOr,
  MAX_UINT64,
  pageSizeBytes,
  parseBlkio,
  parseFlatKeyed,
  parseFreezerState,
  parseInt64,
  parseLimit,
  parseNestedKeyed,
  parsePids,
  parseProcCgroup,
  parseSpaceList,
  parseUint,
} from "../../../src/cgroups/parse.ts";

describe("single values", () => {
  test("parseUint reads a counter with its newline, including values beyond 2^53", () => {
    expect(parseUint("4096\n")).toBe(4096n);
    expect(parseUint("9223372036854771712\n")).toBe(9223372036854771712n);
  });
  test("parseUint rejects garbage with a CryoError naming the file", () => {
    let err: unknown;
    try {
      parseUint("abc", "memory.usage_in_bytes");
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(CryoError);
    expect((err as CryoError).message).toContain("memory.usage_in_bytes");
    expect((err as CryoError).code).toBe(Code.UNKNOWN);
  });
  test("parseInt64 accepts -1 (cpu.cfs_quota_us unlimited)", () => {
    expect(parseInt64("-1\n")).toBe(-1n);
  });
  test("parseLimit maps max and numbers", () => {
    expect(parseLimit("max\n")).toBe("max");
    expect(parseLimit("100\n")).toBe(100n);
    expect(limitOr("max", 0n)).toBe(0n);
    expect(limitOr(5n, 0n)).toBe(5n);
    expect(MAX_UINT64).toBe(18446744073709551615n);
  });
  test("freezer states", () => {
    expect(parseFreezerState("FROZEN\n")).toBe("FROZEN");
    expect(parseFreezerState("FREEZING\n")).toBe("FREEZING");
    expect(parseFreezerState("THAWED\n")).toBe("THAWED");
    expect(() => parseFreezerState("SLEEPY")).toThrow(CryoError);
  });
});

describe("flat keyed files", () => {
  test("memory.stat", () => {
    const m = parseFlatKeyed("cache 9449472\nrss 12038144\nrss_huge 0\nhierarchical_memory_limit 9223372036854771712\n");
    expect(m.get("cache")).toBe(9449472n);
    expect(m.get("rss")).toBe(12038144n);
    expect(m.get("rss_huge")).toBe(0n);
    expect(m.get("hierarchical_memory_limit")).toBe(9223372036854771712n);
    expect(m.size).toBe(4);
  });
  test("malformed lines are skipped", () => {
    const m = parseFlatKeyed("a 1\nbroken\nb x\nc 2 3\n\nd 4");
    expect([...m.entries()]).toEqual([
      ["a", 1n],
      ["d", 4n],
    ]);
  });
});

describe("nested keyed files", () => {
  test("io.stat", () => {
    const lines = parseNestedKeyed("8:16 rbytes=1459200 wbytes=314773504 rios=192 wios=353 dbytes=0 dios=0\n8:0 rbytes=90430464 wbytes=299008000 rios=8950 wios=1252\n");
    expect(lines).toHaveLength(2);
    expect(lines[0]!.key).toBe("8:16");
    expect(lines[0]!.values.get("wbytes")).toBe(314773504n);
    expect(lines[1]!.values.get("rios")).toBe(8950n);
  });
  test("io.max with max values", () => {
    const [line] = parseNestedKeyed("8:0 rbps=1048576 wbps=max riops=max wiops=120\n");
    expect(line!.values.get("rbps")).toBe(1048576n);
    expect(line!.values.get("wbps")).toBe("max");
    expect(line!.values.get("wiops")).toBe(120n);
  });
});

describe("lists", () => {
  test("cpuacct.usage_percpu with trailing space", () => {
    expect(parseSpaceList("240343336396 255708591326 \n")).toEqual([240343336396n, 255708591326n]);
  });
  test("cgroup.procs", () => {
    expect(parsePids("1\n23\n456\n")).toEqual([1, 23, 456]);
    expect(parsePids("")).toEqual([]);
  });
});

describe("blkio recursive files", () => {
  test("op lines, the Total line skipped", () => {
    const lines = parseBlkio("8:0 Read 4096\n8:0 Write 8192\n8:0 Sync 12288\n8:0 Async 0\n8:0 Discard 0\n8:0 Total 12288\nTotal 12288\n");
    expect(lines).toHaveLength(6);
    expect(lines[0]).toEqual({ major: 8n, minor: 0n, op: "Read", value: 4096n });
    expect(lines[5]).toEqual({ major: 8n, minor: 0n, op: "Total", value: 12288n });
  });
  test("lines without op (time_recursive, sectors_recursive)", () => {
    expect(parseBlkio("8:0 5123\n253:1 7\n")).toEqual([
      { major: 8n, minor: 0n, op: "", value: 5123n },
      { major: 253n, minor: 1n, op: "", value: 7n },
    ]);
  });
  test("an empty file", () => {
    expect(parseBlkio("Total 0\n")).toEqual([]);
  });
});

describe("/proc/<pid>/cgroup", () => {
  test("hybrid host", () => {
    const m = parseProcCgroup("9:name=systemd:/\n8:pids:/\n4:memory:/process_api/c1\n2:cpu,cpuacct:/default/x\n0::/\n");
    expect(m.get("name=systemd")).toBe("/");
    expect(m.get("memory")).toBe("/process_api/c1");
    expect(m.get("cpu")).toBe("/default/x");
    expect(m.get("cpuacct")).toBe("/default/x");
    expect(m.get("")).toBe("/");
  });
});

describe("hugetlb", () => {
  test("page sizes from file names, smallest first", () => {
    expect(hugetlbSizes(["hugetlb.1GB.max", "hugetlb.2MB.current", "hugetlb.2MB.max", "hugetlb.1GB.rsvd.max", "memory.max"])).toEqual(["2MB", "1GB"]);
    expect(pageSizeBytes("2MB")).toBe(2 * 1024 * 1024);
  });
  test("sysfs hugepage directories to cgroup size names", () => {
    expect(hugepageDirToSize("hugepages-2048kB")).toBe("2MB");
    expect(hugepageDirToSize("hugepages-1048576kB")).toBe("1GB");
    expect(hugepageDirToSize("hugepages-64kB")).toBe("64KB");
    expect(hugepageDirToSize("other")).toBeUndefined();
  });
});
