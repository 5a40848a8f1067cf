//! The pool: [`Server`] runs a [`Sender`](super::Sender) on each of `N` sockets and keeps one listening.

use core::task::Poll;

use smoltcp::iface::{SocketHandle, SocketSet};
use smoltcp::socket::tcp;
use smoltcp::time::{Duration, Instant};
use smoltcp::wire::IpListenEndpoint;

use super::sender::Conn;
use super::{Report, Source, State};
use crate::backlog::Backlog;
use crate::{Error, Timeouts};

/// What one socket of the pool is doing.
// Every slot must be able to hold a connection, so the pool's size is N senders whatever the
// variant; boxing would need an allocator.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
enum Slot<R> {
    /// Waiting for a SYN.
    Listening,
    /// Running a connection.
    Serving(Conn<R>),
    /// The connection ended; the socket still has its last ACK (or a RST) to send, and may
    /// re-acknowledge a retransmitted FIN until `until`.
    Lingering {
        /// When the slot listens again.
        until: Instant,
        /// When the socket's delayed-ACK timer, if one was running, has run out: its last ACK
        /// leaves at the interface's first send from then on, so it has left once a `poll`
        /// at or after this one is over (`Server::last_poll`).
        earliest: Instant,
        /// The socket's own delayed-ACK setting, restored when it listens again.
        ack_delay: Option<Duration>,
    },
}

/// An aborted socket whose RST has not left yet: smoltcp keeps its endpoints until it sends the
/// RST (a socket closed by the peer's RST, or by the ACK of its FIN, has none).
fn reset_pending(socket: &tcp::Socket) -> bool {
    socket.state() == tcp::State::Closed && socket.remote_endpoint().is_some()
}

