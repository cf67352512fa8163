#!/usr/bin/env bash
# Builds (or reuses) the lab's guest image from Debian packages only:
# bookworm minbase + kernel + OpenZFS (DKMS), the host's node binary, and a
# tiny busybox initramfs. ZFERRY_LAB_ZFS picks the OpenZFS: 2.3 (default,
# bookworm-backports) or 2.1 (bookworm's own zfs-dkms, as Debian 12 ships it).
# Output: $ZFERRY_LAB_CACHE/image-zfsFLAVOUR-KEY/{rootfs.img,vmlinuz,initrd.img,versions.txt}
# A new build replaces older images of its own flavour only.
# Needs root and, on the host: debootstrap e2fsprogs cpio zstd (see README.md).
#   build-image.sh           build unless an image for the current recipe exists
#   build-image.sh --force   rebuild even if it exists
#   build-image.sh --print-dir   print the image folder (build first if needed)
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

force=0 print_dir=0
for a in "$@"; do
  case $a in
    --force) force=1 ;;
    --print-dir) print_dir=1 ;;
    *) lab_die "unknown argument: $a" ;;
  esac
done


SUITE=bookworm
MIRROR=${ZFERRY_LAB_MIRROR:-http://deb.debian.org/debian}
SECURITY_MIRROR=${ZFERRY_LAB_SECURITY_MIRROR:-http://deb.debian.org/debian-security}
IMAGE_SIZE=4G

mkdir -p "$LAB_CACHE"
# One build at a time per flavour; a second caller waits and then reuses.
# Flavours build side by side (CI builds 2.1 while the 2.3 lane runs, whose
# reuse must not wait for that build).
exec 9>"$LAB_CACHE/.build-zfs$LAB_ZFS.lock"
flock 9

out=$(lab_image_dir)
if (( ! force )) && lab_image_complete "$out"; then
  lab_log "reusing image $(basename "$out") (OpenZFS $LAB_ZFS)"
  sed 's/^/[lab]   /' "$out/versions.txt" >&2
  (( print_dir )) && printf '%s\n' "$out"
  exit 0
fi

[[ $(id -u) == 0 ]] || lab_die "build-image.sh needs root (debootstrap, chroot)"
for t in debootstrap mke2fs cpio zstd chroot; do
  command -v "$t" >/dev/null || lab_die "host tool missing: $t (apt-get install debootstrap e2fsprogs cpio zstd)"
done

t0=$SECONDS
work="$LAB_CACHE/build.$$"
rootfs="$work/rootfs"

# Never rm -rf a tree with /proc or /sys still mounted inside it.
unmount_chroot() {
  local m
  for m in "$rootfs/dev/pts" "$rootfs/sys" "$rootfs/proc"; do
    mountpoint -q "$m" 2>/dev/null && umount -l "$m"
  done
  return 0
}
cleanup() {
  unmount_chroot
  if [[ -d $work ]]; then
    if findmnt -rn -o TARGET | grep -qF "$work/"; then
      lab_log "leaving $work in place: something is still mounted under it"
    else
      rm -rf "$work"
    fi
  fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

step() { lab_log "[$((SECONDS - t0))s] $*"; }
in_chroot() {
  chroot "$rootfs" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root \
    LANG=C.UTF-8 DEBIAN_FRONTEND=noninteractive "$@"
}

rm -rf "$work"
mkdir -p "$work"

step "debootstrap $SUITE (minbase, main+contrib)"
debootstrap --variant=minbase --components=main,contrib "$SUITE" "$rootfs" "$MIRROR" \
  > "$work/debootstrap.log" 2>&1 || { tail -n 30 "$work/debootstrap.log" >&2; lab_die "debootstrap failed"; }

cat > "$rootfs/etc/apt/sources.list" <<SRC
deb $MIRROR $SUITE main contrib
deb $MIRROR $SUITE-updates main contrib
deb $SECURITY_MIRROR $SUITE-security main contrib
deb $MIRROR $SUITE-backports main contrib
SRC
# No service may start inside the chroot.
printf '#!/bin/sh\nexit 101\n' > "$rootfs/usr/sbin/policy-rc.d"
chmod 755 "$rootfs/usr/sbin/policy-rc.d"
# Docs, man pages and translations are dead weight in a test guest.
cat > "$rootfs/etc/dpkg/dpkg.cfg.d/01-lab-nodoc" <<'CFG'
path-exclude /usr/share/doc/*
path-exclude /usr/share/man/*
path-exclude /usr/share/info/*
path-exclude /usr/share/locale/*
path-include /usr/share/locale/locale.alias
CFG
cat > "$rootfs/etc/apt/apt.conf.d/01-lab" <<'CFG'
APT::Install-Recommends "false";
APT::Install-Suggests "false";
Acquire::Retries "3";
CFG
# Debian's initramfs is never used (we boot our own, see initramfs-init.sh),
# so generating it on every kernel/DKMS install only wastes build time.
in_chroot dpkg-divert --local --rename --add /usr/sbin/update-initramfs >/dev/null
ln -sf /bin/true "$rootfs/usr/sbin/update-initramfs"
echo lab > "$rootfs/etc/hostname"

mount -t proc proc "$rootfs/proc"
mount -t sysfs sys "$rootfs/sys"

step "apt: kernel, headers, udev, dkms, build-essential"
apt_log="$work/apt.log"
in_chroot apt-get update >>"$apt_log" 2>&1 || { tail -n 30 "$apt_log" >&2; lab_die "apt-get update failed"; }
# zstd/age: RESTORE.txt uses stock tools; procps (pgrep) and mbuffer: tests;
# time (GNU time) and strace: the end-to-end bench (npm run bench:openzfs).
in_chroot apt-get install -y linux-image-amd64 linux-headers-amd64 kmod udev dkms build-essential busybox-static \
  zstd age minisign mbuffer procps time strace \
  >>"$apt_log" 2>&1 || { tail -n 30 "$apt_log" >&2; lab_die "apt-get install (base) failed"; }

kver=$(basename "$(ls -d "$rootfs"/lib/modules/*/ | sort -V | tail -n 1)")
[[ -n $kver && -f $rootfs/boot/vmlinuz-$kver ]] || lab_die "no kernel found in the image"

step "apt: zfs-dkms zfsutils-linux from $LAB_ZFS_RELEASE (DKMS build for $kver, the slow part)"
in_chroot apt-get install -y -t "$LAB_ZFS_RELEASE" zfs-dkms zfsutils-linux \
  >>"$apt_log" 2>&1 || { tail -n 30 "$apt_log" >&2; lab_die "apt-get install zfs failed"; }
# The mirror decides what -t gives: an image must carry the flavour it is named after.
zfs_pkg=$(in_chroot dpkg-query -W -f '${Version}' zfsutils-linux)
[[ $zfs_pkg == "$LAB_ZFS".* ]] || lab_die "$LAB_ZFS_RELEASE gave zfsutils-linux $zfs_pkg, not OpenZFS $LAB_ZFS"

find_zfs_ko() { find "$rootfs/lib/modules/$kver" -name 'zfs.ko*' | head -n 1; }
if [[ -z $(find_zfs_ko) ]]; then
  step "zfs.ko missing for $kver: dkms autoinstall"
  in_chroot dkms autoinstall -k "$kver" >>"$apt_log" 2>&1 || { tail -n 30 "$apt_log" >&2; lab_die "dkms autoinstall failed"; }
  in_chroot depmod "$kver"
fi
zfs_ko=$(find_zfs_ko)
[[ -n $zfs_ko ]] || lab_die "no zfs.ko for kernel $kver after dkms"

step "node, cleanup, versions"
install -m 755 "$LAB_NODE" "$rootfs/usr/bin/node"
node_v=$(in_chroot /usr/bin/node -e 'process.stdout.write(process.version)') \
  || lab_die "the copied node does not run inside the image (missing library?)"

zfs_kmod=$(in_chroot modinfo -F version "${zfs_ko#"$rootfs"}")
{
  echo "flavour zfs$LAB_ZFS ($LAB_ZFS_RELEASE)"
  echo "kernel $kver"
  echo "zfs-kmod $zfs_kmod"
  echo "zfsutils-linux $zfs_pkg"
  echo "node $node_v"
} > "$work/versions.txt"

in_chroot apt-get clean
rm -rf "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/cache/apt/*.bin "$rootfs"/var/lib/dkms/zfs/*/build \
  "$rootfs"/var/log/*.log "$rootfs"/var/log/apt/* "$rootfs"/tmp/*
unmount_chroot

step "tiny initramfs"
ird="$work/initramfs"
mkdir -p "$ird"/{bin,dev,proc,sys,newroot,lib/modules}
cp "$rootfs/bin/busybox" "$ird/bin/busybox"
install -m 755 "$LAB_DIR/initramfs-init.sh" "$ird/init"
: > "$ird/modules.order"
# --show-depends lists "insmod PATH" lines in load order, deps first.
for m in virtio_pci virtio_blk ext4 crc32c_generic 9pnet_virtio 9p; do
  in_chroot modprobe -S "$kver" --show-depends "$m" 2>/dev/null | awk '$1 == "insmod" { print $2 }'
done | awk '!seen[$0]++' | while read -r ko; do
  name=$(basename "$ko")
  case $name in
    *.ko.xz) xz -dc "$rootfs$ko" > "$ird/lib/modules/${name%.xz}"; name=${name%.xz} ;;
    *.ko.zst) zstd -qdc "$rootfs$ko" > "$ird/lib/modules/${name%.zst}"; name=${name%.zst} ;;
    *) cp "$rootfs$ko" "$ird/lib/modules/$name" ;;
  esac
  echo "$name" >> "$ird/modules.order"
