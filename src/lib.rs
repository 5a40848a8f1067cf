//! TCP half-close file transfer on smoltcp: a server sends a file, closes only its output
//! (`shutdown(SHUT_WR)`; in smoltcp, `tcp::Socket::close()`), and keeps reading until the
//! client's last words, `"Thank you\0"`, arrive. `no_std`, no allocator.
//!
//! - [`server`]: the sending side, a pool of sockets serving one file.
//! - [`client`]: the receiving side, writing the file to any `embedded_io::Write` sink.
//! - [`device`]: a heapless in-memory `smoltcp::phy::Device`; [`segment`]: a packet's TCP header.
//! - `asynch` (feature `async`), `sim` (feature `sim`), `io` (feature `std`).
//!
//! The guide is the [README](https://github.com/halfclose/halfclose/blob/main/README.md); the
//! chapters on design, robustness, performance, testing, TAP, async and firmware are listed in
//! [`docs/README.md`](https://github.com/halfclose/halfclose/blob/main/docs/README.md). The
//! runnable examples are in
//! [`examples/`](https://github.com/halfclose/halfclose/tree/main/examples).
#![no_std]
#![cfg_attr(docsrs, feature(doc_cfg))]

#[cfg(any(test, feature = "std"))]
extern crate std;

#[cfg(all(feature = "log", feature = "defmt"))]
compile_error!(
    "the `log` and `defmt` features are alternatives: enable one (for defmt: `default-features = false, features = [\"defmt\"]`)"
);

mod macros;

#[cfg(feature = "async")]
pub mod asynch;

pub mod client;
pub mod device;
mod error;
#[cfg(feature = "std")]
pub mod io;
mod reply;
pub mod segment;
pub mod server;
#[cfg(feature = "sim")]
pub mod sim;
mod timeouts;

#[cfg(feature = "defmt")]
mod defmt_format;

/// The smoltcp this crate is built on: its types are in this crate's API (`tcp::Socket`,
/// `SocketSet`, `Instant`, `IpEndpoint`, ...), so a program must use this same smoltcp release.
///
/// Depend on the smoltcp version this crate names (0.14) so that Cargo picks one copy, or write
/// `halfclose::smoltcp::...` instead of depending on smoltcp directly. With two versions in one
/// program, the compiler reports mismatched types that carry the same name.
pub use smoltcp;

pub use error::{Error, Phase};
pub use reply::{REPLY_KEPT, Reply};
pub use timeouts::Timeouts;

/// The client's last words: `"Thank you"` and its terminating NUL, as the lesson's C client sends
/// `sizeof "Thank you"` bytes.
pub const REPLY: &[u8; 10] = b"Thank you\0";

/// The most the lesson's BSD server reads of the reply: one `read(fd, buf, 1024)`. This server
/// needs no such buffer: it checks each byte against [`REPLY`] as it arrives and ends the
/// connection at the first one that cannot belong to it.
pub const REPLY_MAX: usize = 1024;

/// The port the examples and tests use (unassigned by IANA).
pub const DEFAULT_PORT: u16 = 7891;

/// Tear down a connection that ended in an error with a RST, so the peer does not wait for us.
fn abort_if_open(socket: &mut smoltcp::socket::tcp::Socket) {
    if socket.is_active() {
        socket.abort();
    }
}
