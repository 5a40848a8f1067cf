#!/usr/bin/env bash
# A program that adds halfclose with its default features must get no change to its own smoltcp:
# Cargo unifies features, so any smoltcp feature halfclose turned on would turn on for every
# socket of that program (Reno congestion control, IPv6, ...). For two of the consumer crates
# under ci/consumers (a program on smoltcp's default features; a small embedded build with just
# what halfclose itself needs), this compares the features smoltcp is built with, with halfclose
# (the crate as it is) and without (its manifest less the halfclose line), through
# `cargo tree -e features`. Exits non-zero and shows both lists when they differ.
#
# Usage: bash scripts/feature-isolation.sh     (scripts/consumers.sh runs it too)
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

features() { (cd "$1" && cargo tree -q -e normal -i smoltcp@0.14 --depth 0 -f '{f}'); }

failed=0
for name in smoltcp-defaults embedded-minimal; do
    crate="$ROOT/ci/consumers/$name"
    grep -q '^halfclose = ' "$crate/Cargo.toml" || { echo "feature isolation: $crate/Cargo.toml has no halfclose line" >&2; exit 1; }
    bare="$work/$name"
    mkdir -p "$bare/src"
    touch "$bare/src/lib.rs"
    grep -v '^halfclose = ' "$crate/Cargo.toml" >"$bare/Cargo.toml"
    # The same versions as the consumer resolves (scripts/consumers.sh copies this Cargo.lock in).
    cp "$ROOT/Cargo.lock" "$bare/Cargo.lock"
    [[ -f $crate/Cargo.lock ]] || cp "$ROOT/Cargo.lock" "$crate/Cargo.lock"
    with=$(features "$crate")
    without=$(features "$bare")
    if [[ $with == "$without" ]]; then
        printf 'feature isolation: %s: smoltcp features unchanged by halfclose: %s\n' "$name" "$without"
    else
        printf 'feature isolation: %s: halfclose changes the program'"'"'s smoltcp features\n  without: %s\n  with:    %s\n' \
            "$name" "$without" "$with" >&2
        failed=1
    fi
done
exit "$failed"
