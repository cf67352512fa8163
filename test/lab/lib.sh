# Shared by the lab scripts (sourced, not run). Bash only.
# Where things live and how the image cache is keyed.

LAB_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# The checkout the scripts belong to: shared into the guest at the same path.
LAB_REPO=$(cd "$LAB_DIR/../.." && pwd)
LAB_CACHE=${ZFERRY_LAB_CACHE:-$LAB_REPO/.lab-cache}
LAB_NODE=${ZFERRY_LAB_NODE:-/usr/bin/node}

lab_log() { printf '[lab] %s\n' "$*" >&2; }
lab_die() { printf '[lab] error: %s\n' "$*" >&2; exit 2; }

# The image is a pure function of the recipe: the build script, the initramfs
# init and the node binary copied in. guest-init.sh is NOT an input: it is
# handed to the guest on every boot, so editing it never forces a rebuild.
lab_image_key() {
  [[ -x $LAB_NODE ]] || lab_die "no node binary at $LAB_NODE (set ZFERRY_LAB_NODE)"
  {
    sha256sum "$LAB_DIR/build-image.sh" "$LAB_DIR/initramfs-init.sh" "$LAB_DIR/lib.sh" | cut -d' ' -f1
    sha256sum "$LAB_NODE" | cut -d' ' -f1
  } | sha256sum | cut -c1-16
}

lab_image_dir() { printf '%s/image-%s' "$LAB_CACHE" "$(lab_image_key)"; }

# An image is usable only once the build wrote its last file.
lab_image_complete() { [[ -f $1/versions.txt && -f $1/rootfs.img && -f $1/vmlinuz && -f $1/initrd.img ]]; }