/// A pool of `N` listening sockets, each serving one client at a time.
///
/// The caller creates the sockets (and so owns their buffers) and adds them to the `SocketSet`;
/// the server makes them listen and runs a [`Sender`](super::Sender) on each accepted connection. In a pool of
/// two or more, each time a slot listens again its socket is taken out of the set and added
/// back, so that it starts as fresh as a new socket: smoltcp keeps a second's silence after an
/// unanswered ARP request (or a missing route) beside the socket, not in it, and a forged
/// client's would otherwise hold the next real client's SYN-ACK while the pool takes
/// half-open connections back under a flood. The set needs no spare place for this; the handle
/// stays the same unless the set had a free place before it ([`handles`](Server::handles) has
/// the current ones).
///
/// When a connection ends well, its socket lingers in TIME-WAIT for [`Timeouts::linger`] (and at
/// least until a `poll` that follows one made at or after the socket's delayed-ACK time, so that
/// the interface, polled in between, has sent the final ACK of the client's FIN, whether the loop runs the
/// server before or after the interface sends), then listens again; after an error it listens
/// again as soon as its RST has left (however often `poll` is called before the interface sends
/// it; at most `linger` later if the device never takes it). smoltcp's own TIME-WAIT lasts 10 s, far longer
/// than a small pool can spare a socket.
///
/// # A full pool keeps one socket listening
///
/// A SYN that finds no socket listening is answered with a reset by smoltcp (the client sees
/// "connection refused"), and the server never learns of it. So whenever no slot listens
/// after a `poll`, the pool takes one slot back (unless [`set_reclaim`](Server::set_reclaim)
/// turned this off), in this order:
///
/// 1. A lingering slot: its transfer is over; only a lost last ACK would have needed it. In
///    a pool of one this is the only reclaim, so a pool of one listens again as soon as its last
///    ACK (or, after an error, its RST) has left, whatever `linger` says.
/// 2. In a pool of two or more: the oldest half-open connection (SYN-RECEIVED), once it has had
///    one and a half times as long to complete its handshake as the last client that completed
///    one took, and a millisecond more; without a RST (its address is likely forged). A real
///    client completes its handshake in one round trip, long before a flood has pushed it to
///    the front, and one that is reclaimed anyway retries its SYN and finds a listener. The wait
///    is what makes this safe on a slow link: with none, clients let in together over a 10 ms
///    round trip (from a listen backlog, say) took each other's slots before any of them could
///    answer. Until a handshake has been seen the pool assumes [`FIRST_HANDSHAKE`], and halves
///    that with each connection it takes back, so that a SYN flood that comes before any real
///    client cannot hold the pool at that wait; a handshake counts for at most
///    [`LONGEST_HANDSHAKE`].
/// 3. In a pool of two or more: the established connection whose peer has moved nothing for the
///    longest, if that is at least [`Timeouts::stall`]; it is aborted (a RST tells the peer at
///    once). This is fair because it only happens when the pool is full, it takes the slot that
///    does no work for anyone, longest-idle first, and a peer that moves anything within
///    `stall` is never touched: an attacker cannot evict a client that is making progress.
///
/// A reclaimed connection is reported as [`Error::TimedOut`] in its phase. A pool whose every
/// slot serves a live, progressing connection has nothing to take back, and refuses new clients
/// until one finishes.
///
/// Call [`poll`](Server::poll) after every `Interface::poll`: the pool relies on the interface
/// having sent what the sockets queued between two calls. Behind a listen backlog
/// ([`crate::backlog`]), call [`admit`](Server::admit) after each `poll`.
///
/// # Example
///
/// A pool of two serving two clients that connect at once, in memory:
///
/// ```
/// # fn main() -> Result<(), Box<dyn core::error::Error>> {
/// use core::task::Poll;
/// use halfclose::client::{Client, Connect};
/// use halfclose::clock::SimClock;
/// use halfclose::device::Loopback;
/// use halfclose::server::Server;
/// use halfclose::smoltcp::iface::{Config, Interface, SocketSet};
/// use halfclose::smoltcp::phy::Medium;
/// use halfclose::smoltcp::socket::tcp;
/// use halfclose::smoltcp::wire::{HardwareAddress, IpAddress, IpCidr};
///
/// let file = vec![7u8; 100_000];
/// let mut device = Loopback::<1500, 8>::new(Medium::Ip);
/// let mut clock = SimClock::new().with_limit(core::time::Duration::from_secs(60));
/// let mut iface = Interface::new(Config::new(HardwareAddress::Ip), &mut device, clock.now());
/// iface.update_ip_addrs(|a| a.push(IpCidr::new(IpAddress::v4(127, 0, 0, 1), 8)).unwrap());
/// let mut sockets = SocketSet::new(vec![]);
/// let mut socket = || {
///     let buffer = || tcp::SocketBuffer::new(vec![0u8; 8192]);
///     sockets.add(tcp::Socket::new(buffer(), buffer()))
/// };
/// let pool = [socket(), socket()];
/// let clients = [socket(), socket()];
///
/// // Both slots listen on port 7891 and serve the same file.
/// let mut server = Server::listen(&mut sockets, pool, 7891, &file[..], Default::default())?;
/// let to = Connect::to((IpAddress::v4(127, 0, 0, 1), 7891));
/// let mut a = Client::connect(iface.context(), &mut sockets, clients[0], to, Vec::new(), clock.now())?;
/// let mut b = Client::connect(iface.context(), &mut sockets, clients[1], to, Vec::new(), clock.now())?;
/// let mut served = 0;
/// loop {
///     let now = clock.now();
///     iface.poll(now, &mut device, &mut sockets);
///     // Each connection that ended in this poll, with its report or its error.
///     for report in server.poll(now, &mut sockets) {
///         assert!(report?.reply.is_thank_you());
///         served += 1;
///     }
///     let (done_a, done_b) = (a.poll(now, &mut sockets), b.poll(now, &mut sockets));
///     if served == 2 && done_a.is_ready() && done_b.is_ready() {
///         assert!(matches!((done_a, done_b), (Poll::Ready(Ok(_)), Poll::Ready(Ok(_)))));
///         break;
///     }
///     clock.advance(&mut iface, &sockets, &device, [server.poll_at(), a.deadline(), b.deadline()])?;
/// }
/// assert!(a.into_sink() == file && b.into_sink() == file);
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct Server<S: Source, const N: usize> {
    handles: [SocketHandle; N],
    slots: [Slot<S::Reader>; N],
    endpoint: IpListenEndpoint,
    source: S,
    timeouts: Timeouts,
    reclaim: bool,
    /// The time of the last `poll`. The interface has sent since (whatever order the loop
    /// polls in), so an ACK due by then has left. A loop that runs the server between taking
    /// packets in and sending them (smoltcp's split poll) has not yet sent an ACK that falls
    /// due in that very pass, and `listen` in TIME-WAIT would drop it (or, with
    /// `patches/0003`, refuse).
    last_poll: Instant,
    /// How long the last client that completed its handshake took, from its SYN (at most
    /// [`LONGEST_HANDSHAKE`]); see [`reclaim_after`](Self::reclaim_after).
    handshake: Duration,
    /// Whether `handshake` was measured; until then it is a guess, halved at each reclaim.
    handshake_seen: bool,
}

