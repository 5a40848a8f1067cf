//! The one harness: two ends (our `Server` or `Client`, or a raw smoltcp socket) on either the
//! one-interface [`Loop`] or the simulated two-host wire ([`SimNet`]), on a simulated clock.
//!
//! Modelled on quinn-proto's `tests/util.rs` `Pair`: [`Pair::step`] polls every interface once,
//! [`Pair::drive`] steps until the test's round says done and fails loudly at the simulated
//! limit, and [`Pair::serve`] / [`Pair::server_against`] / [`Pair::client_against`] are the
//! whole-transfer drivers the tests share. The clock is moved by the library's own helpers
//! (`clock::SimClock::advance` on the loopback, `sim::Network::advance` on the wire), which stay
//! put while a packet waits; the harness checks that rule on every move.

use std::task::Poll;
use std::vec::Vec;

use halfclose::clock::{Pending, SimClock, Stalled};
use halfclose::device::Loopback;
use halfclose::segment::Segment;
use halfclose::sim::{Link, Network, Side, Wire};
use halfclose::{Error, client, server};
use smoltcp::iface::{Config, Context, Interface, SocketHandle, SocketSet};
use smoltcp::phy::Medium;
use smoltcp::socket::tcp;
use smoltcp::time::{Duration, Instant};
use smoltcp::wire::{HardwareAddress, IpAddress, IpCidr};

use super::{CLIENT_V4, CLIENT_V6, SERVER_V4, SERVER_V6};

/// The network a [`Pair`] runs on: one or two interfaces, their sockets, a device and a clock.
pub trait Hosts {
    /// The simulated time.
    fn now(&self) -> Instant;
    /// Every interface receives what waits for it and sends what its sockets have.
    fn poll(&mut self);
    /// Packets waiting to be received at this instant.
    fn pending(&self) -> usize;
    /// Move the clock with the library's helper: not while a packet waits, else to the earliest
    /// of the interfaces' timers, the wire's next arrival and `wake`.
    fn advance(&mut self, wake: Option<Instant>) -> Result<Instant, Stalled>;
    /// The interface context and socket set of `side`'s host (on the loopback both sides
    /// share them).
    fn host(&mut self, side: Side) -> (&mut Context, &mut SocketSet<'static>);
    /// The address of `side`'s host.
    fn address(&self, side: Side, v6: bool) -> IpAddress;
}

/// The simulated two-host wire of the tests: MTU 1500, 16 packets in flight each way.
pub type SimWire = Wire<1500, 16>;
/// Both hosts on that wire.
pub type SimNet<'w> = Network<'w, 'static, 1500, 16>;

/// A clean wire both ways.
pub fn wire() -> Box<SimWire> {
    Box::new(SimWire::new(1, Link::clean(1500), Link::clean(1500)))
}

/// A link that loses everything: the packets in that direction vanish.
pub fn black_hole() -> Link {
    Link {
        loss_ppm: 1_000_000,
        ..Link::clean(1500)
    }
}

impl<const MTU: usize, const CAP: usize> Hosts for Network<'_, 'static, MTU, CAP> {
    fn now(&self) -> Instant {
        Network::now(self)
    }

    fn poll(&mut self) {
        Network::poll(self)
    }

    fn pending(&self) -> usize {
        self.wire.pending()
    }

    fn advance(&mut self, wake: Option<Instant>) -> Result<Instant, Stalled> {
        if Network::advance(self, [wake]) {
            Ok(Network::now(self))
        } else {
            Err(Stalled::Idle { at: self.now() })
        }
    }

    fn host(&mut self, side: Side) -> (&mut Context, &mut SocketSet<'static>) {
        match side {
            Side::Server => (self.server.context(), &mut self.server_sockets),
            Side::Client => (self.client.context(), &mut self.client_sockets),
        }
    }

