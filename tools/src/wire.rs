//! What comes from the network, fuzzed: a legitimate transfer (our `Server` and `Client` on the
//! two-host sim) with forged packets from the input injected in both directions.
//!
//! The input is read as a wire setting and a list of injections. Each injection waits a while
//! (simulated), then puts one packet on the wire towards the server or the client: either a TCP
//! segment built from the input on the connection's own addresses and ports, with sequence and
//! acknowledgement numbers near the live ones (so it lands in or near the window), or (towards
//! the server) raw bytes handed to its IP layer.
//! Whatever comes in, the run must end without a panic, every byte the client wrote must be the
//! file's, and both ends must have finished by the deadline.
//!
//! Forged data can do what TCP lets any in-window segment do (end the connection with a RST,
//! fake an acknowledgement, put bytes in the server's reply), and the checks allow for it: the
//! end may be a typed error. What no forged segment may do is put a byte in the client's file
//! that the server did not send: forged payload towards the client is the file's own bytes at the
//! position its sequence number names (a retransmission, as far as the client can tell), and a
//! forged FIN towards the client only comes at the file's true end.
//!
//! The same code runs under `cargo fuzz` (fuzz/fuzz_targets/wire.rs) and in `cargo test`
//! (tools/tests/fuzz_wire.rs: the committed corpus, fuzz/corpus/wire, and a seeded run).

use std::task::Poll;
use std::vec::Vec;

use halfclose::segment::Segment;
use halfclose::sim::{Host, Link, Network, Side, Wire};
use halfclose::{DEFAULT_PORT, Timeouts, client, server};
use smoltcp::iface::SocketSet;
use smoltcp::phy::{self, ChecksumCapabilities, Device, DeviceCapabilities, Medium};
use smoltcp::socket::tcp;
use smoltcp::time::{Duration, Instant};
use smoltcp::wire::{
    IpAddress, IpProtocol, Ipv4Address, Ipv4Packet, Ipv4Repr, TcpControl, TcpPacket, TcpRepr,
    TcpSeqNumber,
};

/// The file the server sends: a few segments, so the injections meet every phase.
pub const FILE_LEN: usize = 3000;
const CLIENT_PORT: u16 = 49152;
const MTU: usize = 1500;
/// At most this many injections are read from one input.
const MAX_INJECTIONS: usize = 64;
const TIMEOUTS: Timeouts = Timeouts {
    connect: Duration::from_secs(5),
    handshake: Duration::from_secs(5),
    idle: Duration::from_secs(10),
    min_rate: 64,
    reply: Duration::from_secs(5),
    stall: Duration::from_secs(10),
    linger: Duration::ZERO,
};
/// After the last injection, both ends have this long to finish. Far more than the timeouts
/// allow a connection that makes no progress, and a 3000-byte file makes little.
const GRACE: Duration = Duration::from_secs(120);

const SERVER: Ipv4Address = Ipv4Address::new(10, 0, 0, 1);
const CLIENT: Ipv4Address = Ipv4Address::new(10, 0, 0, 2);

/// The file: bytes that differ from their neighbours, so a misplaced byte shows.
pub fn file() -> Vec<u8> {
    (0..FILE_LEN as u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect()
}

/// The fuzz input, consumed from the front; exhausted, it reads as zeros.
struct Input<'a>(&'a [u8]);

impl Input<'_> {
    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    fn u8(&mut self) -> u8 {
        let Some((&b, rest)) = self.0.split_first() else {
            return 0;
        };
        self.0 = rest;
        b
    }

    fn u16(&mut self) -> u16 {
        u16::from_le_bytes([self.u8(), self.u8()])
    }

    fn bytes(&mut self, n: usize) -> &[u8] {
        let (head, rest) = self.0.split_at(n.min(self.0.len()));
        self.0 = rest;
        head
    }
}

/// One forged packet.
#[derive(Debug, Clone)]
enum Packet {
    /// A TCP segment on the connection's addresses, its numbers relative to the live ones.
    Segment {
        /// Which of two client ports it claims (the second is no connection at all).
        other_port: bool,
        control: TcpControl,
        ack: bool,
        seq_delta: i16,
        ack_delta: i16,
        window: u16,
        /// Towards the server: the payload. Towards the client: its length (the bytes are the
        /// file's).
        payload: Vec<u8>,
    },
    /// Raw bytes handed to the IP layer.
    Raw(Vec<u8>),
}

