#!/usr/bin/env bash
# Loss recovery over a Linux TAP device against the kernel's TCP: one file sent
#   ours -> kernel    our tap_server to the lesson's kernel client,
#   kernel -> ours    the lesson's kernel server to our tap_client,
#   kernel -> kernel  the lesson's kernel server to its kernel client, through the relay
#                     (tools/src/bin/relay.rs) between two TAP devices,
# with frames dropped at our device (`--drop`, both directions, the same seeds for every
# column) or, kernel -> kernel, at the relay (the same chance per frame each way, the same
# delay, the same seeds; its own draws), our programs built on stock smoltcp and on smoltcp
# with patches/ (the loss recovery of 0008-0010; scripts/smoltcp-patched.sh). Each figure is the
# receiving program's whole-process time in seconds, median and min-max over the seeds, the
# columns of one seed run in turn; "ours / kernel" is the ratio of the medians of ours -> kernel
# and kernel -> ours, "ours / kernel→kernel" that of ours -> kernel and kernel -> kernel.
# Prints a markdown table.
#
# kernel -> kernel is the measure of the kernel as a sender: in kernel -> ours the kernel's
# sender is held by our tap_client's receive window (64 KiB), not by its loss recovery. It
# does not depend on the smoltcp build: one column per loss.
#
#   bash scripts/tap-loss.sh [--size MIB] [--seeds N] [--delay MS] [--no-offload] [--no-stock]
#                            [--no-kk] [--cc NAME] [LOSS%...]
#                            (default: 2 MiB, 5 seeds, no delay, losses 0.1 1 3)
#
# --delay holds every frame MS ms at our device (and at the relay), each way (a round trip of
# twice MS).
# --no-offload runs our programs with `--no-offload`: the kernel then sends us frames of one
# segment each, as we send it, instead of up to 64 KiB (segmentation offload), so a frame
# dropped is a segment lost in both directions alike. (The kernels on the relay's devices
# always send frames of one segment: those devices have no offloads.)
# --no-kk leaves out the kernel -> kernel column.
# --cc NAME gives the kernel's sender that congestion control (the lesson server's `--cc`,
# TCP_CONGESTION on its connection; one of `sysctl net.ipv4.tcp_available_congestion_control`;
# `--cc default`: the machine's own, net.ipv4.tcp_congestion_control). Without it: cubic,
# Linux's built-in default, a loss-based control as smoltcp's are; a machine may have set
# another (BBR, which does not slow down for a random loss: docs/performance.md). A kernel
# without cubic gets its own default, and the script says so. The table's heading names it.
# Needs root, /dev/net/tun and iproute2 (else it says so and exits 0); everything runs in
# network namespaces that this script creates and deletes at exit, the files on /dev/shm.
# LOSS_PROFILE picks the build profile (default release). Exits non-zero if a copy differs or
# a program fails.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/lib/netns.sh
source scripts/lib/netns.sh

size=2 seeds=5 delay=0 stock=1 kk=1 cc=cubic offload=() losses=()
while (($#)); do
  case $1 in
    --size) size=$2; shift 2 ;;
    --seeds) seeds=$2; shift 2 ;;
    --delay) delay=$2; shift 2 ;;
    --no-stock) stock=0; shift ;;
    --no-offload) offload=(--no-offload); shift ;;
    --no-kk) kk=0; shift ;;
    --cc) cc=$2; shift 2 ;;
    -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) losses+=("$1"); shift ;;
  esac
