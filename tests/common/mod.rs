//! The harness every in-memory test runs on, and what the kernel-facing tests share.
//!
//! - [`pair`]: [`Pair`](pair::Pair), our `Server`/`Client` or raw smoltcp sockets on either side
//!   of the one-interface loopback ([`Loop`](pair::Loop)) or the simulated two-host wire
//!   (`halfclose::sim::Network`), driven on a simulated clock that moves only when no packet
//!   waits (checked on every move).
//! - [`netns`]: the example programs run under a wall timeout, network namespaces with a TAP
//!   device (the kernel-facing tests).
#![allow(dead_code)]

pub mod netns;
pub mod pair;

use std::vec::Vec;

use halfclose::Timeouts;
use smoltcp::socket::tcp;
use smoltcp::time::Duration;
use smoltcp::wire::IpAddress;

pub const SERVER_V4: IpAddress = IpAddress::v4(10, 0, 0, 1);
pub const CLIENT_V4: IpAddress = IpAddress::v4(10, 0, 0, 2);
pub const SERVER_V6: IpAddress = IpAddress::v6(0xfd00, 0, 0, 0, 0, 0, 0, 1);
pub const CLIENT_V6: IpAddress = IpAddress::v6(0xfd00, 0, 0, 0, 0, 0, 0, 2);
pub const PORT: u16 = halfclose::DEFAULT_PORT;
/// A file of a few windows.
pub const LEN: usize = 20_000;
/// A file long enough to be cut in the middle.
pub const LONG: usize = 100_000;

/// Distinct limits per phase, so a timeout in the wrong phase also comes at the wrong time, and
/// no linger (a slot listens again at once).
pub const TIMEOUTS: Timeouts = Timeouts {
    connect: Duration::from_secs(10),
    handshake: Duration::from_secs(10),
    idle: Duration::from_secs(30),
    min_rate: 64,
    reply: Duration::from_secs(10),
    stall: Duration::from_secs(10),
    linger: Duration::ZERO,
};

/// A TCP socket with `rx`/`tx`-byte buffers that acknowledges at once (no delayed ACK: nothing
/// else runs on the simulated clock, and the tests know what is on the wire).
pub fn socket(rx: usize, tx: usize) -> tcp::Socket<'static> {
    let mut socket = tcp::Socket::new(
        tcp::SocketBuffer::new(vec![0; rx]),
        tcp::SocketBuffer::new(vec![0; tx]),
    );
    socket.set_ack_delay(None);
    socket
}

/// Read everything that arrived; `true` once the peer's FIN has been read.
pub fn read_all(socket: &mut tcp::Socket, got: &mut Vec<u8>) -> bool {
    loop {
        match socket.recv(|b| (b.len(), b.to_vec())) {
            Ok(bytes) if bytes.is_empty() => return false,
            Ok(bytes) => got.extend(bytes),
            Err(tcp::RecvError::Finished) => return true,
            Err(tcp::RecvError::InvalidState) => return false,
        }
    }
}

/// Deterministic pseudo-random bytes (xorshift64*), so a failing size can be replayed.
pub fn random_bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut state = seed | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        state ^= state >> 12;
        state ^= state << 25;
        state ^= state >> 27;
        out.extend_from_slice(&state.wrapping_mul(0x2545_f491_4f6c_dd1d).to_le_bytes());
    }
    out.truncate(len);
    out
}
