#!/usr/bin/env bash
# Start virtlogd + the monolithic libvirtd (Debian 12) as plain daemons, no
# systemd, and wait until qemu:///system answers. Guests need no libvirt
# network (they use bare <interface type='ethernet'> taps), so none is set up.
# Pid files: .testbed/run/{virtlogd,libvirtd}.pid (down.sh stops only those).
set -euo pipefail
. "$(dirname "$0")/lib.sh"

WAIT=${VFLEET_LIBVIRTD_TIMEOUT:-60}
LOGDIR=$TB/log
mkdir -p "$LOGDIR"

# The QEMU driver refuses to load without its build-time default user/group
# (created by libvirt-daemon-system, which we do not install: it wants
# systemd/polkit/iptables). It must exist even though qemu.conf below runs
# QEMU as root.
getent group libvirt-qemu >/dev/null || groupadd --system libvirt-qemu
getent passwd libvirt-qemu >/dev/null ||
  useradd --system -g libvirt-qemu -M -d /var/lib/libvirt -s /usr/sbin/nologin libvirt-qemu
mkdir -p /var/log/libvirt/qemu /var/lib/libvirt/qemu /var/cache/libvirt /run/libvirt

# qemu.conf: run QEMU as root. The minimal change that works here (measured):
#  - /dev/kvm on these machines is root-only (0600) yet works for QEMU's probe,
#    so with the default user libvirt finds "KVM was enabled when probing ...
#    but it is not available now" and re-probes QEMU (4-8 s) on EVERY API call
#    that needs capabilities: `virsh define` took 47 s, `virsh version` 4 s.
#  - as root QEMU can also open kernel/disk/log files under any checkout path
#    (e.g. a CI clone under /root, which libvirt-qemu could not traverse).
# cgroups, namespaces and dynamic ownership work as they are, so the rest of
# the TESTBEDS.md fallback (security_driver, cgroup_controllers, namespaces,
# stdio_handler, remember_owner) is not applied.
QCONF=/etc/libvirt/qemu.conf
mkdir -p /etc/libvirt
want=$'user = "root"\ngroup = "root"'
conf_changed=0
if ! grep -qx 'user = "root"' "$QCONF" 2>/dev/null || ! grep -qx 'group = "root"' "$QCONF" 2>/dev/null; then
  # keep any other settings, replace active user/group lines
  { grep -vE '^[[:space:]]*(user|group)[[:space:]]*=' "$QCONF" 2>/dev/null || true
    echo "# vfleet testbed: run QEMU as root (see testbed/libvirtd-up.sh)"
    echo "$want"; } > "$QCONF.tmp"
  mv "$QCONF.tmp" "$QCONF"
  conf_changed=1
  log "updated $QCONF"
fi

answers() { timeout 10 virsh -c "$QEMU_URI" version >/dev/null 2>&1; }

adopt virtlogd "virtlogd --daemon --pid-file $RUN/virtlogd.pid"
adopt libvirtd "libvirtd --daemon --pid-file $RUN/libvirtd.pid"

# virtlogd collects QEMU's stdout/stderr into /var/log/libvirt/qemu/NAME.log
if [[ -z $(live_pids -x virtlogd) ]]; then
  LIBVIRT_LOG_OUTPUTS="3:file:$LOGDIR/virtlogd.log" \
    virtlogd --daemon --pid-file "$RUN/virtlogd.pid"
  log "virtlogd started (pid $(cat "$RUN/virtlogd.pid" 2>/dev/null || echo ?))"
fi

if answers; then
  if ((conf_changed)) && pid_alive "$RUN/libvirtd.pid"; then
    # running guests survive a libvirtd restart (QEMU keeps running)
    log "restarting our libvirtd to apply qemu.conf"
    kill "$(cat "$RUN/libvirtd.pid")"
    for _ in $(seq 100); do pid_alive "$RUN/libvirtd.pid" || break; sleep 0.1; done
  elif ((conf_changed)); then
    log "WARNING: libvirtd not started by us is running with an old qemu.conf; restart it"
    exit 0
  else
    log "libvirtd already answering"
    exit 0
  fi
fi

if [[ -z $(live_pids -x libvirtd) ]]; then
  LIBVIRT_LOG_OUTPUTS="3:file:$LOGDIR/libvirtd.log" \
    libvirtd --daemon --pid-file "$RUN/libvirtd.pid"
  log "libvirtd started (pid $(cat "$RUN/libvirtd.pid" 2>/dev/null || echo ?))"
fi

# The first start probes QEMU's capabilities (~8 s); later starts ~0.2 s.
t0=$(now_ms)
until answers; do
  if (( $(now_ms) - t0 > WAIT * 1000 )); then
    tail -20 "$LOGDIR/libvirtd.log" >&2 2>/dev/null || true
    die "libvirtd did not answer on $QEMU_URI within ${WAIT}s"
  fi
  sleep 0.2
done
log "libvirtd answers on $QEMU_URI ($(( $(now_ms) - t0 )) ms)"
