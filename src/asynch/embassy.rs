//! embassy-net's `TcpSocket` as a [`HalfClose`] stream, and `embassy-time` as the [`Clock`]
//! (feature `embassy`).
//!
//! What embassy-net's calls mean for this exchange (embassy-net 0.9 wraps smoltcp 0.13):
//!
//! - `read` returning `Ok(0)` is EOF: the peer's FIN, after every byte before it. A reset is
//!   `Err(ConnectionReset)`, never `Ok(0)`.
//! - `flush` waits until everything written is acknowledged (and, after `close`, until the FIN
//!   is). It also returns `Ok` when the connection was reset meanwhile: [`close_write`] checks
//!   the socket's state afterwards.
//! - `close` is the half-close (the read side stays open); `abort` is the full close, whose RST
//!   leaves only at the stack's next poll: `flush` after `abort` before dropping the socket.
//!   Dropping a socket removes it from the stack at once: whatever it had not sent is lost.
//!
//! # smoltcp 0.14 with its default features
//!
//! embassy-net 0.9 builds a smoltcp 0.13 of its own. When the program also depends on
//! `smoltcp = "0.14"` with its default features (they include `std`, hence `managed`'s `alloc`),
//! `managed::ManagedSlice` gains its `Owned` variant for every crate, and smoltcp 0.13 fails to
//! build (`error[E0004]: non-exhaustive patterns: ManagedSlice::Owned(_) not covered`) unless its
//! own `alloc` is on too. That error comes before this crate is compiled, so it cannot name the
//! cure: turn on embassy-net's `alloc` feature,
//!
//! ```toml
//! embassy-net = { version = "0.9", features = ["alloc", "tcp", "proto-ipv4", "medium-ethernet"] }
//! ```
//!
//! (this crate's `socket-tcp-cubic` does it too), or depend on smoltcp 0.14 with
//! `default-features = false` and only the features the program needs.
//!
//! [`close_write`]: HalfClose::close_write

use embassy_net::IpEndpoint;
use embassy_net::tcp::{AcceptError, ConnectError, Error as TcpError, State, TcpSocket};
use smoltcp::socket::tcp::{ConnectError as SmolConnectError, ListenError};
use smoltcp::time::Instant;

use super::{Clock, HalfClose, within};
use crate::{Error, Phase, Timeouts};

/// The largest receive buffer that keeps smoltcp from scaling its window.
///
/// smoltcp scales its receive window when the buffer is over 65535 bytes, rounds the advertised
/// window down to the scale, and so can move the window's right edge back; a segment in flight
/// to the old edge is then trimmed, but a FIN on it is still accepted: the reader sees EOF a few
/// bytes short (smoltcp 0.13 in embassy-net as in 0.14). Without scaling the edge never moves
/// back, so a client socket is built with at most this much receive buffer.
pub const MAX_UNSCALED_RX: usize = crate::client::MAX_RECEIVE_BUFFER;

/// A `TcpSocket` for [`fetch`](super::fetch): like `TcpSocket::new`, but uses at most
/// [`MAX_UNSCALED_RX`] bytes of `rx_buffer`, so the receive window is never scaled and a short
/// file cannot end in a clean EOF.
pub fn client_socket<'a>(
    stack: embassy_net::Stack<'a>,
    rx_buffer: &'a mut [u8],
    tx_buffer: &'a mut [u8],
) -> TcpSocket<'a> {
    let len = rx_buffer.len().min(MAX_UNSCALED_RX);
    TcpSocket::new(stack, &mut rx_buffer[..len], tx_buffer)
}