#[derive(Debug, Clone)]
struct Injection {
    at: Instant,
    towards: Side,
    packet: Packet,
}

fn decode(data: &[u8]) -> (Link, u64, Vec<Injection>) {
    let mut input = Input(data);
    let setting = input.u8();
    // Low bit: a lossy wire (retransmissions meet the forged packets); the rest seeds it.
    let link = Link {
        loss_ppm: if setting & 1 == 1 { 50_000 } else { 0 },
        ..Link::clean(MTU)
    };
    let mut injections = Vec::new();
    let mut at = Instant::ZERO;
    while !input.is_empty() && injections.len() < MAX_INJECTIONS {
        let op = input.u8();
        // Up to about two seconds between injections, in 8 ms steps.
        at += Duration::from_millis(8 * u64::from(input.u8()));
        let towards = if op & 1 == 0 {
            Side::Server
        } else {
            Side::Client
        };
        // Raw bytes only towards the server: a well-formed raw segment towards the client could
        // carry bytes that are not the file's (see the module docs).
        let packet = if op >> 1 & 7 == 7 && towards == Side::Server {
            let len = usize::from(input.u8());
            Packet::Raw(input.bytes(len).to_vec())
        } else {
            let flags = input.u8();
            let control = match flags & 7 {
                1 => TcpControl::Syn,
                2 => TcpControl::Fin,
                3 => TcpControl::Rst,
                4 => TcpControl::Psh,
                _ => TcpControl::None,
            };
            let seq_delta = input.u16() as i16;
            let ack_delta = input.u16() as i16;
            let window = input.u16();
            let len = usize::from(input.u8() & 0x7f);
            let payload = match towards {
                Side::Server => input.bytes(len).to_vec(),
                Side::Client => vec![0; len],
            };
            Packet::Segment {
                other_port: op & 0x10 != 0,
                control,
                ack: flags & 8 != 0,
                seq_delta,
                ack_delta,
                window,
                payload,
            }
        };
        injections.push(Injection {
            at,
            towards,
            packet,
        });
    }
    (link, u64::from(setting), injections)
}

/// The live connection's numbers, as each real host last sent them.
#[derive(Debug, Default, Clone, Copy)]
struct Seen {
    /// Next sequence number and last acknowledgement each side sent: `[server, client]`.
    next_seq: [u32; 2],
    last_ack: [u32; 2],
    /// The server's initial sequence number, from its SYN-ACK.
    server_isn: Option<u32>,
}

impl Seen {
    fn record(&mut self, packet: &[u8]) {
        let Some(seg) = Segment::parse(Medium::Ip, packet) else {
            return;
        };
        let side = usize::from(seg.src.port != DEFAULT_PORT);
        self.next_seq[side] = seg.seq.wrapping_add(seg.seq_len());
        if let Some(ack) = seg.ack {
            self.last_ack[side] = ack;
        }
        if seg.syn && side == 0 {
            self.server_isn = Some(seg.seq);
        }
    }
}

/// A host's device that notes the numbers of every segment the real host sends.
struct Spy<'s, 'w> {
    host: Host<'w, MTU, 16>,
    seen: &'s mut Seen,
}

struct SpyTx<'a> {
    inner: halfclose::sim::TxToken<'a, MTU, 16>,
    seen: &'a mut Seen,
}

impl phy::TxToken for SpyTx<'_> {
    fn consume<R, F>(self, len: usize, f: F) -> R
    where
        F: FnOnce(&mut [u8]) -> R,
    {
        let seen = self.seen;
        self.inner.consume(len, |buf| {
            let r = f(buf);
            seen.record(buf);
            r
        })
    }
}

impl Device for Spy<'_, '_> {
    type RxToken<'a>
        = halfclose::device::RxToken<'a>
    where
        Self: 'a;
    type TxToken<'a>
        = SpyTx<'a>
    where
        Self: 'a;

    fn receive(&mut self, now: Instant) -> Option<(Self::RxToken<'_>, Self::TxToken<'_>)> {
        let (rx, tx) = self.host.receive(now)?;
        Some((
            rx,
            SpyTx {
                inner: tx,
                seen: self.seen,
            },
        ))
    }

