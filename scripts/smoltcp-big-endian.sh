#!/usr/bin/env bash
# smoltcp's checksum tests, with patches/ applied, on a big-endian target: s390x Linux, under
# qemu-user. The checksum loops of patches 0013-0015 sum words in the target's own byte order and
# convert at the end (RFC 1071 section 2.(B)); on the host, a little-endian machine, a loop that
# converted wrongly on a big-endian one would pass. Here the same unit tests (each loop against
# RFC 1071's sum written plainly, every length and offset; the IPv4 pseudo-header against its
# twelve bytes) run where native order is network order.
#
#   bash scripts/smoltcp-big-endian.sh     (from anywhere; exits non-zero if a test fails)
#
# The target's standard library is built from source (-Zbuild-std) with Debian's rustc, as the
# firmware is, and linked with Debian's s390x cross gcc; all are installed when missing.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
say() { printf '== %s\n' "$*"; }
die() { printf 'smoltcp-big-endian.sh: error: %s\n' "$*" >&2; exit 1; }
# shellcheck source=scripts/lib/firmware.sh
source scripts/lib/firmware.sh
fw_install_packages gcc-s390x-linux-gnu libc6-dev-s390x-cross qemu-user
# shellcheck source=scripts/lib/smoltcp.sh
source scripts/lib/smoltcp.sh
# The copy lives outside the checkout (inside it, cargo would take it for a member of this
# workspace); its build goes to target/, kept between runs.
copy=$(mktemp -d)
trap 'rm -rf "$copy"' EXIT
smoltcp_patched "$copy/smoltcp"

export PATH="/usr/bin:$PATH" RUSTC=/usr/bin/rustc RUSTC_BOOTSTRAP=1
unset RUSTDOC RUSTC_WRAPPER RUSTUP_TOOLCHAIN CARGO_BUILD_TARGET
export CARGO_TARGET_S390X_UNKNOWN_LINUX_GNU_LINKER=s390x-linux-gnu-gcc
export CARGO_TARGET_S390X_UNKNOWN_LINUX_GNU_RUNNER="qemu-s390x -L /usr/s390x-linux-gnu"
say "smoltcp with patches/, its checksum tests on s390x-unknown-linux-gnu (big-endian) under qemu-s390x"
(cd "$copy/smoltcp" && /usr/bin/cargo test -Zbuild-std --target s390x-unknown-linux-gnu \
    --target-dir "$ROOT/target/smoltcp-big-endian" --lib --quiet -- wire::ip::test::checksum wire::ip::test::pseudo_header) |
    tee "$copy/test.log"
grep -q '^test result: ok\. [1-9]' "$copy/test.log" || die "no checksum test ran"
say "big-endian: smoltcp's checksum loops equal RFC 1071's plain sum"
