//! The same hostile peers ([`Attack`]) against the async server, `halfclose::asynch::serve` on
//! embassy-net, in this process: two embassy-net stacks joined by an in-memory [`Link`], one
//! serving a file from a single socket (`asynch::embassy::accept`, then `serve`), the other
//! holding the attackers' sockets and one legitimate client (`asynch::fetch`) that retries
//! until it is served.
//!
//! embassy-net reads its time from `embassy-time`, whose only driver on a host is the real
//! clock (its mock driver cannot be linked beside the std one, which the TAP example needs),
//! so these runs take real time: the attack's "second" and the server's limits are scaled down
//! (tens to hundreds of milliseconds) and each run is bounded by a wall-clock limit. The
//! assertions leave room for a loaded machine; the exact arithmetic of each limit is pinned by
//! the unit tests on a simulated clock in `halfclose::asynch`.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::future::Future;
use std::pin::{Pin, pin};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll, Wake, Waker};
use std::thread::Thread;
use std::time::{Duration, Instant};

use embassy_net::tcp::TcpSocket;
use embassy_net::{Config, Ipv4Cidr, StackResources, StaticConfigV4};
use embassy_net_driver::{Capabilities, HardwareAddress, LinkState};
use halfclose::asynch::embassy::{EmbassyClock, accept, client_socket, connect};
use halfclose::asynch::{Clock, FetchReport, ServeReport, fetch, serve};
use halfclose::segment::Segment;
use halfclose::sim::{self, Side};
use halfclose::{Error, REPLY, Timeouts};
use smoltcp::wire::{IpEndpoint, Ipv4Address};

use super::{Attack, PORT};

/// The server's address on the link, and the client host's.
pub const SERVER: Ipv4Address = Ipv4Address::new(10, 0, 0, 1);
pub const CLIENT: Ipv4Address = Ipv4Address::new(10, 0, 0, 2);
const MTU: usize = 1500;

/// One segment the link carried (or dropped), and when.
#[derive(Debug, Clone, Copy)]
pub struct Traced {
    /// Since the run started.
    pub at: Duration,
    /// The host it was sent towards.
    pub towards: Side,
    pub segment: Segment,
    /// Dropped by the scenario's fault instead of delivered.
    pub dropped: bool,
}

/// A fault: which segments the link drops.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// None.
    None,
    /// The server's first acknowledgement of the legitimate client's FIN: the client must
    /// retransmit its FIN, and only a server that still holds its socket re-acknowledges it.
    LoseLastAck,
    /// Everything the legitimate client sends after the server's FIN but its RSTs: the server
    /// never sees its FIN acknowledged, only the client's reset.
    LoseAcksOfTheServersFin,
}

/// Two embassy-net devices joined back to back: what one side transmits is queued for the
/// other at once, unless the fault drops it. Every TCP segment is traced.
pub struct Link {
    inner: RefCell<LinkInner>,
    started: Instant,
    /// The legitimate client's local port, once it has one.
    legit_port: Cell<Option<u16>>,
}

struct LinkInner {
    /// Packets towards the server, towards the client.
    queues: [VecDeque<Vec<u8>>; 2],
    wakers: [Option<Waker>; 2],
    trace: Vec<Traced>,
    fault: Fault,
    /// Where the legitimate client's FIN ends, once it has been sent.
    client_fin_end: Option<u32>,
    last_ack_lost: bool,
    server_fin_seen: bool,
}

fn index(towards: Side) -> usize {
    match towards {
        Side::Server => 0,
        Side::Client => 1,
    }
}

impl Link {
    pub fn new(fault: Fault) -> Link {
        Link {
            inner: RefCell::new(LinkInner {
                queues: [VecDeque::new(), VecDeque::new()],
                wakers: [None, None],
                trace: Vec::new(),
                fault,
                client_fin_end: None,
                last_ack_lost: false,
                server_fin_seen: false,
            }),
            started: Instant::now(),
            legit_port: Cell::new(None),
        }
    }

