#!/usr/bin/env bash
# Instructions per byte of the in-memory transfer, ours against smoltcp's phy::Loopback, at an
# embedded-like setting (MTU 1500, checksums on, 4 KiB socket buffers, 4 MiB). Instruction counts
# do not depend on how busy the machine is.
#
#   bash scripts/callgrind.sh
set -euo pipefail
cd "$(dirname "$0")/.."
command -v valgrind > /dev/null || { apt-get update -qq && apt-get install -y -qq valgrind > /dev/null; }
cargo build --release --quiet --example bench
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
bytes=$((4 << 20))
echo "| transfer (4 MiB, MTU 1500, checksums on, 4 KiB buffers) | instructions | per byte |"
echo "|---|--:|--:|"
for which in ours theirs; do
  valgrind --tool=callgrind --callgrind-out-file="$out/$which" target/release/examples/bench --one "$which" > /dev/null 2>&1
  ir=$(sed -n 's/^summary: //p' "$out/$which")
  case $which in
    ours) name="halfclose Server/Client over halfclose::device::Loopback" ;;
    theirs) name="raw smoltcp sockets over smoltcp::phy::Loopback" ;;
  esac
  printf '| %s | %s | %.1f |\n' "$name" "$ir" "$(echo "$ir / $bytes" | bc -l)"
done
