#!/usr/bin/env bash
# Build the Cortex-M firmware in examples/cortex-m-qemu, run it on QEMU's LM3S6965 board, build the
# library alone for thumbv6m-none-eabi and thumbv7em-none-eabihf, and print the footprint table.
#
# Usage: bash scripts/firmware.sh        (from anywhere; exits non-zero on any failure or timeout)
#
# The machine's rustup cannot download targets, so the firmware is built with Debian's rustc and
# cargo (packages rustc-web, cargo-web) and the standard library sources (rust-web-src) through
# `-Zbuild-std=core`, and linked with rust-lld from the rustup toolchain.
#
# Environment:
#   QEMU_TIMEOUT  wall-clock seconds allowed for each QEMU run (default 60)
#   RUST_LLD      path of the linker to use instead of the rustup toolchain's rust-lld
#   FOOTPRINT_MD  where to write the footprint table too (default target/firmware/footprint.md)
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
FW="$ROOT/examples/cortex-m-qemu"
OUT="$ROOT/target/firmware"
QEMU_TIMEOUT=${QEMU_TIMEOUT:-60}
FOOTPRINT_MD=${FOOTPRINT_MD:-$OUT/footprint.md}

say() { printf '== %s\n' "$*"; }
die() { printf 'firmware.sh: error: %s\n' "$*" >&2; exit 1; }

# --- 1. What the build needs, installed only when missing -------------------------------------
# rustc-web/cargo-web: /usr/bin/rustc and /usr/bin/cargo; rust-web-src: the sources
# -Zbuild-std compiles `core` from; qemu-system-arm: the board; binutils: `size`.
PACKAGES=(rustc-web cargo-web rust-web-src qemu-system-arm binutils)
missing=()
for pkg in "${PACKAGES[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed'; then
        missing+=("$pkg")
    fi