/// The handshake time a pool assumes until it has seen one (a half-open connection is then
/// reclaimed for a new client after 151 ms), halved at each connection taken back before then.
/// Generous for a LAN, where the first completed handshake brings it down to a round trip of
/// that link.
pub const FIRST_HANDSHAKE: Duration = Duration::from_millis(100);

/// Added to the wait before a half-open connection is reclaimed: the handshake is timed from
/// poll to poll, and on a fast link (or in memory, where it takes no time at all) it may
/// measure nothing.
const HANDSHAKE_SLACK: Duration = Duration::from_millis(1);

/// The longest handshake time a pool learns from a client: a peer that completes its handshake
/// slowly cannot make half-open connections safe from reclaim for longer than 1.5 times this
/// (and a millisecond).
pub const LONGEST_HANDSHAKE: Duration = Duration::from_secs(1);

impl<S: Source, const N: usize> Server<S, N> {
    /// Make the sockets listen on `endpoint` (a port, or an address and port).
    pub fn listen(
        sockets: &mut SocketSet<'_>,
        handles: [SocketHandle; N],
        endpoint: impl Into<IpListenEndpoint>,
        source: S,
        timeouts: Timeouts,
    ) -> Result<Self, Error> {
        let endpoint = endpoint.into();
        for &handle in &handles {
            sockets
                .get_mut::<tcp::Socket>(handle)
                .listen(endpoint)
                .map_err(Error::Listen)?;
        }
        Ok(Server {
            handles,
            slots: core::array::from_fn(|_| Slot::Listening),
            endpoint,
            source,
            timeouts,
            reclaim: true,
            last_poll: Instant::ZERO,
            handshake: FIRST_HANDSHAKE,
            handshake_seen: false,
        })
    }

    /// Whether a pool with no listening socket takes a slot back (on by default; see
    /// [`Server`]). Off, lingering slots linger their full [`Timeouts::linger`] and no
    /// connection is ever cut short for a new client: the behaviour before these defences, kept
    /// for comparisons and for single-connection tests that want a full TIME-WAIT.
    pub fn set_reclaim(&mut self, on: bool) {
        self.reclaim = on;
    }

    /// Advance every connection; returns those that ended in this call.
    ///
    /// A source that fails to open for a new connection aborts that connection and is reported
    /// as [`Error::Source`].
    #[must_use = "each connection's outcome is reported only once, by the call in which it ended"]
    pub fn poll(&mut self, now: Instant, sockets: &mut SocketSet<'_>) -> Finished<N> {
        let mut ended = Finished::new();
        // Slots that finished in this call: never reclaimed in the same call (one that has just
        // taken a SYN is too young to be).
        let mut fresh = [false; N];
        for (i, fresh) in fresh.iter_mut().enumerate() {
            *fresh = self.poll_slot(i, now, sockets, &mut ended);
        }
        if self.reclaim && self.listening() == 0 {
            self.keep_one_listening(now, sockets, &fresh, &mut ended);
        }
        self.last_poll = now;
        ended
    }

