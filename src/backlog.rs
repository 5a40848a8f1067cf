//! A listen backlog for a smoltcp server: a SYN that finds no listening socket waits here for
//! one, instead of being answered with a reset.
//!
//! smoltcp has no listen backlog. A SYN that arrives while every socket of a server's pool is
//! busy finds no socket listening on its port, and smoltcp answers it with a RST: the client
//! sees "connection refused", although the server would have served it a moment later. A kernel
//! server queues such clients (`listen(fd, backlog)`), and when its queue is full it drops the
//! SYN, so that the client's kernel tries again.
//!
//! [`Backlog`] does that in front of any smoltcp `Device`. It reads the SYNs that arrive for the
//! server's port (a SYN without ACK) and lets through as many as there are listening sockets
//! ([`Server::admit`](crate::server::Server::admit) after each poll of the server tells it how
//! many). It holds the others, in arrival order, and hands them to the interface as soon as a
//! socket listens again: the client is connected within a poll of a slot freeing, without
//! waiting for its own SYN retransmission (1, 3, 7 s later). A client's retransmitted SYN
//! replaces the one held for it (keeping its place in the queue). When the queue is full a new
//! SYN is dropped, as the kernel drops one, and the client retransmits it. A SYN held longer
//! than [`Backlog::with_hold`] (default [`Backlog::DEFAULT_HOLD`]) is handed to the interface
//! while no socket listens, so the client is refused cleanly, with a RST, and knows at once.
//! Everything else (segments of open connections, other ports, ARP) passes untouched, in
//! place: nothing is copied but the held SYNs.
//!
//! A retransmitted SYN is told from a new connection by its sequence number, not its addresses
//! alone: a kernel client reuses a source port as soon as its last connection on it has closed,
//! so a new client may come from the very address and port of one let through a moment ago.
//! Its SYN waits for a listener like any other, and one poll more: the server's socket for the
//! last connection on that port may still linger in TIME-WAIT, and smoltcp hands the SYN to
//! that socket, which drops it, rather than to a listener (`docs/upstream/syn-in-time-wait.md`);
//! the client would try again only a second later, and again until the linger is over.
//! [`Server::admit`](crate::server::Server::admit) makes such a socket listen again (the client
//! has closed its end, or it could not have reused the port) before it lets the SYN through.
//! With [`Backlog::admit`] alone, the SYN goes on at the next poll as it would have.
//!
//! A port with no server at all is not this crate's concern: no `Backlog` guards it, and smoltcp
//! answers its SYNs with a RST as before.
//!
//! ```text
//!   let mut backlog = Backlog::<16>::new(port);
//!   loop {
//!       iface.poll(now, &mut backlog.guard(&mut device), &mut sockets);
//!       server.poll(now, &mut sockets);
//!       server.admit(&mut backlog, &mut sockets);   // how many SYNs may pass at the next poll
//!       sleep until the earliest of iface.poll_at, server.poll_at, backlog.poll_at, a frame
//!   }
//! ```
//!
//! A server of its own tells the backlog how many sockets listen instead:
//! `backlog.admit(listening)`.
//!
//! Memory: `LEN` held SYNs of [`SYN_MAX`] bytes each, and `LEN` recently admitted clients.

use smoltcp::phy::{self, Device, DeviceCapabilities};
use smoltcp::time::{Duration, Instant};
use smoltcp::wire::IpEndpoint;

use crate::segment::Segment;

/// The largest SYN the backlog holds, in bytes: an Ethernet header (14), an IPv6 header (40) and
/// a TCP header with the most options (60), rounded up. A larger one is dropped (no SYN that a
/// TCP stack sends is larger).
pub const SYN_MAX: usize = 128;

/// What the backlog has done so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Stats {
    /// SYNs that waited in the queue (counted once per client, not per retransmission).
    pub held: u64,
    /// Held SYNs handed to a listening socket.
    pub released: u64,
    /// SYNs dropped because the queue was full (their clients retransmit).
    pub dropped: u64,
    /// Held SYNs refused (handed to the interface with no socket listening: a RST) because they
    /// waited longer than the hold limit.
    pub refused: u64,
}

