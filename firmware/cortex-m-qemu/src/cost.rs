//! Instructions per transferred byte, measured on the emulated core.
//!
//! Under `qemu -icount shift=0` the core runs one instruction per nanosecond of virtual time and
//! the board's timers follow virtual time, so SysTick counts instructions in a fixed ratio. The
//! image measures that ratio itself on a loop of known length, then runs the exchange once per
//! MTU and socket buffer size of the board's sweep (`board::COST_MTUS`, `board::COST_BUFFERS`):
//! the 64 KiB file from flash, the half-close, the `"Thank you\0"`, as the transfer image does,
//! but with a sink that only counts (no CRC: that is the check's cost, not the transfer's), no
//! delayed ACK and checksums on, as the host's `tools/src/bin/bench.rs --one` does under callgrind.
//! Without `-icount` the ratio, and so every figure, follows the host's speed: meaningless.

use core::arch::asm;
use core::convert::Infallible;
use core::task::Poll;

use halfclose::device::Loopback;
use halfclose::{Error, Timeouts, client, server};
use smoltcp::iface::{
    Config, Interface, PollIngressSingleResult, PollResult, SocketSet, SocketStorage,
};
use smoltcp::phy::{Device, DeviceCapabilities, Medium};
use smoltcp::socket::tcp;
use smoltcp::time::{Duration, Instant};
use smoltcp::wire::{HardwareAddress, IpAddress, IpCidr, Ipv4Address};
use static_cell::{ConstStaticCell, StaticCell};

use crate::board::{self, COST_BUFFERS, COST_MTUS, SLOTS};
use crate::clock::{StepClock, Timer};
use crate::out::{Line, dec, line};
use crate::payload;

const MAX_MTU: usize = COST_MTUS[0];
const MAX_BUFFER: usize = COST_BUFFERS[0];
const SMALL: usize = 64;
const ADDR: Ipv4Address = Ipv4Address::new(127, 0, 0, 1);
const PORT: u16 = halfclose::DEFAULT_PORT;
const LIMIT: Duration = Duration::from_secs(60);
/// Iterations of the calibration loop (two instructions each).
const SPIN: u32 = 1 << 20;

static DEVICE: StaticCell<Loopback<MAX_MTU, SLOTS>> = StaticCell::new();
static BUFFERS: ConstStaticCell<([u8; MAX_BUFFER], [u8; MAX_BUFFER], [u8; SMALL], [u8; SMALL])> =
    ConstStaticCell::new(([0; MAX_BUFFER], [0; MAX_BUFFER], [0; SMALL], [0; SMALL]));

/// The ring of the largest MTU, offered to smoltcp with a smaller one: one ring serves every
/// MTU of the sweep.
struct Mtu<'d> {
    inner: &'d mut Loopback<MAX_MTU, SLOTS>,
    mtu: usize,
}

impl Device for Mtu<'_> {
    type RxToken<'a>
        = <Loopback<MAX_MTU, SLOTS> as Device>::RxToken<'a>
    where
        Self: 'a;
    type TxToken<'a>
        = <Loopback<MAX_MTU, SLOTS> as Device>::TxToken<'a>
    where
        Self: 'a;

    fn receive(&mut self, now: Instant) -> Option<(Self::RxToken<'_>, Self::TxToken<'_>)> {
        self.inner.receive(now)
    }

    fn transmit(&mut self, now: Instant) -> Option<Self::TxToken<'_>> {
        self.inner.transmit(now)
    }

    fn capabilities(&self) -> DeviceCapabilities {
        let mut caps = self.inner.capabilities();
        caps.max_transmission_unit = self.mtu;
        caps
    }
}

/// The sink: counts, keeps nothing.
struct Count(u64);

impl embedded_io::ErrorType for Count {
    type Error = Infallible;
}

impl embedded_io::Write for Count {
    fn write(&mut self, buf: &[u8]) -> Result<usize, Infallible> {
        self.0 += buf.len() as u64;
        Ok(buf.len())
    }

    fn flush(&mut self) -> Result<(), Infallible> {
        Ok(())
    }
}

