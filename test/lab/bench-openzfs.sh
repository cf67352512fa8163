#!/usr/bin/env bash
# `npm run bench:openzfs` (after `npm run build` on the host): the end-to-end
# bench section (bench/e2e.ts: the CLI against the shell a user would type) in
# the QEMU guest on OpenZFS, where `zfs send` and `zfs recv` run in the kernel
# rather than in zfs-fuse's daemon. ZFERRY_LAB_ZFS=2.1 runs it on 2.1.
#
# Everything in the guest is emulated (TCG, 2 vCPUs, no SHA or AVX
# instructions), so the sizes are scaled down by default: a 128 MiB big
# dataset of the same mix, 30 small datasets and a 64 MiB renamed one
# (ZFERRY_BENCH_E2E_MIB, _MANY, _RENAME_MIB, _RUNS and _ONLY override them;
# at these sizes a run takes about half an hour on 2 cores). The pools live on two scratch disks; the bundles in the guest's /tmp.
# Compare ratios, not seconds, with the host's table: both sides of each pair
# run under the same emulation.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

[[ -d $LAB_REPO/dist/bench ]] || lab_die "no dist/bench in $LAB_REPO: run \`npm run build\` first"
"$LAB_DIR/build-image.sh" >&2

export ZFERRY_LAB_TIMEOUT=${ZFERRY_LAB_TIMEOUT:-120m}
export ZFERRY_BENCH_E2E_MIB=${ZFERRY_BENCH_E2E_MIB:-128}
export ZFERRY_BENCH_E2E_MANY=${ZFERRY_BENCH_E2E_MANY:-30}
export ZFERRY_BENCH_E2E_RENAME_MIB=${ZFERRY_BENCH_E2E_RENAME_MIB:-64}
export ZFERRY_BENCH_E2E_DISKS="/dev/disk/by-id/virtio-zbsrc /dev/disk/by-id/virtio-zbtgt"
exec "$LAB_DIR/run-in-guest.sh" --disk zbsrc:8G --disk zbtgt:8G -- node dist/bench/bench.js --e2e