/// A SYN waiting for a listening socket.
#[derive(Clone, Copy)]
struct Held {
    /// Client and server endpoints, the connection this SYN opens.
    key: (IpEndpoint, IpEndpoint),
    /// Its sequence number.
    seq: u32,
    /// A new connection from the address and port of a client let through recently: it waits
    /// until the next [`Backlog::admit`], after the server has had a chance to free the socket
    /// that may still hold the last connection on that port.
    reopen: bool,
    /// When its first SYN arrived.
    since: Instant,
    len: usize,
    bytes: [u8; SYN_MAX],
}

/// A client recently let through: its retransmitted SYNs pass too, to the socket that took the
/// first one (smoltcp matches them by address and port).
#[derive(Clone, Copy)]
struct Admitted {
    key: (IpEndpoint, IpEndpoint),
    /// Its SYN's sequence number (the client's initial sequence number), which a retransmission
    /// repeats and a new connection from the same address and port does not.
    seq: u32,
    at: Instant,
}

/// The last `LEN` clients let through.
#[derive(Debug)]
struct Recent<const LEN: usize> {
    ring: [Option<Admitted>; LEN],
    next: usize,
}

impl<const LEN: usize> Recent<LEN> {
    fn remember(&mut self, key: (IpEndpoint, IpEndpoint), seq: u32, at: Instant) {
        if LEN == 0 {
            return;
        }
        self.ring[self.next] = Some(Admitted { key, seq, at });
        self.next = (self.next + 1) % LEN;
    }

    /// Whether the SYN `seq` of `key` was let through less than `within` before `now` (so this
    /// one is its retransmission).
    fn contains(
        &self,
        key: (IpEndpoint, IpEndpoint),
        seq: u32,
        now: Instant,
        within: Duration,
    ) -> bool {
        self.ring
            .iter()
            .flatten()
            .any(|a| a.key == key && a.seq == seq && now < a.at + within)
    }

    /// Whether any SYN of `key` was let through less than `within` before `now`.
    fn knows(&self, key: (IpEndpoint, IpEndpoint), now: Instant, within: Duration) -> bool {
        self.ring
            .iter()
            .flatten()
            .any(|a| a.key == key && now < a.at + within)
    }
}

/// A listen backlog of `LEN` SYNs for the server on `port` (`LEN` as the `backlog` argument of
/// `listen(2)`): see the [module docs](self).
///
/// It keeps the queue between polls; [`guard`](Backlog::guard) puts it in front of the device
/// for one `Interface::poll`.
#[derive(Debug)]
pub struct Backlog<const LEN: usize> {
    port: u16,
    hold: Duration,
    /// SYNs that may still pass before the next [`admit`](Backlog::admit).
    listeners: usize,
    /// Held SYNs (their arrival times give their order).
    queue: [Option<Held>; LEN],
    recent: Recent<LEN>,
    stats: Stats,
}

/// A device with a [`Backlog`] in front of it, for one `Interface::poll`.
#[derive(Debug)]
pub struct Guarded<'a, D, const LEN: usize> {
    backlog: &'a mut Backlog<LEN>,
    device: &'a mut D,
    medium: phy::Medium,
}

impl core::fmt::Debug for Held {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(
            f,
            "Held({} -> {} since {})",
            self.key.0, self.key.1, self.since
        )
    }
}

impl core::fmt::Debug for Admitted {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "Admitted({} at {})", self.key.0, self.at)
    }
}

impl<const LEN: usize> Backlog<LEN> {
    /// How long a SYN waits by default before it is refused: 10 s, long enough for a pool to
    /// finish a transfer in progress on a slow link, short enough that a client whose server
    /// stays full learns it within its first retransmissions (a kernel client gives up on
    /// `connect` after about two minutes).
    pub const DEFAULT_HOLD: Duration = Duration::from_secs(10);

    /// A backlog for SYNs to `port`, empty, letting none through until [`admit`](Self::admit).
    pub const fn new(port: u16) -> Self {
        Backlog {
            port,
            hold: Self::DEFAULT_HOLD,
            listeners: 0,
            queue: [None; LEN],
            recent: Recent {
                ring: [None; LEN],
                next: 0,
            },
            stats: Stats {
                held: 0,
                released: 0,
                dropped: 0,
                refused: 0,
            },
        }
    }

    /// The same backlog with another hold limit (`Duration::ZERO`: a SYN that finds no socket
    /// listening is refused at the next poll, as smoltcp alone refuses it at once).
    pub fn with_hold(mut self, hold: impl Into<Duration>) -> Self {
        self.hold = hold.into();
        self
    }

