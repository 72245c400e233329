#!/usr/bin/env bash
# Build mediasoup's C++ worker from the npm package's sources against Debian 12
# system libraries (no downloads). See README.md in this folder.
#
# Usage: bash build.sh <mediasoup-package-dir> <output-binary-path>
#   e.g. bash build.sh node_modules/mediasoup ~/.cache/vigie/mediasoup-worker-3.27.1-linux-x64
# Env:   KEEP_BUILD_DIR=1  keep the temporary build dir even on success.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
log() { printf '[mediasoup-worker] %s\n' "$*"; }
die() { printf '[mediasoup-worker] ERROR: %s\n' "$*" >&2; exit 1; }

[[ $# -eq 2 ]] || die "usage: bash build.sh <mediasoup-package-dir> <output-binary-path>"
PKG="$(cd "$1" 2>/dev/null && pwd)" || die "package dir not found: $1"
OUT="$2"
[[ -f "$PKG/worker/meson.build" ]] || die "$PKG/worker/meson.build missing: not a mediasoup npm package dir"
VERSION="$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["version"])' "$PKG/package.json")"
[[ "$VERSION" == "3.27.1" ]] || log "WARNING: patches were written for mediasoup 3.27.1, package is $VERSION"

# --- Preflight: every missing tool/library is reported with its Debian package.
missing=()
need_cmd() { command -v "$1" >/dev/null 2>&1 || missing+=("$2 (command '$1')"); }
need_cmd g++ build-essential
need_cmd strip binutils
need_cmd python3 python3
need_cmd pkg-config pkg-config
need_cmd meson meson
need_cmd ninja ninja-build
need_cmd flatc flatbuffers-compiler
need_pc() {
  command -v pkg-config >/dev/null 2>&1 || return 0
  pkg-config --exists "$1" || missing+=("$2 (pkg-config module '$1')")
}
need_pc libuv libuv1-dev
need_pc openssl libssl-dev
need_pc libsrtp2 libsrtp2-dev
need_pc flatbuffers libflatbuffers-dev
need_pc absl_strings libabsl-dev
need_pc absl_optional libabsl-dev
if ((${#missing[@]})); then
  printf '[mediasoup-worker] ERROR: missing build dependencies:\n' >&2
  printf '  - %s\n' "${missing[@]}" >&2
  die "install them with: apt-get install -y build-essential pkg-config meson ninja-build libuv1-dev libssl-dev libsrtp2-dev libabsl-dev libflatbuffers-dev flatbuffers-compiler"
fi

# --- Fresh copy of the sources; the package dir is never modified.
WORK="$(mktemp -d "${TMPDIR:-/tmp}/mediasoup-worker-build.XXXXXX")"
cleanup() {
  local rc=$?
  if [[ $rc -ne 0 ]]; then
    log "FAILED (exit $rc) after $((SECONDS / 60))m$((SECONDS % 60))s; build dir kept: $WORK"
  elif [[ "${KEEP_BUILD_DIR:-0}" == 1 ]]; then
    log "build dir kept: $WORK"
  else
    rm -rf "$WORK"
  fi
}
trap cleanup EXIT

SECONDS=0
JOBS="$(nproc)"
log "building mediasoup $VERSION worker from $PKG/worker ($JOBS jobs), build dir $WORK"
cp -a "$PKG/worker" "$WORK/worker"
python3 "$HERE/patch-sources.py" "$WORK/worker"

log "meson setup"
meson setup "$WORK/build" "$WORK/worker" --wrap-mode=nodownload --buildtype=release \
  >"$WORK/meson-setup.log" 2>&1 || { cat "$WORK/meson-setup.log" >&2; die "meson setup failed"; }
grep -E '^(Run-time dependency|Program flatc|Build type)' "$WORK/meson-setup.log" | sed 's/^/  /' || true

# ninja prints "[N/M] ..." per finished step: show every 10th step and the last
# one with the elapsed time, and every other line (compiler errors/warnings)
# verbatim. (A bash loop rather than awk: Debian's mawk reads pipes in blocks,
# which turns the progress into bursts.)
progress() {
  local line re='^\[([0-9]+)/([0-9]+)\]'
  while IFS= read -r line; do
    if [[ $line =~ $re ]]; then
      local n=${BASH_REMATCH[1]} m=${BASH_REMATCH[2]}
      if (( n % 10 == 0 || n == m )); then
        printf '[mediasoup-worker] step %d/%d (%dm%02ds)\n' "$n" "$m" $((SECONDS / 60)) $((SECONDS % 60))
      fi
    elif [[ $line != "ninja: Entering"* && $line != "ninja: no work"* ]]; then
      printf '%s\n' "$line"
    fi
  done
}
log "compiling (this takes several minutes)"
ninja -C "$WORK/build" -j"$JOBS" mediasoup-worker 2>&1 | progress

BIN="$WORK/build/mediasoup-worker"
[[ -x "$BIN" ]] || die "ninja finished but $BIN is missing"
if ldd "$BIN" | grep -q 'not found'; then
  ldd "$BIN" >&2
  die "built binary has unresolved shared libraries"
fi

# --- Strip and install atomically.
mkdir -p "$(dirname "$OUT")"
strip -o "$OUT.tmp" "$BIN"
chmod 0755 "$OUT.tmp"
mv -f "$OUT.tmp" "$OUT"
log "done in $((SECONDS / 60))m$((SECONDS % 60))s: $OUT ($(stat -c %s "$OUT") bytes)"
