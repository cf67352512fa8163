#!/usr/bin/env bash
# A one-node Ceph cluster with a RADOS Gateway, for zferry's S3 tests: a real
# S3 server from Debian's own packages (ceph-mon, ceph-mgr, ceph-osd, radosgw),
# in one folder, no systemd, nothing listening beyond 127.0.0.1.
#   scripts/ceph-s3.sh start   start it (idempotent: a running cluster is kept),
#                              then print the env file's lines
#   scripts/ceph-s3.sh env     print the env file (AWS_* for the test user)
#   scripts/ceph-s3.sh stop    stop every daemon and remove the folder (only one
#                              this script made: it holds .zferry-ceph)
# ZFERRY_CEPH_DIR (default /var/tmp/zferry-ceph) and ZFERRY_CEPH_RGW_PORT
# (default 17480) choose the folder and the gateway's port.
# ZFERRY_CEPH_MEMSTORE_BYTES (default 4 GiB) caps what the store holds: the
# tests need far less; `npm run bench -- --s3` keeps several copies of a
# 0.44 GiB bundle (and RGW frees deleted objects only later), so start it
# with 12 GiB for the bench. A full OSD does not refuse writes: it stops
# answering them ("full status failsafe engaged" in osd.0.log).
# The one OSD is a memstore (data in RAM, capped by memstore_device_bytes):
# no disk image to make, and nothing to clean up but the folder.
set -euo pipefail

D=${ZFERRY_CEPH_DIR:-/var/tmp/zferry-ceph}
RGW_PORT=${ZFERRY_CEPH_RGW_PORT:-17480}
MON_PORT=${ZFERRY_CEPH_MON_PORT:-16789}
MEMSTORE_BYTES=${ZFERRY_CEPH_MEMSTORE_BYTES:-4294967296}
CONF=$D/ceph.conf
ENDPOINT=http://127.0.0.1:$RGW_PORT

say() { echo "ceph-s3: $*" >&2; }
# Seconds since start, for the phase lines (start-up time is CI's budget).
lap() { say "$(echo "$(date +%s.%N) - $t0" | bc | cut -c1-5)s $*"; }

