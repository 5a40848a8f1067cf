#!/usr/bin/env bash
# The Cortex-M firmware on QEMU's emulated Ethernet, against Linux's TCP: the firmware serves its
# 64 KiB file to a kernel client (tools/src/bin/lesson.rs: read to EOF, "Thank you\0", close), then
# fetches the same file from a kernel server (1024-byte writes, shutdown(SHUT_WR), one read).
#
#   bash scripts/firmware-net.sh [IMAGE]     (IMAGE: default target/firmware/lm3s6965-net.elf, built by
#                                             scripts/firmware.sh)
#
# Runs as root only: it creates a network namespace with a TAP device, starts qemu-system-arm
# inside it with `-nic tap`, and deletes the namespace at exit, also on failure. Without root,
# /dev/net/tun, ip or qemu-system-arm it says why and exits 0. Every step has a time limit.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
IMAGE=${1:-$ROOT/target/firmware/lm3s6965-net.elf}
say() { printf '== %s\n' "$*"; }
die() { printf 'firmware-net.sh: error: %s\n' "$*" >&2; exit 1; }
# shellcheck source=scripts/lib/firmware.sh
source "$ROOT/scripts/lib/firmware.sh"

why=$(fw_why_no_tap)
if [[ -n $why ]]; then
    say "skipping the firmware-to-Linux test: $why (it needs root, /dev/net/tun, ip and qemu-system-arm)"
    exit 0
fi
[[ -f $IMAGE ]] || die "no firmware image at $IMAGE (bash scripts/firmware.sh builds it)"

# The kernel's peers, a host build.
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
fw_netns_with_tap "$NS"

ip netns exec "$NS" timeout 120 qemu-system-arm -machine lm3s6965evb -nographic \
    -semihosting-config enable=on,target=native \
    -nic tap,ifname=tap0,script=no,downscript=no -kernel "$IMAGE" >"$DIR/firmware.log" 2>&1 &
QEMU_PID=$!

# The kernel's server for the second half, ready before the firmware gets there; the kernel's
# client fetches from the firmware, retrying until the firmware is up.
fw_lesson_peers "$NS" "$DIR"

status=0
wait "$QEMU_PID" || status=$?
QEMU_PID=
wait "$SERVER_PID" || true
say "the firmware's output (semihosting)"
grep -v '^Timer with period zero' "$DIR/firmware.log" || true
fw_check_peers "the firmware" "$status" "$DIR"
grep -q '^server: sent 65536 bytes .* reply "Thank you\\0"' "$DIR/firmware.log" ||
    die "the firmware did not get its \"Thank you\" after its FIN"
grep -q '^result: PASS$' "$DIR/firmware.log" || die "the firmware did not pass"
say "firmware <-> Linux over emulated Ethernet: both directions byte-exact, both replies received"
