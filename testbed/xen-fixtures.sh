#!/usr/bin/env bash
# Refresh the recorded Xen outputs in tests/fixtures/xen/ from the real dom0 of
# xen-up.sh (booted here if it is not up), in the format of
# ../shared/fixtures/xen/dom0-session.txt: `### dom0$ COMMAND`, the verbatim
# output (stdout and stderr interleaved), then `[rc=N]` and a blank line.
#   dom0-session.txt   xl/xentop/virsh inside dom0: facts, listings, the lifecycle
#                      of two xl guests (tiny, tinynet) and a libvirt one (lvtiny),
#                      error paths; the same sequence as the shared capture
#   host-xen+ssh.txt   the same dom0 through libvirt's xen+ssh:// from this host
# The dom0 is first reset (all guests destroyed, lvtiny undefined) so every
# refresh records the same story. Takes ~2-3 minutes (each `xl create` ~10 s).
set -euo pipefail
. "$(dirname "$0")/lib.sh"

OUT=${1:-$REPO_ROOT/tests/fixtures/xen}
T0=$(now_ms)
"$TESTBED_SRC/xen-up.sh"
# shellcheck disable=SC1091
. "$TB/xen/env"
W=$VFLEET_XEN_SSH_WRAPPER
PORT=$VFLEET_XEN_SSH_PORT
mkdir -p "$OUT"

# --- the dom0 session: one bash inside dom0 reads this script on stdin --------------------
# rec CMD: record CMD; quiet CMD: run without recording (resets and waits that
# keep the story deterministic). wait_for DESC TIMEOUT CMD: poll CMD until it succeeds.
"$W" -p "$PORT" root@127.0.0.1 bash -s > "$OUT/dom0-session.txt.tmp" <<'SESSION'
set -u
# (stdin is this script: commands get /dev/null, or they would eat the rest of it)
rec() { printf '### dom0$ %s\n' "$1"; bash -c "$1" </dev/null 2>&1; printf '[rc=%d]\n\n' "$?"; }
quiet() { bash -c "$1" </dev/null >/dev/null 2>&1 || true; }
wait_for() { # wait_for TIMEOUT CMD
  local i
  for i in $(seq "$1"); do bash -c "$2" </dev/null >/dev/null 2>&1 && return 0; sleep 1; done
  echo "### (vfleet: gave up waiting for: $2)" >&2
}
V='virsh -c xen:///system'
# reset: nothing but Domain-0, no libvirt definitions left by earlier tests
quiet "$V destroy lvtiny; $V undefine lvtiny"
for d in $(xl list | awk 'NR>2 {print $1}'); do quiet "xl destroy $d"; done
quiet "rm -f /root/tiny.save"
wait_for 30 "[ \$(xl list | wc -l) -eq 2 ]"

