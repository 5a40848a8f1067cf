#!/usr/bin/env bash
# Mutation testing of the library with cargo-mutants: every mutant must make a test fail (be
# "caught") or fail to build ("unviable"). The files are every file of src/ that has code to
# mutate. Settings in .cargo/mutants.toml: the
# tests run, the build profile, and the mutants excluded because they cannot change behaviour
# (each with its reason; docs/testing.md lists them).
#
# Usage: bash scripts/mutants.sh                 each file of .cargo/mutants.toml in turn, then a
#                                                table per file (docs/testing.md's)
#        bash scripts/mutants.sh src/reply.rs    just these files
#        bash scripts/mutants.sh --in-diff BASE  only mutants on lines of those files changed since
#                                                the merge base with BASE (what CI runs); at most
#                                                MUTANTS_MAX of them, a fixed shard when more
#
# Exits non-zero if any mutant is missed. A mutant that times out made a test hang: caught, and
# counted apart in the table.
#
# Environment:
#   MUTANTS_JOBS  mutants tested at once (default 1: each build already uses every core)
#   MUTANTS_OUT   where results go (default target/mutants; one directory per file, named for
#                 its path under src/: server-pool, reply)
#   MUTANTS_MAX   the most mutants --in-diff tests (default 30, about five minutes)
#   MUTANTS_TIMEOUT  seconds one --in-diff mutant's build and tests may take (default 120; more
#                 is a hang, counted as caught)
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf '== %s\n' "$*"; }
die() { printf 'mutants.sh: error: %s\n' "$*" >&2; exit 1; }

# Every file of src/ but three: src/server/mod.rs holds only re-exports and src/macros.rs only
# the trace macros (cargo-mutants finds nothing to mutate in either); src/defmt_format.rs is
# `defmt::Format` output, which only a defmt logger on a target reads (no host test can see
# it, and `defmt` excludes `log`, which the tests build with).
FILES=(src/server/sender.rs src/server/pool.rs src/server/report.rs src/server/source.rs
    src/client.rs src/reply.rs src/device.rs src/timeouts.rs src/clock.rs src/backlog.rs
    src/asynch/mod.rs src/asynch/embassy.rs src/asynch/tokio.rs
    src/io.rs src/segment.rs src/error.rs src/human.rs src/lib.rs src/sim.rs)

# --in-diff with no change to those files has no mutant to test: no need for cargo-mutants (its
# install takes CI over three minutes).
if [[ ${1:-} == --in-diff ]] && merge_base=$(git merge-base "${2:?--in-diff needs a base revision}" HEAD) &&
    git diff --quiet "$merge_base" -- "${FILES[@]}"; then
    say "no mutants: none of ${FILES[*]} changed since $(git rev-parse --short "$merge_base")"
    exit 0
fi

# --debug: cargo-mutants only drives cargo, and an unoptimised build installs in a minute instead
# of three and a half on two cores (listing 739 mutants: 0.35 s instead of 0.11 s).
command -v cargo-mutants >/dev/null 2>&1 || {
    say "installing cargo-mutants"
    cargo install --locked --debug cargo-mutants
}

export CARGO_TERM_COLOR=never
OUT=${MUTANTS_OUT:-target/mutants}
common=(--jobs "${MUTANTS_JOBS:-1}" --no-shuffle --colors never)