    fn transmit(&mut self, now: Instant) -> Option<Self::TxToken<'_>> {
        Some(SpyTx {
            inner: self.host.transmit(now)?,
            seen: self.seen,
        })
    }

    fn capabilities(&self) -> DeviceCapabilities {
        self.host.capabilities()
    }
}

/// Build the forged packet's bytes, within what the module docs allow.
fn forge(packet: &Packet, towards: Side, seen: &Seen, file: &[u8]) -> Vec<u8> {
    let (other_port, mut control, ack, seq_delta, ack_delta, window, payload) = match packet {
        Packet::Raw(bytes) => return bytes.clone(),
        Packet::Segment {
            other_port,
            control,
            ack,
            seq_delta,
            ack_delta,
            window,
            payload,
        } => (
            *other_port,
            *control,
            *ack,
            *seq_delta,
            *ack_delta,
            *window,
            payload,
        ),
    };
    let client_port = CLIENT_PORT + u16::from(other_port);
    // The forged segment claims to come from the other real host.
    let from = match towards {
        Side::Server => 1,
        Side::Client => 0,
    };
    let mut seq = seen.next_seq[from].wrapping_add(seq_delta as i32 as u32);
    let ack_number = seen.last_ack[from].wrapping_add(ack_delta as i32 as u32);
    let (src, dst, src_port, dst_port) = match towards {
        Side::Server => (CLIENT, SERVER, client_port, DEFAULT_PORT),
        Side::Client => (SERVER, CLIENT, DEFAULT_PORT, client_port),
    };
    let owned;
    let payload: &[u8] = match towards {
        Side::Server => payload,
        Side::Client => {
            // A SYN towards the client carries the server's own initial sequence number: with
            // another one, the client would take the forger for the server, as any TCP would.
            if control == TcpControl::Syn {
                match seen.server_isn {
                    Some(isn) => seq = isn,
                    None => control = TcpControl::None,
                }
            }
            // The file's own bytes at the position `seq` names; none where there are none.
            let start = seen
                .server_isn
                .map(|isn| seq.wrapping_sub(isn.wrapping_add(1)) as usize)
                .filter(|&s| s <= FILE_LEN && control != TcpControl::Syn);
            let bytes = start.map_or(&[][..], |s| &file[s..(s + payload.len()).min(FILE_LEN)]);
            // A FIN anywhere but at the file's end would end the file early: any TCP receiver
            // takes an in-window FIN for the sender's.
            let ends_the_file = start.is_some_and(|s| s + bytes.len() == FILE_LEN);
            if control == TcpControl::Fin && !ends_the_file {
                control = TcpControl::None;
            }
            owned = bytes.to_vec();
            &owned
        }
    };
    let tcp = TcpRepr {
        src_port,
        dst_port,
        control,
        seq_number: TcpSeqNumber(seq as i32),
        ack_number: ack.then_some(TcpSeqNumber(ack_number as i32)),
        window_len: window,
        window_scale: None,
        max_seg_size: (control == TcpControl::Syn).then_some(1460),
        sack_permitted: false,
        sack_ranges: [None; 3],
        timestamp: None,
        payload,
    };
    let ip = Ipv4Repr {
        src_addr: src,
        dst_addr: dst,
        next_header: IpProtocol::Tcp,
        payload_len: tcp.buffer_len(),
        hop_limit: 64,
    };
    let mut bytes = vec![0; ip.buffer_len() + tcp.buffer_len()];
    let caps = ChecksumCapabilities::default();
    ip.emit(&mut Ipv4Packet::new_unchecked(&mut bytes[..]), &caps);
    tcp.emit(
        &mut TcpPacket::new_unchecked(&mut bytes[ip.buffer_len()..]),
        &IpAddress::Ipv4(src),
        &IpAddress::Ipv4(dst),
        &caps,
    );
    bytes
}

/// How a run ended (for the seeded runner's statistics).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Summary {
    /// The client received the whole file and the server its "Thank you\0".
    pub delivered: bool,
    /// Forged packets put on the wire.
    pub injected: usize,
}

