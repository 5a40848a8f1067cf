//! The transfer: one smoltcp interface over `halfclose::device::Loopback`, the halfclose server
//! and/or client on it, driven by a step clock until both sides are done, then the summary.
//!
//! The loop is the one every smoltcp program has: the interface's poll (here receiving and
//! sending apart, each out of line, to keep the stack small), then each state machine's `poll`
//! with the same `now`, then the clock moves on. On a board, `now` comes from a hardware
//! timer and the loop sleeps (`wfi`) until `iface.poll_delay` or the NIC's interrupt.

use smoltcp::iface::{
    Config, Interface, PollIngressSingleResult, PollResult, SocketSet, SocketStorage,
};
use smoltcp::phy::Medium;
use smoltcp::socket::tcp;
use smoltcp::time::{Duration, Instant};
#[cfg(feature = "ethernet")]
use smoltcp::wire::EthernetAddress;
use smoltcp::wire::{HardwareAddress, IpAddress, IpCidr, Ipv4Address};
use static_cell::{ConstStaticCell, StaticCell};

use halfclose::device::Loopback;
use halfclose::{Error, Timeouts};

use crate::clock::{StepClock, Timer};
#[cfg(all(feature = "client", feature = "messages"))]
use crate::out;
#[cfg(all(feature = "server", feature = "messages"))]
use crate::out::Quoted;
#[cfg(not(feature = "messages"))]
use crate::out::Record;
use crate::out::line;
#[cfg(feature = "messages")]
use crate::out::{dec, hex};
use crate::{board, payload, stack};

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
const SLOTS: usize = board::SLOTS;

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
// no `static mut`, no copy through the stack. The device is built in place at run time
// (`Loopback::new_in`): as a constant its non-zero fields would put all of its ring in `.data`,
// costing flash for zeros, and returned by value it may pass through the stack (it does on the
// Cortex-M0, where that overflows the 16 KiB of RAM).
static DEVICE: StaticCell<Loopback<MTU, SLOTS>> = StaticCell::new();
#[cfg(feature = "server")]
static SERVER_BUFFERS: ConstStaticCell<([u8; SERVER_RX], [u8; SERVER_TX])> =
    ConstStaticCell::new(([0; SERVER_RX], [0; SERVER_TX]));
#[cfg(feature = "client")]
static CLIENT_BUFFERS: ConstStaticCell<([u8; CLIENT_RX], [u8; CLIENT_TX])> =
    ConstStaticCell::new(([0; CLIENT_RX], [0; CLIENT_TX]));

#[cfg(feature = "server")]
type Server = halfclose::server::Server<&'static [u8], 1>;
#[cfg(feature = "client")]
type Client = halfclose::client::Client<payload::Check>;