impl HalfClose for TcpSocket<'_> {
    const ACKNOWLEDGED: bool = true;

    async fn close_write(&mut self) -> Result<(), TcpError> {
        // The peer closed first (CLOSE-WAIT): our FIN ends in LAST-ACK, and CLOSED afterwards is
        // its acknowledgement. Otherwise FIN-WAIT-1 ends in FIN-WAIT-2 (or CLOSING in TIME-WAIT),
        // and CLOSED can only be a reset.
        let peer_closed_first = matches!(self.state(), State::CloseWait | State::LastAck);
        self.close();
        // Waits while the FIN (or data before it) is unacknowledged; smoltcp wakes it on every
        // state change.
        self.flush().await?;
        match self.state() {
            State::FinWait2 | State::TimeWait => Ok(()),
            // A reset leaves what it did not acknowledge in the transmit queue.
            State::Closed if peer_closed_first && self.send_queue() == 0 => Ok(()),
            State::Closed
            | State::Listen
            | State::SynSent
            | State::SynReceived
            | State::Established
            | State::FinWait1
            | State::CloseWait
            | State::Closing
            | State::LastAck => Err(TcpError::ConnectionReset),
        }
    }
}

/// Accept one connection on `port` (embassy-net's `accept`, its errors as [`Error`]).
///
/// Listening has no time limit, but a handshake does: a connection still in SYN-RECEIVED after
/// [`Timeouts::handshake`] (at most 1.5 times that; a forged SYN, a client that vanished) is
/// aborted and the socket listens again, as a sync server's slot does, so one SYN cannot hold
/// the socket (`embassy_server_drops_a_half_open_handshake_and_serves_the_next_client` in
/// `tests/embassy_tap.rs` over TAP, and in memory, with both bounds,
/// `an_embassy_server_drops_a_forged_syn_after_the_handshake_limit_and_serves_the_next_client` in
/// `tools/tests/async_attacks.rs`).
///
/// ```no_run
/// # async fn serve_one(stack: embassy_net::Stack<'_>) -> Result<(), halfclose::Error> {
/// use embassy_net::tcp::TcpSocket;
/// use halfclose::Timeouts;
/// use halfclose::asynch::embassy::{EmbassyClock, accept};
///
/// let (mut rx, mut tx) = ([0u8; 4096], [0u8; 4096]);
/// let mut socket = TcpSocket::new(stack, &mut rx, &mut tx);
/// accept(&mut socket, halfclose::DEFAULT_PORT, &EmbassyClock, Timeouts::DEFAULT).await?;
/// let report = halfclose::asynch::serve(&mut socket, &b"hello"[..], &EmbassyClock, Timeouts::DEFAULT).await?;
/// assert!(report.reply.is_thank_you());
/// # Ok(()) }
/// ```
pub async fn accept<C: Clock>(
    socket: &mut TcpSocket<'_>,
    port: u16,
    clock: &C,
    timeouts: Timeouts,
) -> Result<(), Error> {
    // embassy-net's `accept` waits through SYN-RECEIVED; it is given slices of half the limit,
    // so a handshake is seen at most that late, and lives at most 1.5 limits.
    let slice = smoltcp::time::Duration::from_micros(timeouts.handshake.total_micros() / 2);
    let mut syn_seen: Option<smoltcp::time::Instant> = None;
    loop {
        match socket.state() {
            State::SynReceived => {
                let since = *syn_seen.get_or_insert_with(|| clock.now());
                let deadline = since + timeouts.handshake;
                let now = clock.now();
                if now >= deadline {
                    // Abort the half-open connection (its RST leaves at the stack's next poll)
                    // and listen again.
                    socket.abort();
                    let _ = within(clock, slice, socket.flush()).await;
                    syn_seen = None;
                    continue;
                }
                // Woken by smoltcp's state change once the handshake completes.
                let _ = within(clock, deadline - now, socket.wait_write_ready()).await;
            }
            // The handshake completed (and the peer may have closed already).
            State::Established | State::CloseWait => return Ok(()),
            // Listening, or not yet: (re)start `accept`, which listens unless it already does.
            State::Closed | State::Listen | State::TimeWait => {
                syn_seen = None;
                if let Some(result) = within(clock, slice, socket.accept(port)).await {
                    return result.map_err(|e| match e {
                        AcceptError::InvalidState => Error::Listen(ListenError::InvalidState),
                        AcceptError::InvalidPort => Error::Listen(ListenError::Unaddressable),
                        AcceptError::ConnectionReset => Error::Reset {
                            phase: Phase::Connect,
                            bytes: 0,
                        },
                    });
                }
            }
            // A connection of the caller's own is still open on this socket.
            State::SynSent
            | State::FinWait1
            | State::FinWait2
            | State::Closing
            | State::LastAck => return Err(Error::Listen(ListenError::InvalidState)),
        }
    }
}

