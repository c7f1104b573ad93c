import { expect, test } from "bun:test";
import { ChainChecker, deniedOutright, hostAbis, specProfile, type SeccompProfile } from "../../../src/seccomp/profile.ts";
import { ALLOW, AUDIT_ARCH_X86_64, allowList, ERRNO, jeq, ld, ret } from "./asm.ts";

const abis = hostAbis("x64")!;
const x86 = abis.find((a) => a.name === "x86_64")!;

test("the x86_64 host's ABIs and their numbers (kernel ABI facts)", () => {
  expect(abis.map((a) => a.name)).toEqual(["x86_64", "x32", "i386"]);
  expect([x86.calls.get("read"), x86.calls.get("init_module"), x86.calls.get("clone3")]).toEqual([0, 175, 435]);
  expect(abis[1]!.calls.get("read")).toBe(0x40000000);
  expect(abis[2]!.calls.get("init_module")).toBe(128);
  expect(hostAbis("arm64")).toBeUndefined();
});

test("what a profile denies whatever the arguments", () => {
  const names = ["read", "write", "personality", "clone3", "mount", "socket", "ptrace"];
  const allowList: SeccompProfile = {
    defaultAction: "SCMP_ACT_ERRNO",
    syscalls: [
      { names: ["read", "write"], action: "SCMP_ACT_ALLOW" },
      { names: ["personality"], action: "SCMP_ACT_ALLOW", args: [{ index: 0, value: 0, op: "SCMP_CMP_EQ" }] },
      { names: ["clone3"], action: "SCMP_ACT_ERRNO" },
      { names: ["ptrace"], action: "SCMP_ACT_NOTIFY" }, // a supervisor decides: may run
    ],
  };
  expect([...deniedOutright(allowList, names)].sort()).toEqual(["clone3", "mount", "socket"]);
  const denyList: SeccompProfile = {
    defaultAction: "SCMP_ACT_ALLOW",
    syscalls: [
      { names: ["mount"], action: "SCMP_ACT_ERRNO" },
      { names: ["socket"], action: "SCMP_ACT_ERRNO", args: [{ index: 0, value: 40, op: "SCMP_CMP_EQ" }] }, // only AF_VSOCK
      { names: ["ptrace"], action: "SCMP_ACT_KILL_PROCESS", args: null },
      { names: ["clone3"], action: "SCMP_ACT_SOMETHING_NEW" }, // unknown action: not taken as a denial
    ],
  };
  expect([...deniedOutright(denyList, names)].sort()).toEqual(["mount", "ptrace"]);
});

test("the spec's linux.seccomp: none when absent, null or without a default action; validated otherwise", () => {
  for (const none of [undefined, null, {}, { defaultAction: "" }]) expect(specProfile(none, "w")).toBeUndefined();
  expect(specProfile({ defaultAction: "SCMP_ACT_ERRNO", architectures: ["SCMP_ARCH_X86_64"] }, "w")).toEqual({ defaultAction: "SCMP_ACT_ERRNO" });
  expect(() => specProfile({ defaultAction: "SCMP_ACT_ERRNO", syscalls: [{ names: "read", action: "SCMP_ACT_ALLOW" }] }, "restore c1")).toThrow(
    "restore c1: the bundle's spec: invalid argument: linux.seccomp.syscalls.0.names: Invalid input: expected array, received string",
  );
});

test("a chain lets a denied call run unless one of its filters denies it for every argument, on every ABI", () => {
  const profile: SeccompProfile = { defaultAction: "SCMP_ACT_ERRNO", syscalls: [{ names: ["read", "write", "exit"], action: "SCMP_ACT_ALLOW" }] };
  const strict = allowList([0, 1, 60]); // read, write, exit; x32 and i386 refused by the architecture check or ERRNO
  expect(new ChainChecker(profile, abis).escape([strict], "t")).toBeUndefined();
  // Allow everything: the first denied call of the table escapes.
  expect(new ChainChecker(profile, abis).escape([[ret(ALLOW)]], "t")).toEqual({ call: "open", abi: "x86_64" });
  // A permissive filter installed after the strict one: the strict one still denies.
  expect(new ChainChecker(profile, abis).escape([[ret(ALLOW)], strict], "t")).toBeUndefined();
  // Strict for x86_64, anything for i386 (int 0x80).
  const i386Open = [ld(4), jeq(AUDIT_ARCH_X86_64, 0, 1), ret(ERRNO), ret(ALLOW)];
  expect(new ChainChecker(profile, abis).escape([i386Open], "t")).toEqual({ call: "restart_syscall", abi: "i386" });
  // Allowed when args[0] is 0x1234: not denied for every argument.
  const backdoor = [ld(0), jeq(0, 3, 0), ld(16), jeq(0x1234, 1, 0), ret(ERRNO), ret(ALLOW)];
  expect(new ChainChecker(profile, abis).escape([backdoor], "t")).toEqual({ call: "open", abi: "x86_64" });
  // An invalid filter anywhere in the chain is refused, naming it.
  expect(() => new ChainChecker(profile, abis).escape([strict, [ld(0)]], "restore c1")).toThrow("restore c1: filter 2 of 2: invalid argument: seccomp filter instruction 0: the filter does not end with a return");
});
