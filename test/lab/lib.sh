# Shared by the lab scripts (sourced, not run). Bash only.
# Where things live and how the image cache is keyed.

LAB_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# The checkout the scripts belong to: shared into the guest at the same path.
LAB_REPO=$(cd "$LAB_DIR/../.." && pwd)
LAB_CACHE=${ZFERRY_LAB_CACHE:-$LAB_REPO/.lab-cache}
LAB_NODE=${ZFERRY_LAB_NODE:-/usr/bin/node}

lab_log() { printf '[lab] %s\n' "$*" >&2; }
lab_die() { printf '[lab] error: %s\n' "$*" >&2; exit 2; }

# Which OpenZFS the image carries (ZFERRY_LAB_ZFS): 2.3 from bookworm-backports
# (the default) or 2.1, Debian 12's own zfs-dkms. Each flavour has its own
# image, cached side by side.
LAB_ZFS=${ZFERRY_LAB_ZFS:-2.3}
case $LAB_ZFS in
  2.3) LAB_ZFS_RELEASE=bookworm-backports ;;
  2.1) LAB_ZFS_RELEASE=bookworm ;;
  *) lab_die "ZFERRY_LAB_ZFS=$LAB_ZFS: known flavours are 2.3 (bookworm-backports) and 2.1 (bookworm)" ;;
esac
# Scripts this one starts (the smoke boot, a build on demand) use the same image.
export ZFERRY_LAB_ZFS=$LAB_ZFS

# The image is a pure function of the recipe: the flavour, the build script,
# the initramfs init and the node binary copied in. guest-init.sh is NOT an
# input: it is handed to the guest on every boot, so editing it never forces a
# rebuild.
lab_image_key() {
  [[ -x $LAB_NODE ]] || lab_die "no node binary at $LAB_NODE (set ZFERRY_LAB_NODE)"
  {
    echo "zfs $LAB_ZFS"
    sha256sum "$LAB_DIR/build-image.sh" "$LAB_DIR/initramfs-init.sh" "$LAB_DIR/lib.sh" | cut -d' ' -f1
    sha256sum "$LAB_NODE" | cut -d' ' -f1
  } | sha256sum | cut -c1-16
}

# image-zfs2.3-KEY, image-zfs2.1-KEY: the flavour in the name lets a build
# replace only older images of its own flavour.
lab_image_dir() { printf '%s/image-zfs%s-%s' "$LAB_CACHE" "$LAB_ZFS" "$(lab_image_key)"; }

# An image is usable only once the build wrote its last file.
lab_image_complete() { [[ -f $1/versions.txt && -f $1/rootfs.img && -f $1/vmlinuz && -f $1/initrd.img ]]; }