    /// Advance slot `i`. Returns whether its connection ended in this call (which keeps it from
    /// being reclaimed in the same call; one that has just taken its SYN is too young to be).
    fn poll_slot(
        &mut self,
        i: usize,
        now: Instant,
        sockets: &mut SocketSet<'_>,
        ended: &mut Finished<N>,
    ) -> bool {
        let socket = sockets.get_mut::<tcp::Socket>(self.handles[i]);
        let took_syn = match self.slots[i] {
            // A SYN arrived: the slot serves the connection, polled at once below.
            Slot::Listening if socket.is_active() => true,
            Slot::Listening => {
                if !socket.is_listening() {
                    // Someone else closed or aborted the socket; take it back. `listen` only
                    // fails for port 0, which `Server::listen` rejected.
                    let _ = socket.listen(self.endpoint);
                }
                return false;
            }
            // An aborted socket whose RST has gone has nothing left to linger for; one whose
            // RST the interface has yet to send waits for it, until `until`.
            Slot::Lingering {
                until,
                earliest,
                ack_delay,
            } => {
                let reset_sent = socket.state() == tcp::State::Closed && !reset_pending(socket);
                if (now >= until && self.last_poll >= earliest) || reset_sent {
                    self.relisten(i, sockets, ack_delay);
                }
                return false;
            }
            // A connection: polled below.
            Slot::Serving(_) => false,
        };
        if took_syn {
            // A source that fails to open leaves the slot lingering: `serve` has nothing to poll.
            self.accept(i, now, socket, ended);
        }
        self.serve(i, now, socket, ended)
    }

    /// A SYN took slot `i`: open the file for its connection, and serve it; a source that fails
    /// to open aborts the connection, reports it, and leaves the slot lingering for its RST.
    fn accept(
        &mut self,
        i: usize,
        now: Instant,
        socket: &mut tcp::Socket,
        ended: &mut Finished<N>,
    ) {
        match self.source.open() {
            Ok(reader) => {
                self.slots[i] = Slot::Serving(Conn::new(reader, now, &self.timeouts));
            }
            Err(kind) => {
                socket.abort();
                ended.push(Err(Error::Source { kind, bytes: 0 }));
                self.slots[i] = Self::linger(socket, now, self.timeouts.linger);
            }
        }
    }

    /// Poll slot `i`'s connection, if it has one. Returns whether the connection ended (then it
    /// is reported, and the slot lingers).
    fn serve(
        &mut self,
        i: usize,
        now: Instant,
        socket: &mut tcp::Socket,
        ended: &mut Finished<N>,
    ) -> bool {
        let Slot::Serving(sender) = &mut self.slots[i] else {
            return false;
        };
        // Only a pool of two or more takes half-open connections back, so only it times them.
        let was_half_open = N >= 2 && sender.is_half_open();
        let Poll::Ready(result) = sender.poll(now, socket, &self.timeouts) else {
            if was_half_open && !sender.is_half_open() {
                self.handshake = (now - sender.accepted_at()).min(LONGEST_HANDSHAKE);
                self.handshake_seen = true;
            }
            return false;
        };
        // A finished exchange may have a FIN to re-acknowledge; after an error the slot waits
        // just for its RST to leave (the `reset_sent` test in `poll_slot`), at most `linger`.
        // A handshake reset by the peer (a RST in SYN-RECEIVED) has sent smoltcp's socket back
        // to LISTEN, where it takes the next SYN: the slot listens, or that client would wait
        // on a socket the pool does not serve.
        ended.push(result);
        self.slots[i] = if socket.is_listening() {
            Slot::Listening
        } else {
            Self::linger(socket, now, self.timeouts.linger)
        };
        true
    }

