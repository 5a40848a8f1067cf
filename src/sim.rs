//! Two hosts joined by a virtual wire with faults, on a simulated clock.
//!
//! A [`Wire`] carries IP packets between a server host and a client host, each direction with its
//! own [`Link`] settings: latency, loss, duplication, reordering, single-bit corruption, MTU and
//! queue capacity. Every random choice comes from one seeded [`Rng`], so a run is reproduced
//! exactly by its seed. [`Network`] puts a smoltcp `Interface` on each end and moves the clock
//! straight to the next event (a packet's arrival, a smoltcp timer, the protocol's own
//! deadline), so a transfer that takes a simulated minute takes milliseconds.
//!
//! Corruption flips a single bit of a packet. The Internet checksum (IPv4 header, TCP over its
//! pseudo-header) detects every single-bit error, so a corrupted packet is dropped by the
//! receiver and retransmitted, never delivered as wrong data; the tests check that it is so.
//!
//! Everything here is `no_std` and allocation-free: packets live in `CAP` fixed slots of `MTU`
//! bytes per direction.

use smoltcp::iface::{Config, Interface, SocketSet};
use smoltcp::phy::{self, Device, DeviceCapabilities, Medium};
use smoltcp::time::{Duration, Instant};
use smoltcp::wire::{HardwareAddress, IpAddress, IpCidr};

use crate::device::RxToken;

/// A small, fast, seeded pseudo-random generator (xoshiro256++, its state seeded through
/// SplitMix64).
#[derive(Debug, Clone)]
pub struct Rng([u64; 4]);

impl Rng {
    /// A generator whose whole sequence is fixed by `seed`.
    pub const fn new(seed: u64) -> Self {
        let mut state = [0u64; 4];
        let mut x = seed;
        let mut i = 0;
        while i < 4 {
            x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = x;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            state[i] = z ^ (z >> 31);
            i += 1;
        }
        Rng(state)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        let s = &mut self.0;
        let result = s[0].wrapping_add(s[3]).rotate_left(23).wrapping_add(s[0]);
        let t = s[1] << 17;
        s[2] ^= s[0];
        s[3] ^= s[1];
        s[1] ^= s[2];
        s[0] ^= s[3];
        s[2] ^= t;
        s[3] = s[3].rotate_left(45);
        result
    }

    /// A number in `0..n` (`n` > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.next_u64()) * u128::from(n)) >> 64) as u64
    }

    /// `true` with probability `ppm` parts per million.
    pub fn chance(&mut self, ppm: u32) -> bool {
        ppm > 0 && self.below(1_000_000) < u64::from(ppm)
    }
}

/// One direction of the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Link {
    /// Time from transmission to arrival.
    pub latency: Duration,
    /// Probability of losing a packet, in parts per million (10 000 = 1 %).
    pub loss_ppm: u32,
    /// Probability of delivering a packet twice.
    pub duplicate_ppm: u32,
    /// Probability of holding a packet back by up to `reorder_by`, so later ones overtake it.
    pub reorder_ppm: u32,
    /// The most a reordered packet is held back.
    pub reorder_by: Duration,
    /// Probability of flipping one random bit of a packet.
    pub corrupt_ppm: u32,
    /// Largest IP packet this direction carries (at most the wire's `MTU`); smoltcp on the
    /// sending host is told this MTU.
    pub mtu: usize,
    /// Packets that may be in flight at once; more are dropped, as by a full router queue.
    pub queue: usize,
    /// The link's rate in bytes per second (`None`: unlimited). Packets leave one after another
    /// at this rate, so a sender faster than the link fills the queue: a bottleneck.
    pub rate: Option<u32>,
}

impl Link {
    /// A perfect link: 1 ms latency, no faults, the given MTU and a queue of 16 packets.
    pub const fn clean(mtu: usize) -> Link {
        Link {
            latency: Duration::from_millis(1),
            loss_ppm: 0,
            duplicate_ppm: 0,
            reorder_ppm: 0,
            reorder_by: Duration::from_millis(5),
            corrupt_ppm: 0,
            mtu,
            queue: 16,
            rate: None,
        }
    }
}

/// Parts per million for a percentage, for [`Link`]'s probabilities.
pub const fn percent(p: u32) -> u32 {
    p * 10_000
}

/// What happened to the packets sent in one direction.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// Packets handed to the wire.
    pub sent: u64,
    /// Packets taken off the wire by the receiver.
    pub delivered: u64,
    /// Dropped by the loss probability.
    pub lost: u64,
    /// Dropped because the queue was full.
    pub overflowed: u64,
    /// Dropped because the link was cut.
    pub cut: u64,
    /// Extra copies delivered.
    pub duplicated: u64,
    /// Held back to be overtaken.
    pub reordered: u64,
    /// Delivered with one bit flipped.
    pub corrupted: u64,
}

/// Which end of the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// The host running the server.
    Server,
    /// The host running the client.
    Client,
}

/// Packets in flight in one direction.
#[derive(Debug)]
struct Direction<const MTU: usize, const CAP: usize> {
    link: Link,
    slots: [[u8; MTU]; CAP],
    /// Per slot: arrival time, order of sending (ties keep FIFO), length; `None` when free.
    meta: [Option<(Instant, u64, usize)>; CAP],
    order: u64,
    /// When the link finishes sending what it has accepted (with a `rate`).
    busy_until: Instant,
    stats: Stats,
}

impl<const MTU: usize, const CAP: usize> Direction<MTU, CAP> {
    fn new(link: Link) -> Self {
        Direction {
            link,
            slots: [[0; MTU]; CAP],
            meta: [None; CAP],
            order: 0,
            busy_until: Instant::ZERO,
            stats: Stats::default(),
        }
    }

    fn in_flight(&self) -> usize {
        self.meta.iter().filter(|m| m.is_some()).count()
    }

    /// The next packet to arrive: slot and time.
    fn next(&self) -> Option<(usize, Instant)> {
        self.meta
            .iter()
            .enumerate()
            .filter_map(|(i, m)| m.map(|(due, order, _)| (i, due, order)))
            .min_by_key(|&(_, due, order)| (due, order))
            .map(|(i, due, _)| (i, due))
    }

    /// Packets that have arrived by `now` and wait to be received.
    fn arrived(&self, now: Instant) -> usize {
        self.meta
            .iter()
            .filter(|m| m.is_some_and(|(due, _, _)| due <= now))
            .count()
    }

    fn free(&self) -> Option<usize> {
        if self.in_flight() >= self.link.queue.min(CAP) {
            return None;
        }
        self.meta.iter().position(Option::is_none)
    }
}

/// The wire between the two hosts, its clock and its random source.
#[derive(Debug)]
pub struct Wire<const MTU: usize, const CAP: usize> {
    to_client: Direction<MTU, CAP>,
    to_server: Direction<MTU, CAP>,
    rng: Rng,
    now: Instant,
    cut: bool,
    scratch: [u8; MTU],
    digest: u64,
}

impl<const MTU: usize, const CAP: usize> Wire<MTU, CAP> {
    /// A wire whose faults are drawn from `seed`. Link MTUs above `MTU` are lowered to it.
    pub fn new(seed: u64, to_client: Link, to_server: Link) -> Self {
        let fit = |mut l: Link| {
            l.mtu = l.mtu.min(MTU);
            l
        };
        Wire {
            to_client: Direction::new(fit(to_client)),
            to_server: Direction::new(fit(to_server)),
            rng: Rng::new(seed),
            now: Instant::ZERO,
            cut: false,
            scratch: [0; MTU],
            digest: 0xcbf2_9ce4_8422_2325,
        }
    }

    /// The simulated time.
    pub fn now(&self) -> Instant {
        self.now
    }

    /// Move the clock forward to `t` (never back).
    pub fn advance_to(&mut self, t: Instant) {
        self.now = self.now.max(t);
    }

