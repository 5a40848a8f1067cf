//! A listen backlog in front of the device: clients that find every socket of the pool busy
//! wait for one instead of being refused, as a kernel server's clients do.

mod common;

use std::task::Poll;

use common::pair::{Hosts, Pair};
use common::{CLIENT_V4, LEN, PORT, SERVER_V4, TIMEOUTS, socket};
use halfclose::backlog::{Backlog, Stats};
use halfclose::clock::{Pending, SimClock, Stalled};
use halfclose::device::Loopback;
use halfclose::sim::Side;
use halfclose::{Error, client};
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

impl<const Q: usize> Gated<Q> {
    /// What the server said after its poll: how many SYNs may pass (all of them without a
    /// backlog).
    fn admit(&mut self, listeners: usize) {
        self.backlog
            .admit(if self.open { usize::MAX } else { listeners });
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

/// A client of the crowd, and how it ended.
type Fetching = client::Client<Vec<u8>>;
type Fetched = Result<client::Report, Error>;

/// How a crowd of clients fared.
struct Crowd {
    results: Vec<Result<client::Report, Error>>,
    served: usize,
    stats: Stats,
}

/// `clients` clients of a `LEN`-byte file connect at once to a pool of `POOL` sockets.
fn crowd<const POOL: usize, const Q: usize>(net: Gated<Q>, clients: usize) -> Crowd {
    let file = common::random_bytes(LEN, 7);
    let mut pair = Pair::new(net);
    let slots: [SocketHandle; POOL] =
        core::array::from_fn(|_| pair.add(Side::Server, socket(8192, 8192)));
    let mut server = pair.listen(slots, &file[..], TIMEOUTS);
    pair.net.admit(server.listening());
    let mut running: Vec<(Fetching, Option<Fetched>)> = (0..clients)
        .map(|i| {
            let handle = pair.add(Side::Client, socket(8192, 8192));
            let to = client::Connect::to((SERVER_V4, PORT))
                .from_port(40_000 + i as u16)
                .timeouts(TIMEOUTS);
            (pair.connect(handle, to, Vec::new()), None)
        })
        .collect();
    let mut served = 0;
    pair.drive(|net| {
        let now = net.now();
        for report in server.poll(now, &mut net.sockets) {
            served += usize::from(report.is_ok_and(|r| r.reply.is_thank_you()));
        }
        net.admit(server.listening());
        for (client, result) in &mut running {
            if result.is_none()
                && let Poll::Ready(r) = client.poll(now, &mut net.sockets)
            {
                *result = Some(r);
            }
        }
        let wake = running.iter().map(|(c, _)| c.deadline());
        let wake = wake.chain([server.poll_at()]).flatten().min();
        (
            running.iter().all(|(_, r)| r.is_some()) && server.busy() == 0,
            wake,
        )
    });
    for (client, result) in &running {
        if let Some(Ok(_)) = result {
            assert!(client.sink() == &file, "a client's copy differs");
        }
    }
    Crowd {
        results: running.into_iter().map(|(_, r)| r.unwrap()).collect(),
        served,
        stats: pair.net.backlog.stats(),
    }
}

#[test]
fn clients_that_find_the_pool_full_wait_and_are_all_served() {
    let crowd = crowd::<2, 16>(Gated::new(Duration::from_secs(10)), 8);
    let failed: Vec<_> = crowd.results.iter().filter(|r| r.is_err()).collect();
    assert!(failed.is_empty(), "{failed:?}");
    assert_eq!(crowd.served, 8);
    assert_eq!(crowd.stats.held, 6, "{:?}", crowd.stats);
    assert_eq!(crowd.stats.released, 6, "{:?}", crowd.stats);
    assert_eq!((crowd.stats.dropped, crowd.stats.refused), (0, 0));
}

#[test]
fn without_a_backlog_the_same_clients_are_refused() {
    let mut net = Gated::<16>::new(Duration::from_secs(10));
    net.open = true;
    let crowd = crowd::<2, 16>(net, 8);
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
    let crowd = crowd::<1, 1>(Gated::new(Duration::from_secs(10)), 4);
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
