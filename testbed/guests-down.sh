#!/usr/bin/env bash
# Destroy and undefine every testbed guest (vfleet-t<N>) and drop its disk and
# serial log; the cached kernel/initramfs in .testbed/guest/ are kept.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

if ! vsh version >/dev/null 2>&1; then
  log "libvirtd not answering: nothing to do"
  exit 0
fi
names=$(vsh list --all --name | grep -E '^vfleet-t[0-9]+$' || true)
# destroy in parallel: each takes ~1.5-2 s (libvirt waits for QEMU to exit)
for name in $names; do
  vsh destroy "$name" >/dev/null 2>&1 &   # fails harmlessly if shut off
done
wait
for name in $names; do
  # tests may leave a managed save or snapshots behind: drop them too
  vsh undefine "$name" --managed-save --snapshots-metadata >/dev/null
  rm -f "$TB/guests/$name".{qcow2,serial.log,xml}
  log "removed $name"
done
