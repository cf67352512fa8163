#!/usr/bin/env bash
# Installs what zferry's demo and tests need on a Debian machine, then builds.
# Idempotent and quick when everything is there; `npm test`, `npm run demo`
# and .ci/run all start with it, so a fresh machine needs no other step.
#   scripts/setup.sh          zfs-fuse, mbuffer, zstd, minisign, age, strace, tmux, par2,
#                             systemd (systemd-analyze checks contrib's units), and the
#                             compiler zstd-napi builds with when npm has no prebuilt binary
#                             for this machine (build-essential, python3); npm ci; build
#   scripts/setup.sh --lab    also what the OpenZFS QEMU lane needs
#   scripts/setup.sh --s3     also the one-node Ceph cluster of the S3 lane
#                             (ceph-mon, ceph-mgr, ceph-osd, radosgw; scripts/ceph-s3.sh), s3cmd, curl, bc
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(zfs-fuse mbuffer zstd minisign age strace par2 tmux build-essential python3 systemd)
if [ "${1:-}" = "--lab" ]; then
  packages+=(qemu-system-x86 debootstrap cpio e2fsprogs)
fi
if [ "${1:-}" = "--s3" ]; then
  packages+=(ceph-mon ceph-mgr ceph-osd radosgw ceph-common s3cmd curl bc)
fi

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "setup: need root to install: ${missing[*]} (run as root, or apt-get install them)" >&2
    exit 1
  fi
  echo "setup: installing ${missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
fi

# node_modules is current when it was installed from this very lockfile.
# A link (a git worktree sharing another checkout's) is left alone: npm ci
# would empty the folder it points to, under every checkout that shares it.
if [ -L node_modules ]; then
  echo "setup: node_modules is a link to $(readlink node_modules): not reinstalling it" >&2
elif [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  echo "setup: npm ci" >&2
  npm ci --no-audit --no-fund >&2
fi
