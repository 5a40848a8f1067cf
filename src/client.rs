//! The receiving side: read a file until EOF, then say `"Thank you\0"` and close.
//!
//! ```text
//!  Connecting ──► Receiving { received } ──FIN──► Replying { received, .. } ──► Done(Report)
//!      │                 │                               │
//!      └─────────────────┴───────────────────────────────┴──────────────────► Failed(Error)
//! ```

use core::fmt;
use core::task::Poll;

use embedded_io::{Error as _, Write};
use smoltcp::iface::{Context, SocketHandle, SocketSet};
use smoltcp::socket::tcp::{self, RecvError};
use smoltcp::time::{Duration, Instant};
use smoltcp::wire::{IpEndpoint, IpListenEndpoint};

use crate::macros::{debug, trace};
use crate::{Error, Phase, REPLY, Timeouts};

/// The largest receive buffer [`Client::connect`] accepts on its socket, in bytes.
///
/// smoltcp 0.14 scales its receive window (RFC 7323) when the buffer is larger than this:
/// `log2` of the capacity minus 16, so 1 for exactly 64 KiB. A scaled window is rounded down
/// to a multiple of the scale, and an acknowledgement that advances by an amount that is not
/// a multiple moves the window's right edge back by a few bytes. A segment already in flight
/// that ends at the old edge is then trimmed to the new one, but smoltcp still accepts a FIN
/// on it: the file reads as complete, a few bytes short, and the acknowledgement tells the
/// sender all is well. Without scaling the advertised right edge never moves back (it is the
/// bytes read plus the buffer's capacity), so a segment that respects the window is never
/// trimmed. A sender that puts its FIN on its last data segment, as most programs and stacks
/// do, is exactly the peer that triggers it (`tests/smoltcp_bugs.rs`). The cost is a window
/// of at most 64 KiB per round trip; see [no short file](https://github.com/halfclose/halfclose/blob/main/docs/robustness.md#no-short-file-ever).
pub const MAX_RECEIVE_BUFFER: usize = 65535;

/// What a finished transfer did, and when.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Report {
    /// The server.
    pub remote: IpEndpoint,
    /// File bytes received and written to the sink.
    pub bytes: u64,
    /// When `connect` was called.
    pub started_at: Instant,
    /// When the handshake completed.
    pub connected_at: Instant,
    /// When the server's FIN was read: the file is complete.
    pub eof_at: Instant,
    /// When the server acknowledged our reply and FIN.
    pub finished_at: Instant,
}

impl Report {
    /// From the handshake to the end of the file.
    pub fn transfer_time(&self) -> Duration {
        self.eof_at - self.connected_at
    }

    /// From `connect` to the server's acknowledgement of the reply.
    pub fn duration(&self) -> Duration {
        self.finished_at - self.started_at
    }
}

/// Where the transfer is.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum State {
    /// SYN sent, no answer yet.
    Connecting,
    /// Reading the file into the sink.
    Receiving {
        /// File bytes written to the sink so far.
        received: u64,
    },
    /// The server's FIN arrived: the file is complete. The reply is being queued, then our FIN.
    Replying {
        /// The file's length.
        received: u64,
        /// Reply bytes queued so far.
        queued: usize,
        /// When the server's FIN was read.
        eof_at: Instant,
    },
    /// The server acknowledged the reply and our FIN.
    Done(Report),
    /// The transfer ended in an error. The sink keeps every byte written to it.
    Failed(Error),
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            State::Connecting => f.write_str("connecting"),
            State::Receiving { received } => write!(f, "receiving({received})"),
            State::Replying { received, .. } => write!(f, "replying({received})"),
            State::Done(_) => f.write_str("done"),
            State::Failed(_) => f.write_str("failed"),
        }
    }
}