done
((${#losses[@]})) || losses=(0.1 1 3)

if [[ $(id -u) != 0 || ! -e /dev/net/tun ]] || ! command -v ip > /dev/null; then
  echo "tap-loss.sh: skipped: needs root, /dev/net/tun and ip (iproute2)" >&2
  exit 0
fi

profile=${LOSS_PROFILE:-release}
sub=$([[ $profile == release ]] && echo release || echo debug)
target="${CARGO_TARGET_DIR:-$(pwd)/target}"
examples=(--example tap_server --example tap_client)
cargo build --profile "$profile" --quiet -p halfclose-tools --bin lesson --bin relay
builds=(patched)
bin_patched="$target/patched/$sub/examples"
bash scripts/smoltcp-patched.sh build --profile "$profile" --quiet "${examples[@]}"
if ((stock)); then
  builds=(stock patched)
  cargo build --profile "$profile" --quiet "${examples[@]}"
fi
bin_stock="$target/$sub/examples"
lesson="$target/$sub/lesson"
relay="$target/$sub/relay"
port=7891
dir=$(mktemp -d /dev/shm/halfclose-loss.XXXXXX)
ns="hcloss-$$" ns_a="hcloss-a$$" ns_b="hcloss-b$$"
cleanup() {
  local n
  for n in "$ns" "$ns_a" "$ns_b"; do ip netns del "$n" 2> /dev/null || true; done
  rm -rf "$dir"
}
trap cleanup EXIT
ns_tap "$ns"
if ((kk)); then ns_relay "$ns_a" "$ns_b"; fi
cc_args=()
if [[ $cc != default ]] && ! grep -qw -- "$cc" /proc/sys/net/ipv4/tcp_available_congestion_control; then
  echo "tap-loss.sh: the kernel has no congestion control \"$cc\" (it has: $(cat /proc/sys/net/ipv4/tcp_available_congestion_control)); the kernel's sender keeps its default" >&2
  cc=default
fi
if [[ $cc == default ]]; then
  cc=$(ip netns exec "$ns" sysctl -n net.ipv4.tcp_congestion_control)
else
  cc_args=(--cc "$cc")
fi

file=$dir/file
head -c $((size << 20)) /dev/urandom > "$file"

# Run the rest of the line, then print its wall time in seconds.
timed() {
  local start end
  start=$(date +%s%N)
  "$@" > "$dir/receiver.out" 2>&1 || { cat "$dir/receiver.out" >&2; return 1; }
  end=$(date +%s%N)
  printf '%d.%03d\n' $(((end - start) / 1000000000)) $(((end - start) % 1000000000 / 1000000))
}

# One run, printing its seconds: $1 the direction, $2 the build, $3 the loss, $4 the seed.
run() {
  local what=$1 build=$2 loss=$3 seed=$4 bin server secs relay_pid='' counts=''
  bin=$([[ $build == stock ]] && echo "$bin_stock" || echo "$bin_patched")
  local faults=(--drop "$loss" --seed "$seed" --delay "$delay" "${offload[@]}")
  case $what in
    ours-kernel)
      ip netns exec "$ns" "$bin/tap_server" --clients 1 --wait 60 "${faults[@]}" "$file" > "$dir/server.out" 2>&1 &
      server=$!
      await "grep -q 'tap_server: serving' $dir/server.out"
      secs=$(LESSON_TIMEOUT=300 timed ip netns exec "$ns" "$lesson" client 192.168.69.1 $port "$dir/copy")
      ;;
    kernel-ours)
      LESSON_TIMEOUT=300 ip netns exec "$ns" "$lesson" server --bind 192.168.69.100 --chunk 65536 "${cc_args[@]}" $port "$file" > "$dir/server.out" 2>&1 &
      server=$!
      await "ip netns exec $ns ss -Hltn 'sport = :$port' | grep -q ."
      secs=$(timed ip netns exec "$ns" "$bin/tap_client" --peer 192.168.69.100 "${faults[@]}" -o "$dir/copy")
      ;;
    kernel-kernel)
      # A relay of its own per run, with this run's faults; gone however the run ends (each run
      # is a subshell of its own, `$(run ...)`: this trap is that subshell's).
      "$relay" --a tapa --a-netns "$ns_a" --b tapb --b-netns "$ns_b" --drop "$loss" --seed "$seed" --delay "$delay" > "$dir/relay.out" 2>&1 &
      relay_pid=$!
      # shellcheck disable=SC2064 # this relay's pid, now
      trap "kill $relay_pid 2> /dev/null || true" EXIT
      await "grep -q 'relay: forwarding' $dir/relay.out"
      LESSON_TIMEOUT=300 ip netns exec "$ns_a" "$lesson" server --bind 192.168.71.1 --chunk 65536 "${cc_args[@]}" $port "$file" > "$dir/server.out" 2>&1 &
      server=$!
      await "ip netns exec $ns_a ss -Hltn 'sport = :$port' | grep -q ."
      secs=$(LESSON_TIMEOUT=300 timed ip netns exec "$ns_b" "$lesson" client 192.168.71.1 $port "$dir/copy")
      ;;
  esac
  wait "$server" || { cat "$dir/server.out" >&2; echo "tap-loss.sh: $what${build:+ $build}: the server failed" >&2; exit 1; }
  if [[ -n $relay_pid ]]; then
    # The client's end is gone once the server has acked its FIN (retransmitted if lost): until
    # then the link stays up, or a socket left retransmitting into a link without carrier would
    # leave the neighbour entry unresolved, and the next run's first frame would wait up to 1 s
    # for its next ARP request.
    await "! ip netns exec $ns_b ss -Htn state all 'dport = :$port' | grep -q ."
    kill "$relay_pid"
    wait "$relay_pid" || { cat "$dir/relay.out" >&2; echo "tap-loss.sh: $what: the relay failed" >&2; exit 1; }
    # "tapa -> tapb 1400 sent 14 dropped; tapb -> tapa ...": the frames each way.
    counts=$(sed -n 's/^relay: \(tap. -> tap.\): \([0-9]*\) forwarded, \([0-9]*\) dropped.*/\1 \2 sent \3 dropped/p' "$dir/relay.out" | paste -sd ';' | sed 's/;/; /')
    counts=" ($counts)"
  fi
  cmp -s "$file" "$dir/copy" || { echo "tap-loss.sh: $what${build:+ $build} loss $loss seed $seed: the copy differs" >&2; exit 1; }
  rm -f "$dir/copy"
  echo "tap-loss.sh: $loss % seed $seed $what${build:+ $build}: $secs s$counts" >&2
  echo "$secs"
}

