#!/usr/bin/env bash
# vcsim (VMware's vCenter/ESXi simulator) for the esxi_api driver's tests.
# Debian's golang-github-vmware-govmomi-dev has the simulator library but no
# program: we build testbed/vcsim/main.go offline in GOPATH mode.
#
#   vcsim.sh build                 apt deps if missing, build if main.go changed;
#                                  prints the binary path (.testbed/vcsim/bin/vcsim)
#   vcsim.sh start [options]       build, then start one simulator in the background
#                                  (idempotent: same name and options -> reuse it);
#                                  prints its URL; its JSON info line (url, vms,
#                                  fingerprints, cert) is in .testbed/vcsim/NAME.json
#   vcsim.sh stop [--name NAME]    stop the simulator started under that name
#   vcsim.sh url [--name NAME]     print the URL of a running simulator
# Options: --name NAME (default: the model) --model esx|vpx (default esx)
#          --vms N (VMs per resource pool; default 2) --listen ADDR (default
#          127.0.0.1:0, any free port) --tls | --no-tls (default --tls)
#          --user U --pass P (default vfleet / vfleet-secret)
#          --fault restricted|noperm (VM power operations fail with that fault)
set -euo pipefail
. "$(dirname "$0")/lib.sh"

VC=$TB/vcsim
BIN=$VC/bin/vcsim
GOPATH_OWN=$VC/gopath
PKGS=(golang-go golang-github-vmware-govmomi-dev)
APT_LOG=/tmp/apt.log  # shared with the other testbed users of apt on this machine

installed() { [[ $(dpkg-query -W -f='${Status}' "$1" 2>/dev/null || true) == "install ok installed" ]]; }

# Someone else's apt run (logged to /tmp/apt.log, last line "done RC" when it
# finished) holds the dpkg lock for minutes: wait for it instead of failing.
wait_for_other_apt() {
  local i
  for ((i = 0; i < 300; i++)); do
    if [[ -s $APT_LOG ]] && ! tail -n 1 "$APT_LOG" | grep -q '^done ' &&
      [[ -n $(live_pids -x 'apt-get|apt|dpkg') ]]; then
      ((i % 15 == 0)) && log "waiting for another apt run (see $APT_LOG)"
      sleep 2
    else
      return 0
    fi
  done
  die "another apt run did not finish within 10 minutes (see $APT_LOG)"
}

apt_install() {
  local missing=() p try rc
  for p in "${PKGS[@]}"; do installed "$p" || missing+=("$p"); done
  ((${#missing[@]} == 0)) && return 0
  log "installing: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  for try in 1 2 3 4 5; do
    wait_for_other_apt
    rc=0
    {
      echo "vcsim.sh: apt-get install ${missing[*]} (try $try)"
      # A fresh machine may have no package lists yet; DPkg::Lock::Timeout waits
      # for a concurrent dpkg instead of failing at once.
      if ! apt-cache show "${missing[0]}" >/dev/null 2>&1; then apt-get update -qq; fi
      apt-get install -y -q --no-install-recommends -o DPkg::Lock::Timeout=300 "${missing[@]}" || rc=$?
      echo "done $rc"
    } >"$APT_LOG" 2>&1 || true
    rc=$(tail -n 1 "$APT_LOG" | sed -n 's/^done //p')
    [[ $rc == 0 ]] && { log "apt done"; return 0; }
    log "apt-get failed (try $try, rc ${rc:-?}); retrying (dpkg lock?)"
    sleep $((try * 3))
  done
  die "apt-get install ${missing[*]} failed; see $APT_LOG"
}

build() {
  apt_install
  local src=$TESTBED_SRC/vcsim/main.go stamp want t
  # Rebuild when main.go, Go or the govmomi package changed.
  want=$({ sha256sum "$src"; go version; dpkg-query -W golang-github-vmware-govmomi-dev; } | sha256sum | cut -d' ' -f1)
  stamp=$VC/bin/.stamp
  if [[ -x $BIN && -s $stamp && $(cat "$stamp") == "$want" ]]; then
    echo "$BIN"
    return 0
  fi
  t=$(now_ms)
  mkdir -p "$GOPATH_OWN/src/vfleet-vcsim" "$VC/bin" "$VC/gocache"
  cp "$src" "$GOPATH_OWN/src/vfleet-vcsim/main.go"
  (cd "$GOPATH_OWN/src/vfleet-vcsim" &&
    GO111MODULE=off GOPATH="$GOPATH_OWN:/usr/share/gocode" GOCACHE="$VC/gocache" GOFLAGS='' \
      GOPROXY=off CGO_ENABLED=0 go build -o "$BIN.tmp" .)
  mv "$BIN.tmp" "$BIN"
  echo "$want" >"$stamp"
  log "built $BIN in $(($(now_ms) - t)) ms"
  echo "$BIN"
}

NAME="" MODEL=esx VMS=2 LISTEN=127.0.0.1:0 TLS=true USER_=vfleet PASS=vfleet-secret FAULT=""
parse() {
  while (($#)); do
    case $1 in
      --name) NAME=$2; shift ;;
      --model) MODEL=$2; shift ;;
      --vms) VMS=$2; shift ;;
      --listen) LISTEN=$2; shift ;;
      --tls) TLS=true ;;
      --no-tls) TLS=false ;;
      --user) USER_=$2; shift ;;
      --pass) PASS=$2; shift ;;
      --fault) FAULT=$2; shift ;;
      *) die "unknown option $1 (see the header of $0)" ;;
    esac
    shift
  done
  [[ $MODEL == esx || $MODEL == vpx ]] || die "--model must be esx or vpx, not $MODEL"
  [[ $VMS =~ ^[0-9]+$ ]] || die "--vms must be a number, not $VMS"
  NAME=${NAME:-$MODEL}
}