/// Where a [`Client`] connects, from which port, and with which limits.
///
/// ```
/// use halfclose::Timeouts;
/// use halfclose::client::Connect;
/// use halfclose::smoltcp::wire::IpAddress;
///
/// // To port 7891 of 192.0.2.1 from an ephemeral port, with the default limits:
/// let to = Connect::to((IpAddress::v4(192, 0, 2, 1), 7891));
/// // From port 49152, giving up on a silent server after 5 s:
/// let to = to
///     .from_port(49152)
///     .timeouts(Timeouts::DEFAULT.with_connect(core::time::Duration::from_secs(5)));
/// assert_eq!(to.local.port, 49152);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Connect {
    /// The server's address and port.
    pub remote: IpEndpoint,
    /// Our address and port. No address (the default): the interface picks the one facing
    /// the server. Port 0 (the default): a free one in the [ephemeral range](EPHEMERAL_PORTS).
    pub local: IpListenEndpoint,
    /// How long each phase may stand still.
    pub timeouts: Timeouts,
}

impl Connect {
    /// To `remote`, from an ephemeral port, with [`Timeouts::DEFAULT`].
    pub fn to(remote: impl Into<IpEndpoint>) -> Connect {
        Connect {
            remote: remote.into(),
            local: IpListenEndpoint {
                addr: None,
                port: 0,
            },
            timeouts: Timeouts::DEFAULT,
        }
    }

    /// From local port `port` (0: an ephemeral one).
    pub const fn from_port(mut self, port: u16) -> Connect {
        self.local.port = port;
        self
    }

    /// From `local`: a port, or an address and a port (port 0: an ephemeral one).
    pub fn from(mut self, local: impl Into<IpListenEndpoint>) -> Connect {
        self.local = local.into();
        self
    }

    /// With these limits.
    pub const fn timeouts(mut self, timeouts: Timeouts) -> Connect {
        self.timeouts = timeouts;
        self
    }
}

/// The first port of the ephemeral range (RFC 6335, section 6), where [`Connect`]'s port 0 is
/// picked from.
pub const EPHEMERAL_PORTS: core::ops::RangeInclusive<u16> = 49152..=65535;

/// How many ports [`EPHEMERAL_PORTS`] holds: 2^14, as the hash below assumes.
const EPHEMERAL_SPAN: u64 = 1 << 14;
const _: () = assert!(
    (*EPHEMERAL_PORTS.end() as u64) - (*EPHEMERAL_PORTS.start() as u64) + 1 == EPHEMERAL_SPAN
);

