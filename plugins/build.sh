#!/usr/bin/env bash
# Builds every cryo plugin (examples/ and testdata/) into build/plugins/<name>.wasm with
# AssemblyScript, without WASI. Idempotent: a plugin is rebuilt only when its source or the SDK
# is newer than its .wasm. Usage: plugins/build.sh [--force]
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/.." && pwd)"
asc="$root/node_modules/.bin/asc"
out="$root/build/plugins"
force=0
[[ "${1:-}" == "--force" ]] && force=1

[[ -x "$asc" ]] || { echo "plugins/build.sh: $asc not found (run npm ci)" >&2; exit 1; }
mkdir -p "$out"

# The newest SDK file: every plugin depends on it.
sdk_newest="$(find "$here/sdk/assembly" -name '*.ts' -printf '%T@\n' | sort -n | tail -1)"

cd "$here"
built=0
for src in examples/*.ts testdata/*.ts; do
  name="$(basename "$src" .ts)"
  wasm="$out/$name.wasm"
  if [[ $force == 0 && -f "$wasm" ]]; then
    wasm_time="$(stat -c '%Y' "$wasm")"
    src_time="$(stat -c '%Y' "$src")"
    if (( wasm_time >= src_time )) && awk -v a="$wasm_time" -v b="$sdk_newest" 'BEGIN { exit !(a >= b) }'; then
      continue
    fi
  fi
  # --use abort=...: AssemblyScript's default abort imports env.abort, which Extism does not provide;
  # the SDK's handler logs the message through Extism and traps.
  "$asc" "$src" --outFile "$wasm.tmp" --use abort=sdk/assembly/index/cryoAbort -O3 --runtime incremental
  mv "$wasm.tmp" "$wasm"
  echo "built $wasm"
  built=$((built + 1))
done
echo "plugins: $built built, all in $out"
