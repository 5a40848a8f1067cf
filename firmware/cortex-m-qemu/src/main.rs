//! halfclose on a bare-metal Cortex-M: the server sends a 64 KiB file, half-closes, and waits for
//! the client's `"Thank you\0"`, both on one smoltcp interface over the crate's heapless loopback.
//!
//! Runs on QEMU's `lm3s6965evb` (LM3S6965, Cortex-M3: 256 KiB flash, 64 KiB RAM) when built for
//! `thumbv7m-none-eabi`, and on QEMU's `microbit` (nRF51822, Cortex-M0: 256 KiB flash, 16 KiB
//! RAM) when built for `thumbv6m-none-eabi` (`src/board.rs`). Output and the exit status go
//! through semihosting, so QEMU exits 0 only when the file arrived intact and the server got its
//! reply.
//!
//! Features pick what the image contains: `server` and `client` (both by default). The
//! server-only image listens for a simulated second and the client-only image finds nobody
//! listening; they exist to measure each side's footprint. With neither, the image is the
//! baseline: start-up and semihosting output only, to subtract from the others. `messages`
//! (default) adds `core::fmt` for panic messages and errors in words; `cost` makes the image
//! that measures instructions per byte.

#![no_std]
#![no_main]

// Each image uses what it needs of these; the rest is compiled out as dead code.
// (The small build's records leave the board's name to the host.)
#[cfg_attr(
    any(
        not(any(feature = "server", feature = "client")),
        feature = "net",
        not(feature = "messages")
    ),
    allow(dead_code)
)]
mod board;
mod clock;
#[cfg(feature = "cost")]
mod cost;
#[cfg(feature = "defmt")]
mod defmt_log;
#[cfg(feature = "net")]
mod net;
#[cfg(all(feature = "net", target_arch = "arm"))]
mod phy;
// The `net` image prints through `hprintln!`; the `cost` image has no reply to quote.
#[cfg(all(feature = "memcpy", target_arch = "arm"))]
mod memcpy;
#[cfg_attr(any(feature = "net", feature = "cost"), allow(dead_code))]
mod out;
#[cfg(target_arch = "riscv32")]
mod save_restore;
#[cfg(all(
    any(feature = "server", feature = "client"),
    not(any(feature = "net", feature = "cost"))
))]
mod transfer;

#[cfg(target_arch = "arm")]
use cortex_m_rt::{ExceptionFrame, entry, exception};
// Semihosting, by the same name on every architecture: the crates have the same interface.
#[cfg(target_arch = "arm")]
use cortex_m_semihosting as semihosting;
#[cfg(target_arch = "riscv32")]
use riscv_rt::entry;
#[cfg(target_arch = "riscv32")]
use riscv_semihosting as semihosting;
// The board's Ethernet MAC, the file and its checking sink, the stack-peak probe and the exit
// through semihosting: shared with the async image (`firmware/common`).
#[cfg(all(feature = "net", target_arch = "arm"))]
use halfclose_firmware_common::enet;
use halfclose_firmware_common::exit;
#[cfg(any(feature = "server", feature = "client"))]
use halfclose_firmware_common::payload;
#[cfg_attr(any(feature = "cost", feature = "net"), allow(unused_imports))]
use halfclose_firmware_common::stack;

use out::{hex, line};

#[entry]
fn main() -> ! {
    // The copy every other line relies on, checked before it is used for the run.
    #[cfg(all(feature = "memcpy", target_arch = "arm"))]
    if !memcpy::self_test() {
        line!("error: memcpy differs from a byte loop");
        finish(false);
    }
    // RISC-V: the routines that save and restore registers for most functions, checked first.
    #[cfg(all(target_arch = "riscv32", feature = "messages"))]
    if let Err(n) = save_restore::check() {
        line!(
            "error: __riscv_save_",
            out::dec(n.into()),
            " or its restore is wrong"
        );
        finish(false);
    }
    #[cfg(feature = "net")]
    let passed = net::run();
    #[cfg(all(feature = "cost", not(feature = "net")))]
    let passed = cost::run();
    #[cfg(all(
        any(feature = "server", feature = "client"),
        not(any(feature = "net", feature = "cost"))
    ))]
    let passed = transfer::run();
    #[cfg(not(any(feature = "server", feature = "client")))]
    let passed = baseline();
    finish(passed)
}

/// The last line and the exit. Out of line: a line's buffer in `main`'s own frame would sit
/// on the stack under the whole run.
#[inline(never)]
fn finish(passed: bool) -> ! {
    line!("result: ", if passed { "PASS" } else { "FAIL" });
    exit(passed)
}

/// No network: print what the transfer's summary prints of the board (its banner, time and
/// stack), the same way (in words with `messages`, else as records), so that this image holds
/// the start-up code, the SysTick counter and the same output code as the others.
#[cfg(not(any(feature = "server", feature = "client")))]
fn baseline() -> bool {
    let Some(timer) = clock::Timer::take() else {
        line!("error: the timer is taken already");
        return false;
    };
    #[cfg(feature = "messages")]
    {
        line!("halfclose on ", board::NAME, ": baseline, no network");
        line!("time: ", out::dec(timer.ticks()), " ", clock::Timer::UNIT);
        line!(
            "ram: stack peak ",
            out::dec(stack::peak() as u64),
            " of ",
            out::dec(stack::size() as u64),
            " bytes; socket buffers 0 bytes; loopback ring 0 bytes"
        );
    }
    // `scripts/summary.py` prints it as the lines above.
    #[cfg(not(feature = "messages"))]
    out::Record::new("baseline")
        .num(timer.ticks())
        .num(stack::peak() as u64)
        .num(stack::size() as u64)
        .end();
    true
}

/// A fault ends the run as a failure at once, instead of leaving QEMU to its timeout. Built
/// with `-Cpanic=immediate-abort`, a panic ends here too.
#[cfg(target_arch = "arm")]
#[exception]
unsafe fn HardFault(frame: &ExceptionFrame) -> ! {
    line!("hard fault at pc ", hex(frame.pc()));
    exit(false)
}

/// RISC-V's counterpart of `HardFault`: riscv-rt calls `ExceptionHandler` for every exception
/// that has no handler of its own (no interrupt is enabled). Built with
/// `-Cpanic=immediate-abort`, a panic is an illegal instruction (`unimp`) and ends here too.
#[cfg(target_arch = "riscv32")]
#[unsafe(export_name = "ExceptionHandler")]
fn exception_handler(frame: &riscv_rt::TrapFrame) -> ! {
    let _ = frame;
    line!(
        "exception ",
        hex(riscv::register::mcause::read().bits() as u32),
        " at pc ",
        hex(riscv::register::mepc::read() as u32)
    );
    exit(false)
}

/// With `messages`: the panic's message and where it was raised, through `core::fmt`.
#[cfg(feature = "messages")]
#[panic_handler]
fn panic(info: &core::panic::PanicInfo) -> ! {
    use core::fmt::Write as _;
    let mut line = out::Line::new();
    let _ = write!(line, "panic: {info}");
    line.print();
    exit(false)
}

/// Without `messages`: where it was raised, which needs no formatting.
#[cfg(not(feature = "messages"))]
#[panic_handler]
fn panic(info: &core::panic::PanicInfo) -> ! {
    match info.location() {
        Some(at) => line!("panic at ", at.file(), ":", out::dec(at.line().into())),
        None => line!("panic"),
    }
    exit(false)
}