# The daemons by their pid files, and any process started with this cluster's
# conf whose pid file is gone (a start killed half way, a folder removed under
# a running daemon): a survivor would hold the ports and answer the next
# cluster with its old fsid.
daemon_pids() {
  local f p
  for f in "$D"/run/*.pid; do
    [ -f "$f" ] && cat "$f"
  done
  for p in /proc/[0-9]*; do
    case $(cat "$p/comm" 2>/dev/null) in
      ceph-mon|ceph-mgr|ceph-osd|radosgw) tr '\0' ' ' <"$p/cmdline" 2>/dev/null | grep -qF -- "-c $CONF " && echo "${p#/proc/}" ;;
    esac
  done
  return 0
}

rgw_up() { curl -fsS -o /dev/null --max-time 2 "$ENDPOINT/" 2>/dev/null; }

rss_mib() {
  local pids
  pids=$(daemon_pids | sort -u | tr '\n' ',' | sed 's/,$//')
  [ -n "$pids" ] || { echo 0; return; }
  ps -o rss= -p "$pids" | awk '{s+=$1} END {print int(s/1024)}'
}

# The folder this script made holds this file; stop removes no other folder
# (ZFERRY_CEPH_DIR pointed at a real cluster's, or at anything else).
MARK=.zferry-ceph

stop() {
  local pids p i
  if [ -e "$D" ] || [ -L "$D" ]; then
    # A folder of an earlier version of this script has no mark, but its ceph.conf names its own run folder.
    if [ ! -e "$D/$MARK" ] && ! grep -qxF "run_dir = $D/run" "$D/ceph.conf" 2>/dev/null \
      && { [ ! -d "$D" ] || [ -L "$D" ] || [ -n "$(ls -A -- "$D" 2>/dev/null || echo unreadable)" ]; }; then
      say "$D was not made by this script (no $MARK in it): nothing there is stopped or removed"
      return 1
    fi
  fi
  pids=$(daemon_pids | sort -u)
  [ -n "$pids" ] && say "stopping; daemons' RSS $(rss_mib) MiB"
  for p in $pids; do kill "$p" 2>/dev/null || true; done
  for i in $(seq 50); do
    local alive=0
    for p in $pids; do kill -0 "$p" 2>/dev/null && alive=1; done
    [ "$alive" = 0 ] && break
    sleep 0.2
  done
  for p in $pids; do kill -9 "$p" 2>/dev/null || true; done
  # A monitor still holding its port would answer the next cluster with the old fsid.
  for i in $(seq 50); do
    ss -Hltn "( sport = :$MON_PORT or sport = :$RGW_PORT )" 2>/dev/null | grep -q . || break
    sleep 0.2
  done
  rm -rf "$D"
}

write_conf() {
  local fsid=$1
  mkdir -p "$D"/{run,log,mon,osd,mgr,rgw}
  : >"$D/$MARK"
  cat >"$CONF" <<EOF
[global]
fsid = $fsid
mon_host = v1:127.0.0.1:$MON_PORT
ms_bind_msgr2 = false
public_addr = 127.0.0.1
run_dir = $D/run
pid_file = $D/run/\$name.pid
admin_socket = $D/run/\$name.asok
log_file = $D/log/\$name.log
mon_data = $D/mon/\$cluster-\$id
osd_data = $D/osd/\$cluster-\$id
mgr_data = $D/mgr/\$cluster-\$id
keyring = $D/keyring
# Loopback only, and one machine: no cephx round trips at start.
auth_cluster_required = none
auth_service_required = none
auth_client_required = none
osd_pool_default_size = 1
osd_pool_default_min_size = 1
mon_allow_pool_size_one = true
mon_warn_on_pool_no_redundancy = false
osd_crush_chooseleaf_type = 0
# Few placement groups: each costs start-up time and memory; rgw makes ~7 pools.
osd_pool_default_pg_num = 1
osd_pool_default_pgp_num = 1
osd_pool_default_pg_autoscale_mode = off
mon_max_pg_per_osd = 1000
osd_objectstore = memstore
memstore_device_bytes = $MEMSTORE_BYTES
osd_memory_target = 939524096
mon_osd_full_ratio = 0.97
mgr_initial_modules =
# The OSD is placed in the CRUSH map by this script before it starts, so it
# sends the monitor no command at start: without cephx its first command can
# leave before the monitor's map reached it, carrying a zero fsid, and the
# monitor refuses it ("wrong fsid") and the OSD exits (a race seen under load).
osd_crush_update_on_start = false
osd_class_update_on_start = false
[client.rgw.a]
rgw_frontends = beast endpoint=127.0.0.1:$RGW_PORT
rgw_data = $D/rgw
rgw_thread_pool_size = 64
EOF
}

start() {
  trap 'say "start failed at line $LINENO: $BASH_COMMAND (logs: $D/log)"' ERR
  if [ -f "$D/env" ] && rgw_up; then
    say "already running at $ENDPOINT"
    cat "$D/env"
    return 0
  fi
  # Half a cluster (a crash, a killed run) is not reused: start clean.
  stop
  local t0 fsid
  t0=$(date +%s.%N)
  fsid=$(cat /proc/sys/kernel/random/uuid)
  write_conf "$fsid"
  ceph-authtool --create-keyring "$D/keyring" --gen-key -n mon. --cap mon 'allow *' >/dev/null
  monmaptool --create --fsid "$fsid" --addv a "[v1:127.0.0.1:$MON_PORT]" "$D/monmap" >/dev/null
  ceph-mon -c "$CONF" -i a --mkfs --monmap "$D/monmap" --keyring "$D/keyring"
  ceph-mon -c "$CONF" -i a
  lap "mon started"
  mkdir -p "$D/mgr/ceph-x"
  ceph-mgr -c "$CONF" -i x
  local uuid id i
  # The monitor takes a moment to form its quorum of one; a command before that fails.
  for i in $(seq 100); do
    ceph -c "$CONF" --connect-timeout 5 mon stat >/dev/null 2>&1 && break
    sleep 0.2
  done
  uuid=$(cat /proc/sys/kernel/random/uuid)
  id=$(ceph -c "$CONF" --connect-timeout 30 osd new "$uuid")
  ceph -c "$CONF" --connect-timeout 30 osd crush add "osd.$id" 1 root=default >/dev/null 2>&1
  mkdir -p "$D/osd/ceph-$id"
  ceph-osd -c "$CONF" -i "$id" --mkfs --osd-uuid "$uuid" 2>>"$D/log/osd-mkfs.log"
  ceph-osd -c "$CONF" -i "$id" 2>>"$D/log/osd-start.log"
  # Bounded by the clock, not by tries: under load one `ceph` call alone takes seconds.
  local deadline=$(( $(date +%s) + 60 )) osd_pid
  until ceph -c "$CONF" --connect-timeout 10 osd stat -f json 2>/dev/null | grep -q '"num_up_osds":1'; do
    [ "$(date +%s)" -lt "$deadline" ] || { say "the OSD did not come up in 60 s"; return 1; }
    # An OSD that exited will not come up: fail now (the caller retries), not after the whole wait.
    osd_pid=$(cat "$D/run/osd.$id.pid" 2>/dev/null || true)
    if [ -n "$osd_pid" ] && ! kill -0 "$osd_pid" 2>/dev/null; then
      say "the OSD exited: $(grep -- ' -1 ' "$D/log/osd.$id.log" | tail -1 | cut -c1-200)"
      return 1
    fi
    sleep 0.2
  done
  lap "osd up"
  radosgw -c "$CONF" -n client.rgw.a
  deadline=$(( $(date +%s) + 90 ))
  until rgw_up; do
    [ "$(date +%s)" -lt "$deadline" ] || break
    sleep 0.2
  done
  rgw_up || { say "radosgw did not answer at $ENDPOINT (logs: $D/log)"; exit 1; }
  lap "radosgw answers"
  local access secret
  access=ZF$(head -c 9 /dev/urandom | od -An -tx1 | tr -d ' \n' | tr a-f A-F)
  secret=$(head -c 30 /dev/urandom | base64 | tr -d '/+=\n' | head -c 40)
  radosgw-admin -c "$CONF" -n client.rgw.a --admin_socket= user create --uid=zferry --display-name=zferry \
    --access-key="$access" --secret-key="$secret" >/dev/null
  umask 077
  cat >"$D/env" <<EOF
AWS_ENDPOINT_URL=$ENDPOINT
AWS_ACCESS_KEY_ID=$access
AWS_SECRET_ACCESS_KEY=$secret
AWS_REGION=us-east-1
ZFERRY_CEPH_CONF=$CONF
EOF
  say "up at $ENDPOINT in $(echo "$(date +%s.%N) - $t0" | bc)s, daemons' RSS $(rss_mib) MiB"
  cat "$D/env"
}

case "${1:-}" in
  # One retry from scratch: a first start on a loaded machine sometimes loses a race between daemons.
  start) ( start ) || {
    # The failed attempt's logs are kept beside the folder for a look afterwards.
    rm -rf "$D.failed-logs"; cp -r "$D/log" "$D.failed-logs" 2>/dev/null || true
    say "retrying once from a clean folder (logs of the failed start: $D.failed-logs)"; stop; start; } ;;
  stop) stop ;;
  env) cat "$D/env" ;;
  *) echo "usage: $0 start|stop|env" >&2; exit 2 ;;
esac
