//! The transfer: one smoltcp interface over `halfclose::device::Loopback`, the halfclose server
//! and/or client on it, driven by a step clock until both sides are done, then the summary.
//!
//! The loop is the one every smoltcp program has: `iface.poll`, then each state machine's
//! `poll` with the same `now`, then the clock moves on. On a board, `now` comes from a hardware
//! timer and the loop sleeps (`wfi`) until `iface.poll_delay` or the NIC's interrupt.

#[cfg(feature = "client")]
use core::task::Poll;

use cortex_m_semihosting::hprintln;
use smoltcp::iface::{Config, Interface, SocketSet, SocketStorage};
use smoltcp::phy::Medium;
use smoltcp::socket::tcp;
use smoltcp::time::{Duration, Instant};
#[cfg(feature = "ethernet")]
use smoltcp::wire::EthernetAddress;
use smoltcp::wire::{HardwareAddress, IpAddress, IpCidr, Ipv4Address};
use static_cell::{ConstStaticCell, StaticCell};

use halfclose::device::Loopback;
use halfclose::{Error, Timeouts};

use crate::clock::{StepClock, SysTickTimer};
use crate::{payload, stack};

/// The loopback's medium and packet size: bare IP packets by default; Ethernet frames (14 bytes
/// more) with the `ethernet` feature, as a board's Ethernet MAC needs.
#[cfg(not(feature = "ethernet"))]
const MEDIUM: Medium = Medium::Ip;
#[cfg(not(feature = "ethernet"))]
const MTU: usize = 1500;
#[cfg(feature = "ethernet")]
const MEDIUM: Medium = Medium::Ethernet;
#[cfg(feature = "ethernet")]
const MTU: usize = 1514;
/// Packets the loopback holds.
const SLOTS: usize = 4;

/// The interface's one address: server and client both live on it.
const ADDR: Ipv4Address = Ipv4Address::new(127, 0, 0, 1);
const PORT: u16 = halfclose::DEFAULT_PORT;
#[cfg(feature = "client")]
const CLIENT_PORT: u16 = 49152;

/// Socket buffers. The server's receive buffer only ever holds the 10-byte reply; the client's
/// transmit buffer only the reply. The data direction gets 4 KiB each way, a window of almost
/// three full segments.
const SERVER_RX: usize = 64;
const SERVER_TX: usize = 4096;
const CLIENT_RX: usize = 4096;
const CLIENT_TX: usize = 64;

const SOCKETS: usize = cfg!(feature = "server") as usize + cfg!(feature = "client") as usize;

/// RAM that is socket buffers, reported apart from the rest.
const SOCKET_BUFFERS: usize = if cfg!(feature = "server") {
    SERVER_RX + SERVER_TX
} else {
    0
} + if cfg!(feature = "client") {
    CLIENT_RX + CLIENT_TX
} else {
    0
};

/// The run fails if it is not over by then (simulated time).
const LIMIT: Duration = Duration::from_secs(60);
/// How long the server-only image listens before it stops.
#[cfg(not(feature = "client"))]
const LISTEN_ALONE: Duration = Duration::from_secs(1);

// Large or long-lived memory is placed by the linker (in `.bss`), each piece taken exactly once:
// no `static mut`, no copy through the stack. The device is built in place at run time: as a
// constant its non-zero fields would put all of its ring in `.data`, costing flash for zeros.
static DEVICE: StaticCell<Loopback<MTU, SLOTS>> = StaticCell::new();
#[cfg(feature = "server")]
static SERVER_BUFFERS: ConstStaticCell<([u8; SERVER_RX], [u8; SERVER_TX])> =
    ConstStaticCell::new(([0; SERVER_RX], [0; SERVER_TX]));
#[cfg(feature = "client")]
static CLIENT_BUFFERS: ConstStaticCell<([u8; CLIENT_RX], [u8; CLIENT_TX])> =
    ConstStaticCell::new(([0; CLIENT_RX], [0; CLIENT_TX]));

/// How the run ended, for [`report`].
struct Outcome {
    /// The simulated-time limit passed before the sides were done.
    over: bool,
    #[cfg(feature = "server")]
    server: Option<Result<halfclose::server::Report, Error>>,
    #[cfg(feature = "client")]
    client: Option<Result<halfclose::client::Report, Error>>,
    /// What the client's sink saw.
    #[cfg(feature = "client")]
    check: payload::Check,
    clock: StepClock,
    cycles: u64,
    /// The stack's peak when the transfer was over, before the summary was formatted.
    stack_peak: usize,
}