    /// When the next packet arrives at either host.
    pub fn next_arrival(&self) -> Option<Instant> {
        let a = self.to_client.next().map(|(_, t)| t);
        let b = self.to_server.next().map(|(_, t)| t);
        a.into_iter().chain(b).min()
    }

    /// Cut the link (`true`): every packet in flight is lost, and so is every packet sent until
    /// it is restored (`false`). A host that vanishes looks exactly like this to its peer.
    pub fn cut(&mut self, cut: bool) {
        self.cut = cut;
        if cut {
            for dir in [&mut self.to_client, &mut self.to_server] {
                dir.stats.cut += dir.in_flight() as u64;
                dir.meta = [None; CAP];
            }
        }
    }

    /// Change one direction's settings from now on.
    pub fn set_link(&mut self, towards: Side, link: Link) {
        let dir = match towards {
            Side::Client => &mut self.to_client,
            Side::Server => &mut self.to_server,
        };
        dir.link = Link {
            mtu: link.mtu.min(MTU),
            ..link
        };
    }

    /// The packets in flight towards `side`, in the order they will arrive.
    pub fn in_flight(&self, towards: Side) -> impl Iterator<Item = &[u8]> + '_ {
        let dir = self.direction(towards);
        let mut order: [(Instant, u64, usize); CAP] = [(Instant::ZERO, 0, CAP); CAP];
        for (i, m) in dir.meta.iter().enumerate() {
            if let Some((due, seq, _)) = *m {
                order[i] = (due, seq, i);
            }
        }
        order.sort_unstable();
        order
            .into_iter()
            .filter_map(move |(_, _, i)| dir.meta.get(i)?.map(|(_, _, len)| &dir.slots[i][..len]))
    }

    /// A deterministic fault: take off the wire every packet in flight towards `side` that
    /// `lose` picks (counted as lost). Returns how many were taken. A test that steps the
    /// hosts itself calls this after each poll to lose exactly the segment it means to.
    pub fn lose_in_flight(&mut self, towards: Side, mut lose: impl FnMut(&[u8]) -> bool) -> usize {
        let dir = self.direction_mut(towards);
        let mut lost = 0;
        for i in 0..CAP {
            if let Some((_, _, len)) = dir.meta[i]
                && lose(&dir.slots[i][..len])
            {
                dir.meta[i] = None;
                lost += 1;
            }
        }
        dir.stats.lost += lost as u64;
        lost
    }

    fn direction(&self, towards: Side) -> &Direction<MTU, CAP> {
        match towards {
            Side::Client => &self.to_client,
            Side::Server => &self.to_server,
        }
    }

    fn direction_mut(&mut self, towards: Side) -> &mut Direction<MTU, CAP> {
        match towards {
            Side::Client => &mut self.to_client,
            Side::Server => &mut self.to_server,
        }
    }

    /// What happened to the packets sent towards `side`.
    pub fn stats(&self, towards: Side) -> Stats {
        self.direction(towards).stats
    }

    /// A fingerprint of every packet sent so far, its bytes and its arrival time: two runs with
    /// the same digest put the same packets on the wire at the same times.
    pub fn digest(&self) -> u64 {
        self.digest
    }

    /// Put a packet on the wire as if the host on `from` had sent it: `write` fills its `len`
    /// bytes, and it meets the same latency, rate, faults and queue as that host's own packets.
    /// This is how an attacker's forged packets (see [`forged_syn`]) enter the simulation.
    pub fn inject(&mut self, from: Side, len: usize, write: impl FnOnce(&mut [u8])) {
        let len = len.min(MTU);
        let token = TxToken {
            tx: match from {
                Side::Server => &mut self.to_client,
                Side::Client => &mut self.to_server,
            },
            from,
            rng: &mut self.rng,
            now: self.now,
            cut: self.cut,
            scratch: &mut self.scratch,
            digest: &mut self.digest,
            watch: None,
        };
        phy::TxToken::consume(token, len, write);
    }

    /// The wire's random source, for an attacker's choices (forged addresses, arrival times).
    /// Drawing from it shifts the faults that follow, so a run stays reproducible by its seed.
    pub fn rng(&mut self) -> &mut Rng {
        &mut self.rng
    }

    /// The device of the host on `side`: it receives what arrives there and sends the other way.
    pub fn host(&mut self, side: Side) -> Host<'_, MTU, CAP> {
        self.watched_host(side, None)
    }

    /// As [`host`](Wire::host), telling `watch` of every packet the host sends.
    fn watched_host<'w>(
        &'w mut self,
        side: Side,
        watch: Option<&'w mut dyn Watch>,
    ) -> Host<'w, MTU, CAP> {
        let (rx, tx) = match side {
            Side::Server => (&mut self.to_server, &mut self.to_client),
            Side::Client => (&mut self.to_client, &mut self.to_server),
        };
        Host {
            rx,
            tx,
            side,
            rng: &mut self.rng,
            now: self.now,
            cut: self.cut,
            scratch: &mut self.scratch,
            digest: &mut self.digest,
            watch,
        }
    }

    /// The number (see [`Fate::Queued`]) of the packet the host on `side` receives next, if
    /// one has arrived there.
    fn next_due(&self, side: Side) -> Option<u64> {
        let dir = self.direction(side);
        let (slot, due) = dir.next()?;
        let (_, order, _) = dir.meta[slot]?;
        (due <= self.now).then_some(order)
    }
}

/// What the wire did with a packet a host sent, as a [`Watch`] is told.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fate {
    /// On its way. `id` numbers it among the packets queued in its direction (the number
    /// [`Watch::received`] names); it arrives at `at`, with one bit flipped if `corrupted`; `copy`
    /// is the number and arrival of an extra copy, if the wire duplicated it.
    Queued {
        /// The packet's number in its direction.
        id: u64,
        /// When it arrives.
        at: Instant,
        /// One bit of it is flipped on the way (the receiver's checksum drops it).
        corrupted: bool,
        /// A duplicate: its number and arrival.
        copy: Option<(u64, Instant)>,
    },
    /// Dropped by the loss probability, or longer than the link's MTU.
    Lost,
    /// Dropped because the link's queue was full.
    Overflowed,
    /// Dropped because the link was cut.
    Cut,
}

/// Sees every packet of a [`transfer_watched`] run: each one a host sends, with its fate, and
/// each one a host takes in, with both TCP states once it is processed. A trace of the run is
/// built from these (the maintainers' `soak --seed N --svg PATH` draws one); watching does not
/// change the run, which stays the one its seed gives.
pub trait Watch: core::fmt::Debug {
    /// The host on `from` sent `packet` (an IP packet, as written before any corruption) at
    /// `now`, and the wire did `fate` with it.
    fn sent(&mut self, now: Instant, from: Side, packet: &[u8], fate: Fate);
    /// The host on `by` took in packet `id` (see [`Fate::Queued`]) at `now`; `server` and
    /// `client` are the two sockets' states once it was processed.
    fn received(
        &mut self,
        now: Instant,
        by: Side,
        id: u64,
        server: smoltcp::socket::tcp::State,
        client: smoltcp::socket::tcp::State,
    );
    /// The host on `from` has just sent what it had (at most one segment since the last call):
    /// the two sockets' states now, so a state a host enters by sending (FIN-WAIT-1 after its
    /// FIN) is seen when it happens.
    fn sent_states(
        &mut self,
        _now: Instant,
        _from: Side,
        _server: smoltcp::socket::tcp::State,
        _client: smoltcp::socket::tcp::State,
    ) {
    }
}

/// Watches nothing: [`transfer`].
impl Watch for () {
    fn sent(&mut self, _: Instant, _: Side, _: &[u8], _: Fate) {}
    fn received(
        &mut self,
        _: Instant,
        _: Side,
        _: u64,
        _: smoltcp::socket::tcp::State,
        _: smoltcp::socket::tcp::State,
    ) {
    }
}

