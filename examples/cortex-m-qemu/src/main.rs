//! halfclose on a bare-metal Cortex-M3: the server sends a 64 KiB file, half-closes, and waits for
//! the client's `"Thank you\0"`, both on one smoltcp interface over the crate's heapless loopback.
//!
//! Runs on QEMU's `lm3s6965evb` (LM3S6965: 256 KiB flash, 64 KiB RAM). Output and the exit status
//! go through semihosting, so `qemu-system-arm` exits 0 only when the file arrived intact and the
//! server got its reply.
//!
//! Features pick what the image contains: `server` and `client` (both by default). The
//! server-only image listens for a simulated second and the client-only image finds nobody
//! listening; they exist to measure each side's footprint. With neither, the image is the
//! baseline: start-up, semihosting output and `core::fmt` only, to subtract from the others.

#![no_std]
#![no_main]

mod clock;
#[cfg(feature = "defmt")]
mod defmt_log;
#[cfg(feature = "log")]
mod log_sink;
#[cfg(feature = "net")]
mod enet;
#[cfg(feature = "net")]
mod net;
#[cfg(any(feature = "server", feature = "client"))]
mod payload;
mod stack;
#[cfg(all(any(feature = "server", feature = "client"), not(feature = "net")))]
mod transfer;

use cortex_m_rt::{ExceptionFrame, entry, exception};
use cortex_m_semihosting::{debug, hprintln};

#[entry]
fn main() -> ! {
    #[cfg(feature = "log")]
    log_sink::init();
    #[cfg(feature = "net")]
    let passed = net::run();
    #[cfg(all(any(feature = "server", feature = "client"), not(feature = "net")))]
    let passed = transfer::run();
    #[cfg(not(any(feature = "server", feature = "client")))]
    let passed = baseline();
    hprintln!("result: {}", if passed { "PASS" } else { "FAIL" });
    debug::exit(if passed {
        debug::EXIT_SUCCESS
    } else {
        debug::EXIT_FAILURE
    });
    #[allow(clippy::empty_loop)]
    loop {}
}

/// No network: print lines shaped like the transfer's summary, so that this image holds the
/// start-up code, semihosting and the same `core::fmt` machinery as the others.
#[cfg(not(any(feature = "server", feature = "client")))]
fn baseline() -> bool {
    let Some(peripherals) = cortex_m::Peripherals::take() else {
        hprintln!("error: core peripherals already taken");
        return false;
    };
    let systick = clock::SysTickTimer::start(peripherals.SYST);
    hprintln!("halfclose on LM3S6965 (Cortex-M3): baseline, no network");
    hprintln!("time: {} SysTick cycles", systick.cycles());
    hprintln!(
        "ram: stack peak {} of {} bytes; socket buffers {} bytes; loopback ring {} bytes",
        stack::peak(),
        stack::size(),
        0,
        0,
    );
    true
}

/// A fault ends the run as a failure at once, instead of leaving QEMU to its timeout.
#[exception]
unsafe fn HardFault(frame: &ExceptionFrame) -> ! {
    hprintln!("hard fault at pc {:#010x}", frame.pc());
    debug::exit(debug::EXIT_FAILURE);
    #[allow(clippy::empty_loop)]
    loop {}
}

#[panic_handler]
fn panic(info: &core::panic::PanicInfo) -> ! {
    hprintln!("panic: {}", info);
    debug::exit(debug::EXIT_FAILURE);
    #[allow(clippy::empty_loop)]
    loop {}
}
