#!/usr/bin/env bash
# Build the Xen dom0 disk image for testbed/xen-up.sh, from Debian packages only
# (bookworm, the mirror of /etc/apt/sources.list*): debootstrap a minbase tree
# with Xen 4.17, the Debian kernel, xl, libvirtd (xen driver only) and sshd,
# put a tiny PV guest into it, and `mke2fs -d` the tree into a raw image.
# Outputs in .testbed/xen/ (cached: a rerun with the same inputs does nothing):
#   dom0.img                   raw ext4 root filesystem (booted through a copy)
#   xen.elf vmlinuz initrd.img hypervisor (gunzipped multiboot ELF), dom0 kernel + initrd
#   id_ed25519                 client key, authorised for root in dom0
#   ssh_host_ed25519_key(.pub) the dom0's FIXED host key (generated here, installed in the image)
#   image.stamp                hash of this script, testbed/xen/* and the keys
# Inside the image: /etc/xen/tiny.cfg, /etc/xen/tinynet.cfg (PV guests, Debian kernel
# + busybox initramfs in /root/domu/), libvirtd + virtlogd units (enabled).
set -euo pipefail
. "$(dirname "$0")/lib.sh"

X=$TB/xen
ROOTFS=$X/rootfs
DEBCACHE=$TB/cache/xen-debs
SUITE=bookworm
IMG_SIZE=${VFLEET_XEN_IMG_SIZE:-3G}
T0=$(now_ms)
mkdir -p "$X" "$DEBCACHE"
chmod 700 "$X"

# --- host packages (apt may be busy: another engineer / test run) -------------------
HOST_PKGS=(debootstrap e2fsprogs qemu-system-x86 qemu-utils openssh-client cpio gzip)
apt_retry() { # apt_retry ARGS...: apt-get, retried while the dpkg lock is held
  local i
  for i in $(seq 10); do
    DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=60 "$@" && return 0
    log "apt-get $1 failed (attempt $i), retrying in 5 s"
    sleep 5
  done
  die "apt-get $* failed"
}
missing=()
for p in "${HOST_PKGS[@]}"; do
  [[ $(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true) == "install ok installed" ]] || missing+=("$p")
