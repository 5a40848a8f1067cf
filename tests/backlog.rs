//! A listen backlog in front of the device: clients that find every socket of the pool busy
//! wait for one instead of being refused, as a kernel server's clients do.

mod common;

use std::task::Poll;

use common::pair::{Hosts, Pair, SimNet, SimWire};
use common::{CLIENT_V4, LEN, PORT, SERVER_V4, TIMEOUTS, socket};
use halfclose::backlog::{Backlog, Stats};
use halfclose::clock::{Pending, SimClock, Stalled};
use halfclose::device::Loopback;
use halfclose::server::{Server, Source};
use halfclose::sim::{Link, Network, Side};
use halfclose::{Error, Timeouts, client};
use smoltcp::iface::{Config, Context, Interface, SocketHandle, SocketSet};
use smoltcp::phy::Medium;
use smoltcp::time::{Duration, Instant};
use smoltcp::wire::{HardwareAddress, IpAddress, IpCidr};

/// One interface on a loopback behind a backlog of `Q` SYNs; `listeners` is what the server
/// said after its last poll, given to the backlog before each poll of the interface.
struct Gated<const Q: usize> {
    iface: Interface,
    device: Loopback<1500, 16>,
    backlog: Backlog<Q>,
    sockets: SocketSet<'static>,
    clock: SimClock,
    /// No backlog at all: every SYN goes to smoltcp, as without one.
    open: bool,
}

impl<const Q: usize> Gated<Q> {
    fn new(hold: Duration) -> Self {
        let mut device = Loopback::new(Medium::Ip);
        let clock = SimClock::new();
        let mut iface = Interface::new(Config::new(HardwareAddress::Ip), &mut device, clock.now());
        iface.update_ip_addrs(|a| {
            a.push(IpCidr::new(SERVER_V4, 24)).unwrap();
            a.push(IpCidr::new(CLIENT_V4, 24)).unwrap();
        });
        Gated {
            iface,
            device,
            backlog: Backlog::new(PORT).with_hold(hold),
            sockets: SocketSet::new(Vec::new()),
            clock,
            open: false,
        }
    }
}

/// A network with a backlog in front of the server host.
trait Gate: Hosts {
    /// What the server said after its poll: how many SYNs may pass.
    fn admit(&mut self, listeners: usize);
    /// The same from `server` itself, `Server::admit` (which first frees a lingering slot that
    /// a client coming back from the same port needs); `admit(server.listening())` where the
    /// test says so.
    fn admit_from<S: Source, const N: usize>(&mut self, server: &mut Server<S, N>);
    /// What the backlog has done.
    fn stats(&self) -> Stats;
}

impl<const Q: usize> Gate for Gated<Q> {
    /// All of them without a backlog.
    fn admit(&mut self, listeners: usize) {
        self.backlog
            .admit(if self.open { usize::MAX } else { listeners });
    }

    fn admit_from<S: Source, const N: usize>(&mut self, server: &mut Server<S, N>) {
        if self.open {
            self.backlog.admit(usize::MAX);
        } else {
            server.admit(&mut self.backlog, &mut self.sockets);
        }
    }

    fn stats(&self) -> Stats {
        self.backlog.stats()
    }
}

impl<const Q: usize> Hosts for Gated<Q> {
    fn now(&self) -> Instant {
        self.clock.now()
    }

    fn poll(&mut self) {
        let now = self.clock.now();
        let mut device = self.backlog.guard(&mut self.device);
        self.iface.poll(now, &mut device, &mut self.sockets);
    }

    fn pending(&self) -> usize {
        self.device.pending() + self.backlog.releasable()
    }

    fn advance(&mut self, wake: Option<Instant>) -> Result<Instant, Stalled> {
        let held = self.backlog.poll_at();
        let device = self.backlog.guard(&mut self.device);
        self.clock
            .advance(&mut self.iface, &self.sockets, &device, [wake, held])
    }

    fn host(&mut self, _: Side) -> (&mut Context, &mut SocketSet<'static>) {
        (self.iface.context(), &mut self.sockets)
    }

    fn address(&self, side: Side, _: bool) -> IpAddress {
        match side {
            Side::Server => SERVER_V4,
            Side::Client => CLIENT_V4,
        }
    }
}

