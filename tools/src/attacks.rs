//! Hostile peers against a pool of four on the simulated wire, while one legitimate client
//! tries to fetch a file every second. Shared by `tools/tests/attacks.rs` (which asserts the targets)
//! and the `attacks` program (which prints the README's table).

pub mod embassy;
pub mod tokio;

use std::task::Poll;
use std::vec::Vec;

use halfclose::backlog::Backlog;
use halfclose::sim::{self, Link, Network, Side, Wire};
use halfclose::{Error, REPLY, Timeouts, client, server};
use smoltcp::iface::{SocketHandle, SocketSet};
use smoltcp::socket::tcp;
use smoltcp::time::{Duration, Instant};
use smoltcp::wire::{IpAddress, IpEndpoint, Ipv4Address};

pub type SimWire = Wire<1500, 64>;
type Net<'a> = Network<'a, 'static, 1500, 64>;

pub const POOL: usize = 4;
pub const PORT: u16 = halfclose::DEFAULT_PORT;
/// The legitimate client's file.
pub const FILE_LEN: usize = 4096;
/// The legitimate client's local ports are `LEGIT_PORTS..LEGIT_PORTS + 10_000`.
const LEGIT_PORTS: u16 = 40_000;
/// The attackers' connections come from `ATTACK_PORTS + 1000 * attacker + n`.
const ATTACK_PORTS: u16 = 20_000;

/// What the hostile peers do.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Attack {
    /// Nobody: the legitimate client alone.
    None,
    /// SYNs from forged addresses and ports, never completed, at this many per second (random
    /// arrivals, uniform gaps averaging 1/rate).
    ForgedSyns(u32),
    /// Four clients that connect and never read; each connects again 1 s after it is cut off.
    NeverRead,
    /// Clients that read one byte every `every` seconds; each connects again 1 s after it is
    /// cut off.
    SlowReaders {
        /// How many.
        clients: usize,
        /// Seconds between two bytes read.
        every: u64,
    },
    /// Clients that read the file, then send a reply one byte every 100 s; each connects again
    /// 1 s after it is cut off.
    TrickledReply {
        /// How many.
        clients: usize,
        /// `"Xhank you\0"`, wrong from its first byte, instead of `"Thank you\0"`.
        wrong: bool,
    },
}

impl Attack {
    /// How the attack reads in a table.
    pub fn describe(&self) -> String {
        match self {
            Attack::None => "none".into(),
            Attack::ForgedSyns(r) => format!("forged SYNs, {r}/s"),
            Attack::NeverRead => "4 clients that connect and never read".into(),
            Attack::SlowReaders { clients, every } => format!(
                "{clients} {} of 1 byte per {every} s",
                if *clients == 1 { "reader" } else { "readers" }
            ),
            Attack::TrickledReply { clients, wrong } => format!(
                "{clients} {} trickling {} reply, 1 byte per 100 s",
                if *clients == 1 { "client" } else { "clients" },
                if *wrong { "a wrong" } else { "the right" }
            ),
        }
    }

    fn attackers(&self) -> usize {
        match self {
            Attack::None | Attack::ForgedSyns(_) => 0,
            Attack::SlowReaders { clients, .. } | Attack::TrickledReply { clients, .. } => *clients,
            Attack::NeverRead => 4,
        }
    }
}

/// The server's configuration: today's defences, or none of them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Defences {
    /// `Timeouts::DEFAULT` and a pool that keeps one socket listening.
    On,
    /// The configuration before the defences: a 30 s handshake limit, no rate floor, no
    /// linger, no reclaim. (Failing a wrong reply at its first byte and bounding the reply phase
    /// as a whole cannot be turned off.)
    Off,
    /// The defences, and a listen backlog of [`BACKLOG`] SYNs in front of the server host
    /// (`halfclose::backlog`): a SYN that finds no socket listening waits for one.
    Backlog,
}

/// The backlog's length with [`Defences::Backlog`].
pub const BACKLOG: usize = 64;

impl Defences {
    pub fn timeouts(self) -> Timeouts {
        match self {
            Defences::On | Defences::Backlog => Timeouts::DEFAULT,
            Defences::Off => Timeouts {
                handshake: Duration::from_secs(30),
                min_rate: 0,
                linger: Duration::ZERO,
                ..Timeouts::DEFAULT
            },
        }
    }
}

