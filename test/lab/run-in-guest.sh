#!/usr/bin/env bash
# Boots the lab image once and runs COMMAND inside it as root, in the project
# folder (shared with 9p at the same absolute path as on the host), with
# ZFERRY_LANE=openzfs, the zfs module loaded and udev running.
#
#   run-in-guest.sh [--disk NAME:SIZE]... [--] COMMAND [ARG]...
#
# COMMAND runs as an argument vector (use `bash -c '...'` for shell syntax).
# Each --disk is a fresh sparse file seen in the guest as
# /dev/disk/by-id/virtio-NAME (NAME: up to 20 characters of [A-Za-z0-9_.-]);
# it is deleted afterwards. The root disk is snapshot=on: every run starts
# from the pristine image. Output (stdout+stderr merged, in order) streams to
# this script's stdout; the exit code is COMMAND's.
# Exit codes of the lab itself: 124 timeout, 125 the guest never reported one.
#
# Environment: ZFERRY_LAB_TIMEOUT (default 40m; `timeout` syntax),
# ZFERRY_LAB_ACCEL (kvm|tcg: skip the probe), ZFERRY_LAB_CACHE,
# ZFERRY_LAB_VERBOSE=1 (stream the guest console too),
# ZFERRY_LAB_QUIET=1 (no [lab] progress lines).
# Host variables named ZFERRY_* (except ZFERRY_LAB_*) and CI are passed in.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

say() { [[ ${ZFERRY_LAB_QUIET:-} == 1 ]] || lab_log "$@"; }

disks=()
while (( $# )); do
  case $1 in
    --disk) [[ $# -ge 2 ]] || lab_die "--disk needs NAME:SIZE"; disks+=("$2"); shift 2 ;;
    --disk=*) disks+=("${1#--disk=}"); shift ;;
    --) shift; break ;;
    -h|--help) sed -n '2,22p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    -*) lab_die "unknown option: $1" ;;
    *) break ;;
  esac
