#!/usr/bin/env bash
# Many kernel-TCP clients against our tap_server (smoltcp on a TAP device, pool and backlog) and
# against the kernel's own server (`lesson server`, over a veth pair), scenario by scenario, each
# run RUNS times; prints a markdown table (docs/tables/load.md is its output).
#
#   bash scripts/load.sh [RUNS]      (default 3; needs root, /dev/net/tun and iproute2)
#
# Exits non-zero if any run of any scenario served fewer clients than it started. LOAD_PROFILE
# picks the build profile (default release, as the table in the docs; CI uses `test`, whose
# programs `cargo test` has already built). SMOLTCP=patched runs the tap_server built against
# smoltcp with patches/ applied (scripts/smoltcp-patched.sh), in target/patched. FAULTS gives
# tap_server faults at its device (e.g. FAULTS="--drop 3 --delay 5 --seed 1": a lossy link
# with a 10 ms round trip) and runs ours alone: the kernel's server has no lossy link to run on.
#
# Everything runs inside network namespaces this script creates and deletes at exit; files live
# on tmpfs (/dev/shm).
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/lib/netns.sh
source scripts/lib/netns.sh
runs=${1:-3}
port=7891

profile=${LOAD_PROFILE:-release}
cargo build --profile "$profile" --quiet -p halfclose-tools --bin load --bin lesson
# Cargo puts the test profile's programs where the dev profile's go.
sub=$([[ $profile == release ]] && echo release || echo debug)
bin="${CARGO_TARGET_DIR:-target}/$sub"
ours_server="$bin/examples/tap_server"
if [[ ${SMOLTCP:-stock} == patched ]]; then
  bash scripts/smoltcp-patched.sh build --profile "$profile" --quiet --example tap_server
  ours_server="${CARGO_TARGET_DIR:-target}/patched/$sub/examples/tap_server"
else
  cargo build --profile "$profile" --quiet --example tap_server
fi
short=0
dir=$(mktemp -d /dev/shm/halfclose-load.XXXXXX)
tap_ns="hcload-tap-$$"
srv_ns="hcload-srv-$$"
cli_ns="hcload-cli-$$"
cleanup() {
  for ns in "$tap_ns" "$srv_ns" "$cli_ns"; do ip netns del "$ns" 2> /dev/null || true; done
  rm -rf "$dir"
}
trap cleanup EXIT

# Ours: a TAP device whose kernel side (and the clients) is 192.168.69.100, our stack .1. The
# kernel's: the server in one namespace, the clients in another, a veth pair between them.
ns_tap "$tap_ns"
ns_veth "$srv_ns" "$cli_ns" hcl-s$$ hcl-c$$

head -c $((1 << 20)) /dev/urandom > "$dir/1m"
head -c $((10 << 10)) /dev/urandom > "$dir/10k"

# One run: $1 ours|kernel, $2 the load mode (--at-once or --sequential), $3 clients, $4 file,
# then the load tool's other options. Prints the load tool's summary.
run() {
  local who=$1 mode=$2 n=$3 file=$4 server out=$dir/server.out serve=$3
  shift 4
  # tap_server counts the forged handshakes it takes back as failed clients: under a flood it
  # serves for ever (0) and is stopped once the load tool is done.
  [[ " $* " == *" --flood "* ]] && serve=0
  if [[ $who == ours ]]; then
    # shellcheck disable=SC2086 # FAULTS is a list of options
    ip netns exec "$tap_ns" "$ours_server" --clients "$serve" --wait 30 ${FAULTS:-} "$file" > "$out" 2>&1 &
    server=$!
    await "grep -q 'tap_server: serving' $out"
    ip netns exec "$tap_ns" "$bin/load" "$mode" "$n" "$@" --expect "$file" 192.168.69.1 $port || true
  else
    LESSON_TIMEOUT=30 ip netns exec "$srv_ns" "$bin/lesson" server --bind 192.168.70.1 --clients "$n" $port "$file" > "$out" 2>&1 &
    server=$!
    await "ip netns exec $srv_ns ss -Hltn 'sport = :$port' | grep -q ."
    ip netns exec "$cli_ns" "$bin/load" "$mode" "$n" "$@" --expect "$file" 192.168.70.1 $port || true
  fi
  if ((serve == 0)); then
    kill "$server" 2> /dev/null || true
    wait "$server" || true
  else
    wait "$server" || echo "load.sh: the $who server failed: $(tail -1 "$out")" >&2
    # Under faults, what the server counted: a client cut by its defences shows here as failed.
    [[ -z ${FAULTS:-} || $who != ours ]] || grep -h '^tap_server: served' "$out" >&2 || true
  fi
}

# "lo-hi" of the numbers on stdin (or one number when they are the same).
range() { sort -g | awk '{a[NR]=$1} END {if (a[1] == a[NR]) print a[1]; else print a[1] "–" a[NR]}'; }

scenarios=(
  "--at-once 8 1m|8 at once, 1 MiB each"
  "--at-once 64 1m|64 at once, 1 MiB each"
  "--sequential 100 1m|100 one after another, 1 MiB each"
  "--sequential 1000 10k|1,000 one after another, 10 KiB each"
  "--at-once 8 1m --flood 1000|8 at once, 1 MiB each, through 1,000 forged SYNs/s"
)

echo "$runs runs of each; ranges are over the runs; $(nproc) CPUs, $(lscpu | sed -n 's/^Model name: *//p')"
echo
echo "| scenario | server | served | median connect ms | p99 connect ms | all served within s |"
echo "|---|---|--:|--:|--:|--:|"
for scenario in "${scenarios[@]}"; do
  read -r mode n file more <<< "${scenario%%|*}"
  whos=(ours kernel)
  [[ -z ${FAULTS:-} ]] || whos=(ours)
  for who in "${whos[@]}"; do
    : > "$dir/summaries"
    for ((i = 0; i < runs; i++)); do run "$who" "$mode" "$n" "$dir/$file" $more >> "$dir/summaries"; done
    served=$(sed -n 's/^served \([0-9]*\) of .*/\1/p' "$dir/summaries" | range)
    median=$(sed -n 's/^connect: median \([0-9.]*\) ms.*/\1/p' "$dir/summaries" | range)
    p99=$(sed -n 's/.*, p99 \([0-9.]*\) ms.*/\1/p' "$dir/summaries" | range)
    all=$(sed -n 's/^all done within \([0-9.]*\) s/\1/p' "$dir/summaries" | range)
    label=$([[ $who == ours ]] && echo "ours (tap_server, pool 8${FAULTS:+, $FAULTS})" || echo "kernel (lesson server, one at a time)")
    echo "| ${scenario#*|} | $label | $served of $n | $median | $p99 | $all |"
    while read -r got; do ((got == n)) || short=$((short + 1)); done < <(sed -n 's/^served \([0-9]*\) of .*/\1/p' "$dir/summaries")
    (($(grep -c '^served ' "$dir/summaries") == runs)) || short=$((short + 1))
    grep '^failed' "$dir/summaries" | sort | uniq -c | sed 's/^/  /' >&2 || true
  done
done
if ((short)); then
  echo "load.sh: $short run(s) served fewer clients than they started (or printed no summary)" >&2
  exit 1
fi