/// What happened in one run.
#[derive(Debug, Clone, Default)]
pub struct Outcome {
    /// Attempts the legitimate client started (one a second, when the previous one was over).
    pub attempts: u32,
    /// Attempts that ended with the whole file and the reply acknowledged.
    pub served: u32,
    /// How the failed attempts failed, e.g. `refused`.
    pub failures: Vec<String>,
    /// How long each attacker connection held a server slot (those still holding one at the
    /// end count until then).
    pub attacker_holds: Vec<Duration>,
    /// The server's errors (the legitimate client's connections included).
    pub server_errors: Vec<Error>,
    /// How long each served attempt took to connect (from its SYN to the handshake's end).
    pub connects: Vec<Duration>,
}

impl Outcome {
    /// Served attempts in percent.
    pub fn served_percent(&self) -> f64 {
        100.0 * f64::from(self.served) / f64::from(self.attempts.max(1))
    }

    pub fn longest_hold(&self) -> Duration {
        self.attacker_holds
            .iter()
            .copied()
            .max()
            .unwrap_or(Duration::ZERO)
    }

    /// The served attempts' connect times: median and longest.
    pub fn connect_times(&self) -> Option<(Duration, Duration)> {
        let mut times = self.connects.clone();
        times.sort();
        Some((*times.get(times.len() / 2)?, *times.last()?))
    }

    pub fn mean_hold(&self) -> Duration {
        if self.attacker_holds.is_empty() {
            return Duration::ZERO;
        }
        let total: u64 = self.attacker_holds.iter().map(|d| d.total_micros()).sum();
        Duration::from_micros(total / self.attacker_holds.len() as u64)
    }
}

/// An error's kind in a word or two, for the tables of `attacks` and `soak`.
pub fn kind(e: &Error) -> String {
    match e {
        Error::Listen(_) => "listen".into(),
        Error::Connect(_) => "connect".into(),
        Error::ReceiveBufferTooLarge { .. } => "receive buffer too large".into(),
        Error::Refused => "refused".into(),
        Error::Reset { phase, .. } => format!("reset/{phase}"),
        Error::TimedOut { phase, .. } => format!("timeout/{phase}"),
        Error::Source { .. } => "source".into(),
        Error::Sink { .. } => "sink".into(),
        Error::WrongReply { .. } => "wrong reply".into(),
        Error::ReplyTooLong { .. } => "reply too long".into(),
        // `Error` is non-exhaustive: a later release may add kinds.
        other => format!("{other}"),
    }
}

/// One raw attacker socket on the client host.
struct Attacker {
    handle: SocketHandle,
    /// When it connects (again), if it is waiting to.
    connect_at: Option<Instant>,
    /// Connections made so far (for its local port).
    connections: u16,
    /// When it next reads a byte or sends a reply byte, once it has started to.
    next_at: Option<Instant>,
    /// File bytes read, reply bytes sent in this connection.
    read: usize,
    replied: usize,
}

fn socket(sockets: &mut SocketSet<'static>, rx: usize, tx: usize) -> SocketHandle {
    sockets.add(tcp::Socket::new(
        tcp::SocketBuffer::new(vec![0; rx]),
        tcp::SocketBuffer::new(vec![0; tx]),
    ))
}

/// A slot's current occupant, for hold times.
#[derive(Clone, Copy)]
struct Hold {
    since: Instant,
    legit: bool,
}

