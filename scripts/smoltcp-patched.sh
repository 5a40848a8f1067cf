#!/usr/bin/env bash
# Cargo against smoltcp with patches/ applied (docs/upstream/README.md says what each fixes):
# the loss recovery of patches 0008-0010 for the TAP programs, for instance:
#
#   bash scripts/smoltcp-patched.sh build --release --example tap_server --example tap_client
#     -> target/patched/release/examples/tap_server, .../tap_client
#
#   bash scripts/smoltcp-patched.sh --copy DIR
#     -> DIR: the patched copy alone, for a program of one's own (docs/upstream/README.md)
#
# The arguments go to cargo as they are. The patched copy of smoltcp is made in
# target/smoltcp-patched (from the registry's source, which cargo fetches if needed) and swapped
# in with `--config patch.crates-io.smoltcp.path=...`, which applies to the whole workspace; the
# build goes to target/patched (CARGO_TARGET_DIR/patched), so the stock build in target/ stays
# as it is. Cargo.lock is left unchanged. The build has `--cfg smoltcp_patched` (in RUSTFLAGS),
# with which the TAP programs set a minimum RTO of 200 ms, Linux's.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/lib/smoltcp.sh
source scripts/lib/smoltcp.sh
if [[ ${1:-} == --copy ]]; then
  [[ -n ${2:-} ]] || { echo "usage: smoltcp-patched.sh --copy DIR" >&2; exit 2; }
  smoltcp_patched "$2"
  exit 0
fi
target="${CARGO_TARGET_DIR:-$(pwd)/target}"
smoltcp_patched "$target/smoltcp-patched"
lock=$(mktemp)
cp Cargo.lock "$lock"
trap 'cp "$lock" Cargo.lock; rm -f "$lock"' EXIT
# `smoltcp_patched` tells this crate's programs that the patches' API is there (the TAP
# programs then set Linux's 200 ms minimum RTO, patch 0009).
export RUSTFLAGS="${RUSTFLAGS:-} --cfg smoltcp_patched"
CARGO_TARGET_DIR="$target/patched" cargo \
  --config "patch.crates-io.smoltcp.path=\"$target/smoltcp-patched\"" "$@"
