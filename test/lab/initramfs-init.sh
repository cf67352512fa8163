#!/bin/busybox sh
# /init of the lab's tiny initramfs (busybox-static + virtio/ext4/9p modules).
# Finds the root disk by its serial, mounts the per-run control folder (9p tag
# "lab") inside it and hands over to /lab/guest-init.sh as PID 1.
/bin/busybox --install -s /bin
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev

say() { echo "[lab-initramfs] $*" > /dev/console; }
halt_now() { sync; echo o > /proc/sysrq-trigger; sleep 5; }

# KVM probe boot: reaching this line is all the host wants to know.
case " $(cat /proc/cmdline) " in
  *" lab.probe=1 "*) say "LAB-PROBE-OK"; halt_now ;;
esac

# Dependency order was fixed at build time (modprobe --show-depends).
while read -r m; do insmod "/lib/modules/$m" 2>/dev/null; done < /modules.order

root=""
i=0
while [ -z "$root" ] && [ $i -lt 100 ]; do
  for s in /sys/block/vd*/serial; do
    [ -f "$s" ] && [ "$(cat "$s")" = "lab-root" ] && root=/dev/$(basename "$(dirname "$s")")
  done
  [ -z "$root" ] && { i=$((i + 1)); sleep 0.1; }
done
[ -n "$root" ] || { say "no disk with serial lab-root"; halt_now; }

mkdir -p /newroot
mount -t ext4 "$root" /newroot || { say "cannot mount $root"; halt_now; }
mkdir -p /newroot/lab
mount -t 9p -o trans=virtio,version=9p2000.L,msize=512000 lab /newroot/lab || { say "cannot mount 9p tag lab"; halt_now; }
mount --move /dev /newroot/dev
mount --move /sys /newroot/sys
mount --move /proc /newroot/proc
exec switch_root /newroot /bin/sh /lab/guest-init.sh