/// Run `attack` against a pool of [`POOL`] for `duration` of simulated time, on a clean wire
/// with `latency` each way.
pub fn run(
    attack: Attack,
    defences: Defences,
    seed: u64,
    duration: Duration,
    latency: Duration,
) -> Outcome {
    let mut link = Link::clean(1500);
    link.latency = latency;
    link.queue = 64;
    let mut wire = Box::new(SimWire::new(seed, link, link));
    let mut net: Net<'_> = Network::new(&mut wire, SocketSet::new(vec![]), SocketSet::new(vec![]));
    let server_addr = Net::address(Side::Server, false);
    let file = common_file();
    let handles: [SocketHandle; POOL] =
        core::array::from_fn(|_| socket(&mut net.server_sockets, 8192, 8192));
    let timeouts = defences.timeouts();
    let mut server =
        server::Server::listen(&mut net.server_sockets, handles, PORT, &file[..], timeouts)
            .expect("listen");
    server.set_reclaim(defences != Defences::Off);
    let mut backlog = (defences == Defences::Backlog).then(|| Backlog::<BACKLOG>::new(PORT));

    let legit = socket(&mut net.client_sockets, 8192, 1024);
    let mut attackers: Vec<Attacker> = (0..attack.attackers())
        .map(|_| Attacker {
            // A small receive buffer: a reader that does not read closes its window soon.
            handle: socket(&mut net.client_sockets, 1024, 1024),
            connect_at: Some(Instant::ZERO),
            connections: 0,
            next_at: None,
            read: 0,
            replied: 0,
        })
        .collect();

    let end = Instant::ZERO + duration;
    let mut out = Outcome::default();
    let mut client: Option<client::Client<Vec<u8>>> = None;
    let mut next_attempt = Instant::ZERO;
    let mut next_syn = Instant::ZERO;
    let mut holds: [Option<Hold>; POOL] = [None; POOL];

    while net.now() < end {
        let now = net.now();
        // Forged SYNs due now.
        if let Attack::ForgedSyns(rate) = attack
            && rate > 0
        {
            while next_syn <= now {
                next_syn += forge_syn(net.wire, server_addr, rate);
            }
        }
        match &mut backlog {
            Some(backlog) => net.poll_behind(backlog),
            None => net.poll(),
        }
        let now = net.now();

        for result in server.poll(now, &mut net.server_sockets) {
            // The legitimate client's successes are counted at the client.
            if let Err(e) = result {
                out.server_errors.push(e);
            }
        }
        if let Some(backlog) = &mut backlog {
            server.admit(backlog, &mut net.server_sockets);
        }
        for (i, state) in server.states().enumerate() {
            match (state.is_some(), holds[i]) {
                (true, None) => {
                    let remote = net
                        .server_sockets
                        .get::<tcp::Socket>(handles[i])
                        .remote_endpoint();
                    holds[i] = Some(Hold {
                        since: now,
                        legit: is_legit(remote),
                    });
                }
                (false, Some(hold)) => {
                    out.attacker_holds
                        .extend((!hold.legit).then(|| now - hold.since));
                    holds[i] = None;
                }
                _ => {}
            }
        }

        // The legitimate client: one attempt a second, if the last one is over.
        if let Some(c) = &mut client
            && let Poll::Ready(result) = c.poll(now, &mut net.client_sockets)
        {
            match result {
                Ok(report) => {
                    out.served += 1;
                    out.connects.push(report.connected_at - report.started_at);
                }
                Err(e) => out.failures.push(kind(&e)),
            }
            client = None;
        }
        if client.is_none() && now >= next_attempt {
            let socket = net.client_sockets.get_mut::<tcp::Socket>(legit);
            socket.abort();
            let port = LEGIT_PORTS + (out.attempts % 10_000) as u16;
            out.attempts += 1;
            match client::Client::connect(
                net.client.context(),
                &mut net.client_sockets,
                legit,
                client::Connect::to((server_addr, PORT)).from_port(port),
                Vec::with_capacity(FILE_LEN),
                now,
            ) {
                Ok(c) => client = Some(c),
                Err(e) => out.failures.push(kind(&e)),
            }
        }
        while next_attempt <= now {
            next_attempt += Duration::from_secs(1);
        }

        for (n, a) in attackers.iter_mut().enumerate() {
            step_attacker(&mut net, a, n, attack, now, server_addr);
        }

        let deadlines = [
            server.poll_at(),
            client.as_ref().and_then(|c| c.deadline()),
            Some(next_attempt),
            matches!(attack, Attack::ForgedSyns(r) if r > 0).then_some(next_syn),
            Some(end),
        ];
        let attacker_times: Vec<Option<Instant>> = attackers
            .iter()
            .map(|a| a.connect_at.or(a.next_at))
            .collect();
        let (waiting, held) = backlog
            .as_ref()
            .map_or((0, None), |b| (b.releasable(), b.poll_at()));
        let deadlines = deadlines.into_iter().chain([held]).chain(attacker_times);
        net.advance_with(waiting, deadlines);
    }
    let now = net.now();
    for hold in holds.into_iter().flatten() {
        if !hold.legit {
            out.attacker_holds.push(now - hold.since);
        }
    }
    out
}

fn is_legit(remote: Option<IpEndpoint>) -> bool {
    matches!(remote, Some(r) if r.addr == Net::address(Side::Client, false)
        && (LEGIT_PORTS..LEGIT_PORTS + 10_000).contains(&r.port))
}

fn common_file() -> Vec<u8> {
    (0..FILE_LEN).map(|i| (i * 7 + 3) as u8).collect()
}

