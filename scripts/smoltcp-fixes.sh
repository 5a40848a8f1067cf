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

version=$(awk '/^name = "smoltcp"$/ { getline; gsub(/[^0-9.]/, ""); print; exit }' Cargo.lock)
registry="${CARGO_HOME:-$HOME/.cargo}/registry/src"
src=$(ls -d "$registry"/*/smoltcp-"$version" 2>/dev/null | head -n 1 || true)
if [ -z "$src" ]; then
  cargo fetch --quiet
  src=$(ls -d "$registry"/*/smoltcp-"$version" | head -n 1)
fi
echo "smoltcp $version from $src"

tmp=$(mktemp -d)
cp Cargo.lock "$tmp/Cargo.lock.ours"
cleanup() {
  cp "$tmp/Cargo.lock.ours" "$root/Cargo.lock"
  rm -rf "$tmp"
}
trap cleanup EXIT

cp -r "$src" "$tmp/smoltcp"
for p in patches/*.patch; do
  echo "applying $p"
  patch --quiet -p1 -d "$tmp/smoltcp" < "$p"
done

target="${CARGO_TARGET_DIR:-$root/target}"
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

bugs=(
  "fin_at_window_edge:stock_smoltcp_reads_a_short_file_when_its_scaled_window_shrinks:upstream_fin_beyond_the_receive_window_is_not_accepted"
  "fin_stall:stock_smoltcp_never_resends_a_lost_lone_fin_after_three_duplicate_acks:upstream_lone_fin_is_retransmitted_after_dup_acks"
)

echo "== building the reproductions (stock, then patched)"
cargo test --quiet --test smoltcp_bugs --no-run
CARGO_TARGET_DIR="$target/smoltcp-fixes" cargo test --quiet "${patched[@]}" --test smoltcp_bugs --no-run

for bug in "${bugs[@]}"; do
  IFS=: read -r name stock upstream <<<"$bug"
  echo "== $name"
  run "stock:   $upstream" fail \
    cargo test --quiet --test smoltcp_bugs -- --include-ignored --exact "$upstream"
  run "stock:   $stock" pass \
    cargo test --quiet --test smoltcp_bugs -- --exact "$stock"
  run "patched: $upstream" pass env CARGO_TARGET_DIR="$target/smoltcp-fixes" \
    cargo test --quiet "${patched[@]}" --test smoltcp_bugs -- --include-ignored --exact "$upstream"
  run "patched: $stock" fail env CARGO_TARGET_DIR="$target/smoltcp-fixes" \
    cargo test --quiet "${patched[@]}" --test smoltcp_bugs -- --exact "$stock"
done

echo "== the library's guarantees hold on both"
run "stock:   guarantees" pass \
  cargo test --quiet --test smoltcp_bugs -- --skip stock_smoltcp_ --skip upstream_
run "patched: guarantees and the whole test suite but TAP" pass env CARGO_TARGET_DIR="$target/smoltcp-fixes" \
  cargo test --quiet "${patched[@]}" --test smoltcp_bugs --test transfer --test faults \
  --test misbehaving_peers -- --skip stock_smoltcp_

echo "== smoltcp's own TCP socket tests, patched"
(
  cd "$tmp/smoltcp"
  cargo fetch --locked --quiet
  run "patched: smoltcp socket::tcp unit tests" pass env CARGO_TARGET_DIR="$target/smoltcp-fixes-own" \
    cargo test --offline --locked --quiet --lib -- socket::tcp::
  exit "$failures"
) || failures=$((failures + $?))

if [ "$failures" -ne 0 ]; then
  echo "smoltcp-fixes: $failures unexpected outcome(s)"
  exit 1
fi
echo "smoltcp-fixes: stock smoltcp $version shows both bugs; with patches/ both are fixed and its TCP tests pass"
