//! What the two network images (the sync image's `net` feature, the embassy image) share: the
//! link they run on (our address, the Linux peer's, the ports, the MAC), the time limit, the
//! static NIC and socket buffers, and the RAM line `scripts/firmware-async.sh` reads.

use core::net::Ipv4Addr;

#[cfg(target_arch = "arm")]
use cortex_m_semihosting::hprintln;
#[cfg(target_arch = "riscv32")]
use riscv_semihosting::hprintln;
use static_cell::ConstStaticCell;

// The board's network card: the LM3S6965's MAC, or QEMU `virt`'s virtio-net device.
#[cfg(target_arch = "arm")]
use crate::enet::Buffers;
use crate::stack;
#[cfg(target_arch = "riscv32")]
use crate::virtio::Buffers;

/// Our address on the link (only ever inside the test's own network namespace).
pub const ADDR: Ipv4Addr = Ipv4Addr::new(192, 168, 69, 1);
/// The Linux side.
pub const PEER: Ipv4Addr = Ipv4Addr::new(192, 168, 69, 100);
pub const SERVE_PORT: u16 = halfclose::DEFAULT_PORT;
pub const FETCH_PORT: u16 = halfclose::DEFAULT_PORT + 1;
pub const MAC: [u8; 6] = [0x02, 0x00, 0x00, 0x00, 0x00, 0x01];
/// Each phase must be over by then, in seconds.
pub const LIMIT_SECS: u64 = 60;

/// Socket buffers: 4 KiB in the data's direction, a few bytes for the reply.
pub const DATA: usize = 4096;
pub const SMALL: usize = 64;

pub static NIC_BUFFERS: ConstStaticCell<Buffers> = ConstStaticCell::new(Buffers::new());
/// The server's transmit and the client's receive buffer (the async image: one server socket).
pub static SOCKET_BUFFERS: ConstStaticCell<[[u8; DATA]; 2]> = ConstStaticCell::new([[0; DATA]; 2]);
/// The server's receive and the client's transmit buffer.
pub static SMALL_BUFFERS: ConstStaticCell<[[u8; SMALL]; 2]> = ConstStaticCell::new([[0; SMALL]; 2]);

/// The last line before the result: the stack's peak and the static buffers' sizes
/// (`socket_buffers` bytes of them for the sockets).
pub fn print_ram(socket_buffers: usize) {
    hprintln!(
        "ram: stack peak {} of {} bytes; NIC frame buffers {} bytes; socket buffers {} bytes",
        stack::peak(),
        stack::size(),
        core::mem::size_of::<Buffers>(),
        socket_buffers,
    );
}