    /// Let `listeners` SYNs through until the next call: how many sockets of the server listen
    /// now. Call it after every poll of the server. Our [`Server`](crate::server::Server) calls
    /// it from [`Server::admit`](crate::server::Server::admit), which first frees the sockets
    /// that clients coming back from the same port need ([module docs](self)); a server of
    /// your own calls it with the number of its sockets that listen.
    pub fn admit(&mut self, listeners: usize) {
        self.listeners = listeners;
        for held in self.queue.iter_mut().flatten() {
            held.reopen = false;
        }
    }

    /// The clients whose new connection comes from the address and port of one let through
    /// recently, held until the next [`admit`](Self::admit): a socket of the server still
    /// holding the last connection from that endpoint (in TIME-WAIT) should listen again first.
    ///
    /// ```
    /// use halfclose::backlog::Backlog;
    ///
    /// let mut backlog = Backlog::<4>::new(7891);
    /// // A server of one's own, after each of its polls: first free the socket that holds each
    /// // such client's last connection, then say how many sockets listen.
    /// for client in backlog.reopening() {
    ///     println!("{client} is back: its socket in TIME-WAIT listens again");
    /// }
    /// backlog.admit(1);
    /// assert_eq!(backlog.reopening().count(), 0);
    /// ```
    pub fn reopening(&self) -> impl Iterator<Item = IpEndpoint> + '_ {
        self.queue
            .iter()
            .flatten()
            .filter(|h| h.reopen)
            .map(|h| h.key.0)
    }

    /// `device` with this backlog in front of it, for one `Interface::poll`.
    pub fn guard<'a, D: Device>(&'a mut self, device: &'a mut D) -> Guarded<'a, D, LEN> {
        let medium = device.capabilities().medium;
        Guarded {
            backlog: self,
            device,
            medium,
        }
    }

    /// When a held SYN must be refused if no socket has taken it by then: an event loop wakes
    /// no later than this.
    pub fn poll_at(&self) -> Option<Instant> {
        self.queue
            .iter()
            .flatten()
            .map(|h| h.since + self.hold)
            .min()
    }

    /// SYNs waiting now.
    pub fn waiting(&self) -> usize {
        self.queue.iter().flatten().count()
    }

    /// Held SYNs the next poll hands to the interface (to the sockets that listen): with
    /// [`Pending`](crate::clock::Pending) of the device, what a simulated clock must not move
    /// past.
    pub fn releasable(&self) -> usize {
        let ready = self.queue.iter().flatten().filter(|h| !h.reopen).count();
        ready.min(self.listeners)
    }

    /// What the backlog has done so far.
    pub fn stats(&self) -> Stats {
        self.stats
    }

    /// The held SYN to hand to the interface now, if any: the oldest, when a socket listens
    /// (it takes that listener), or one held too long, when none does (it is refused). A SYN
    /// that waits for the next `admit` (`reopen`) goes to no listener before.
    fn next_release(&self, now: Instant) -> Option<(usize, Release)> {
        if self.listeners > 0 {
            let oldest = (0..LEN)
                .filter_map(|i| self.queue[i].filter(|h| !h.reopen).map(|h| (i, h.since)))
                .min_by_key(|&(_, since)| since);
            if let Some((i, _)) = oldest {
                return Some((i, Release::ToListener));
            }
        }
        let expired = |i: &usize| self.queue[*i].is_some_and(|h| now >= h.since + self.hold);
        (0..LEN).find(expired).map(|i| (i, Release::Refused))
    }
}

impl<const LEN: usize> Default for Backlog<LEN> {
    /// A backlog for [`DEFAULT_PORT`](crate::DEFAULT_PORT).
    fn default() -> Self {
        Backlog::new(crate::DEFAULT_PORT)
    }
}

/// Why a held SYN leaves the queue.
enum Release {
    /// A socket listens: it takes the SYN.
    ToListener,
    /// It waited too long: no socket listens, so the interface refuses it.
    Refused,
}

/// What waits for the next `Interface::poll`: the device's packets, and the held SYNs that poll
/// would hand to listening sockets, so that a [`SimClock`](crate::clock::SimClock) does not
/// move on past them.
impl<D: crate::clock::Pending, const LEN: usize> crate::clock::Pending for Guarded<'_, D, LEN> {
    fn pending(&self) -> usize {
        self.device.pending() + self.backlog.releasable()
    }
}

