#!/usr/bin/env bash
# Install the Debian packages the testbed needs, only if something is missing.
# busybox-static and the guest kernel are NOT installed here: guest-image.sh
# fetches them with `apt-get download` into .testbed/ (the host must not get a
# second kernel or have its /bin/busybox replaced).
set -euo pipefail

PKGS=(
  # libvirt-python build deps (the package itself is pip's business)
  libvirt-dev pkg-config gcc
  # monolithic libvirtd + QEMU driver + virsh, QEMU itself and qemu-img
  libvirt-daemon libvirt-daemon-driver-qemu libvirt-clients
  qemu-system-x86 qemu-utils
  # a private sshd + client for qemu+ssh:// / test+ssh:// tests
  openssh-server openssh-client
  # terminal UI tests drive the app through tmux
  tmux
  # guest-image.sh: unpack .debs, build the initramfs
  cpio gzip xz-utils zstd kmod
  # ip(8), useradd/groupadd, pgrep/pkill -F
  iproute2 passwd procps
  # vcsim (VMware's simulator) is built from Debian's govmomi sources
  golang-go golang-github-vmware-govmomi-dev
  # the real Xen dom0 image (xen-image.sh)
  debootstrap e2fsprogs
  # monitoring: a real Prometheus (+ promtool) and VictoriaMetrics scrape `vfleet export`;
  # the Go libvirt exporter is the anchor of bench/export.py; htop the anchor of
  # bench/terminal_bytes.py
  prometheus victoria-metrics prometheus-libvirt-exporter htop
)

missing=()
for p in "${PKGS[@]}"; do
  # dpkg-query prints "install ok installed" only for fully installed packages
  st=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
  [[ "$st" == "install ok installed" ]] || missing+=("$p")
done

if ((${#missing[@]} == 0)); then
  echo "setup-apt: all ${#PKGS[@]} packages present"
  exit 0
fi

echo "setup-apt: installing: ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# --no-install-recommends: qemu-system-x86 would otherwise drag in a GTK GUI,
# libvirt-daemon the lxc/xen/vbox drivers and lvm2; none is needed.
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
echo "setup-apt: done"
