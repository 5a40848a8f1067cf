#!/usr/bin/env bash
# Build the firmware in firmware/cortex-m-qemu for three boards on two architectures, run every
# image on QEMU (LM3S6965, Cortex-M3, thumbv7m-none-eabi; micro:bit, Cortex-M0, thumbv6m-none-eabi;
# QEMU's RISC-V virt board, RV32IMAC, riscv32imac-unknown-none-elf), measure instructions per
# transferred byte on each, build the library alone for thumbv6m-none-eabi and
# thumbv7em-none-eabihf, print the footprint table, and hold the small images to the budget.
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
#   COST_MD       where to write the instructions-per-byte table (default target/firmware/cost.md)
#   SMOLTCP       stock (default) or patched: build against smoltcp with patches/ applied (the
#                 budget then is printed, not held: it holds the stock build)
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
FW="$ROOT/firmware/cortex-m-qemu"
OUT="$ROOT/target/firmware"
QEMU_TIMEOUT=${QEMU_TIMEOUT:-60}
FOOTPRINT_MD=${FOOTPRINT_MD:-$OUT/footprint.md}
COST_MD=${COST_MD:-$OUT/cost.md}
# The budget for the server-only and the client-only image of every board: flash without the
# payload, and RAM beyond the socket buffers and the loopback ring.
FLASH_BUDGET=24576
RAM_BUDGET=2048
# The boards whose images are held to it: all three.
BUDGET_BOARDS=(lm3s6965 microbit virt)
# Room to spare: each one-side image of every board is to leave at least this much of the budget
# unused (so at most 22,528 bytes of flash and 1,536 of RAM), and the LM3S6965's server-only
# image is to fit in 20 KiB of flash. SPARE_HELD lists the limits held, as board/image/flash or
# board/image/ram: the run fails if one of them is missed. All twelve are; a limit left out
# would be measured, and its miss printed with its size.
FLASH_SPARE=2048
RAM_SPARE=512
LM3S_SERVER_FLASH=20480
SPARE_HELD=(lm3s6965/client/flash lm3s6965/client/ram microbit/client/flash microbit/client/ram
    virt/client/ram lm3s6965/server/ram microbit/server/ram virt/server/ram virt/client/flash
    lm3s6965/server/flash microbit/server/flash virt/server/flash)

say() { printf '== %s\n' "$*"; }
die() { printf 'firmware.sh: error: %s\n' "$*" >&2; exit 1; }

# --- 1. What the build needs, installed only when missing -------------------------------------
# shellcheck source=scripts/lib/firmware.sh
source "$ROOT/scripts/lib/firmware.sh"
fw_install_packages
# The reader of the small images' records, on the records no run prints (errors, a wrong file).
python3 "$ROOT/scripts/summary_test.py" || die "scripts/summary_test.py failed"

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
# SMOLTCP=patched: every build against the copy of smoltcp with patches/ applied that the TAP
# programs use (scripts/smoltcp-patched.sh). The path patch rewrites the lock files, so builds
# drop --locked, and the lock files are put back at exit.
if [[ ${SMOLTCP:-stock} == patched ]]; then
    (cd "$ROOT" && source scripts/lib/smoltcp.sh && smoltcp_patched "$ROOT/target/smoltcp-patched")
    locks=$(mktemp -d)
    cp "$ROOT/Cargo.lock" "$locks/root" && cp "$FW/Cargo.lock" "$locks/fw"
    trap 'cp "$locks/root" "$ROOT/Cargo.lock"; cp "$locks/fw" "$FW/Cargo.lock"; rm -rf "$locks"' EXIT
    # The patch goes after the subcommand, beside the callers' own `--config` values: cargo
    # drops a `--config` list given before the subcommand when another follows it.
    patched_cargo() {
        local a args=()
        for a in "${@:2}"; do [[ $1 == build && $a == --locked ]] || args+=("$a"); done
        /usr/bin/cargo "$1" --config "patch.crates-io.smoltcp.path='$ROOT/target/smoltcp-patched'" "${args[@]}"
    }
    CARGO=(patched_cargo)
