#!/usr/bin/env bash
# The published crate builds and passes on its own: `cargo package`, unpack the .crate, and there
# `cargo build --all-targets` and `cargo test` with the default features, as a user who
# downloaded it would. The repository's own self dev-dependency (halfclose with sim, tokio, ...)
# is dropped by `cargo package`, so this is where a packaged example or unit test that needs a
# feature without saying so (`required-features`, `#[cfg(feature = ...)]`) shows.
#
# Also checks that every `[[example]]` of Cargo.toml is in the package: a file left out of
# `include` would otherwise drop its example with a mere warning.
#
# The unpacked copy lives in a temporary directory, deleted afterwards; its build shares the
# target directory, so the dependencies are built once.
#
# Usage: bash scripts/package-check.sh
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
say() { printf 'package-check: %s\n' "$*"; }
run() { printf '+ %s\n' "$*"; "$@"; }

target=${CARGO_TARGET_DIR:-$ROOT/target}
case $target in /*) ;; *) target=$ROOT/$target ;; esac
name=$(sed -n 's/^name = "\(.*\)"/\1/p' Cargo.toml | head -n1)
version=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n1)

# --allow-dirty: CI's clone may hold build outputs; --locked: the committed Cargo.lock is the one.
run cargo package -p halfclose --locked --allow-dirty --quiet
crate="$target/package/$name-$version.crate"

list=$(cargo package -p halfclose --list --locked --allow-dirty 2>/dev/null)
say "$(wc -l <<<"$list") files in $(basename "$crate") ($(du -h "$crate" | cut -f1))"
missing=0
for example in $(sed -n '/^\[\[example\]\]/,/^$/s/^name = "\(.*\)"/\1/p' Cargo.toml); do
    if ! grep -qx "examples/$example.rs" <<<"$list" && ! grep -qx "examples/$example/main.rs" <<<"$list"; then
        echo "package-check: example $example is not in the package (Cargo.toml's include)" >&2
        missing=1
    fi
done
[[ $missing == 0 ]] || exit 1

# Outside the repository: inside it, cargo would take the copy for a member of our workspace.
work=$(mktemp -d "${TMPDIR:-/tmp}/halfclose-package-check.XXXXXX")
trap 'rm -rf "$work"' EXIT
# -m: the files get the extraction time, so cargo rebuilds the crate from what was unpacked.
tar -xzmf "$crate" -C "$work"
cd "$work/$name-$version"
say "unpacked in $(pwd)"

export CARGO_TARGET_DIR="$target"
run cargo build --locked --all-targets --quiet
echo "+ cargo test --locked"
status=0
cargo test --locked >"$work/test.log" 2>&1 || status=$?
grep -E '^(running|test result)|FAILED|panicked' "$work/test.log" || true
if [[ $status != 0 ]]; then
    tail -n 40 "$work/test.log" >&2
    echo "package-check: cargo test failed in the unpacked crate" >&2
    exit "$status"
fi

# With the default features the examples are skipped (their required-features are not on): build
# them with every feature they ask for, and run the loopback transfer once.
examples=$(cargo metadata --locked --no-deps --format-version 1 | python3 -c '
import json, sys
for t in json.load(sys.stdin)["packages"][0]["targets"]:
    if "example" in t["kind"]:
        print(t["name"], ",".join(t.get("required-features") or []))')
say "examples in the package: $(cut -d' ' -f1 <<<"$examples" | paste -sd' ' -)"
features=$(cut -s -d' ' -f2 <<<"$examples" | tr ',' '\n' | sort -u | paste -sd, -)
run cargo build --locked --examples --quiet --features "$features"
# The README's first command, as a user of the published crate types it: default features.
run cargo run --locked --quiet --release --example loopback -- -o "$work/receive.dat" | tee "$work/loopback.log"
grep -q '^Message from client: Thank you$' "$work/loopback.log"
cmp examples/loopback.rs "$work/receive.dat"
say "the packaged crate builds (all targets, and the examples with $features), its tests pass, and its loopback example sends a file with the default features"
