#!/usr/bin/env bash
# Throughput over a Linux TAP device against the kernel's TCP, beside the kernel against itself:
# for each MTU given, one file from tmpfs sent
#   ours -> kernel    our tap_server to the lesson's kernel client,
#   kernel -> ours    the lesson's kernel server (64 KiB writes) to our tap_client,
#   veth              the lesson's two programs over a veth pair between two namespaces,
# and the same two TAP runs with smoltcp's own `phy::TunTapInterface` under the same programs
# (`--device smoltcp`). Each figure is the whole-process time of the receiving program, median
# and min-max of RUNS runs taken in turn (so a noisy moment hits every column alike); every copy
# is compared with the file. Prints a markdown table (docs/tables/tap-throughput.md is its output).
#
#   bash scripts/tap-throughput.sh [--size MIB] [--runs N] [--no-stock] [MTU...]
#                                  (default: 128 MiB, 3 runs, MTUs 1500 9000 65521)
#
# Needs root, /dev/net/tun and iproute2; everything runs in network namespaces this script
# creates and deletes at exit, the files on /dev/shm. TPUT_PROFILE picks the build profile
# (default release; CI uses `test`, which `cargo test` has built). Exits non-zero if a copy
# differs or a program fails.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/lib/netns.sh
source scripts/lib/netns.sh

size=128 runs=3 stock=1 mtus=()
while (($#)); do
  case $1 in
    --size) size=$2; shift 2 ;;
    --runs) runs=$2; shift 2 ;;
    --no-stock) stock=0; shift ;;
    -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) mtus+=("$1"); shift ;;
  esac
done
((${#mtus[@]})) || mtus=(1500 9000 65521)

if [[ $(id -u) != 0 || ! -e /dev/net/tun ]] || ! command -v ip > /dev/null; then
  echo "tap-throughput.sh: skipped: needs root, /dev/net/tun and ip (iproute2)" >&2
  exit 0
fi

profile=${TPUT_PROFILE:-release}
cargo build --profile "$profile" --quiet --example tap_server --example tap_client
cargo build --profile "$profile" --quiet -p halfclose-tools --bin lesson
bin="${CARGO_TARGET_DIR:-target}/$([[ $profile == release ]] && echo release || echo debug)"
port=7891
dir=$(mktemp -d /dev/shm/halfclose-tput.XXXXXX)
tap_ns="hctput-tap-$$" a_ns="hctput-a-$$" b_ns="hctput-b-$$"
cleanup() {
  for ns in "$tap_ns" "$a_ns" "$b_ns"; do ip netns del "$ns" 2> /dev/null || true; done
  rm -rf "$dir"
}
trap cleanup EXIT

ns_tap "$tap_ns"
ns_veth "$a_ns" "$b_ns" hct-a$$ hct-b$$

file=$dir/file
head -c $((size << 20)) /dev/urandom > "$file"

# Run the rest of the line, then print its wall time in seconds.
timed() {
  local start end
  start=$(date +%s%N)
  "$@" > "$dir/receiver.out" 2>&1 || { cat "$dir/receiver.out" >&2; return 1; }
  end=$(date +%s%N)
  printf '%d.%09d\n' $(((end - start) / 1000000000)) $(((end - start) % 1000000000))
}

# Check the copy, then remove it.
check() {
  cmp -s "$file" "$dir/copy" || { echo "tap-throughput.sh: $1: the copy differs" >&2; exit 1; }
  rm -f "$dir/copy"
}

# One run of one column ($1), printing its seconds; $2: our programs' extra options.
run() {
  local what=$1 extra=${2:-} server secs
  case $what in
    ours-kernel)
      # shellcheck disable=SC2086
      ip netns exec "$tap_ns" "$bin/examples/tap_server" --clients 1 --wait 30 $extra "$file" > "$dir/server.out" 2>&1 &
      server=$!
      await "grep -q 'tap_server: serving' $dir/server.out"
      secs=$(LESSON_TIMEOUT=30 timed ip netns exec "$tap_ns" "$bin/lesson" client 192.168.69.1 $port "$dir/copy")
      ;;
    kernel-ours)
      LESSON_TIMEOUT=30 ip netns exec "$tap_ns" "$bin/lesson" server --bind 192.168.69.100 --chunk 65536 $port "$file" > "$dir/server.out" 2>&1 &
      server=$!
      await "ip netns exec $tap_ns ss -Hltn 'sport = :$port' | grep -q ."
      # shellcheck disable=SC2086
      secs=$(timed ip netns exec "$tap_ns" "$bin/examples/tap_client" --peer 192.168.69.100 $extra -o "$dir/copy")
      ;;
    veth)
      LESSON_TIMEOUT=30 ip netns exec "$a_ns" "$bin/lesson" server --bind 192.168.70.1 --chunk 65536 $port "$file" > "$dir/server.out" 2>&1 &
      server=$!
      await "ip netns exec $a_ns ss -Hltn 'sport = :$port' | grep -q ."
      secs=$(LESSON_TIMEOUT=30 timed ip netns exec "$b_ns" "$bin/lesson" client 192.168.70.1 $port "$dir/copy")
      ;;
  esac
  wait "$server" || { cat "$dir/server.out" >&2; echo "tap-throughput.sh: $what: the server failed" >&2; exit 1; }
  check "$what $extra"
  # Each run on stderr, the table alone on stdout.
  echo "tap-throughput.sh: MTU $mtu $what $extra: $secs s" >&2
  echo "$secs"
}