/// `n` iterations of a two-instruction loop: a known number of instructions.
#[inline(never)]
fn spin(n: u32) {
    // SAFETY: counts a register down to zero; touches no memory and no stack.
    #[cfg(target_arch = "arm")]
    unsafe {
        asm!("2:", "subs {0}, #1", "bne 2b", inout(reg) n => _, options(nomem, nostack));
    }
    // SAFETY: as above.
    #[cfg(target_arch = "riscv32")]
    unsafe {
        asm!("2:", "addi {0}, {0}, -1", "bnez {0}, 2b", inout(reg) n => _, options(nomem, nostack));
    }
}

/// Calibrate, then sweep. Returns whether every exchange delivered the whole file.
pub fn run() -> bool {
    let Some(systick) = Timer::take() else {
        line!("error: the timer is taken already");
        return false;
    };
    let start = systick.ticks();
    spin(SPIN);
    let calibration = systick.ticks() - start;
    let instructions = 2 * u64::from(SPIN);
    line!(
        "cost on ",
        board::NAME,
        ": calibration ",
        dec(instructions),
        " instructions in ",
        dec(calibration),
        " ",
        Timer::UNIT
    );
    if calibration == 0 {
        line!("error: the timer did not move");
        return false;
    }

    // The checksum the figures count, checked first on this core: with smoltcp's patches it
    // is a loop of the target's own (Arm assembly on both Cortex-M cores).
    let cases = checksum_cases();
    if cases == 0 {
        line!("error: smoltcp's checksum differs from RFC 1071's plain sum");
        return false;
    }
    line!(
        "checksum: smoltcp's equals RFC 1071's plain sum in ",
        dec(cases.into()),
        " cases (every length to 100 at offsets 0 to 3, bytes that vary and all ones)"
    );

    let device = Loopback::new_in(DEVICE.uninit(), Medium::Ip);
    let (server_tx, client_rx, server_rx, client_tx) = BUFFERS.take();
    let mut passed = true;
    for mtu in COST_MTUS {
        for buffer in COST_BUFFERS {
            device.clear();
            let mut device = Mtu { inner: device, mtu };
            let result = exchange(
                &systick,
                &mut device,
                (&mut server_rx[..], &mut server_tx[..buffer]),
                (&mut client_rx[..buffer], &mut client_tx[..]),
            );
            let mut line = Line::new();
            line.str("cost: mtu ")
                .dec(mtu as u64)
                .str(" buffer ")
                .dec(buffer as u64);
            match result {
                Ok((cycles, polls)) => {
                    // Tenths of an instruction per byte, rounded.
                    let total = cycles * instructions / calibration;
                    let tenths = (total * 10 + payload::LEN as u64 / 2) / payload::LEN as u64;
                    line.str(": ")
                        .dec(payload::LEN as u64)
                        .str(" bytes, ")
                        .dec(total)
                        .str(" instructions, ")
                        .dec(tenths / 10)
                        .str(".")
                        .dec(tenths % 10)
                        .str(" per byte, ")
                        .dec(polls.into())
                        .str(" polls");
                }
                Err(why) => {
                    line.str(": FAILED: ").str(why);
                    passed = false;
                }
            }
            line.print();
        }
    }
    passed
}

/// The first half of `Interface::poll`: every packet that has arrived, taken in.
fn receive(iface: &mut Interface, now: Instant, device: &mut Mtu<'_>, sockets: &mut SocketSet) {
    iface.poll_maintenance(now);
    while iface.poll_ingress_single(now, device, sockets) != PollIngressSingleResult::None {}
}

/// The second half: everything the sockets have to send, sent.
fn send(iface: &mut Interface, now: Instant, device: &mut Mtu<'_>, sockets: &mut SocketSet) {
    while iface.poll_egress(now, device, sockets) != PollResult::None {}
}