/// What the backlog does with one arriving packet.
enum Verdict {
    /// Hand it to the interface.
    Pass,
    /// Keep it (a copy) in the queue; the interface gets nothing.
    Hold,
    /// The interface gets nothing: the queue is full, or it replaced a held copy.
    Drop,
}

/// The backlog's state that judges a packet, apart from the wrapped device (which lends the
/// packet's buffer at the same time).
struct Judge<'a, const LEN: usize> {
    port: u16,
    medium: phy::Medium,
    hold: Duration,
    now: Instant,
    listeners: &'a mut usize,
    queue: &'a mut [Option<Held>; LEN],
    recent: &'a mut Recent<LEN>,
    stats: &'a mut Stats,
}

impl<const LEN: usize> Judge<'_, LEN> {
    fn judge(&mut self, packet: &[u8]) -> Verdict {
        let Some(segment) = Segment::parse(self.medium, packet) else {
            return Verdict::Pass;
        };
        // Only a connection's first segment: SYN without ACK, to the server's port.
        if !segment.syn || segment.ack.is_some() || segment.rst || segment.dst.port != self.port {
            return Verdict::Pass;
        }
        let (key, seq) = ((segment.src, segment.dst), segment.seq);
        if let Some(held) = self.queue.iter_mut().flatten().find(|h| h.key == key) {
            // A retransmission of a SYN already waiting: the newest copy, the oldest place. (A
            // new connection from the same port means the client gave up on the held one: it
            // takes that place.)
            if packet.len() <= SYN_MAX {
                held.bytes[..packet.len()].copy_from_slice(packet);
                held.len = packet.len();
                held.seq = seq;
            }
            return Verdict::Drop;
        }
        if self.recent.contains(key, seq, self.now, self.hold) {
            // A retransmission: its first SYN went to a socket, which answers this one.
            return Verdict::Pass;
        }
        if self.recent.knows(key, self.now, self.hold) {
            // A new connection from a port used a moment ago: the socket of the last one may
            // still be in TIME-WAIT, which would take this SYN and drop it.
            return self.hold(key, seq, true, packet);
        }
        if *self.listeners > 0 {
            *self.listeners -= 1;
            self.recent.remember(key, seq, self.now);
            return Verdict::Pass;
        }
        self.hold(key, seq, false, packet)
    }

    fn hold(
        &mut self,
        key: (IpEndpoint, IpEndpoint),
        seq: u32,
        reopen: bool,
        packet: &[u8],
    ) -> Verdict {
        let Some(free) = self.queue.iter_mut().find(|h| h.is_none()) else {
            self.stats.dropped += 1;
            return Verdict::Drop;
        };
        if packet.len() > SYN_MAX {
            self.stats.dropped += 1;
            return Verdict::Drop;
        }
        let mut held = Held {
            key,
            seq,
            reopen,
            since: self.now,
            len: packet.len(),
            bytes: [0; SYN_MAX],
        };
        held.bytes[..packet.len()].copy_from_slice(packet);
        *free = Some(held);
        self.stats.held += 1;
        Verdict::Hold
    }
}

impl<D: Device, const LEN: usize> Device for Guarded<'_, D, LEN> {
    type RxToken<'a>
        = RxToken<'a, D, LEN>
    where
        Self: 'a;
    type TxToken<'a>
        = D::TxToken<'a>
    where
        Self: 'a;

    fn receive(&mut self, now: Instant) -> Option<(Self::RxToken<'_>, Self::TxToken<'_>)> {
        let backlog = &mut *self.backlog;
        if let Some((i, why)) = backlog.next_release(now) {
            // A held SYN goes first; with no room to answer it the device is full, and
            // nothing more is read until there is.
            let tx = self.device.transmit(now)?;
            let held = backlog.queue[i].take()?;
            match why {
                Release::ToListener => {
                    backlog.listeners -= 1;
                    backlog.stats.released += 1;
                    // Its retransmissions go to the socket that takes it, not to the queue.
                    backlog.recent.remember(held.key, held.seq, now);
                }
                Release::Refused => backlog.stats.refused += 1,
            }
            return Some((RxToken(Token::Held(held)), tx));
        }
        let (rx, tx) = self.device.receive(now)?;
        let judge = Judge {
            port: backlog.port,
            medium: self.medium,
            hold: backlog.hold,
            now,
            listeners: &mut backlog.listeners,
            queue: &mut backlog.queue,
            recent: &mut backlog.recent,
            stats: &mut backlog.stats,
        };
        Some((RxToken(Token::Inner { rx, judge }), tx))
    }

    fn transmit(&mut self, now: Instant) -> Option<Self::TxToken<'_>> {
        self.device.transmit(now)
    }

    fn capabilities(&self) -> DeviceCapabilities {
        self.device.capabilities()
    }
}