if [[ ${1:-} == --in-diff ]]; then
    base=${2:?--in-diff needs a base revision}
    merge_base=$(git merge-base "$base" HEAD) || die "no merge base with $base"
    mkdir -p "$OUT/in-diff"
    diff="$OUT/in-diff.patch"
    # Committed and uncommitted changes alike.
    git diff "$merge_base" -- "${FILES[@]}" > "$diff"
    count=$(cargo mutants --in-diff "$diff" --list | grep -c . || true)
    if ((count == 0)); then
        say "no mutants in the lines changed since $(git rev-parse --short "$merge_base")"
        exit 0
    fi
    shard=()
    if ((count > ${MUTANTS_MAX:-30})); then
        n=$(((count + ${MUTANTS_MAX:-30} - 1) / ${MUTANTS_MAX:-30}))
        shard=(--shard "0/$n")
        say "$count mutants in the diff; testing shard 0 of $n"
    else
        say "$count mutants in the lines changed since $(git rev-parse --short "$merge_base")"
    fi
    # In the checkout itself, not a copy (cargo-mutants puts each file back after its mutant, and
    # when interrupted): its target/ already holds the dependencies `cargo test` built, and with
    # their debug info as that build has it they are reused, instead of a fresh copy compiling
    # them all again (six minutes on two cores). No unmutated baseline either: CI's test job has
    # just passed on this tree, so each mutant gets a fixed time limit.
    here=(--in-place --baseline skip --timeout "${MUTANTS_TIMEOUT:-120}" --build-timeout 1200
        --cargo-arg=--config --cargo-arg='profile.test.package."*".debug=true')
    rc=0
    # (One mutant at a time: the checkout has room for one.)
    cargo mutants "${common[@]:2}" "${here[@]}" --in-diff "$diff" "${shard[@]}" --output "$OUT/in-diff" || rc=$?
    # With mutants both missed and timed out, cargo-mutants exits 3, as for timeouts alone: the
    # list of missed ones decides.
    missed="$OUT/in-diff/mutants.out/missed.txt"
    if [[ -s $missed ]]; then
        say "missed:"
        cat "$missed"
        exit 2
    fi
    ((rc == 0 || rc == 3)) || exit "$rc"
    exit 0
fi

# A file's results directory, named for its whole path under src/ (src/server/pool.rs:
# server-pool), so that two files of one name in different folders (mod.rs) never share one.
outdir() {
    local name=${1#./}
    name=${name#src/}
    name=${name%.rs}
    printf '%s/%s' "$OUT" "${name//\//-}"
}

if (($#)); then
    files=("$@")
else
    files=("${FILES[@]}")
fi
((${#files[@]})) || die "no files to examine"

status=0
for file in "${files[@]}"; do
    [[ -f $file ]] || die "no such file: $file"
    dir=$(outdir "$file")
    say "$file"
    mkdir -p "$dir"
    rc=0
    cargo mutants "${common[@]}" --file "$file" --output "$dir" || rc=$?
    # 2: mutants missed; 3: mutants timed out (caught: they made a test hang, which the suite
    # reports as a failure too); anything else is cargo-mutants failing to run.
    case $rc in
        0 | 3) ;;
        2) status=1 ;;
        *) die "cargo mutants failed on $file (exit $rc)" ;;
    esac
    # (Missed and timed-out mutants together exit 3, as timeouts alone.)
    if [[ -s $dir/mutants.out/missed.txt ]]; then status=1; fi
done

# One row per file: how its mutants fared.
count() { if [[ -f $1 ]]; then grep -c . "$1" || true; else echo 0; fi; }
printf '\n| file | mutants | caught | missed | unviable | timeouts |\n|---|---:|---:|---:|---:|---:|\n'
for file in "${files[@]}"; do
    dir="$(outdir "$file")/mutants.out"
    caught=$(count "$dir/caught.txt")
    missed=$(count "$dir/missed.txt")
    unviable=$(count "$dir/unviable.txt")
    timeouts=$(count "$dir/timeout.txt")
    printf '| `%s` | %d | %d | %d | %d | %d |\n' "$file" $((caught + missed + unviable + timeouts)) \
        "$caught" "$missed" "$unviable" "$timeouts"
done
for file in "${files[@]}"; do
    dir="$(outdir "$file")/mutants.out"
    [[ -s $dir/missed.txt ]] && { echo; echo "missed in $file:"; cat "$dir/missed.txt"; }
    [[ -s $dir/timeout.txt ]] && { echo; echo "timed out in $file:"; cat "$dir/timeout.txt"; }
done
exit "$status"