/// One attacker's move at `now`.
fn step_attacker(
    net: &mut Net<'_>,
    a: &mut Attacker,
    n: usize,
    attack: Attack,
    now: Instant,
    server_addr: IpAddress,
) {
    if let Some(at) = a.connect_at {
        if now < at {
            return;
        }
        let port = ATTACK_PORTS + 1000 * n as u16 + a.connections % 1000;
        a.connections += 1;
        let cx = net.client.context();
        let socket = net.client_sockets.get_mut::<tcp::Socket>(a.handle);
        socket.abort();
        if socket.connect(cx, (server_addr, PORT), port).is_ok() {
            a.connect_at = None;
            a.next_at = None;
            a.read = 0;
            a.replied = 0;
        } else {
            a.connect_at = Some(now + Duration::from_secs(1));
        }
        return;
    }
    let socket = net.client_sockets.get_mut::<tcp::Socket>(a.handle);
    // Cut off (reset, or timed out and aborted by the server): connect again in a second.
    if !socket.is_open() || socket.state() == tcp::State::TimeWait {
        a.connect_at = Some(now + Duration::from_secs(1));
        return;
    }
    match attack {
        Attack::None | Attack::ForgedSyns(_) | Attack::NeverRead => {}
        Attack::SlowReaders { every, .. } => {
            if a.next_at.is_none_or(|t| now >= t) {
                let mut byte = [0u8; 1];
                if let Ok(1) = socket.recv_slice(&mut byte) {
                    a.read += 1;
                }
                a.next_at = Some(now + Duration::from_secs(every));
            }
        }
        Attack::TrickledReply { wrong, .. } => {
            // Read the whole file at once, then reply one byte every 100 s.
            while let Ok(k) = socket.recv(|b| (b.len(), b.len())) {
                if k == 0 {
                    break;
                }
                a.read += k;
            }
            let reply: &[u8] = if wrong { b"Xhank you\0" } else { &REPLY[..] };
            if a.read >= FILE_LEN && a.replied < reply.len() && a.next_at.is_none_or(|t| now >= t) {
                if socket.send_slice(&reply[a.replied..a.replied + 1]) == Ok(1) {
                    a.replied += 1;
                }
                if a.replied == reply.len() {
                    socket.close();
                    a.next_at = None;
                } else {
                    a.next_at = Some(now + Duration::from_secs(100));
                }
            }
        }
    }
}

/// How one transfer to a pool of `N` ended, at the server and at the client.
#[derive(Debug)]
pub struct Single {
    pub server: Option<Result<server::Report, Error>>,
    pub client: Option<Result<client::Report, Error>>,
}

/// One client fetches [`FILE_LEN`] bytes from a pool of `N` with `timeouts` over `link` (both
/// ways). With `lose_last_ack`, the wire is cut for 300 ms the moment the server is done, so its
/// ACK of the client's FIN is lost and only a lingering slot can answer the retransmitted FIN.
pub fn single<const N: usize>(
    timeouts: Timeouts,
    link: Link,
    seed: u64,
    lose_last_ack: bool,
) -> Single {
    let mut wire = Box::new(SimWire::new(seed, link, link));
    let mut net: Net<'_> = Network::new(&mut wire, SocketSet::new(vec![]), SocketSet::new(vec![]));
    let server_addr = Net::address(Side::Server, false);
    let file = common_file();
    let handles: [SocketHandle; N] =
        core::array::from_fn(|_| socket(&mut net.server_sockets, 8192, 8192));
    let mut server =
        server::Server::listen(&mut net.server_sockets, handles, PORT, &file[..], timeouts)
            .expect("listen");
    let c = socket(&mut net.client_sockets, 8192, 1024);
    let now = net.now();
    let mut client = client::Client::connect(
        net.client.context(),
        &mut net.client_sockets,
        c,
        client::Connect::to((server_addr, PORT))
            .from_port(LEGIT_PORTS)
            .timeouts(timeouts),
        Vec::new(),
        now,
    )
    .expect("connect");
    let mut out = Single {
        server: None,
        client: None,
    };
    let end = Instant::from_secs(3600);
    let mut restore = None;
    while net.now() < end && (out.server.is_none() || out.client.is_none()) {
        if restore.is_some_and(|t| net.now() >= t) {
            net.wire.cut(false);
            restore = None;
        }
        net.poll();
        let now = net.now();
        if let Some(r) = server.poll(now, &mut net.server_sockets).into_iter().next()
            && out.server.is_none()
        {
            if lose_last_ack && r.is_ok() {
                net.wire.cut(true);
                restore = Some(now + Duration::from_millis(300));
            }
            out.server = Some(r);
        }
        if out.client.is_none()
            && let Poll::Ready(r) = client.poll(now, &mut net.client_sockets)
        {
            out.client = Some(r);
        }
        net.advance([server.poll_at(), client.deadline(), restore, Some(end)]);
    }
    out
}