// The interface, the socket storage and the state machines live in statics too, built in place
// by `set_up`: the temporaries their constructors need are then in `set_up`'s stack frame, which
// is gone by the time the loop (and smoltcp's deepest calls) run. Same RAM, counted once.
static IFACE: StaticCell<Interface> = StaticCell::new();
// Built at run time: as a constant, the empty slots' non-zero fields would put it in `.data`,
// costing its size in flash too.
static SOCKET_STORAGE: StaticCell<[SocketStorage<'static>; SOCKETS]> = StaticCell::new();
#[cfg(feature = "server")]
static SERVER: StaticCell<Server> = StaticCell::new();
#[cfg(feature = "client")]
static CLIENT: StaticCell<Client> = StaticCell::new();

/// Everything the loop polls.
struct Parts {
    device: &'static mut Loopback<MTU, SLOTS>,
    iface: &'static mut Interface,
    sockets: SocketSet<'static>,
    #[cfg(feature = "server")]
    server: &'static mut Server,
    #[cfg(feature = "client")]
    client: &'static mut Client,
}

/// What each side ended with. The server's result is written where it lies, in [`run`]'s
/// frame: a result returned by value would have a copy in every frame it passes through, and
/// the deepest of those frames are the stack's peak. The client keeps its own (its
/// [`State`](halfclose::client::State) is `Done` or `Failed`): here only whether it ended, so
/// that the 56-byte result is not held twice, once under the whole transfer.
#[derive(Default)]
struct Results {
    #[cfg(feature = "server")]
    server: Option<Result<halfclose::server::Report, Error>>,
    #[cfg(feature = "client")]
    client_ended: bool,
}

/// How the run ended, for [`report`]. Only what [`run`]'s frame does not hold already: the
/// clock and the parts are lent to `report` where they lie (a copy of each would be in `run`'s
/// frame, under the whole transfer: 24 bytes on a Cortex-M0).
struct Outcome {
    /// The simulated-time limit passed before the sides were done.
    over: bool,
    /// Timer ticks the transfer took.
    cycles: u64,
    /// The stack's peak when the transfer was over, before the summary was printed.
    stack_peak: usize,
}

/// Set up, transfer, report. Returns whether everything this image does went as expected.
pub fn run() -> bool {
    let Some(systick) = Timer::take() else {
        return timer_taken();
    };
    banner();
    let mut clock = StepClock::new();
    let mut results = Results::default();
    match set_up(&clock) {
        Some(mut parts) => {
            let outcome = transfer(&systick, &mut clock, &mut parts, &mut results);
            report(
                &outcome,
                &clock,
                &results,
                #[cfg(feature = "client")]
                parts.client,
            )
        }
        None => false,
    }
}

// The two failures `run` prints, each out of line: a `line!` in `run` itself would put its
// buffer in `run`'s frame, which lies under the whole transfer and so under the stack's peak
// (128 bytes of it on every board).

#[cold]
#[inline(never)]
fn timer_taken() -> bool {
    line!("error: the timer is taken already");
    false
}

#[cold]
#[inline(never)]
fn set_up_failed(error: &Error) {
    #[cfg(feature = "messages")]
    line!("error: setting up: ", error);
    #[cfg(not(feature = "messages"))]
    Record::new("setup-error").error(error).end();
}

/// [`build`], its error printed here: `run` gets the parts or nothing, and its frame, under the
/// whole transfer, has no room for an [`Error`] (a `Result<Parts, Error>` is 32 bytes more
/// than an `Option<Parts>`).
#[inline(never)]
fn set_up(clock: &StepClock) -> Option<Parts> {
    build(clock).map_err(|error| set_up_failed(&error)).ok()
}

/// Build the interface and the sockets, and start the server and/or the client.
fn build(clock: &StepClock) -> Result<Parts, Error> {
    let timeouts = Timeouts::DEFAULT;

    let device = Loopback::new_in(DEVICE.uninit(), MEDIUM);
    #[cfg(not(feature = "ethernet"))]
    let hardware_addr = HardwareAddress::Ip;
    // A locally administered unicast MAC address.
    #[cfg(feature = "ethernet")]
    let hardware_addr = HardwareAddress::Ethernet(EthernetAddress([0x02, 0, 0, 0, 0, 1]));
    let mut config = Config::new(hardware_addr);
    // Fixed, so every run is the same: ports and sequence numbers come from this seed.
    config.random_seed = 0x6861_6c66_636c_6f73;
    let iface = IFACE.init_with(|| Interface::new(config, device, clock.now()));
    iface.update_ip_addrs(|addrs| {
        // A fresh interface has room for IFACE_MAX_ADDR_COUNT (2) addresses.
        let _ = addrs.push(IpCidr::new(IpAddress::Ipv4(ADDR), 8));
    });
    // `default()`, not `SocketStorage::EMPTY`: the constant is a whole socket's worth of bytes
    // (312 on these targets) copied from flash, where `default()` writes the empty slot's tag
    // alone. About 330 bytes less flash in every image.
    let storage = SOCKET_STORAGE.init_with(|| core::array::from_fn(|_| SocketStorage::default()));
    let mut sockets = SocketSet::new(&mut storage[..]);

    #[cfg(feature = "server")]
    let server = {
        let (rx, tx) = SERVER_BUFFERS.take();
        let socket = tcp::Socket::new(
            tcp::SocketBuffer::new(&mut rx[..]),
            tcp::SocketBuffer::new(&mut tx[..]),
        );
        let handle = sockets.add(socket);
        let source: &'static [u8] = &payload::PAYLOAD;
        SERVER.uninit().write(Server::listen(
            &mut sockets,
            [handle],
            PORT,
            source,
            timeouts,
        )?)
    };

    #[cfg(feature = "client")]
    let client = {
        let (rx, tx) = CLIENT_BUFFERS.take();
        let socket = tcp::Socket::new(
            tcp::SocketBuffer::new(&mut rx[..]),
            tcp::SocketBuffer::new(&mut tx[..]),
        );
        let handle = sockets.add(socket);
        let to = halfclose::client::Connect::to((IpAddress::Ipv4(ADDR), PORT))
            .from_port(CLIENT_PORT)
            .timeouts(timeouts);
        let client = Client::connect(
            iface.context(),
            &mut sockets,
            handle,
            to,
            payload::Check::new(),
            clock.now(),
        )?;
        CLIENT.uninit().write(client)
    };

    Ok(Parts {
        device,
        iface,
        sockets,
        #[cfg(feature = "server")]
        server,
        #[cfg(feature = "client")]
        client,
    })
}

/// Poll the interface, the server and/or the client until each side is done. In `run`'s frame:
/// a frame of its own, under every poll, would add its saved registers and the references it
/// is passed to the stack's peak (32 to 40 bytes).
#[inline(always)]
fn transfer(
    systick: &Timer,
    clock: &mut StepClock,
    parts: &mut Parts,
    results: &mut Results,
) -> Outcome {
    let Parts {
        device,
        iface,
        sockets,
        #[cfg(feature = "server")]
        server,
        #[cfg(feature = "client")]
        client,
    } = parts;
    let start_cycles = systick.ticks();
    let over = loop {
        let now = clock.now();
        poll_iface(iface, now, device, sockets);

        #[cfg(feature = "server")]
        poll_server(server, now, sockets, &mut results.server);
        #[cfg(feature = "client")]
        if !results.client_ended {
            results.client_ended = poll_client(client, now, sockets);
        }

        // The full image is over when both sides are; each single-side image when its side is
        // (the client's connection is refused), or, for the server, after it listened a while.
        #[cfg(all(feature = "server", feature = "client"))]
        let done = results.server.is_some() && results.client_ended;
        #[cfg(all(feature = "server", not(feature = "client")))]
        let done = results.server.is_some() || now >= Instant::ZERO + LISTEN_ALONE;
        #[cfg(all(feature = "client", not(feature = "server")))]
        let done = results.client_ended;
        if done {
            break false;
        }
        if now >= Instant::ZERO + LIMIT {
            break true;
        }
        advance(clock, iface, now, device, sockets);
    };
    let cycles = systick.ticks() - start_cycles;
    Outcome {
        over,
        cycles,
        stack_peak: stack::peak(),
    }
}

// The three polls, each out of line. Inlined into the loop, the temporaries of all three (packet
// representations, the sender's and receiver's state) would share one stack frame and add up;
// out of line, the deepest of them sets the peak. About 200 bytes of stack on a Cortex-M3.

/// What `Interface::poll` does, with receiving and sending each out of line: inlined into one
/// function their frames would add up (to 820 bytes on a Cortex-M0). This one is in the loop's
/// own frame: a frame of its own would add its saved registers under both (8 to 56 bytes).
#[inline(always)]
fn poll_iface(
    iface: &mut Interface,
    now: Instant,
    device: &mut Loopback<MTU, SLOTS>,
    sockets: &mut SocketSet<'_>,
) {
    iface.poll_maintenance(now);
    while receive_one(iface, now, device, sockets) {}
    while send(iface, now, device, sockets) {}
}

/// One received packet processed (and answered, where it needs an answer); false when none.
#[inline(never)]
fn receive_one(
    iface: &mut Interface,
    now: Instant,
    device: &mut Loopback<MTU, SLOTS>,
    sockets: &mut SocketSet<'_>,
) -> bool {
    iface.poll_ingress_single(now, device, sockets) != PollIngressSingleResult::None
}

/// What the sockets have to send, sent; false when nothing changed a socket's state.
#[inline(never)]
fn send(
    iface: &mut Interface,
    now: Instant,
    device: &mut Loopback<MTU, SLOTS>,
    sockets: &mut SocketSet<'_>,
) -> bool {
    iface.poll_egress(now, device, sockets) != PollResult::None
}

/// The clock moved on after a poll: by a step while packets wait on the link, else to smoltcp's
/// next deadline. Out of line: smoltcp's `poll_delay` walks the sockets, and inlined into the
/// loop its temporaries would be in the loop's frame, under the whole transfer.
#[inline(never)]
fn advance(
    clock: &mut StepClock,
    iface: &mut Interface,
    now: Instant,
    device: &Loopback<MTU, SLOTS>,
    sockets: &SocketSet<'_>,
) {
    clock.advance(device.queued() > 0, iface.poll_delay(now, sockets));
}

/// Keeps the last connection the server finished in this poll, if any.
#[cfg(feature = "server")]
#[inline(never)]
fn poll_server(
    server: &mut Server,
    now: Instant,
    sockets: &mut SocketSet<'_>,
    result: &mut Option<Result<halfclose::server::Report, Error>>,
) {
    // `pop` takes the last one where it lies; `into_iter().last()` would first move the whole
    // vector of results into an iterator, one more copy in this frame.
    if let Some(ended) = server.poll(now, sockets).pop() {
        *result = Some(ended);
    }
}

/// Whether the client ended (its state then says how).
#[cfg(feature = "client")]
#[inline(never)]
fn poll_client(client: &mut Client, now: Instant, sockets: &mut SocketSet<'_>) -> bool {
    client.poll(now, sockets).is_ready()
}

/// The medium's name, for the banner.
#[cfg(all(feature = "messages", not(feature = "ethernet")))]
const MEDIUM_NAME: &str = "Ip";
#[cfg(all(feature = "messages", feature = "ethernet"))]
const MEDIUM_NAME: &str = "Ethernet";

/// What the image holds, as bits: the server, the client, the Ethernet medium. The first number
/// of the small build's records, which `scripts/summary.py` reads their layout from.
#[cfg(not(feature = "messages"))]
const LAYOUT: u64 = cfg!(feature = "server") as u64
    | (cfg!(feature = "client") as u64) << 1
    | (cfg!(feature = "ethernet") as u64) << 2;

/// Out of line, like [`report`], so that printing's stack frames are not added to the
/// transfer's.
#[inline(never)]
fn banner() {
    #[cfg(feature = "messages")]
    line!(
        "halfclose on ",
        board::NAME,
        ": ",
        if SOCKETS == 2 {
            "server + client"
        } else if cfg!(feature = "server") {
            "server only"
        } else {
            "client only"
        },
        " over Loopback<",
        dec(MTU as u64),
        ", ",
        dec(SLOTS as u64),
        "> (",
        MEDIUM_NAME,
        "), ",
        dec(payload::LEN as u64),
        " byte payload, crc32 ",
        hex(payload::CRC),
    );
    // The same as a record: `scripts/summary.py` has the words, and the board's name.
    #[cfg(not(feature = "messages"))]
    Record::new("halfclose")
        .num(LAYOUT)
        .num(MTU as u64)
        .num(SLOTS as u64)
        .num(payload::LEN as u64)
        .num(payload::CRC.into())
        .end();
}

/// Print the summary; returns whether the run went as this image expects.
#[inline(never)]
fn report(
    outcome: &Outcome,
    clock: &StepClock,
    results: &Results,
    #[cfg(feature = "client")] client: &Client,
) -> bool {
    #[cfg(feature = "messages")]
    words(
        outcome,
        clock,
        results,
        #[cfg(feature = "client")]
        client,
    );
    #[cfg(not(feature = "messages"))]
    record(
        outcome,
        clock,
        results,
        #[cfg(feature = "client")]
        client,
    );
    passed(
        outcome,
        results,
        #[cfg(feature = "client")]
        client,
    )
}

/// Whether the run went as this image expects: over in time, the server's exchange done (or,
/// with no client in the image, no exchange), the client's file byte-exact (or, with no server
/// in the image, its connection refused).
fn passed(
    outcome: &Outcome,
    results: &Results,
    #[cfg(feature = "client")] client: &Client,
) -> bool {
    if outcome.over {
        return false;
    }
    #[cfg(feature = "server")]
    match &results.server {
        Some(Ok(_)) => {}
        Some(Err(_)) => return false,
        // Expected only where no client runs.
        None if cfg!(feature = "client") => return false,
        None => {}
    }
    #[cfg(not(feature = "server"))]
    let _ = results;
    #[cfg(feature = "client")]
    {
        use halfclose::client::State;
        match client.state() {
            State::Done(_) if client.sink().is_payload() => {}
            State::Failed(Error::Refused) if !cfg!(feature = "server") => {}
            _ => return false,
        }
    }
    true
}

/// The summary in words (`messages`).
#[cfg(feature = "messages")]
fn words(
    outcome: &Outcome,
    clock: &StepClock,
    results: &Results,
    #[cfg(feature = "client")] client: &Client,
) {
    if outcome.over {
        line!(
            "error: not over after ",
            dec(LIMIT.total_millis()),
            " ms of simulated time"
        );
    }

    #[cfg(feature = "server")]
    match &results.server {
        Some(Ok(report)) => line!(
            "server: sent ",
            dec(report.bytes),
            " bytes, reply ",
            Quoted(report.reply.kept()),
            " ",
            dec(report.reply_timing.duration().total_micros()),
            if report.reply_timing.is_before_fin() {
                " us before"
            } else {
                " us after"
            },
            " its FIN, connection ",
            dec(report.duration().total_micros()),
            " us",
        ),
        Some(Err(error)) => line!("server: error: ", error),
        // Without a client in the image, the expected end; else the limit passed.
        None => {
            #[cfg(not(feature = "client"))]
            line!(
                "server: listened ",
                dec(LISTEN_ALONE.total_millis()),
                " ms, no client in this image"
            );
        }
    }
    #[cfg(not(feature = "server"))]
    let _ = results;

    #[cfg(feature = "client")]
    {
        use halfclose::client::State;
        let check = client.sink();
        match client.state() {
            State::Done(report) => {
                line!(
                    "client: received ",
                    dec(report.bytes),
                    " bytes in ",
                    dec(report.transfer_time().total_micros()),
                    " us, crc32 ",
                    hex(check.crc()),
                    ", ",
                    match check.first_mismatch() {
                        None => "every byte matches",
                        Some(_) => "BYTES DIFFER",
                    },
                );
                if !check.is_payload() {
                    let mut line = out::Line::new();
                    line.str("client: error: expected ")
                        .dec(payload::LEN as u64)
                        .str(" bytes with crc32 ")
                        .hex(payload::CRC)
                        .str(", first difference at ");
                    match check.first_mismatch() {
                        Some(at) => line.dec(at),
                        None => line.str("none"),
                    };
                    line.print();
                }
            }
            // With no server in the image, nobody listens: a refused connection is the
            // expected end.
            State::Failed(Error::Refused) if !cfg!(feature = "server") => {
                line!("client: connection refused, as expected with no server in this image");
            }
            State::Failed(error) => {
                line!(
                    "client: error: ",
                    error,
                    " (",
                    dec(check.bytes()),
                    " bytes received)"
                );
            }
            // Not over: the limit passed, reported above.
            _ => {}
        }
    }

    line!(
        "time: ",
        dec((clock.now() - Instant::ZERO).total_micros()),
        " us on the step clock (",
        dec(clock.steps().into()),
        " polls), ",
        dec(outcome.cycles),
        " ",
        Timer::UNIT,
    );
    line!(
        "ram: stack peak ",
        dec(stack::peak() as u64),
        " of ",
        dec(stack::size() as u64),
        " bytes (",
        dec(outcome.stack_peak as u64),
        " until the transfer was over); socket buffers ",
        dec(SOCKET_BUFFERS as u64),
        " bytes; loopback ring ",
        dec(core::mem::size_of::<Loopback<MTU, SLOTS>>() as u64),
        " bytes",
    );
    line!(
        "sizes: Interface ",
        dec(core::mem::size_of::<Interface>() as u64),
        " bytes, tcp::Socket ",
        dec(core::mem::size_of::<tcp::Socket>() as u64),
        " bytes",
    );
    #[cfg(feature = "server")]
    line!(
        "sizes: Server<&[u8], 1> ",
        dec(core::mem::size_of::<halfclose::server::Server<&[u8], 1>>() as u64),
        " bytes"
    );
    #[cfg(feature = "client")]
    line!(
        "sizes: Client<Check> ",
        dec(core::mem::size_of::<halfclose::client::Client<payload::Check>>() as u64),
        " bytes"
    );
}

/// The summary as a record (the small build): the numbers of [`words`], in its order, each
/// side's outcome as a code (0: none, 1: done, 2: an error) and that outcome's numbers.
/// `scripts/summary.py` prints it as [`words`] would.
#[cfg(not(feature = "messages"))]
fn record(
    outcome: &Outcome,
    clock: &StepClock,
    results: &Results,
    #[cfg(feature = "client")] client: &Client,
) {
    let mut record = Record::new("summary");
    // Over the limit: the limit, in ms; else 0.
    let over = if outcome.over {
        LIMIT.total_millis()
    } else {
        0
    };
    record.num(LAYOUT).num(over);

    #[cfg(feature = "server")]
    match &results.server {
        Some(Ok(report)) => {
            record
                .num(1)
                .num(report.bytes)
                .num(report.reply_timing.duration().total_micros())
                .num(report.reply_timing.is_before_fin().into())
                .num(report.duration().total_micros())
                .num(report.reply.kept().len() as u64);
            for &byte in report.reply.kept() {
                record.num(byte.into());
            }
        }
        Some(Err(error)) => {
            record.num(2).error(error);
        }
        None => {
            record.num(0);
            // With no client in the image: how long the server listened, in ms.
            #[cfg(not(feature = "client"))]
            record.num(LISTEN_ALONE.total_millis());
        }
    }
    #[cfg(not(feature = "server"))]
    let _ = results;

    #[cfg(feature = "client")]
    {
        use halfclose::client::State;
        let check = client.sink();
        match client.state() {
            State::Done(report) => record
                .num(1)
                .num(report.bytes)
                .num(report.transfer_time().total_micros())
                .num(check.crc().into())
                // The first difference's offset plus one; 0: none.
                .num(check.first_mismatch().map_or(0, |at| at + 1)),
            State::Failed(error) => record.num(2).error(error).num(check.bytes()),
            _ => record.num(0),
        };
    }

    record
        .num((clock.now() - Instant::ZERO).total_micros())
        .num(clock.steps().into())
        .num(outcome.cycles)
        .num(stack::peak() as u64)
        .num(stack::size() as u64)
        .num(outcome.stack_peak as u64)
        .num(SOCKET_BUFFERS as u64)
        .num(core::mem::size_of::<Loopback<MTU, SLOTS>>() as u64)
        .num(core::mem::size_of::<Interface>() as u64)
        .num(core::mem::size_of::<tcp::Socket>() as u64);
    #[cfg(feature = "server")]
    record.num(core::mem::size_of::<halfclose::server::Server<&[u8], 1>>() as u64);
    #[cfg(feature = "client")]
    record.num(core::mem::size_of::<halfclose::client::Client<payload::Check>>() as u64);
    record.end();
}