done
if ((${#missing[@]})); then
  log "installing on the host: ${missing[*]}"
  apt_retry update -qq
  apt_retry install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# --- keys: kept across rebuilds (their public halves are part of the stamp) ----------
key() { [[ -s $1 ]] || ssh-keygen -q -t ed25519 -N '' -C "$2" -f "$1"; }
key "$X/id_ed25519" vfleet-xen-client
key "$X/ssh_host_ed25519_key" vfleet-xen-dom0

# --- cache check ---------------------------------------------------------------------------
STAMP=$( { cat "$0"; find "$TESTBED_SRC/xen" -type f 2>/dev/null | LC_ALL=C sort | xargs -r cat;
           cat "$X/id_ed25519.pub" "$X/ssh_host_ed25519_key.pub"; } | sha256sum | cut -c1-16)
if [[ -s $X/dom0.img && -s $X/xen.elf && -s $X/vmlinuz && -s $X/initrd.img &&
      "$(cat "$X/image.stamp" 2>/dev/null)" == "$STAMP" ]]; then
  log "cached: $X/dom0.img (stamp $STAMP)"
  exit 0
fi
rm -f "$X/image.stamp"

# --- 1. debootstrap (one pass: debootstrap resolves the Depends of --include) --------
# The mirror configured for apt on this machine (deb822 or one-line format).
apt_mirror() {
  { grep -hE '^URIs:' /etc/apt/sources.list.d/*.sources 2>/dev/null | awk '{print $2}'
    grep -hE '^deb +(\[[^]]*\] +)?https?://[^ ]+ +bookworm[ /]' /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null |
      sed -E 's/^deb +(\[[^]]*\] +)?//' | awk '{print $1}'; } |
    grep -E '/debian/?$' | grep -v security | head -1 || true
}
MIRROR=${VFLEET_XEN_MIRROR:-$(apt_mirror)}
MIRROR=${MIRROR:-http://deb.debian.org/debian}
INCLUDE=(
  # boot + base system
  systemd-sysv udev kmod iproute2 ifupdown bridge-utils procps
  linux-image-amd64 initramfs-tools
  # Xen: hypervisor, xl/xentop, libxl
  xen-hypervisor-4.17-amd64 xen-utils-4.17
  # libvirtd with only the xen (libxl) driver, virsh
  libvirt-daemon libvirt-daemon-driver-xen libvirt-clients
  # remote access
  openssh-server
  # the PV guest's initramfs userland
  busybox-static
)
rm -rf "$ROOTFS"
t=$(now_ms)
log "debootstrap $SUITE from $MIRROR"
if ! debootstrap --variant=minbase --arch=amd64 --cache-dir="$DEBCACHE" \
      --include="$(IFS=,; echo "${INCLUDE[*]}")" \
      "$SUITE" "$ROOTFS" "$MIRROR" > "$X/debootstrap.log" 2>&1; then
  tail -30 "$X/debootstrap.log" >&2
  tail -30 "$ROOTFS/debootstrap/debootstrap.log" >&2 2>/dev/null || true
  die "debootstrap failed (log: $X/debootstrap.log)"
fi
log "debootstrap: $(( $(now_ms) - t )) ms"

# --- 2. configure dom0 ---------------------------------------------------------------------
t=$(now_ms)
R=$ROOTFS
KVER=$(basename "$(ls -d "$R"/lib/modules/* | sort -V | tail -1)")
[[ -s $R/boot/vmlinuz-$KVER && -s $R/boot/initrd.img-$KVER ]] || die "no kernel/initrd for $KVER in the tree"
XENGZ=$(ls "$R"/boot/xen-4.17*-amd64.gz 2>/dev/null | head -1)
[[ -n $XENGZ ]] || die "no /boot/xen-4.17*-amd64.gz in the tree"

echo dom0 > "$R/etc/hostname"
printf '127.0.0.1\tlocalhost\n127.0.1.1\tdom0\n' > "$R/etc/hosts"
echo '/dev/vda / ext4 defaults,errors=remount-ro 0 1' > "$R/etc/fstab"
: > "$R/etc/machine-id"   # systemd creates one on first boot

# QEMU user networking: dom0 is 10.0.2.15 behind the slirp gateway 10.0.2.2
# (static: no DHCP client needed). xenbr0 has no ports: the PV guests' vifs
# are bridged onto it (tinynet), traffic stays inside dom0.
cat > "$R/etc/network/interfaces" <<'EOF'
auto lo
iface lo inet loopback

auto eth0
iface eth0 inet static
    address 10.0.2.15/24
    gateway 10.0.2.2

auto xenbr0
iface xenbr0 inet static
    address 192.168.77.1/24
    bridge_ports none
    bridge_stp off
    bridge_fd 0
EOF

# sshd: key only, one FIXED host key (ours), no DNS lookups
rm -f "$R"/etc/ssh/ssh_host_*
install -m 600 "$X/ssh_host_ed25519_key" "$R/etc/ssh/ssh_host_ed25519_key"
install -m 644 "$X/ssh_host_ed25519_key.pub" "$R/etc/ssh/ssh_host_ed25519_key.pub"
cat > "$R/etc/ssh/sshd_config.d/vfleet.conf" <<'EOF'
# vfleet testbed dom0
HostKey /etc/ssh/ssh_host_ed25519_key
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
UseDNS no
MaxSessions 100
MaxStartups 200:30:400
EOF
install -d -m 700 "$R/root/.ssh"
install -m 600 "$X/id_ed25519.pub" "$R/root/.ssh/authorized_keys"

# libvirtd + virtlogd without libvirt-daemon-system (which drags in polkit,
# iptables, dnsmasq and a default network): plain units, enabled.
mkdir -p "$R/etc/systemd/system/multi-user.target.wants" "$R/var/log/libvirt/libxl" "$R/var/lib/libvirt/libxl"
cat > "$R/etc/systemd/system/virtlogd.service" <<'EOF'
[Unit]
Description=libvirt log daemon (vfleet testbed)
[Service]
ExecStart=/usr/sbin/virtlogd
Restart=on-failure
[Install]
WantedBy=multi-user.target
EOF
cat > "$R/etc/systemd/system/libvirtd.service" <<'EOF'
[Unit]
Description=libvirt daemon, xen driver (vfleet testbed)
Wants=virtlogd.service
After=virtlogd.service network.target xen.service
[Service]
Type=notify
ExecStart=/usr/sbin/libvirtd --timeout 0
Restart=on-failure
[Install]
WantedBy=multi-user.target
EOF
for u in libvirtd virtlogd; do
  ln -sf "/etc/systemd/system/$u.service" "$R/etc/systemd/system/multi-user.target.wants/$u.service"
done
# libvirt-daemon brings the QEMU and network drivers: without a libvirt-qemu
# user and dnsmasq they fail to initialise, and libvirtd exits ("Driver state
# initialization failed"). Only the libxl driver is wanted here.
rm -f "$R"/usr/lib/x86_64-linux-gnu/libvirt/connection-driver/libvirt_driver_{qemu,network}.so
# nothing in dom0 needs these; they only slow the TCG boot down
for u in apt-daily.timer apt-daily-upgrade.timer e2scrub_all.timer fstrim.timer man-db.timer \
         systemd-timesyncd.service xendomains.service e2scrub_reap.service getty-static.service; do
  find "$R/etc/systemd/system" -name "$u" -type l -delete 2>/dev/null || true
  ln -sf /dev/null "$R/etc/systemd/system/$u"
done
# a root shell on the serial console for debugging (no password)
mkdir -p "$R/etc/systemd/system/serial-getty@hvc0.service.d"
cat > "$R/etc/systemd/system/serial-getty@hvc0.service.d/autologin.conf" <<'EOF'
[Service]
ExecStart=
ExecStart=-/sbin/agetty --autologin root --noclear %I 115200 linux
EOF

# --- 3. the tiny PV guest: dom0's Debian kernel + a busybox initramfs ----------------
# busybox init as PID 1 (/init -> busybox): `xl shutdown`/`xl reboot` make the
# guest kernel run /sbin/poweroff or /sbin/reboot, which signal init.
G=$X/domu-root
rm -rf "$G"
mkdir -p "$G"/{bin,sbin,proc,sys,dev,tmp,etc/init.d,lib/modules}
cp "$R/bin/busybox" "$G/bin/busybox"
for a in sh init poweroff reboot halt; do
  case $a in sh) d=bin ;; *) d=sbin ;; esac
  ln -sf /bin/busybox "$G/$d/$a"
done
ln -sf /bin/busybox "$G/init"
mknod -m 600 "$G/dev/console" c 5 1
m=$(find "$R/lib/modules/$KVER" -name 'xen-netfront.ko*' | head -1)
[[ -n $m ]] || die "xen-netfront.ko not found in $KVER"
case $m in
  *.ko)     cp "$m" "$G/lib/modules/xen-netfront.ko" ;;
  *.ko.xz)  xz -dc "$m" > "$G/lib/modules/xen-netfront.ko" ;;
  *.ko.zst) zstd -qdc "$m" > "$G/lib/modules/xen-netfront.ko" ;;
esac
cat > "$G/etc/inittab" <<'EOF'
::sysinit:/etc/init.d/rcS
::respawn:/etc/init.d/busy
hvc0::respawn:/bin/sh
::ctrlaltdel:/sbin/reboot
::shutdown:/bin/echo VFLEET-DOMU-SHUTDOWN
EOF
cat > "$G/etc/init.d/rcS" <<'EOF'
#!/bin/sh
/bin/busybox --install -s /bin
export PATH=/bin:/sbin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev 2>/dev/null
NAME=domu IP=
for a in $(cat /proc/cmdline); do
  case $a in
    vfleet.name=*) NAME=${a#*=} ;;
    vfleet.ip=*)   IP=${a#*=} ;;
  esac
done
hostname "$NAME"
ip link set lo up
insmod /lib/modules/xen-netfront.ko 2>/dev/null
if [ -n "$IP" ] && ip link set eth0 up 2>/dev/null; then
  ip addr add "$IP" dev eth0
fi
echo "VFLEET-DOMU-READY name=$NAME"
EOF
# A little CPU every second (~10 % of a vCPU under TCG), so xentop's CPU(%)
# of a running guest is non-zero; pings dom0's bridge when it has a network.
cat > "$G/etc/init.d/busy" <<'EOF'
#!/bin/sh
[ -e /sys/class/net/eth0 ] && ping -q -i 1 192.168.77.1 >/dev/null 2>&1 &
while :; do
  n=0; while [ $n -lt 1500 ]; do n=$((n + 1)); done
  sleep 1
done
EOF
chmod 755 "$G/etc/init.d/rcS" "$G/etc/init.d/busy"
mkdir -p "$R/root/domu"
(cd "$G" && find . | LC_ALL=C sort | cpio -o -H newc --quiet -R 0:0 | gzip -6) > "$R/root/domu/initrd.gz"
cp "$R/boot/vmlinuz-$KVER" "$R/root/domu/vmlinuz"
rm -rf "$G"

guest_cfg() { # guest_cfg NAME IP [VIF]
  cat <<EOF
name    = "$1"
type    = "pv"
kernel  = "/root/domu/vmlinuz"
ramdisk = "/root/domu/initrd.gz"
extra   = "console=hvc0 quiet vfleet.name=$1 vfleet.ip=$2"
memory  = 128
vcpus   = 1
on_crash = "destroy"
EOF
  [[ -z ${3:-} ]] || echo "vif     = [ '$3' ]"
}
guest_cfg tiny "" > "$R/etc/xen/tiny.cfg"
# (named as in ../shared/fixtures/xen/dom0-session.txt, whose replay tests follow that transcript)
guest_cfg tinynet 192.168.77.12/24 "mac=00:16:3e:76:66:02,bridge=xenbr0" > "$R/etc/xen/tinynet.cfg"
# libvirt's libxl driver only sees domains it started: the tests define this one
cat > "$R/etc/xen/lvtiny.xml" <<'EOF'
<domain type='xen'>
  <name>lvtiny</name>
  <memory unit='MiB'>128</memory>
  <currentMemory unit='MiB'>128</currentMemory>
  <vcpu>1</vcpu>
  <os>
    <type arch='x86_64' machine='xenpv'>linux</type>
    <kernel>/root/domu/vmlinuz</kernel>
    <initrd>/root/domu/initrd.gz</initrd>
    <cmdline>console=hvc0 quiet vfleet.name=lvtiny</cmdline>
  </os>
  <on_poweroff>destroy</on_poweroff>
  <on_reboot>restart</on_reboot>
  <on_crash>destroy</on_crash>
  <devices>
    <console type='pty'><target type='xen' port='0'/></console>
  </devices>
</domain>
EOF

# --- 4. boot files + image -------------------------------------------------------------------
gzip -dc "$XENGZ" > "$X/xen.elf.tmp"
cp "$R/boot/vmlinuz-$KVER" "$X/vmlinuz.tmp"
cp "$R/boot/initrd.img-$KVER" "$X/initrd.img.tmp"
# drop caches that only cost image space
rm -rf "$R"/var/cache/apt/archives/*.deb "$R"/var/lib/apt/lists/* "$R"/usr/share/doc/* "$R"/usr/share/man/*
log "configure: $(( $(now_ms) - t )) ms"

t=$(now_ms)
rm -f "$X/dom0.img.tmp"
mke2fs -q -t ext4 -L dom0 -E root_owner=0:0 -d "$R" "$X/dom0.img.tmp" "$IMG_SIZE" >/dev/null
log "mke2fs -d: $(( $(now_ms) - t )) ms ($(du -h "$X/dom0.img.tmp" | cut -f1) used of $IMG_SIZE)"
for f in xen.elf vmlinuz initrd.img dom0.img; do mv "$X/$f.tmp" "$X/$f"; done
echo "$KVER" > "$X/kernel-version"
rm -rf "$ROOTFS"
echo "$STAMP" > "$X/image.stamp"
log "built $X/dom0.img (Xen $(basename "$XENGZ" .gz), kernel $KVER) in $(( $(now_ms) - T0 )) ms"