/// A packet waits when it has arrived at either host and is not yet received: the clock must
/// not move on until both hosts have polled it in. Packets still on their way are not waiting;
/// their arrival is an event the clock moves to ([`Wire::next_arrival`]).
impl<const MTU: usize, const CAP: usize> crate::clock::Pending for Wire<MTU, CAP> {
    fn pending(&self) -> usize {
        self.to_client.arrived(self.now) + self.to_server.arrived(self.now)
    }
}

/// One host's network device on the wire (`Medium::Ip`).
#[derive(Debug)]
pub struct Host<'w, const MTU: usize, const CAP: usize> {
    rx: &'w mut Direction<MTU, CAP>,
    tx: &'w mut Direction<MTU, CAP>,
    side: Side,
    rng: &'w mut Rng,
    now: Instant,
    cut: bool,
    scratch: &'w mut [u8; MTU],
    digest: &'w mut u64,
    watch: Option<&'w mut dyn Watch>,
}

impl<const MTU: usize, const CAP: usize> Device for Host<'_, MTU, CAP> {
    type RxToken<'a>
        = RxToken<'a>
    where
        Self: 'a;
    type TxToken<'a>
        = TxToken<'a, MTU, CAP>
    where
        Self: 'a;

    fn receive(&mut self, _timestamp: Instant) -> Option<(RxToken<'_>, TxToken<'_, MTU, CAP>)> {
        let (slot, due) = self.rx.next()?;
        if due > self.now {
            return None;
        }
        let (_, _, len) = self.rx.meta[slot].take()?;
        self.rx.stats.delivered += 1;
        Some((
            RxToken::new(&self.rx.slots[slot][..len]),
            TxToken {
                tx: self.tx,
                from: self.side,
                rng: self.rng,
                now: self.now,
                cut: self.cut,
                scratch: self.scratch,
                digest: self.digest,
                watch: reborrow(&mut self.watch),
            },
        ))
    }

    fn transmit(&mut self, _timestamp: Instant) -> Option<TxToken<'_, MTU, CAP>> {
        Some(TxToken {
            tx: self.tx,
            from: self.side,
            rng: self.rng,
            now: self.now,
            cut: self.cut,
            scratch: self.scratch,
            digest: self.digest,
            watch: reborrow(&mut self.watch),
        })
    }

    fn capabilities(&self) -> DeviceCapabilities {
        let mut caps = DeviceCapabilities::default();
        caps.medium = Medium::Ip;
        caps.max_transmission_unit = self.tx.link.mtu;
        caps
    }
}

/// The watcher for a token that lives no longer than this borrow of its host.
fn reborrow<'a>(watch: &'a mut Option<&mut dyn Watch>) -> Option<&'a mut dyn Watch> {
    match watch {
        Some(watch) => Some(&mut **watch),
        None => None,
    }
}

/// Room for a packet leaving a host; the wire decides its fate when it is written.
#[derive(Debug)]
pub struct TxToken<'a, const MTU: usize, const CAP: usize> {
    tx: &'a mut Direction<MTU, CAP>,
    from: Side,
    rng: &'a mut Rng,
    now: Instant,
    cut: bool,
    scratch: &'a mut [u8; MTU],
    digest: &'a mut u64,
    watch: Option<&'a mut dyn Watch>,
}

impl<const MTU: usize, const CAP: usize> phy::TxToken for TxToken<'_, MTU, CAP> {
    fn consume<R, F>(self, len: usize, f: F) -> R
    where
        F: FnOnce(&mut [u8]) -> R,
    {
        let dir = self.tx;
        let link = dir.link;
        dir.stats.sent += 1;
        // Every random draw happens whatever the outcome, so one fault never shifts the
        // sequence of later ones.
        let lost = self.rng.chance(link.loss_ppm);
        let duplicate = self.rng.chance(link.duplicate_ppm);
        let reorder = self.rng.chance(link.reorder_ppm);
        let corrupt = self.rng.chance(link.corrupt_ppm);
        let extra = self.rng.below(link.reorder_by.total_micros().max(1));
        let bit = self.rng.below(len.max(1) as u64 * 8) as usize;

        let slot = if self.cut || lost || len > link.mtu {
            None
        } else {
            dir.free()
        };
        let Some(slot) = slot else {
            let result = f(&mut self.scratch[..len]);
            let before = dir.stats;
            match () {
                _ if self.cut => dir.stats.cut += 1,
                _ if lost || len > link.mtu => dir.stats.lost += 1,
                _ => dir.stats.overflowed += 1,
            }
            if let Some(watch) = self.watch {
                let fate = match () {
                    _ if dir.stats.cut != before.cut => Fate::Cut,
                    _ if dir.stats.lost != before.lost => Fate::Lost,
                    _ => Fate::Overflowed,
                };
                watch.sent(self.now, self.from, &self.scratch[..len], fate);
            }
            return result;
        };

        let result = f(&mut dir.slots[slot][..len]);
        if self.watch.is_some() {
            // The packet as the host wrote it, before the wire flips a bit of it.
            self.scratch[..len].copy_from_slice(&dir.slots[slot][..len]);
        }
        let id = dir.order;
        // With a rate, the packet leaves after those ahead of it, and takes its length's time.
        let departs = match link.rate {
            Some(rate) => {
                let start = dir.busy_until.max(self.now);
                dir.busy_until =
                    start + Duration::from_micros(len as u64 * 1_000_000 / u64::from(rate.max(1)));
                dir.busy_until
            }
            None => self.now,
        };
        let mut due = departs + link.latency;
        if reorder {
            due += Duration::from_micros(extra);
            dir.stats.reordered += 1;
        }
        let mut flipped = false;
        if corrupt && len > 0 {
            dir.slots[slot][bit / 8] ^= 1 << (bit % 8);
            dir.stats.corrupted += 1;
            flipped = true;
        }
        // FNV-1a over the arrival time and the bytes as they will arrive.
        let mut h = *self.digest;
        for b in due
            .total_micros()
            .to_le_bytes()
            .iter()
            .chain(&dir.slots[slot][..len])
        {
            h = (h ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3);
        }
        *self.digest = h;
        dir.meta[slot] = Some((due, dir.order, len));
        dir.order += 1;

        let mut copied = None;
        if duplicate && let Some(copy) = dir.free() {
            let (a, b) = if slot < copy {
                let (lo, hi) = dir.slots.split_at_mut(copy);
                (&lo[slot], &mut hi[0])
            } else {
                let (lo, hi) = dir.slots.split_at_mut(slot);
                (&hi[0], &mut lo[copy])
            };
            b[..len].copy_from_slice(&a[..len]);
            dir.meta[copy] = Some((due + Duration::from_micros(1), dir.order, len));
            copied = dir.meta[copy].map(|(arrives, id, _)| (id, arrives));
            dir.order += 1;
            dir.stats.duplicated += 1;
        }
        if let Some(watch) = self.watch {
            let fate = Fate::Queued {
                id,
                at: due,
                corrupted: flipped,
                copy: copied,
            };
            watch.sent(self.now, self.from, &self.scratch[..len], fate);
        }
        result
    }
}

/// The length of an IPv4 SYN written by [`forged_syn`].
pub const FORGED_SYN_LEN: usize = 20 + 24;

