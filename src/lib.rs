//! TCP half-close file transfer on [smoltcp]: a server sends a file, closes only its output
//! (`shutdown(SHUT_WR)`; in smoltcp, `tcp::Socket::close()`) so that the client sees the end of
//! the file, and keeps reading until the client's last words, `"Thank you\0"`, arrive.
//! `no_std`, no allocator, from a Linux host down to a microcontroller.
//!
//! ```text
//!  server                                  client
//!    | ============ the file ============>   |  read() ... read()
//!    | ---- FIN (close: output only) ---->   |  read() = EOF: the file is complete
//!    | <--------- "Thank you\0" ---------    |  write()
//!    | <--------------- FIN -------------    |  close()
//! ```
//!
//! The same exchange segment by segment, with each socket's states, drawn from a run of the
//! loopback example (`cargo run --example loopback -- --svg PATH`):
//!
//! ![The exchange segment by segment, drawn from a run of the loopback
//! example](https://raw.githubusercontent.com/halfclose/halfclose/main/docs/pictures/loopback.svg?sanitize=true)
//!
//! The protocol is two sans-IO state machines that never touch a clock, a device or a file by
//! themselves: [`server::Server`] (a pool of [`server::Sender`]s) and [`client::Client`]. After
//! each `Interface::poll` the caller passes the time and the sockets in; each machine says when
//! it next needs polling and ends in a report or a typed [`Error`] that names the [`Phase`]
//! and the bytes already delivered.
//!
//! # Adding it
//!
//! | where | `cargo add` |
//! |---|---|
//! | a host program (`std` adapters for files) | `cargo add halfclose` |
//! | on a Linux TAP device or an Ethernet MAC | `cargo add halfclose --features medium-ethernet` |
//! | a microcontroller (`no_std`, logs through `log` or `defmt`) | `cargo add halfclose --no-default-features --features log` (or `defmt`) |
//! | embassy-net | `cargo add halfclose --no-default-features --features embassy,log` |
//! | tokio | `cargo add halfclose --features tokio` |
//!
//! Depend on the smoltcp this crate names (0.14), or use it as [`halfclose::smoltcp`](smoltcp):
//! its types are in this crate's API. Adding `halfclose` turns on no smoltcp feature beyond
//! `medium-ip`, `proto-ipv4` and `socket-tcp`.
//!
//! # In memory
//!
//! A whole transfer, server and client on one interface over the in-memory
//! [`device::Loopback`], with nothing allocated. Time is simulated: a [`clock::SimClock`] moves
//! only when no packet waits in the device (see the [`clock`] module for why that matters).
//!
//! ```
//! # fn main() -> Result<(), Box<dyn core::error::Error>> {
//! use core::task::Poll;
//! use halfclose::client::{Client, Connect};
//! use halfclose::clock::SimClock;
//! use halfclose::device::Loopback;
//! use halfclose::server::Server;
//! use halfclose::smoltcp::iface::{Config, Interface, SocketSet, SocketStorage};
//! use halfclose::smoltcp::phy::Medium;
//! use halfclose::smoltcp::socket::tcp;
//! use halfclose::smoltcp::time::Instant;
//! use halfclose::smoltcp::wire::{HardwareAddress, IpAddress, IpCidr};
//!
//! let file: &[u8] = b"The quick brown fox jumps over the lazy dog.";
//! let mut device = Loopback::<1500, 4>::new(Medium::Ip);
//! let mut clock = SimClock::new().with_limit(core::time::Duration::from_secs(60));
//! let mut iface = Interface::new(Config::new(HardwareAddress::Ip), &mut device, clock.now());
//! iface.update_ip_addrs(|a| a.push(IpCidr::new(IpAddress::v4(127, 0, 0, 1), 8)).unwrap());
//!
//! // The caller owns every buffer.
//! let (mut s_rx, mut s_tx, mut c_rx, mut c_tx) = ([0u8; 2048], [0u8; 2048], [0u8; 2048], [0u8; 2048]);
//! let mut storage: [SocketStorage; 2] = Default::default();
//! let mut sockets = SocketSet::new(&mut storage[..]);
//! let socket = |rx, tx| {
//!     let mut socket = tcp::Socket::new(tcp::SocketBuffer::new(rx), tcp::SocketBuffer::new(tx));
//!     // In memory an ACK costs nothing: a delayed one (smoltcp's default, 10 ms) would only
//!     // add simulated time to each exchange.
//!     socket.set_ack_delay(None);
//!     socket
//! };
//! let s = sockets.add(socket(&mut s_rx[..], &mut s_tx[..]));
//! let c = sockets.add(socket(&mut c_rx[..], &mut c_tx[..]));
//!
//! let mut server = Server::listen(&mut sockets, [s], 7891, file, Default::default())?;
//! let mut copy = [0u8; 64];
//! let to = Connect::to((IpAddress::v4(127, 0, 0, 1), 7891));
//! let mut client = Client::connect(iface.context(), &mut sockets, c, to, &mut copy[..], clock.now())?;
//!
//! let (mut served, mut fetched) = (None, None);
//! loop {
//!     let now = clock.now();
//!     iface.poll(now, &mut device, &mut sockets);
//!     if let Some(result) = server.poll(now, &mut sockets).into_iter().next() {
//!         served = Some(result?);
//!     }
//!     if let Poll::Ready(result) = client.poll(now, &mut sockets) {
//!         fetched = Some(result?);
//!     }
//!     if let (Some(served), Some(fetched)) = (&served, &fetched) {
//!         println!("server: {served}\nclient: {fetched}");
//!         break;
//!     }
//!     // Stays put while a packet waits in the device; otherwise on to the next timer.
//!     clock.advance(&mut iface, &sockets, &device, [server.poll_at(), client.deadline()])?;
//! }
//! assert!(served.unwrap().reply.is_thank_you());
//! assert_eq!(fetched.unwrap().bytes, file.len() as u64);
//! // Three round trips, no timer waited out.
//! assert!(clock.now() < Instant::from_millis(10), "{}", clock.now());
//! drop(client);
//! assert_eq!(&copy[..file.len()], file);
//! # Ok(()) }
//! ```
//!
//! On a real device the loop is the same with the real time, and instead of `clock.advance` it
//! sleeps until the earliest of `iface.poll_delay(..)`, `server.poll_at()` and
//! `client.deadline()`, or until a frame arrives: see `examples/tap_server.rs` and
//! `examples/tap_client.rs` in the repository.
//!
//! # Async: tokio
//!
//! With the `tokio` feature, `asynch::serve` and `asynch::fetch` run the same exchange on
//! tokio's `TcpStream`, so either side can face the other or any BSD-sockets peer:
//!
//! ```
//! # #[cfg(feature = "tokio")]
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use halfclose::Timeouts;
//! use halfclose::asynch::tokio::{Stream, TokioClock};
//! use halfclose::asynch::{fetch, serve};
//! use tokio::net::{TcpListener, TcpStream};
//!
//! let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
//! runtime.block_on(async {
//!     let listener = TcpListener::bind("127.0.0.1:0").await?;
//!     let addr = listener.local_addr()?;
//!     let server = tokio::spawn(async move {
//!         let (stream, _) = listener.accept().await?;
//!         let file: &[u8] = b"The quick brown fox jumps over the lazy dog.";
//!         let report = serve(&mut Stream(stream), file, &TokioClock::new(), Timeouts::DEFAULT).await?;
//!         Ok::<_, Box<dyn std::error::Error + Send + Sync>>(report)
//!     });
//!     let mut copy = Vec::new();
//!     let mut stream = Stream(TcpStream::connect(addr).await?);
//!     let fetched = fetch(&mut stream, halfclose::io::FromStd(&mut copy), &TokioClock::new(), Timeouts::DEFAULT).await?;
//!     let served = server.await?.map_err(|e| e.to_string())?;
//!     assert_eq!(fetched.bytes, 44);
//!     assert!(served.reply.is_thank_you());
//!     assert_eq!(copy, b"The quick brown fox jumps over the lazy dog.");
//!     Ok(())
//! })
//! # }
//! # #[cfg(not(feature = "tokio"))]
//! # fn main() {}
//! ```
//!
//! # Async: embassy-net
//!
//! With the `embassy` feature, the same two functions run on embassy-net's `TcpSocket`, with
//! `asynch::embassy::accept` and `asynch::embassy::connect` bounding the handshake (a
//! task's body; `stack` is the program's `embassy_net::Stack`):
//!
//! ```no_run
//! # #[cfg(feature = "embassy")]
//! # async fn serve_one(stack: embassy_net::Stack<'_>) -> Result<(), halfclose::Error> {
//! use embassy_net::tcp::TcpSocket;
//! use halfclose::Timeouts;
//! use halfclose::asynch::embassy::{EmbassyClock, accept};
//! use halfclose::asynch::serve;
//!
//! let (mut rx, mut tx) = ([0u8; 4096], [0u8; 4096]);
//! let mut socket = TcpSocket::new(stack, &mut rx, &mut tx);
//! accept(&mut socket, halfclose::DEFAULT_PORT, &EmbassyClock, Timeouts::DEFAULT).await?;
//! let file: &[u8] = b"The quick brown fox jumps over the lazy dog.";
//! let report = serve(&mut socket, file, &EmbassyClock, Timeouts::DEFAULT).await?;
//! defmt_or_log(report.bytes);
//! # Ok(()) }
//! # fn defmt_or_log(_: u64) {}
//! # fn main() {}
//! ```
//!
//! # Features
//!
//! `log` (default): this crate's state transitions through `log`; `defmt`: the same through
//! `defmt` (refused together with `log`); `std` (default): `std::io` adapters and threaded file
//! I/O ([`io`]); `sim`: the simulated two-host wire with faults (module `sim`); `medium-ethernet`,
//! `proto-ipv6`, `socket-tcp-reno`, `socket-tcp-cubic`: smoltcp's features of those names;
//! `async`, `embassy`, `tokio`: the module `asynch`. (Modules behind a feature are listed on docs.rs, which builds every feature but `defmt`.)
//!
//! The [repository's README](https://github.com/halfclose/halfclose#readme) is the guide, and
//! [its chapters](https://github.com/halfclose/halfclose/blob/main/docs/README.md) hold the
//! exchange segment by segment, Linux TAP, the firmware, and the measurements behind every
//! default.
#![no_std]
#![cfg_attr(docsrs, feature(doc_cfg))]

#[cfg(any(test, feature = "std"))]
extern crate std;

#[cfg(all(feature = "log", feature = "defmt"))]
compile_error!(
    "the `log` and `defmt` features are alternatives: enable one (for defmt: `default-features = false, features = [\"defmt\"]`)"
);

mod macros;

/// The README's code runs as a doctest, so the front page cannot drift from the API.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;

#[cfg(feature = "async")]
pub mod asynch;
pub mod backlog;

pub mod client;
pub mod clock;
pub mod device;
mod error;
pub mod human;
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
