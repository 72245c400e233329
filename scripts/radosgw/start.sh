#!/usr/bin/env bash
# Starts a throwaway single-host Ceph cluster (1 monitor, 1 memstore OSD, no mgr) and a
# RADOS Gateway (S3) on 127.0.0.1, everything (config, fsid, mon/osd data, keyrings, logs,
# pid files, admin sockets) under DIR, so several instances can run side by side.
#
#   start.sh DIR PORT ACCESS_KEY SECRET_KEY [MON_PORT]
#       Fresh cluster in DIR (must not exist or be empty). S3 on 127.0.0.1:PORT, the
#       monitor on 127.0.0.1:MON_PORT (msgr2 only; default PORT+1). The OSD picks free
#       ports in 6800-7300 itself. Creates S3 user "vigie" with the given keys.
#   start.sh --gateway DIR
#       Starts only radosgw again for an existing DIR whose mon and osd still run (after
#       `stop.sh DIR --gateway`). Objects survive: they live in the OSD's memory.
#
# Prints "[radosgw] ..." progress lines and finally "READY http://127.0.0.1:PORT".
# Env: RADOSGW_MEMSTORE_BYTES (default 1 GiB), RADOSGW_TIMEOUT (seconds per wait, default 90),
#      RADOSGW_KMS_KEY_NAME (default vigie-test), RADOSGW_KMS_KEY_B64 (default: random 32 bytes).
# Stop with: stop.sh DIR
set -euo pipefail

log() { echo "[radosgw] $*"; }
die() {
  echo "[radosgw] ERROR: $*" >&2
  exit 1
}

usage() {
  die "usage: $0 DIR PORT ACCESS_KEY SECRET_KEY [MON_PORT]   |   $0 --gateway DIR"
}

need() { # binary, Debian package
  command -v "$1" >/dev/null 2>&1 || die "'$1' not found in PATH: install it with 'apt-get install -y $2' (all needed: apt-get install -y radosgw ceph-mon ceph-osd ceph-common)"
}

