//! One smoltcp interface on the in-memory loopback, a simulated clock, and a record of every
//! segment that crossed the wire: the bench the whole-transfer tests run on.
#![allow(dead_code)]

pub mod raw_peer;

use std::vec::Vec;

use halfclose::device::Loopback;
use halfclose::segment::Segment;
use halfclose::{Timeouts, client, server};
use smoltcp::iface::{Config, Interface, SocketHandle, SocketSet};
use smoltcp::phy::Medium;
use smoltcp::socket::tcp;
use smoltcp::time::{Duration, Instant};
use smoltcp::wire::{HardwareAddress, IpAddress, IpCidr};

pub const SERVER_V4: IpAddress = IpAddress::v4(10, 0, 0, 1);
pub const CLIENT_V4: IpAddress = IpAddress::v4(10, 0, 0, 2);
pub const SERVER_V6: IpAddress = IpAddress::v6(0xfd00, 0, 0, 0, 0, 0, 0, 1);
pub const CLIENT_V6: IpAddress = IpAddress::v6(0xfd00, 0, 0, 0, 0, 0, 0, 2);
pub const PORT: u16 = halfclose::DEFAULT_PORT;

/// A segment as it was received, with the time and (for short ones) its payload.
#[derive(Debug, Clone)]
pub struct Seen {
    pub at: Instant,
    pub seg: Segment,
    pub payload: Vec<u8>,
}

impl Seen {
    pub fn sent_by(&self, port: u16) -> bool {
        self.seg.src.port == port
    }
}

/// Loopback network: one interface holding every socket, `SLOTS = 16` packet slots of `MTU`.
pub struct Net<const MTU: usize> {
    pub iface: Interface,
    pub device: Box<Loopback<MTU, 16>>,
    pub sockets: SocketSet<'static>,
    pub now: Instant,
    pub trace: Vec<Seen>,
    /// Delayed-ACK setting for new sockets (none unless a test asks for smoltcp's default).
    pub ack_delay: Option<Duration>,
}

impl<const MTU: usize> Net<MTU> {
    pub fn new() -> Self {
        let mut device = Box::new(Loopback::<MTU, 16>::new(Medium::Ip));
        let mut config = Config::new(HardwareAddress::Ip);
        config.random_seed = 0x5eed;
        let now = Instant::ZERO;
        let mut iface = Interface::new(config, &mut *device, now);
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
        Net {
            iface,
            device,
            sockets: SocketSet::new(Vec::new()),
            now,
            trace: Vec::new(),
            ack_delay: None,
        }
    }

    /// A TCP socket with `rx`/`tx` byte buffers and `self.ack_delay` (none by default: nothing
    /// else runs on this clock, so a delayed ACK would only add idle simulated time).
    pub fn socket(&mut self, rx: usize, tx: usize) -> SocketHandle {
        let mut socket = tcp::Socket::new(
            tcp::SocketBuffer::new(vec![0; rx]),
            tcp::SocketBuffer::new(vec![0; tx]),
        );
        socket.set_ack_delay(self.ack_delay);
        self.sockets.add(socket)
    }

    pub fn tcp(&mut self, handle: SocketHandle) -> &mut tcp::Socket<'static> {
        self.sockets.get_mut::<tcp::Socket>(handle)
    }

    /// Deliver every queued packet one at a time (recording it), then send what the sockets have.
    pub fn step(&mut self) {
        while let Some(packet) = self.device.peek() {
            if let Some(seg) = Segment::parse(Medium::Ip, packet) {
                let payload = if seg.len() <= 64 {
                    packet[seg.payload()].to_vec()
                } else {
                    Vec::new()
                };
                self.trace.push(Seen {
                    at: self.now,
                    seg,
                    payload,
                });
            }
            self.iface
                .poll_ingress_single(self.now, &mut *self.device, &mut self.sockets);
        }
        self.iface
            .poll_egress(self.now, &mut *self.device, &mut self.sockets);
    }

    /// Move the clock to the next moment anything can happen. With packets in flight that is now.
    pub fn advance(&mut self) {
        if self.device.queued() > 0 {
            return;
        }
        match self.iface.poll_delay(self.now, &self.sockets) {
            Some(Duration::ZERO) => {}
            Some(delay) => self.now += delay,
            // No timer pending: let the protocol machines' own timeouts come due.
            None => self.now += Duration::from_millis(100),
        }
    }

    /// Step until `done` says so, or panic at the simulated `deadline` (the test fails, it
    /// never hangs). Also bounded in steps, in case the clock stops moving.
    pub fn drive(&mut self, deadline: Duration, mut done: impl FnMut(&mut Self) -> bool) {
        let end = self.now + deadline;
        for _ in 0..50_000_000u64 {
            self.step();
            if done(self) {
                return;
            }
            self.advance();
            assert!(
                self.now <= end,
                "still running at the simulated deadline {end}"
            );
        }
        panic!("no end after 50 million steps");
    }

    pub fn segments_from(&self, port: u16) -> impl Iterator<Item = &Seen> {
        self.trace.iter().filter(move |s| s.sent_by(port))
    }
}

/// The outcome of one whole transfer.
pub struct Transfer {
    pub server: Result<server::Report, halfclose::Error>,
    pub client: Result<client::Report, halfclose::Error>,
    pub received: Vec<u8>,
}

/// Serve `payload` to one client over a fresh loopback: sockets with `buffer`-byte buffers
/// (the client's receive buffer at most `client::MAX_RECEIVE_BUFFER`), addresses of the given
/// family.
pub fn transfer<const MTU: usize>(
    net: &mut Net<MTU>,
    payload: &[u8],
    buffer: usize,
    v6: bool,
) -> Transfer {
    let (server_addr, client_addr) = if v6 {
        (SERVER_V6, CLIENT_V6)
    } else {
        (SERVER_V4, CLIENT_V4)
    };
    let s = net.socket(buffer, buffer);
    let c = net.socket(buffer.min(client::MAX_RECEIVE_BUFFER), buffer);
    let mut server = server::Server::listen(
        &mut net.sockets,
        [s],
        (server_addr, PORT),
        payload,
        Timeouts::DEFAULT,
    )
    .unwrap();
    let mut client = client::Client::connect(
        net.iface.context(),
        &mut net.sockets,
        c,
        client::Connect::to((server_addr, PORT)).from((client_addr, 49152)),
        Vec::new(),
        net.now,
    )
    .unwrap();

    let mut server_result = None;
    let mut client_result = None;
    net.drive(Duration::from_secs(600), |net| {
        let now = net.now;
        for r in server.poll(now, &mut net.sockets) {
            server_result = Some(r);
        }
        if client_result.is_none()
            && let std::task::Poll::Ready(r) = client.poll(now, &mut net.sockets)
        {
            client_result = Some(r);
        }
        server_result.is_some() && client_result.is_some()
    });
    Transfer {
        server: server_result.unwrap(),
        client: client_result.unwrap(),
        received: client.into_sink(),
    }
}

/// Deterministic pseudo-random bytes (xorshift64*), so a failing size can be replayed.
pub fn random_bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut state = seed | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        state ^= state >> 12;
        state ^= state << 25;
        state ^= state >> 27;
        out.extend_from_slice(&state.wrapping_mul(0x2545_f491_4f6c_dd1d).to_le_bytes());
    }
    out.truncate(len);
    out
}