/// Run one input. Panics if a property fails: that is the finding.
pub fn run(data: &[u8]) -> Summary {
    let file = file();
    let (link, seed, injections) = decode(data);
    let mut wire = Box::new(Wire::<MTU, 16>::new(seed, link, link));
    let mut net = Network::new(
        &mut wire,
        SocketSet::new(Vec::new()),
        SocketSet::new(Vec::new()),
    );
    let socket = || {
        tcp::Socket::new(
            tcp::SocketBuffer::new(vec![0; 2048]),
            tcp::SocketBuffer::new(vec![0; 2048]),
        )
    };
    let handles = [
        net.server_sockets.add(socket()),
        net.server_sockets.add(socket()),
    ];
    let c = net.client_sockets.add(socket());
    let mut server = server::Server::listen(
        &mut net.server_sockets,
        handles,
        DEFAULT_PORT,
        &file[..],
        TIMEOUTS,
    )
    .expect("listen");
    let start = net.now();
    let mut client = client::Client::connect(
        net.client.context(),
        &mut net.client_sockets,
        c,
        client::Connect::to((IpAddress::Ipv4(SERVER), DEFAULT_PORT))
            .from_port(CLIENT_PORT)
            .timeouts(TIMEOUTS),
        Vec::new(),
        start,
    )
    .expect("connect");

    let last = injections.last().map_or(Instant::ZERO, |i| i.at);
    let deadline = last + GRACE;
    let mut seen = Seen::default();
    let mut pending = injections.into_iter().peekable();
    let mut injected = 0;
    let mut served = Vec::new();
    let mut fetched = None;
    for step in 0.. {
        // The clock moves at every step, a microsecond at least; a run this long has stopped.
        assert!(step < 1_000_000, "no end after a million steps");
        let now = net.now();
        assert!(
            now <= deadline,
            "still running at {now}: client {:?}, {} server connection(s) busy",
            client.state(),
            server.busy()
        );
        net.server.poll(
            now,
            &mut Spy {
                host: net.wire.host(Side::Server),
                seen: &mut seen,
            },
            &mut net.server_sockets,
        );
        net.client.poll(
            now,
            &mut Spy {
                host: net.wire.host(Side::Client),
                seen: &mut seen,
            },
            &mut net.client_sockets,
        );
        served.extend(server.poll(now, &mut net.server_sockets));
        if fetched.is_none()
            && let Poll::Ready(result) = client.poll(now, &mut net.client_sockets)
        {
            fetched = Some(result);
        }
        while let Some(injection) = pending.next_if(|i| i.at <= now) {
            let bytes = forge(&injection.packet, injection.towards, &seen, &file);
            // The segment parser must take any packet, too.
            let _ = Segment::parse(Medium::Ip, &bytes);
            let from = match injection.towards {
                Side::Server => Side::Client,
                Side::Client => Side::Server,
            };
            let mut host = net.wire.host(from);
            if let Some(tx) = host.transmit(now)
                && bytes.len() <= MTU
            {
                phy::TxToken::consume(tx, bytes.len(), |buf| buf.copy_from_slice(&bytes));
                injected += 1;
            }
        }
        let over = fetched.is_some() && server.busy() == 0 && pending.peek().is_none();
        if over {
            break;
        }
        let next_injection = pending.peek().map(|i| i.at);
        net.advance([
            server.poll_at(),
            client.deadline(),
            next_injection,
            Some(deadline + Duration::from_micros(1)),
        ]);
    }

    let fetched = fetched.expect("the client ended");
    let got = client.into_sink();
    assert!(
        got.len() <= FILE_LEN,
        "{} bytes of a {FILE_LEN}-byte file",
        got.len()
    );
    assert!(got == file[..got.len()], "a byte the server never sent");
    match &fetched {
        Ok(report) => {
            assert_eq!(got.len(), FILE_LEN, "done with part of the file");
            assert_eq!(report.bytes, FILE_LEN as u64);
        }
        Err(error) => assert_eq!(error.bytes(), got.len() as u64, "{error}"),
    }
    for report in served.iter().flatten() {
        assert!(report.reply.is_thank_you(), "done with {}", report.reply);
        assert_eq!(report.bytes, FILE_LEN as u64);
    }
    Summary {
        delivered: fetched.is_ok() && served.iter().any(|r| r.is_ok()),
        injected,
    }
}
