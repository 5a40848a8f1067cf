#!/usr/bin/env bash
# The firmware on QEMU's emulated network card, against Linux's TCP: the firmware serves its
# 64 KiB file to 8 kernel clients connecting at once (tools/src/bin/load.rs: each reads to EOF,
# checks every byte, "Thank you\0", close; the firmware's pool of two sockets serves them while a
# listen backlog holds the other SYNs), then fetches the same file from a kernel server
# (tools/src/bin/lesson.rs: 1024-byte writes, shutdown(SHUT_WR), one read).
#
#   bash scripts/firmware-net.sh [IMAGE]     (IMAGE: default target/firmware/lm3s6965-net.elf, built by
#                                             scripts/firmware.sh; or target/firmware/virt-net.elf)
#
# The image's architecture picks the board: an Arm image runs on the LM3S6965 (its Stellaris
# Ethernet MAC, `-nic tap`), a RISC-V image on QEMU's `virt` (a virtio-net device on the
# virtio-mmio bus, `-device virtio-net-device`), both on the same TAP device.
#
# Runs as root only: it creates a network namespace with a TAP device, starts QEMU inside it, and
# deletes the namespace at exit, also on failure. Without root, /dev/net/tun, ip or the emulator it
# says why and exits 0. Every step has a time limit.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
IMAGE=${1:-$ROOT/target/firmware/lm3s6965-net.elf}
say() { printf '== %s\n' "$*"; }
die() { printf 'firmware-net.sh: error: %s\n' "$*" >&2; exit 1; }
# shellcheck source=scripts/lib/firmware.sh
source "$ROOT/scripts/lib/firmware.sh"
# shellcheck source=scripts/lib/netns.sh
source "$ROOT/scripts/lib/netns.sh"

[[ -f $IMAGE ]] || die "no firmware image at $IMAGE (bash scripts/firmware.sh builds it)"
# The emulator and the network card, by the image's architecture (the ELF header's e_machine:
# 243 is RISC-V, 40 Arm); the MAC is the firmware's (firmware/common/src/net.rs).
if (($(od -An -tu2 -j18 -N2 "$IMAGE") == 243)); then
    QEMU=(qemu-system-riscv32 -machine virt -bios none)
    NIC=(-netdev tap,id=net0,ifname=tap0,script=no,downscript=no
        -device virtio-net-device,netdev=net0,mac=02:00:00:00:00:01)
else
    QEMU=(qemu-system-arm -machine lm3s6965evb)
    NIC=(-nic tap,ifname=tap0,script=no,downscript=no)
fi
why=$(fw_why_no_tap "${QEMU[0]}")
if [[ -n $why ]]; then
    say "skipping the firmware-to-Linux test: $why (it needs root, /dev/net/tun, ip and ${QEMU[0]})"
    exit 0
fi

# The kernel's peers, host builds (LESSON, LOAD).
fw_build_lesson
NS="halfclose-fw-$$"
DIR=$(mktemp -d)
QEMU_PID=
cleanup() {
    [[ -n $QEMU_PID ]] && kill "$QEMU_PID" 2>/dev/null || true
    ip netns del "$NS" 2>/dev/null || true
    rm -rf "$DIR"
}
trap cleanup EXIT

fw_write_payload "$DIR/payload"

say "namespace $NS: tap0 at 192.168.69.100/24 (Linux); the firmware is 192.168.69.1"
ns_tap "$NS"  # tap0 at 192.168.69.100/24 (Linux); the firmware is .1

ip netns exec "$NS" timeout 120 "${QEMU[@]}" -nographic \
    -semihosting-config enable=on,target=native "${NIC[@]}" -kernel "$IMAGE" >"$DIR/firmware.log" 2>&1 &
QEMU_PID=$!

# The kernel's server for the second half, ready before the firmware gets there.
ip netns exec "$NS" env LESSON_TIMEOUT=60 "$LESSON" server --bind 192.168.69.100 7892 "$DIR/payload" \
    >"$DIR/server.log" 2>&1 &
SERVER_PID=$!

# The kernel's clients fetch from the firmware, all at once, when it is up: it prints its first
# line just before it brings up its interface, and the kernel holds the SYNs while it resolves the
# firmware's address (three ARP requests a second apart).
up=0
for _ in $(seq 120); do
    if grep -q '^halfclose on' "$DIR/firmware.log" 2>/dev/null; then
        up=1
        break
    fi
    kill -0 "$QEMU_PID" 2>/dev/null || break
    sleep 0.5
done
fetched=0
if ((up)) && ip netns exec "$NS" "$LOAD" --at-once 8 --timeout 30 --expect "$DIR/payload" 192.168.69.1 7891 \
    >"$DIR/client.log" 2>&1; then
    fetched=1
fi

status=0
wait "$QEMU_PID" || status=$?
QEMU_PID=
wait "$SERVER_PID" || true
say "the firmware's output (semihosting)"
grep -v '^Timer with period zero' "$DIR/firmware.log" || true
say "the kernel's clients:"
cat "$DIR/client.log"
say "the kernel's server: $(cat "$DIR/server.log")"

((status == 0)) || die "the firmware exited with status $status (124: timed out)"
((up)) || die "the firmware did not come up on the link"
((fetched)) || die "not every one of the kernel's 8 clients got the file byte-exact"
grep -q '^Message from client: Thank you$' "$DIR/server.log" || die "the kernel's server got no \"Thank you\""
grep -q '^server: served 8 of 8 clients' "$DIR/firmware.log" ||
    die "the firmware did not get 8 \"Thank you\"s after its FINs"
grep -q '^result: PASS$' "$DIR/firmware.log" || die "the firmware did not pass"
say "firmware <-> Linux over $(basename "$IMAGE" .elf)'s emulated network card: 8 clients at once and one fetch, byte-exact, every reply received"