/// A free port of the ephemeral range: one that no TCP socket of `sockets` uses locally,
/// searched from a place that varies with `now`, so that back-to-back connections to one server
/// do not reuse a port whose old connection the server may still hold in TIME-WAIT.
fn ephemeral_port(sockets: &SocketSet<'_>, now: Instant) -> Option<u16> {
    let first = *EPHEMERAL_PORTS.start();
    // A multiplicative hash (Knuth's) of the time, its top 14 bits, spreads nearby times over
    // the whole range.
    let span = EPHEMERAL_SPAN;
    let start = (now.total_micros() as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 50;
    let in_use = |port: u16| {
        sockets.iter().any(|(_, socket)| {
            <tcp::Socket as smoltcp::socket::AnySocket>::downcast(socket)
                .and_then(|s| s.local_endpoint())
                .is_some_and(|local| local.port == port)
        })
    };
    (0..span)
        .map(|i| first + ((start + i) % span) as u16)
        .find(|&port| !in_use(port))
}

/// The receiving side of one transfer, as a sans-IO state machine.
///
/// Call [`poll`](Client::poll) after every `Interface::poll` with the current time and the
/// socket set that holds the client's socket. Received bytes go from the socket's receive
/// buffer straight into the sink.
///
/// ```
/// # fn main() -> Result<(), halfclose::Error> {
/// use core::task::Poll;
/// use halfclose::client::{Client, Connect, State};
/// use halfclose::device::Loopback;
/// use halfclose::smoltcp::iface::{Config, Interface, SocketSet, SocketStorage};
/// use halfclose::smoltcp::phy::Medium;
/// use halfclose::smoltcp::socket::tcp;
/// use halfclose::smoltcp::time::Instant;
/// use halfclose::smoltcp::wire::{HardwareAddress, IpAddress, IpCidr};
///
/// let mut device = Loopback::<1500, 4>::new(Medium::Ip);
/// let mut iface = Interface::new(Config::new(HardwareAddress::Ip), &mut device, Instant::ZERO);
/// iface.update_ip_addrs(|a| a.push(IpCidr::new(IpAddress::v4(127, 0, 0, 1), 8)).unwrap());
/// let (mut rx, mut tx) = ([0u8; 4096], [0u8; 64]);
/// let mut storage: [SocketStorage; 1] = Default::default();
/// let mut sockets = SocketSet::new(&mut storage[..]);
/// let handle = sockets.add(tcp::Socket::new(
///     tcp::SocketBuffer::new(&mut rx[..]),
///     tcp::SocketBuffer::new(&mut tx[..]),
/// ));
///
/// // The file goes to any `embedded_io::Write`: here a byte slice.
/// let mut copy = [0u8; 1024];
/// let to = Connect::to((IpAddress::v4(127, 0, 0, 1), 7891));
/// let mut client = Client::connect(iface.context(), &mut sockets, handle, to, &mut copy[..], Instant::ZERO)?;
/// iface.poll(Instant::ZERO, &mut device, &mut sockets);
///
/// // Nobody listens on port 7891 here: the SYN is answered with a reset.
/// iface.poll(Instant::ZERO, &mut device, &mut sockets);
/// assert_eq!(client.poll(Instant::ZERO, &mut sockets), Poll::Ready(Err(halfclose::Error::Refused)));
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct Client<W> {
    sink: W,
    handle: SocketHandle,
    state: State,
    /// The limits of `Timeouts` a client uses, one per phase (24 bytes, where `Timeouts` has 56).
    limits: Limits,
    remote: IpEndpoint,
    started_at: Instant,
    /// When the connection was established; `started_at` until it is (8 bytes, where an
    /// `Option<Instant>` takes 16).
    connected_at: Instant,
    last_progress: Instant,
    /// When the current phase times out if nothing moves (as of the last poll).
    deadline: Instant,
    last_send_queue: usize,
}

/// [`Timeouts::limit`]'s three, all of `Timeouts` that a [`Client`] uses.
#[derive(Debug, Clone, Copy)]
struct Limits {
    connect: Duration,
    idle: Duration,
    reply: Duration,
}

impl<W: Write> Client<W> {
    /// Connect the socket `handle` of `sockets` as `to` says, writing the file to `sink`. `cx`
    /// is `iface.context()`.
    ///
    /// Fails before anything is sent when the remote address is unspecified, not unicast or
    /// its port is 0 ([`Error::Unaddressable`]), when no ephemeral port is free, when the
    /// socket is already open ([`Error::Connect`]), and when the socket's receive buffer is over
    /// [`MAX_RECEIVE_BUFFER`] bytes ([`Error::ReceiveBufferTooLarge`]).
    ///
    /// # Panics
    ///
    /// If `handle` is not a TCP socket of `sockets` (as `SocketSet::get_mut` does).
    pub fn connect(
        cx: &mut Context,
        sockets: &mut SocketSet<'_>,
        handle: SocketHandle,
        to: Connect,
        sink: W,
        now: Instant,
    ) -> Result<Self, Error> {
        let Connect {
            remote,
            mut local,
            timeouts,
        } = to;
        check_remote(remote)?;
        if local.port == 0 {
            local.port = ephemeral_port(sockets, now).ok_or(Error::Unaddressable {
                what: "no free local port in the ephemeral range",
            })?;
        }
        let socket = sockets.get_mut::<tcp::Socket>(handle);
        let capacity = socket.recv_capacity();
        if capacity > MAX_RECEIVE_BUFFER {
            return Err(Error::ReceiveBufferTooLarge { capacity });
        }
        socket.connect(cx, remote, local).map_err(Error::Connect)?;
        Ok(Client {
            sink,
            handle,
            state: State::Connecting,
            limits: Limits {
                connect: timeouts.connect,
                idle: timeouts.idle,
                reply: timeouts.reply,
            },
            remote,
            started_at: now,
            connected_at: now,
            last_progress: now,
            deadline: now + timeouts.connect,
            last_send_queue: 0,
        })
    }

    /// The client's socket.
    pub fn handle(&self) -> SocketHandle {
        self.handle
    }

    /// When this transfer times out if nothing happens before (`None` once it is over). An
    /// event loop sleeps no later than this, as it does for `Interface::poll_at`.
    pub fn deadline(&self) -> Option<Instant> {
        self.outcome().is_pending().then_some(self.deadline)
    }

    /// Where the transfer is.
    pub fn state(&self) -> &State {
        &self.state
    }

    /// The sink.
    pub fn sink(&self) -> &W {
        &self.sink
    }

    /// Give the sink back (with every byte received so far, whatever the outcome).
    pub fn into_sink(self) -> W {
        self.sink
    }

    /// File bytes written to the sink so far.
    pub fn received(&self) -> u64 {
        match &self.state {
            State::Connecting => 0,
            State::Receiving { received } | State::Replying { received, .. } => *received,
            State::Done(report) => report.bytes,
            State::Failed(error) => error.bytes(),
        }
    }

    /// Advance the transfer: call it after every `Interface::poll`, with the set that holds the
    /// client's socket. Returns `Ready` when it is over, and the same again on later calls.
    #[must_use = "the transfer's outcome is reported only once"]
    pub fn poll(
        &mut self,
        now: Instant,
        sockets: &mut SocketSet<'_>,
    ) -> Poll<Result<Report, Error>> {
        let socket = sockets.get_mut::<tcp::Socket>(self.handle);
        if self.outcome().is_pending()
            && let Err(error) = self.step(now, socket)
        {
            crate::abort_if_open(socket);
            self.set_state(State::Failed(error));
        }
        self.outcome()
    }

    /// `Ready` with the result once the state is `Done` or `Failed`.
    fn outcome(&self) -> Poll<Result<Report, Error>> {
        match &self.state {
            State::Done(report) => Poll::Ready(Ok(report.clone())),
            State::Failed(error) => Poll::Ready(Err(error.clone())),
            State::Connecting | State::Receiving { .. } | State::Replying { .. } => Poll::Pending,
        }
    }

    fn set_state(&mut self, next: State) {
        debug!("halfclose client: {}=>{}", self.state, next);
        self.state = next;
    }

    fn step(&mut self, now: Instant, socket: &mut tcp::Socket) -> Result<(), Error> {
        if let State::Connecting = self.state {
            match socket.state() {
                tcp::State::SynSent => return self.check_deadline(now, Phase::Connect, 0),
                // In SYN-SENT a RST from the peer means nobody listens there.
                tcp::State::Closed => return Err(Error::Refused),
                tcp::State::Listen
                | tcp::State::SynReceived
                | tcp::State::Established
                | tcp::State::FinWait1
                | tcp::State::FinWait2
                | tcp::State::CloseWait
                | tcp::State::Closing
                | tcp::State::LastAck
                | tcp::State::TimeWait => {
                    self.connected_at = now;
                    self.progress(now);
                    self.set_state(State::Receiving { received: 0 });
                }
            }
        }
        match self.state {
            State::Receiving { received } => self.receive(now, socket, received),
            State::Replying {
                received,
                queued,
                eof_at,
            } => self.reply(now, socket, received, queued, eof_at),
            State::Connecting | State::Done(_) | State::Failed(_) => Ok(()),
        }
    }

    fn receive(
        &mut self,
        now: Instant,
        socket: &mut tcp::Socket,
        mut received: u64,
    ) -> Result<(), Error> {
        let sink = &mut self.sink;
        let outcome = loop {
            // Nothing to read and no FIN: what `recv` would say, without the call.
            if socket.recv_queue() == 0 && socket.may_recv() {
                break None;
            }
            // The sink takes bytes straight from the socket's receive buffer.
            let wrote = socket.recv(|buf| write_some(sink, buf));
            match wrote {
                Ok(Ok(0)) => break None,
                Ok(Ok(n)) => received += n as u64,
                Ok(Err(kind)) => {
                    break Some(Err(Error::Sink {
                        kind,
                        bytes: received,
                    }));
                }
                // The server's FIN, after every byte before it: the file is complete.
                Err(RecvError::Finished) => break Some(Ok(())),
                Err(RecvError::InvalidState) => {
                    break Some(Err(Error::Reset {
                        phase: Phase::Transfer,
                        bytes: received,
                    }));
                }
            }
        };
        if let State::Receiving { received: before } = self.state
            && received != before
        {
            trace!("halfclose client: {} bytes", received - before);
            self.progress(now);
        }
        self.state = State::Receiving { received };
        match outcome {
            None => self.check_deadline(now, Phase::Transfer, received),
            Some(Err(error)) => Err(error),
            Some(Ok(())) => {
                self.sink.flush().map_err(|e| Error::Sink {
                    kind: e.kind(),
                    bytes: received,
                })?;
                self.progress(now);
                self.set_state(State::Replying {
                    received,
                    queued: 0,
                    eof_at: now,
                });
                self.reply(now, socket, received, 0, now)
            }
        }
    }

    fn reply(
        &mut self,
        now: Instant,
        socket: &mut tcp::Socket,
        received: u64,
        mut queued: usize,
        eof_at: Instant,
    ) -> Result<(), Error> {
        if queued < REPLY.len() {
            match socket.send_slice(&REPLY[queued..]) {
                Ok(n) => queued += n,
                Err(tcp::SendError::InvalidState) => {
                    return Err(Error::Reset {
                        phase: Phase::Reply,
                        bytes: received,
                    });
                }
            }
            if queued == REPLY.len() {
                // The reply is our last word: the FIN follows it.
                socket.close();
            }
            self.state = State::Replying {
                received,
                queued,
                eof_at,
            };
        }
        let queue = socket.send_queue();
        if queue < self.last_send_queue {
            self.progress(now);
        }
        self.last_send_queue = queue;

        match socket.state() {
            // LAST-ACK ends in CLOSED when the server acknowledges our FIN, which comes after
            // the reply: everything arrived. A reset also ends in CLOSED, but leaves the reply
            // unacknowledged in the transmit queue.
            tcp::State::Closed if queued == REPLY.len() && queue == 0 => {
                let report = Report {
                    remote: self.remote,
                    bytes: received,
                    started_at: self.started_at,
                    connected_at: self.connected_at,
                    eof_at,
                    finished_at: now,
                };
                self.set_state(State::Done(report));
                Ok(())
            }
            tcp::State::Closed => Err(Error::Reset {
                phase: Phase::Reply,
                bytes: received,
            }),
            tcp::State::Listen
            | tcp::State::SynSent
            | tcp::State::SynReceived
            | tcp::State::Established
            | tcp::State::FinWait1
            | tcp::State::FinWait2
            | tcp::State::CloseWait
            | tcp::State::Closing
            | tcp::State::LastAck
            | tcp::State::TimeWait => self.check_deadline(now, Phase::Reply, received),
        }
    }

    fn progress(&mut self, now: Instant) {
        self.last_progress = now;
    }

    fn check_deadline(&mut self, now: Instant, phase: Phase, bytes: u64) -> Result<(), Error> {
        let since = match phase {
            Phase::Connect => self.started_at,
            Phase::Transfer | Phase::Reply => self.last_progress,
        };
        let limit = match phase {
            Phase::Connect => self.limits.connect,
            Phase::Transfer => self.limits.idle,
            Phase::Reply => self.limits.reply,
        };
        self.deadline = since + limit;
        if now >= self.deadline {
            Err(Error::TimedOut { phase, bytes })
        } else {
            Ok(())
        }
    }
}

/// Write what `sink` takes of `buf`: (bytes consumed, what the write said), as `tcp::Socket::recv`
/// wants it.
fn write_some<W: Write>(
    sink: &mut W,
    buf: &[u8],
) -> (usize, Result<usize, embedded_io::ErrorKind>) {
    if buf.is_empty() {
        return (0, Ok(0));
    }
    match sink.write(buf) {
        // A sink that accepts nothing of a non-empty buffer is full.
        Ok(0) => (0, Err(embedded_io::ErrorKind::WriteZero)),
        Ok(n) => (n, Ok(n)),
        Err(e) => (0, Err(e.kind())),
    }
}

/// Refuse a remote endpoint nobody can connect to, naming what is wrong with it (smoltcp says
/// only "unaddressable").
fn check_remote(remote: IpEndpoint) -> Result<(), Error> {
    let what = if remote.addr.is_unspecified() {
        "the remote address is unspecified"
    } else if remote.port == 0 {
        "the remote port is 0"
    } else if !remote.addr.is_unicast() {
        "the remote address is not unicast"
    } else {
        return Ok(());
    };
    Err(Error::Unaddressable { what })
}

/// `123.45 KiB from 10.0.0.1:7891 in 12.3 ms`.
impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use crate::human::{Bytes, Time};
        write!(
            f,
            "{} from {} in {} (the file in {}, connected after {})",
            Bytes(self.bytes),
            self.remote,
            Time(self.duration()),
            Time(self.transfer_time()),
            Time(self.connected_at - self.started_at),
        )
    }
}

