#!/usr/bin/env bash
# Record what the xen_xl driver reads for identity and complete data (issue 15), from the
# real dom0 of xen-up.sh (booted here if it is not up), into
# tests/fixtures/xen-recorded/identity-session.txt, in the format of dom0-session.txt
# (`### dom0$ COMMAND`, verbatim output, `[rc=N]`, a blank line):
#   xentop's own usage (-f, -r), guests whose names collide in their first 10 characters or
#   hold spaces, created so that name order is not domain id order, `xl list -v`, `xl uptime`,
#   xentop cut, full-name (-f) and repeated-header (-r), the driver's own poll command line,
#   a new UUID at every `xl create`, and listings caught while a rebooted domain is torn down.
# Kept apart from dom0-session.txt so that refreshing one leaves the other's figures alone.
# Takes ~2 minutes (each `xl create` ~10 s under TCG).
set -euo pipefail
. "$(dirname "$0")/lib.sh"

OUT=${1:-$REPO_ROOT/tests/fixtures/xen-recorded}
T0=$(now_ms)
"$TESTBED_SRC/xen-up.sh"
# shellcheck disable=SC1091
. "$TB/xen/env"
mkdir -p "$OUT"

"$VFLEET_XEN_SSH_WRAPPER" -p "$VFLEET_XEN_SSH_PORT" root@127.0.0.1 bash -s > "$OUT/identity-session.txt.tmp" <<'SESSION'
set -u
rec() { printf '### dom0$ %s\n' "$1"; bash -c "$1" </dev/null 2>&1; printf '[rc=%d]\n\n' "$?"; }
quiet() { bash -c "$1" </dev/null >/dev/null 2>&1 || true; }
wait_for() { # wait_for TIMEOUT CMD
  local i
  for i in $(seq "$1"); do bash -c "$2" </dev/null >/dev/null 2>&1 && return 0; sleep 1; done
  echo "### (vfleet: gave up waiting for: $2)" >&2
}
# caught CMD...: rebooting $G2, run `xl list -v` then `xl uptime` back to back (stdout and
# stderr to files: a domain being rebuilt lasts well under a second under TCG), then record
# the first pair whose listing shows a `(null)` domain, verbatim, as blocks of those commands
caught() {
  local i
  rm -f /tmp/vfleet-caught.*
  ( for i in $(seq 60); do
      xl list -v > /tmp/vfleet-caught.l.$i 2>&1; echo $? > /tmp/vfleet-caught.lrc.$i
      xl uptime > /tmp/vfleet-caught.u.$i 2>&1; echo $? > /tmp/vfleet-caught.urc.$i
    done ) </dev/null &
  sleep 0.3
  xl reboot "$G2" </dev/null >/dev/null 2>&1
  wait
  for i in $(seq 60); do
    if grep -q '^(null) ' /tmp/vfleet-caught.l.$i; then
      printf '### dom0$ xl list -v\n'; cat /tmp/vfleet-caught.l.$i; printf '[rc=%d]\n\n' "$(cat /tmp/vfleet-caught.lrc.$i)"
      printf '### dom0$ xl uptime\n'; cat /tmp/vfleet-caught.u.$i; printf '[rc=%d]\n\n' "$(cat /tmp/vfleet-caught.urc.$i)"
      rm -f /tmp/vfleet-caught.*
      return 0
    fi
  done
  rm -f /tmp/vfleet-caught.*
  echo "### (vfleet: no listing showed a (null) domain during the reboot)" >&2
}
G2='ovm-guest-002.example.com'
G1='ovm-guest-001.example.com'
SP='web server 1'
quiet 'virsh -c xen:///system destroy lvtiny; virsh -c xen:///system undefine lvtiny'
for d in $(xl list | awk 'NR>2 {print $(NF-4)}'); do quiet "xl destroy $d"; done
wait_for 30 "[ \$(xl list | wc -l) -eq 2 ]"

rec 'xentop -h'
rec 'xentop -V'
# created in this order, so their ids do not follow their names
rec "xl create /etc/xen/tiny.cfg 'name=\"$G2\"'"
rec "xl create /etc/xen/tinynet.cfg 'name=\"$G1\"'"
rec "xl create /etc/xen/tiny.cfg 'name=\"$SP\"'"
wait_for 60 "[ \$(xl list | grep -c -- '-b----\|r-----') -eq 4 ]"
quiet 'sleep 3'
rec 'xl list'
rec 'xl list -v'
rec 'xl uptime'
rec 'xentop -b -i 2 -d 1'
rec 'xentop -b -f -i 2 -d 1'
rec 'xentop -b -r -i 2 -d 1'
rec 'xentop -b -f -r -i 2 -d 1'
# the xen_xl driver's poll, as it sends it (one command line, one round trip)
rec 'xl list -v; echo @@VFLEET@@ $?; xl uptime 2>/dev/null; echo @@VFLEET@@ $?; xentop -b -f -i 2 -d 1; echo @@VFLEET@@ $?; xl info; echo @@VFLEET@@ $?; ls -1 /etc/xen 2>/dev/null; echo @@VFLEET@@ $?'
# a new UUID at every create: the same config, destroyed and created again
rec "xl destroy '$SP'"
rec "xl create /etc/xen/tiny.cfg 'name=\"$SP\"'"
rec 'xl list -v'
# a reboot: the new domain is built nameless ((null), the old one's UUID) for a moment;
# `xl uptime` then skips it with an error on stderr, and exits 0
caught
wait_for 60 "xl list '$G2' | grep -q -- '-b----\|r-----'"
rec 'xl list -v'
rec 'xl uptime'
for d in $(xl list | awk 'NR>2 {print $(NF-4)}'); do quiet "xl destroy $d"; done
SESSION
grep -q '^### dom0\$ ' "$OUT/identity-session.txt.tmp" || die "no session recorded"
mv "$OUT/identity-session.txt.tmp" "$OUT/identity-session.txt"
log "recorded $(grep -c '^### dom0' "$OUT/identity-session.txt") dom0 commands in $OUT/identity-session.txt in $(( $(now_ms) - T0 )) ms"