done
if ((${#missing[@]})); then
    say "installing ${missing[*]}"
    [[ $(id -u) == 0 ]] || die "need root to apt-get install ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    # The package lists may be absent or stale on a new machine: refresh them only when an
    # install is needed.
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# --- 2. The linker: rust-lld from the rustup toolchain the repository pins ----------------------
if [[ -z ${RUST_LLD:-} ]]; then
    channel=$(sed -n 's/^channel *= *"\(.*\)"/\1/p' "$ROOT/rust-toolchain.toml" 2>/dev/null || true)
    host=$(/usr/bin/rustc -vV | sed -n 's/^host: //p')
    candidates=()
    if command -v rustup >/dev/null; then
        for tc in "$channel" stable; do
            [[ -n $tc ]] || continue
            sysroot=$(rustup run "$tc" rustc --print sysroot 2>/dev/null) || continue
            candidates+=("$sysroot/lib/rustlib/$host/bin/rust-lld")
        done
    fi
    candidates+=("${RUSTUP_HOME:-$HOME/.rustup}"/toolchains/*/lib/rustlib/"$host"/bin/rust-lld)
    for c in "${candidates[@]}"; do
        if [[ -x $c ]]; then RUST_LLD=$c; break; fi
    done
fi
[[ -n ${RUST_LLD:-} && -x $RUST_LLD ]] || die "no rust-lld found (set RUST_LLD)"

# Debian's toolchain, not rustup's proxies: they would honour rust-toolchain.toml, whose
# toolchain has no Cortex-M targets here.
export PATH="/usr/bin:$PATH"
export RUSTC=/usr/bin/rustc
unset RUSTDOC RUSTC_WRAPPER RUSTUP_TOOLCHAIN CARGO_BUILD_TARGET
export RUSTC_BOOTSTRAP=1
CARGO=(/usr/bin/cargo)
BUILD_STD=(-Zbuild-std=core)
for t in THUMBV6M_NONE_EABI THUMBV7M_NONE_EABI THUMBV7EM_NONE_EABIHF; do
    export "CARGO_TARGET_${t}_LINKER=$RUST_LLD"
done
JOBS=${CARGO_BUILD_JOBS:-2}

say "toolchain: $(/usr/bin/rustc --version), $(/usr/bin/cargo --version | cut -d' ' -f1-2), linker $RUST_LLD"
mkdir -p "$OUT"

# --- 3. The firmware images --------------------------------------------------------------------
# full: server and client; server / client: one side each, for its footprint; baseline: no
# network (start-up, semihosting, core::fmt), subtracted to show what the network costs;
# server-eth: the server over an Ethernet loopback (ARP, Ethernet framing), as a board's MAC needs;
# server-tiny: the server image with `-Cpanic=immediate-abort` (unstable), which drops panic
# messages and their formatting: a panic becomes a fault, which the image reports as a failure.
# server-ipv6 / server-reno: the server image with one more feature of the library (smoltcp's
# IPv6, Reno congestion control); full-log: the full image with the library's `log` feature and a
# semihosting logger at debug level. For the README's feature table: what each feature costs a
# program that turns it on.
VARIANTS=(full server client baseline server-eth server-tiny server-ipv6 server-reno full-log)
features() {
    case $1 in
    full) ;;
    server | server-tiny) echo "--no-default-features --features server" ;;
    client) echo "--no-default-features --features client" ;;
    server-eth) echo "--no-default-features --features server,ethernet" ;;
    server-ipv6) echo "--no-default-features --features server,halfclose/proto-ipv6" ;;
    server-reno) echo "--no-default-features --features server,halfclose/socket-tcp-reno" ;;
    full-log) echo "--features log" ;;
    baseline) echo "--no-default-features" ;;
    esac
}
# Panic messages carry source paths: map the checkout and cargo's home to fixed names, so that the
# sizes do not depend on where the repository was cloned.
CARGO_HOME_DIR=${CARGO_HOME:-$HOME/.cargo}
REMAP=(--config "target.thumbv7m-none-eabi.rustflags=['--remap-path-prefix=$ROOT=/halfclose','--remap-path-prefix=$CARGO_HOME_DIR=/cargo']")
for v in "${VARIANTS[@]}"; do
    say "building the $v image (thumbv7m-none-eabi, release)"
    # One target directory for all but the last: they differ only in crate features, so `core`
    # is built once. Other compiler flags need a directory of their own.
    flags=() target_dir="$FW/target"
    if [[ $v == server-tiny ]]; then
        # Added to the rustflags of examples/cortex-m-qemu/.cargo/config.toml (`-Tlink.x`).
        flags=(--config "target.thumbv7m-none-eabi.rustflags=['-Zunstable-options','-Cpanic=immediate-abort']")
        target_dir="$FW/target/tiny"
    fi
    # shellcheck disable=SC2046
    (cd "$FW" && "${CARGO[@]}" build --release --locked -j "$JOBS" "${BUILD_STD[@]}" "${REMAP[@]}" "${flags[@]}" \
        --target-dir "$target_dir" $(features "$v"))
    cp "$target_dir/thumbv7m-none-eabi/release/halfclose-cortex-m-qemu" "$OUT/$v.elf"
done

# The full image with the library's `defmt` feature: its traces go to the host file defmt.bin,
# decoded below. DEFMT_LOG is read when the crates that log are compiled.
say "building the defmt image (full, --features defmt, DEFMT_LOG=debug)"
(cd "$FW" && DEFMT_LOG=debug "${CARGO[@]}" build --release --locked -j "$JOBS" "${BUILD_STD[@]}" \
    "${REMAP[@]}" --target-dir "$FW/target" --features defmt)
cp "$FW/target/thumbv7m-none-eabi/release/halfclose-cortex-m-qemu" "$OUT/defmt.elf"

# The image that talks to Linux over the board's Ethernet MAC; scripts/firmware-net.sh runs it
# against a network namespace at the end.
say "building the net image (--features net: the Stellaris Ethernet MAC)"
(cd "$FW" && "${CARGO[@]}" build --release --locked -j "$JOBS" "${BUILD_STD[@]}" \
    "${REMAP[@]}" --target-dir "$FW/target" --features net)
cp "$FW/target/thumbv7m-none-eabi/release/halfclose-cortex-m-qemu" "$OUT/net.elf"

# --- 4. Run each image on the emulated board ----------------------------------------------------
# Semihosting carries the output and the exit status (a panic or a fault exits with failure);
# `timeout` ends an image that hangs, and counts as a failure too. Every image runs, so one
# failure does not hide another.
failed=()
run_image() {
    local v=$1 status=0
    say "running the $v image on qemu-system-arm -machine lm3s6965evb (timeout ${QEMU_TIMEOUT}s)"
    # In $OUT: semihosting opens host files (the defmt image's defmt.bin) relative to QEMU.
    (cd "$OUT" && exec timeout --kill-after=5 "$QEMU_TIMEOUT" qemu-system-arm -machine lm3s6965evb \
        -nographic -monitor none -serial none \
        -semihosting-config enable=on,target=native -kernel "$OUT/$v.elf") \
        >"$OUT/$v.log" 2>&1 </dev/null || status=$?
    # QEMU's own notice when the program ends with SysTick still running is noise.
    grep -v 'Timer with period zero' "$OUT/$v.log" || true
    if ((status == 124 || status == 137)); then
        failed+=("$v (no exit within ${QEMU_TIMEOUT}s)")
    elif ((status != 0)); then
        failed+=("$v (exit status $status)")
    elif ! grep -q '^result: PASS$' "$OUT/$v.log"; then
        failed+=("$v (exited 0 without reporting PASS)")
    fi
}
rm -f "$OUT/defmt.bin"
for v in "${VARIANTS[@]}" defmt; do
    run_image "$v"
done
((${#failed[@]} == 0)) || die "failed on QEMU: ${failed[*]}"

# The defmt image's frames, decoded with the image's own string table: the library's state
# transitions must be there. defmt-print comes from crates.io, once per machine.
[[ -s $OUT/defmt.bin ]] || die "the defmt image wrote no defmt frames"
if ! command -v defmt-print >/dev/null; then
    say "installing defmt-print (cargo install --locked defmt-print)"
    "${CARGO[@]}" install --locked -q -j "$JOBS" defmt-print --version '^1'
    export PATH="$PATH:${CARGO_HOME_DIR}/bin"
fi
defmt-print -e "$OUT/defmt.elf" <"$OUT/defmt.bin" >"$OUT/defmt-frames.log" 2>&1 || true
say "defmt frames decoded ($(wc -l <"$OUT/defmt-frames.log") lines), the library's own:"
grep 'halfclose' "$OUT/defmt-frames.log" || true
for line in 'halfclose server: accepting=>sending(0)' 'halfclose client: receiving(65536)=>replying(65536)' \
    'halfclose server: half-closed(65536)=>done' 'halfclose client: replying(65536)=>done'; do
    grep -qF "$line" "$OUT/defmt-frames.log" || die "defmt output lacks \"$line\" (see $OUT/defmt-frames.log)"
    # The same transitions through `log` and the image's semihosting logger.
    grep -qF "$line" "$OUT/full-log.log" || die "the log image's output lacks \"$line\" (see $OUT/full-log.log)"
done

# --- 5. The library alone, for a Cortex-M0 (no atomic CAS) and a Cortex-M4F --------------------
say "building the library alone (--no-default-features) for thumbv6m-none-eabi and thumbv7em-none-eabihf"
for target in thumbv6m-none-eabi thumbv7em-none-eabihf; do
    (cd "$ROOT" && "${CARGO[@]}" build --locked -j "$JOBS" "${BUILD_STD[@]}" --lib \
        --no-default-features --target "$target" --target-dir "$ROOT/target/firmware-lib")
done
say "building the library with every protocol feature (no log) for thumbv6m-none-eabi"
(cd "$ROOT" && "${CARGO[@]}" build --locked -j "$JOBS" "${BUILD_STD[@]}" --lib \
    --no-default-features --features medium-ethernet,proto-ipv6 --target thumbv6m-none-eabi \
    --target-dir "$ROOT/target/firmware-lib")
say "building the library with defmt for thumbv7em-none-eabihf"
(cd "$ROOT" && "${CARGO[@]}" build --locked -j "$JOBS" "${BUILD_STD[@]}" --lib \
    --no-default-features --features defmt --target thumbv7em-none-eabihf \
    --target-dir "$ROOT/target/firmware-lib")
# `log` and `defmt` together must be refused at compile time.
if (cd "$ROOT" && "${CARGO[@]}" build --locked -q -j "$JOBS" "${BUILD_STD[@]}" --lib \
    --no-default-features --features log,defmt --target thumbv7em-none-eabihf \
    --target-dir "$ROOT/target/firmware-lib") >"$OUT/log-defmt.log" 2>&1; then
    die "the library built with both log and defmt; it must refuse"
fi
# halfclose's compile_error! refuses the pair (smoltcp does too when its own `log` is on).
grep -Eq 'error: .*(log.*defmt|defmt.*log)' "$OUT/log-defmt.log" ||
    die "log+defmt failed for another reason: $(tail -5 "$OUT/log-defmt.log")"
say "log + defmt together: refused at compile time, as intended"

# --- 6. Footprint ------------------------------------------------------------------------------
section() { size -A "$1" | awk -v s="$2" '$1 == s { print $2; found = 1 } END { if (!found) print 0 }'; }
field() { sed -n "s/.*$2 \([0-9]*\).*/\1/p" "$OUT/$1.log" | head -n1; }
flash_of() { echo $(($(section "$1" .vector_table) + $(section "$1" .text) + $(section "$1" .rodata) + $(section "$1" .data))); }
base_flash=$(flash_of "$OUT/baseline.elf")
{
    echo "| image | \`.text\` | \`.rodata\` | \`.data\` | \`.bss\` | flash | flash without the 64 KiB payload | of which beyond the baseline | stack peak | RAM beyond socket buffers and loopback ring |"
    echo "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
    for v in "${VARIANTS[@]}"; do
        elf="$OUT/$v.elf"
        text=$(section "$elf" .text); ro=$(section "$elf" .rodata)
        data=$(section "$elf" .data); bss=$(section "$elf" .bss)
        flash=$(flash_of "$elf")
        # The server's file is 64 KiB of `.rodata`; the client checks bytes without storing them.
        case $v in full* | server*) payload=65536 ;; *) payload=0 ;; esac
        stack=$(field "$v" 'stack peak'); sockbuf=$(field "$v" 'socket buffers'); ring=$(field "$v" 'loopback ring')
        [[ -n $stack && -n $sockbuf && -n $ring ]] || die "the $v image's output lacks its ram line"
        ram=$((data + bss + stack - sockbuf - ring))
        case $v in
        full) name="full (server + client)" ;;
        server) name="server only" ;;
        client) name="client only" ;;
        baseline) name="baseline (no network)" ;;
        server-eth) name="server only, Ethernet medium" ;;
        server-tiny) name="server only, \`-Cpanic=immediate-abort\`" ;;
        server-ipv6) name="server only, \`proto-ipv6\`" ;;
        server-reno) name="server only, \`socket-tcp-reno\`" ;;
        full-log) name="full, \`log\` (a semihosting logger, debug level)" ;;
        esac
        awk -v n="$name" -v t="$text" -v r="$ro" -v d="$data" -v b="$bss" -v f="$flash" -v p="$payload" \
            -v z="$base_flash" -v s="$stack" -v m="$ram" 'function k(x) { return sprintf("%d (%.1f KiB)", x, x / 1024) }
            BEGIN { printf "| %s | %d | %d | %d | %d | %s | %s | %s | %d | %s |\n",
                    n, t, r, d, b, k(f), k(f - p), k(f - p - z), s, k(m) }'
    done
} >"$FOOTPRINT_MD"
say "footprint (bytes; thumbv7m-none-eabi, opt-level \"s\", fat LTO, one codegen unit; made by: bash scripts/firmware.sh)"
cat "$FOOTPRINT_MD"

