//! The firmware on a real network: the board's network card (the LM3S6965's Ethernet MAC, or
//! QEMU `virt`'s virtio-net device on RISC-V), a static IPv4 address, ARP, and time from the
//! board's counter (SysTick, or `mtime`). First it serves its 64 KiB file to eight clients that connect to port 7891
//! at once (a pool of two sockets, the others' SYNs held in a listen backlog until a socket is
//! free; each must say "Thank you"), then it fetches a file from 192.168.69.100:7892 and thanks
//! that server. `scripts/firmware-net.sh` puts a Linux network namespace on the other end.

use core::task::Poll;

use smoltcp::iface::{Config, Interface, SocketSet, SocketStorage};
use smoltcp::socket::tcp;
use smoltcp::time::{Duration, Instant};
use smoltcp::wire::{EthernetAddress, HardwareAddress, IpAddress, IpCidr};
use static_cell::{ConstStaticCell, StaticCell};

use halfclose::backlog::Backlog;
use halfclose::{Timeouts, client, server};
// The link, the buffers and the RAM line: shared with the async image (`firmware/common`).
use halfclose_firmware_common::net::{
    ADDR, DATA, FETCH_PORT, LIMIT_SECS, MAC, NIC_BUFFERS, PEER, SERVE_PORT, SMALL, print_ram,
};

use crate::clock::Timer;
#[cfg(target_arch = "arm")]
use crate::enet::Enet;
#[cfg(target_arch = "arm")]
use crate::phy::Phy;
use crate::semihosting::hprintln;
use crate::{board, payload};
#[cfg(target_arch = "riscv32")]
use halfclose_firmware_common::virtio::VirtioNet;

/// The network card as smoltcp sees it, and its name for the banner.
#[cfg(target_arch = "arm")]
type Nic = Phy;
#[cfg(target_arch = "arm")]
const NIC_NAME: &str = "its Ethernet MAC";
#[cfg(target_arch = "riscv32")]
type Nic = VirtioNet;
#[cfg(target_arch = "riscv32")]
const NIC_NAME: &str = "virtio-net (virtio-mmio)";

/// Each phase must be over by then.
const LIMIT: Duration = Duration::from_secs(LIMIT_SECS);

/// The server's sockets, and how many clients it serves (the others wait in the backlog).
const POOL: usize = 2;
const CLIENTS: usize = 8;
/// SYNs that may wait for a socket: as many as the clients, so none is dropped.
const BACKLOG: usize = 8;

static NIC: StaticCell<Nic> = StaticCell::new();
static SOCKET_BUFFERS: ConstStaticCell<[[u8; DATA]; POOL + 1]> =
    ConstStaticCell::new([[0; DATA]; POOL + 1]);
static SMALL_BUFFERS: ConstStaticCell<[[u8; SMALL]; POOL + 1]> =
    ConstStaticCell::new([[0; SMALL]; POOL + 1]);
static BACKLOG_QUEUE: ConstStaticCell<Backlog<BACKLOG>> =
    ConstStaticCell::new(Backlog::new(SERVE_PORT));

/// The board's counter as smoltcp time.
struct Clock {
    systick: Timer,
    hz: u64,
}

impl Clock {
    /// On a Cortex-M, the core clock's rate is measured once at start against the host's
    /// semihosting clock (QEMU's model of the board sets it from registers this image does not
    /// program); from then on time is SysTick's alone.
    #[cfg(target_arch = "arm")]
    fn start() -> Option<Self> {
        fn semihosting_centiseconds() -> usize {
            // SAFETY: SYS_CLOCK takes no argument and only returns a value.
            unsafe { crate::semihosting::syscall!(CLOCK) }
        }
        let systick = Timer::take()?;
        let start = semihosting_centiseconds();
        while semihosting_centiseconds() == start {}
        let (c0, t0) = (systick.ticks(), semihosting_centiseconds());
        while semihosting_centiseconds() < t0 + 20 {}
        let hz = (systick.ticks() - c0) * 100 / 20;
        Some(Clock {
            systick,
            hz: hz.max(1),
        })
    }

    /// On RISC-V, `mtime`'s rate is the board's (10 MHz on QEMU `virt`).
    #[cfg(target_arch = "riscv32")]
    fn start() -> Option<Self> {
        Some(Clock {
            systick: Timer::take()?,
            hz: Timer::HZ,
        })
    }

    fn now(&self) -> Instant {
        Instant::from_micros((self.systick.ticks() * 1_000_000 / self.hz) as i64)
    }
}

/// The board's network card, in its static.
#[cfg(target_arch = "arm")]
fn open_nic() -> Option<&'static mut Nic> {
    Some(NIC.init(Phy(Enet::new(MAC, NIC_BUFFERS.take()))))
}

#[cfg(target_arch = "riscv32")]
fn open_nic() -> Option<&'static mut Nic> {
    match VirtioNet::new(NIC_BUFFERS.take()) {
        Ok(nic) => Some(NIC.init(nic)),
        Err(e) => {
            hprintln!("error: {}", e);
            None
        }
    }
}

