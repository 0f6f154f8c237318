#!/usr/bin/env bash
# Bring the whole testbed up (idempotent; a rerun when all is up takes ~1 s)
# and write .testbed/env, sourceable KEY=value lines for the tests.
#   VFLEET_GUESTS_N   number of guests (default 2)
#   VFLEET_SSHD_PORT  sshd port (default 2222)
set -euo pipefail
. "$(dirname "$0")/lib.sh"

N=${VFLEET_GUESTS_N:-2}
PORT=${VFLEET_SSHD_PORT:-2222}
T0=$(now_ms)
step() { local t; t=$(now_ms); "$TESTBED_SRC/$1" "${@:2}"; log "$1: $(( $(now_ms) - t )) ms"; }

step setup-apt.sh
# vcsim (VMware's simulator) for the esxi_api tests: built once from Debian's govmomi
step vcsim.sh build
# The guest image build (~3 s, download + gzip) overlaps libvirtd's first
# start (~8 s QEMU capability probe).
step guest-image.sh & img=$!
step libvirtd-up.sh
wait "$img" || die "guest-image.sh failed"
step guests-up.sh "$N"
step sshd-up.sh

S=$TB/ssh
GUESTS=$(seq -f 'vfleet-t%g' 1 "$N" | paste -sd,)
Q="keyfile=$S/id_ed25519&command=$S/ssh-wrapper"
QW="keyfile=$S/id_ed25519&command=$S/ssh-wrapper-wrong"
# Values with '&' are single-quoted so the file can be sourced; no value
# contains a single quote, so shlex.split(line) parses every line.
cat > "$TB/env.tmp" <<ENV
VFLEET_TESTBED=1
VFLEET_TESTBED_DIR=$TB
VFLEET_QEMU_URI=$QEMU_URI
VFLEET_GUESTS=$GUESTS
VFLEET_GUEST_DIR=$TB/guests
VFLEET_SSH_HOST=127.0.0.1
VFLEET_SSH_USER=root
VFLEET_SSH_PORT=$PORT
VFLEET_SSH_KEY=$S/id_ed25519
VFLEET_SSH_KNOWN_HOSTS=$S/known_hosts
VFLEET_SSH_KNOWN_HOSTS_WRONG=$S/known_hosts_wrong
VFLEET_SSH_WRAPPER=$S/ssh-wrapper
VFLEET_SSH_WRAPPER_WRONG=$S/ssh-wrapper-wrong
VFLEET_SSH_URI_QUERY='$Q'
VFLEET_QEMU_SSH_URI='qemu+ssh://root@127.0.0.1:$PORT/system?$Q'
VFLEET_QEMU_SSH_URI_WRONG='qemu+ssh://root@127.0.0.1:$PORT/system?$QW'
ENV
mv "$TB/env.tmp" "$TB/env"
log "wrote $TB/env"
log "testbed up in $(( $(now_ms) - T0 )) ms"
