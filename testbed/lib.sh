# Shared by the testbed scripts (sourced, not run).
# Runtime state lives in <repo>/.testbed (gitignored; may be deleted at any
# time, every script recreates what it needs).
TESTBED_SRC=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_ROOT=$(cd "$TESTBED_SRC/.." && pwd)
TB=${VFLEET_TESTBED_DIR:-$REPO_ROOT/.testbed}
RUN=$TB/run            # pid files of daemons started by these scripts
mkdir -p "$TB" "$RUN"

QEMU_URI=qemu:///system

log() { printf '%s: %s\n' "$(basename "$0" .sh)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

# pid_alive FILE -> true if FILE names a live process
pid_alive() { [[ -s $1 ]] && kill -0 "$(cat "$1")" 2>/dev/null; }

# virsh against the local system daemon; -q drops the blank trailing lines
vsh() { virsh -q -c "$QEMU_URI" "$@"; }

# now_ms: wall clock in milliseconds (for timing reports)
now_ms() { date +%s%3N; }
