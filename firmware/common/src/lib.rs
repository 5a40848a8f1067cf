//! What the two firmware images (`firmware/cortex-m-qemu`, `firmware/embassy-qemu`) share: the
//! LM3S6965's Ethernet MAC, the 64 KiB file and the sink that checks it, the stack-peak probe,
//! the exit through semihosting, and (feature `net`) the network images' link, buffers and RAM
//! line. Each image depends on this crate by path, with the features it needs.

#![no_std]

pub mod enet;
#[cfg(feature = "net")]
pub mod net;
pub mod payload;
pub mod stack;

use cortex_m_semihosting::debug;

/// Ends the run through semihosting; QEMU exits with the status.
pub fn exit(passed: bool) -> ! {
    debug::exit(if passed {
        debug::EXIT_SUCCESS
    } else {
        debug::EXIT_FAILURE
    });
    #[allow(clippy::empty_loop)]
    loop {}
}