/// The simulated two-host wire, with a backlog of `Q` SYNs in front of the server host's device.
struct Behind<'w, const Q: usize> {
    net: SimNet<'w>,
    backlog: Backlog<Q>,
    /// The backlog hears only how many sockets listen (`Backlog::admit`), not from the server.
    plain: bool,
}

impl<'w, const Q: usize> Behind<'w, Q> {
    /// Both hosts on `wire`, the backlog in front of the server's.
    fn on(wire: &'w mut SimWire) -> Self {
        Behind {
            net: Network::new(wire, SocketSet::new(vec![]), SocketSet::new(vec![])),
            backlog: Backlog::new(PORT),
            plain: false,
        }
    }
}

impl<const Q: usize> Hosts for Behind<'_, Q> {
    fn now(&self) -> Instant {
        self.net.now()
    }

    fn poll(&mut self) {
        self.net.poll_behind(&mut self.backlog);
    }

    fn pending(&self) -> usize {
        self.net.wire.pending() + self.backlog.releasable()
    }

    fn advance(&mut self, wake: Option<Instant>) -> Result<Instant, Stalled> {
        let held = self.backlog.poll_at();
        if self
            .net
            .advance_with(self.backlog.releasable(), [wake, held])
        {
            Ok(self.net.now())
        } else {
            Err(Stalled::Idle { at: self.now() })
        }
    }

    fn host(&mut self, side: Side) -> (&mut Context, &mut SocketSet<'static>) {
        self.net.host(side)
    }

    fn address(&self, side: Side, v6: bool) -> IpAddress {
        SimNet::address(side, v6)
    }
}

impl<const Q: usize> Gate for Behind<'_, Q> {
    fn admit(&mut self, listeners: usize) {
        self.backlog.admit(listeners);
    }

    fn admit_from<S: Source, const N: usize>(&mut self, server: &mut Server<S, N>) {
        if self.plain {
            self.backlog.admit(server.listening());
        } else {
            server.admit(&mut self.backlog, self.net.host(Side::Server).1);
        }
    }

    fn stats(&self) -> Stats {
        self.backlog.stats()
    }
}

/// The simulated wire with 5 ms of delay each way (a 10 ms round trip).
fn slow_wire() -> Box<SimWire> {
    let link = Link {
        latency: Duration::from_millis(5),
        queue: 64,
        ..Link::clean(1500)
    };
    Box::new(SimWire::new(1, link, link))
}

/// A client of the crowd, and how it ended.
type Fetching = client::Client<Vec<u8>>;
type Fetched = Result<client::Report, Error>;

/// How a crowd of clients fared.
struct Crowd {
    results: Vec<Result<client::Report, Error>>,
    served: usize,
    stats: Stats,
    /// The ports of the clients whose connections the pool's sockets hold in TIME-WAIT at the
    /// end, in slot order.
    time_wait: Vec<u16>,
}

/// `clients` clients of a `LEN`-byte file connect to a pool of `POOL` sockets, `apart` after one
/// another (all at once if zero), each from a port of its own.
fn crowd<const POOL: usize>(net: impl Gate, clients: usize, apart: Duration) -> Crowd {
    let arrivals: Vec<_> = (0..clients)
        .map(|i| (apart * i as u32, 40_000 + i as u16))
        .collect();
    crowd_at::<POOL>(net, &arrivals, TIMEOUTS)
}

