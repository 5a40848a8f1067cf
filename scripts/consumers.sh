#!/usr/bin/env bash
# The consumer crates under ci/consumers: programs that depend on halfclose the way users do
# (smoltcp's defaults; a minimal no_std build; embassy-net beside smoltcp's defaults; tokio).
# Builds each (the two with a `main` are built and run: a transfer each), then checks that
# halfclose leaves the first two programs' smoltcp features as they were
# (scripts/feature-isolation.sh).
#
# Each crate resolves its dependencies as a user's would, starting from this repository's
# Cargo.lock (copied in, not committed), and all share one target directory:
# $CARGO_TARGET_DIR (default target/) under consumers/.
#
# Usage: bash scripts/consumers.sh
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
target=${CARGO_TARGET_DIR:-$ROOT/target}
case $target in /*) ;; *) target=$ROOT/$target ;; esac
export CARGO_TARGET_DIR="$target/consumers"

# name | what is checked
consumers=(
    'smoltcp-defaults|run'
    'embedded-minimal|check'
    'embassy-smoltcp-defaults|check'
    'tokio|run'
)
for entry in "${consumers[@]}"; do
    name=${entry%%|*} how=${entry#*|}
    dir="$ROOT/ci/consumers/$name"
    cp "$ROOT/Cargo.lock" "$dir/Cargo.lock"
    printf '\nconsumers: %s: cargo %s\n' "$name" "$how"
    (cd "$dir" && cargo "$how" --quiet)
done
[[ $(ls "$ROOT/ci/consumers" | grep -vc README.md) == "${#consumers[@]}" ]] ||
    { echo "consumers: a crate under ci/consumers is not in this script's list" >&2; exit 1; }

echo
bash "$ROOT/scripts/feature-isolation.sh"