#[cfg(test)]
mod tests {
    use std::vec;

    use smoltcp::iface::{Config, Interface};
    use smoltcp::phy::Medium;
    use smoltcp::wire::{HardwareAddress, IpAddress, IpCidr};

    use super::*;
    use crate::device::Loopback;

    fn socket() -> tcp::Socket<'static> {
        tcp::Socket::new(
            tcp::SocketBuffer::new(vec![0; 64]),
            tcp::SocketBuffer::new(vec![0; 64]),
        )
    }

    #[test]
    fn ephemeral_ports_stay_in_their_range_and_vary_with_the_time() {
        let sockets = SocketSet::new(vec![]);
        let mut seen = std::collections::BTreeSet::new();
        for second in 0..1000 {
            let port = ephemeral_port(&sockets, Instant::from_secs(second)).unwrap();
            assert!(EPHEMERAL_PORTS.contains(&port), "{port}");
            seen.insert(port);
        }
        // A thousand times, spread over the range: nearly all different.
        assert!(seen.len() > 950, "{} different ports", seen.len());
        assert!(seen.iter().any(|&p| p < 57_344) && seen.iter().any(|&p| p >= 57_344));
    }

    #[test]
    fn an_ephemeral_port_in_use_is_passed_over() {
        let mut device = Loopback::<256, 2>::new(Medium::Ip);
        let mut iface =
            Interface::new(Config::new(HardwareAddress::Ip), &mut device, Instant::ZERO);
        iface.update_ip_addrs(|a| a.push(IpCidr::new(IpAddress::v4(127, 0, 0, 1), 8)).unwrap());
        let mut sockets = SocketSet::new(vec![]);
        let now = Instant::from_secs(7);
        let free = ephemeral_port(&sockets, now).unwrap();
        // Another socket takes that port: the next search at the same time goes on past it.
        let taken = sockets.add(socket());
        let remote = (IpAddress::v4(127, 0, 0, 1), 7891);
        sockets
            .get_mut::<tcp::Socket>(taken)
            .connect(iface.context(), remote, free)
            .unwrap();
        let next = ephemeral_port(&sockets, now).unwrap();
        assert_ne!(next, free);
        assert!(EPHEMERAL_PORTS.contains(&next), "{next}");
        assert_eq!(next, if free == 65535 { 49152 } else { free + 1 });
    }

    #[test]
    fn a_client_connects_its_own_socket_from_an_ephemeral_port() {
        let mut device = Loopback::<256, 2>::new(Medium::Ip);
        let mut iface =
            Interface::new(Config::new(HardwareAddress::Ip), &mut device, Instant::ZERO);
        iface.update_ip_addrs(|a| a.push(IpCidr::new(IpAddress::v4(127, 0, 0, 1), 8)).unwrap());
        let mut sockets = SocketSet::new(vec![]);
        let _other = sockets.add(socket());
        let mine = sockets.add(socket());
        let mut sink = [0u8; 8];
        let to = Connect::to((IpAddress::v4(127, 0, 0, 1), 7891));
        let client = Client::connect(
            iface.context(),
            &mut sockets,
            mine,
            to,
            &mut sink[..],
            Instant::ZERO,
        )
        .unwrap();
        assert_eq!(client.handle(), mine);
        let local = sockets.get::<tcp::Socket>(mine).local_endpoint().unwrap();
        assert_eq!(
            Some(local.port),
            ephemeral_port(&SocketSet::new(vec![]), Instant::ZERO)
        );
    }
}