/// Clients of a `LEN`-byte file connect to a pool of `POOL` sockets with `timeouts`, each at its
/// time after the first and from its port.
fn crowd_at<const POOL: usize>(
    net: impl Gate,
    arrivals: &[(Duration, u16)],
    timeouts: Timeouts,
) -> Crowd {
    let clients = arrivals.len();
    let file = common::random_bytes(LEN, 7);
    let mut pair = Pair::new(net);
    let slots: [SocketHandle; POOL] =
        core::array::from_fn(|_| pair.add(Side::Server, socket(8192, 8192)));
    let mut server = pair.listen(slots, &file[..], timeouts);
    pair.net.admit(server.listening());
    let first = pair.now();
    let handles: Vec<_> = (0..clients)
        .map(|_| pair.add(Side::Client, socket(8192, 8192)))
        .collect();
    let mut running: Vec<(Option<Fetching>, Option<Fetched>)> =
        (0..clients).map(|_| (None, None)).collect();
    let start_at = |i: usize| first + arrivals[i].0;
    // Connect the clients whose time has come.
    let start = |net: &mut dyn Hosts, running: &mut Vec<(Option<Fetching>, Option<Fetched>)>| {
        let now = net.now();
        for (i, (client, _)) in running.iter_mut().enumerate() {
            if client.is_none() && now >= start_at(i) {
                let to = client::Connect::to((SERVER_V4, PORT))
                    .from_port(arrivals[i].1)
                    .timeouts(TIMEOUTS);
                let (cx, sockets) = net.host(Side::Client);
                *client = Some(
                    client::Client::connect(cx, sockets, handles[i], to, Vec::new(), now).unwrap(),
                );
            }
        }
    };
    start(&mut pair.net, &mut running);
    let mut served = 0;
    pair.drive(|net| {
        let now = net.now();
        for report in server.poll(now, net.host(Side::Server).1) {
            served += usize::from(report.is_ok_and(|r| r.reply.is_thank_you()));
        }
        net.admit_from(&mut server);
        start(net, &mut running);
        for (client, result) in &mut running {
            if let Some(client) = client
                && result.is_none()
                && let Poll::Ready(r) = client.poll(now, net.host(Side::Client).1)
            {
                *result = Some(r);
            }
        }
        let next_start = (0..clients).map(start_at).find(|&t| t > now);
        let wake = running
            .iter()
            .map(|(c, _)| c.as_ref().and_then(|c| c.deadline()));
        let wake = wake.chain([server.poll_at(), next_start]).flatten().min();
        (
            running.iter().all(|(_, r)| r.is_some()) && server.busy() == 0,
            wake,
        )
    });
    for (client, result) in &running {
        if let (Some(client), Some(Ok(_))) = (client, result) {
            assert!(client.sink() == &file, "a client's copy differs");
        }
    }
    let sockets = pair.net.host(Side::Server).1;
    let time_wait = server
        .handles()
        .iter()
        .map(|&h| sockets.get::<smoltcp::socket::tcp::Socket>(h))
        .filter(|s| s.state() == smoltcp::socket::tcp::State::TimeWait)
        .filter_map(|s| s.remote_endpoint().map(|e| e.port))
        .collect();
    Crowd {
        results: running.into_iter().map(|(_, r)| r.unwrap()).collect(),
        served,
        stats: pair.net.stats(),
        time_wait,
    }
}

#[test]
fn clients_that_find_the_pool_full_wait_and_are_all_served() {
    let crowd = crowd::<2>(Gated::<16>::new(Duration::from_secs(10)), 8, Duration::ZERO);
    let failed: Vec<_> = crowd.results.iter().filter(|r| r.is_err()).collect();
    assert!(failed.is_empty(), "{failed:?}");
    assert_eq!(crowd.served, 8);
    assert_eq!(crowd.stats.held, 6, "{:?}", crowd.stats);
    assert_eq!(crowd.stats.released, 6, "{:?}", crowd.stats);
    assert_eq!((crowd.stats.dropped, crowd.stats.refused), (0, 0));
}

/// Over a 10 ms round trip, a client let in from the backlog is half-open for that long: the pool
/// must not take its slot for the next one let in before it has had time to answer.
#[test]
fn clients_let_in_together_over_a_slow_link_are_all_served() {
    let mut wire = slow_wire();
    let net = Behind::<32>::on(&mut wire);
    let crowd = crowd::<4>(net, 16, Duration::from_micros(500));
    let failed: Vec<_> = crowd.results.iter().filter(|r| r.is_err()).collect();
    assert!(failed.is_empty(), "{failed:?}");
    assert_eq!(crowd.served, 16);
    assert_eq!(crowd.stats.held, 12, "{:?}", crowd.stats);
    assert_eq!((crowd.stats.dropped, crowd.stats.refused), (0, 0));
}