/// Serve, then fetch. Returns whether both went as the protocol says.
pub fn run() -> bool {
    let Some(clock) = Clock::start() else {
        hprintln!("error: the timer is taken already");
        return false;
    };
    hprintln!(
        "halfclose on {} over {}: {} at {}, {} at {} Hz",
        board::NAME,
        NIC_NAME,
        EthernetAddress(MAC),
        ADDR,
        Timer::NAME,
        clock.hz
    );

    let Some(device) = open_nic() else {
        return false;
    };
    let mut config = Config::new(HardwareAddress::Ethernet(EthernetAddress(MAC)));
    config.random_seed = clock.systick.ticks() ^ 0x6861_6c66;
    let mut iface = Interface::new(config, device, clock.now());
    iface.update_ip_addrs(|addrs| {
        let _ = addrs.push(IpCidr::new(IpAddress::Ipv4(ADDR), 24));
    });
    let [server_tx0, server_tx1, client_rx] = SOCKET_BUFFERS.take();
    let [server_rx0, server_rx1, client_tx] = SMALL_BUFFERS.take();
    let mut storage: [SocketStorage; POOL + 1] = core::array::from_fn(|_| SocketStorage::default());
    let mut sockets = SocketSet::new(&mut storage[..]);
    let pool = [(server_rx0, server_tx0), (server_rx1, server_tx1)].map(|(rx, tx)| {
        sockets.add(tcp::Socket::new(
            tcp::SocketBuffer::new(&mut rx[..]),
            tcp::SocketBuffer::new(&mut tx[..]),
        ))
    });
    let c = sockets.add(tcp::Socket::new(
        tcp::SocketBuffer::new(&mut client_rx[..]),
        tcp::SocketBuffer::new(&mut client_tx[..]),
    ));
    // No linger: the pool takes nothing back here (below), so a finished socket listens again
    // as soon as its last ACK has left, for the next held client.
    let timeouts = Timeouts::DEFAULT.with_linger(Duration::ZERO);

    // 1. Serve the file to the Linux clients.
    let source: &[u8] = &payload::PAYLOAD;
    let mut server =
        match server::Server::<_, POOL>::listen(&mut sockets, pool, SERVE_PORT, source, timeouts) {
            Ok(server) => server,
            Err(e) => {
                hprintln!("server: error: {}", e);
                return false;
            }
        };
    // No taking back of slots: behind a backlog, a held SYN handed to the last listening
    // socket while the other socket's handshake is still on its way would make the pool take
    // that handshake back (its reclaim policy against forged SYNs), and on an emulated board a
    // real client's handshake can take that long. See docs/server.md.
    server.set_reclaim(false);
    let backlog = BACKLOG_QUEUE.take();
    backlog.admit(server.listening());
    let begin = clock.now();
    let (mut served, mut ended) = (0, 0);
    while ended < CLIENTS && clock.now() - begin < LIMIT {
        let now = clock.now();
        iface.poll(now, &mut backlog.guard(&mut *device), &mut sockets);
        for result in server.poll(now, &mut sockets) {
            ended += 1;
            served += usize::from(print_served(result));
        }
        server.admit(backlog, &mut sockets);
    }
    // Let the last ACK leave before the sockets are used no more.
    while server.lingering() > 0 && clock.now() - begin < LIMIT {
        let now = clock.now();
        iface.poll(now, &mut *device, &mut sockets);
        // Only lingering slots are left: nothing more to report.
        let _ = server.poll(now, &mut sockets);
    }
    let stats = backlog.stats();
    hprintln!(
        "server: served {} of {} clients with a pool of {}; backlog: held {}, refused {}, dropped {}",
        served,
        CLIENTS,
        POOL,
        stats.held,
        stats.refused,
        stats.dropped
    );
    let mut passed = served == CLIENTS;

    // 2. Fetch a file from the Linux server and thank it.
    let mut client = match client::Client::connect(
        iface.context(),
        &mut sockets,
        c,
        client::Connect::to((IpAddress::Ipv4(PEER), FETCH_PORT))
            .from_port(49152)
            .timeouts(timeouts),
        payload::Check::new(),
        clock.now(),
    ) {
        Ok(client) => client,
        Err(e) => {
            hprintln!("client: error: {}", e);
            return false;
        }
    };
    let begin = clock.now();
    let fetched = loop {
        let now = clock.now();
        iface.poll(now, &mut *device, &mut sockets);
        if let Poll::Ready(result) = client.poll(now, &mut sockets) {
            break Some(result);
        }
        if now - begin > LIMIT {
            break None;
        }
    };
    let check = client.into_sink();
    match fetched {
        Some(Ok(report)) => {
            let ms = report.duration().total_millis().max(1);
            hprintln!(
                "client: received {} bytes from {} in {} ms ({} KB/s), crc32 {:08x}, {}; replied \"Thank you\\0\"",
                report.bytes,
                report.remote,
                ms,
                report.bytes / ms,
                check.crc(),
                check.verdict(),
            );
            passed &= check.is_payload();
        }
        Some(Err(e)) => {
            hprintln!("client: error: {} ({} bytes checked)", e, check.bytes());
            passed = false;
        }
        None => {
            hprintln!("client: not done within {} s", LIMIT.secs());
            passed = false;
        }
    }
    print_ram((POOL + 1) * (DATA + SMALL));
    passed
}

/// Print one client's outcome; whether it was served whole, with its "Thank you".
fn print_served(result: Result<server::Report, halfclose::Error>) -> bool {
    let report = match result {
        Ok(report) => report,
        Err(e) => {
            hprintln!("server: error: {}", e);
            return false;
        }
    };
    let ms = report.duration().total_millis().max(1);
    hprintln!(
        "server: sent {} bytes to {} in {} ms ({} KB/s); reply {} {} ms {} our FIN",
        report.bytes,
        report.remote.map_or(IpAddress::Ipv4(PEER), |r| r.addr),
        ms,
        report.bytes / ms,
        report.reply,
        report.reply_timing.duration().total_millis(),
        if report.reply_timing.is_before_fin() {
            "before"
        } else {
            "after"
        },
    );
    report.reply.is_thank_you() && report.bytes == payload::LEN as u64
}