done
(( $# )) || lab_die "usage: run-in-guest.sh [--disk NAME:SIZE]... -- COMMAND..."
command -v qemu-system-x86_64 >/dev/null || lab_die "qemu-system-x86_64 missing (apt-get install qemu-system-x86)"

t_start=$(date +%s.%N)

img=$(lab_image_dir)
if ! lab_image_complete "$img"; then
  say "no image for the current recipe yet: building it (≈10–11 min)"
  "$LAB_DIR/build-image.sh" >&2
fi
lab_image_complete "$img" || lab_die "image $img is incomplete"

run=$(mktemp -d "${TMPDIR:-/tmp}/zferry-lab.XXXXXX")
qpid=""
cleanup() {
  if [[ -n $qpid ]] && kill -0 "$qpid" 2>/dev/null; then kill "$qpid" 2>/dev/null || true; fi
  rm -rf "$run"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Kernel command line shared by probe and real boots.
append="console=ttyS0 quiet loglevel=3 panic=-1 mitigations=off"

qemu_base() { # ACCEL CONSOLE_FILE
  local accel=$1
  if [[ $accel == kvm ]]; then
    q=(qemu-system-x86_64 -accel kvm -cpu host)
  else
    # Westmere: 2–4x faster for ZFS under TCG than -cpu max (NOTES.md).
    q=(qemu-system-x86_64 -accel tcg,thread=multi -cpu Westmere)
  fi
  q+=(-smp 2 -m 3072 -nodefaults -no-reboot -display none -nic none
      -serial "file:$2"
      -kernel "$img/vmlinuz" -initrd "$img/initrd.img")
}

# KVM here may be a paravirtual variant that cannot boot stock kernels: try a
# tiny boot once per host kernel + qemu version and remember the verdict.
choose_accel() {
  if [[ -n ${ZFERRY_LAB_ACCEL:-} ]]; then echo "$ZFERRY_LAB_ACCEL"; return; fi
  local key verdict_file="$LAB_CACHE/accel" verdict=tcg
  key="$(uname -r) $(qemu-system-x86_64 --version | head -n 1)"
  if [[ -f $verdict_file ]] && [[ $(sed -n 2p "$verdict_file") == "$key" ]]; then
    sed -n 1p "$verdict_file"; return
  fi
  if [[ -r /dev/kvm && -w /dev/kvm ]]; then
    say "probing KVM (tiny boot, up to 20 s)"
    qemu_base kvm "$run/probe.log"
    timeout -k 2 20 "${q[@]}" -append "$append lab.probe=1" >"$run/probe.qemu.log" 2>&1 || true
    if grep -q LAB-PROBE-OK "$run/probe.log" 2>/dev/null; then verdict=kvm; fi
    say "KVM probe: $([[ $verdict == kvm ]] && echo usable || echo "not usable ($(head -c 200 "$run/probe.qemu.log" | tr '\n' ' ')), using TCG")"
  fi
  mkdir -p "$LAB_CACHE"
  printf '%s\n%s\n' "$verdict" "$key" > "$verdict_file"
  echo "$verdict"
}
accel=$(choose_accel)

# A worktree whose node_modules is a symlink out of the checkout (to the main
# checkout's) needs that folder in the guest too, at the same path, read-only.
lab_modules=""
if [[ -L $LAB_REPO/node_modules ]]; then
  lab_modules=$(readlink -f "$LAB_REPO/node_modules")
  [[ $lab_modules == "$LAB_REPO"/* || ! -d $lab_modules ]] && lab_modules=""
fi

mkdir -p "$run/lab" "$run/disks"
cp "$LAB_DIR/guest-init.sh" "$run/lab/guest-init.sh"
printf 'LAB_REPO=%q\nLAB_MODULES=%q\n' "$LAB_REPO" "$lab_modules" > "$run/lab/conf"
{
  echo "cd $(printf '%q' "$LAB_REPO") || exit 125"
  echo "export HOME=/root LANG=C.UTF-8 TERM=dumb ZFERRY_LANE=openzfs"
  while IFS='=' read -r name _; do
    [[ $name == ZFERRY_LAB_* || $name == ZFERRY_LANE ]] && continue
    printf 'export %s=%q\n' "$name" "${!name}"
  done < <(env | grep -E '^(ZFERRY_[A-Za-z0-9_]*|CI)=' || true)
  printf 'exec'; printf ' %q' "$@"; echo
} > "$run/lab/cmd"

qemu_base "$accel" "$run/console.log"
q+=(-append "$append"
    -drive "file=$img/rootfs.img,format=raw,if=none,id=root,snapshot=on,cache=unsafe"
    -device virtio-blk-pci,drive=root,serial=lab-root
    -device virtio-rng-pci
    -device virtio-serial-pci
    -chardev "file,id=out,path=$run/out.log"
    -device virtserialport,chardev=out,name=lab.out
    -virtfs "local,path=$run/lab,mount_tag=lab,security_model=none,multidevs=remap"
    -virtfs "local,path=$LAB_REPO,mount_tag=repo,security_model=none,multidevs=remap")
[[ -n $lab_modules ]] && q+=(-virtfs "local,path=$lab_modules,mount_tag=modules,security_model=none,multidevs=remap,readonly=on")
i=0
for d in "${disks[@]}"; do
  name=${d%%:*} size=${d#*:}
  [[ $d == *:* && $name =~ ^[A-Za-z0-9_.-]{1,20}$ && $name != lab-root && -n $size ]] \
    || lab_die "bad --disk '$d' (NAME:SIZE, NAME up to 20 of [A-Za-z0-9_.-], e.g. d1:1G)"
  truncate -s "$size" "$run/disks/$name.img" || lab_die "bad size in --disk '$d'"
  q+=(-drive "file=$run/disks/$name.img,format=raw,if=none,id=disk$i,cache=unsafe,aio=threads"
      -device "virtio-blk-pci,drive=disk$i,serial=$name")
  i=$((i + 1))
done

limit=${ZFERRY_LAB_TIMEOUT:-40m}
say "booting $(basename "$img") ($accel, ${#disks[@]} scratch disk(s), timeout $limit)"
: > "$run/out.log"
: > "$run/lab/out.log"
: > "$run/console.log"
timeout -k 10 "$limit" "${q[@]}" </dev/null >"$run/qemu.log" 2>&1 &
qpid=$!
if [[ ${ZFERRY_LAB_VERBOSE:-} == 1 ]]; then
  tail -n +1 -f --pid="$qpid" "$run/console.log" >&2 &
fi
# tail exits (after a last read) once qemu is gone. The guest writes to the
# virtio-serial port, or to lab/out.log (9p) when the port never got its name.
tail -q -n +1 -f --pid="$qpid" "$run/out.log" "$run/lab/out.log" || true
qrc=0
wait "$qpid" || qrc=$?
qpid=""
t_total=$(awk -v a="$t_start" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')

if [[ $qrc == 124 || $qrc == 137 ]]; then
  lab_log "TIMEOUT: the guest was still running after $limit (ZFERRY_LAB_TIMEOUT) and was killed. Last console lines:"
  tail -n 20 "$run/console.log" | sed 's/^/[lab]   /' >&2
  exit 124
fi
if [[ ! -s $run/lab/rc ]]; then
  lab_log "the guest stopped without reporting an exit code (qemu exit $qrc). qemu said:"
  tail -n 10 "$run/qemu.log" | sed 's/^/[lab]   /' >&2
  lab_log "last console lines:"
  tail -n 30 "$run/console.log" | sed 's/^/[lab]   /' >&2
  exit 125
fi
rc=$(cat "$run/lab/rc")
if [[ -f $run/lab/times ]]; then
  read -r _ boot < <(grep boot_to_command "$run/lab/times")
  read -r _ cmd_s < <(grep '^command' "$run/lab/times")
  say "exit $rc; command started ${boot}s after power-on (guest clock), ran ${cmd_s}s; total ${t_total}s ($accel)"
fi
exit "$rc"