    /// The embassy-net device of `side`.
    pub fn port(&self, side: Side) -> Port<'_> {
        Port { link: self, side }
    }

    /// Every segment so far.
    pub fn trace(&self) -> Vec<Traced> {
        self.inner.borrow().trace.clone()
    }

    /// A packet sent towards `towards` (from the other side, or forged).
    fn send(&self, towards: Side, packet: Vec<u8>) {
        let mut inner = self.inner.borrow_mut();
        let segment = Segment::parse(smoltcp::phy::Medium::Ip, &packet);
        let legit = self.legit_port.get();
        let dropped = segment.is_some_and(|s| inner.drops(towards, &s, legit));
        if let Some(segment) = segment {
            let at = self.started.elapsed();
            inner.trace.push(Traced {
                at,
                towards,
                segment,
                dropped,
            });
        }
        if !dropped {
            let i = index(towards);
            inner.queues[i].push_back(packet);
            if let Some(waker) = inner.wakers[i].take() {
                waker.wake();
            }
        }
    }

    /// A forged SYN from `from` towards the server.
    pub fn forge_syn(&self, from: (Ipv4Address, u16), seq: u32) {
        let mut packet = vec![0u8; sim::FORGED_SYN_LEN];
        sim::forged_syn(&mut packet, from, (SERVER, PORT), seq);
        self.send(Side::Server, packet);
    }
}

impl LinkInner {
    fn drops(&mut self, towards: Side, s: &Segment, legit_port: Option<u16>) -> bool {
        let legit = |e: IpEndpoint| Some(e.port) == legit_port;
        match (self.fault, towards) {
            (Fault::None, _) => false,
            (Fault::LoseLastAck, Side::Server) => {
                if legit(s.src) && s.fin {
                    self.client_fin_end = Some(s.seq.wrapping_add(s.seq_len()));
                }
                false
            }
            (Fault::LoseLastAck, Side::Client) => {
                let lose = !self.last_ack_lost
                    && legit(s.dst)
                    && self.client_fin_end.is_some()
                    && s.ack == self.client_fin_end;
                self.last_ack_lost |= lose;
                lose
            }
            (Fault::LoseAcksOfTheServersFin, Side::Client) => {
                self.server_fin_seen |= legit(s.dst) && s.fin;
                false
            }
            (Fault::LoseAcksOfTheServersFin, Side::Server) => {
                legit(s.src) && self.server_fin_seen && !s.rst
            }
        }
    }
}

/// One side's embassy-net device on a [`Link`].
pub struct Port<'a> {
    link: &'a Link,
    side: Side,
}

pub struct RxToken(Vec<u8>);

pub struct TxToken<'a> {
    link: &'a Link,
    towards: Side,
}

impl embassy_net_driver::RxToken for RxToken {
    fn consume<R, F: FnOnce(&mut [u8]) -> R>(mut self, f: F) -> R {
        f(&mut self.0)
    }
}

impl embassy_net_driver::TxToken for TxToken<'_> {
    fn consume<R, F: FnOnce(&mut [u8]) -> R>(self, len: usize, f: F) -> R {
        let mut packet = vec![0u8; len];
        let r = f(&mut packet);
        self.link.send(self.towards, packet);
        r
    }
}

impl Port<'_> {
    fn other(&self) -> Side {
        match self.side {
            Side::Server => Side::Client,
            Side::Client => Side::Server,
        }
    }
}

impl embassy_net_driver::Driver for Port<'_> {
    type RxToken<'a>
        = RxToken
    where
        Self: 'a;
    type TxToken<'a>
        = TxToken<'a>
    where
        Self: 'a;

    fn receive(&mut self, cx: &mut Context) -> Option<(RxToken, TxToken<'_>)> {
        let mut inner = self.link.inner.borrow_mut();
        let i = index(self.side);
        match inner.queues[i].pop_front() {
            Some(packet) => Some((
                RxToken(packet),
                TxToken {
                    link: self.link,
                    towards: self.other(),
                },
            )),
            None => {
                inner.wakers[i] = Some(cx.waker().clone());
                None
            }
        }
    }

    fn transmit(&mut self, _cx: &mut Context) -> Option<TxToken<'_>> {
        Some(TxToken {
            link: self.link,
            towards: self.other(),
        })
    }

    fn link_state(&mut self, _cx: &mut Context) -> LinkState {
        LinkState::Up
    }

    fn capabilities(&self) -> Capabilities {
        let mut caps = Capabilities::default();
        caps.max_transmission_unit = MTU;
        caps
    }

    fn hardware_address(&self) -> HardwareAddress {
        HardwareAddress::Ip
    }
}