fi
BUILD_STD=(-Zbuild-std=core)
for t in THUMBV6M_NONE_EABI THUMBV7M_NONE_EABI THUMBV7EM_NONE_EABIHF RISCV32IMAC_UNKNOWN_NONE_ELF; do
    export "CARGO_TARGET_${t}_LINKER=$RUST_LLD"
done
JOBS=${CARGO_BUILD_JOBS:-2}

say "toolchain: $(/usr/bin/rustc --version), $(/usr/bin/cargo --version | cut -d' ' -f1-2), linker $RUST_LLD"
mkdir -p "$OUT"

# --- 3. The firmware images --------------------------------------------------------------------
# The boards, by the target that selects them (firmware/cortex-m-qemu/build.rs).
BOARDS=(lm3s6965 microbit virt)
target_of() {
    case $1 in lm3s6965) echo thumbv7m-none-eabi ;; microbit) echo thumbv6m-none-eabi ;;
    virt) echo riscv32imac-unknown-none-elf ;; esac
}
machine_of() { case $1 in lm3s6965) echo lm3s6965evb ;; microbit) echo microbit ;; virt) echo virt ;; esac; }
core_of() {
    case $1 in lm3s6965) echo "LM3S6965 (Cortex-M3)" ;; microbit) echo "micro:bit (Cortex-M0)" ;;
    virt) echo "QEMU virt (RV32IMAC)" ;; esac
}
# The emulator and its options for the board: the virt board starts the image itself, without
# firmware (`-bios none`).
qemu_of() { case $1 in virt) echo "qemu-system-riscv32 -bios none" ;; *) echo qemu-system-arm ;; esac; }

# Every image: board, name, build, how it runs, cargo arguments.
#   build `messages`: the default panic strategy and the `messages` feature: panic messages and
#         errors in words, through core::fmt.
#   build `small`: no `messages` (no core::fmt) and `-Cpanic=immediate-abort` (unstable; a
#         panic becomes a fault, which the image reports as a failure): what a small port ships.
#         Its banner, summary and errors are records of numbers, which scripts/summary.py puts
#         into the words of the `messages` build. On RISC-V, whose code is the largest, the
#         firmware's own crate is built for size (`opt-level = "z"`: smoltcp's state machine is
#         inlined into its loop functions) and every dependency as before (`"s"`: the copies,
#         checksums and ring buffers every byte goes through). Not on the Arm boards: there it
#         takes 204 to 260 bytes more stack, which their RAM limits have no room for.
#   run `transfer`: the in-memory exchange, PASS only if the file arrived byte-exact (or, in a
#         one-side image, the side did what it can alone); `cost`: the same under `-icount`,
#         swept over MTUs and buffer sizes; `net`: run by scripts/firmware-net.sh at the end.
# full: server and client; full-small: the same in the small build, so that its transfer path
# runs too; server / client: one side each, the images the budget is for;
# baseline: no network (start-up, SysTick, output), subtracted to show what the network costs;
# server-messages: the server with messages, for what they cost; server-eth: the server over an
# Ethernet loopback (ARP, Ethernet framing), as a board's MAC needs; cost-memcpy and full-memcpy:
# the cost and the full image with the firmware's own memcpy for Cortex-M (src/memcpy.rs, the
# feature `memcpy`), which both check against a byte loop first, the full one then through the
# byte-exact transfer.
IMAGES=(
    "lm3s6965 full messages transfer"
    "lm3s6965 full-small small transfer --no-default-features --features server,client"
    "lm3s6965 server small transfer --no-default-features --features server"
    "lm3s6965 client small transfer --no-default-features --features client"
    "lm3s6965 baseline small transfer --no-default-features"
    "lm3s6965 server-messages messages transfer --no-default-features --features server,messages"
    "lm3s6965 server-eth small transfer --no-default-features --features server,ethernet"
    "lm3s6965 cost messages cost --no-default-features --features cost,messages"
    "lm3s6965 cost-memcpy messages cost --no-default-features --features cost,messages,memcpy"
    "lm3s6965 full-memcpy messages transfer --features memcpy"
    "lm3s6965 defmt messages transfer --features defmt"
    "lm3s6965 net messages net --features net"
    "microbit full messages transfer"
    "microbit full-small small transfer --no-default-features --features server,client"
    "microbit server small transfer --no-default-features --features server"
    "microbit client small transfer --no-default-features --features client"
    "microbit baseline small transfer --no-default-features"
    "microbit cost messages cost --no-default-features --features cost,messages"
    "microbit cost-memcpy messages cost --no-default-features --features cost,messages,memcpy"
    "microbit full-memcpy messages transfer --features memcpy"
    "virt full messages transfer"
    "virt full-small small transfer --no-default-features --features server,client"
    "virt server small transfer --no-default-features --features server"
    "virt client small transfer --no-default-features --features client"
    "virt baseline small transfer --no-default-features"
    "virt cost messages cost --no-default-features --features cost,messages"
    "virt net messages net --features net"
)
# The images of the footprint table, in its order.
TABLE=(full full-small server client baseline server-messages server-eth)