    fn address(&self, side: Side, v6: bool) -> IpAddress {
        Self::address(side, v6)
    }
}

/// A segment as it was received on the loopback, with the time and (for short ones) its
/// payload.
#[derive(Debug, Clone)]
pub struct Seen {
    pub at: Instant,
    pub seg: Segment,
    pub payload: Vec<u8>,
}

impl Seen {
    /// `packet` as received at `now`, if it is a TCP segment.
    fn parse(at: Instant, packet: &[u8]) -> Option<Self> {
        let seg = Segment::parse(Medium::Ip, packet)?;
        let payload = if seg.len() <= 64 {
            packet[seg.payload()].to_vec()
        } else {
            Vec::new()
        };
        Some(Seen { at, seg, payload })
    }

    pub fn sent_by(&self, port: u16) -> bool {
        self.seg.src.port == port
    }
}

/// One interface on the in-memory loopback holding every socket (both addresses of each
/// family), `16` packet slots of `MTU`, and a record of every segment that crossed it.
pub struct Loop<const MTU: usize = 1500> {
    pub iface: Interface,
    pub device: Box<Loopback<MTU, 16>>,
    pub sockets: SocketSet<'static>,
    pub clock: SimClock,
    pub trace: Vec<Seen>,
    /// Delayed-ACK setting of [`transfer`]'s sockets (none unless a test asks for smoltcp's
    /// default).
    pub ack_delay: Option<Duration>,
}

impl<const MTU: usize> Loop<MTU> {
    pub fn new() -> Self {
        let mut device = Box::new(Loopback::<MTU, 16>::new(Medium::Ip));
        let mut config = Config::new(HardwareAddress::Ip);
        config.random_seed = 0x5eed;
        let clock = SimClock::new();
        let mut iface = Interface::new(config, &mut *device, clock.now());
        iface.update_ip_addrs(|addrs| {
            for (addr, prefix) in [
                (SERVER_V4, 24),
                (CLIENT_V4, 24),
                (SERVER_V6, 64),
                (CLIENT_V6, 64),
            ] {
                addrs.push(IpCidr::new(addr, prefix)).unwrap();
            }
        });
        Loop {
            iface,
            device,
            sockets: SocketSet::new(Vec::new()),
            clock,
            trace: Vec::new(),
            ack_delay: None,
        }
    }

    pub fn segments_from(&self, port: u16) -> impl Iterator<Item = &Seen> {
        self.trace.iter().filter(move |s| s.sent_by(port))
    }

    /// Take in every queued packet, one at a time, recording each: the first half of a poll.
    pub fn ingress(&mut self) {
        let now = self.clock.now();
        while let Some(packet) = self.device.peek() {
            self.trace.extend(Seen::parse(now, packet));
            self.iface
                .poll_ingress_single(now, &mut *self.device, &mut self.sockets);
        }
    }

    /// Send what the sockets have: the second half of a poll.
    pub fn egress(&mut self) {
        let now = self.clock.now();
        self.iface
            .poll_egress(now, &mut *self.device, &mut self.sockets);
    }
}

impl<const MTU: usize> Hosts for Loop<MTU> {
    fn now(&self) -> Instant {
        self.clock.now()
    }

    /// Deliver every queued packet one at a time (recording it), then send what the sockets
    /// have.
    fn poll(&mut self) {
        self.ingress();
        self.egress();
    }

    fn pending(&self) -> usize {
        self.device.pending()
    }

    fn advance(&mut self, wake: Option<Instant>) -> Result<Instant, Stalled> {
        self.clock
            .advance(&mut self.iface, &self.sockets, &*self.device, [wake])
    }

    fn host(&mut self, _: Side) -> (&mut Context, &mut SocketSet<'static>) {
        (self.iface.context(), &mut self.sockets)
    }