/// A packet from the wrapped device, judged as it is read, or a held SYN released.
pub struct RxToken<'a, D: Device + 'a, const LEN: usize>(Token<'a, D, LEN>);

enum Token<'a, D: Device + 'a, const LEN: usize> {
    /// A packet of the wrapped device, and what decides its fate.
    Inner {
        rx: D::RxToken<'a>,
        judge: Judge<'a, LEN>,
    },
    /// A SYN the backlog held.
    Held(Held),
}

impl<'a, D: Device + 'a, const LEN: usize> phy::RxToken for RxToken<'a, D, LEN> {
    fn consume<R, F: FnOnce(&[u8]) -> R>(self, f: F) -> R {
        match self.0 {
            Token::Inner { rx, mut judge } => rx.consume(|packet| match judge.judge(packet) {
                Verdict::Pass => f(packet),
                // An empty packet is no packet: smoltcp drops it unparsed.
                Verdict::Hold | Verdict::Drop => f(&[]),
            }),
            Token::Held(held) => f(&held.bytes[..held.len]),
        }
    }
}

#[cfg(test)]
#[cfg(feature = "sim")]
mod tests {
    use core::fmt::Write;

    use smoltcp::phy::{Medium, RxToken as _, TxToken as _};
    use smoltcp::wire::{Ipv4Address, Ipv4Packet, TcpPacket, TcpSeqNumber};

    use super::*;
    use crate::device::Loopback;
    use crate::sim::{FORGED_SYN_LEN, forged_syn};

    const PORT: u16 = 7891;
    const SERVER: Ipv4Address = Ipv4Address::new(10, 0, 0, 1);

    /// A SYN to `PORT` from 10.0.0.`host`:40000 arrives at `ms`: whether the backlog hands it
    /// to the interface (`false`: it held or dropped it).
    fn arrives<const LEN: usize>(backlog: &mut Backlog<LEN>, host: u8, ms: u64) -> bool {
        arrives_with(backlog, host, ms, 0, |_| ())
    }

    /// The same SYN carrying `extra` bytes of payload (44 bytes without), its TCP header changed
    /// by `change` (checksum refilled).
    fn arrives_with<const LEN: usize>(
        backlog: &mut Backlog<LEN>,
        host: u8,
        ms: u64,
        extra: usize,
        change: impl FnOnce(&mut TcpPacket<&mut [u8]>),
    ) -> bool {
        let now = Instant::from_millis(ms as i64);
        let mut device = Loopback::<256, 2>::new(Medium::Ip);
        let client = Ipv4Address::new(10, 0, 0, host);
        let tx = device.transmit(now).unwrap();
        tx.consume(FORGED_SYN_LEN + extra, |buf| {
            forged_syn(buf, (client, 40000), (SERVER, PORT), 1);
            buf[FORGED_SYN_LEN..].fill(0);
            let mut ip = Ipv4Packet::new_unchecked(buf);
            ip.set_total_len((FORGED_SYN_LEN + extra) as u16);
            ip.fill_checksum();
            let mut tcp = TcpPacket::new_unchecked(ip.payload_mut());
            change(&mut tcp);
            tcp.fill_checksum(&client.into(), &SERVER.into());
        });
        let mut guarded = backlog.guard(&mut device);
        let (rx, _) = guarded.receive(now).unwrap();
        rx.consume(|packet| !packet.is_empty())
    }

    /// The SYN the backlog releases now (to a listening socket), its header read.
    fn released<const LEN: usize>(backlog: &mut Backlog<LEN>) -> Segment {
        let mut device = Loopback::<256, 2>::new(Medium::Ip);
        let mut guarded = backlog.guard(&mut device);
        let (rx, _) = guarded.receive(Instant::from_millis(0)).unwrap();
        rx.consume(|packet| Segment::parse(Medium::Ip, packet).unwrap())
    }

    #[test]
    fn a_client_let_through_has_its_retransmitted_syns_passed_while_no_socket_listens() {
        let mut backlog = Backlog::<4>::new(PORT);
        backlog.admit(1);
        assert!(arrives(&mut backlog, 2, 0));
        // No socket listens now: a retransmission of the client's SYN still reaches the
        // socket that took its first one; another client's SYN waits.
        assert!(arrives(&mut backlog, 2, 1000));
        assert_eq!(backlog.stats().held, 0);
        assert!(!arrives(&mut backlog, 3, 1000));
        assert_eq!((backlog.stats().held, backlog.waiting()), (1, 1));
    }

