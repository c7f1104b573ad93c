/** ctr's command line as the harness and `cryo containerd` build it (src/containerd/ctr.ts). */
import { expect, test } from "bun:test";
import { withFifoDir } from "../../../src/containerd/ctr.ts";

test("withFifoDir puts --fifo-dir after run, task start and task exec (aliases too), and nowhere else", () => {
  const d = "/tmp/x/fifo";
  expect(withFifoDir(["run", "-d", "img", "c1", "sleep", "9"], d)).toEqual(["run", "--fifo-dir", d, "-d", "img", "c1", "sleep", "9"]);
  expect(withFifoDir(["task", "exec", "--exec-id", "e1", "c1", "true"], d)).toEqual(["task", "exec", "--fifo-dir", d, "--exec-id", "e1", "c1", "true"]);
  expect(withFifoDir(["t", "start", "-d", "c1"], d)).toEqual(["t", "start", "--fifo-dir", d, "-d", "c1"]);
  expect(withFifoDir(["tasks", "exec", "c1", "true"], d)).toEqual(["tasks", "exec", "--fifo-dir", d, "c1", "true"]);
  // commands without the flag, and a command line that names a FIFO directory already, are left as they are
  for (const args of [["task", "ls"], ["containers", "restore", "--live", "c1", "ref"], ["images", "import", "a.tar"], ["task", "kill", "c1"], []]) {
    expect(withFifoDir(args, d)).toEqual(args);
  }
  expect(withFifoDir(["run", "--fifo-dir", "/elsewhere", "img", "c1"], d)).toEqual(["run", "--fifo-dir", "/elsewhere", "img", "c1"]);
  expect(withFifoDir(["run", "--fifo-dir=/elsewhere", "img", "c1"], d)).toEqual(["run", "--fifo-dir=/elsewhere", "img", "c1"]);
  // nor one with a log URI, which needs no FIFOs (ctr task exec refuses both: "can't use log-uri with fifo-dir")
  expect(withFifoDir(["task", "exec", "--exec-id", "e1", "--log-uri", "file:///l", "c1", "true"], d)).toEqual(["task", "exec", "--exec-id", "e1", "--log-uri", "file:///l", "c1", "true"]);
  expect(withFifoDir(["run", "--log-uri=binary:///bin/x", "img", "c1"], d)).toEqual(["run", "--log-uri=binary:///bin/x", "img", "c1"]);
  // a container named like a subcommand is not one
  expect(withFifoDir(["task", "ps", "exec"], d)).toEqual(["task", "ps", "exec"]);
});