/// A pool of two: client A is served and its slot lingers; a hog connects and never reads (the
/// other slot); then client B connects. Returns A's and B's results. With `reclaim`, the
/// lingering slot gives way to B as soon as the hog leaves the pool without a listener.
pub fn linger_then_busy(reclaim: bool) -> [Option<Result<client::Report, Error>>; 2] {
    let mut wire = Box::new(SimWire::new(7, Link::clean(1500), Link::clean(1500)));
    let mut net: Net<'_> = Network::new(&mut wire, SocketSet::new(vec![]), SocketSet::new(vec![]));
    let server_addr = Net::address(Side::Server, false);
    let file = common_file();
    let handles: [SocketHandle; 2] =
        core::array::from_fn(|_| socket(&mut net.server_sockets, 8192, 8192));
    let mut server = server::Server::listen(
        &mut net.server_sockets,
        handles,
        PORT,
        &file[..],
        Timeouts::DEFAULT,
    )
    .expect("listen");
    server.set_reclaim(reclaim);
    let [a, b] = [(); 2].map(|_| socket(&mut net.client_sockets, 8192, 1024));
    let hog = socket(&mut net.client_sockets, 1024, 1024);
    let mut clients: [Option<client::Client<Vec<u8>>>; 2] = [None, None];
    let mut results: [Option<Result<client::Report, Error>>; 2] = [None, None];
    let end = Instant::from_secs(60);
    while net.now() < end && results[1].is_none() {
        net.poll();
        let now = net.now();
        let _ = server.poll(now, &mut net.server_sockets);
        let hog_established = net.client_sockets.get::<tcp::Socket>(hog).may_send();
        // A first; the hog once A is done (below); B once the hog holds its slot.
        let start = [
            clients[0].is_none() && results[0].is_none(),
            clients[1].is_none() && hog_established && results[1].is_none(),
        ];
        for (i, socket) in [a, b].into_iter().enumerate() {
            if start[i] {
                clients[i] = client::Client::connect(
                    net.client.context(),
                    &mut net.client_sockets,
                    socket,
                    client::Connect::to((server_addr, PORT)).from_port(LEGIT_PORTS + i as u16),
                    Vec::new(),
                    now,
                )
                .ok();
            }
            if let Some(c) = &mut clients[i]
                && results[i].is_none()
                && let Poll::Ready(r) = c.poll(now, &mut net.client_sockets)
            {
                results[i] = Some(r);
            }
        }
        let hog_socket = net.client_sockets.get_mut::<tcp::Socket>(hog);
        if results[0].is_some() && hog_socket.state() == tcp::State::Closed {
            let cx = net.client.context();
            let _ = net.client_sockets.get_mut::<tcp::Socket>(hog).connect(
                cx,
                (server_addr, PORT),
                ATTACK_PORTS,
            );
        }
        let deadlines = clients
            .iter()
            .map(|c| c.as_ref().and_then(|c| c.deadline()));
        net.advance(deadlines.chain([server.poll_at(), Some(end)]));
    }
    results
}

/// One forged SYN from a random address and port to the server, on the wire now; returns the
/// gap to the next one (random, `rate` a second on average).
fn forge_syn<const MTU: usize, const CAP: usize>(
    wire: &mut Wire<MTU, CAP>,
    server_addr: IpAddress,
    rate: u32,
) -> Duration {
    let rng = wire.rng();
    let src = Ipv4Address::new(10, 0, 0, 3 + rng.below(250) as u8);
    let port = 1024 + rng.below(60_000) as u16;
    let seq = rng.next_u64() as u32;
    let gap = rng.below(2_000_000 / u64::from(rate)).max(1);
    let IpAddress::Ipv4(dst) = server_addr else {
        unreachable!("the sim's server address is IPv4")
    };
    wire.inject(Side::Client, sim::FORGED_SYN_LEN, |buf| {
        sim::forged_syn(buf, (src, port), (dst, PORT), seq);
    });
    Duration::from_micros(gap)
}