/// A kernel client reuses a source port as soon as its last connection on it has closed, so a
/// new client may come from the port of one served a moment ago. When it finds the pool full it
/// waits in the backlog like any other (its SYN is no retransmission of the first one's), and
/// is served.
#[test]
fn a_new_client_from_the_port_of_one_just_served_waits_for_a_full_pool_and_is_served() {
    let mut wire = slow_wire();
    let net = Behind::<4>::on(&mut wire);
    // One slot. The second client waits for the first; the third comes from the first one's
    // port once that one is done, while the second is being served.
    let ms = Duration::from_millis;
    let arrivals = [(ms(0), 40_000), (ms(1), 40_001), (ms(110), 40_000)];
    let crowd = crowd_at::<1>(net, &arrivals, TIMEOUTS);
    let failed: Vec<_> = crowd.results.iter().filter(|r| r.is_err()).collect();
    assert!(failed.is_empty(), "{failed:?}");
    assert_eq!(crowd.served, 3);
    assert_eq!(crowd.stats.held, 2, "{:?}", crowd.stats);
    assert_eq!((crowd.stats.dropped, crowd.stats.refused), (0, 0));
}

/// A client that connects again from the port of its last connection, 50 ms after that one
/// ended (a kernel client that binds its port, or whose ports wrapped round), over a 5 ms link,
/// to a pool of two: how its second connection ended, and what the backlog did. `plain`: the
/// backlog hears only `Backlog::admit(server.listening())`.
fn back_from_the_same_port(plain: bool) -> (Fetched, Stats) {
    let mut wire = slow_wire();
    let mut net = Behind::<4>::on(&mut wire);
    net.plain = plain;
    // The first connection is over (for the client) 90 ms after its start; its slot lingers
    // for the default 8 s.
    let ms = Duration::from_millis;
    let linger = TIMEOUTS.with_linger(Timeouts::default().linger);
    let crowd = crowd_at::<2>(net, &[(ms(0), 40_000), (ms(140), 40_000)], linger);
    let [first, again] = <[Fetched; 2]>::try_from(crowd.results).unwrap();
    let first = first.unwrap();
    assert!(first.finished_at + ms(40) < first.started_at + ms(140));
    (again, crowd.stats)
}

/// The pool's socket for the client's last connection lingers in TIME-WAIT (8 s, for a FIN
/// retransmitted after a lost ACK), and the other listens. A kernel server accepts such a SYN
/// at once (RFC 9293 3.10.7.4, RFC 6191). Behind our backlog the lingering socket listens again
/// before the SYN goes on, and the client connects in one round trip.
#[test]
fn a_client_back_from_the_port_of_its_last_connection_connects_in_one_round_trip() {
    let (again, stats) = back_from_the_same_port(false);
    let again = again.unwrap();
    let connect = again.connected_at - again.started_at;
    assert!(
        connect < Duration::from_millis(12),
        "connected after {connect}"
    );
    assert_eq!((stats.held, stats.released, stats.refused), (1, 1, 0));
}

/// Why `Server::admit` frees that socket: smoltcp hands the SYN to the socket of its four-tuple,
/// which drops it in TIME-WAIT. The client's SYN, retransmitted meanwhile, meets the TIME-WAIT
/// each time until the client's 10 s connect limit, and it gives up.
/// Only the slot that lingers for the returning client listens again: another client's
/// TIME-WAIT, lingering beside it, is kept (it still re-acknowledges that client's FIN should
/// its last ACK have been lost).
#[test]
fn a_client_back_from_its_port_frees_its_own_lingering_slot_and_no_other() {
    let mut wire = slow_wire();
    let net = Behind::<4>::on(&mut wire);
    // Two clients at once take the first two slots; both lingers; the second comes back.
    let ms = Duration::from_millis;
    let linger = TIMEOUTS.with_linger(Timeouts::default().linger);
    let arrivals = [(ms(0), 40_001), (ms(1), 40_000), (ms(140), 40_000)];
    let crowd = crowd_at::<3>(net, &arrivals, linger);
    assert_eq!(crowd.served, 3, "{:?}", crowd.results);
    let again = crowd.results[2].as_ref().unwrap();
    assert!(again.connected_at - again.started_at < ms(12));
    assert_eq!(crowd.time_wait, [40_001, 40_000]);
}

