#!/usr/bin/env bash
# Build a tiny real Linux guest: Debian's cloud kernel + a busybox initramfs
# with the virtio modules and an /init that makes a little disk/net/CPU
# activity every second and powers off on the ACPI power button.
# Outputs (cached; a rerun with the same script does nothing):
#   .testbed/guest/vmlinuz  .testbed/guest/initrd.img  .testbed/guest/stamp
# The .debs are fetched with `apt-get download` (never installed on the host).
set -euo pipefail
. "$(dirname "$0")/lib.sh"

OUT=$TB/guest
DEBS=$TB/cache/debs
# The stamp ties the outputs to this script's content: editing the init or the
# module list below rebuilds the initramfs (from the cached .debs).
STAMP=$(sha256sum "$0" | cut -c1-16)

if [[ -s $OUT/vmlinuz && -s $OUT/initrd.img && "$(cat "$OUT/stamp" 2>/dev/null)" == "$STAMP" ]]; then
  log "cached: $OUT"
  exit 0
fi
t0=$(now_ms)
mkdir -p "$OUT" "$DEBS"

# --- 1. fetch the .debs (kept in .testbed/cache so rebuilds are offline) ----
# Current cloud kernel ABI package, e.g. linux-image-6.1.0-56-cloud-amd64.
kernel_pkg() {
  apt-cache depends linux-image-cloud-amd64 2>/dev/null |
    awk '/Depends: linux-image-[0-9].*-cloud-amd64/ {print $2; exit}'
}
fetch() { # fetch PKG: download PKG's .deb into $DEBS unless one is there
  local pkg=$1
  compgen -G "$DEBS/${pkg}_*.deb" >/dev/null && return 0
  # apt-get download writes into the cwd; as root into a dir _apt cannot
  # read it warns ("Download is performed unsandboxed") - harmless.
  (cd "$DEBS" && apt-get download -qq "$pkg" 2>&1 | grep -v '^W: Download is performed unsandboxed' >&2 || true)
  compgen -G "$DEBS/${pkg}_*.deb" >/dev/null || die "apt-get download $pkg failed"
}

# reuse a cached kernel .deb if there is one (no apt query at all then)
KPKG=$(find "$DEBS" -maxdepth 1 -name 'linux-image-*-cloud-amd64_*.deb' -printf '%f\n' | head -1 | cut -d_ -f1)
if [[ -z $KPKG ]]; then
  KPKG=$(kernel_pkg)
  if [[ -z $KPKG ]]; then
    # fresh machine / container: package lists not downloaded yet
    log "apt-get update (no package lists)"
    DEBIAN_FRONTEND=noninteractive apt-get update -qq
    KPKG=$(kernel_pkg)
  fi
  [[ -n $KPKG ]] || die "cannot resolve linux-image-cloud-amd64's kernel package"
fi
fetch "$KPKG"
fetch busybox-static

# --- 2. unpack ---------------------------------------------------------------
WORK=$TB/cache/build
rm -rf "$WORK"
mkdir -p "$WORK/k" "$WORK/bb"
dpkg-deb -x "$(compgen -G "$DEBS/${KPKG}_*.deb" | head -1)" "$WORK/k"
dpkg-deb -x "$(compgen -G "$DEBS/busybox-static_*.deb" | head -1)" "$WORK/bb"
KVER=${KPKG#linux-image-}
MODDIR=$WORK/k/lib/modules/$KVER
[[ -d $MODDIR ]] || die "no $MODDIR in $KPKG"

# --- 3. initramfs tree -----------------------------------------------------------
R=$WORK/root
mkdir -p "$R"/{bin,sbin,proc,sys,dev,tmp,etc,lib/modules}
cp "$WORK/bb/bin/busybox" "$R/bin/busybox"
# the kernel opens /dev/console before /init runs: make sure it exists
mknod -m 600 "$R/dev/console" c 5 1

# Load order matters (no modprobe/depmod in the guest). Built-in or absent
# modules are skipped; compressed ones are unpacked here so busybox insmod
# does not need xz/zstd support.
MODULES=(virtio_ring virtio virtio_pci_modern_dev virtio_pci_legacy_dev virtio_pci
         virtio_balloon failover net_failover virtio_net virtio_blk evdev button)
: > "$R/etc/modules"
for m in "${MODULES[@]}"; do
  f=$(find "$MODDIR" -name "$m.ko" -o -name "$m.ko.xz" -o -name "$m.ko.zst" -o -name "$m.ko.gz" | head -1)
  if [[ -z $f ]]; then
    if grep -q "/$m.ko\$" "$MODDIR/modules.builtin" 2>/dev/null; then
      log "module $m: built-in"
    else
      log "module $m: not found, skipped"
    fi
    continue
  fi
  case $f in
    *.ko)     cp "$f" "$R/lib/modules/$m.ko" ;;
    *.ko.xz)  xz -dc "$f" > "$R/lib/modules/$m.ko" ;;
    *.ko.zst) zstd -qdc "$f" > "$R/lib/modules/$m.ko" ;;
    *.ko.gz)  gzip -dc "$f" > "$R/lib/modules/$m.ko" ;;
  esac
  echo "$m" >> "$R/etc/modules"
