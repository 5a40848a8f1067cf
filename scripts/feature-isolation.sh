#!/usr/bin/env bash
# A program that adds halfclose with its default features must get no change to its own smoltcp:
# Cargo unifies features, so any smoltcp feature halfclose turned on would turn on for every
# socket of that program (Reno congestion control, IPv6, ...). For two typical programs (smoltcp
# with its default features; a small embedded build with just what halfclose itself needs), this
# compares the features smoltcp is built with, with and without halfclose, through
# `cargo tree -e features`. Exits non-zero and shows both lists when they differ.
#
# Usage: bash scripts/feature-isolation.sh
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# name | the program's smoltcp dependency
programs=(
    'smoltcp-defaults|smoltcp = "0.14"'
    'embedded-minimal|smoltcp = { version = "0.14", default-features = false, features = ["medium-ip", "proto-ipv4", "socket-tcp"] }'
)
failed=0
for entry in "${programs[@]}"; do
    name=${entry%%|*} dep=${entry#*|}
    dir="$work/$name"
    mkdir -p "$dir/src"
    echo 'fn main() {}' >"$dir/src/main.rs"
    cat >"$dir/Cargo.toml" <<TOML
[package]
name = "feature-isolation-$name"
version = "0.0.0"
edition = "2024"
publish = false

[workspace]

[dependencies]
$dep
halfclose = { path = "$ROOT", optional = true }
TOML
    features() { (cd "$dir" && cargo tree -q -e normal -i smoltcp --depth 0 -f '{f}' "$@"); }
    without=$(features)
    with=$(features --features halfclose)
    if [[ $with == "$without" ]]; then
        printf 'feature isolation: %s: smoltcp features unchanged by halfclose: %s\n' "$name" "$without"
    else
        printf 'feature isolation: %s: halfclose changes the program'"'"'s smoltcp features\n  without: %s\n  with:    %s\n' \
            "$name" "$without" "$with" >&2
        failed=1
    fi
done
exit "$failed"
