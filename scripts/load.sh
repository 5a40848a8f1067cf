#!/usr/bin/env bash
# Many kernel-TCP clients against our tap_server (smoltcp on a TAP device, pool and backlog) and
# against the kernel's own server (`lesson server`, over a veth pair), scenario by scenario, each
# run RUNS times; prints a markdown table (docs/tables/load.md is its output).
#
#   bash scripts/load.sh [RUNS]      (default 3; needs root, /dev/net/tun and iproute2)
#
# Everything runs inside network namespaces this script creates and deletes at exit; files live
# on tmpfs (/dev/shm).
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-3}
port=7891

cargo build --release --quiet --example tap_server
cargo build --release --quiet -p halfclose-tools --bin load --bin lesson
bin="${CARGO_TARGET_DIR:-target}/release"
dir=$(mktemp -d /dev/shm/halfclose-load.XXXXXX)
tap_ns="hcload-tap-$$"
srv_ns="hcload-srv-$$"
cli_ns="hcload-cli-$$"
cleanup() {
  for ns in "$tap_ns" "$srv_ns" "$cli_ns"; do ip netns del "$ns" 2> /dev/null || true; done
  rm -rf "$dir"
}
trap cleanup EXIT

# Ours: a TAP device whose kernel side (and the clients) is 192.168.69.100, our stack .1.
ip netns add "$tap_ns"
ip -n "$tap_ns" link set lo up
ip -n "$tap_ns" tuntap add dev tap0 mode tap
ip -n "$tap_ns" link set tap0 up
ip -n "$tap_ns" addr add 192.168.69.100/24 dev tap0
# The kernel's: the server in one namespace, the clients in another, a veth pair between them.
ip netns add "$srv_ns"
ip netns add "$cli_ns"
ip -n "$srv_ns" link set lo up
ip -n "$cli_ns" link set lo up
ip link add hcl-s$$ netns "$srv_ns" type veth peer name hcl-c$$ netns "$cli_ns"
ip -n "$srv_ns" addr add 192.168.70.1/24 dev hcl-s$$
ip -n "$cli_ns" addr add 192.168.70.2/24 dev hcl-c$$
ip -n "$srv_ns" link set hcl-s$$ up
ip -n "$cli_ns" link set hcl-c$$ up

head -c $((1 << 20)) /dev/urandom > "$dir/1m"
head -c $((10 << 10)) /dev/urandom > "$dir/10k"

# Wait (at most 5 s) until `$1` (a command) succeeds.
await() {
  for _ in $(seq 500); do
    if eval "$1" > /dev/null 2>&1; then return 0; fi
    sleep 0.01
  done
  echo "load.sh: gave up waiting for: $1" >&2
  return 1
}

# One run: $1 ours|kernel, $2 the load mode (--at-once or --sequential), $3 clients, $4 file.
# Prints the load tool's summary.
run() {
  local who=$1 mode=$2 n=$3 file=$4 server out=$dir/server.out
  if [[ $who == ours ]]; then
    ip netns exec "$tap_ns" "$bin/examples/tap_server" --clients "$n" --wait 30 "$file" > "$out" 2>&1 &
    server=$!
    await "grep -q 'tap_server: serving' $out"
    ip netns exec "$tap_ns" "$bin/load" "$mode" "$n" --expect "$file" 192.168.69.1 $port || true
  else
    LESSON_TIMEOUT=30 ip netns exec "$srv_ns" "$bin/lesson" server --bind 192.168.70.1 --clients "$n" $port "$file" > "$out" 2>&1 &
    server=$!
    await "ip netns exec $srv_ns ss -Hltn 'sport = :$port' | grep -q ."
    ip netns exec "$cli_ns" "$bin/load" "$mode" "$n" --expect "$file" 192.168.70.1 $port || true
  fi
  wait "$server" || echo "load.sh: the $who server failed: $(tail -1 "$out")" >&2
}

# "lo-hi" of the numbers on stdin (or one number when they are the same).
range() { sort -g | awk '{a[NR]=$1} END {if (a[1] == a[NR]) print a[1]; else print a[1] "–" a[NR]}'; }

scenarios=(
  "--at-once 8 1m|8 at once, 1 MiB each"
  "--at-once 64 1m|64 at once, 1 MiB each"
  "--sequential 100 1m|100 one after another, 1 MiB each"
  "--sequential 1000 10k|1,000 one after another, 10 KiB each"
)

echo "$runs runs of each; ranges are over the runs; $(nproc) CPUs, $(lscpu | sed -n 's/^Model name: *//p')"
echo
echo "| scenario | server | served | median connect ms | p99 connect ms | all served within s |"
echo "|---|---|--:|--:|--:|--:|"
for scenario in "${scenarios[@]}"; do
  read -r mode n file <<< "${scenario%%|*}"
  for who in ours kernel; do
    : > "$dir/summaries"
    for ((i = 0; i < runs; i++)); do run "$who" "$mode" "$n" "$dir/$file" >> "$dir/summaries"; done
    served=$(sed -n 's/^served \([0-9]*\) of .*/\1/p' "$dir/summaries" | range)
    median=$(sed -n 's/^connect: median \([0-9.]*\) ms.*/\1/p' "$dir/summaries" | range)
    p99=$(sed -n 's/.*, p99 \([0-9.]*\) ms.*/\1/p' "$dir/summaries" | range)
    all=$(sed -n 's/^all done within \([0-9.]*\) s/\1/p' "$dir/summaries" | range)
    label=$([[ $who == ours ]] && echo "ours (tap_server, pool 8)" || echo "kernel (lesson server, one at a time)")
    echo "| ${scenario#*|} | $label | $served of $n | $median | $p99 | $all |"
    grep '^failed' "$dir/summaries" | sort | uniq -c | sed 's/^/  /' >&2 || true
  done
done