    /// A kernel client reuses a source port as soon as its connection on it has closed (the
    /// server, which closed first, keeps the TIME-WAIT): a new connection may come from the
    /// address and port of a client let through a moment ago. Its SYN carries a new initial
    /// sequence number (RFC 9293, 3.4.1), and it must wait for a listener: let through as a
    /// retransmission while no socket listens, smoltcp would refuse it.
    #[test]
    fn a_new_connection_from_the_port_of_a_client_let_through_waits_for_a_listener() {
        let mut backlog = Backlog::<4>::new(PORT);
        backlog.admit(1);
        assert!(arrives(&mut backlog, 2, 0));
        backlog.admit(0);
        let seq = |isn: u32| {
            move |tcp: &mut TcpPacket<&mut [u8]>| tcp.set_seq_number(TcpSeqNumber(isn as i32))
        };
        assert!(
            arrives_with(&mut backlog, 2, 500, 0, seq(1)),
            "the same SYN again is a retransmission"
        );
        assert!(
            !arrives_with(&mut backlog, 2, 600, 0, seq(900_000)),
            "a new connection from the same port waits"
        );
        assert_eq!((backlog.stats().held, backlog.waiting()), (1, 1));
        backlog.admit(1);
        assert_eq!(
            released(&mut backlog).seq,
            900_000,
            "the new connection's SYN goes on"
        );
        backlog.admit(0);
        assert!(
            arrives_with(&mut backlog, 2, 700, 0, seq(900_000)),
            "and its own retransmission passes"
        );
    }

    /// The socket of the last connection from that port may still be in TIME-WAIT, where
    /// smoltcp would drop the SYN: it waits for the next `admit`, which comes after the server
    /// has had a chance to free that socket (`Server::admit`), even while a socket listens.
    #[test]
    fn a_new_connection_from_a_recent_clients_port_waits_for_the_next_admit() {
        let mut backlog = Backlog::<4>::new(PORT);
        backlog.admit(2);
        assert!(arrives(&mut backlog, 2, 0));
        let seq = |tcp: &mut TcpPacket<&mut [u8]>| tcp.set_seq_number(TcpSeqNumber(7_000));
        assert!(
            !arrives_with(&mut backlog, 2, 100, 0, seq),
            "held, a socket listening"
        );
        let client = IpEndpoint::new(Ipv4Address::new(10, 0, 0, 2).into(), 40000);
        assert!(backlog.reopening().eq([client]));
        assert_eq!((backlog.waiting(), backlog.releasable()), (1, 0));
        // Not handed on before the next `admit`: the device's own packet comes first.
        assert!(
            arrives(&mut backlog, 3, 100),
            "another client passes meanwhile"
        );
        assert_eq!(backlog.stats().released, 0);
        backlog.admit(1);
        assert_eq!(backlog.reopening().count(), 0);
        assert_eq!(backlog.releasable(), 1);
        assert_eq!(released(&mut backlog).seq, 7_000);
        assert_eq!(backlog.stats().released, 1);
    }

    #[test]
    fn a_syn_from_a_client_let_through_the_hold_limit_ago_or_more_is_a_new_clients() {
        let mut backlog = Backlog::<4>::new(PORT).with_hold(Duration::from_secs(10));
        backlog.admit(1);
        assert!(arrives(&mut backlog, 2, 0));
        assert!(arrives(&mut backlog, 2, 9_999));
        assert!(!arrives(&mut backlog, 2, 10_000));
        assert_eq!(backlog.stats().held, 1);
    }

    #[test]
    fn the_backlog_remembers_the_last_len_clients_it_let_through() {
        let mut backlog = Backlog::<2>::new(PORT);
        backlog.admit(3);
        for host in [2, 3, 4] {
            assert!(arrives(&mut backlog, host, 0));
        }
        backlog.admit(0);
        assert!(arrives(&mut backlog, 3, 100));
        assert!(arrives(&mut backlog, 4, 100));
        assert!(!arrives(&mut backlog, 2, 100), "the oldest was forgotten");
    }

