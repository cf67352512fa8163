#!/usr/bin/env bash
# `npm run test:s3`: the S3 lane against a real Ceph RADOS Gateway. Starts the
# one-node cluster (scripts/ceph-s3.sh) unless one is already up, runs
# test/s3 with real ZFS through zfs-fuse, and stops the cluster again if it
# started it here (a developer's running cluster is left as it was).
set -euo pipefail
cd "$(dirname "$0")/.."
D=${ZFERRY_CEPH_DIR:-/var/tmp/zferry-ceph}
started=0
if ! { [ -f "$D/env" ] && bash scripts/ceph-s3.sh env >/dev/null 2>&1 && curl -fsS -o /dev/null --max-time 2 "$(sed -n 's/^AWS_ENDPOINT_URL=//p' "$D/env")/"; }; then
  bash scripts/ceph-s3.sh start >/dev/null
  started=1
fi
rc=0
node test/run.mjs s3 || rc=$?
[ "$started" = 1 ] && bash scripts/ceph-s3.sh stop
exit "$rc"