# Panic messages carry source paths: map the checkout and cargo's home to fixed names, so that the
# sizes do not depend on where the repository was cloned.
CARGO_HOME_DIR=${CARGO_HOME:-$HOME/.cargo}
build_image() {
    local board=$1 name=$2 kind=$3 target
    shift 4
    target=$(target_of "$board")
    # Added to the rustflags of firmware/cortex-m-qemu/.cargo/config.toml (`-Tlink.x`).
    local flags=(--config "target.$target.rustflags=['--remap-path-prefix=$ROOT=/halfclose','--remap-path-prefix=$CARGO_HOME_DIR=/cargo']")
    if [[ $kind == small ]]; then
        flags+=(--config "target.$target.rustflags=['-Zunstable-options','-Cpanic=immediate-abort']")
        [[ $board == virt ]] && flags+=(--config 'profile.release.opt-level="z"' --config 'profile.release.package."*".opt-level="s"')
    fi
    say "building $board/$name ($target, $kind build, ${*:-default features})"
    # One target directory per kind of build: images differing only in crate features share
    # `core` and the dependencies. DEFMT_LOG is read when the crates that log are compiled.
    (cd "$FW" && DEFMT_LOG=debug "${CARGO[@]}" build --release --locked -j "$JOBS" "${BUILD_STD[@]}" \
        --target "$target" --target-dir "$FW/target/$kind" "${flags[@]}" "$@")
    cp "$FW/target/$kind/$target/release/halfclose-cortex-m-qemu" "$OUT/$board-$name.elf"
}
for image in "${IMAGES[@]}"; do
    # shellcheck disable=SC2086
    build_image $image
done

