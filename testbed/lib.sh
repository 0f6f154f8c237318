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

# alive PID: a running process, not a zombie. PID 1 on these machines reaps
# orphans only every ~2 s, so a killed daemon stays a zombie (and kill -0
# still succeeds) for up to 2 s.
alive() {
  local st
  st=$(sed 's/.*) //' "/proc/$1/stat" 2>/dev/null | cut -d' ' -f1) || return 1
  [[ -n $st && $st != Z ]]
}
# live_pids ARGS...: pgrep ARGS, minus zombies
live_pids() {
  local p
  for p in $(pgrep "$@" || true); do alive "$p" && echo "$p"; done
  return 0
}
# pid_alive FILE: FILE names a live process
pid_alive() { [[ -s $1 ]] && alive "$(cat "$1")"; }

# virsh against the local system daemon; -q drops the blank trailing lines
vsh() { virsh -q -c "$QEMU_URI" "$@"; }

# now_ms: wall clock in milliseconds (for timing reports)
now_ms() { date +%s%3N; }

# adopt NAME PATTERN: .testbed/ may be wiped while our daemons run. If
# .testbed/run/NAME.pid is gone, find our daemon by its unique command line
# (it names a path inside .testbed) and write its pid file again, so that
# down.sh can still stop exactly that process.
adopt() {
  local f=$RUN/$1.pid pids
  pid_alive "$f" && return 0
  pids=$(live_pids -f -- "$2")
  if [[ -n $pids && $(wc -w <<<"$pids") -eq 1 ]]; then
    echo "$pids" > "$f"
    log "re-adopted running $1 (pid $pids)"
  fi
}
