#!/usr/bin/env bash
# cryo's main job, end to end: a private containerd with cryo registered, a container counting in memory,
# a checkpoint (CRIU images + rw layer into containerd's content store), the container gone, a restore,
# and the counter carrying on from where it was checkpointed, with its memory verified intact.
#
# Env: CRYO_DEMO_RUNTIME  the runtime for the container (default below); CRYO_DEMO_MIB  memory to fill (default 64)
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"

# The cryo shim checkpoints (libcriu, in a helper process) and restores containers itself.
# CRYO_DEMO_RUNTIME=io.containerd.runc.v2 runs the same steps with containerd's runc shim, for comparison.
default_runtime="io.containerd.cryo.v2"
cryo_runtime="io.containerd.cryo.v2"
runtime="${CRYO_DEMO_RUNTIME:-$default_runtime}"
mib="${CRYO_DEMO_MIB:-64}"

step() { printf '\n== %s\n' "$*"; }
say() { printf '   %s\n' "$*"; }

step "setup (scripts/setup.sh)"
./scripts/setup.sh | sed 's/^/   /'

cryo="$repo/build/bin/cryo"
dir="$(mktemp -d /tmp/cryo-demo.XXXXXX)"
ns="cryo-demo"
id="counter-$$"
ref="localhost/cryo-demo/checkpoint:$id"
ctr() { command ctr --address "$dir/containerd.sock" --namespace "$ns" "$@"; }
cleanup() {
  step "clean up: cryo containerd stop --dir $dir"
  "$cryo" containerd stop --dir "$dir" | sed 's/^/   /' || true
}
trap cleanup EXIT

step "start a private containerd with cryo registered (cryo containerd start)"
"$cryo" containerd start --dir "$dir" | sed 's/^/   /'
say "registered runtimes: $(grep -o 'runtime_type = "[^"]*"' "$dir/config.toml" | cut -d'"' -f2 | paste -sd, -)"

step "import the test image (busybox-static + memhog, built without a registry)"
archive="$(bash test/fixtures/build.sh)"
ctr images import "$archive" | sed 's/^/   /'

if [ "$runtime" != "$cryo_runtime" ]; then
  step "the cryo shim runs a container: ctr run --rm --runtime $cryo_runtime ... sh -c 'echo ...'"
  if out="$(ctr run --rm --runtime "$cryo_runtime" localhost/cryo-test:latest "hello-$$" sh -c 'echo "hello from inside: pid $$, $(grep -m1 memory /proc/self/cgroup)"' 2>&1)"; then
    say "$out"
  else
    say "the cryo shim failed: $out"
  fi
  say "note: the checkpoint/restore below uses $runtime, as asked (the default, $cryo_runtime, does it with cryo)"
fi

step "run a container: memhog fills $mib MiB with a pattern and counts every 100 ms (runtime $runtime)"
ctr run -d --runtime "$runtime" localhost/cryo-test:latest "$id" memhog "$mib" /tmp/counter >/dev/null
rootfs="$dir/state/io.containerd.runtime.v2.task/$ns/$id/rootfs"
# memhog's counter (10 digits, leading zeros: the test image ships the file blank at that size), as a plain decimal:
# 0 before the first write; without its zeros, which shell arithmetic would read as octal.
counter() {
  local v
  v="$(cat "$rootfs/tmp/counter" 2>/dev/null | tr -dc 0-9)"
  v="${v#"${v%%[!0]*}"}"
  echo "${v:-0}"
}
wait_counter_above() {
  local deadline=$((SECONDS + 30))
  until [ "$(counter)" -gt "$1" ] 2>/dev/null; do
    [ $SECONDS -lt $deadline ] || { echo "demo: counter did not pass $1" >&2; exit 1; }
    sleep 0.1
  done
}
wait_counter_above 15
ctr tasks ls | sed 's/^/   /'
say "counter: $(counter)"

step "checkpoint it: ctr containers checkpoint --task --rw $id $ref"
before="$(counter)"
ctr containers checkpoint --task --rw "$id" "$ref"
say "counter at checkpoint: about $before"
ctr images ls | awk -v r="$ref" 'NR == 1 || $1 == r' | sed 's/^/   /'

step "remove the container (kill the task, delete task and container)"
wait_counter_above $((before + 10))
say "counter kept running until now: $(counter)"
ctr tasks kill --signal SIGKILL "$id"
until ctr tasks ls | awk -v id="$id" '$1 == id && $3 == "STOPPED" {f=1} END {exit !f}'; do sleep 0.1; done
ctr tasks delete "$id" >/dev/null 2>&1 # (it warns that the task exited with 137: we killed it)
ctr containers delete "$id"
say "containers now: $(ctr containers ls -q | wc -l)"

step "restore it: ctr containers restore --live --rw $id $ref"
ctr containers restore --live --rw "$id" "$ref"
ctr tasks ls | sed 's/^/   /'
after="$(counter)"
say "counter right after restore: $after (the checkpoint's value, not the value at kill time)"
wait_counter_above $((after + 10))
say "counter a second later: $(counter), continuing from the checkpoint"

step "verify the restored memory (SIGUSR1 makes memhog check all $mib MiB)"
rm -f "$rootfs/tmp/counter.verify"
ctr tasks kill --signal SIGUSR1 "$id"
deadline=$((SECONDS + 30))
until [ -s "$rootfs/tmp/counter.verify" ]; do
  [ $SECONDS -lt $deadline ] || { echo "demo: no verification result" >&2; exit 1; }
  sleep 0.1
done
verdict="$(cat "$rootfs/tmp/counter.verify")"
say "memhog says: $verdict"
case "$verdict" in
  ok*) ;;
  *) echo "demo: memory corrupted after restore" >&2; exit 1 ;;
esac

step "done: checkpointed and restored a running container with runtime $runtime"
