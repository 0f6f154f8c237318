#!/usr/bin/env bash
# Stop the Xen dom0 QEMU that xen-up.sh started (only the process named by
# .testbed/run/xen-qemu.pid) and drop its disk copy and env file. The cached
# image (.testbed/xen/dom0.img) and keys are kept.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

X=$TB/xen
PIDF=$RUN/xen-qemu.pid
adopt xen-qemu "qemu-system-x86_64 -name vfleet-xen-dom0"
if pid_alive "$PIDF"; then
  pid=$(cat "$PIDF")
  # no graceful shutdown: the disk is a throwaway copy
  kill "$pid"
  for _ in $(seq 100); do alive "$pid" || break; sleep 0.1; done
  if alive "$pid"; then kill -9 "$pid"; fi
  log "stopped dom0 QEMU (pid $pid)"
fi
rm -f "$PIDF" "$X/env" "$X/run/dom0.qcow2" "$X/run/booted.stamp" "$X/run/port"