# What each of the library's features adds: an image with the feature against the same image
# without it. Flash is .vector_table + .text + .rodata + .data; RAM is .data + .bss + the stack
# peak (socket buffers and loopback ring are the same on both sides).
ram_of() { echo $(($(section "$OUT/$1.elf" .data) + $(section "$OUT/$1.elf" .bss) + $(field "$1" 'stack peak'))); }
FEATURE_COSTS_MD=${FEATURE_COSTS_MD:-$OUT/feature-costs.md}
{
    echo "| feature | measured as | flash | RAM |"
    echo "| --- | --- | ---: | ---: |"
    cost() { # feature, with-image, without-image, how
        awk -v n="$1" -v h="$4" -v f=$(($(flash_of "$OUT/$2.elf") - $(flash_of "$OUT/$3.elf"))) \
            -v r=$(($(ram_of "$2") - $(ram_of "$3"))) 'BEGIN { printf "| `%s` | %s | %+d | %+d |\n", n, h, f, r }'
    }
    cost proto-ipv6 server-ipv6 server "server only, with and without"
    cost socket-tcp-reno server-reno server "server only, with and without"
    cost log full-log full "full image, with and without (a semihosting logger, debug level)"
    cost medium-ethernet server-eth server "server only over an Ethernet loopback (ARP) vs bare IP"
    cost defmt defmt full "full image with defmt traces (DEFMT_LOG=debug, semihosting logger) vs none"
} >"$FEATURE_COSTS_MD"
say "what each library feature costs (bytes; same build)"
cat "$FEATURE_COSTS_MD"
for v in "${VARIANTS[@]}"; do
    sed -n "s/^\(ram\|sizes\): /$v: /p" "$OUT/$v.log"
done
if command -v llvm-dwarfdump >/dev/null; then
    say "code of the server-only image by crate (made by: python3 scripts/size-by-crate.py)"
    python3 "$ROOT/scripts/size-by-crate.py" "$OUT/server.elf" /halfclose | tee "$OUT/server-by-crate.md"
else
    say "llvm-dwarfdump not found (Debian package llvm): no breakdown by crate"
fi
say "firmware: all images passed"

# --- 7. The net image against Linux, over a TAP device in a network namespace of its own --------
bash "$ROOT/scripts/firmware-net.sh" "$OUT/net.elf"
bash "$ROOT/scripts/firmware-async.sh"
