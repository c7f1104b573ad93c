#!/usr/bin/env bash
# One idempotent setup for cryo, called by both README commands (scripts/demo.sh, scripts/test.sh).
# Fast when everything is present; complete on a fresh Debian bookworm machine (run as root):
#   1. Debian packages: containerd, runc, iptables, busybox-static, build tools (gcc, make, patch), CRIU's build deps, node/npm if absent
#   2. CRIU >= 4.2 and libcriu, built from Debian's source package (sid), into /usr/local (and cryo's own criu
#      binary, whose kernel-facts cache lives on a tmpfs: see below)
#   3. npm ci when node_modules is missing or does not match package-lock.json
#   4. cryo's binaries (build/bin) installed to /usr/local/bin
#   5. test fixtures (static programs, the OCI test image) and plugins (plugins/build.sh, when present)
#
# Env: CRYO_CRIU_PREFIX  where CRIU is looked for and installed (default /usr/local: sbin/criu, lib/libcriu.so,
#                        libexec/cryo/criu)
#      CRYO_INSTALL_BIN  where cryo's binaries are installed (default /usr/local/bin; "" skips installing)
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"
criu_prefix="${CRYO_CRIU_PREFIX:-/usr/local}"
install_bin="${CRYO_INSTALL_BIN-/usr/local/bin}"
criu_min="4.2"

say() { echo "setup: $*"; }
die() { echo "setup: error: $*" >&2; exit 1; }

# missing_packages PKG...: the names of those not installed, one per line. dpkg-query exits 1 when any package
# is unknown to dpkg (never installed): that is a fresh machine's case, not an error, and under pipefail it must
# not end the script (it once did, silently: test/unit/scripts/setup.test.ts).
missing_packages() {
  local installed p
  installed=" $({ dpkg-query -W -f='${Package} ${Status}\n' "$@" 2>/dev/null || true; } | awk '/install ok installed$/ {print $1}' | tr '\n' ' ') "
  for p in "$@"; do
    [[ "$installed" == *" $p "* ]] || echo "$p"
  done
}
# For the tests: `setup.sh --missing-packages PKG...` runs only that check.
if [ "${1:-}" = "--missing-packages" ]; then
  shift
  missing_packages "$@"
  exit 0
fi

