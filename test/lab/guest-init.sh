#!/bin/sh
# PID 1 inside the lab guest (dash), started by the initramfs via switch_root.
# Not part of the image: run-in-guest.sh copies it into the per-run control
# folder (/lab, 9p), so it can change without rebuilding anything.
# /lab/conf (written by the host) sets LAB_REPO and LAB_MODULES (node_modules'
# real folder when it is a symlink out of the checkout); /lab/cmd is the bash script
# to run. Results go back as /lab/rc and /lab/times; output via virtio-serial.
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
up() { cut -d' ' -f1 /proc/uptime; }
say() { echo "[lab-guest +$(up)s] $*" > /dev/console; }
finish() {
  sync
  echo o > /proc/sysrq-trigger
  while :; do sleep 60; done   # PID 1 must never exit
}

. /lab/conf

mount -t tmpfs -o mode=755 tmpfs /run
mkdir -p /dev/pts /dev/shm
mount -t devpts -o gid=5,mode=620 devpts /dev/pts
mount -t tmpfs tmpfs /dev/shm
hostname lab
busybox ip link set lo up 2>/dev/null

modprobe -q virtio_rng
modprobe virtio_console
# The port's name comes from the host over the control queue after the
# driver has bound: on a loaded host it was seen arriving after the first
# look, and the run's output then went to the console instead, which the host
# does not stream (a CI run showed nothing of its lane until it was killed). Look for
# 10 s; without it, write to /lab/out.log (9p), which the host follows too.
port=""
tries=0
while [ -z "$port" ] && [ $tries -lt 100 ]; do
  for n in /sys/class/virtio-ports/*/name; do
    [ "$(cat "$n" 2>/dev/null)" = lab.out ] && port=/dev/$(basename "$(dirname "$n")")
  done
  [ -n "$port" ] || { sleep 0.1; tries=$((tries + 1)); }
done
if [ -z "$port" ]; then say "no virtio-serial port lab.out after 10 s: output to /lab/out.log"; port=/lab/out.log; fi

mkdir -p "$LAB_REPO"
if ! mount -t 9p -o trans=virtio,version=9p2000.L,msize=512000 repo "$LAB_REPO"; then
  say "cannot mount the project folder at $LAB_REPO"
  echo 125 > /lab/rc
  finish
fi

if [ -n "${LAB_MODULES:-}" ]; then
  mkdir -p "$LAB_MODULES"
  mount -t 9p -o ro,trans=virtio,version=9p2000.L,msize=512000 modules "$LAB_MODULES" \
    || say "cannot mount node_modules at $LAB_MODULES"
fi

say "modprobe zfs"
if ! modprobe zfs; then
  say "modprobe zfs failed"
  echo "[lab] modprobe zfs failed in the guest" > "$port"
  echo 125 > /lab/rc
  finish
fi
say "udev"
/lib/systemd/systemd-udevd --daemon >/dev/null 2>&1
# Block devices only (/dev/disk/by-id, /dev/zvol): replaying every device's
# "add" costs ≈7 s under TCG. Later events (new zvols) reach the daemon anyway.
udevadm trigger --action=add --subsystem-match=block >/dev/null 2>&1
udevadm settle --timeout=30

start=$(up)
say "command starts"
bash /lab/cmd > "$port" 2>&1 < /dev/null
rc=$?
say "command exited $rc"
printf 'boot_to_command %s\ncommand %s\n' "$start" "$(echo "$start $(up)" | awk '{ printf "%.2f", $2 - $1 }')" > /lab/times
echo "$rc" > /lab/rc
finish
