//! What differs between the boards: the name, the RAM the loopback ring may take, and what the
//! cost image sweeps. `build.rs` sets the `board` cfg from the target and gives the linker the
//! board's memory map (`boards/<board>.x`). Everything else is the same code on every board.

// The board as the summary names it: in words (`messages`); the small build's records leave the
// name to the host (`scripts/summary.py`).
#[cfg(board = "lm3s6965")]
pub const NAME: &str = "LM3S6965 (Cortex-M3)";
#[cfg(board = "microbit")]
pub const NAME: &str = "nRF51822 micro:bit (Cortex-M0)";
#[cfg(board = "virt")]
pub const NAME: &str = "QEMU virt (RV32IMAC)";

/// The interrupt part of the vector table, one entry per interrupt the chip has (no interrupt is
/// enabled: each goes to cortex-m-rt's `DefaultHandler`). The LM3S6965 has 44 (IRQ 0, GPIO port
/// A, to 43, the hibernation module; 42 is the Ethernet MAC), the nRF51822 26 (0, POWER_CLOCK,
/// to 25, SWI5). Without cortex-m-rt's `device` feature the table would have 240 entries on a
/// Cortex-M3 (32 on a Cortex-M0), 784 bytes of flash more on the LM3S6965 than the chip needs.
#[cfg(board = "lm3s6965")]
const INTERRUPTS: usize = 44;
#[cfg(board = "microbit")]
const INTERRUPTS: usize = 26;

#[cfg(target_arch = "arm")]
unsafe extern "C" {
    // Defined by cortex-m-rt's `link.x` (a user's `#[exception] fn DefaultHandler` overrides it).
    fn DefaultHandler();
}

#[cfg(target_arch = "arm")]
#[unsafe(link_section = ".vector_table.interrupts")]
#[unsafe(no_mangle)]
static __INTERRUPTS: [unsafe extern "C" fn(); INTERRUPTS] = [DefaultHandler; INTERRUPTS];

/// Packets the loopback holds (the ring is `SLOTS` packets of the MTU each). The micro:bit has
/// 16 KiB of RAM: with 4 KiB socket buffers each way, two slots are what fits (one packet in
/// flight; the ring only slows the simulated clock, not the bytes).
#[cfg(any(board = "lm3s6965", board = "virt"))]
pub const SLOTS: usize = 4;
#[cfg(board = "microbit")]
pub const SLOTS: usize = 2;

/// The cost image's sweep: IP MTUs, and the socket buffer in the data's direction (the server's
/// transmit buffer, the client's receive buffer). The first of each is the largest: it sizes
/// the static buffers and the ring.
#[cfg(all(feature = "cost", any(board = "lm3s6965", board = "virt")))]
pub const COST_MTUS: [usize; 3] = [4096, 1500, 576];
#[cfg(all(feature = "cost", any(board = "lm3s6965", board = "virt")))]
pub const COST_BUFFERS: [usize; 4] = [16384, 8192, 4096, 2048];
#[cfg(all(feature = "cost", board = "microbit"))]
pub const COST_MTUS: [usize; 2] = [1500, 576];
#[cfg(all(feature = "cost", board = "microbit"))]
pub const COST_BUFFERS: [usize; 3] = [4096, 2048, 1024];