# cryo's CRIU patches of this tree, one line each: name and sha256 (what a build record lists, less applied|skipped).
cryo_patches() { for p in "$repo"/scripts/criu/*.patch; do [ -e "$p" ] && echo "$(basename "$p") $(sha256sum "$p" | cut -d' ' -f1)"; done; }
# record_has_more RECORD: true when the build record (criu.build) lists every patch of this tree, the same file, and
# more: the build of a newer tree. A setup of an older checkout (a helper's clone, a bisect) rebuilt it without
# them, for every shim of the host, until the newer tree's setup ran again; it is now kept, with a warning.
record_has_more() {
  local record ours line
  record="$(tail -n +2 "$1" | cut -d' ' -f1-2)"
  ours="$(cryo_patches)"
  [ "$record" != "$ours" ] || return 1
  while IFS= read -r line; do
    [ -z "$line" ] || grep -qxF "$line" <<<"$record" || return 1
  done <<<"$ours"
}
# For the tests: `setup.sh --criu-record-has-more RECORD` runs only that check (exit 0: it has more).
if [ "${1:-}" = "--criu-record-has-more" ]; then
  record_has_more "$2"
  exit $?
fi

[ "$(id -u)" = 0 ] || die "run as root (containerd, runc and CRIU need it)"

# --- 1. Debian packages -------------------------------------------------------------------------------------
packages=(
  containerd runc iptables busybox-static iproute2 zstd gcc make pkg-config ca-certificates xz-utils
  patch # applies scripts/criu/*.patch to cryo's CRIU build
  nftables # nft: the tests look for CRIU's nftables network lock in a restored netns (CRIU itself uses libnftables)
  gdb # the tests hold CRIU at a point of its dump (checkpoint-cancel.test.ts)
  # CRIU's build dependencies
  libprotobuf-dev libprotobuf-c-dev protobuf-c-compiler protobuf-compiler python3-protobuf libnl-3-dev
  libcap-dev libnet1-dev libbsd-dev libaio-dev uuid-dev libgnutls28-dev libnftables-dev
)
command -v npm >/dev/null || packages+=(nodejs npm)
missing=()
for p in $(missing_packages "${packages[@]}"); do missing+=("$p"); done
apt_updated=0
if [ ${#missing[@]} -gt 0 ]; then
  say "installing Debian packages: ${missing[*]}"
  apt-get update -qq
  apt_updated=1
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
else
  say "Debian packages present"
fi

# --- 2. CRIU >= 4.2 and libcriu ---------------------------------------------------------------------------------
# Two criu binaries come out of one source tree:
#   $criu_prefix/sbin/criu            the host's CRIU (runc, the `criu` CLI), built as upstream ships it;
#   $criu_prefix/libexec/cryo/criu    cryo's (libcriu's swrk, lazy-pages): the same build with CRIU's
#                                     kernel-facts cache (criu.kdat) in /dev/shm/cryo-criu instead of /run,
#                                     and with the patches of scripts/criu/*.patch (each one says why).
# CRIU keeps that cache only on a tmpfs (it must go with a reboot). Where /run is not one (this VM: ext4),
# upstream's CRIU works the kernel's facts out again on every call: 30-60 ms of each dump and restore here.
# cryo makes /dev/shm/cryo-criu itself (root's, 0700) before each call (src/criu/binary.ts).
criu_bin="$criu_prefix/sbin/criu"
criu_lib_dir="$criu_prefix/lib"
cryo_criu="$criu_prefix/libexec/cryo/criu"
cryo_kdat_dir=/dev/shm/cryo-criu # also in src/criu/binary.ts
# What cryo's criu was built with (CRIU's version, then one line per patch: name, sha256, applied|skipped),
# written after its build: a changed patch set rebuilds it. A patch that does not apply to the version at
# hand is skipped with a warning, and recorded as skipped so that it is not retried: 0001-0003 only save time;
# without 0004 a post-copy source is lost when its restore fails after the lazy-pages daemon connected, and
# without 0005 a restore of a checkpoint whose pages image is cut short spins for ever.
cryo_criu_stamp="$criu_prefix/libexec/cryo/criu.build"
criu_version_of() { "$1" --version 2>/dev/null | awk '/^Version:/ {print $2}' || true; }
criu_version="$(criu_version_of "$criu_bin")"
host_criu_ok=0
if [ -n "$criu_version" ] && dpkg --compare-versions "$criu_version" ge "$criu_min" && [ -e "$criu_lib_dir/libcriu.so.2" ]; then
  host_criu_ok=1
fi
cryo_criu_ok=0
if [ "$host_criu_ok" = 1 ] && [ "$(criu_version_of "$cryo_criu")" = "$criu_version" ] && grep -qaF "$cryo_kdat_dir/criu.kdat" "$cryo_criu" \
  && [ -e "$cryo_criu_stamp" ] && [ "$(head -1 "$cryo_criu_stamp")" = "criu $criu_version" ] \
  && [ "$(tail -n +2 "$cryo_criu_stamp" | cut -d' ' -f1-2)" = "$(cryo_patches)" ]; then
  cryo_criu_ok=1
elif [ "$host_criu_ok" = 1 ] && [ "$(criu_version_of "$cryo_criu")" = "$criu_version" ] && grep -qaF "$cryo_kdat_dir/criu.kdat" "$cryo_criu" \
  && [ -e "$cryo_criu_stamp" ] && [ "$(head -1 "$cryo_criu_stamp")" = "criu $criu_version" ] && record_has_more "$cryo_criu_stamp"; then
  extra="$(tail -n +2 "$cryo_criu_stamp" | cut -d' ' -f1-2 | grep -vxF -f <(cryo_patches) | cut -d' ' -f1 | paste -sd, -)"
  echo "setup: warning: $cryo_criu was built with patches this tree lacks ($extra), by a newer tree: kept, not rebuilt without them (CRYO_CRIU_PREFIX=DIR builds this tree's elsewhere; docs/setup.md)" >&2
  cryo_criu_ok=1
fi
if [ "$host_criu_ok" = 1 ] && [ "$cryo_criu_ok" = 1 ]; then
  say "CRIU $criu_version present ($criu_bin, $cryo_criu)"
else
  if [ "$host_criu_ok" = 1 ]; then
    say "building cryo's CRIU $criu_version ($cryo_criu) from Debian's source package; takes about a minute"
  else
    say "building CRIU >= $criu_min and libcriu from Debian's source package (found: ${criu_version:-none}); takes about two minutes"
  fi
  (
    build_dir="$(mktemp -d /tmp/cryo-criu-build.XXXXXX)"
    sid_list=/etc/apt/sources.list.d/cryo-criu-sid-src.list
    cleanup() {
      # Always leave apt as we found it: bookworm only.
      rm -f "$sid_list"
      apt-get update -qq || echo "setup: warning: apt-get update after removing the sid deb-src entry failed" >&2
      rm -rf "$build_dir"
    }
    trap cleanup EXIT
    echo "deb-src http://deb.debian.org/debian sid main" >"$sid_list"
    apt-get update -qq
    # apt-get exits non-zero when Debian's packaging tarball cannot be fetched; only the upstream tarball is needed.
    (cd "$build_dir" && apt-get source --download-only criu/sid >"$build_dir/source.log" 2>&1) || true
    orig="$(ls "$build_dir"/criu_*.orig.tar.* 2>/dev/null | head -1 || true)"
    [ -n "$orig" ] || { tail -20 "$build_dir/source.log" >&2; die "apt-get source criu/sid brought no upstream tarball"; }
    say "building $(basename "$orig")"
    tar -xf "$orig" -C "$build_dir"
    src="$(find "$build_dir" -mindepth 1 -maxdepth 1 -type d -name 'criu-*' | head -1)"
    [ -n "$src" ] || die "no criu-* directory in $orig"
    if [ "$host_criu_ok" = 0 ]; then
      make -C "$src" -j2 criu lib >"$build_dir/make.log" 2>&1 || { tail -30 "$build_dir/make.log" >&2; die "make criu lib failed"; }
      mkdir -p "$criu_prefix/sbin" "$criu_lib_dir"
      install -m 0755 "$src/criu/criu" "$criu_bin.new" && mv -f "$criu_bin.new" "$criu_bin"
      install -m 0644 "$src/lib/c/libcriu.so" "$criu_lib_dir/libcriu.so.2.new" && mv -f "$criu_lib_dir/libcriu.so.2.new" "$criu_lib_dir/libcriu.so.2"
      ln -sfn libcriu.so.2 "$criu_lib_dir/libcriu.so"
      # Only kerndat.o depends on RUNDIR: make it again with cryo's, then relink.
      touch "$src/criu/kerndat.c"
    fi
    version="$(sed -n 's/^criu_\([^-]*\)\.orig\.tar.*/\1/p' <<<"$(basename "$orig")")"
    stamp="$build_dir/criu.build"
    echo "criu ${version:-unknown}" >"$stamp"
    for p in "$repo"/scripts/criu/*.patch; do
      [ -e "$p" ] || continue
      line="$(basename "$p") $(sha256sum "$p" | cut -d' ' -f1)"
      if patch -d "$src" -p1 --forward --dry-run --quiet <"$p" >/dev/null 2>&1; then
        patch -d "$src" -p1 --forward --quiet <"$p" >/dev/null
        echo "$line applied" >>"$stamp"
      else
        echo "setup: warning: $(basename "$p") does not apply to CRIU ${version:-?}: cryo's criu is built without it" >&2
        echo "$line skipped" >>"$stamp"
      fi
    done
    make -C "$src" -j2 RUNDIR="$cryo_kdat_dir" criu >"$build_dir/make-cryo.log" 2>&1 || { tail -30 "$build_dir/make-cryo.log" >&2; die "make criu (cryo's) failed"; }
    grep -qaF "$cryo_kdat_dir/criu.kdat" "$src/criu/criu" || die "cryo's criu does not name $cryo_kdat_dir/criu.kdat"
    mkdir -p "$(dirname "$cryo_criu")"
    install -m 0755 "$src/criu/criu" "$cryo_criu.new" && mv -f "$cryo_criu.new" "$cryo_criu"
    install -m 0644 "$stamp" "$cryo_criu_stamp"
  )
  ldconfig
  criu_version="$(criu_version_of "$criu_bin")"
  say "installed CRIU $criu_version: $criu_bin, $cryo_criu, libcriu in $criu_lib_dir"
  "$criu_bin" check || die "criu check failed"
fi

# CRIU's lazy page server (post-copy checkpoints, docs/checkpoint-restore.md) sizes its pipes to 4 MiB with
# F_SETPIPE_SZ, which over fs.pipe-max-size needs CAP_SYS_RESOURCE, and containerd's shims have none here.
pipe_max=4194304
if [ "$(cat /proc/sys/fs/pipe-max-size)" -lt "$pipe_max" ]; then
  echo "$pipe_max" >/proc/sys/fs/pipe-max-size || die "cannot raise fs.pipe-max-size to $pipe_max"
  say "fs.pipe-max-size raised to $pipe_max (CRIU's lazy page server)"
fi
if [ ! -f /etc/sysctl.d/60-cryo.conf ]; then
  printf '# cryo: CRIU'"'"'s lazy page server (post-copy checkpoints) needs pipes of 4 MiB\nfs.pipe-max-size = %s\n' "$pipe_max" >/etc/sysctl.d/60-cryo.conf
fi

node_major="$(node -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0)"
if [ "$node_major" -lt 20 ]; then
  # Debian bookworm's nodejs is 18; assemblyscript wants >= 20 and protoc-gen-es >= 22 (20 is known to work).
  say "warning: node $(node --version 2>/dev/null || echo missing) is older than 20; npm ci may warn and plugin/codegen steps may fail"
fi

# --- 3. node_modules --------------------------------------------------------------------------------------------
# Stale when any package in package-lock.json is missing from node_modules or has another version.
node_modules_ok() {
  [ -x node_modules/.bin/bun ] && [ -x node_modules/.bin/tsc ] || return 1
  node -e '
    const fs = require("fs");
    const lock = JSON.parse(fs.readFileSync("package-lock.json", "utf8"));
    for (const [path, entry] of Object.entries(lock.packages ?? {})) {
      if (!path.startsWith("node_modules/") || entry.optional || entry.link) continue;
      let version;
      try { version = JSON.parse(fs.readFileSync(path + "/package.json", "utf8")).version; } catch { process.exit(1); }
      if (version !== entry.version) process.exit(1);
    }' 2>/dev/null
}
if node_modules_ok; then
  say "node_modules matches package-lock.json"
else
  say "npm ci"
  npm ci --no-audit --no-fund --loglevel=error
fi
bun="$repo/node_modules/.bin/bun"

# --- 4. cryo's binaries -----------------------------------------------------------------------------------------
# Rebuilt when a source, package.json or the lockfile is newer than the binaries.
stale() { [ ! -e "$1" ] || [ -n "$(find src package.json package-lock.json -newer "$1" -print -quit)" ]; }
shim_out=build/bin/containerd-shim-cryo-v2
cli_out=build/bin/cryo
if [ -f src/shim/main.ts ]; then
  if stale "$shim_out" || stale "$cli_out"; then
    say "building $shim_out and $cli_out (npm run build)"
    npm run --silent build >/dev/null
  else
    say "binaries up to date"
  fi
else
  say "note: src/shim/main.ts does not exist yet; building only $cli_out (the cryo runtime cannot run containers yet)"
  if stale "$cli_out"; then
    "$bun" build --compile --no-compile-autoload-dotenv --no-compile-autoload-bunfig --minify src/cli/main.ts --outfile "$cli_out" >/dev/null
  fi
fi
if [ -n "$install_bin" ]; then
  for bin in "$shim_out" "$cli_out"; do
    [ -f "$bin" ] || continue
    dest="$install_bin/$(basename "$bin")"
    if ! cmp -s "$bin" "$dest"; then
      # Copy then rename: a running shim keeps its old inode (no "text file busy").
      cp "$bin" "$dest.new" && chmod 0755 "$dest.new" && mv -f "$dest.new" "$dest"
      say "installed $dest"
    fi
  done
fi

# --- 5. fixtures and plugins ------------------------------------------------------------------------------------
archive="$(bash test/fixtures/build.sh)"
say "test image: $archive"
if [ -f plugins/build.sh ]; then
  say "building plugins (plugins/build.sh)"
  bash plugins/build.sh
fi
say "done"
