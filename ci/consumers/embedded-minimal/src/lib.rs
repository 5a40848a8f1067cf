//! The part of a firmware that serves a file from flash: `#![no_std]`, halfclose without its
//! default features, smoltcp with only what halfclose needs. Checked on the host; the images
//! that run under QEMU are `examples/cortex-m-qemu` (scripts/firmware.sh).
#![no_std]

use halfclose::server::Server;
use halfclose::{DEFAULT_PORT, Error, Timeouts};
use smoltcp::iface::{SocketHandle, SocketSet};
use smoltcp::socket::tcp;

/// The file, in flash.
pub static FILE: &[u8] = b"The quick brown fox jumps over the lazy dog.\n";

/// A pool of two listening sockets serving [`FILE`]: call `poll` on it after each
/// `Interface::poll`.
pub fn serve(
    sockets: &mut SocketSet<'_>,
    handles: [SocketHandle; 2],
) -> Result<Server<&'static [u8], 2>, Error> {
    Server::listen(sockets, handles, DEFAULT_PORT, FILE, Timeouts::DEFAULT)
}

/// A socket on the caller's buffers (statics or a `static_cell` on a microcontroller).
pub fn socket<'a>(rx: &'a mut [u8], tx: &'a mut [u8]) -> tcp::Socket<'a> {
    tcp::Socket::new(tcp::SocketBuffer::new(rx), tcp::SocketBuffer::new(tx))
}
