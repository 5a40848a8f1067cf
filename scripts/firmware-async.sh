#!/usr/bin/env bash
# The async side on a microcontroller: build the library for thumbv6m-none-eabi and
# thumbv7em-none-eabihf with the `async` and `embassy` features, build firmware/embassy-qemu (embassy-executor,
# embassy-net on the LM3S6965's Ethernet MAC, embassy-time on SysTick, halfclose::asynch), run it
# on QEMU against Linux's TCP as scripts/firmware-net.sh runs the sync image, and print both
# images' footprints side by side.
#
#   bash scripts/firmware-async.sh      (called by scripts/firmware.sh; exits non-zero on failure)
#
# Toolchain as scripts/firmware.sh sets it up (Debian's rustc/cargo with -Zbuild-std=core, the
# rustup toolchain's rust-lld), installing the Debian packages only when missing. The run against
# Linux needs root, /dev/net/tun, ip and qemu-system-arm; without them it says why and skips
# that part (the builds and flash sizes still run). Every step has a time limit.
#
# Environment: RUST_LLD (the linker), QEMU_TIMEOUT (seconds per QEMU run, default 120).
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
FW="$ROOT/firmware/embassy-qemu"
OUT="$ROOT/target/firmware"
QEMU_TIMEOUT=${QEMU_TIMEOUT:-120}
say() { printf '== %s\n' "$*"; }
die() { printf 'firmware-async.sh: error: %s\n' "$*" >&2; exit 1; }
# shellcheck source=scripts/lib/firmware.sh
source "$ROOT/scripts/lib/firmware.sh"
# shellcheck source=scripts/lib/netns.sh
source "$ROOT/scripts/lib/netns.sh"