#[test]
fn without_the_server_freeing_its_lingering_socket_that_client_waits_out_the_linger() {
    let (again, _) = back_from_the_same_port(true);
    assert_eq!(
        again.unwrap_err(),
        Error::TimedOut {
            phase: halfclose::Phase::Connect,
            bytes: 0
        }
    );
}

#[test]
fn without_a_backlog_the_same_clients_are_refused() {
    let mut net = Gated::<16>::new(Duration::from_secs(10));
    net.open = true;
    let crowd = crowd::<2>(net, 8, Duration::ZERO);
    let refused = crowd
        .results
        .iter()
        .filter(|r| matches!(r, Err(Error::Refused)))
        .count();
    assert_eq!(refused, 6, "{:?}", crowd.results);
    assert_eq!(crowd.served, 2);
}

#[test]
fn a_full_queue_drops_syns_and_their_clients_retry_until_served() {
    let crowd = crowd::<1>(Gated::<1>::new(Duration::from_secs(10)), 4, Duration::ZERO);
    let failed: Vec<_> = crowd.results.iter().filter(|r| r.is_err()).collect();
    assert!(failed.is_empty(), "{failed:?}");
    assert_eq!(crowd.served, 4);
    assert!(crowd.stats.dropped >= 2, "{:?}", crowd.stats);
    assert_eq!(crowd.stats.refused, 0);
}

#[test]
fn a_syn_held_past_the_limit_is_refused_with_a_reset() {
    // One slot, taken by a raw client that connects and never reads (so its connection lasts
    // until the idle limit), and a second client held for at most 2 s.
    let mut pair = Pair::new(Gated::<4>::new(Duration::from_secs(2)));
    let file = common::random_bytes(100_000, 3);
    let slot = pair.add(Side::Server, socket(8192, 8192));
    let mut server = pair.listen([slot], &file[..], TIMEOUTS);
    pair.net.admit(server.listening());
    let squatter = pair.add(Side::Client, socket(1024, 1024));
    pair.connect_raw(squatter, 40_000);
    let start = pair.now();
    let handle = pair.add(Side::Client, socket(8192, 8192));
    let to = client::Connect::to((SERVER_V4, PORT))
        .from_port(40_001)
        .timeouts(TIMEOUTS);
    let mut late = pair.connect(handle, to, Vec::new());
    let mut result = None;
    pair.drive(|net| {
        let now = net.now();
        let _ = server.poll(now, &mut net.sockets);
        net.admit(server.listening());
        if let Poll::Ready(r) = late.poll(now, &mut net.sockets) {
            result = Some((r, now));
        }
        let wake = [late.deadline(), server.poll_at()]
            .into_iter()
            .flatten()
            .min();
        (result.is_some(), wake)
    });
    let (result, at) = result.unwrap();
    assert_eq!(result.unwrap_err(), Error::Refused);
    let waited = at - start;
    assert!(
        waited >= Duration::from_secs(2) && waited < Duration::from_secs(3),
        "refused after {waited}"
    );
    assert_eq!(pair.net.backlog.stats().refused, 1);
}

#[test]
fn a_port_without_a_server_still_refuses_at_once() {
    let mut pair = Pair::new(Gated::<4>::new(Duration::from_secs(10)));
    pair.net.admit(0);
    let handle = pair.add(Side::Client, socket(8192, 8192));
    // No server at all on this port: the backlog guards PORT only.
    let to = client::Connect::to((SERVER_V4, PORT + 1)).timeouts(TIMEOUTS);
    let mut client = pair.connect(handle, to, Vec::new());
    let mut result = None;
    pair.drive(|net| {
        if let Poll::Ready(r) = client.poll(net.now(), &mut net.sockets) {
            result = Some(r);
        }
        (result.is_some(), client.deadline())
    });
    assert_eq!(result.unwrap().unwrap_err(), Error::Refused);
    assert!(pair.now() < Instant::from_millis(10), "{}", pair.now());
    assert_eq!(pair.net.backlog.stats(), Stats::default());
}
