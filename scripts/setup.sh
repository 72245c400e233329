#!/usr/bin/env bash
# Does whatever setup is missing, and nothing else, so it is cheap to run before
# every `npm start` and `npm test`.
#
#   bash scripts/setup.sh runtime   Debian runtime libraries, npm packages,
#                                   mediasoup worker, the compiled gateway,
#                                   browser SDK bundle
#   bash scripts/setup.sh test      the same, plus PostgreSQL 15, Chromium, Firefox ESR, iproute2
#                                   (network namespaces), coturn, ffmpeg and radosgw
#
# The mediasoup worker is taken from MEDIASOUP_WORKER_BIN, or a prebuilt one in
# the npm package, or the cache (~/.cache/vigie, by version and platform);
# failing all three it is built once from the sources in the npm package
# (about 8 minutes on 2 cores) and cached.
set -euo pipefail

mode=${1:-runtime}
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
say() { echo "[setup] $*" >&2; }
die() { echo "[setup] ERROR: $*" >&2; exit 1; }

case "$mode" in runtime|test) ;; *) die "usage: setup.sh runtime|test" ;; esac

mediasoup_version=$(node -p "require('./package.json').dependencies.mediasoup.replace(/^[^0-9]*/, '')")
platform=$(node -p "process.platform + '-' + process.arch")
cache_dir="${XDG_CACHE_HOME:-$HOME/.cache}/vigie"
cached_worker="$cache_dir/mediasoup-worker-$mediasoup_version-$platform"
prebuilt_worker="$root/node_modules/mediasoup/worker/out/Release/mediasoup-worker"

worker_available() {
  [ -n "${MEDIASOUP_WORKER_BIN:-}" ] && [ -x "$MEDIASOUP_WORKER_BIN" ] && return 0
  [ -x "$prebuilt_worker" ] || [ -x "$cached_worker" ]
}

# --- Debian packages -----------------------------------------------------------
runtime_pkgs=(libuv1 libssl3 libsrtp2-1 libabsl20220623)
build_pkgs=(build-essential pkg-config meson ninja-build python3 libuv1-dev libssl-dev libsrtp2-dev libabsl-dev libflatbuffers-dev flatbuffers-compiler)
test_pkgs=(chromium firefox-esr iproute2 nftables coturn ffmpeg radosgw ceph-mon ceph-osd ceph-common postgresql)

wanted=("${runtime_pkgs[@]}")
worker_available || wanted+=("${build_pkgs[@]}")
[ "$mode" = test ] && wanted+=("${test_pkgs[@]}")

missing=()
for p in "${wanted[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  say "installing Debian packages: ${missing[*]}"
  if [ "$(id -u)" = 0 ]; then apt=(apt-get); elif command -v sudo >/dev/null && sudo -n true 2>/dev/null; then apt=(sudo apt-get); else
    die "missing Debian packages: ${missing[*]}. Run: sudo apt-get update && sudo apt-get install -y ${missing[*]}"
  fi
  export DEBIAN_FRONTEND=noninteractive
  "${apt[@]}" update -qq
  "${apt[@]}" install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  say "Debian packages installed"
fi

# --- npm packages --------------------------------------------------------------
# mediasoup's own postinstall would try to download a worker; pointing
# MEDIASOUP_WORKER_BIN at the cache makes it skip on npm versions that run it.
# Installed when the lockfile's content differs from the one last installed, not by file times: a fresh checkout
# (a clone, a git worktree) gives the lockfile a new time without changing what it locks.
lock_sum=$(sha256sum package-lock.json | cut -d' ' -f1)
if [ ! -f node_modules/.package-lock.json ] || [ "$(cat node_modules/.vigie-lock.sha256 2>/dev/null)" != "$lock_sum" ]; then
  # Not `npm ci`: chdb lists optional engine builds for darwin and linux-arm64
  # that this registry does not serve, so the lockfile cannot hold them and
  # `npm ci` refuses it as "out of sync". `npm install --no-save` installs the
  # locked versions, skips the unavailable optional builds, and writes nothing.
  # --include=dev even under NODE_ENV=production: compiling the gateway needs typescript.
  say "installing npm packages (npm install from package-lock.json)"
  MEDIASOUP_WORKER_BIN="${MEDIASOUP_WORKER_BIN:-$cached_worker}" npm install --include=dev --no-save --no-audit --no-fund --loglevel=error
  echo "$lock_sum" > node_modules/.vigie-lock.sha256
fi

# --- mediasoup worker ----------------------------------------------------------
if ! worker_available; then
  say "no mediasoup-worker $mediasoup_version for $platform: building it from the npm package's sources (about 8 minutes, once per machine)"
  bash scripts/mediasoup-worker/build.sh node_modules/mediasoup "$cached_worker"
fi

# --- the gateway, compiled ----------------------------------------------------------
# Production runs plain JavaScript (dist/server); tests and tools run the TypeScript through tsx.
server=dist/server/main.js
if [ ! -f "$server" ] || [ -n "$(find src tsconfig.json tsconfig.build.json -newer "$server" -print -quit)" ]; then
  say "compiling the gateway into dist/server"
  npx --no-install tsc -p tsconfig.build.json
fi

# --- browser SDK bundle --------------------------------------------------------
bundle=dist/public/vigie-sdk.js
if [ ! -f "$bundle" ] || [ -n "$(find src/sdk -newer "$bundle" -print -quit)" ]; then
  npx --no-install tsx scripts/build-sdk.ts
fi