url_of() { sed -n 's/.*"url":"\([^"]*\)".*/\1/p' "$VC/$NAME.json" 2>/dev/null; }

start() {
  build >/dev/null
  local pidf=$RUN/vcsim-$NAME.pid args t pid i
  args=(-model "$MODEL" -vm "$VMS" -listen "$LISTEN" -tls="$TLS" -user "$USER_" -pass "$PASS"
    -cert "$VC/$NAME.pem" -info "$VC/$NAME.json" -fault "$FAULT")
  # Same binary, same options and still running: reuse it (idempotent).
  local want
  want="$(cat "$VC/bin/.stamp") ${args[*]}"
  if pid_alive "$pidf" && [[ $(cat "$VC/$NAME.args" 2>/dev/null) == "$want" && -s $VC/$NAME.json ]]; then
    url_of
    return 0
  fi
  stop_one
  rm -f "$VC/$NAME.json"
  t=$(now_ms)
  setsid "$BIN" "${args[@]}" >"$VC/$NAME.log" 2>&1 </dev/null &
  pid=$!
  echo "$pid" >"$pidf"
  echo "$want" >"$VC/$NAME.args"
  for ((i = 0; i < 200; i++)); do
    [[ -s $VC/$NAME.json ]] && break
    alive "$pid" || die "vcsim $NAME exited at start: $(tail -n 5 "$VC/$NAME.log")"
    sleep 0.05
  done
  [[ -s $VC/$NAME.json ]] || die "vcsim $NAME did not start within 10 s (see $VC/$NAME.log)"
  log "started vcsim $NAME (pid $pid, $MODEL, $(sed -n 's/.*"vms":\([0-9]*\).*/\1/p' "$VC/$NAME.json") VMs) in $(($(now_ms) - t)) ms"
  url_of
}

stop_one() {
  local pidf=$RUN/vcsim-$NAME.pid i
  pid_alive "$pidf" || { rm -f "$pidf"; return 0; }
  kill "$(cat "$pidf")"
  for ((i = 0; i < 100; i++)); do pid_alive "$pidf" || break; sleep 0.05; done
  rm -f "$pidf" "$VC/$NAME.json"
}

mkdir -p "$VC"
cmd=${1:-build}
shift || true
case $cmd in
  build) build ;;
  start) parse "$@"; start ;;
  stop) parse "$@"; stop_one ;;
  url) parse "$@"; pid_alive "$RUN/vcsim-$NAME.pid" || die "vcsim $NAME is not running"; url_of ;;
  *) die "usage: $0 build|start|stop|url [options]" ;;
esac