/// Write an IPv4 TCP SYN from `src` to `dst` with sequence number `seq` into `buf` (at least
/// [`FORGED_SYN_LEN`] bytes), checksums included: the first packet of a SYN flood. With a
/// source address no host on the wire owns, the server's SYN-ACK goes nowhere and the
/// handshake is never completed. Returns the packet's length.
pub fn forged_syn(
    buf: &mut [u8],
    src: (smoltcp::wire::Ipv4Address, u16),
    dst: (smoltcp::wire::Ipv4Address, u16),
    seq: u32,
) -> usize {
    use smoltcp::phy::ChecksumCapabilities;
    use smoltcp::wire::{
        IpProtocol, Ipv4Packet, Ipv4Repr, TcpControl, TcpPacket, TcpRepr, TcpSeqNumber,
    };
    let tcp = TcpRepr {
        src_port: src.1,
        dst_port: dst.1,
        control: TcpControl::Syn,
        seq_number: TcpSeqNumber(seq as i32),
        ack_number: None,
        window_len: 1024,
        window_scale: None,
        max_seg_size: Some(1460),
        sack_permitted: false,
        sack_ranges: [None; 3],
        timestamp: None,
        payload: &[],
    };
    let ip = Ipv4Repr {
        src_addr: src.0,
        dst_addr: dst.0,
        next_header: IpProtocol::Tcp,
        payload_len: tcp.header_len(),
        hop_limit: 64,
    };
    let len = ip.buffer_len() + tcp.buffer_len();
    let buf = &mut buf[..len];
    let caps = ChecksumCapabilities::default();
    let mut packet = Ipv4Packet::new_unchecked(&mut *buf);
    ip.emit(&mut packet, &caps);
    let mut segment = TcpPacket::new_unchecked(packet.payload_mut());
    tcp.emit(&mut segment, &src.0.into(), &dst.0.into(), &caps);
    len
}

/// Addresses of the two hosts.
pub mod addr {
    use smoltcp::wire::IpAddress;

    /// The server host's IPv4 address (prefix /24).
    pub const SERVER_V4: IpAddress = IpAddress::v4(10, 0, 0, 1);
    /// The client host's IPv4 address.
    pub const CLIENT_V4: IpAddress = IpAddress::v4(10, 0, 0, 2);
    /// The server host's IPv6 address (prefix /64).
    #[cfg(feature = "proto-ipv6")]
    pub const SERVER_V6: IpAddress = IpAddress::v6(0xfd00, 0, 0, 0, 0, 0, 0, 1);
    /// The client host's IPv6 address.
    #[cfg(feature = "proto-ipv6")]
    pub const CLIENT_V6: IpAddress = IpAddress::v6(0xfd00, 0, 0, 0, 0, 0, 0, 2);
}

/// Two hosts on a [`Wire`], each an `Interface` with its own sockets.
///
/// The caller keeps the protocol's state machines: after [`poll`](Network::poll) it polls its
/// server and client with [`now`](Network::now) and the hosts' socket sets, then calls
/// [`advance`](Network::advance) with their deadlines.
pub struct Network<'a, 's, const MTU: usize, const CAP: usize> {
    /// The wire (its clock, faults and statistics).
    pub wire: &'a mut Wire<MTU, CAP>,
    /// The server host's interface.
    pub server: Interface,
    /// The client host's interface.
    pub client: Interface,
    /// The server host's sockets.
    pub server_sockets: SocketSet<'s>,
    /// The client host's sockets.
    pub client_sockets: SocketSet<'s>,
}

impl<'a, 's, const MTU: usize, const CAP: usize> Network<'a, 's, MTU, CAP> {
    /// Bring up both hosts (addresses in [`addr`], IPv4 and IPv6) on `wire`. `seed` also seeds
    /// smoltcp's own choices (initial sequence numbers).
    pub fn new(
        wire: &'a mut Wire<MTU, CAP>,
        server_sockets: SocketSet<'s>,
        client_sockets: SocketSet<'s>,
    ) -> Self {
        let seed = wire.rng.next_u64();
        let mut iface = |side, v4: IpAddress, v6: Option<IpAddress>| {
            let mut config = Config::new(HardwareAddress::Ip);
            config.random_seed = seed ^ (side as u64);
            let now = wire.now;
            let mut iface = Interface::new(config, &mut wire.host(side), now);
            iface.update_ip_addrs(|a| {
                // Two addresses always fit (smoltcp's minimum address count is 2).
                let _ = a.push(IpCidr::new(v4, 24));
                let _ = v6.map(|v6| a.push(IpCidr::new(v6, 64)));
            });
            iface
        };
        #[cfg(feature = "proto-ipv6")]
        let (server_v6, client_v6) = (Some(addr::SERVER_V6), Some(addr::CLIENT_V6));
        #[cfg(not(feature = "proto-ipv6"))]
        let (server_v6, client_v6) = (None, None);
        let server = iface(Side::Server, addr::SERVER_V4, server_v6);
        let client = iface(Side::Client, addr::CLIENT_V4, client_v6);
        Network {
            wire,
            server,
            client,
            server_sockets,
            client_sockets,
        }
    }

    /// The simulated time.
    pub fn now(&self) -> Instant {
        self.wire.now
    }

    /// Let both hosts process what has arrived and send what they have.
    pub fn poll(&mut self) {
        let now = self.wire.now;
        self.server.poll(
            now,
            &mut self.wire.host(Side::Server),
            &mut self.server_sockets,
        );
        self.client.poll(
            now,
            &mut self.wire.host(Side::Client),
            &mut self.client_sockets,
        );
    }

    /// As [`poll`](Network::poll), one packet at a time so that `watch` sees the states of
    /// the sockets `server` and `client` after each. smoltcp's `Interface::poll` takes the same
    /// steps (every packet that has arrived, then everything to send), so the run is the same.
    fn poll_watched(
        &mut self,
        watch: &mut dyn Watch,
        sockets: (smoltcp::iface::SocketHandle, smoltcp::iface::SocketHandle),
    ) {
        for side in [Side::Server, Side::Client] {
            self.poll_side_watched(side, watch, sockets);
        }
    }

    /// One host's part of [`poll_watched`](Network::poll_watched).
    fn poll_side_watched(
        &mut self,
        side: Side,
        watch: &mut dyn Watch,
        (server, client): (smoltcp::iface::SocketHandle, smoltcp::iface::SocketHandle),
    ) {
        use smoltcp::iface::PollResult;
        use smoltcp::socket::tcp;
        // More segments than any window of the wire's MTUs holds: the bound is never reached.
        const MAX_EGRESS: usize = 1 << 16;
        let now = self.wire.now;
        let (iface, sockets, peer_sockets, ours, theirs) = match side {
            Side::Server => (
                &mut self.server,
                &mut self.server_sockets,
                &self.client_sockets,
                server,
                client,
            ),
            Side::Client => (
                &mut self.client,
                &mut self.client_sockets,
                &self.server_sockets,
                client,
                server,
            ),
        };
        iface.poll_maintenance(now);
        // Each packet that has arrived is taken in once, and what the host sends meanwhile goes
        // the other way: at most CAP packets.
        for _ in 0..CAP {
            let Some(id) = self.wire.next_due(side) else {
                break;
            };
            let mut host = self.wire.watched_host(side, Some(&mut *watch));
            iface.poll_ingress_single(now, &mut host, sockets);
            let own = sockets.get::<tcp::Socket>(ours).state();
            let peer = peer_sockets.get::<tcp::Socket>(theirs).state();
            let (server, client) = match side {
                Side::Server => (own, peer),
                Side::Client => (peer, own),
            };
            watch.received(now, side, id, server, client);
        }
        for _ in 0..MAX_EGRESS {
            let mut host = self.wire.watched_host(side, Some(&mut *watch));
            if iface.poll_egress(now, &mut host, sockets) == PollResult::None {
                break;
            }
            let own = sockets.get::<tcp::Socket>(ours).state();
            let peer = peer_sockets.get::<tcp::Socket>(theirs).state();
            let (server, client) = match side {
                Side::Server => (own, peer),
                Side::Client => (peer, own),
            };
            watch.sent_states(now, side, server, client);
        }
    }