/// Connect to `remote`, bounded by [`Timeouts::connect`] (the socket is aborted when that
/// passes).
///
/// A socket with more than [`MAX_UNSCALED_RX`] bytes of receive buffer is refused with
/// [`Error::ReceiveBufferTooLarge`] before anything is sent, as the sync
/// [`Client`](crate::client::Client) refuses one: its window would be scaled, and a scaled
/// window can end a file short. Build the socket with [`client_socket`].
///
/// ```no_run
/// # async fn fetch_one(stack: embassy_net::Stack<'_>) -> Result<(), halfclose::Error> {
/// use embassy_net::{IpAddress, IpEndpoint};
/// use halfclose::Timeouts;
/// use halfclose::asynch::embassy::{EmbassyClock, client_socket, connect};
///
/// let (mut rx, mut tx) = ([0u8; 8192], [0u8; 1024]);
/// let mut socket = client_socket(stack, &mut rx, &mut tx);
/// let server = IpEndpoint::new(IpAddress::v4(192, 0, 2, 1), halfclose::DEFAULT_PORT);
/// connect(&mut socket, server, &EmbassyClock, Timeouts::DEFAULT).await?;
/// let mut copy = [0u8; 4096];
/// let report = halfclose::asynch::fetch(&mut socket, &mut copy[..], &EmbassyClock, Timeouts::DEFAULT).await?;
/// let file = &copy[..report.bytes as usize];
/// # let _ = file;
/// # Ok(()) }
/// ```
pub async fn connect<C: Clock>(
    socket: &mut TcpSocket<'_>,
    remote: impl Into<IpEndpoint>,
    clock: &C,
    timeouts: Timeouts,
) -> Result<(), Error> {
    let capacity = socket.recv_capacity();
    if capacity > MAX_UNSCALED_RX {
        return Err(Error::ReceiveBufferTooLarge { capacity });
    }
    match within(clock, timeouts.connect, socket.connect(remote)).await {
        Some(Ok(())) => Ok(()),
        // A RST in SYN-SENT: nobody listens there.
        Some(Err(ConnectError::ConnectionReset)) => Err(Error::Refused),
        Some(Err(ConnectError::TimedOut)) => Err(Error::TimedOut {
            phase: Phase::Connect,
            bytes: 0,
        }),
        Some(Err(ConnectError::InvalidState)) => {
            Err(Error::Connect(SmolConnectError::InvalidState))
        }
        Some(Err(ConnectError::NoRoute)) => Err(Error::Connect(SmolConnectError::Unaddressable)),
        None => {
            socket.abort();
            Err(Error::TimedOut {
                phase: Phase::Connect,
                bytes: 0,
            })
        }
    }
}

/// `embassy-time` as a [`Clock`]: needs an `embassy-time` driver in the program (the std one,
/// or one on the board's timer).
#[derive(Debug, Clone, Copy, Default)]
pub struct EmbassyClock;

impl Clock for EmbassyClock {
    fn now(&self) -> Instant {
        Instant::from_micros(embassy_time::Instant::now().as_micros() as i64)
    }

    async fn sleep_until(&self, deadline: Instant) {
        let at = embassy_time::Instant::from_micros(deadline.total_micros().max(0) as u64);
        embassy_time::Timer::at(at).await
    }
}