    /// Take one slot back so the pool listens again (see [`Server`] for the order and why).
    fn keep_one_listening(
        &mut self,
        now: Instant,
        sockets: &mut SocketSet<'_>,
        fresh: &[bool; N],
        ended: &mut Finished<N>,
    ) {
        // 1. A lingering slot whose last ACK (or RST) has left.
        if let Some(i) = self.done_lingering(sockets, fresh) {
            if let Slot::Lingering { ack_delay, .. } = self.slots[i] {
                self.relisten(i, sockets, ack_delay);
            }
            return;
        }
        if N < 2 {
            return;
        }
        // 2. The oldest half-open connection, if it has had time to complete its handshake.
        if let Some(i) = self.oldest_half_open(now, fresh) {
            let socket = sockets.get_mut::<tcp::Socket>(self.handles[i]);
            self.reclaim_slot(i, socket, ended);
            // No RST: a forged source would never read it, and a real one retries its SYN.
            socket.abort();
            let ack_delay = socket.ack_delay();
            self.relisten(i, sockets, ack_delay);
            // A guess that only forged SYNs have met is not left to hold off the next ones.
            if !self.handshake_seen {
                self.handshake /= 2;
            }
            return;
        }
        // 3. The longest-stalled established connection, stalled for at least `stall`.
        if let Some(i) = self.longest_stalled(now, fresh) {
            let socket = sockets.get_mut::<tcp::Socket>(self.handles[i]);
            self.reclaim_slot(i, socket, ended);
            // The peer may be alive: tell it with a RST, and listen once that has left.
            socket.abort();
            self.slots[i] = Self::linger(socket, now, self.timeouts.linger);
        }
    }