rec 'uname -a'
rec 'cat /sys/hypervisor/type /sys/hypervisor/version/major /sys/hypervisor/version/minor'
rec 'xl info'
rec 'xl list'
rec 'xl list -l'
rec 'xl list -v'
rec 'xl vcpu-list'
rec 'xl uptime'
rec 'xl sched-credit2'
rec 'xentop -b -i 2 -d 1'
rec 'cat /etc/xen/tiny.cfg'
rec 'cat /etc/xen/tinynet.cfg'
rec 'time xl create /etc/xen/tiny.cfg'
rec 'xl list'
rec 'xl create /etc/xen/tinynet.cfg'
# both guests booted (their busybox shell is on the console)
wait_for 60 "xl list tiny | grep -q -- '-b----\|r-----' && xl list tinynet | grep -q -- '-b----\|r-----'"
quiet 'sleep 3'
rec 'xl list'
rec 'xl list -l'
rec 'xl list -v'
rec 'xl domid tiny'
rec "xl domname $(xl domid tiny)"
rec 'xl network-list tinynet'
rec 'xl block-list tiny'
rec 'xentop -b -i 2 -d 1'
rec 'timeout 3 xl console tiny </dev/null | tr -d "\r" | head -5'
rec 'xl pause tiny'
rec 'xl list'
rec 'xentop -b -i 1'
rec 'xl unpause tiny'
rec 'xl list tiny'
rec 'xl mem-set tiny 96m'
rec 'xl list tiny'
rec 'xl pause nosuchdom'
rec 'xl destroy nosuchdom'
rec 'xl list nosuchdom'
rec 'xl create /etc/xen/tiny.cfg'
rec 'xl create /etc/xen/does-not-exist.cfg'
rec 'time xl save tiny /root/tiny.save'
rec 'xl list'
rec 'time xl restore /root/tiny.save'
rec 'xl list'
quiet 'rm -f /root/tiny.save'
rec 'time xl reboot -w tiny'
rec 'xl list'
# the rebooted domain comes back under a new id
wait_for 60 "xl list tiny | grep -q -- '-b----\|r-----'"
rec 'xl list'
rec 'time xl shutdown -w tiny'
rec 'xl list'
rec 'xl shutdown tiny'
rec 'xl destroy tinynet'
rec 'xl list'
rec 'xl dmesg | tail -15'
rec 'systemctl is-active libvirtd'
rec "$V version"
rec "$V list --all"
rec "$V domxml-from-native xen-xl /etc/xen/tiny.cfg"
rec 'cat /etc/xen/lvtiny.xml'
rec "$V define /etc/xen/lvtiny.xml"
rec "$V list --all"
rec "time $V start lvtiny"
rec "$V list --all"
rec 'xl list'
rec 'xl list -l lvtiny'
rec "$V dominfo lvtiny"
rec "$V domstate lvtiny --reason"
rec "$V domid lvtiny"
rec "$V domuuid lvtiny"
rec "$V dumpxml lvtiny"
rec "$V dommemstat lvtiny"
rec "$V vcpuinfo lvtiny"
rec "$V schedinfo lvtiny"
rec "$V domstats lvtiny"
rec "$V suspend lvtiny"
rec "$V list --all"
rec 'xl list lvtiny'
rec 'xentop -b -i 1'
rec "$V resume lvtiny"
rec "$V shutdown lvtiny"
wait_for 60 "$V domstate lvtiny | grep -q 'shut off'"
rec "$V list --all"
rec "$V domstate lvtiny --reason"
rec "$V start lvtiny"
rec "$V destroy lvtiny"
rec "$V domstate lvtiny --reason"
rec 'xl create /etc/xen/tiny.cfg'
rec "$V list --all"
rec "$V dominfo tiny"
rec 'xl destroy tiny'
rec "$V nodeinfo"
rec "$V capabilities | head -30"
rec "$V list --all"
SESSION
grep -q '^### dom0\$ ' "$OUT/dom0-session.txt.tmp" || die "no session recorded"
mv "$OUT/dom0-session.txt.tmp" "$OUT/dom0-session.txt"
log "recorded $(grep -c '^### dom0' "$OUT/dom0-session.txt") dom0 commands in $OUT/dom0-session.txt"

# --- the host side: libvirt's xen+ssh:// through the known_hosts-pinned wrapper -----------
# Paths relative to the repository, so the recorded commands are the same everywhere.
cd "$REPO_ROOT"
REL=${TB#"$REPO_ROOT"/}
URI="xen+ssh://root@127.0.0.1:$PORT/system?keyfile=$REL/xen/id_ed25519&command=$REL/xen/ssh-wrapper"
host_rec() { # host_rec ARGS...: one virsh command over xen+ssh://
  printf "### host\$ virsh -c '%s' %s\n" "$URI" "$*"
  local rc=0
  virsh -c "$URI" "$@" 2>&1 || rc=$?
  printf '[rc=%d]\n\n' "$rc"
}
{
  host_rec list --all
  host_rec dominfo Domain-0
  host_rec start lvtiny
  host_rec list --all
  host_rec suspend lvtiny
  host_rec domstate lvtiny --reason
  host_rec resume lvtiny
  host_rec domstats lvtiny
  host_rec destroy lvtiny
  host_rec domstate lvtiny --reason
  host_rec undefine lvtiny
  host_rec list --all
} > "$OUT/host-xen+ssh.txt.tmp"
mv "$OUT/host-xen+ssh.txt.tmp" "$OUT/host-xen+ssh.txt"
log "recorded $(grep -c '^### host' "$OUT/host-xen+ssh.txt") host commands in $OUT/host-xen+ssh.txt"
log "fixtures refreshed in $(( $(now_ms) - T0 )) ms"