MODE=full
if [[ ${1:-} == --gateway ]]; then
  MODE=gateway
  shift
  [[ $# -eq 1 ]] || usage
else
  [[ $# -eq 4 || $# -eq 5 ]] || usage
fi

need ceph-authtool ceph-common
need monmaptool ceph-base
need ceph-mon ceph-mon
need ceph-osd ceph-osd
need ceph ceph-common
need radosgw radosgw
need radosgw-admin ceph-common

TIMEOUT=${RADOSGW_TIMEOUT:-90}
T0=$(date +%s%N)
elapsed() { echo "$(( ($(date +%s%N) - T0) / 1000000 )) ms"; }

tail_log() { # file
  if [[ -f $1 ]]; then
    echo "----- last lines of $1 -----" >&2
    tail -n 30 "$1" >&2 || true
  fi
}

pid_alive() { # pidfile
  [[ -s $1 ]] && kill -0 "$(cat "$1")" 2>/dev/null
}

# waits until the daemon has written its pid file (it daemonizes) and is alive
wait_pidfile() { # name pidfile logfile
  local deadline=$(( $(date +%s) + 20 ))
  until pid_alive "$2"; do
    if (( $(date +%s) > deadline )); then
      tail_log "$3"
      die "$1 did not start (no live pid in $2)"
    fi
    sleep 0.1
  done
}

http_answers() { # port
  local line=
  { exec 3<>"/dev/tcp/127.0.0.1/$1"; } 2>/dev/null || return 1
  printf 'GET / HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n' >&3
  IFS= read -r -t 5 line <&3 || true
  while IFS= read -r -t 2 _ <&3; do :; done # drain: HTTP/1.0, so radosgw closes
  exec 3<&- 3>&-
  [[ $line == HTTP/1.* ]]
}

port_free() { # port
  if { exec 4<>"/dev/tcp/127.0.0.1/$1"; } 2>/dev/null; then
    exec 4<&- 4>&-
    return 1
  fi
  return 0
}

start_gateway() {
  local port
  port=$(cat "$DIR/port")
  pid_alive "$DIR/run/client.rgw.pid" && die "radosgw already runs for $DIR (pid $(cat "$DIR/run/client.rgw.pid"))"
  port_free "$port" || die "port $port on 127.0.0.1 is already in use"
  rm -f "$DIR/run/client.rgw.pid"
  log "starting radosgw on 127.0.0.1:$port"
  # radosgw daemonizes (no -f) and writes $DIR/run/client.rgw.pid
  radosgw -c "$CONF" -n client.rgw >>"$DIR/log/radosgw.stdout" 2>&1 || {
    tail_log "$DIR/log/radosgw.stdout"
    tail_log "$DIR/log/client.rgw.log"
    die "radosgw failed to start"
  }
  wait_pidfile radosgw "$DIR/run/client.rgw.pid" "$DIR/log/client.rgw.log"
  local deadline=$(( $(date +%s) + TIMEOUT ))
  until http_answers "$port"; do
    if ! pid_alive "$DIR/run/client.rgw.pid"; then
      tail_log "$DIR/log/client.rgw.log"
      die "radosgw exited before answering HTTP"
    fi
    if (( $(date +%s) > deadline )); then
      tail_log "$DIR/log/client.rgw.log"
      die "radosgw did not answer HTTP on 127.0.0.1:$port within ${TIMEOUT}s"
    fi
    sleep 0.2
  done
  log "radosgw answers HTTP ($(elapsed))"
}

if [[ $MODE == gateway ]]; then
  DIR=$(cd "$1" && pwd) || die "no such directory: $1"
  CONF=$DIR/ceph.conf
  [[ -f $CONF && -f $DIR/port ]] || die "$DIR holds no cluster made by $0"
  pid_alive "$DIR/run/mon.a.pid" || die "the monitor of $DIR is not running; start a fresh cluster instead"
  pid_alive "$DIR/run/osd.0.pid" || die "the OSD of $DIR is not running; start a fresh cluster instead"
  start_gateway
  echo "READY http://127.0.0.1:$(cat "$DIR/port")"
  exit 0
fi

DIR_ARG=$1 PORT=$2 ACCESS_KEY=$3 SECRET_KEY=$4
MON_PORT=${5:-$((PORT + 1))}
[[ $PORT =~ ^[0-9]+$ && $PORT -gt 0 && $PORT -lt 65536 ]] || die "bad PORT: $PORT"
[[ $MON_PORT =~ ^[0-9]+$ && $MON_PORT -gt 0 && $MON_PORT -lt 65536 ]] || die "bad MON_PORT: $MON_PORT"
[[ $ACCESS_KEY =~ ^[A-Za-z0-9]+$ ]] || die "ACCESS_KEY must be alphanumeric"
[[ -n $SECRET_KEY && $SECRET_KEY != *[[:space:]]* ]] || die "SECRET_KEY must be non-empty without spaces"
if [[ -e $DIR_ARG ]] && [[ -n $(ls -A "$DIR_ARG") ]]; then
  die "$DIR_ARG exists and is not empty; give a fresh directory"
fi
mkdir -p "$DIR_ARG"
DIR=$(cd "$DIR_ARG" && pwd)
[[ $DIR != *[[:space:]]* ]] || die "DIR must not contain spaces: $DIR"
CONF=$DIR/ceph.conf
port_free "$PORT" || die "port $PORT on 127.0.0.1 is already in use"
port_free "$MON_PORT" || die "monitor port $MON_PORT on 127.0.0.1 is already in use"

FSID=$(cat /proc/sys/kernel/random/uuid)
OSD_UUID=$(cat /proc/sys/kernel/random/uuid)
KMS_NAME=${RADOSGW_KMS_KEY_NAME:-vigie-test}
KMS_KEY=${RADOSGW_KMS_KEY_B64:-$(head -c 32 /dev/urandom | base64 -w0)}
MEM_BYTES=${RADOSGW_MEMSTORE_BYTES:-1073741824}

mkdir -p "$DIR"/{mon,osd/ceph-0,rgw,log,run,crash,tmp}
echo "$PORT" >"$DIR/port"
echo "$MON_PORT" >"$DIR/mon_port"
printf '%s\n' "$KMS_NAME" >"$DIR/kms_key_id"

log "fresh cluster fsid $FSID in $DIR (s3 127.0.0.1:$PORT, mon 127.0.0.1:$MON_PORT)"
cat >"$CONF" <<EOF
[global]
fsid = $FSID
mon host = [v2:127.0.0.1:$MON_PORT]
ms bind msgr1 = false
ms bind ipv4 = true
ms bind ipv6 = false
public network = 127.0.0.0/8
cluster network = 127.0.0.0/8

auth cluster required = none
auth service required = none
auth client required = none
ms cluster mode = crc
ms service mode = crc
ms client mode = crc
ms mon cluster mode = crc
ms mon service mode = crc
ms mon client mode = crc

run dir = $DIR/run
admin socket = \$run_dir/\$cluster-\$name.\$pid.asok
pid file = \$run_dir/\$name.pid
log file = $DIR/log/\$name.log
mon cluster log file = $DIR/log/cluster.log
crash dir = $DIR/crash
keyring = $DIR/keyring
log to stderr = false
err to stderr = true

osd pool default size = 1
osd pool default min size = 1
osd pool default pg num = 8
osd pool default pgp num = 8
osd pool default pg autoscale mode = off
osd crush chooseleaf type = 0
mon allow pool size one = true
mon allow pool delete = true
mon data avail crit = 1
mon data avail warn = 2
mon warn on pool no redundancy = false

[mon]
mon data = $DIR/mon/\$cluster-\$id
# each pool radosgw creates costs a few paxos rounds: 1 s apiece by default
paxos propose interval = 0.05
paxos min wait = 0.01

[mon.a]
admin socket = \$run_dir/\$cluster-\$name.asok

[osd]
osd data = $DIR/osd/\$cluster-\$id
osd objectstore = memstore
memstore device bytes = $MEM_BYTES
public addr = 127.0.0.1
cluster addr = 127.0.0.1

[osd.0]
admin socket = \$run_dir/\$cluster-\$name.asok

[client.rgw]
admin socket = \$run_dir/\$cluster-\$name.asok
rgw data = $DIR/rgw
rgw frontends = beast endpoint=127.0.0.1:$PORT
rgw lc debug interval = 10
rgw crypt require ssl = false
rgw crypt s3 kms backend = testing
rgw crypt s3 kms encryption keys = $KMS_NAME=$KMS_KEY
EOF

log "creating monitor"
ceph-authtool --create-keyring "$DIR/mon.keyring" --gen-key -n mon. --cap mon 'allow *' >/dev/null
ceph-authtool --create-keyring "$DIR/keyring" --gen-key -n client.admin \
  --cap mon 'allow *' --cap osd 'allow *' --cap mds 'allow *' --cap mgr 'allow *' >/dev/null
ceph-authtool "$DIR/mon.keyring" --import-keyring "$DIR/keyring" >/dev/null
monmaptool --create --fsid "$FSID" --addv a "[v2:127.0.0.1:$MON_PORT]" "$DIR/monmap" >/dev/null
ceph-mon -c "$CONF" --mkfs -i a --monmap "$DIR/monmap" --keyring "$DIR/mon.keyring" \
  >>"$DIR/log/mon.stdout" 2>&1 || { tail_log "$DIR/log/mon.stdout"; tail_log "$DIR/log/mon.a.log"; die "ceph-mon --mkfs failed"; }
log "starting monitor"
ceph-mon -c "$CONF" -i a >>"$DIR/log/mon.stdout" 2>&1 || { tail_log "$DIR/log/mon.stdout"; tail_log "$DIR/log/mon.a.log"; die "ceph-mon failed to start"; }
wait_pidfile ceph-mon "$DIR/run/mon.a.pid" "$DIR/log/mon.a.log"

ceph_() { ceph -c "$CONF" --connect-timeout 10 "$@"; }

deadline=$(( $(date +%s) + TIMEOUT ))
until ceph_ mon stat >/dev/null 2>&1; do
  pid_alive "$DIR/run/mon.a.pid" || { tail_log "$DIR/log/mon.a.log"; die "ceph-mon exited"; }
  (( $(date +%s) > deadline )) && { tail_log "$DIR/log/mon.a.log"; die "monitor did not answer within ${TIMEOUT}s"; }
  sleep 0.2
done
log "monitor up ($(elapsed))"

log "creating OSD (memstore, $MEM_BYTES bytes)"
OSD_ID=$(ceph_ osd new "$OSD_UUID")
[[ $OSD_ID == 0 ]] || die "expected osd id 0, got '$OSD_ID'"
ceph-osd -c "$CONF" -i 0 --mkfs --osd-uuid "$OSD_UUID" >>"$DIR/log/osd.stdout" 2>&1 ||
  { tail_log "$DIR/log/osd.stdout"; tail_log "$DIR/log/osd.0.log"; die "ceph-osd --mkfs failed"; }
log "starting OSD"
ceph-osd -c "$CONF" -i 0 >>"$DIR/log/osd.stdout" 2>&1 || { tail_log "$DIR/log/osd.stdout"; tail_log "$DIR/log/osd.0.log"; die "ceph-osd failed to start"; }
wait_pidfile ceph-osd "$DIR/run/osd.0.pid" "$DIR/log/osd.0.log"

deadline=$(( $(date +%s) + TIMEOUT ))
until ceph_ osd stat -f json 2>/dev/null | grep -q '"num_up_osds":1[,}]'; do
  pid_alive "$DIR/run/osd.0.pid" || { tail_log "$DIR/log/osd.0.log"; die "ceph-osd exited"; }
  (( $(date +%s) > deadline )) && { tail_log "$DIR/log/osd.0.log"; die "OSD not up within ${TIMEOUT}s"; }
  sleep 0.2
done
log "OSD up: $(ceph_ osd stat 2>/dev/null | head -1) ($(elapsed))"

start_gateway

log "creating S3 user vigie"
radosgw-admin -c "$CONF" -n client.admin user create --uid=vigie --display-name=vigie \
  --access-key="$ACCESS_KEY" --secret="$SECRET_KEY" >"$DIR/log/user.json" 2>>"$DIR/log/radosgw-admin.stderr" ||
  { tail_log "$DIR/log/radosgw-admin.stderr"; die "radosgw-admin user create failed"; }
log "ready in $(elapsed); KMS key id $KMS_NAME; stop with: $(dirname "$0")/stop.sh $DIR"
echo "READY http://127.0.0.1:$PORT"