/// Set up, transfer, report. Returns whether everything this image does went as expected.
pub fn run() -> bool {
    let Some(peripherals) = cortex_m::Peripherals::take() else {
        hprintln!("error: core peripherals already taken");
        return false;
    };
    let systick = SysTickTimer::start(peripherals.SYST);
    banner();
    match transfer(&systick) {
        Ok(outcome) => report(&outcome),
        Err(error) => {
            hprintln!("error: setting up: {}", error);
            false
        }
    }
}

/// Build the interface and the sockets, start the server and/or the client, and poll them all
/// until each side is done.
fn transfer(systick: &SysTickTimer) -> Result<Outcome, Error> {
    let mut clock = StepClock::new();
    let timeouts = Timeouts::DEFAULT;

    let device = DEVICE.init_with(|| Loopback::new(MEDIUM));
    #[cfg(not(feature = "ethernet"))]
    let hardware_addr = HardwareAddress::Ip;
    // A locally administered unicast MAC address.
    #[cfg(feature = "ethernet")]
    let hardware_addr = HardwareAddress::Ethernet(EthernetAddress([0x02, 0, 0, 0, 0, 1]));
    let mut config = Config::new(hardware_addr);
    // Fixed, so every run is the same: ports and sequence numbers come from this seed.
    config.random_seed = 0x6861_6c66_636c_6f73;
    let mut iface = Interface::new(config, device, clock.now());
    iface.update_ip_addrs(|addrs| {
        // A fresh interface has room for IFACE_MAX_ADDR_COUNT (2) addresses.
        let _ = addrs.push(IpCidr::new(IpAddress::Ipv4(ADDR), 8));
    });
    let mut storage = [SocketStorage::EMPTY; SOCKETS];
    let mut sockets = SocketSet::new(&mut storage[..]);

    #[cfg(feature = "server")]
    let mut server = {
        let (rx, tx) = SERVER_BUFFERS.take();
        let socket = tcp::Socket::new(
            tcp::SocketBuffer::new(&mut rx[..]),
            tcp::SocketBuffer::new(&mut tx[..]),
        );
        let handle = sockets.add(socket);
        let source: &[u8] = &payload::PAYLOAD;
        halfclose::server::Server::<_, 1>::listen(&mut sockets, [handle], PORT, source, timeouts)?
    };
    #[cfg(feature = "server")]
    let mut server_result = None;

    #[cfg(feature = "client")]
    let (client_handle, mut client) = {
        let (rx, tx) = CLIENT_BUFFERS.take();
        let socket = tcp::Socket::new(
            tcp::SocketBuffer::new(&mut rx[..]),
            tcp::SocketBuffer::new(&mut tx[..]),
        );
        let handle = sockets.add(socket);
        let client = halfclose::client::Client::connect(
            iface.context(),
            sockets.get_mut::<tcp::Socket>(handle),
            (IpAddress::Ipv4(ADDR), PORT),
            CLIENT_PORT,
            payload::Check::new(),
            clock.now(),
            timeouts,
        )?;
        (handle, client)
    };
    #[cfg(feature = "client")]
    let mut client_result = None;

    let start_cycles = systick.cycles();
    let over = loop {
        let now = clock.now();
        iface.poll(now, device, &mut sockets);

        #[cfg(feature = "server")]
        for result in server.poll(now, &mut sockets) {
            server_result = Some(result);
        }
        #[cfg(feature = "client")]
        if client_result.is_none()
            && let Poll::Ready(result) =
                client.poll(now, sockets.get_mut::<tcp::Socket>(client_handle))
        {
            client_result = Some(result);
        }

        // The full image is over when both sides are; each single-side image when its side is
        // (the client's connection is refused), or, for the server, after it listened a while.
        #[cfg(all(feature = "server", feature = "client"))]
        let done = server_result.is_some() && client_result.is_some();
        #[cfg(all(feature = "server", not(feature = "client")))]
        let done = server_result.is_some() || now >= Instant::ZERO + LISTEN_ALONE;
        #[cfg(all(feature = "client", not(feature = "server")))]
        let done = client_result.is_some();
        if done {
            break false;
        }
        if now >= Instant::ZERO + LIMIT {
            break true;
        }
        clock.advance(device.queued() > 0, iface.poll_delay(now, &sockets));
    };
    let cycles = systick.cycles() - start_cycles;

    Ok(Outcome {
        over,
        #[cfg(feature = "server")]
        server: server_result,
        #[cfg(feature = "client")]
        client: client_result,
        #[cfg(feature = "client")]
        check: client.into_sink(),
        clock,
        cycles,
        stack_peak: stack::peak(),
    })
}