/// Wakes the thread that drives a run.
struct Unpark {
    woken: AtomicBool,
    thread: Thread,
}

impl Wake for Unpark {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.woken.store(true, Ordering::SeqCst);
        self.thread.unpark();
    }
}

/// Poll `tasks` on this thread until `done()` holds; panics after `limit` of wall time (also
/// when a task keeps waking itself and the thread never sleeps).
fn drive(
    tasks: &mut [Pin<&mut dyn Future<Output = ()>>],
    done: impl Fn() -> bool,
    limit: Duration,
) {
    let unpark = Arc::new(Unpark {
        woken: AtomicBool::new(true),
        thread: std::thread::current(),
    });
    let waker = Waker::from(unpark.clone());
    let mut cx = Context::from_waker(&waker);
    let mut finished = vec![false; tasks.len()];
    let started = Instant::now();
    loop {
        if unpark.woken.swap(false, Ordering::SeqCst) {
            let unfinished = tasks.iter_mut().zip(&mut finished).filter(|(_, f)| !**f);
            for (task, finished) in unfinished {
                *finished = task.as_mut().poll(&mut cx).is_ready();
            }
            if done() {
                return;
            }
        }
        let left = limit
            .checked_sub(started.elapsed())
            .unwrap_or_else(|| panic!("the run did not end within {limit:?} of wall time"));
        if !unpark.woken.load(Ordering::SeqCst) {
            std::thread::park_timeout(left.min(Duration::from_millis(50)));
            // Woken, a spurious wake-up or the timeout: look again.
            unpark.woken.store(true, Ordering::SeqCst);
        }
    }
}

/// What the run does.
#[derive(Debug, Clone, Copy)]
pub struct Scenario {
    /// The hostile peers (connecting once each at the start, and again a second after they
    /// are cut off); `ForgedSyns(rate)` sends its first SYN at once.
    pub attack: Attack,
    /// How long one of the attack's seconds lasts here.
    pub second: Duration,
    /// The async server's limits.
    pub timeouts: Timeouts,
    /// The file's length.
    pub file_len: usize,
    /// When the attackers start.
    pub attack_from: Duration,
    /// Whether the legitimate client takes part; without it the run ends with the server's
    /// first connection, or at `client_until`.
    pub client: bool,
    /// When the legitimate client makes its first attempt; it retries every 20 ms while
    /// refused, until `client_until` (then its result is `Refused`).
    pub client_from: Duration,
    pub client_until: Duration,
    /// Which segments the link loses.
    pub fault: Fault,
    /// The legitimate client resets the connection at the end of the file instead of replying.
    pub client_resets_at_eof: bool,
    /// The wall-clock bound on the whole run.
    pub limit: Duration,
}

impl Scenario {
    /// One legitimate client and no attacker, on a clean link.
    pub fn new(timeouts: Timeouts) -> Scenario {
        Scenario {
            attack: Attack::None,
            second: Duration::from_millis(100),
            timeouts,
            file_len: super::FILE_LEN,
            attack_from: Duration::ZERO,
            client: true,
            client_from: Duration::ZERO,
            client_until: Duration::from_secs(10),
            fault: Fault::None,
            client_resets_at_eof: false,
            limit: Duration::from_secs(20),
        }
    }
}

/// One connection the server accepted (or failed to accept), from which port of the client
/// host, and how it ended.
#[derive(Debug, Clone)]
pub struct Served {
    pub remote_port: Option<u16>,
    pub result: Result<ServeReport, Error>,
    /// When `accept` returned and when `serve` did, since the run started.
    pub accepted: Duration,
    pub ended: Duration,
}

/// What a run gave.
#[derive(Debug)]
pub struct Run {
    /// Every connection the server took, in order (accept errors too).
    pub served: Vec<Served>,
    /// The legitimate client's result, and its attempts (the refused ones included).
    pub client: Option<Result<FetchReport, Error>>,
    pub attempts: u32,
    /// When the legitimate client got in and when it was done, since the run started.
    pub client_connected: Option<Duration>,
    pub client_done: Option<Duration>,
    /// The legitimate client's local port.
    pub client_port: Option<u16>,
    /// What it received.
    pub received: Vec<u8>,
    /// Every segment on the link.
    pub trace: Vec<Traced>,
    /// How many times the server's `accept` slept on its clock.
    pub accept_sleeps: u32,
}