    fn address(&self, side: Side, v6: bool) -> IpAddress {
        match (side, v6) {
            (Side::Server, false) => SERVER_V4,
            (Side::Client, false) => CLIENT_V4,
            (Side::Server, true) => SERVER_V6,
            (Side::Client, true) => CLIENT_V6,
        }
    }
}

/// How both of our ends finished.
#[derive(Debug)]
pub struct Served {
    pub server: Result<server::Report, Error>,
    pub client: Result<client::Report, Error>,
}

/// A raw peer: called after every poll with its socket, the time and the wire; returns when it
/// next wants to be called even if no packet arrives.
pub type Peer<'p, const MTU: usize, const CAP: usize> =
    dyn FnMut(&mut tcp::Socket<'static>, Instant, &mut Wire<MTU, CAP>) -> Option<Instant> + 'p;

/// Two ends on `net`, stepped by `poll` (by default [`Hosts::poll`]; a test that meddles with a
/// device passes its own to [`Pair::polling`]).
pub struct Pair<H, P = fn(&mut H)> {
    pub net: H,
    poll: P,
    limit: Duration,
}

impl<H: Hosts> Pair<H> {
    /// Each drive may run 600 simulated seconds.
    pub fn new(net: H) -> Self {
        Pair {
            net,
            poll: <H as Hosts>::poll,
            limit: Duration::from_secs(600),
        }
    }
}

impl<H: Hosts, P: FnMut(&mut H)> Pair<H, P> {
    /// The same pair, each step polling the network with `poll` instead.
    pub fn polling<Q: FnMut(&mut H)>(self, poll: Q) -> Pair<H, Q> {
        Pair {
            net: self.net,
            poll,
            limit: self.limit,
        }
    }

    /// The same pair, each drive allowed `limit` of simulated time.
    pub fn with_limit(mut self, limit: Duration) -> Self {
        self.limit = limit;
        self
    }

    pub fn now(&self) -> Instant {
        self.net.now()
    }

    /// Add `socket` to `side`'s host.
    pub fn add(&mut self, side: Side, socket: tcp::Socket<'static>) -> SocketHandle {
        self.net.host(side).1.add(socket)
    }

    pub fn tcp(&mut self, side: Side, handle: SocketHandle) -> &mut tcp::Socket<'static> {
        self.net.host(side).1.get_mut(handle)
    }

    /// Our server on the server host, on `port` of every address, serving `source`.
    pub fn listen<S: server::Source, const N: usize>(
        &mut self,
        handles: [SocketHandle; N],
        source: S,
        timeouts: halfclose::Timeouts,
    ) -> server::Server<S, N> {
        let sockets = self.net.host(Side::Server).1;
        server::Server::listen(sockets, handles, super::PORT, source, timeouts).unwrap()
    }

    /// Our client on the client host's socket `handle`, connecting as `to` says.
    pub fn connect<W: embedded_io::Write>(
        &mut self,
        handle: SocketHandle,
        to: client::Connect,
        sink: W,
    ) -> client::Client<W> {
        let now = self.now();
        let (cx, sockets) = self.net.host(Side::Client);
        client::Client::connect(cx, sockets, handle, to, sink, now).unwrap()
    }

    /// A raw socket on the client host connecting from `local_port` to our port on the server
    /// host.
    pub fn connect_raw(&mut self, handle: SocketHandle, local_port: u16) {
        let remote = (self.net.address(Side::Server, false), super::PORT);
        let (cx, sockets) = self.net.host(Side::Client);
        sockets
            .get_mut::<tcp::Socket>(handle)
            .connect(cx, remote, local_port)
            .unwrap();
    }

    /// Poll the network once.
    pub fn step(&mut self) {
        (self.poll)(&mut self.net);
    }

    /// Move the clock to the next moment anything can happen, at the latest `wake`; panics if
    /// nothing ever will. Checks the rule every test relies on: the clock never moves while a
    /// packet waits.
    pub fn advance(&mut self, wake: Option<Instant>) {
        let (before, waiting) = (self.net.now(), self.net.pending());
        match self.net.advance(wake) {
            Ok(now) => assert!(
                now == before || waiting == 0,
                "the clock moved from {before} to {now} with {waiting} packets waiting"
            ),
            Err(stalled) => panic!("{stalled}"),
        }
    }

    /// Step, and let the test's `round` run its own machines, until it says done; `round`
    /// returns whether it is and the next moment it needs to run even if no packet arrives.
    /// Panics at the simulated limit (the test fails, it never hangs), and after ten million
    /// rounds should the clock crawl.
    pub fn drive(&mut self, mut round: impl FnMut(&mut H) -> (bool, Option<Instant>)) {
        let end = self.now() + self.limit;
        for _ in 0..10_000_000u64 {
            self.step();
            let (done, wake) = round(&mut self.net);
            if done {
                return;
            }
            self.advance(wake);
            assert!(
                self.now() <= end,
                "still running at the simulated limit {end}"
            );
        }
        panic!("no end after ten million rounds, at {}", self.now());
    }

    /// Drive our `server` and our `client` until both have a result (the server's first).
    pub fn serve<S: server::Source, const N: usize, W: embedded_io::Write>(
        &mut self,
        server: &mut server::Server<S, N>,
        client: &mut client::Client<W>,
    ) -> Served {
        let (mut served, mut fetched) = (None, None);
        self.drive(|net| {
            let now = net.now();
            if let Some(r) = server
                .poll(now, net.host(Side::Server).1)
                .into_iter()
                .next()
                && served.is_none()
            {
                served = Some(r);
            }
            if fetched.is_none()
                && let Poll::Ready(r) = client.poll(now, net.host(Side::Client).1)
            {
                fetched = Some(r);
            }
            let wake = [server.poll_at(), client.deadline()]
                .into_iter()
                .flatten()
                .min();
            (served.is_some() && fetched.is_some(), wake)
        });
        Served {
            server: served.unwrap(),
            client: fetched.unwrap(),
        }
    }
}

impl<'w, const MTU: usize, const CAP: usize, P> Pair<Network<'w, 'static, MTU, CAP>, P>
where
    P: FnMut(&mut Network<'w, 'static, MTU, CAP>),
{
    /// Our `server` against `peer`, a raw socket on the client host (`handle`, already
    /// connecting), until the server has a result; `watch` sees the time, the first slot's
    /// state and its socket after every `Server::poll`, the last one included.
    pub fn server_against<S: server::Source, const N: usize>(
        &mut self,
        server: &mut server::Server<S, N>,
        handle: SocketHandle,
        peer: &mut Peer<'_, MTU, CAP>,
        watch: &mut dyn FnMut(Instant, Option<&server::State>, &tcp::Socket<'static>),
    ) -> Result<server::Report, Error> {
        let mut result = None;
        self.drive(|net| {
            let now = net.now();
            if let Some(r) = server.poll(now, &mut net.server_sockets).into_iter().next() {
                result = Some(r);
            }
            let first = server.handles()[0];
            watch(
                now,
                server.states().next().flatten().as_ref(),
                net.server_sockets.get(first),
            );
            // An event loop sleeps until `poll_at`: it is never in the past.
            if let Some(t) = server.poll_at() {
                assert!(t >= now, "poll_at {t} at {now}");
            }
            let wake = peer(net.client_sockets.get_mut(handle), now, net.wire);
            let wake = [server.poll_at(), wake].into_iter().flatten().min();
            (result.is_some(), wake)
        });
        result.unwrap()
    }

    /// Our `client` against `peer`, a raw socket on the server host (`handle`), until the
    /// client has a result.
    pub fn client_against<W: embedded_io::Write>(
        &mut self,
        client: &mut client::Client<W>,
        handle: SocketHandle,
        peer: &mut Peer<'_, MTU, CAP>,
    ) -> Result<client::Report, Error> {
        let mut result = None;
        self.drive(|net| {
            let now = net.now();
            let wake = peer(net.server_sockets.get_mut(handle), now, net.wire);
            if let Poll::Ready(r) = client.poll(now, &mut net.client_sockets) {
                result = Some(r);
            }
            let wake = [client.deadline(), wake].into_iter().flatten().min();
            (result.is_some(), wake)
        });
        result.unwrap()
    }
}

/// Both hosts on `wire`, with empty socket sets, as a [`Pair`].
pub fn sim<const MTU: usize, const CAP: usize>(
    wire: &mut Wire<MTU, CAP>,
) -> Pair<Network<'_, 'static, MTU, CAP>> {
    Pair::new(Network::new(
        wire,
        SocketSet::new(vec![]),
        SocketSet::new(vec![]),
    ))
}

/// A raw peer on the tests' wire.
pub type SimPeer<'p> = Peer<'p, 1500, 16>;

/// Our server, one slot with 8 KiB buffers, serving `file` on a clean wire, against `peer`: a raw
/// client socket (8 KiB buffers) connecting from port 49152.
pub fn our_server_against(
    file: &[u8],
    timeouts: halfclose::Timeouts,
    peer: &mut SimPeer<'_>,
) -> Result<server::Report, Error> {
    our_server_watched_against(file, timeouts, peer, &mut |_, _, _| {})
}

/// As [`our_server_against`], with `watch` as in [`Pair::server_against`].
pub fn our_server_watched_against(
    file: &[u8],
    timeouts: halfclose::Timeouts,
    peer: &mut SimPeer<'_>,
    watch: &mut dyn FnMut(Instant, Option<&server::State>, &tcp::Socket<'static>),
) -> Result<server::Report, Error> {
    let mut wire = wire();
    let mut pair = sim(&mut wire);
    let s = pair.add(Side::Server, super::socket(8192, 8192));
    let c = pair.add(Side::Client, super::socket(8192, 8192));
    let mut server = pair.listen([s], file, timeouts);
    pair.connect_raw(c, 49152);
    pair.server_against(&mut server, c, peer, watch)
}

/// Our client (8 KiB buffers, from port 49152, [`TIMEOUTS`](super::TIMEOUTS)) on a clean wire
/// against `peer`: a raw server socket with `rx` bytes of receive buffer, listening if `listen`.
/// Returns the client's result and the bytes in its sink.
pub fn our_client_against(
    rx: usize,
    listen: bool,
    peer: &mut SimPeer<'_>,
) -> (Result<client::Report, Error>, Vec<u8>) {
    let mut wire = wire();
    let mut pair = sim(&mut wire);
    let s = pair.add(Side::Server, super::socket(rx, 8192));
    let c = pair.add(Side::Client, super::socket(8192, 8192));
    if listen {
        pair.tcp(Side::Server, s).listen(super::PORT).unwrap();
    }
    let to = client::Connect::to((SimNet::address(Side::Server, false), super::PORT))
        .from_port(49152)
        .timeouts(super::TIMEOUTS);
    let mut client = pair.connect(c, to, Vec::new());
    let result = pair.client_against(&mut client, s, peer);
    (result, client.into_sink())
}

/// Serve `payload` from our server to our client on the loopback: sockets with `buffer`-byte
/// buffers (the client's receive buffer at most `client::MAX_RECEIVE_BUFFER`), addresses of the
/// given family. Returns both results and the bytes the client received.
pub fn transfer<const MTU: usize>(
    pair: &mut Pair<Loop<MTU>>,
    payload: &[u8],
    buffer: usize,
    v6: bool,
) -> (Served, Vec<u8>) {
    let (server_addr, client_addr) = (
        pair.net.address(Side::Server, v6),
        pair.net.address(Side::Client, v6),
    );
    let ack_delay = pair.net.ack_delay;
    let mut socket = |rx| {
        let mut socket = super::socket(rx, buffer);
        socket.set_ack_delay(ack_delay);
        pair.add(Side::Server, socket)
    };
    let s = socket(buffer);
    let c = socket(buffer.min(client::MAX_RECEIVE_BUFFER));
    let sockets = pair.net.host(Side::Server).1;
    let mut server = server::Server::listen(
        sockets,
        [s],
        (server_addr, super::PORT),
        payload,
        halfclose::Timeouts::DEFAULT,
    )
    .unwrap();
    let to = client::Connect::to((server_addr, super::PORT)).from((client_addr, 49152));
    let mut client = pair.connect(c, to, Vec::new());
    let served = pair.serve(&mut server, &mut client);
    (served, client.into_sink())
}