# --- 1. Toolchain --------------------------------------------------------------------------------
fw_install_packages
if [[ -z ${RUST_LLD:-} ]]; then
    channel=$(sed -n 's/^channel *= *"\(.*\)"/\1/p' "$ROOT/rust-toolchain.toml" 2>/dev/null || true)
    host=$(/usr/bin/rustc -vV | sed -n 's/^host: //p')
    for c in "${RUSTUP_HOME:-$HOME/.rustup}"/toolchains/"$channel"*/lib/rustlib/"$host"/bin/rust-lld \
        "${RUSTUP_HOME:-$HOME/.rustup}"/toolchains/*/lib/rustlib/"$host"/bin/rust-lld; do
        if [[ -x $c ]]; then RUST_LLD=$c; break; fi
    done
fi
[[ -n ${RUST_LLD:-} && -x $RUST_LLD ]] || die "no rust-lld found (set RUST_LLD)"
export PATH="/usr/bin:$PATH" RUSTC=/usr/bin/rustc RUSTC_BOOTSTRAP=1
unset RUSTDOC RUSTC_WRAPPER RUSTUP_TOOLCHAIN CARGO_BUILD_TARGET
for t in THUMBV6M_NONE_EABI THUMBV7M_NONE_EABI THUMBV7EM_NONE_EABIHF; do
    export "CARGO_TARGET_${t}_LINKER=$RUST_LLD"
done
CARGO=(/usr/bin/cargo)
JOBS=${CARGO_BUILD_JOBS:-2}
mkdir -p "$OUT"

# --- 2. The library with the async features, for a Cortex-M0 and a Cortex-M4F --------------------
for target in thumbv6m-none-eabi thumbv7em-none-eabihf; do
    for features in async embassy; do
        say "building the library --no-default-features --features $features for $target"
        (cd "$ROOT" && timeout 900 "${CARGO[@]}" build --locked -q -j "$JOBS" -Zbuild-std=core -p halfclose --lib \
            --no-default-features --features "$features" --target "$target" \
            --target-dir "$ROOT/target/firmware-lib")
    done
done

# --- 3. The embassy image ------------------------------------------------------------------------
CARGO_HOME_DIR=${CARGO_HOME:-$HOME/.cargo}
say "building the embassy image (firmware/embassy-qemu, thumbv7m-none-eabi, release)"
# In the image's own target directory whatever CARGO_TARGET_DIR says, as scripts/firmware.sh builds
# the sync images: the copy below knows where to find it.
(cd "$FW" && timeout 900 "${CARGO[@]}" build --release --locked -q -j "$JOBS" -Zbuild-std=core \
    --target-dir "$FW/target" \
    --config "target.thumbv7m-none-eabi.rustflags=['--remap-path-prefix=$ROOT=/halfclose','--remap-path-prefix=$CARGO_HOME_DIR=/cargo']")
cp "$FW/target/thumbv7m-none-eabi/release/halfclose-embassy-qemu" "$OUT/embassy.elf"

# --- 4. Against Linux, over QEMU's TAP NIC in a network namespace ---------------------------------
why=$(fw_why_no_tap)

DIR=$(mktemp -d)
NS=
QEMU_PID=
SERVER_PID=
cleanup() {
    [[ -n $QEMU_PID ]] && kill "$QEMU_PID" 2>/dev/null || true
    [[ -n $SERVER_PID ]] && kill "$SERVER_PID" 2>/dev/null || true
    [[ -n $NS ]] && ip netns del "$NS" 2>/dev/null || true
    rm -rf "$DIR"
}
trap cleanup EXIT

# Run IMAGE ($1) against the kernel's lesson client and server; its output goes to $2.
# Run `image` against Linux, its output to `log`: one lesson client fetches from it, or (with a
# third argument N) N load clients at once, each checking every byte.
against_linux() {
    local image=$1 log=$2 clients=${3:-1} fetched=0 status=0
    NS="halfclose-async-$$"
    ns_tap "$NS"  # tap0 at 192.168.69.100/24 (Linux); the firmware is .1
    ip netns exec "$NS" timeout "$QEMU_TIMEOUT" qemu-system-arm -machine lm3s6965evb -nographic \
        -monitor none -serial none -semihosting-config enable=on,target=native \
        -nic tap,ifname=tap0,script=no,downscript=no -kernel "$image" >"$log" 2>&1 </dev/null &
    QEMU_PID=$!
    ip netns exec "$NS" env LESSON_TIMEOUT=60 "$LESSON" server --bind 192.168.69.100 7892 "$DIR/payload" \
        >"$DIR/server.log" 2>&1 &
    SERVER_PID=$!
    rm -f "$DIR/copy"
    if ((clients > 1)); then
        at_once "$log" "$clients" && fetched=1
    else
        fw_lesson_fetch "$NS" "$DIR"
        fetched=$FETCHED
    fi
    wait "$QEMU_PID" || status=$?
    QEMU_PID=
    wait "$SERVER_PID" || true
    SERVER_PID=
    ip netns del "$NS"
    NS=
    grep -v '^Timer with period zero' "$log" || true
    say "the kernel's client: $(cat "$DIR/client.log")"
    say "the kernel's server: $(cat "$DIR/server.log")"
    ((status == 0)) || die "$image exited with status $status (124: timed out)"
    ((fetched)) || die "the kernel's clients could not fetch the file from $image"
    ((clients > 1)) || cmp -s "$DIR/payload" "$DIR/copy" || die "the file the kernel's client got from $image differs"
    grep -q '^Message from client: Thank you$' "$DIR/server.log" || die "the kernel's server got no \"Thank you\""
    grep -q '^result: PASS$' "$log" || die "$image did not pass"
}

# N load clients at once against the image writing `log`, once it is up (its first line; the
# kernel holds the SYNs while it resolves the board's address); each checks every byte itself.
at_once() {
    local log=$1 clients=$2
    for _ in $(seq 120); do
        grep -q '^halfclose on' "$log" 2>/dev/null && break
        kill -0 "$QEMU_PID" 2>/dev/null || return 1
        sleep 0.5
    done
    ip netns exec "$NS" "$LOAD" --at-once "$clients" --timeout 30 --expect "$DIR/payload" 192.168.69.1 7891 \
        >"$DIR/client.log" 2>&1
}

ran=0
if [[ -n $why ]]; then
    say "skipping the embassy image against Linux: $why (it needs root, /dev/net/tun, ip and qemu-system-arm)"
else
    # The kernel's peers, host builds (LESSON, LOAD), and the firmware's file.
    fw_build_lesson
    fw_write_payload "$DIR/payload"
    say "the embassy image against Linux (namespace, tap0 192.168.69.100/24; the board is 192.168.69.1)"
    against_linux "$OUT/embassy.elf" "$OUT/embassy.log"
    grep -q '^server: sent 65536 bytes .*FIN acknowledged: true; reply "Thank you\\0"' "$OUT/embassy.log" ||
        die "the embassy image did not get its \"Thank you\" after an acknowledged FIN"
    grep -q '^client: received 65536 bytes .*every byte matches' "$OUT/embassy.log" ||
        die "the embassy image's fetch did not check out"
    if [[ -f $OUT/lm3s6965-net.elf ]]; then
        say "the sync net image against Linux (8 clients at once), for its stack peak"
        against_linux "$OUT/lm3s6965-net.elf" "$OUT/net-sync.log" 8
    fi
    ran=1
fi

# --- 5. Footprint: the async image beside the sync one ---------------------------------------------
section() { size -A "$1" | awk -v s="$2" '$1 == s { print $2; found = 1 } END { if (!found) print 0 }'; }
field() { [[ -f $1 ]] && sed -n "s/.*$2 \([0-9]*\).*/\1/p" "$1" | head -n1; }
row() {
    local name=$1 elf=$2 log=$3 text ro data bss flash stack nic sock ram
    text=$(section "$elf" .text); ro=$(section "$elf" .rodata)
    data=$(section "$elf" .data); bss=$(section "$elf" .bss)
    flash=$(($(section "$elf" .vector_table) + text + ro + data))
    stack=$(field "$log" 'stack peak' || true); nic=$(field "$log" 'NIC frame buffers' || true)
    sock=$(field "$log" 'socket buffers' || true)
    if [[ -n $stack && -n $nic && -n $sock ]]; then
        ram=$((data + bss + stack - nic - sock))
        ram="$ram ($(awk -v x="$ram" 'BEGIN { printf "%.1f", x / 1024 }') KiB)"
    else
        stack="(not run)"; ram="(not run)"
    fi
    awk -v n="$name" -v t="$text" -v r="$ro" -v d="$data" -v b="$bss" -v f="$flash" -v s="$stack" -v m="$ram" \
        'function k(x) { return sprintf("%d (%.1f KiB)", x, x / 1024) }
         BEGIN { printf "| %s | %d | %d | %d | %d | %s | %s | %s | %s |\n", n, t, r, d, b, k(f), k(f - 65536), s, m }'
}
{
    echo "| image | \`.text\` | \`.rodata\` | \`.data\` | \`.bss\` | flash | flash without the 64 KiB payload | stack peak | RAM beyond socket and NIC buffers |"
    echo "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
    [[ -f $OUT/lm3s6965-net.elf ]] && row "sync (smoltcp 0.14, \`server\`/\`client\` state machines, polled loop)" "$OUT/lm3s6965-net.elf" "$OUT/net-sync.log"
    row "async (embassy-net 0.9 / smoltcp 0.13, \`asynch::serve\`/\`fetch\`, embassy-executor)" "$OUT/embassy.elf" "$OUT/embassy.log"
} >"$OUT/footprint-async.md"
say "footprint of the Ethernet images, sync and async (bytes; thumbv7m-none-eabi, opt-level \"s\", fat LTO; made by: bash scripts/firmware-async.sh)"
cat "$OUT/footprint-async.md"
if ((ran)); then
    say "embassy firmware <-> Linux over emulated Ethernet: both directions byte-exact, both replies received"
fi
