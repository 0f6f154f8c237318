#!/usr/bin/env bash
# Stop everything up.sh started: guests, sshd, libvirtd, virtlogd. Only the
# processes named by our pid files in .testbed/run/ are signalled.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

"$TESTBED_SRC/guests-down.sh"

stop() { # stop NAME: TERM the pid in .testbed/run/NAME.pid, wait up to 10 s
  local f=$RUN/$1.pid
  if pid_alive "$f"; then
    local pid; pid=$(cat "$f")
    kill "$pid"
    for _ in $(seq 100); do alive "$pid" || break; sleep 0.1; done
    if alive "$pid"; then kill -9 "$pid"; fi
    log "stopped $1 (pid $pid)"
  fi
  rm -f "$f"
}
stop sshd
stop libvirtd   # before virtlogd: libvirtd holds connections to it
stop virtlogd
rm -f "$TB/env"