/// Out of line, like [`report`], so that formatting's stack frames are not added to the
/// transfer's.
#[inline(never)]
fn banner() {
    hprintln!(
        "halfclose on LM3S6965 (Cortex-M3): {} over Loopback<{}, {}> ({:?}), {} byte payload, crc32 {:08x}",
        if SOCKETS == 2 {
            "server + client"
        } else if cfg!(feature = "server") {
            "server only"
        } else {
            "client only"
        },
        MTU,
        SLOTS,
        MEDIUM,
        payload::LEN,
        payload::CRC,
    );
}

/// Print the summary; returns whether the run went as this image expects.
#[inline(never)]
fn report(outcome: &Outcome) -> bool {
    let mut passed = !outcome.over;
    if outcome.over {
        hprintln!(
            "error: not over after {} ms of simulated time",
            LIMIT.total_millis()
        );
    }

    #[cfg(feature = "server")]
    match &outcome.server {
        Some(Ok(report)) => hprintln!(
            "server: sent {} bytes, reply {} {} us {} its FIN, connection {} us",
            report.bytes,
            report.reply,
            report.reply_timing.duration().total_micros(),
            if report.reply_timing.is_before_fin() { "before" } else { "after" },
            report.duration().total_micros(),
        ),
        Some(Err(error)) => {
            hprintln!("server: error: {}", error);
            passed = false;
        }
        None => {
            // Expected only where no client runs.
            #[cfg(feature = "client")]
            {
                passed = false;
            }
            #[cfg(not(feature = "client"))]
            hprintln!(
                "server: listened {} ms, no client in this image",
                LISTEN_ALONE.total_millis()
            );
        }
    }

    #[cfg(feature = "client")]
    {
        let check = &outcome.check;
        match &outcome.client {
            Some(Ok(report)) => {
                hprintln!(
                    "client: received {} bytes in {} us, crc32 {:08x}, {}",
                    report.bytes,
                    report.transfer_time().total_micros(),
                    check.crc(),
                    match check.first_mismatch {
                        None => "every byte matches",
                        Some(_) => "BYTES DIFFER",
                    },
                );
                if !check.is_payload() {
                    hprintln!(
                        "client: error: expected {} bytes with crc32 {:08x}, first difference at {:?}",
                        payload::LEN,
                        payload::CRC,
                        check.first_mismatch,
                    );
                    passed = false;
                }
            }
            // With no server in the image, nobody listens: a refused connection is the
            // expected end.
            Some(Err(Error::Refused)) if !cfg!(feature = "server") => {
                hprintln!("client: connection refused, as expected with no server in this image");
            }
            Some(Err(error)) => {
                hprintln!(
                    "client: error: {} ({} bytes received)",
                    error,
                    check.bytes()
                );
                passed = false;
            }
            None => passed = false,
        }
    }

    hprintln!(
        "time: {} us on the step clock ({} polls), {} SysTick cycles",
        (outcome.clock.now() - Instant::ZERO).total_micros(),
        outcome.clock.steps(),
        outcome.cycles,
    );
    hprintln!(
        "ram: stack peak {} of {} bytes ({} until the transfer was over); socket buffers {} bytes; loopback ring {} bytes",
        stack::peak(),
        stack::size(),
        outcome.stack_peak,
        SOCKET_BUFFERS,
        core::mem::size_of::<Loopback<MTU, SLOTS>>(),
    );
    hprintln!(
        "sizes: Interface {} bytes, tcp::Socket {} bytes",
        core::mem::size_of::<Interface>(),
        core::mem::size_of::<tcp::Socket>(),
    );
    #[cfg(feature = "server")]
    hprintln!(
        "sizes: Server<&[u8], 1> {} bytes",
        core::mem::size_of::<halfclose::server::Server<&[u8], 1>>()
    );
    #[cfg(feature = "client")]
    hprintln!(
        "sizes: Client<Check> {} bytes",
        core::mem::size_of::<halfclose::client::Client<payload::Check>>()
    );
    passed
}
