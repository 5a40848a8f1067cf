# shellcheck shell=bash
# What scripts/firmware.sh, scripts/firmware-net.sh and scripts/firmware-async.sh share; sourced
# by them after they define `say` and `die` (and ROOT, the checkout), never run on its own.

# Debian's packages the firmware builds need, installed only when missing: rustc-web/cargo-web
# (/usr/bin/rustc and /usr/bin/cargo), rust-web-src (the sources -Zbuild-std compiles `core`
# from), qemu-system-arm (the Arm boards), qemu-system-misc (qemu-system-riscv32, the RISC-V
# board), binutils (`size`) and python3 (scripts/summary.py reads the small images' records); and
# any package named as an argument.
# The oldest Debian rustc (1.N) the firmware is built and measured with.
FW_RUSTC_MINOR=96
fw_install_packages() {
    local packages=(rustc-web cargo-web rust-web-src qemu-system-arm qemu-system-misc binutils python3 "$@") missing=() pkg
    for pkg in "${packages[@]}"; do
        dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' || missing+=("$pkg")
    done
    # An older Debian rustc, installed from a stale package list (bookworm's first rustc-web was
    # 1.85), lacks what the small images are built with (`-Cpanic=immediate-abort`): upgrade it.
    local minor
    minor=$(/usr/bin/rustc --version 2>/dev/null | sed -n 's/^rustc 1\.\([0-9]*\)\..*/\1/p')
    if [[ -n $minor ]] && ((minor < FW_RUSTC_MINOR)); then
        missing+=(rustc-web cargo-web rust-web-src)
    fi
    ((${#missing[@]})) || return 0
    [[ $(id -u) == 0 ]] || die "need root to apt-get install ${missing[*]}"
    say "installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    # The package lists may be absent or stale on a new machine: refresh them only when an
    # install is needed.
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

# Why a run against Linux over a TAP device cannot happen here (nothing when it can): it needs
# root, /dev/net/tun, ip and the emulator `$1` (default qemu-system-arm).
fw_why_no_tap() {
    local qemu=${1:-qemu-system-arm}
    if [[ $(id -u) != 0 ]]; then
        echo "not running as root"
    elif [[ ! -e /dev/net/tun ]]; then
        echo "no /dev/net/tun"
    elif ! command -v ip >/dev/null; then
        echo "no ip (iproute2)"
    elif ! command -v "$qemu" >/dev/null; then
        echo "no $qemu"
    fi
}

# Build the kernel's peers (tools/src/bin/lesson.rs and load.rs, host builds) and set LESSON and
# LOAD to the binaries: found where cargo puts them, under CARGO_TARGET_DIR when that is set
# (relative to the checkout, where cargo runs), else under target/.
fw_build_lesson() {
    # With the toolchain rust-toolchain.toml pins, through rustup's proxies, as every other job
    # builds: not with Debian's, which scripts/firmware.sh puts first for the firmware (RUSTC,
    # PATH). Built with Debian's, the tools and every dependency were compiled a second time.
    local path=$PATH
    if command -v rustup >/dev/null; then path="$(dirname "$(command -v rustup)"):$PATH"; fi
    (cd "$ROOT" && env -u RUSTC -u RUSTC_BOOTSTRAP -u RUSTUP_TOOLCHAIN PATH="$path" \
        cargo build --release --quiet -p halfclose-tools --bin lesson --bin load)
    local target_dir=${CARGO_TARGET_DIR:-target}
    [[ $target_dir == /* ]] || target_dir="$ROOT/$target_dir"
    LESSON="$target_dir/release/lesson"
    LOAD="$target_dir/release/load"
}

# Write the firmware's file to $1: xorshift32 from the same seed as firmware/common/src/payload.rs.
fw_write_payload() {
    python3 - "$1" <<'PY'
import sys
x, out = 0x2545F491, bytearray()
for _ in range(65536):
    x ^= (x << 13) & 0xFFFFFFFF
    x ^= x >> 17
    x ^= (x << 5) & 0xFFFFFFFF
    out.append(x >> 24)
open(sys.argv[1], "wb").write(out)
PY
}

# The kernel's peers of the firmware running in namespace $1 (its QEMU is QEMU_PID), with the
# file in $2/payload: start the kernel's server for the firmware's fetch (SERVER_PID, port 7892,
# output in $2/server.log), then fetch from the firmware into $2/copy with the kernel's client,
# retrying until the firmware is up (output in $2/client.log). FETCHED is 1 if the client got it.
fw_lesson_peers() {
    local ns=$1 dir=$2
    ip netns exec "$ns" env LESSON_TIMEOUT=60 "$LESSON" server --bind 192.168.69.100 7892 "$dir/payload" \
        >"$dir/server.log" 2>&1 &
    SERVER_PID=$!
    fw_lesson_fetch "$ns" "$dir"
}

# The kernel's client in namespace $1 fetches from the firmware into $2/copy (output in
# $2/client.log), retrying until the firmware (QEMU_PID) is up; FETCHED is 1 if it got the file.
fw_lesson_fetch() {
    local ns=$1 dir=$2
    FETCHED=0
    for _ in $(seq 60); do
        if ip netns exec "$ns" env LESSON_TIMEOUT=30 "$LESSON" client 192.168.69.1 7891 "$dir/copy" \
            >"$dir/client.log" 2>&1; then
            FETCHED=1
            break
        fi
        kill -0 "$QEMU_PID" 2>/dev/null || break
        sleep 0.5
    done
}

# Print what the kernel's peers (fw_lesson_peers, files in $3) said, and die unless the firmware
# ($1, as messages name it) exited 0 (its status: $2), the kernel's client got the file
# byte-exact, and the kernel's server got its "Thank you".
fw_check_peers() {
    local what=$1 status=$2 dir=$3
    say "the kernel's client: $(cat "$dir/client.log")"
    say "the kernel's server: $(cat "$dir/server.log")"
    ((status == 0)) || die "$what exited with status $status (124: timed out)"
    ((FETCHED)) || die "the kernel's client could not fetch the file from $what"
    cmp -s "$dir/payload" "$dir/copy" || die "the file the kernel's client got from $what differs"
    grep -q '^Message from client: Thank you$' "$dir/server.log" || die "the kernel's server got no \"Thank you\""
}