    /// As [`poll`](Network::poll), with `backlog` in front of the server host's device (see
    /// [`backlog`](crate::backlog)); call [`Backlog::admit`](crate::backlog::Backlog::admit)
    /// after each `Server::poll`, and pass `backlog.releasable()` and `backlog.poll_at()` to
    /// [`advance_with`](Network::advance_with).
    pub fn poll_behind<const LEN: usize>(&mut self, backlog: &mut crate::backlog::Backlog<LEN>) {
        let now = self.wire.now;
        let mut host = self.wire.host(Side::Server);
        self.server
            .poll(now, &mut backlog.guard(&mut host), &mut self.server_sockets);
        self.client.poll(
            now,
            &mut self.wire.host(Side::Client),
            &mut self.client_sockets,
        );
    }

    /// Move the clock to the next event, as [`SimClock`](crate::clock::SimClock) does for one
    /// interface: not at all while a packet that has arrived waits to be received (poll again
    /// at the same instant), else to the earliest of the next arrival, both hosts' smoltcp
    /// timers and `deadlines` (the protocol's own). Returns `false` when nothing at all is
    /// pending.
    pub fn advance(&mut self, deadlines: impl IntoIterator<Item = Option<Instant>>) -> bool {
        self.advance_with(0, deadlines)
    }

    /// As [`advance`](Network::advance), with `also_pending` packets waiting elsewhere than on
    /// the wire (a backlog's releasable SYNs): the clock stays put while there are any.
    pub fn advance_with(
        &mut self,
        also_pending: usize,
        deadlines: impl IntoIterator<Item = Option<Instant>>,
    ) -> bool {
        use crate::clock::Pending;
        let now = self.wire.now;
        if self.wire.pending() + also_pending > 0 {
            return true;
        }
        let next = crate::clock::next_instant(
            now,
            [
                self.wire.next_arrival(),
                self.server.poll_at(now, &self.server_sockets),
                self.client.poll_at(now, &self.client_sockets),
            ]
            .into_iter()
            .chain(deadlines),
        );
        match next {
            Some(t) => {
                self.wire.advance_to(t);
                true
            }
            None => false,
        }
    }

    /// The address of `side`: IPv6 if `v6` (and the `proto-ipv6` feature is on), else IPv4.
    pub fn address(side: Side, v6: bool) -> IpAddress {
        match (side, v6 && cfg!(feature = "proto-ipv6")) {
            #[cfg(feature = "proto-ipv6")]
            (Side::Server, true) => addr::SERVER_V6,
            #[cfg(feature = "proto-ipv6")]
            (Side::Client, true) => addr::CLIENT_V6,
            (Side::Server, _) => addr::SERVER_V4,
            (Side::Client, _) => addr::CLIENT_V4,
        }
    }
}

/// How one simulated transfer ended.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// The server's result, `None` if it had not ended by the deadline.
    pub server: Option<Result<crate::server::Report, crate::Error>>,
    /// The client's result, `None` if it had not ended by the deadline.
    pub client: Option<Result<crate::client::Report, crate::Error>>,
    /// Bytes the client wrote to its sink.
    pub received: usize,
    /// The server never saw the connection (every SYN lost): it is still listening, which is
    /// not a hang but what a server does.
    pub never_connected: bool,
    /// Simulated time when the run stopped.
    pub end: Instant,
}

impl Outcome {
    /// Neither side may still be running at the deadline: that would be a hang.
    pub fn hung(&self) -> bool {
        (self.server.is_none() && !self.never_connected) || self.client.is_none()
    }

    /// The file arrived whole and the server got its `"Thank you\0"`.
    pub fn delivered(&self) -> bool {
        matches!(&self.server, Some(Ok(r)) if r.reply.is_thank_you())
            && matches!(self.client, Some(Ok(_)))
    }
}

/// How [`transfer`] sets up a run.
#[derive(Debug, Clone, Copy)]
pub struct Setup {
    /// Connect over IPv6 instead of IPv4.
    pub v6: bool,
    /// Both ends' timeouts.
    pub timeouts: crate::Timeouts,
    /// The simulated time by which both ends must have finished; still running then is a hang.
    pub deadline: Instant,
    /// Both sockets' congestion control.
    pub congestion: smoltcp::socket::tcp::CongestionControl,
    /// Cut the link for good at this time (a host vanishing).
    pub cut_at: Option<Instant>,
}

impl Setup {
    /// IPv4, the given timeouts, an hour of simulated time, the build's default congestion
    /// control, no cut.
    pub fn new(timeouts: crate::Timeouts) -> Setup {
        Setup {
            v6: false,
            timeouts,
            deadline: Instant::from_secs(3600),
            congestion: smoltcp::socket::tcp::Socket::new(
                smoltcp::socket::tcp::SocketBuffer::new(&mut [][..]),
                smoltcp::socket::tcp::SocketBuffer::new(&mut [][..]),
            )
            .congestion_control(),
            cut_at: None,
        }
    }
}

/// Serve `file` from the server host to a client on the client host over `wire`, until both
/// ends finish or the simulated deadline passes.
///
/// `sink` receives the file (it must hold `file.len()` bytes); `buffers` is split into the four
/// socket buffers (the client's receive buffer at most
/// [`client::MAX_RECEIVE_BUFFER`](crate::client::MAX_RECEIVE_BUFFER) of its quarter).
///
/// ```
/// use halfclose::Timeouts;
/// use halfclose::sim::{self, Link, Setup, Wire};
///
/// // 100 KiB over a link that loses 5 % of its packets each way, 10 ms latency; seed 7.
/// let lossy = Link { loss_ppm: sim::percent(5), latency: core::time::Duration::from_millis(10).into(), ..Link::clean(1500) };
/// let mut wire = Box::new(Wire::<1500, 32>::new(7, lossy, lossy));
/// let file: Vec<u8> = (0..100 * 1024).map(|i| i as u8).collect();
/// let mut sink = vec![0u8; file.len()];
/// let mut buffers = vec![0u8; 4 * 16 * 1024];
/// let outcome = sim::transfer(&mut wire, &file, &mut sink, &mut buffers, Setup::new(Timeouts::DEFAULT));
///
/// assert!(outcome.delivered(), "{outcome:?}");
/// assert_eq!(outcome.received, file.len());
/// assert!(sink == file);
/// let lost = wire.stats(sim::Side::Client).lost + wire.stats(sim::Side::Server).lost;
/// println!("{} packets lost, done at {} simulated", lost, outcome.end);
/// ```
pub fn transfer<const MTU: usize, const CAP: usize>(
    wire: &mut Wire<MTU, CAP>,
    file: &[u8],
    sink: &mut [u8],
    buffers: &mut [u8],
    setup: Setup,
) -> Outcome {
    transfer_watched(wire, file, sink, buffers, setup, &mut ())
}

