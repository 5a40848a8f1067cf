#!/usr/bin/env bash
# Proof that the smoltcp fixes in patches/ work: the reproductions in tests/smoltcp_bugs.rs
# fail against stock smoltcp 0.14 and pass against smoltcp with the patches applied, and
# smoltcp's own TCP socket tests still pass with the patches.
#
# Stock smoltcp stays what `cargo test` uses: the patched copy lives in a temporary directory
# and is swapped in for one command at a time with `--config patch.crates-io.smoltcp.path=...`
# (Cargo.lock is restored afterwards). The source is the registry copy cargo has already
# downloaded for this project; smoltcp's own tests need its dev-dependencies, which cargo
# fetches (pinned by smoltcp's Cargo.lock) if they are not already there.
#
#   bash scripts/smoltcp-fixes.sh            # exit 0: stock fails, patched passes
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
# The copy of smoltcp is built outside this tree: with this project's pinned toolchain too.
if command -v rustup >/dev/null 2>&1; then
  RUSTUP_TOOLCHAIN=$(sed -n 's/^channel *= *"\(.*\)"/\1/p' rust-toolchain.toml)
  export RUSTUP_TOOLCHAIN
fi

# The smoltcp this crate depends on (0.14.x; the lock may hold others, e.g. embassy-net's).
# shellcheck source=scripts/lib/smoltcp.sh
source scripts/lib/smoltcp.sh
src=$(smoltcp_source)
version=${src##*/smoltcp-}
echo "smoltcp $version from $src"

tmp=$(mktemp -d)
cp Cargo.lock "$tmp/Cargo.lock.ours"
cleanup() {
  cp "$tmp/Cargo.lock.ours" "$root/Cargo.lock"
  rm -rf "$tmp"
}
trap cleanup EXIT

# Two copies, both with the reproductions of docs/upstream/*.rs added to smoltcp's own tests;
# one of them patched. A reproduction whose first line is `// smoltcp: PATH` goes at the end of
# that test file; the others are written for `mod test` in src/socket/tcp.rs. One whose second
# line is `// New API: Socket::NAME, ...` calls what a patch adds: it goes into the patched copy
# alone, and stock's part is to have no `fn NAME`.
# The test path (module::name) of reproduction $1 in smoltcp.
own_test() {
  local name file
  name=$(sed -n 's/^fn \(upstream_[a-z0-9_]*\)().*/\1/p' "$1")
  file=$(sed -n '1s|^// smoltcp: src/\(.*\)\.rs$|\1|p' "$1")
  if [ -n "$file" ]; then echo "${file//\//::}::$name"; else echo "socket::tcp::test::$name"; fi
}
new_api() { sed -n '2s|^// New API: Socket::\([a-z_]*\),.*|\1|p' "$1"; }
# add_reproductions COPY NEW-API(yes|no): the reproductions of docs/upstream/ that call (or not)
# what a patch adds, into COPY's tests.
add_reproductions() {
  local copy=$1 api=$2 t file
  sed -i '$ d' "$copy/src/socket/tcp.rs" # the closing brace of `mod test`
  for t in docs/upstream/*.rs; do
    if [ -n "$(new_api "$t")" ]; then [ "$api" = yes ] || continue; else [ "$api" = no ] || continue; fi
    file=$(sed -n '1s|^// smoltcp: \(src/.*\.rs\)$|\1|p' "$t")
    if [ -n "$file" ]; then
      tail -n +2 "$t" >>"$copy/$file"
    else
      sed 's/^/    /' "$t" >>"$copy/src/socket/tcp.rs"
    fi
  done
  echo "}" >>"$copy/src/socket/tcp.rs"
}
cp -r "$src" "$tmp/stock"
add_reproductions "$tmp/stock" no
cp -r "$tmp/stock" "$tmp/smoltcp"
for p in patches/*.patch; do
  echo "applying $p"
  patch --quiet -p1 -d "$tmp/smoltcp" < "$p"
done
add_reproductions "$tmp/smoltcp" yes

target="${CARGO_TARGET_DIR:-$root/target}"
# Our tests against the patched copy share the target directory with `cargo test`: the copy is a
# path package outside this workspace, which cargo names by its whole path, so its build outputs
# (and those of every crate above it) never take the place of stock smoltcp's from the registry,
# and every other dependency is reused instead of built again.
patched=(--config "patch.crates-io.smoltcp.path=\"$tmp/smoltcp\"")
failures=0

# run LABEL EXPECT(pass|fail) CARGO-ARGS...: one test, its outcome checked.
run() {
  local label=$1 expect=$2 outcome
  shift 2
  if "$@" >"$tmp/log" 2>&1; then outcome=pass; else outcome=fail; fi
  if [ "$outcome" = "$expect" ]; then
    printf '  ok    %-8s %s (%s, as expected)\n' "$outcome" "$label" "$expect"
    if [ "$outcome" = pass ]; then grep '^test result' "$tmp/log" | sed 's/^/          /' || true; fi
  else
    printf '  WRONG %-8s %s (expected %s)\n' "$outcome" "$label" "$expect"
    tail -n 30 "$tmp/log"
    failures=$((failures + 1))
  fi
}

# LABEL|STOCK-TEST|UPSTREAM-TEST, each test by its full path (module::name): `--exact` below.
bugs=(
  "fin_at_window_edge|window_edge::stock_smoltcp_reads_a_short_file_when_its_scaled_window_shrinks|window_edge::upstream_fin_beyond_the_receive_window_is_not_accepted"
  "fin_stall|lone_fin_stall::stock_smoltcp_never_resends_a_lost_lone_fin_after_three_duplicate_acks|lone_fin_stall::upstream_lone_fin_is_retransmitted_after_dup_acks"
  "fast_retransmit_refused|fast_retransmit_refused::stock_smoltcp_never_resends_a_segment_whose_fast_retransmit_the_device_refused|fast_retransmit_refused::upstream_fast_retransmit_the_device_refused_is_sent_next"
  "fast_retransmit_refused (our transfer)|fast_retransmit_refused::stock_smoltcp_times_out_our_transfer_when_its_device_refuses_a_fast_retransmit|fast_retransmit_refused::upstream_our_transfer_survives_a_refused_fast_retransmit"
  "neighbor_silence|neighbor_silence::stock_smoltcp_holds_a_relistened_sockets_syn_ack_for_the_forged_peers_second|neighbor_silence::upstream_a_relistened_socket_answers_a_resolved_client_at_once"
  "sack_duplicate_acks|loss_recovery::stock_smoltcp_waits_out_its_rto_when_duplicate_acks_advertise_a_growing_window|loss_recovery::upstream_sack_duplicate_acks_with_a_growing_window_start_a_fast_retransmit"
  "lost_retransmission|loss_recovery::stock_smoltcp_waits_out_its_rto_for_a_lost_fast_retransmission|loss_recovery::upstream_a_lost_fast_retransmission_is_resent_within_round_trips"
  "retransmitted_syn|retransmitted_syn::stock_smoltcp_lets_a_listening_socket_take_a_half_open_connections_syn|retransmitted_syn::upstream_a_retransmitted_syn_goes_to_its_own_connection"
  "syn_in_time_wait|syn_in_time_wait::stock_smoltcp_drops_a_new_syn_for_a_connection_in_time_wait|syn_in_time_wait::upstream_a_syn_for_a_connection_in_time_wait_is_answered"
)

echo "== building the reproductions (stock, then patched)"
cargo test --quiet --test smoltcp_bugs --no-run
cargo test --quiet "${patched[@]}" --test smoltcp_bugs --no-run

for bug in "${bugs[@]}"; do
  IFS='|' read -r name stock upstream <<<"$bug"
  echo "== $name"
  run "stock:   $upstream" fail \
    cargo test --quiet --test smoltcp_bugs -- --include-ignored --exact "$upstream"
  run "stock:   $stock" pass \
    cargo test --quiet --test smoltcp_bugs -- --exact "$stock"
  run "patched: $upstream" pass \
    cargo test --quiet "${patched[@]}" --test smoltcp_bugs -- --include-ignored --exact "$upstream"
  run "patched: $stock" fail \
    cargo test --quiet "${patched[@]}" --test smoltcp_bugs -- --exact "$stock"
done

echo "== the library's guarantees hold on both"
run "stock:   guarantees" pass \
  cargo test --quiet --test smoltcp_bugs -- --skip stock_smoltcp_ --skip upstream_
run "patched: guarantees, and the in-memory transfer, fault, reply, reset, pool and attack tests" pass \
  cargo test --quiet "${patched[@]}" --test smoltcp_bugs --test transfer --test faults \
  --test reply --test resets_and_timeouts --test pool --test attacks -- --skip stock_smoltcp_

echo "== smoltcp's own tests with the reproductions of docs/upstream/"
cargo fetch --manifest-path "$tmp/stock/Cargo.toml" --locked --quiet
# Both copies build in one target directory, so that smoltcp's dev-dependencies are built once.
# Each copy is the root of a workspace of its own, so cargo names both copies' build outputs
# alike, and it trusts file times: the patched copy's files are given a time after the stock
# build, so that its build compiles smoltcp again (and nothing else). Were it not rebuilt, the
# reproductions would fail on it, as they must on stock.
own_target="$target/smoltcp-fixes-own"
# smoltcp's default features leave out its congestion controllers, and with them their tests:
# Reno's (and the reproduction of docs/upstream/reno-byte-counting.md) need it on.
own_features=(--features socket-tcp-reno)
for t in docs/upstream/*.rs; do
  api=$(new_api "$t")
  if [ -n "$api" ]; then
    run "stock:   smoltcp has Socket::$api ($(own_test "$t") cannot build)" fail \
      grep -q "pub fn $api(" "$tmp/stock/src/socket/tcp.rs"
    continue
  fi
  run "stock:   smoltcp $(own_test "$t")" fail env CARGO_TARGET_DIR="$own_target" \
    cargo test --manifest-path "$tmp/stock/Cargo.toml" --offline --locked --quiet --lib "${own_features[@]}" -- \
    --exact "$(own_test "$t")"
done
sleep 1 # a file time past the stock build's, even on a file system that keeps whole seconds
find "$tmp/smoltcp" -type f -exec touch {} +
run "patched: smoltcp's unit tests, the reproductions included" pass \
  env CARGO_TARGET_DIR="$own_target" \
  cargo test --manifest-path "$tmp/smoltcp/Cargo.toml" --offline --locked --quiet --lib "${own_features[@]}"

# A build bug: an empty no_std crate `$1` on smoltcp with the features `$2` (a JSON list's
# inside) must fail to build against stock smoltcp and build against the patched copy; `$3` says
# what is built, for the report.
build_case() {
  local name=$1 features=$2 what=$3
  mkdir -p "$tmp/$name/src"
  printf '%s\n' '[package]' "name = \"$name\"" 'version = "0.1.0"' 'edition = "2021"' '' \
    '[dependencies]' \
    "smoltcp = { version = \"=$version\", default-features = false, features = [$features] }" \
    >"$tmp/$name/Cargo.toml"
  printf '#![no_std]\npub use smoltcp;\n' >"$tmp/$name/src/lib.rs"
  local copy
  for copy in stock smoltcp; do
    local label=patched: expect=pass
    [ "$copy" = stock ] && label="stock:  " expect=fail
    run "$label smoltcp with $what builds" "$expect" \
      env CARGO_TARGET_DIR="$target/smoltcp-fixes-$name-$copy" cargo build --offline --quiet \
      --manifest-path "$tmp/$name/Cargo.toml" --config "patch.crates-io.smoltcp.path=\"$tmp/$copy\""
  done
}

echo "== CUBIC without std"
build_case cubic-without-std '"medium-ip", "proto-ipv4", "socket-tcp", "socket-tcp-cubic"' \
  "socket-tcp-cubic and without std"
echo "== segmentation offload with one IP version"
build_case segmentation-with-ipv4-only '"medium-ethernet", "proto-ipv4", "socket-tcp", "segmentation-offload"' \
  "segmentation-offload and IPv4 alone"

if [ "$failures" -ne 0 ]; then
  echo "smoltcp-fixes: $failures unexpected outcome(s)"
  exit 1
fi
echo "smoltcp-fixes: stock smoltcp $version shows every bug; with patches/ each is fixed and its TCP tests pass"