# --- 4. Run each image on its emulated board ----------------------------------------------------
# Semihosting carries the output and the exit status (a panic or a fault exits with failure);
# `timeout` ends an image that hangs, and counts as a failure too. Every image runs, so one
# failure does not hide another. The cost images run with `-icount shift=0`: one instruction per
# nanosecond of virtual time, which SysTick then counts (src/cost.rs calibrates the ratio).
failed=()
run_image() {
    local board=$1 v=$2 mode=$3 status=0 icount=() qemu
    [[ $mode == cost ]] && icount=(-icount shift=0,align=off,sleep=off)
    read -r -a qemu <<<"$(qemu_of "$board")"
    say "running $board/$v on ${qemu[*]} -machine $(machine_of "$board") ${icount[*]} (timeout ${QEMU_TIMEOUT}s)"
    # In $OUT: semihosting opens host files (the defmt image's defmt.bin) relative to QEMU.
    (cd "$OUT" && exec timeout --kill-after=5 "$QEMU_TIMEOUT" "${qemu[@]}" -machine "$(machine_of "$board")" \
        -nographic -monitor none -serial none "${icount[@]}" \
        -semihosting-config enable=on,target=native -kernel "$OUT/$board-$v.elf") \
        >"$OUT/$board-$v.log" 2>&1 </dev/null || status=$?
    # QEMU's own notice when the program ends with SysTick still running is noise. The small
    # images' records are put into words (the raw output is kept beside, as .raw.log).
    mv "$OUT/$board-$v.log" "$OUT/$board-$v.raw.log"
    grep -v 'Timer with period zero' "$OUT/$board-$v.raw.log" | python3 "$ROOT/scripts/summary.py" "$board" \
        >"$OUT/$board-$v.log" || failed+=("$board/$v (a record that does not read; see $OUT/$board-$v.raw.log)")
    cat "$OUT/$board-$v.log"
    if ((status == 124 || status == 137)); then
        failed+=("$board/$v (no exit within ${QEMU_TIMEOUT}s)")
    elif ((status != 0)); then
        failed+=("$board/$v (exit status $status)")
    elif ! grep -q '^result: PASS$' "$OUT/$board-$v.log"; then
        failed+=("$board/$v (exited 0 without reporting PASS)")
    fi
}
rm -f "$OUT/defmt.bin"
for image in "${IMAGES[@]}"; do
    read -r board name _ mode _ <<<"$image"
    [[ $mode == net ]] || run_image "$board" "$name" "$mode"