# "median (min-max)" of the seconds given.
summary() {
  python3 - "$@" << 'PY'
import statistics, sys
t = sorted(map(float, sys.argv[1:]))
print(f"{statistics.median(t):.2f} ({t[0]:.2f}-{t[-1]:.2f})")
PY
}

# "x.x" ratio of the medians of two lists of seconds ("a b c"): $1 over $2.
ratio() {
  python3 - "$1" "$2" << 'PY'
import statistics, sys
a, b = (statistics.median(map(float, s.split())) for s in sys.argv[1:])
print(f"{a / b:.1f}x")
PY
}

where="at our device"
if ((kk)); then where+=" (kernel → kernel: at the relay)"; fi
echo "Seconds, median (min-max) of $seeds seeds (1-$seeds), $size MiB, loss $where each way, round trip +$((2 * delay)) ms, the kernel sender's congestion control $cc; the receiver's whole-process time"
echo
header="| loss |" rule="|--:|"
if ((kk)); then header+=" kernel → kernel |" rule+="--:|"; fi
for b in "${builds[@]}"; do
  header+=" ours → kernel, $b | kernel → ours, $b | ours / kernel, $b |"
  rule+="--:|--:|--:|"
  if ((kk)); then header+=" ours / kernel→kernel, $b |" rule+="--:|"; fi
done
echo "$header"
echo "$rule"
for loss in "${losses[@]}"; do
  declare -A t=()
  for seed in $(seq "$seeds"); do
    if ((kk)); then t[kk]+="$(run kernel-kernel '' "$loss" "$seed") "; fi
    for b in "${builds[@]}"; do
      t[ok-$b]+="$(run ours-kernel "$b" "$loss" "$seed") "
      t[ko-$b]+="$(run kernel-ours "$b" "$loss" "$seed") "
    done
  done
  line="| $loss % |"
  # shellcheck disable=SC2086
  if ((kk)); then line+=" $(summary ${t[kk]}) |"; fi
  for b in "${builds[@]}"; do
    # shellcheck disable=SC2086
    line+=" $(summary ${t[ok-$b]}) | $(summary ${t[ko-$b]}) | $(ratio "${t[ok-$b]}" "${t[ko-$b]}") |"
    if ((kk)); then line+=" $(ratio "${t[ok-$b]}" "${t[kk]}") |"; fi
  done
  echo "$line"
  unset t
done