# "median (min-max)" in MB/s of the seconds given.
rate() {
  python3 - "$size" "$@" << 'PY'
import statistics, sys
mb = int(sys.argv[1]) * 1048576 / 1e6
r = sorted(mb / float(s) for s in sys.argv[2:])
print(f"{statistics.median(r):.0f} ({r[0]:.0f}-{r[-1]:.0f})")
PY
}

# "x.xx" ratio of two medians of seconds: $1 the baseline's list, $2 ours (as "a b c").
ratio() {
  python3 - "$1" "$2" << 'PY'
import statistics, sys
base, ours = (statistics.median(map(float, a.split())) for a in sys.argv[1:])
print(f"{base / ours:.2f}x")
PY
}

cols=(ours-kernel kernel-ours veth)
header="| MTU | ours → kernel | kernel → ours | kernel → kernel (veth) | ours / veth |"
rule="|--:|--:|--:|--:|--:|"
if ((stock)); then
  header+=" smoltcp TunTap → kernel | kernel → smoltcp TunTap | ours / TunTap |"
  rule+="--:|--:|--:|"
fi
echo "MB/s, median (min-max) of $runs runs, $size MiB from tmpfs, whole-process time of the receiver"
echo
echo "$header"
echo "$rule"
for mtu in "${mtus[@]}"; do
  ip -n "$tap_ns" link set tap0 mtu "$mtu"
  ip -n "$a_ns" link set hct-a$$ mtu "$mtu"
  ip -n "$b_ns" link set hct-b$$ mtu "$mtu"
  declare -A t=()
  for _ in $(seq "$runs"); do
    for c in "${cols[@]}"; do t[$c]+="$(run "$c") "; done
    if ((stock)); then
      t[stock-ok]+="$(run ours-kernel "--device smoltcp") "
      t[stock-ko]+="$(run kernel-ours "--device smoltcp") "
    fi
  done
  # shellcheck disable=SC2086
  line="| $mtu | $(rate ${t[ours-kernel]}) | $(rate ${t[kernel-ours]}) | $(rate ${t[veth]}) | $(ratio "${t[veth]}" "${t[ours-kernel]}") / $(ratio "${t[veth]}" "${t[kernel-ours]}") |"
  if ((stock)); then
    # shellcheck disable=SC2086
    line+=" $(rate ${t[stock-ok]}) | $(rate ${t[stock-ko]}) | $(ratio "${t[stock-ok]}" "${t[ours-kernel]}") / $(ratio "${t[stock-ko]}" "${t[kernel-ours]}") |"
  fi
  echo "$line"
  unset t
done
