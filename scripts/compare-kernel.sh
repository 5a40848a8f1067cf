#!/usr/bin/env bash
# The loopback example end to end against the kernel doing the same half-close transfer over
# 127.0.0.1, and against the copy floor, in one sitting: runs interleaved, medians and ratios.
#
#   bash scripts/compare-kernel.sh [SIZE_MIB] [RUNS]      (defaults: 256 MiB, 7 runs each)
#
# Files live on tmpfs (/dev/shm) so the disk is not what is measured, and are deleted at exit.
set -euo pipefail
cd "$(dirname "$0")/.."
size_mib=${1:-256}
runs=${2:-7}
port=${PORT:-7893}

cargo build --release --quiet --example loopback
cargo build --release --quiet -p halfclose-tools --bin lesson
bin="${CARGO_TARGET_DIR:-target}/release"
dir=$(mktemp -d /dev/shm/halfclose-compare.XXXXXX)
trap 'rm -rf "$dir"' EXIT
head -c $((size_mib << 20)) /dev/urandom > "$dir/file"

now() { date +%s.%N; }

ours() {
  "$bin/examples/loopback" "$dir/file" -o "$dir/receive.dat" > /dev/null
}

kernel() { # $1: the server's write size
  LESSON_TIMEOUT=60 "$bin/lesson" server --bind 127.0.0.1 --chunk "$1" "$port" "$dir/file" > /dev/null &
  local server=$!
  # The client retries until the server listens.
  for _ in $(seq 100); do
    if LESSON_TIMEOUT=60 "$bin/lesson" client 127.0.0.1 "$port" "$dir/receive.dat" > /dev/null 2>&1; then
      wait "$server"
      return 0
    fi
    sleep 0.01
  done
  kill "$server" 2> /dev/null || true
  echo "kernel pair failed" >&2
  return 1
}

floor() {
  cat "$dir/file" > "$dir/receive.dat"
}

declare -A times
for ((i = 0; i < runs; i++)); do
  for what in ours "kernel 1024" "kernel 65536" floor; do
    rm -f "$dir/receive.dat"
    start=$(now)
    $what
    end=$(now)
    cmp -s "$dir/file" "$dir/receive.dat" || { echo "$what: the copy differs" >&2; exit 1; }
    times[$what]+="$(echo "$end - $start" | bc) "
  done
done

median() { tr ' ' '\n' <<< "$1" | grep . | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
spread() { tr ' ' '\n' <<< "${times[$1]}" | grep . | sort -g | awk '{a[NR]=$1} END {printf "%.3f-%.3f", a[1], a[NR]}'; }
o=$(median "${times[ours]}")
k1=$(median "${times["kernel 1024"]}")
k64=$(median "${times["kernel 65536"]}")
f=$(median "${times[floor]}")
mbs() { echo "scale=0; $size_mib * 1048576 / $1 / 1000000" | bc; }

echo "$size_mib MiB, $runs runs each, interleaved, medians; $(nproc) CPUs, $(lscpu | sed -n 's/^Model name: *//p')"
echo
echo "| transfer | median s | min-max s | MB/s | ours is faster by |"
echo "|---|--:|--:|--:|--:|"
printf '| halfclose `loopback` example (smoltcp in memory, file to file) | %.3f | %s | %s | |\n' "$o" "$(spread ours)" "$(mbs "$o")"
printf '| kernel TCP over 127.0.0.1, 1024-byte writes | %.3f | %s | %s | %.2fx |\n' "$k1" "$(spread "kernel 1024")" "$(mbs "$k1")" "$(echo "$k1 / $o" | bc -l)"
printf '| kernel TCP over 127.0.0.1, 64 KiB writes | %.3f | %s | %s | %.2fx |\n' "$k64" "$(spread "kernel 65536")" "$(mbs "$k64")" "$(echo "$k64 / $o" | bc -l)"
printf '| copy floor: `cat FILE > receive.dat` | %.3f | %s | %s | ours takes %.2fx |\n' "$f" "$(spread floor)" "$(mbs "$f")" "$(echo "$o / $f" | bc -l)"
