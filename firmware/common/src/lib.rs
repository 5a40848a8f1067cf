//! What the two firmware images (`firmware/cortex-m-qemu`, `firmware/embassy-qemu`) share: the
//! LM3S6965's Ethernet MAC, QEMU `virt`'s virtio-net card (RISC-V), the 64 KiB file and the sink that checks it, the stack-peak probe,
//! the exit through semihosting, and (feature `net`) the network images' link, buffers and RAM
//! line. Each image depends on this crate by path, with the features it needs.

#![no_std]

#[cfg(target_arch = "arm")]
pub mod enet;
#[cfg(feature = "net")]
pub mod net;
pub mod payload;
pub mod stack;
#[cfg(all(feature = "net", target_arch = "riscv32"))]
pub mod virtio;

#[cfg(target_arch = "arm")]
use cortex_m_semihosting::debug;
#[cfg(target_arch = "riscv32")]
use riscv_semihosting::debug;

/// Ends the run through semihosting; QEMU exits with the status. The same call on every
/// architecture: an Arm core traps into the host with `bkpt 0xab`, a RISC-V core with the
/// `slli`/`ebreak`/`srai` sequence QEMU recognises.
pub fn exit(passed: bool) -> ! {
    debug::exit(if passed {
        debug::EXIT_SUCCESS
    } else {
        debug::EXIT_FAILURE
    });
    #[allow(clippy::empty_loop)]
    loop {}
}