done
[[ -s $ird/modules.order ]] || lab_die "no modules found for the initramfs"
(cd "$ird" && find . | LC_ALL=C sort | cpio -o -H newc --quiet) | gzip -1 > "$work/initrd.img"
cp "$rootfs/boot/vmlinuz-$kver" "$work/vmlinuz"
echo "initramfs modules: $(tr '\n' ' ' < "$ird/modules.order")" > "$work/initramfs.txt"

step "mke2fs -d rootfs.img ($IMAGE_SIZE, no loop mount)"
mke2fs -q -F -t ext4 -L lab-root -d "$rootfs" "$work/rootfs.img" "$IMAGE_SIZE"

# Publish atomically, drop images of older recipes of this flavour only: the
# other flavour's image stays. Images named image-KEY (no flavour) predate
# flavours and all carried 2.3.
rm -rf "$rootfs" "$ird"
echo "built $(date -u +%Y-%m-%dT%H:%M:%SZ) in $((SECONDS - t0))s" >> "$work/versions.txt"
old_images=("$LAB_CACHE"/image-zfs"$LAB_ZFS"-* "$LAB_CACHE"/failed-image-zfs"$LAB_ZFS"-*)
if [[ $LAB_ZFS == 2.3 ]]; then
  for old in "$LAB_CACHE"/image-* "$LAB_CACHE"/failed-image-*; do
    [[ $(basename "$old") =~ ^(failed-)?image-[0-9a-f]{16}$ ]] && old_images+=("$old")
  done
fi
for old in "${old_images[@]}"; do
  [[ -e $old && $old != "$out" ]] && rm -rf "$old"
done
rm -rf "$out"
mv "$work" "$out"
# Smoke boot: proves the image boots and loads zfs, and records what
# `zfs version` really says (it needs the module, so not in the chroot).
step "smoke boot: zfs version in the guest"
if ! smoke=$(ZFERRY_LAB_QUIET=1 "$LAB_DIR/run-in-guest.sh" -- zfs version 2>"$out/smoke.log"); then
  cat "$out/smoke.log" >&2
  mv "$out" "$LAB_CACHE/failed-$(basename "$out")"
  lab_die "the new image failed its smoke boot (kept in $LAB_CACHE/failed-$(basename "$out"))"
fi
sed -i '$d' "$out/versions.txt"
printf '%s\n' "$smoke" | sed 's/^/zfs version: /' >> "$out/versions.txt"
echo "built $(date -u +%Y-%m-%dT%H:%M:%SZ) in $((SECONDS - t0))s" >> "$out/versions.txt"
lab_log "built $(basename "$out") in $((SECONDS - t0))s:"
sed 's/^/[lab]   /' "$out/versions.txt" >&2
(( print_dir )) && printf '%s\n' "$out"
exit 0