    /// The slots that neither took a SYN nor finished in this call, with their index.
    fn candidates<'s>(
        &'s self,
        fresh: &'s [bool; N],
    ) -> impl Iterator<Item = (usize, &'s Slot<S::Reader>)> + 's {
        self.slots.iter().enumerate().filter(|&(i, _)| !fresh[i])
    }

    /// A lingering slot that may listen again now: its last ACK (or RST) has left.
    fn done_lingering(&self, sockets: &SocketSet<'_>, fresh: &[bool; N]) -> Option<usize> {
        self.candidates(fresh).find_map(|(i, slot)| match slot {
            Slot::Lingering { earliest, .. } => {
                let socket = sockets.get::<tcp::Socket>(self.handles[i]);
                (self.last_poll >= *earliest && !reset_pending(socket)).then_some(i)
            }
            Slot::Listening | Slot::Serving(_) => None,
        })
    }

    /// The slot whose connection is the oldest still in its handshake, if that has lasted at
    /// least [`reclaim_after`](Self::reclaim_after).
    fn oldest_half_open(&self, now: Instant, fresh: &[bool; N]) -> Option<usize> {
        self.candidates(fresh)
            .filter_map(|(i, slot)| match slot {
                Slot::Serving(sender) => sender.is_half_open().then_some((sender.accepted_at(), i)),
                Slot::Listening | Slot::Lingering { .. } => None,
            })
            .min()
            .filter(|&(since, _)| now >= since + self.reclaim_after())
            .map(|(_, i)| i)
    }

    /// How long a half-open connection keeps its slot in a full pool: one and a half times the
    /// last completed handshake (a round trip of the link, and the time to the next poll), and
    /// a millisecond more.
    fn reclaim_after(&self) -> Duration {
        self.handshake + self.handshake / 2 + HANDSHAKE_SLACK
    }

    /// The slot whose established connection has moved nothing for the longest, if for at least
    /// [`Timeouts::stall`].
    fn longest_stalled(&self, now: Instant, fresh: &[bool; N]) -> Option<usize> {
        self.candidates(fresh)
            .filter_map(|(i, slot)| match slot {
                Slot::Serving(sender) => sender
                    .stalled_since()
                    .filter(|&since| now >= since + self.timeouts.stall)
                    .map(|since| (since, i)),
                Slot::Listening | Slot::Lingering { .. } => None,
            })
            .min()
            .map(|(_, i)| i)
    }

    /// End slot `i`'s connection as reclaimed and report it. One result per slot per call: this
    /// slot, not fresh, has not reported in this call.
    fn reclaim_slot(&mut self, i: usize, socket: &mut tcp::Socket, ended: &mut Finished<N>) {
        if let Slot::Serving(sender) = &mut self.slots[i] {
            ended.push(Err(sender.reclaim(socket)));
        }
    }

    /// Slot `i` listens again, as a socket just added to the set would.
    ///
    /// The socket goes out of the set and back in: smoltcp keeps, beside each socket in the
    /// set, a "neighbour missing" silence (no packet from that socket for a second after one
    /// it could not send for want of an ARP answer or a route), and neither `abort` nor
    /// `listen` clears it. Kept, a slot taken back from a forged SYN would hold the SYN-ACK
    /// of the next, real client for up to a second, long enough under a flood for the pool
    /// to take that handshake back too (`docs/upstream/neighbor-silence.md`). The handle may
    /// change (when the set has a free place before it): [`handles`](Server::handles). In a pool
    /// of two or more.
    fn relisten(&mut self, i: usize, sockets: &mut SocketSet<'_>, ack_delay: Option<Duration>) {
        let socket = sockets.get_mut::<tcp::Socket>(self.handles[i]);
        if socket.is_open() {
            // A socket that never closed: `listen` needs it closed (TIME-WAIT it takes as it is).
            socket.abort();
        }
        // Port 0 was rejected by `Server::listen`. A smoltcp that keeps TIME-WAIT's owed ACK
        // (`patches/0003`) refuses while one is left, as after a FIN retransmitted into the
        // pass that takes the slot back: the slot lingers on, its ACK leaves at once, and it
        // tries again at its next poll. A slot counted as listening must listen, or a SYN let
        // in for it (by a listen backlog) meets a reset.
        if socket.listen(self.endpoint).is_err() {
            return;
        }
        socket.set_ack_delay(ack_delay);
        // A pool of one skips the fresh start: it never takes a half-open connection back, so
        // the silence can only delay its next client by what is left of a second after a peer it
        // could not reach (less than that client's first SYN retransmission), and on the
        // smallest boards the 130 bytes of flash it costs matter more.
        if N > 1 {
            let socket = sockets.remove(self.handles[i]);
            self.handles[i] = sockets.add(socket);
        }
        self.slots[i] = Slot::Listening;
    }

    fn linger(socket: &mut tcp::Socket, now: Instant, linger: Duration) -> Slot<S::Reader> {
        let ack_delay = socket.ack_delay();
        // A delayed-ACK timer already running keeps its deadline, so the slot lingers at least
        // that long; ACKs of anything that still arrives leave at once.
        socket.set_ack_delay(None);
        let earliest = now + ack_delay.unwrap_or(Duration::ZERO);
        Slot::Lingering {
            until: earliest.max(now + linger),
            earliest,
            ack_delay,
        }
    }

    /// How many slots are lingering after a connection, their last ACK or RST perhaps not yet
    /// sent. A program that stops serving should keep polling until this is zero.
    pub fn lingering(&self) -> usize {
        self.slots
            .iter()
            .filter(|s| matches!(s, Slot::Lingering { .. }))
            .count()
    }

    /// The earliest time a connection or a lingering slot needs a `poll` even if no packet
    /// arrives (`None` when every slot listens). Sleep no later than this and `poll_at`.
    pub fn poll_at(&self) -> Option<Instant> {
        let full = self.reclaim && !self.slots.iter().any(|s| matches!(s, Slot::Listening));
        self.slots
            .iter()
            .filter_map(|s| match s {
                Slot::Listening => None,
                Slot::Serving(sender) => {
                    // A full pool takes back a half-open slot once it has had the time a
                    // handshake takes, and a stalled one once it has stalled for `stall`.
                    let reclaim = if sender.is_half_open() {
                        Some(sender.accepted_at() + self.reclaim_after())
                    } else {
                        sender
                            .stalled_since()
                            .map(|since| since + self.timeouts.stall)
                    };
                    let reclaim = reclaim.filter(|_| full && N >= 2);
                    [sender.deadline(), reclaim].into_iter().flatten().min()
                }
                Slot::Lingering {
                    until, earliest, ..
                } => Some(if full { *earliest } else { *until }),
            })
            .min()
    }

    /// How many slots are serving a connection.
    pub fn busy(&self) -> usize {
        self.slots
            .iter()
            .filter(|s| matches!(s, Slot::Serving(_)))
            .count()
    }

    /// Tell a listen `backlog` in front of the interface how many SYNs may pass at its next
    /// poll: how many slots listen ([`Backlog::admit`]). Call it after every
    /// [`poll`](Self::poll).
    ///
    /// First, a slot that lingers after a client whose address and port a new connection now
    /// comes from ([`Backlog::reopening`]) listens again. That client has closed its end, or
    /// its system would not have given the port to a new connection, so the TIME-WAIT has
    /// nothing left to guard; kept, it would take the new SYN and drop it (smoltcp 0.14 hands a
    /// SYN to the socket of its four-tuple, which drops it in TIME-WAIT:
    /// `docs/upstream/syn-in-time-wait.md`), and the client would connect only after the
    /// linger, its SYN retransmitted every second meanwhile.
    ///
    /// # Example
    ///
    /// A pool of one behind a backlog, in memory: of two clients that connect at once, the
    /// second waits in the backlog, not refused, and is served after the first.
    ///
    /// ```
    /// # fn main() -> Result<(), Box<dyn core::error::Error>> {
    /// use core::task::Poll;
    /// use halfclose::backlog::Backlog;
    /// use halfclose::client::{Client, Connect};
    /// use halfclose::clock::SimClock;
    /// use halfclose::device::Loopback;
    /// use halfclose::server::Server;
    /// use halfclose::smoltcp::iface::{Config, Interface, SocketSet};
    /// use halfclose::smoltcp::phy::Medium;
    /// use halfclose::smoltcp::socket::tcp;
    /// use halfclose::smoltcp::wire::{HardwareAddress, IpAddress, IpCidr};
    ///
    /// let file = vec![7u8; 20_000];
    /// let mut device = Loopback::<1500, 8>::new(Medium::Ip);
    /// let mut clock = SimClock::new().with_limit(core::time::Duration::from_secs(60));
    /// let mut iface = Interface::new(Config::new(HardwareAddress::Ip), &mut device, clock.now());
    /// iface.update_ip_addrs(|a| a.push(IpCidr::new(IpAddress::v4(127, 0, 0, 1), 8)).unwrap());
    /// let mut sockets = SocketSet::new(vec![]);
    /// let mut socket = || {
    ///     let buffer = || tcp::SocketBuffer::new(vec![0u8; 8192]);
    ///     sockets.add(tcp::Socket::new(buffer(), buffer()))
    /// };
    /// let (slot, a, b) = (socket(), socket(), socket());
    ///
    /// let mut server = Server::listen(&mut sockets, [slot], 7891, &file[..], Default::default())?;
    /// let mut backlog = Backlog::<4>::new(7891);
    /// server.admit(&mut backlog, &mut sockets);
    /// let to = Connect::to((IpAddress::v4(127, 0, 0, 1), 7891));
    /// let mut first = Client::connect(iface.context(), &mut sockets, a, to, Vec::new(), clock.now())?;
    /// let mut second = Client::connect(iface.context(), &mut sockets, b, to, Vec::new(), clock.now())?;
    /// loop {
    ///     let now = clock.now();
    ///     iface.poll(now, &mut backlog.guard(&mut device), &mut sockets);
    ///     for report in server.poll(now, &mut sockets) {
    ///         assert!(report?.reply.is_thank_you());
    ///     }
    ///     // After every poll of the server: how many SYNs may pass.
    ///     server.admit(&mut backlog, &mut sockets);
    ///     let (one, two) = (first.poll(now, &mut sockets), second.poll(now, &mut sockets));
    ///     if one.is_ready() && two.is_ready() {
    ///         assert!(matches!((one, two), (Poll::Ready(Ok(_)), Poll::Ready(Ok(_)))));
    ///         break;
    ///     }
    ///     // Held SYNs a listening socket will take count as waiting, as the device's packets do.
    ///     let wake = [server.poll_at(), backlog.poll_at(), first.deadline(), second.deadline()];
    ///     clock.advance(&mut iface, &sockets, &backlog.guard(&mut device), wake)?;
    /// }
    /// assert_eq!(backlog.stats().held, 1);
    /// assert!(first.into_sink() == file && second.into_sink() == file);
    /// # Ok(()) }
    /// ```
    pub fn admit<const LEN: usize>(
        &mut self,
        backlog: &mut Backlog<LEN>,
        sockets: &mut SocketSet<'_>,
    ) {
        for peer in backlog.reopening() {
            let lingering = (0..N).find(|&i| {
                matches!(self.slots[i], Slot::Lingering { .. })
                    && sockets
                        .get::<tcp::Socket>(self.handles[i])
                        .remote_endpoint()
                        == Some(peer)
            });
            if let Some(i) = lingering
                && let Slot::Lingering { ack_delay, .. } = self.slots[i]
            {
                self.relisten(i, sockets, ack_delay);
            }
        }
        backlog.admit(self.listening());
    }

    /// How many slots are listening for a new client.
    pub fn listening(&self) -> usize {
        self.slots
            .iter()
            .filter(|s| matches!(s, Slot::Listening))
            .count()
    }

    /// The state of each slot's connection (`None` while it listens or lingers).
    pub fn states(&self) -> impl Iterator<Item = Option<State>> + '_ {
        self.slots.iter().map(|s| match s {
            Slot::Serving(sender) => Some(sender.state()),
            Slot::Listening | Slot::Lingering { .. } => None,
        })
    }

    /// The socket handles, in slot order.
    ///
    /// In a pool of two or more, a slot's socket leaves the `SocketSet` and comes back each time
    /// it listens again after a connection (see [`Server`]), so its handle is the one given to
    /// [`listen`](Server::listen) unless the set had a free place before it; look them up
    /// here rather than keeping the ones passed in.
    pub fn handles(&self) -> &[SocketHandle; N] {
        &self.handles
    }
}

