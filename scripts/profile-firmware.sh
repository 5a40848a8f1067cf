#!/usr/bin/env bash
# Where the firmware's instructions go per transferred byte, by source file and by function: each
# board's cost image (src/cost.rs, built by scripts/firmware.sh) run once more under QEMU with
# its execution traced (`-d in_asm,exec,nochain`), and the exchange at MTU 1500 with 4 KiB socket
# buffers (checksums on, the README's setting) counted by scripts/profile-firmware.py.
#
#   bash scripts/firmware.sh                    # builds target/firmware/BOARD-cost.elf
#   bash scripts/profile-firmware.sh [BOARD...] # lm3s6965 microbit virt (default: all three)
#
# MTU and BUFFER override the point of the sweep (one the board's sweep has). The trace, about
# 350 MB per board, goes to a temporary file on /dev/shm, deleted after each board.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
OUT="$ROOT/target/firmware"
MTU=${MTU:-1500} BUFFER=${BUFFER:-4096}
boards=("$@")
((${#boards[@]})) || boards=(lm3s6965 microbit virt)
command -v llvm-dwarfdump > /dev/null || { apt-get update -qq && apt-get install -y -qq llvm > /dev/null; }
trace=$(mktemp /dev/shm/halfclose-trace.XXXXXX)
trap 'rm -f "$trace" "$trace.out"' EXIT
for board in "${boards[@]}"; do
    case $board in
    lm3s6965) qemu=(qemu-system-arm -machine lm3s6965evb) name="LM3S6965 (Cortex-M3)" ;;
    microbit) qemu=(qemu-system-arm -machine microbit) name="micro:bit (Cortex-M0)" ;;
    virt) qemu=(qemu-system-riscv32 -bios none -machine virt) name="QEMU virt (RV32IMAC)" ;;
    *) echo "profile-firmware.sh: no board $board (lm3s6965, microbit, virt)" >&2; exit 2 ;;
    esac
    elf="$OUT/$board-cost.elf"
    [[ -f $elf ]] || { echo "profile-firmware.sh: $elf is missing: run bash scripts/firmware.sh first" >&2; exit 1; }
    (cd "$OUT" && timeout 600 "${qemu[@]}" -nographic -semihosting-config enable=on,target=native \
        -icount shift=0,align=off,sleep=off -kernel "$elf" -d in_asm,exec,nochain -D "$trace" \
        > "$trace.out" 2>&1) || { cat "$trace.out" >&2; exit 1; }
    out=$(cat "$trace.out")
    # The part of the trace after the K-th output line is the K-th exchange (the first line is
    # the calibration's).
    run=$(grep '^cost: ' <<< "$out" | grep -n "^cost: mtu $MTU buffer $BUFFER:" | cut -d: -f1)
    [[ -n $run ]] || { echo "profile-firmware.sh: $board's sweep has no MTU $MTU with $BUFFER-byte buffers" >&2; exit 1; }
    echo "$name, MTU $MTU, $BUFFER-byte socket buffers, 64 KiB: $(grep "^cost: mtu $MTU buffer $BUFFER:" <<< "$out" | cut -d: -f3-)"
    echo
    python3 "$ROOT/scripts/profile-firmware.py" "$elf" "$trace" "$run" 65536 /halfclose
    : > "$trace"
done
