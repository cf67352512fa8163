#!/usr/bin/env bash
# `npm run test:openzfs` (after `npm run build` on the host): build or reuse
# the lab image, boot it once and run the OpenZFS lane of the test runner in
# the project folder inside the guest. Exits with the runner's exit code.
# ZFERRY_LAB_ZFS=2.1 (`npm run test:openzfs21`) runs the same lane on the
# OpenZFS 2.1 image (Debian 12's own zfs-dkms) instead of 2.3.
# Scratch disks for the tests: /dev/disk/by-id/virtio-zf1 … virtio-zf4, 2 GiB
# each (sparse; override with ZFERRY_LAB_DISKS="NAME:SIZE ...").
# Extra arguments are passed to test/run.mjs.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

[[ -d $LAB_REPO/dist ]] || lab_die "no dist/ in $LAB_REPO: run \`npm run build\` first"
"$LAB_DIR/build-image.sh" >&2

# The whole lane runs in one boot; under TCG on a quiet 2-core host the 2.3
# lane took 18 min (2026-12-02), on a loaded one over 30.
export ZFERRY_LAB_TIMEOUT=${ZFERRY_LAB_TIMEOUT:-60m}

disk_args=()
for d in ${ZFERRY_LAB_DISKS:-zf1:2G zf2:2G zf3:2G zf4:2G}; do disk_args+=(--disk "$d"); done
# On 2.1 the lane runs where versions differ (test/run.mjs says which files).
lane=openzfs
[[ $LAB_ZFS == 2.1 ]] && lane=openzfs21
exec "$LAB_DIR/run-in-guest.sh" "${disk_args[@]}" -- node test/run.mjs "$lane" "$@"