/// One exchange; the timer ticks its polling loop took and how many polls.
fn exchange(
    systick: &Timer,
    device: &mut Mtu<'_>,
    (server_rx, server_tx): (&mut [u8], &mut [u8]),
    (client_rx, client_tx): (&mut [u8], &mut [u8]),
) -> Result<(u64, u32), &'static str> {
    let mut clock = StepClock::new();
    let timeouts = Timeouts::DEFAULT;
    let mut config = Config::new(HardwareAddress::Ip);
    config.random_seed = 0x6861_6c66_636c_6f73;
    let mut iface = Interface::new(config, device, clock.now());
    iface.update_ip_addrs(|addrs| {
        let _ = addrs.push(IpCidr::new(IpAddress::Ipv4(ADDR), 8));
    });
    let mut storage: [SocketStorage; 2] = Default::default();
    let mut sockets = SocketSet::new(&mut storage[..]);
    // smoltcp's delayed ACK (its default, 10 ms), as the host's bench has it: with the loop
    // below, an ACK goes out for every second segment and carries the window the reader has
    // just opened.
    let socket = |rx, tx| tcp::Socket::new(tcp::SocketBuffer::new(rx), tcp::SocketBuffer::new(tx));
    let server_handle = sockets.add(socket(server_rx, server_tx));
    let client_handle = sockets.add(socket(client_rx, client_tx));
    let source: &[u8] = &payload::PAYLOAD;
    let set_up = |_: Error| "setting up";
    let mut server =
        server::Server::<_, 1>::listen(&mut sockets, [server_handle], PORT, source, timeouts)
            .map_err(set_up)?;
    let mut client = client::Client::connect(
        iface.context(),
        &mut sockets,
        client_handle,
        client::Connect::to((IpAddress::Ipv4(ADDR), PORT))
            .from_port(49152)
            .timeouts(timeouts),
        Count(0),
        clock.now(),
    )
    .map_err(set_up)?;

    let (mut server_done, mut client_done) = (None, None);
    let start = systick.ticks();
    loop {
        let now = clock.now();
        // What has arrived, then the programs, then what they have to send: `Interface::poll`
        // in two halves with the reading and writing between them.
        receive(&mut iface, now, device, &mut sockets);
        for result in server.poll(now, &mut sockets) {
            server_done = Some(result.is_ok_and(|r| r.bytes == payload::LEN as u64));
        }
        if client_done.is_none()
            && let Poll::Ready(result) = client.poll(now, &mut sockets)
        {
            client_done = Some(result.is_ok_and(|r| r.bytes == payload::LEN as u64));
        }
        send(&mut iface, now, device, &mut sockets);
        if server_done.is_some() && client_done.is_some() {
            break;
        }
        if now >= Instant::ZERO + LIMIT {
            return Err("not over within the simulated limit");
        }
        clock.advance(device.inner.queued() > 0, iface.poll_delay(now, &sockets));
    }
    let cycles = systick.ticks() - start;
    match (server_done, client_done, client.into_sink().0) {
        (Some(true), Some(true), bytes) if bytes == payload::LEN as u64 => {
            Ok((cycles, clock.steps()))
        }
        _ => Err("the file did not arrive whole"),
    }
}

/// RFC 1071's sum as its section 4.1 writes it: big-endian 16-bit words, the last odd byte
/// padded with a zero byte, the carries folded in at the end.
fn plain_sum(data: &[u8]) -> u16 {
    let mut sum: u32 = 0;
    for pair in data.chunks(2) {
        let low = if pair.len() == 2 { pair[1] } else { 0 };
        sum += u32::from(u16::from_be_bytes([pair[0], low]));
    }
    while sum > 0xffff {
        sum = (sum >> 16) + (sum & 0xffff);
    }
    sum as u16
}

/// smoltcp's `wire::checksum::data` against [`plain_sum`] at every length from 0 to 100 and
/// every offset from 0 to 3 (every alignment of a word), on bytes that vary and on all ones (the
/// sums that carry most): the number of cases, or 0 at the first difference.
#[inline(never)]
fn checksum_cases() -> u32 {
    let mut buffer = [0u8; 104];
    let mut cases = 0;
    for ones in [false, true] {
        for (i, b) in buffer.iter_mut().enumerate() {
            *b = if ones {
                0xff
            } else {
                (i as u8).wrapping_mul(37).wrapping_add(11)
            };
        }
        for offset in 0..4 {
            for len in 0..=100 {
                let data = &buffer[offset..offset + len];
                if smoltcp::wire::checksum::data(data) != plain_sum(data) {
                    return 0;
                }
                cases += 1;
            }
        }
    }
    cases
}