/// As [`transfer`], telling `watch` of every packet: the same run, packet for packet (the
/// wire's [`digest`](Wire::digest) is the same), seen as it happens.
pub fn transfer_watched<const MTU: usize, const CAP: usize>(
    wire: &mut Wire<MTU, CAP>,
    file: &[u8],
    sink: &mut [u8],
    buffers: &mut [u8],
    setup: Setup,
    watch: &mut dyn Watch,
) -> Outcome {
    let Setup {
        v6,
        timeouts,
        deadline,
        congestion,
        cut_at,
    } = setup;
    use crate::{client, server};
    use core::task::Poll;
    use smoltcp::iface::SocketStorage;
    use smoltcp::socket::tcp;

    let quarter = buffers.len() / 4;
    let (server_bufs, client_bufs) = buffers.split_at_mut(2 * quarter);
    let (s_rx, s_tx) = server_bufs.split_at_mut(quarter);
    let (c_rx, c_tx) = client_bufs.split_at_mut(quarter);
    // The client accepts no receive buffer that would scale its window.
    let c_rx = &mut c_rx[..quarter.min(crate::client::MAX_RECEIVE_BUFFER)];
    let mut server_storage: [SocketStorage; 1] = Default::default();
    let mut client_storage: [SocketStorage; 1] = Default::default();
    let mut server_sockets = SocketSet::new(&mut server_storage[..]);
    let mut client_sockets = SocketSet::new(&mut client_storage[..]);
    let socket = |rx, tx| {
        let mut socket = tcp::Socket::new(tcp::SocketBuffer::new(rx), tcp::SocketBuffer::new(tx));
        socket.set_congestion_control(congestion);
        socket
    };
    let s = server_sockets.add(socket(s_rx, s_tx));
    let c = client_sockets.add(socket(c_rx, c_tx));
    let mut net = Network::new(wire, server_sockets, client_sockets);
    let server_addr = Network::<MTU, CAP>::address(Side::Server, v6);
    let mut outcome = Outcome {
        server: None,
        client: None,
        received: 0,
        never_connected: false,
        end: net.now(),
    };
    let mut server = match server::Server::listen(
        &mut net.server_sockets,
        [s],
        (server_addr, crate::DEFAULT_PORT),
        file,
        timeouts,
    ) {
        Ok(server) => server,
        Err(e) => {
            outcome.server = Some(Err(e));
            return outcome;
        }
    };
    // One client and nobody else waiting: the slot keeps its whole TIME-WAIT (`linger`), which
    // a pool of one otherwise cuts short to listen again.
    server.set_reclaim(false);
    let now = net.now();
    let mut client = match client::Client::connect(
        net.client.context(),
        &mut net.client_sockets,
        c,
        client::Connect::to((server_addr, crate::DEFAULT_PORT))
            .from_port(49152)
            .timeouts(timeouts),
        &mut sink[..],
        now,
    ) {
        Ok(client) => client,
        Err(e) => {
            outcome.client = Some(Err(e));
            return outcome;
        }
    };

    while net.now() <= deadline {
        if cut_at.is_some_and(|t| net.now() >= t) {
            net.wire.cut(true);
        }
        net.poll_watched(watch, (s, c));
        let now = net.now();
        // The server is polled to the end: a lingering slot has its last ACK to send.
        let ended = server.poll(now, &mut net.server_sockets).into_iter().next();
        if outcome.server.is_none() {
            outcome.server = ended;
        }
        if outcome.client.is_none()
            && let Poll::Ready(result) = client.poll(now, &mut net.client_sockets)
        {
            outcome.client = Some(result);
        }
        // The client gave up and no connection ever reached the server.
        outcome.never_connected = outcome.server.is_none()
            && outcome.client.is_some()
            && server.busy() == 0
            && server.lingering() == 0
            && net.wire.next_arrival().is_none();
        if !outcome.hung() {
            break;
        }
        let deadlines = [
            server.poll_at(),
            client.deadline(),
            // The clock always moves on by at least a microsecond, so waking at the deadline
            // itself takes the loop just past it.
            Some(deadline),
        ];
        net.advance(deadlines);
    }
    outcome.received = client.received() as usize;
    outcome.end = net.now();
    outcome
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packets_in_flight_are_listed_in_arrival_order_and_lost_on_demand() {
        let mut wire = Wire::<64, 8>::new(1, Link::clean(64), Link::clean(64));
        for first in [3u8, 1, 2] {
            wire.inject(Side::Client, 4, |buf| buf.fill(first));
        }
        let order: [u8; 3] = {
            let mut it = wire.in_flight(Side::Server).map(|p| p[0]);
            core::array::from_fn(|_| it.next().unwrap_or(0))
        };
        assert_eq!(order, [3, 1, 2], "sent in this order, arriving in it");
        assert_eq!(wire.in_flight(Side::Client).count(), 0);
        assert_eq!(wire.lose_in_flight(Side::Server, |p| p[0] == 1), 1);
        let left = wire.in_flight(Side::Server).map(|p| p[0]);
        assert!(left.eq([3, 2]));
        assert_eq!(wire.stats(Side::Server).lost, 1);
    }

    /// A packet is pending for the clock once it has arrived, and until a host receives it; one
    /// still on its way is not (the clock moves to its arrival instead).
    #[test]
    fn a_packet_is_pending_from_its_arrival_until_it_is_received() {
        use crate::clock::Pending;
        use smoltcp::phy::{Device, RxToken};
        let mut wire = Wire::<64, 8>::new(1, Link::clean(64), Link::clean(64));
        wire.inject(Side::Client, 4, |buf| buf.fill(7));
        wire.inject(Side::Server, 4, |buf| buf.fill(8));
        assert_eq!(wire.pending(), 0, "both on their way");
        let arrival = wire.next_arrival().unwrap();
        wire.advance_to(arrival);
        assert_eq!(wire.pending(), 2, "one arrived at each host");
        let mut server = wire.host(Side::Server);
        let (rx, _) = server.receive(arrival).unwrap();
        rx.consume(|packet| assert_eq!(packet, [7; 4]));
        assert_eq!(wire.pending(), 1, "the client's still waits");
    }

    /// A link set wider than the wire's slots is cut to them: the sending host is told the
    /// wire's MTU, so it never writes a packet the wire cannot hold.
    #[test]
    fn a_link_is_never_wider_than_the_wire() {
        use smoltcp::phy::Device;
        let mut wire = Wire::<64, 8>::new(1, Link::clean(64), Link::clean(64));
        wire.set_link(Side::Server, Link::clean(9000));
        assert_eq!(
            wire.host(Side::Client).capabilities().max_transmission_unit,
            64
        );
        wire.set_link(Side::Server, Link::clean(48));
        assert_eq!(
            wire.host(Side::Client).capabilities().max_transmission_unit,
            48
        );
    }

    /// A packet longer than the link's MTU is lost; one of any length that finds the queue full
    /// overflows. The two are counted apart, as the fault matrix reports them.
    #[test]
    fn a_packet_too_long_is_lost_and_one_that_finds_the_queue_full_overflows() {
        let link = Link {
            queue: 1,
            ..Link::clean(48)
        };
        let mut wire = Wire::<64, 8>::new(1, Link::clean(64), link);
        wire.inject(Side::Client, 56, |buf| buf.fill(1));
        let towards = wire.stats(Side::Server);
        assert_eq!(
            (towards.lost, towards.overflowed),
            (1, 0),
            "longer than the link"
        );
        wire.inject(Side::Client, 48, |buf| buf.fill(2));
        wire.inject(Side::Client, 48, |buf| buf.fill(3));
        let towards = wire.stats(Side::Server);
        assert_eq!(
            (towards.lost, towards.overflowed),
            (1, 1),
            "the MTU exactly, queue full"
        );
        assert_eq!(
            wire.in_flight(Side::Server)
                .map(|p| p[0])
                .collect::<std::vec::Vec<_>>(),
            [2]
        );
    }

    /// A reordered packet is held back, never sent ahead: it arrives after the link's latency.
    #[test]
    fn a_reordered_packet_arrives_later_than_the_latency_and_is_counted() {
        let link = Link {
            reorder_ppm: 1_000_000,
            reorder_by: Duration::from_millis(5),
            ..Link::clean(64)
        };
        for seed in 1..10 {
            let mut wire = Wire::<64, 8>::new(seed, Link::clean(64), link);
            wire.inject(Side::Client, 8, |buf| buf.fill(1));
            let arrival = wire.next_arrival().unwrap();
            let held = arrival - (Instant::ZERO + link.latency);
            assert!(
                arrival > Instant::ZERO + link.latency,
                "seed {seed}: {arrival}"
            );
            assert!(held < link.reorder_by, "seed {seed}: held {held}");
            assert_eq!(wire.stats(Side::Server).reordered, 1);
        }
    }

    /// Corruption flips exactly one bit of a packet, whatever that bit was, and an empty packet
    /// has no bit to flip.
    #[test]
    fn corruption_flips_one_bit_and_leaves_an_empty_packet_alone() {
        let link = Link {
            corrupt_ppm: 1_000_000,
            ..Link::clean(64)
        };
        for (seed, fill) in (1..20).zip([0x00u8, 0xff].into_iter().cycle()) {
            let mut wire = Wire::<64, 8>::new(seed, Link::clean(64), link);
            wire.inject(Side::Client, 0, |_| {});
            assert_eq!(wire.stats(Side::Server).corrupted, 0, "an empty packet");
            wire.inject(Side::Client, 16, |buf| buf.fill(fill));
            assert_eq!(wire.stats(Side::Server).corrupted, 1);
            let flipped: u32 = wire
                .in_flight(Side::Server)
                .last()
                .unwrap()
                .iter()
                .map(|b| (b ^ fill).count_ones())
                .sum();
            assert_eq!(flipped, 1, "seed {seed}, bytes of {fill:#x}");
        }
    }

    /// The network's clock stands still while a packet has arrived and waits to be received,
    /// or while the caller has packets waiting elsewhere: moving it then would make every round
    /// trip wait out a timer.
    #[test]
    fn the_network_clock_stands_still_while_a_packet_waits() {
        use smoltcp::iface::SocketSet;
        let mut wire = Wire::<64, 8>::new(1, Link::clean(64), Link::clean(64));
        wire.inject(Side::Client, 8, |buf| buf.fill(1));
        let arrival = wire.next_arrival().unwrap();
        wire.advance_to(arrival);
        let mut net = Network::new(
            &mut wire,
            SocketSet::new(std::vec![]),
            SocketSet::new(std::vec![]),
        );
        let later = arrival + Duration::from_secs(1);
        assert!(net.advance([Some(later)]));
        assert_eq!(net.now(), arrival, "a packet waits at the server");
        net.poll();
        assert!(net.advance_with(1, [Some(later)]));
        assert_eq!(net.now(), arrival, "a packet waits elsewhere");
        assert!(net.advance([Some(later)]));
        assert_eq!(net.now(), later, "nothing waits");
    }

    /// 20 KB from the server to the client over a clean link towards the client and `to_server`
    /// the other way; the outcome and whether the sink holds the file.
    fn run_transfer(to_server: Link, setup: Setup) -> (Outcome, bool) {
        let mut wire = std::boxed::Box::new(Wire::<1500, 32>::new(7, Link::clean(1500), to_server));
        let file: std::vec::Vec<u8> = (0..20_000u32).map(|i| (i % 251) as u8).collect();
        let mut sink = std::vec![0u8; file.len()];
        let mut buffers = std::vec![0u8; 4 * 8192];
        let outcome = transfer(&mut wire, &file, &mut sink, &mut buffers, setup);
        (outcome, sink == file)
    }

    #[test]
    fn a_clean_transfer_is_delivered_and_neither_hung_nor_unconnected() {
        let later = Setup {
            cut_at: Some(Instant::from_secs(3000)),
            ..Setup::new(crate::Timeouts::DEFAULT)
        };
        for setup in [Setup::new(crate::Timeouts::DEFAULT), later] {
            let (outcome, whole) = run_transfer(Link::clean(1500), setup);
            assert!(outcome.delivered(), "{outcome:?}");
            assert!(!outcome.hung() && !outcome.never_connected, "{outcome:?}");
            assert!(whole && outcome.received == 20_000, "{outcome:?}");
            assert!(outcome.end < Instant::from_secs(1), "{outcome:?}");
        }
    }

    /// The link is cut between the client's handshake ACK and the server: the client gives up
    /// first (its idle limit, 5 s) while the server still holds the half-open connection (its
    /// handshake limit, 10 s). The run waits for the server's own end, and a server that saw
    /// the connection is not one that never connected.
    #[test]
    fn a_client_that_gives_up_first_leaves_the_run_waiting_for_the_server() {
        use crate::error::{Error, Phase};
        let timeouts = crate::Timeouts::DEFAULT.with_idle(core::time::Duration::from_secs(5));
        let setup = Setup {
            cut_at: Some(Instant::from_millis(3)),
            ..Setup::new(timeouts)
        };
        let (outcome, _) = run_transfer(Link::clean(1500), setup);
        let timed_out = |phase| Some(Error::TimedOut { phase, bytes: 0 });
        let client_error = outcome.client.clone().and_then(Result::err);
        let server_error = outcome.server.clone().and_then(Result::err);
        assert_eq!(client_error, timed_out(Phase::Transfer), "{outcome:?}");
        assert_eq!(server_error, timed_out(Phase::Connect), "{outcome:?}");
        assert!(!outcome.never_connected && !outcome.hung(), "{outcome:?}");
        assert!(outcome.end >= Instant::from_secs(10), "{outcome:?}");
    }

    /// Every SYN lost: the client gives up, and the server, still listening, is not a hang.
    #[test]
    fn a_server_that_never_hears_a_syn_is_listening_not_hung() {
        let deaf = Link {
            loss_ppm: 1_000_000,
            ..Link::clean(1500)
        };
        let (outcome, _) = run_transfer(deaf, Setup::new(crate::Timeouts::DEFAULT));
        assert!(outcome.never_connected, "{outcome:?}");
        assert!(!outcome.hung() && !outcome.delivered(), "{outcome:?}");
        assert!(matches!(outcome.client, Some(Err(_))), "{outcome:?}");
        assert!(outcome.server.is_none(), "{outcome:?}");
    }

    /// A run still going at its deadline stops just past it, and is a hang.
    #[test]
    fn a_run_still_going_at_its_deadline_stops_just_past_it_as_a_hang() {
        let deadline = Instant::from_millis(3);
        let setup = Setup {
            deadline,
            ..Setup::new(crate::Timeouts::DEFAULT)
        };
        let (outcome, _) = run_transfer(Link::clean(1500), setup);
        assert!(outcome.hung() && !outcome.delivered(), "{outcome:?}");
        assert_eq!(
            outcome.end,
            deadline + Duration::from_micros(1),
            "{outcome:?}"
        );
    }

    #[test]
    fn an_outcome_is_delivered_only_with_both_ends_done_and_the_reply_right() {
        let (done, _) = run_transfer(Link::clean(1500), Setup::new(crate::Timeouts::DEFAULT));
        assert!(done.delivered());
        let server_running = Outcome {
            server: None,
            ..done.clone()
        };
        assert!(!server_running.delivered() && server_running.hung());
        let client_running = Outcome {
            client: None,
            ..done.clone()
        };
        assert!(!client_running.delivered() && client_running.hung());
        let listening = Outcome {
            server: None,
            never_connected: true,
            ..done.clone()
        };
        assert!(
            !listening.hung(),
            "a server that never saw the connection is not hung"
        );
    }

    /// Counts what a watcher is told, and checks each received packet was queued before.
    #[derive(Debug, Default)]
    struct Tally {
        sent: [u64; 2],
        /// Lost, overflowed, cut, corrupted.
        fates: [[u64; 4]; 2],
        copies: [u64; 2],
        received: [u64; 2],
        queued: std::collections::BTreeSet<(u8, u64)>,
        fins: u64,
        last_states: Option<(smoltcp::socket::tcp::State, smoltcp::socket::tcp::State)>,
    }

    impl Watch for Tally {
        fn sent(&mut self, _: Instant, from: Side, packet: &[u8], fate: Fate) {
            let i = from as usize;
            self.sent[i] += 1;
            let segment = crate::segment::Segment::parse(Medium::Ip, packet);
            self.fins += u64::from(segment.is_some_and(|s| s.fin));
            // Packets are numbered in the direction they travel: by the side they go to.
            let towards = 1 - i as u8;
            let (id, copy) = match fate {
                Fate::Queued { id, copy, .. } => (Some(id), copy.map(|(copy, _)| copy)),
                Fate::Lost | Fate::Overflowed | Fate::Cut => (None, None),
            };
            let kind = match fate {
                Fate::Lost => Some(0),
                Fate::Overflowed => Some(1),
                Fate::Cut => Some(2),
                Fate::Queued { corrupted, .. } => corrupted.then_some(3),
            };
            if let Some(kind) = kind {
                self.fates[i][kind] += 1;
            }
            self.copies[i] += u64::from(copy.is_some());
            self.queued
                .extend(id.into_iter().chain(copy).map(|id| (towards, id)));
        }

        fn received(
            &mut self,
            _: Instant,
            by: Side,
            id: u64,
            server: smoltcp::socket::tcp::State,
            client: smoltcp::socket::tcp::State,
        ) {
            assert!(self.queued.remove(&(by as u8, id)), "{by:?} got {id} twice");
            self.received[by as usize] += 1;
            self.last_states = Some((server, client));
        }
    }

    /// Runs `file` over `link` both ways from seed 3, watched by `watch`; returns the outcome,
    /// the wire's digest and its statistics towards the server and towards the client.
    fn watched_run(
        link: Link,
        cut_at: Option<Instant>,
        watch: &mut dyn Watch,
    ) -> (Outcome, u64, Stats, Stats) {
        let file: std::vec::Vec<u8> = (0..64 * 1024).map(|i| i as u8).collect();
        let mut wire = std::boxed::Box::new(Wire::<1500, 32>::new(3, link, link));
        let mut sink = std::vec![0u8; file.len()];
        let mut buffers = std::vec![0u8; 4 * 8192];
        let setup = Setup {
            cut_at,
            ..Setup::new(crate::Timeouts::DEFAULT)
        };
        let outcome = transfer_watched(&mut wire, &file, &mut sink, &mut buffers, setup, watch);
        let (to_server, to_client) = (wire.stats(Side::Server), wire.stats(Side::Client));
        (outcome, wire.digest(), to_server, to_client)
    }

    /// What `tally` was told matches the wire's statistics, direction by direction.
    fn assert_tally_matches(tally: &Tally, to_server: Stats, to_client: Stats) {
        for (from, stats) in [(Side::Client, to_server), (Side::Server, to_client)] {
            let i = from as usize;
            assert_eq!(tally.sent[i], stats.sent, "{from:?}");
            let fates = [stats.lost, stats.overflowed, stats.cut, stats.corrupted];
            assert_eq!(
                tally.fates[i], fates,
                "{from:?}: lost, overflowed, cut, corrupted"
            );
            assert_eq!(tally.copies[i], stats.duplicated, "{from:?}");
            assert_eq!(tally.received[1 - i], stats.delivered, "{from:?}");
        }
    }

    #[test]
    fn a_watched_transfer_is_the_same_run_and_the_watcher_sees_every_packet() {
        let link = Link {
            loss_ppm: percent(5),
            duplicate_ppm: percent(5),
            corrupt_ppm: percent(2),
            queue: 3,
            ..Link::clean(1500)
        };
        let (outcome, digest, to_server, to_client) = watched_run(link, None, &mut ());
        assert!(outcome.delivered(), "{outcome:?}");
        // What this run gave when `transfer` let smoltcp's `Interface::poll` take in every
        // packet at once: one packet at a time is the same run.
        assert_eq!(digest, 0xc3fe_cef6_fc89_0d6f);
        assert_eq!(outcome.end, Instant::from_micros(5_082_005));
        let mut tally = Tally::default();
        let (_, watched, ..) = watched_run(link, None, &mut tally);
        assert_eq!(watched, digest, "the same packets at the same times");
        assert_tally_matches(&tally, to_server, to_client);
        let faults = to_server.lost + to_client.lost;
        let full = to_server.overflowed + to_client.overflowed;
        let flipped = to_server.corrupted + to_client.corrupted;
        let copies = to_server.duplicated + to_client.duplicated;
        assert!(faults * full * flipped * copies > 0, "every fault happened");
        assert!(tally.fins >= 2, "both FINs seen");
        // The server's last ACK took the client to CLOSED; the server lingers in TIME-WAIT.
        assert_eq!(
            tally.last_states,
            Some((
                smoltcp::socket::tcp::State::TimeWait,
                smoltcp::socket::tcp::State::Closed
            ))
        );

        // A link cut mid-transfer: every packet from then on is dropped, and said to be.
        let mut tally = Tally::default();
        let cut_at = Some(Instant::from_millis(5));
        let (outcome, _, to_server, to_client) = watched_run(Link::clean(1500), cut_at, &mut tally);
        assert!(!outcome.delivered());
        assert!(to_server.cut + to_client.cut > 0);
        assert_tally_matches(&tally, to_server, to_client);
    }

    #[test]
    fn a_forged_syn_is_a_valid_syn() {
        use smoltcp::wire::{Ipv4Address, Ipv4Packet, TcpPacket};
        let mut buf = [0u8; 64];
        let (src, dst) = (
            Ipv4Address::new(10, 0, 0, 77),
            Ipv4Address::new(10, 0, 0, 1),
        );
        let len = forged_syn(&mut buf, (src, 4242), (dst, 7891), 12345);
        assert_eq!(len, FORGED_SYN_LEN);
        let ip = Ipv4Packet::new_checked(&buf[..len]).unwrap();
        assert!(ip.verify_checksum());
        assert_eq!(ip.src_addr(), src);
        let tcp = TcpPacket::new_checked(ip.payload()).unwrap();
        assert!(tcp.verify_checksum(&src.into(), &dst.into()));
        assert!(tcp.syn() && !tcp.ack());
        assert_eq!((tcp.src_port(), tcp.dst_port()), (4242, 7891));
    }

    #[test]
    fn rng_is_reproducible_and_spread() {
        let (mut a, mut b) = (Rng::new(7), Rng::new(7));
        let mut hits = 0;
        for _ in 0..10_000 {
            assert_eq!(a.next_u64(), b.next_u64());
            let hit = a.chance(percent(30));
            assert_eq!(hit, b.chance(percent(30)));
            hits += u32::from(hit);
        }
        assert!((2500..3500).contains(&hits), "{hits}");
    }

    /// `chance(ppm)` is a draw below `ppm` out of a million: exactly `ppm` values of the million
    /// hit, so 1 ppm is one in a million, not two.
    #[test]
    fn a_chance_hits_on_draws_below_its_parts_per_million_only() {
        for seed in 0..20 {
            let draw = Rng::new(seed).below(1_000_000);
            let ppm = u32::try_from(draw).unwrap();
            assert!(
                !Rng::new(seed).chance(ppm),
                "seed {seed}: a draw of {draw} hit at {ppm}"
            );
            assert!(
                Rng::new(seed).chance(ppm + 1),
                "seed {seed}: {draw} missed at {}",
                ppm + 1
            );
        }
        assert!(!Rng::new(1).chance(0), "0 ppm never hits");
        assert!(Rng::new(1).chance(1_000_000), "a million ppm always hits");
    }

    /// The wire draws the same number of values per packet; one purpose's draws, taken at that
    /// stride, must still look independent.
    #[test]
    fn draws_at_a_fixed_stride_are_independent() {
        for seed in 0..50 {
            let mut rng = Rng::new(seed);
            // The third of each packet's five draws.
            let third: std::vec::Vec<bool> = (0..2000)
                .map(|_| core::array::from_fn::<_, 5, _>(|_| rng.chance(percent(20)))[2])
                .collect();
            let hits = third.iter().filter(|&&hit| hit).count();
            let longest = third
                .split(|&hit| !hit)
                .map(<[bool]>::len)
                .max()
                .unwrap_or(0);
            assert!((300..500).contains(&hits), "seed {seed}: {hits} of 2000");
            assert!(longest <= 8, "seed {seed}: {longest} hits in a row");
        }
    }
}