impl Run {
    /// The server's results for attackers' connections (anyone but the legitimate client).
    pub fn attackers(&self) -> impl Iterator<Item = &Served> {
        self.served
            .iter()
            .filter(|s| s.remote_port.is_none() || s.remote_port != self.client_port)
    }

    /// The server's result for the legitimate client's connection.
    pub fn legit(&self) -> Option<&Served> {
        self.served
            .iter()
            .find(|s| s.remote_port.is_some() && s.remote_port == self.client_port)
    }
}

/// The file every run serves.
pub fn file(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 7 + 3) as u8).collect()
}

fn embassy_duration(d: Duration) -> embassy_time::Duration {
    embassy_time::Duration::from_micros(d.as_micros() as u64)
}

/// Run `scenario` until the legitimate client is done and the server has finished with its
/// connection (or the wall-clock limit panics).
pub fn run(scenario: Scenario) -> Run {
    let link = Link::new(scenario.fault);
    let file = file(scenario.file_len);
    let timeouts = scenario.timeouts;

    let mut server_resources = StackResources::<2>::new();
    let mut client_resources = StackResources::<8>::new();
    let config = |address| {
        Config::ipv4_static(StaticConfigV4 {
            address: Ipv4Cidr::new(address, 24),
            gateway: None,
            dns_servers: Default::default(),
        })
    };
    let (server_stack, mut server_runner) = embassy_net::new(
        link.port(Side::Server),
        config(SERVER),
        &mut server_resources,
        1,
    );
    let (client_stack, mut client_runner) = embassy_net::new(
        link.port(Side::Client),
        config(CLIENT),
        &mut client_resources,
        2,
    );

    let served = RefCell::new(Vec::<Served>::new());
    let client_result = RefCell::new(None);
    let client_connected = Cell::new(None);
    let client_done = Cell::new(None);
    let attempts = Cell::new(0u32);
    let accept_sleeps = Cell::new(0u32);
    let received = RefCell::new(Vec::new());
    let started = link.started;

    let server_runner = pin!(async {
        server_runner.run().await;
    });
    let client_runner = pin!(async {
        client_runner.run().await;
    });
    let server = pin!(async {
        let (mut rx, mut tx) = ([0u8; 8192], [0u8; 8192]);
        let mut socket = TcpSocket::new(server_stack, &mut rx, &mut tx);
        let clock = EmbassyClock;
        let counting = Counting {
            clock,
            sleeps: &accept_sleeps,
        };
        loop {
            let accepted = accept(&mut socket, PORT, &counting, timeouts).await;
            let at = started.elapsed();
            let remote_port = socket.remote_endpoint().map(|e| e.port);
            let result = match accepted {
                Ok(()) => serve(&mut socket, &file[..], &clock, timeouts).await,
                Err(e) => Err(e),
            };
            if result.is_err() {
                // The RST leaves at the stack's next poll.
                socket.abort();
                let _ = socket.flush().await;
            }
            served.borrow_mut().push(Served {
                remote_port,
                result,
                accepted: at,
                ended: started.elapsed(),
            });
        }
    });
    let legit = pin!(async {
        // 64 KiB offered: `client_socket` uses the largest unscaled buffer, 65535 bytes, which
        // `connect` accepts.
        let (mut rx, mut tx) = (vec![0u8; 65536], [0u8; 1024]);
        let mut socket = client_socket(client_stack, &mut rx, &mut tx);
        let clock = EmbassyClock;
        if !scenario.client {
            return;
        }
        embassy_time::Timer::after(embassy_duration(scenario.client_from)).await;
        loop {
            attempts.set(attempts.get() + 1);
            socket.abort();
            let _ = socket.flush().await;
            match connect(&mut socket, (SERVER, PORT), &clock, timeouts).await {
                Ok(()) => break,
                Err(Error::Refused) if started.elapsed() < scenario.client_until => {
                    embassy_time::Timer::after_millis(20).await
                }
                Err(e) => {
                    *client_result.borrow_mut() = Some(Err(e));
                    client_done.set(Some(started.elapsed()));
                    return;
                }
            }
        }
        client_connected.set(Some(started.elapsed()));
        let mut got = Vec::new();
        link.legit_port.set(socket.local_endpoint().map(|e| e.port));
        let result = if scenario.client_resets_at_eof {
            read_to_end_then_reset(&mut socket, &mut got).await
        } else {
            fetch(
                &mut socket,
                halfclose::io::FromStd(&mut got),
                &clock,
                timeouts,
            )
            .await
        };
        *received.borrow_mut() = got;
        *client_result.borrow_mut() = Some(result);
        client_done.set(Some(started.elapsed()));
    });
    let attackers = pin!(async {
        embassy_time::Timer::after(embassy_duration(scenario.attack_from)).await;
        attack(&link, client_stack, scenario.attack, scenario.second).await
    });

    let mut tasks: [Pin<&mut dyn Future<Output = ()>>; 5] =
        [server_runner, client_runner, server, legit, attackers];
    drive(
        &mut tasks,
        || {
            if !scenario.client {
                return !served.borrow().is_empty() || started.elapsed() >= scenario.client_until;
            }
            let port = link.legit_port.get();
            // Done, and if it got in, the server is done with its connection too.
            client_done.get().is_some()
                && (port.is_none()
                    || served
                        .borrow()
                        .iter()
                        .any(|s| s.remote_port.is_some() && s.remote_port == port))
        },
        scenario.limit,
    );
    Run {
        served: served.take(),
        client: client_result.take(),
        attempts: attempts.get(),
        client_connected: client_connected.get(),
        client_done: client_done.get(),
        client_port: link.legit_port.get(),
        received: received.take(),
        trace: link.trace(),
        accept_sleeps: accept_sleeps.get(),
    }
}

