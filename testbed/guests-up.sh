#!/usr/bin/env bash
# Define and start N tiny QEMU guests vfleet-t1..vfleet-tN on qemu:///system
# (default N=2, or VFLEET_GUESTS_N). Idempotent: a running guest is left
# alone, a paused one resumed, a shut-off one started; a guest whose
# definition differs from what this script generates (or whose files under
# .testbed/ were deleted) is destroyed and redefined.
# Waits (bounded) until each guest's /init printed its ready marker on the
# serial log.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

N=${1:-${VFLEET_GUESTS_N:-2}}
BOOT_TIMEOUT=${VFLEET_BOOT_TIMEOUT:-120}
GDIR=$TB/guests
KERNEL=$TB/guest/vmlinuz
INITRD=$TB/guest/initrd.img
MARKER=VFLEET-GUEST-READY

[[ -s $KERNEL && -s $INITRD ]] || "$TESTBED_SRC/guest-image.sh"
vsh version >/dev/null 2>&1 || "$TESTBED_SRC/libvirtd-up.sh"
mkdir -p "$GDIR"

# domain_xml I: the full definition of guest I. Its hash goes into
# <metadata> so a later run can tell whether the defined guest is stale.
domain_xml() {
  local i=$1 name=vfleet-t$1
  cat <<XML
<domain type='qemu'>
  <!-- TCG: /dev/kvm here is a paravirtual variant under which Linux hangs -->
  <name>$name</name>
  <title>vfleet testbed guest $i</title>
  <metadata><vft:testbed xmlns:vft='urn:vfleet:testbed' cfg='@CFG@'/></metadata>
  <memory unit='MiB'>128</memory>
  <currentMemory unit='MiB'>128</currentMemory>
  <vcpu>1</vcpu>
  <os>
    <type arch='x86_64' machine='pc'>hvm</type>
    <kernel>$KERNEL</kernel>
    <initrd>$INITRD</initrd>
    <cmdline>console=ttyS0 quiet vfleet.name=$name vfleet.ip=169.254.77.$((10 + i))/24 vfleet.peer=169.254.77.254</cmdline>
  </os>
  <!-- acpi: virsh shutdown presses the ACPI power button -->
  <features><acpi/></features>
  <clock offset='utc'/>
  <on_poweroff>destroy</on_poweroff>
  <on_reboot>restart</on_reboot>
  <on_crash>destroy</on_crash>
  <devices>
    <emulator>/usr/bin/qemu-system-x86_64</emulator>
    <disk type='file' device='disk'>
      <driver name='qemu' type='qcow2'/>
      <source file='$GDIR/$name.qcow2'/>
      <target dev='vda' bus='virtio'/>
    </disk>
    <!-- a bare tap (no libvirt network, no bridge): the guest's ARP probes
         move the tx counters and go nowhere -->
    <interface type='ethernet'>
      <mac address='52:54:00:76:66:$(printf %02x "$i")'/>
      <target dev='tap-$name' managed='yes'/>
      <model type='virtio'/>
    </interface>
    <controller type='usb' model='none'/>
    <serial type='file'>
      <source path='$GDIR/$name.serial.log' append='off'/>
      <target port='0'/>
    </serial>
    <memballoon model='virtio'>
      <stats period='2'/>
    </memballoon>
  </devices>
</domain>
XML
}

state_of() { vsh domstate "$1" 2>/dev/null | head -1 || true; }

# Remove a guest completely (definition, managed save, snapshot metadata).
purge() {
  local name=$1
  vsh destroy "$name" >/dev/null 2>&1 || true
  vsh undefine "$name" --managed-save --snapshots-metadata >/dev/null 2>&1 || true
}

started=()
for i in $(seq 1 "$N"); do
  name=vfleet-t$i
  disk=$GDIR/$name.qcow2
  xml=$(domain_xml "$i")
  # the image's stamp changes whenever guest-image.sh (its /init) changes
  cfg=$( { echo "$xml"; cat "$TB/guest/stamp" "$TB/guest/kernel-version"; } | sha256sum | cut -c1-16)
  xml=${xml/@CFG@/$cfg}

  st=$(state_of "$name")
  if [[ -n $st ]]; then
    # (libvirt re-serialises metadata attributes with double quotes)
    have=$(vsh dumpxml --inactive "$name" | grep -o 'cfg=.[0-9a-f]*' | head -1 | cut -c6- || true)
    if [[ $have != "$cfg" || ! -e $disk || ( ! -e $GDIR/$name.serial.log && $st != "shut off" ) ]]; then
      # stale definition, or .testbed/ was wiped under a running guest
      log "$name: stale ($st), redefining"
      purge "$name"
      st=
    fi
  fi

  [[ -e $disk ]] || qemu-img create -q -f qcow2 "$disk" 16M

  if [[ -z $st ]]; then
    printf '%s\n' "$xml" > "$GDIR/$name.xml"
    vsh define "$GDIR/$name.xml" >/dev/null
    st="shut off"
  fi

  case $st in
    running|idle|blocked|"in shutdown") ;;
    paused)   log "$name: resuming"; vsh resume "$name" >/dev/null ;;
    pmsuspended) vsh dompmwakeup "$name" >/dev/null ;;
    *)        # shut off / crashed: cold boot (drop any managed save so the
              # guest boots fresh and prints its marker again)
              [[ $st == crashed ]] && vsh destroy "$name" >/dev/null 2>&1 || true
              vsh managedsave-remove "$name" >/dev/null 2>&1 || true
              vsh start "$name" >/dev/null
              started+=("$name") ;;
  esac
done

# Wait until every guest printed its marker (guests boot in parallel).
t0=$(now_ms)
for i in $(seq 1 "$N"); do
  name=vfleet-t$i
  slog=$GDIR/$name.serial.log
  until grep -qa "$MARKER" "$slog" 2>/dev/null; do
    if (( $(now_ms) - t0 > BOOT_TIMEOUT * 1000 )); then
      tail -20 "$slog" >&2 2>/dev/null || true
      die "$name did not boot within ${BOOT_TIMEOUT}s (state: $(state_of "$name"))"
    fi
    [[ $(state_of "$name") == "shut off" ]] && { tail -20 "$slog" >&2 || true; die "$name powered off while booting"; }
    sleep 0.2
  done
done
if ((${#started[@]})); then
  log "started ${started[*]}; all $N booted in $(( $(now_ms) - t0 )) ms"
else
  log "all $N guests already running"
fi