done
((${#failed[@]} == 0)) || die "failed on QEMU: ${failed[*]}"
# The small build's records, put into words, say what the `messages` build says of the same
# exchange: the simulated clock makes both runs the same, so the lines of the banner, of each
# side and of simulated time match word for word (the counter's ticks and the stack differ).
for board in "${BOARDS[@]}"; do
    same() { grep -E '^(halfclose on|server:|client:|time:)' "$OUT/$board-$1.log" | sed 's/ polls), .*/ polls)/'; }
    diff <(same full) <(same full-small) >/dev/null ||
        die "$board: the small build's summary, put into words, differs from the messages build's: $(diff <(same full) <(same full-small) | head -5)"
done
say "the small images' records read as the messages images' words (banner, server, client, simulated time)"

# The defmt image's frames, decoded with the image's own string table: the library's state
# transitions must be there. defmt-print comes from crates.io, once per machine.
[[ -s $OUT/defmt.bin ]] || die "the defmt image wrote no defmt frames"
if ! command -v defmt-print >/dev/null; then
    say "installing defmt-print (cargo install --locked defmt-print)"
    "${CARGO[@]}" install --locked -q -j "$JOBS" defmt-print --version '^1'
    export PATH="$PATH:${CARGO_HOME_DIR}/bin"
fi
defmt-print -e "$OUT/lm3s6965-defmt.elf" <"$OUT/defmt.bin" >"$OUT/defmt.log" 2>&1 || true
say "defmt frames decoded ($(wc -l <"$OUT/defmt.log") lines), the library's own:"
grep 'halfclose' "$OUT/defmt.log" || true
for line in 'halfclose server: accepting=>sending(0)' 'halfclose client: receiving(65536)=>replying(65536)' \
    'halfclose server: half-closed(65536)=>done' 'halfclose client: replying(65536)=>done'; do
    grep -qF "$line" "$OUT/defmt.log" || die "defmt output lacks \"$line\" (see $OUT/defmt.log)"
done

# --- 5. The library alone, for a Cortex-M0 (no atomic CAS) and a Cortex-M4F --------------------
say "building the library alone (--no-default-features) for thumbv6m-none-eabi and thumbv7em-none-eabihf"
for target in thumbv6m-none-eabi thumbv7em-none-eabihf; do
    (cd "$ROOT" && "${CARGO[@]}" build --locked -j "$JOBS" "${BUILD_STD[@]}" -p halfclose --lib \
        --no-default-features --target "$target" --target-dir "$ROOT/target/firmware-lib")
done
say "building the library with every protocol feature (no log) for thumbv6m-none-eabi"
(cd "$ROOT" && "${CARGO[@]}" build --locked -j "$JOBS" "${BUILD_STD[@]}" -p halfclose --lib \
    --no-default-features --features medium-ethernet,proto-ipv6 --target thumbv6m-none-eabi \
    --target-dir "$ROOT/target/firmware-lib")
say "building the library with defmt for thumbv7em-none-eabihf"
(cd "$ROOT" && "${CARGO[@]}" build --locked -j "$JOBS" "${BUILD_STD[@]}" -p halfclose --lib \
    --no-default-features --features defmt --target thumbv7em-none-eabihf \
    --target-dir "$ROOT/target/firmware-lib")
# `log` and `defmt` together must be refused at compile time.
if (cd "$ROOT" && "${CARGO[@]}" build --locked -q -j "$JOBS" "${BUILD_STD[@]}" -p halfclose --lib \
    --no-default-features --features log,defmt --target thumbv7em-none-eabihf \
    --target-dir "$ROOT/target/firmware-lib") >"$OUT/log-defmt.log" 2>&1; then
    die "the library built with both log and defmt; it must refuse"
fi
# smoltcp compiles first and refuses the pair itself; halfclose's own compile_error! says the same.
grep -Eq 'error: .*(log.*defmt|defmt.*log)' "$OUT/log-defmt.log" ||
    die "log+defmt failed for another reason: $(tail -5 "$OUT/log-defmt.log")"
say "log + defmt together: refused at compile time, as intended"

# --- 6. Footprint, and the budget ---------------------------------------------------------------
section() { size -A "$1" | awk -v s="$2" '$1 == s { print $2; found = 1 } END { if (!found) print 0 }'; }
field() { sed -n "s/.*$2 \([0-9]*\).*/\1/p" "$OUT/$1.log" | head -n1; }
# What is in flash: cortex-m-rt's vector table, riscv-rt's start-up glue (`.init.rust`), code,
# constants, and the initial values of `.data`.
flash_of() {
    echo $(($(section "$1" .vector_table) + $(section "$1" .init.rust) + $(section "$1" .text) +
        $(section "$1" .rodata) + $(section "$1" .data)))
}
over_budget=()
margins=()
spare_missed=()
# The flash limit for room to spare: 20 KiB for the LM3S6965's server-only image, the budget
# less FLASH_SPARE for the others.
spare_flash_limit() {
    if [[ $1/$2 == lm3s6965/server ]]; then echo "$LM3S_SERVER_FLASH"; else echo $((FLASH_BUDGET - FLASH_SPARE)); fi
}
# A cell of the margins table for one limit of room to spare: the value and its limit, or how far
# over it is.
spare_cell() {
    local what=$1 value=$2 limit=$3
    if ((value <= limit)); then
        printf '%s %d of %d' "$what" "$value" "$limit"
    else
        printf '%s %d over' "$what" $((value - limit))
    fi
}
{
    echo "| board | image | \`.text\` | \`.rodata\` | \`.data\` | \`.bss\` | flash | flash without the 64 KiB payload | of which beyond the baseline | stack peak | RAM beyond socket buffers and loopback ring |"
    echo "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
    for board in "${BOARDS[@]}"; do
        base_flash=$(flash_of "$OUT/$board-baseline.elf")
        for v in "${TABLE[@]}"; do
            elf="$OUT/$board-$v.elf"
            [[ -f $elf ]] || continue
            text=$(section "$elf" .text); ro=$(section "$elf" .rodata)
            data=$(section "$elf" .data); bss=$(section "$elf" .bss)
            flash=$(flash_of "$elf")
            # The server's file is 64 KiB of `.rodata`; the client checks bytes without storing them.
            case $v in full* | server*) payload=65536 ;; *) payload=0 ;; esac
            stack=$(field "$board-$v" 'stack peak'); sockbuf=$(field "$board-$v" 'socket buffers')
            ring=$(field "$board-$v" 'loopback ring')
            [[ -n $stack && -n $sockbuf && -n $ring ]] || die "the $board/$v image's output lacks its ram line"
            ram=$((data + bss + stack - sockbuf - ring))
            case $v in
            full) name="full (server + client), messages" ;;
            full-small) name="full (server + client)" ;;
            server) name="**server only**" ;;
            client) name="**client only**" ;;
            baseline) name="baseline (no network)" ;;
            server-messages) name="server only, messages" ;;
            server-eth) name="server only, Ethernet medium" ;;
            esac
            if [[ $v == server || $v == client ]]; then
                held=no
                [[ " ${BUDGET_BOARDS[*]} " == *" $board "* ]] && held=yes
                spare_flash=$(spare_cell flash $((flash - payload)) "$(spare_flash_limit "$board" "$v")")
                spare_ram=$(spare_cell RAM "$ram" $((RAM_BUDGET - RAM_SPARE)))
                for what in flash ram; do
                    if [[ $what == flash ]]; then value=$((flash - payload)); limit=$(spare_flash_limit "$board" "$v")
                    else value=$ram; limit=$((RAM_BUDGET - RAM_SPARE)); fi
                    ((value <= limit)) && continue
                    if [[ " ${SPARE_HELD[*]} " == *" $board/$v/$what "* ]]; then
                        over_budget+=("$board/$v: $what $value bytes > $limit (room to spare)")
                    else
                        spare_missed+=("$board/$v $what: $value bytes, $((value - limit)) over the limit of $limit")
                    fi
                done
                margins+=("| $(core_of "$board") | $v | $((flash - payload)) | $((FLASH_BUDGET - flash + payload)) | $ram | $((RAM_BUDGET - ram)) | $held | $spare_flash; $spare_ram |")
                if [[ $held == yes ]]; then
                    ((flash - payload <= FLASH_BUDGET)) ||
                        over_budget+=("$board/$v: $((flash - payload)) bytes of flash without payload > $FLASH_BUDGET")
                    ((ram <= RAM_BUDGET)) ||
                        over_budget+=("$board/$v: $ram bytes of RAM beyond buffers > $RAM_BUDGET")
                fi
            fi
            awk -v c="$(core_of "$board")" -v n="$name" -v t="$text" -v r="$ro" -v d="$data" -v b="$bss" \
                -v f="$flash" -v p="$payload" -v z="$base_flash" -v s="$stack" -v m="$ram" \
                'function k(x) { return sprintf("%d (%.1f KiB)", x, x / 1024) }
                BEGIN { printf "| %s | %s | %d | %d | %d | %d | %s | %s | %s | %d | %s |\n",
                        c, n, t, r, d, b, k(f), k(f - p), k(f - p - z), s, k(m) }'
        done
    done
} >"$FOOTPRINT_MD"
say "footprint (bytes; opt-level \"s\", fat LTO, one codegen unit, and for RISC-V's small build the firmware's own crate at \"z\"; **bold**: the small build the budget is for; made by: bash scripts/firmware.sh)"
cat "$FOOTPRINT_MD"
for board in "${BOARDS[@]}"; do
    for v in "${TABLE[@]}"; do
        [[ -f $OUT/$board-$v.log ]] && sed -n "s/^\(ram\|sizes\): /$board\/$v: /p" "$OUT/$board-$v.log"
    done
