#!/usr/bin/env bash
# Instructions per byte of the in-memory transfer, ours against smoltcp's phy::Loopback (the two
# sides of tools/src/bin/bench.rs), counted by callgrind over the transfer alone (building the file is
# left out). Instruction counts do not depend on how busy the machine is; they do not see cache
# misses, which wall-clock runs on a quiet machine do.
#
#   bash scripts/callgrind.sh          # 4 MiB at an embedded-like setting: MTU 1500, checksums
#                                      # on, 4 KiB socket buffers
#   bash scripts/callgrind.sh --grid   # every point of the bench's grid, and the geometric mean
#   SMOLTCP=patched bash scripts/callgrind.sh [--grid]
#                                      # the same with smoltcp's patches/ on both sides
set -euo pipefail
cd "$(dirname "$0")/.."
command -v valgrind > /dev/null || { apt-get update -qq && apt-get install -y -qq valgrind > /dev/null; }
# SMOLTCP=patched: both sides on smoltcp with patches/ applied (scripts/smoltcp-patched.sh), so
# that the ratio compares the same smoltcp.
if [[ ${SMOLTCP:-stock} == patched ]]; then
  bash scripts/smoltcp-patched.sh build --release --quiet -p halfclose-tools --bin bench
  bench="${CARGO_TARGET_DIR:-target}/patched/release/bench"
else
  cargo build --release --quiet -p halfclose-tools --bin bench
  bench="${CARGO_TARGET_DIR:-target}/release/bench"
fi
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
bytes=$((4 << 20))

# Instructions of one side's transfer: count WHICH MTU on|off KiB
count() {
  valgrind --tool=callgrind --toggle-collect="bench::$1*" --callgrind-out-file="$out/cg" \
    "$bench" --one "$@" > /dev/null 2>&1
  sed -n 's/^summary: //p' "$out/cg"
}

if [ "${1:-}" != --grid ]; then
  echo "| transfer (4 MiB, MTU 1500, checksums on, 4 KiB buffers) | instructions | per byte |"
  echo "|---|--:|--:|"
  for which in ours theirs; do
    ir=$(count "$which" 1500 on 4)
    case $which in
      ours) name="halfclose Server/Client over halfclose::device::Loopback" ;;
      theirs) name="raw smoltcp sockets over smoltcp::phy::Loopback" ;;
    esac
    printf '| %s | %s | %.2f |\n' "$name" "$ir" "$(echo "$ir / $bytes" | bc -l)"
  done
  exit 0
fi

echo "| MTU | checksums | buffers | ours instructions/byte | smoltcp Loopback instructions/byte | theirs / ours |"
echo "|--:|---|--:|--:|--:|--:|"
logsum=0
points=0
for mtu in 1500 9000 65535; do
  for checksums in on off; do
    for kib in 4 64 256; do
      ours=$(count ours "$mtu" "$checksums" "$kib")
      theirs=$(count theirs "$mtu" "$checksums" "$kib")
      ratio=$(echo "$theirs / $ours" | bc -l)
      logsum=$(echo "$logsum + l($ratio)" | bc -l)
      points=$((points + 1))
      printf '| %s | %s | %s KiB | %.2f | %.2f | %.2f |\n' "$mtu" "$checksums" "$kib" \
        "$(echo "$ours / $bytes" | bc -l)" "$(echo "$theirs / $bytes" | bc -l)" "$ratio"
    done
  done
done
printf '\nGeometric mean of theirs / ours over %s points: %.2f\n' "$points" \
  "$(echo "e($logsum / $points)" | bc -l)"