/// The connections that ended in one [`Server::poll`], in slot order: each one's [`Report`], or
/// the [`Error`] it ended with. At most one per slot, so at most `N`.
///
/// Iterate over it by value (`for result in server.poll(now, &mut sockets)`) or by reference;
/// it is empty in most calls.
#[derive(Debug, Clone, PartialEq, Eq)]
#[must_use = "each connection's outcome is reported only once, by the call in which it ended"]
pub struct Finished<const N: usize>(heapless::Vec<Result<Report, Error>, N>);

impl<const N: usize> Finished<N> {
    fn new() -> Self {
        Finished(heapless::Vec::new())
    }

    fn push(&mut self, result: Result<Report, Error>) {
        // One result per slot per call: there is always room.
        let _ = self.0.push(result);
    }

    /// The outcomes, in slot order.
    pub fn iter(&self) -> core::slice::Iter<'_, Result<Report, Error>> {
        self.0.iter()
    }

    /// How many connections ended.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether no connection ended.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Take the last outcome out (the only one, in a pool of one).
    pub fn pop(&mut self) -> Option<Result<Report, Error>> {
        self.0.pop()
    }
}

impl<const N: usize> IntoIterator for Finished<N> {
    type Item = Result<Report, Error>;
    type IntoIter = heapless::vec::IntoIter<Result<Report, Error>, N, usize>;

    fn into_iter(self) -> Self::IntoIter {
        self.0.into_iter()
    }
}

impl<'a, const N: usize> IntoIterator for &'a Finished<N> {
    type Item = &'a Result<Report, Error>;
    type IntoIter = core::slice::Iter<'a, Result<Report, Error>>;

    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Phase;

    #[test]
    fn finished_counts_lists_and_gives_back_what_ended_in_slot_order() {
        let mut ended = Finished::<2>::new();
        assert!(ended.is_empty());
        assert_eq!((ended.len(), ended.clone().pop()), (0, None));
        let first = Err(Error::TimedOut {
            phase: Phase::Connect,
            bytes: 0,
        });
        let second = Err(Error::Reset {
            phase: Phase::Transfer,
            bytes: 7,
        });
        ended.push(first.clone());
        ended.push(second.clone());
        assert!(!ended.is_empty());
        assert_eq!(ended.len(), 2);
        assert!((&ended).into_iter().eq([&first, &second]));
        assert!(ended.iter().eq([&first, &second]));
        assert_eq!(ended.pop(), Some(second));
        assert_eq!(ended.len(), 1);
        assert!(ended.into_iter().eq([first]));
    }
}