done

cat > "$R/init" <<'INIT'
#!/bin/busybox sh
# vfleet test guest init (PID 1). Kernel args: vfleet.name=N vfleet.ip=A/P
/bin/busybox --install -s /bin
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
exec </dev/console >/dev/console 2>&1

NAME=guest IP=169.254.77.2/24 PEER=169.254.77.254
for a in $(cat /proc/cmdline); do
  case $a in
    vfleet.name=*) NAME=${a#*=} ;;
    vfleet.ip=*)   IP=${a#*=} ;;
    vfleet.peer=*) PEER=${a#*=} ;;
  esac
done
hostname "$NAME"

for m in $(cat /etc/modules); do
  insmod /lib/modules/$m.ko 2>/dev/null || echo "vfleet: insmod $m failed"
done

ip link set lo up
ip link set eth0 up && ip addr add "$IP" dev eth0 || echo "vfleet: no eth0"

# ACPI power button (virsh shutdown) -> clean, immediate power off.
# The `button` module registers input devices named "Power Button"; any event
# read from one is a press (a press is several 24-byte input_events).
npb=0
for d in /sys/class/input/event*; do
  if grep -q "Power Button" "$d/device/name" 2>/dev/null; then
    ( dd if=/dev/input/${d##*/} of=/dev/null bs=24 count=1 2>/dev/null
      echo "vfleet: power button -> poweroff"; sync; poweroff -f ) &
    npb=$((npb+1))
  fi
done
[ $npb -gt 0 ] || echo "vfleet: WARNING no power button input device"

echo "VFLEET-GUEST-READY name=$NAME ip=$IP"

# A little activity every second so every stats group moves:
#  - net: arping without a count sends one ARP request per second for a
#    nonexistent neighbour out of eth0 (tap tx); it never leaves the host: the
#    tap is not bridged and has no address
#  - block: O_DIRECT reads and writes on /dev/vda (rd/wr/flush counters)
#  - cpu: a short shell loop
arping -q -I eth0 "$PEER" 2>/dev/null &
i=0
while :; do
  i=$(( (i + 1) % 16 ))
  dd if=/dev/vda of=/dev/null bs=64k count=4 skip=$i iflag=direct 2>/dev/null
  dd if=/dev/zero of=/dev/vda bs=64k count=2 seek=$((16 + i)) oflag=direct conv=notrunc,fsync 2>/dev/null
  n=0; while [ $n -lt 300 ]; do n=$((n + 1)); done
  sleep 1
done
INIT
chmod 755 "$R/init"

# --- 4. pack -----------------------------------------------------------------------
(cd "$R" && find . | LC_ALL=C sort | cpio -o -H newc --quiet -R 0:0 | gzip -6) > "$OUT/initrd.img.tmp"
cp "$WORK/k/boot/vmlinuz-$KVER" "$OUT/vmlinuz.tmp"
mv "$OUT/initrd.img.tmp" "$OUT/initrd.img"
mv "$OUT/vmlinuz.tmp" "$OUT/vmlinuz"
echo "$KVER" > "$OUT/kernel-version"
echo "$STAMP" > "$OUT/stamp"
rm -rf "$WORK"
log "built $OUT (kernel $KVER, $(du -h "$OUT/initrd.img" | cut -f1) initramfs) in $(( $(now_ms) - t0 )) ms"
