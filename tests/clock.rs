//! Simulated time in memory: the clock moves only when no packet waits in the device.
//!
//! The obvious loop (move the clock by `Interface::poll_delay` after every poll) is the wrong
//! one: packets still queued in the device then wait out a timer, and the sender's
//! retransmission timer fires on packets that were never lost. `SimClock` is the right one.

use std::task::Poll;

use halfclose::client::{Client, Connect};
use halfclose::clock::{Pending, SimClock};
use halfclose::device::Loopback;
use halfclose::server::Server;
use halfclose::{Timeouts, client, server};
use smoltcp::iface::{Config, Interface, SocketSet};
use smoltcp::phy::{self, Device, DeviceCapabilities, Medium};
use smoltcp::socket::tcp;
use smoltcp::time::{Duration, Instant};
use smoltcp::wire::{HardwareAddress, IpAddress, IpCidr};

const ADDR: IpAddress = IpAddress::v4(127, 0, 0, 1);
const PORT: u16 = halfclose::DEFAULT_PORT;
const FOX: &[u8] = b"The quick brown fox jumps over the lazy dog.";

/// A loopback that remembers when each queued packet was sent, and checks, as each one is
/// received, that the clock has not moved since.
struct Watched {
    inner: Loopback<1500, 8>,
    sent_at: std::collections::VecDeque<Instant>,
    /// Packets received at a later instant than they were sent at: time passed while they
    /// waited in the device.
    waited: Vec<(Instant, Instant)>,
}

impl Watched {
    fn new() -> Self {
        Watched {
            inner: Loopback::new(Medium::Ip),
            sent_at: Default::default(),
            waited: Vec::new(),
        }
    }
}

impl Pending for Watched {
    fn pending(&self) -> usize {
        self.inner.pending()
    }
}

struct WatchedTx<'a> {
    inner: <Loopback<1500, 8> as Device>::TxToken<'a>,
    sent_at: &'a mut std::collections::VecDeque<Instant>,
    now: Instant,
}

impl phy::TxToken for WatchedTx<'_> {
    fn consume<R, F: FnOnce(&mut [u8]) -> R>(self, len: usize, f: F) -> R {
        self.sent_at.push_back(self.now);
        self.inner.consume(len, f)
    }
}

impl Device for Watched {
    type RxToken<'a> = <Loopback<1500, 8> as Device>::RxToken<'a>;
    type TxToken<'a> = WatchedTx<'a>;

    fn receive(&mut self, now: Instant) -> Option<(Self::RxToken<'_>, Self::TxToken<'_>)> {
        let (rx, tx) = self.inner.receive(now)?;
        let sent = self.sent_at.pop_front().expect("a packet sent before");
        if sent != now {
            self.waited.push((sent, now));
        }
        Some((
            rx,
            WatchedTx {
                inner: tx,
                sent_at: &mut self.sent_at,
                now,
            },
        ))
    }

    fn transmit(&mut self, now: Instant) -> Option<Self::TxToken<'_>> {
        let inner = self.inner.transmit(now)?;
        Some(WatchedTx {
            inner,
            sent_at: &mut self.sent_at,
            now,
        })
    }

    fn capabilities(&self) -> DeviceCapabilities {
        self.inner.capabilities()
    }
}

/// How the loop moves its clock.
#[derive(Clone, Copy)]
enum Loop {
    /// `SimClock::advance`: only when the device is empty.
    SimClock,
    /// `now += iface.poll_delay(now)` whatever the device holds.
    PollDelay,
}

/// One transfer of `file` over `device`, its clock moved as `how` says; the simulated time it
/// took, the bytes received and the server's and client's results.
fn transfer(device: &mut Watched, file: &[u8], how: Loop) -> (Instant, Vec<u8>) {
    let mut clock = SimClock::new().with_limit(Duration::from_secs(600));
    let mut iface = Interface::new(Config::new(HardwareAddress::Ip), &mut *device, clock.now());
    iface.update_ip_addrs(|a| a.push(IpCidr::new(ADDR, 8)).unwrap());
    let mut sockets = SocketSet::new(Vec::new());
    let socket = || {
        let mut s = tcp::Socket::new(
            tcp::SocketBuffer::new(vec![0; 16 * 1024]),
            tcp::SocketBuffer::new(vec![0; 16 * 1024]),
        );
        s.set_ack_delay(None);
        s
    };
    let s = sockets.add(socket());
    let c = sockets.add(socket());
    let mut server = Server::listen(&mut sockets, [s], PORT, file, Timeouts::DEFAULT).unwrap();
    let to = Connect::to((ADDR, PORT));
    let mut client = Client::connect(
        iface.context(),
        &mut sockets,
        c,
        to,
        Vec::new(),
        clock.now(),
    )
    .unwrap();
    let (mut served, mut fetched): (Option<server::Report>, Option<client::Report>) = (None, None);
    let mut now = clock.now();
    loop {
        iface.poll(now, &mut *device, &mut sockets);
        if let Some(r) = server.poll(now, &mut sockets).into_iter().next() {
            served = Some(r.expect("server"));
        }
        if fetched.is_none()
            && let Poll::Ready(r) = client.poll(now, &mut sockets)
        {
            fetched = Some(r.expect("client"));
        }
        if served.is_some() && fetched.is_some() {
            break;
        }
        now = match how {
            Loop::SimClock => clock
                .advance(
                    &mut iface,
                    &sockets,
                    &*device,
                    [server.poll_at(), client.deadline()],
                )
                .expect("the transfer ends in its simulated time"),
            Loop::PollDelay => {
                let delay = iface.poll_delay(now, &sockets);
                now + delay.unwrap_or(Duration::from_millis(1))
            }
        };
        assert!(now < Instant::from_secs(600), "bounded");
    }
    (now, client.into_sink())
}

#[test]
fn simulated_time_never_passes_while_a_packet_waits() {
    let file: Vec<u8> = (0..1 << 20).map(|i: u32| (i * 7 % 251) as u8).collect();
    let mut device = Watched::new();
    let (took, received) = transfer(&mut device, &file, Loop::SimClock);
    assert!(received == file, "the megabyte arrives whole");
    assert_eq!(
        device.waited,
        [],
        "(sent at, received at) of packets that waited"
    );
    assert!(took < Instant::from_secs(1), "1 MiB took {took} simulated");
}

#[test]
fn a_small_file_takes_a_few_round_trips_not_a_timer() {
    let mut device = Watched::new();
    let (took, received) = transfer(&mut device, FOX, Loop::SimClock);
    assert_eq!(received, FOX);
    assert!(
        took < Instant::from_millis(10),
        "44 bytes took {took} simulated"
    );
}

/// What the obvious loop costs, and why `SimClock` exists: the same 44 bytes wait out timers.
#[test]
fn the_obvious_poll_delay_loop_lets_packets_wait_out_timers() {
    let mut device = Watched::new();
    let (took, received) = transfer(&mut device, FOX, Loop::PollDelay);
    assert_eq!(received, FOX);
    assert!(!device.waited.is_empty(), "packets waited in the device");
    assert!(
        took > Instant::from_secs(1),
        "44 bytes took {took} simulated"
    );
}