/// A clock that counts its sleeps.
struct Counting<'a, C> {
    clock: C,
    sleeps: &'a Cell<u32>,
}

impl<C: Clock> Clock for Counting<'_, C> {
    fn now(&self) -> smoltcp::time::Instant {
        self.clock.now()
    }

    fn sleep_until(&self, deadline: smoltcp::time::Instant) -> impl Future<Output = ()> {
        self.sleeps.set(self.sleeps.get() + 1);
        self.clock.sleep_until(deadline)
    }
}

/// Read the whole file, then reset the connection instead of replying.
async fn read_to_end_then_reset(
    socket: &mut TcpSocket<'_>,
    received: &mut Vec<u8>,
) -> Result<FetchReport, Error> {
    let mut buf = [0u8; 1024];
    loop {
        match socket.read(&mut buf).await {
            Ok(0) => break,
            Ok(n) => received.extend_from_slice(&buf[..n]),
            Err(_) => break,
        }
    }
    socket.abort();
    let _ = socket.flush().await;
    Err(Error::Reset {
        phase: halfclose::Phase::Reply,
        bytes: received.len() as u64,
    })
}

/// The hostile peers of `attack` on the client host, each on a socket of its own, for ever
/// (the run ends when the legitimate client is done).
async fn attack(link: &Link, stack: embassy_net::Stack<'_>, attack: Attack, second: Duration) {
    let scaled = |seconds: u64| embassy_duration(second * seconds as u32);
    match attack {
        Attack::None => {}
        Attack::ForgedSyns(rate) => {
            let gap = embassy_duration(second / rate.max(1));
            for n in 0u16.. {
                link.forge_syn(
                    (Ipv4Address::new(10, 0, 0, 200), 1024 + n),
                    1000 * u32::from(n),
                );
                embassy_time::Timer::after(gap).await;
            }
        }
        Attack::NeverRead => {
            peers(stack, 4, scaled(1), async |socket: &mut TcpSocket<'_>| {
                until_cut_off(socket).await
            })
            .await
        }
        Attack::SlowReaders { clients, every } => {
            peers(
                stack,
                clients,
                scaled(1),
                async |socket: &mut TcpSocket<'_>| {
                    let mut byte = [0u8; 1];
                    while let Ok(1) = socket.read(&mut byte).await {
                        embassy_time::Timer::after(scaled(every)).await;
                    }
                },
            )
            .await
        }
        Attack::TrickledReply { clients, wrong } => {
            peers(
                stack,
                clients,
                scaled(1),
                async |socket: &mut TcpSocket<'_>| {
                    let mut buf = [0u8; 1024];
                    while let Ok(1..) = socket.read(&mut buf).await {}
                    let reply: &[u8] = if wrong { b"Xhank you\0" } else { &REPLY[..] };
                    if trickle(socket, reply, scaled(100)).await.is_err() {
                        return;
                    }
                    socket.close();
                    let _ = socket.flush().await;
                },
            )
            .await
        }
    }
}

