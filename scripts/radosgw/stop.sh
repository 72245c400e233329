#!/usr/bin/env bash
# Stops what scripts/radosgw/start.sh started in DIR, by the pids recorded in DIR/run.
#
#   stop.sh DIR              stop radosgw, then the OSD, then the monitor (all data is lost:
#                            the OSD is memstore)
#   stop.sh DIR --gateway    stop only radosgw (objects stay in the OSD; bring it back with
#                            start.sh --gateway DIR)
#   add --kill               SIGKILL at once instead of SIGTERM (simulates a crash)
#
# Waits until each process has exited (SIGKILL after RADOSGW_STOP_TIMEOUT seconds, default 15).
# Does not remove DIR.
set -euo pipefail

log() { echo "[radosgw] $*"; }

[[ $# -ge 1 ]] || { echo "[radosgw] ERROR: usage: $0 DIR [--gateway] [--kill]" >&2; exit 1; }
DIR=$1
shift
ONLY_GATEWAY=0 SIGNAL=TERM
for a in "$@"; do
  case $a in
    --gateway) ONLY_GATEWAY=1 ;;
    --kill) SIGNAL=KILL ;;
    *) echo "[radosgw] ERROR: unknown option $a" >&2; exit 1 ;;
  esac
done
[[ -d $DIR/run ]] || { log "nothing to stop in $DIR"; exit 0; }
DIR=$(cd "$DIR" && pwd)
GRACE=${RADOSGW_STOP_TIMEOUT:-15}

# /proc/PID/cmdline must mention this DIR's ceph.conf: never signal a recycled pid
ours() { # pid
  [[ -r /proc/$1/cmdline ]] && tr '\0' ' ' <"/proc/$1/cmdline" | grep -qF -- "$DIR/ceph.conf"
}

stop_one() { # name
  local pidfile=$DIR/run/$1.pid pid
  [[ -s $pidfile ]] || return 0
  pid=$(cat "$pidfile")
  if ! kill -0 "$pid" 2>/dev/null || ! ours "$pid"; then
    rm -f "$pidfile"
    return 0
  fi
  log "stopping $1 (pid $pid, SIG$SIGNAL)"
  kill -s "$SIGNAL" "$pid" 2>/dev/null || true
  local deadline=$(( $(date +%s%N) / 1000000 + GRACE * 1000 ))
  while kill -0 "$pid" 2>/dev/null; do
    # a zombie (not reaped by our parent) counts as exited
    [[ $(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null) == Z ]] && break
    if (( $(date +%s%N) / 1000000 > deadline )); then
      log "$1 (pid $pid) still alive after ${GRACE}s: SIGKILL"
      kill -s KILL "$pid" 2>/dev/null || true
      deadline=$(( deadline + 5000 ))
    fi
    sleep 0.05
  done
  rm -f "$pidfile"
}

stop_one client.rgw
if (( ! ONLY_GATEWAY )); then
  stop_one osd.0
  stop_one mon.a
fi
log "stopped"