done
say "margins: what the one-side images leave of the budget ($FLASH_BUDGET bytes of flash without the payload, $RAM_BUDGET of RAM beyond the buffers; negative: over), and their room to spare (at most $((FLASH_BUDGET - FLASH_SPARE)) bytes of flash, $LM3S_SERVER_FLASH for the LM3S6965's server, and $((RAM_BUDGET - RAM_SPARE)) of RAM)"
{
    echo "| board | image | flash without payload | flash margin | RAM beyond buffers | RAM margin | held to the budget | room to spare (limit) |"
    echo "| --- | --- | ---: | ---: | ---: | ---: | --- | --- |"
    printf '%s\n' "${margins[@]}"
} | tee "$OUT/margins.md"
say "room to spare: held (the run fails without it): ${SPARE_HELD[*]}"
for miss in "${spare_missed[@]}"; do
    say "room to spare: NOT MET, not yet held: $miss"
done

# Instructions per transferred byte, from the cost images' lines
# "cost: mtu M buffer B: 65536 bytes, N instructions, X.Y per byte, P polls".
{
    echo "| board | MTU | socket buffer | instructions (64 KiB exchange) | per byte | polls |"
    echo "| --- | ---: | ---: | ---: | ---: | ---: |"
    for log in "${BOARDS[@]/%/-cost}" lm3s6965-cost-memcpy microbit-cost-memcpy; do
        name=$(core_of "${log%%-*}")
        [[ $log == *-memcpy ]] && name+=", the firmware's memcpy"
        sed -n 's/^cost: mtu \([0-9]*\) buffer \([0-9]*\): [0-9]* bytes, \([0-9]*\) instructions, \([0-9.]*\) per byte, \([0-9]*\) polls$/\1 \2 \3 \4 \5/p' \
            "$OUT/$log.log" | while read -r mtu buffer total per polls; do
            echo "| $name | $mtu | $buffer | $total | $per | $polls |"
        done
    done
} >"$COST_MD"
say "instructions per byte under qemu -icount (the exchange with a counting sink, checksums on, no delayed ACK)"
cat "$COST_MD"
for board in "${BOARDS[@]}"; do
    best=$(sed -n 's/^cost: mtu \([0-9]*\) buffer \([0-9]*\): .* \([0-9.]*\) per byte.*/\3 \1 \2/p' "$OUT/$board-cost.log" | sort -n | head -n1)
    [[ -n $best ]] || die "the $board cost image printed no figures"
    read -r per mtu buffer <<<"$best"
    say "fewest on $(core_of "$board"): $per instructions per byte at MTU $mtu with $buffer-byte buffers"