/// Write `bytes` one at a time, `gap` apart.
async fn trickle(
    socket: &mut TcpSocket<'_>,
    bytes: &[u8],
    gap: embassy_time::Duration,
) -> Result<(), embassy_net::tcp::Error> {
    for byte in bytes.chunks(1) {
        socket.write(byte).await?;
        embassy_time::Timer::after(gap).await;
    }
    Ok(())
}

/// `count` attackers on `stack`, each connecting to the server, doing `behaviour` until it
/// returns (it is cut off, or done), and connecting again `again` later.
async fn peers(
    stack: embassy_net::Stack<'_>,
    count: usize,
    again: embassy_time::Duration,
    behaviour: impl AsyncFn(&mut TcpSocket<'_>),
) {
    let behaviour = &behaviour;
    let mut each: Vec<Pin<Box<dyn Future<Output = ()> + '_>>> = (0..count)
        .map(|_| Box::pin(attacker(stack, again, behaviour)) as Pin<Box<dyn Future<Output = ()>>>)
        .collect();
    core::future::poll_fn(|cx| {
        for peer in &mut each {
            let _ = peer.as_mut().poll(cx);
        }
        Poll::<()>::Pending
    })
    .await
}

/// One attacker: connect, do `behaviour` until it returns, connect again `again` later.
async fn attacker(
    stack: embassy_net::Stack<'_>,
    again: embassy_time::Duration,
    behaviour: &impl AsyncFn(&mut TcpSocket<'_>),
) {
    // A small receive buffer: a reader that does not read closes its window soon.
    let (mut rx, mut tx) = ([0u8; 1024], [0u8; 1024]);
    let mut socket = TcpSocket::new(stack, &mut rx, &mut tx);
    loop {
        if socket.connect((SERVER, PORT)).await.is_ok() {
            behaviour(&mut socket).await;
        }
        socket.abort();
        let _ = socket.flush().await;
        embassy_time::Timer::after(again).await;
    }
}

/// Wait until the server has cut the connection off.
async fn until_cut_off(socket: &TcpSocket<'_>) {
    while socket.state() != embassy_net::tcp::State::Closed {
        embassy_time::Timer::after_millis(5).await;
    }
}

/// A client alone on the link (nobody answers): `asynch::embassy::connect` on a socket with
/// `rx` bytes of receive buffer, made by `TcpSocket::new` (so not clamped), bounded by
/// `timeouts.connect`. Returns its result and what went on the wire.
pub fn connect_alone(rx: usize, timeouts: Timeouts) -> (Result<(), Error>, Vec<Traced>) {
    let link = Link::new(Fault::None);
    let mut resources = StackResources::<1>::new();
    let config = Config::ipv4_static(StaticConfigV4 {
        address: Ipv4Cidr::new(CLIENT, 24),
        gateway: None,
        dns_servers: Default::default(),
    });
    let (stack, mut runner) = embassy_net::new(link.port(Side::Client), config, &mut resources, 3);
    let result = RefCell::new(None);
    let runner = pin!(async {
        runner.run().await;
    });
    let client = pin!(async {
        let (mut rx, mut tx) = (vec![0u8; rx], [0u8; 1024]);
        let mut socket = TcpSocket::new(stack, &mut rx, &mut tx);
        let r = connect(&mut socket, (SERVER, PORT), &EmbassyClock, timeouts).await;
        *result.borrow_mut() = Some(r);
    });
    let mut tasks: [Pin<&mut dyn Future<Output = ()>>; 2] = [runner, client];
    drive(
        &mut tasks,
        || result.borrow().is_some(),
        Duration::from_secs(20),
    );
    (result.take().unwrap(), link.trace())
}
