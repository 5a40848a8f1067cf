#!/usr/bin/env bash
# Instructions per transferred byte on every target, stock smoltcp against smoltcp with
# patches/ applied (both sides of the exchange get the same build), one line per target and
# setting:
#
#   per-byte TARGET MTU stock N patched M (BUFFER-byte socket buffers)
#
# TARGET is host (x86-64, callgrind over tools/src/bin/bench.rs --one ours, 4 MiB, as
# scripts/callgrind.sh counts) or a board of scripts/firmware.sh (lm3s6965: Cortex-M3, microbit:
# Cortex-M0, virt: RV32IMAC; its cost image under `qemu -icount`, 64 KiB; lm3s6965-memcpy and
# microbit-memcpy: the Cortex-M boards' with the firmware's own memcpy, src/memcpy.rs). Checksums are on
# everywhere; the boards print every point of their sweep, the host MTU 1500 and 9000.
#
#   bash scripts/per-byte.sh        # runs scripts/firmware.sh twice (stock, then SMOLTCP=patched)
#   STOCK_COST_LOGS=target/firmware bash scripts/per-byte.sh
#                                   # takes the stock cost logs of a firmware.sh run just made
#                                   # (CI's firmware job) and runs only the patched one
#
# target/firmware holds the patched build's images and tables afterwards.
set -euo pipefail
cd "$(dirname "$0")/.."
logs=$(mktemp -d)
trap 'rm -rf "$logs"' EXIT
mkdir "$logs/stock" "$logs/patched"

# --- The boards: each build's cost logs ---------------------------------------------------------
if [[ -n ${STOCK_COST_LOGS:-} ]]; then
    cp "$STOCK_COST_LOGS"/*-cost*.log "$logs/stock/"
else
    bash scripts/firmware.sh > "$logs/stock/firmware.out" 2>&1 || { cat "$logs/stock/firmware.out" >&2; exit 1; }
    cp target/firmware/*-cost*.log "$logs/stock/"
fi
SMOLTCP=patched bash scripts/firmware.sh > "$logs/patched/firmware.out" 2>&1 ||
    { cat "$logs/patched/firmware.out" >&2; exit 1; }
cp target/firmware/*-cost*.log "$logs/patched/"

# --- The host: callgrind over the transfer alone -----------------------------------------------
command -v valgrind > /dev/null || { apt-get update -qq && apt-get install -y -qq valgrind > /dev/null; }
cargo build --release --quiet -p halfclose-tools --bin bench
bash scripts/smoltcp-patched.sh build --release --quiet -p halfclose-tools --bin bench
target="${CARGO_TARGET_DIR:-target}"
bytes=$((4 << 20))
# per_byte BENCH MTU: instructions per byte of one side's transfer, 4 KiB socket buffers.
per_byte() {
    valgrind --tool=callgrind --toggle-collect='bench::ours*' --callgrind-out-file="$logs/cg" \
        "$1" --one ours "$2" on 4 > /dev/null 2>&1
    echo "$(sed -n 's/^summary: //p' "$logs/cg") / $bytes" | bc -l | xargs printf '%.2f'
}
for mtu in 1500 9000; do
    echo "per-byte host $mtu stock $(per_byte "$target/release/bench" "$mtu") patched $(per_byte "$target/patched/release/bench" "$mtu") (4096-byte socket buffers)"
done

# "cost: mtu M buffer B: 65536 bytes, N instructions, X.Y per byte, P polls"
points() { sed -n 's/^cost: mtu \([0-9]*\) buffer \([0-9]*\): .*, \([0-9.]*\) per byte, .*/\1 \2 \3/p' "$1"; }
# BOARD-memcpy: the board's cost image with the firmware's own memcpy (its `memcpy` feature).
for board in lm3s6965 microbit virt lm3s6965-memcpy microbit-memcpy; do
    case $board in *-memcpy) log=${board%-memcpy}-cost-memcpy.log ;; *) log=$board-cost.log ;; esac
    while read -r mtu buffer stock; do
        patched=$(points "$logs/patched/$log" | awk -v m="$mtu" -v b="$buffer" '$1 == m && $2 == b { print $3 }')
        [[ -n $patched ]] || { echo "per-byte.sh: no patched $board figure for MTU $mtu, buffer $buffer" >&2; exit 1; }
        echo "per-byte $board $mtu stock $stock patched $patched ($buffer-byte socket buffers)"
    done < <(points "$logs/stock/$log")
done
