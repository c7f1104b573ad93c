#!/usr/bin/env bash
# cryo's test command (README, .ci/run): setup, unit tests, then the integration tests (as root) with the type check.
# Ends with ONE line "N passed, N failed[, N skipped]" (the type check counts as one check) and exits
# non-zero when anything failed or when no test ran. JUnit files and logs: build/test-results/.
set -uo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"
results="$repo/build/test-results"
bun="$repo/node_modules/.bin/bun"

# ctr 2.2+ writes a "DEPRECATION: The support for cgroup v1 ..." line on stderr for every command on a cgroup v1
# host; tests that check a command's stderr would take it for the shim's. This is ctr's own switch for it (1.6
# prints no such line). Set here so every ctr the tests start, by the harness or directly, inherits it.
export CONTAINERD_SUPPRESS_DEPRECATION_WARNINGS="${CONTAINERD_SUPPRESS_DEPRECATION_WARNINGS:-1}"

"$repo/scripts/setup.sh" || { echo "test: setup failed"; echo "0 passed, 1 failed"; exit 1; }
rm -rf "$results"
mkdir -p "$results"

passed=0
failed=0
skipped=0

# attr NAME TEXT: the value of NAME="..." in TEXT (0 when absent)
attr() { local v; v="$(sed -n "s/.* $1=\"\([0-9]*\)\".*/\1/p" <<<"$2")"; echo "${v:-0}"; }

# count_suite NAME XML LOG RC: adds the counts of one bun test run (its JUnit file, its console log, its exit code).
count_suite() {
  local name="$1" xml="$2" log="$3" rc="$4"
  local head tests=0 fails=0 skips=0 console_fails
  if [ -s "$xml" ]; then
    head="$(grep -m1 -o '<testsuites [^>]*>' "$xml" || true)"
    tests="$(attr tests "$head")"
    fails="$(attr failures "$head")"
    skips="$(attr skipped "$head")"
  fi
  # A file that fails to load is not in the JUnit file, but bun's summary counts it under "fail".
  console_fails="$(sed -n 's/^ *\([0-9][0-9]*\) fail$/\1/p' "$log" | tail -1)"
  if [ "${console_fails:-0}" -gt "$fails" ]; then
    tests=$((tests + console_fails - fails))
    fails="$console_fails"
  fi
  if [ "$rc" -ne 0 ] && [ "$fails" -eq 0 ]; then
    echo "test: $name: bun test exited $rc with no failed test counted; counting one failure"
    tests=$((tests + 1))
    fails=1
  fi
  passed=$((passed + tests - fails - skips))
  failed=$((failed + fails))
  skipped=$((skipped + skips))
  echo "test: $name: $((tests - fails - skips)) passed, $fails failed, $skips skipped"
}

# run_suite NAME DIR: runs bun test on DIR with a JUnit report and adds its counts.
run_suite() {
  local name="$1" dir="$2" xml="$results/$1.xml" log="$results/$1.log" rc
  echo "test: $name tests ($dir)"
  "$bun" test --timeout 120000 --reporter=junit --reporter-outfile="$xml" "./$dir" 2>&1 | tee "$log"
  rc=${PIPESTATUS[0]}
  count_suite "$name" "$xml" "$log" "$rc"
}

# start_shards NAME N: starts the integration files as N bun test processes at once (scripts/test-shards.ts
# splits them by test/integration/durations.txt), each with its own JUnit file and log; finish_shards waits for
# them and prints each log whole. The files were written to run beside each other (private containerds, unique ids
# and namespaces, free ports); the few that share host state are pinned to one shard by the planner.
shard_plan=()
shard_pids=()
start_shards() {
  local name="$1" n="$2" i
  # Built once here, so the shards do not build them at the same time (each only reads them then).
  bash test/fixtures/build.sh >/dev/null || { echo "test: fixture build failed"; failed=$((failed + 1)); return; }
  bash plugins/build.sh >/dev/null || { echo "test: plugin build failed"; failed=$((failed + 1)); return; }
  mapfile -t shard_plan < <("$bun" scripts/test-shards.ts plan "$n")
  if [ "${#shard_plan[@]}" -ne "$n" ]; then
    echo "test: the shard plan has ${#shard_plan[@]} shards, not $n"
    failed=$((failed + 1))
    shard_plan=()
    return
  fi
  for i in "${!shard_plan[@]}"; do
    [ -n "${shard_plan[$i]}" ] || { shard_pids+=(""); continue; }
    echo "test: $name shard $((i + 1))/$n: ${shard_plan[$i]}"
    # shellcheck disable=SC2086 # the plan is a list of paths without spaces
    "$bun" test --timeout 120000 --reporter=junit --reporter-outfile="$results/$name-$((i + 1)).xml" ${shard_plan[$i]} \
      >"$results/$name-$((i + 1)).log" 2>&1 &
    shard_pids+=("$!")
  done
}

finish_shards() {
  local name="$1" n="${#shard_plan[@]}" i rc
  for i in "${!shard_plan[@]}"; do
    [ -n "${shard_pids[$i]}" ] || continue
    wait "${shard_pids[$i]}"
    rc=$?
    echo "test: $name shard $((i + 1))/$n (exit $rc):"
    cat "$results/$name-$((i + 1)).log"
    count_suite "$name shard $((i + 1))" "$results/$name-$((i + 1)).xml" "$results/$name-$((i + 1)).log" "$rc"
  done
}

# The unit tests run first, alone: some start real processes and watch them with timeouts, and one of those
# (criu/tree-watch) failed once when it ran beside the integration shards and a helper session's tests (load 8+).
# Then, with shards (CRYO_TEST_SHARDS, default 2), the integration files start and the type check runs beside
# them; CRYO_TEST_SHARDS=1 runs everything one after the other, the integration files in one process.
run_suite unit test/unit

shards="${CRYO_TEST_SHARDS:-2}"
[ "$shards" = 1 ] || start_shards integration "$shards"

echo "test: type check (tsc --noEmit -p .)"
if node_modules/.bin/tsc --noEmit -p . 2>&1 | tee "$results/typecheck.log"; then
  passed=$((passed + 1))
else
  echo "test: type check FAILED"
  failed=$((failed + 1))
fi

if [ "$shards" = 1 ]; then
  run_suite integration test/integration
else
  finish_shards integration
fi

if [ "$skipped" -gt 0 ]; then
  echo "$passed passed, $failed failed, $skipped skipped"
else
  echo "$passed passed, $failed failed"
fi
[ "$failed" -eq 0 ] && [ "$passed" -gt 1 ]