    #[test]
    fn only_a_connections_first_segment_is_held_a_syn_with_ack_or_rst_passes() {
        let mut backlog = Backlog::<4>::new(PORT);
        let syn_ack = |tcp: &mut TcpPacket<&mut [u8]>| {
            tcp.set_ack(true);
            tcp.set_ack_number(TcpSeqNumber(77));
        };
        assert!(arrives_with(&mut backlog, 2, 0, 0, syn_ack));
        assert!(arrives_with(&mut backlog, 3, 0, 0, |tcp| tcp.set_rst(true)));
        assert!(arrives_with(&mut backlog, 4, 0, 0, |tcp| tcp.set_dst_port(PORT + 1)));
        assert!(arrives_with(&mut backlog, 5, 0, 0, |tcp| tcp.set_syn(false)));
        assert_eq!(backlog.stats(), Stats::default());
        assert!(!arrives(&mut backlog, 6, 0));
    }

    #[test]
    fn a_syn_of_syn_max_bytes_waits_and_a_longer_one_is_dropped_and_counted() {
        let mut backlog = Backlog::<4>::new(PORT);
        assert!(!arrives_with(&mut backlog, 2, 0, SYN_MAX - 44, |_| ()));
        assert_eq!((backlog.waiting(), backlog.stats().dropped), (1, 0));
        assert!(!arrives_with(&mut backlog, 3, 0, SYN_MAX - 43, |_| ()));
        assert_eq!((backlog.waiting(), backlog.stats().dropped), (1, 1));
    }

    #[test]
    fn a_held_syn_retransmitted_keeps_its_place_and_the_newest_copy_goes_on() {
        let mut backlog = Backlog::<4>::new(PORT);
        assert!(!arrives(&mut backlog, 2, 0));
        assert!(!arrives(&mut backlog, 3, 1));
        let window = |tcp: &mut TcpPacket<&mut [u8]>| tcp.set_window_len(2048);
        assert!(!arrives_with(&mut backlog, 2, 1000, 0, window));
        // Too long to keep: the copy held stays.
        let longer = |tcp: &mut TcpPacket<&mut [u8]>| tcp.set_window_len(4096);
        assert!(!arrives_with(&mut backlog, 2, 2000, SYN_MAX, longer));
        assert_eq!((backlog.waiting(), backlog.stats().held), (2, 2));
        backlog.admit(1);
        assert_eq!(
            released(&mut backlog).window,
            2048,
            "the first client's newest copy, first"
        );
    }

    #[test]
    fn the_guarded_device_has_the_capabilities_of_the_device() {
        let mut backlog = Backlog::<4>::new(PORT);
        let mut device = Loopback::<256, 2>::new(Medium::Ip).with_checksums(false);
        let caps = device.capabilities();
        let guarded = backlog.guard(&mut device).capabilities();
        assert_eq!(
            (guarded.medium, guarded.max_transmission_unit),
            (caps.medium, caps.max_transmission_unit)
        );
        assert_eq!(guarded.max_transmission_unit, 256);
        assert!(!guarded.checksum.ipv4.tx());
    }

    #[test]
    fn held_syns_a_listening_socket_will_take_are_pending_for_the_clock() {
        use crate::clock::Pending;
        let mut backlog = Backlog::<4>::new(PORT);
        assert!(!arrives(&mut backlog, 2, 0));
        assert!(!arrives(&mut backlog, 3, 0));
        assert_eq!((backlog.waiting(), backlog.releasable()), (2, 0));
        backlog.admit(1);
        assert_eq!(backlog.releasable(), 1);
        let mut device = Loopback::<128, 2>::new(Medium::Ip);
        assert_eq!(backlog.guard(&mut device).pending(), 1);
        backlog.admit(3);
        assert_eq!(backlog.releasable(), 2);
    }

    #[test]
    fn the_backlogs_debug_output_names_held_and_admitted_clients() {
        let mut backlog = Backlog::<2>::new(PORT);
        backlog.admit(1);
        assert!(arrives(&mut backlog, 2, 0));
        assert!(!arrives(&mut backlog, 3, 5));
        let mut shown = heapless::String::<1024>::new();
        write!(shown, "{backlog:?}").unwrap();
        assert!(
            shown.contains("Held(10.0.0.3:40000 -> 10.0.0.1:7891 since 0.005s)"),
            "{shown}"
        );
        assert!(
            shown.contains("Admitted(10.0.0.2:40000 at 0.000s)"),
            "{shown}"
        );
    }
}