done

if command -v llvm-dwarfdump >/dev/null; then
    for v in server-messages server; do
        say "code of the LM3S6965 $v image by crate (made by: python3 scripts/size-by-crate.py)"
        python3 "$ROOT/scripts/size-by-crate.py" "$OUT/lm3s6965-$v.elf" /halfclose | tee "$OUT/$v-by-crate.md"
    done
else
    say "llvm-dwarfdump not found (Debian package llvm): no breakdown by crate"
fi
# The budget and the room to spare hold the stock build, the one a user gets from crates.io. With
# SMOLTCP=patched the images carry the patches' code too: the same figures are printed, as what
# the patches cost, and not held.
if [[ ${SMOLTCP:-stock} == patched ]]; then
    ((${#over_budget[@]} == 0)) || say "patched smoltcp: over the stock build's budget (not held): ${over_budget[*]}"
    over_budget=()
fi
((${#over_budget[@]} == 0)) || die "over the budget: ${over_budget[*]}"
say "firmware: all images passed, server-only and client-only of ${BUDGET_BOARDS[*]} within $FLASH_BUDGET bytes of flash and $RAM_BUDGET bytes of RAM; room to spare held for ${SPARE_HELD[*]}, ${#spare_missed[@]} limit(s) not met yet"

# --- 7. The net images against Linux, over a TAP device in a network namespace of its own -------
# The LM3S6965 over its Ethernet MAC, the RISC-V virt board over virtio-net.
bash "$ROOT/scripts/firmware-net.sh" "$OUT/lm3s6965-net.elf"
bash "$ROOT/scripts/firmware-net.sh" "$OUT/virt-net.elf"

# --- 8. Other firmware ----------------------------------------------------------------------------
# Each further firmware crate brings its own script, called here on a line of its own.
bash "$ROOT/scripts/firmware-async.sh"
