//! The in-memory transfer, measured against smoltcp's own `phy::Loopback` doing the same
//! half-close exchange with raw sockets, and against `memcpy`, in one run.
//!
//! ```text
//! cargo run --release -p halfclose-tools --bin bench                # 64 MiB per configuration
//! cargo run --release -p halfclose-tools --bin bench -- --full      # 64 and 256 MiB
//! cargo run --release -p halfclose-tools --bin bench -- --one ours|theirs [MTU [on|off [KiB]]]
//!                       # one 4 MiB run, by default at MTU 1500, checksums on, 4 KiB buffers
//!                       # (for callgrind; see scripts/callgrind.sh)
//! ```
//!
//! Both sides: one interface, `Medium::Ip`, server and client sockets with the same buffers and
//! smoltcp's delayed ACK (its default, 10 ms); the server sends from memory, the client counts
//! what it receives (no copy out), then replies "Thank you\0" and both close. Both loops take in
//! what has arrived, then let the programs read and write, then send (`receive`, `send`): an
//! ACK then carries the window the reader has just opened, instead of going out before the read
//! with a window update behind it. Both loops move their simulated clock only when no packet
//! waits in the device (moving it sooner fires retransmission timers on packets that were never
//! lost). Each grid point runs both sides `--runs` times (default 7), interleaved:
//! the table shows the median throughputs and the median of the per-pair ratios with its
//! min–max; memcpy is the best of three.

use std::hint::black_box;
use std::process::ExitCode;
use std::task::Poll;
use std::time::Instant as WallClock;

use clap::{Parser, ValueEnum, value_parser};
use halfclose::device::Loopback;
use halfclose::{REPLY, Timeouts, client, server};
use smoltcp::iface::{
    Config, Interface, PollIngressSingleResult, PollResult, SocketSet, SocketStorage,
};
use smoltcp::phy::{self, ChecksumCapabilities, Device, DeviceCapabilities, Medium};
use smoltcp::socket::tcp;
use smoltcp::time::{Duration, Instant};
use smoltcp::wire::{HardwareAddress, IpAddress, IpCidr};

const ADDR: IpAddress = IpAddress::v4(127, 0, 0, 1);
const PORT: u16 = halfclose::DEFAULT_PORT;

/// A sink that counts bytes and keeps none.
struct Count(u64);

impl embedded_io::ErrorType for Count {
    type Error = core::convert::Infallible;
}

impl embedded_io::Write for Count {
    fn write(&mut self, buf: &[u8]) -> Result<usize, Self::Error> {
        self.0 += buf.len() as u64;
        Ok(buf.len())
    }

    fn flush(&mut self) -> Result<(), Self::Error> {
        Ok(())
    }
}

fn iface(device: &mut impl Device) -> Interface {
    let mut iface = Interface::new(Config::new(HardwareAddress::Ip), device, Instant::ZERO);
    iface.update_ip_addrs(|a| a.push(IpCidr::new(ADDR, 8)).unwrap());
    iface
}

/// The first half of `Interface::poll`: every packet that has arrived, taken in.
fn receive(iface: &mut Interface, now: Instant, device: &mut impl Device, sockets: &mut SocketSet) {
    iface.poll_maintenance(now);
    while iface.poll_ingress_single(now, device, sockets) != PollIngressSingleResult::None {}
}

/// The second half: everything the sockets have to send, sent.
fn send(iface: &mut Interface, now: Instant, device: &mut impl Device, sockets: &mut SocketSet) {
    while iface.poll_egress(now, device, sockets) != PollResult::None {}
}

fn socket(buffers: &mut [u8], rx_max: usize) -> tcp::Socket<'_> {
    let (rx, tx) = buffers.split_at_mut(buffers.len() / 2);
    let rx_len = rx.len().min(rx_max);
    let rx = &mut rx[..rx_len];
    tcp::Socket::new(tcp::SocketBuffer::new(rx), tcp::SocketBuffer::new(tx))
}

/// Socket buffers half a page into a page: 4 buffers of `size`.
///
/// The file's bytes are copied between the source (page-aligned) and the socket ring buffers (at
/// ring offset `k` modulo the ring's size, a multiple of the page size). With a ring starting a
/// few bytes into a page, as a fresh heap allocation does, source and destination sit at nearly
/// the same offset in their pages, the slow case of `rep movsb`; half a page apart they copy at
/// full speed. A measuring concern, so it lives here and not in the loopback example.
fn buffers(storage: &mut Vec<u8>, size: usize) -> &mut [u8] {
    storage.clear();
    storage.resize(4 * size + 4096, 0);
    let start = (2048 + 4096 - storage.as_ptr() as usize % 4096) % 4096;
    &mut storage[start..start + 4 * size]
}

/// Ours: the library's `Server` and `Client` over its heapless `Loopback`.
fn ours<const MTU: usize>(file: &[u8], buffer: usize, checksums: bool) -> f64 {
    // 16 slots: a deeper queue lets a large window go out in fewer rounds of polls and ACKs
    // (with 8, ours fell to 0.89-0.93x of smoltcp's unbounded `phy::Loopback` with 64 and
    // 256 KiB buffers at MTU 1500; with 16, 1.01-1.06x).
    let mut device = Box::new(Loopback::<MTU, 16>::new(Medium::Ip).with_checksums(checksums));
    let mut iface = iface(&mut *device);
    let mut storage = Vec::new();
    let bufs = buffers(&mut storage, buffer);
    let (sb, cb) = bufs.split_at_mut(2 * buffer);
    let mut socket_storage: [SocketStorage; 2] = Default::default();
    let mut sockets = SocketSet::new(&mut socket_storage[..]);
    let s = sockets.add(socket(sb, usize::MAX));
    // The client accepts no receive buffer that would scale its window.
    let c = sockets.add(socket(cb, client::MAX_RECEIVE_BUFFER));
    let start = WallClock::now();
    let mut server =
        server::Server::listen(&mut sockets, [s], PORT, file, Timeouts::DEFAULT).unwrap();
    let mut now = Instant::ZERO;
    let mut client = client::Client::connect(
        iface.context(),
        &mut sockets,
        c,
        client::Connect::to((ADDR, PORT)).from_port(49152),
        Count(0),
        now,
    )
    .unwrap();
    let (mut served, mut fetched) = (false, false);
    while !(served && fetched) {
        receive(&mut iface, now, &mut *device, &mut sockets);
        if let Some(r) = server.poll(now, &mut sockets).into_iter().next() {
            assert!(r.unwrap().reply.is_thank_you());
            served = true;
        }
        if !fetched && let Poll::Ready(r) = client.poll(now, &mut sockets) {
            assert_eq!(r.unwrap().bytes, file.len() as u64);
            fetched = true;
        }
        send(&mut iface, now, &mut *device, &mut sockets);
        if device.queued() == 0 {
            now += iface
                .poll_delay(now, &sockets)
                .unwrap_or(Duration::from_millis(1));
        }
    }
    start.elapsed().as_secs_f64()
}

/// smoltcp's own `phy::Loopback` (a `VecDeque` of `Vec`s), with the MTU and checksums set, and
/// a count of the packets it holds (which `phy::Loopback` does not expose): the loop must not
/// move the clock on while a packet waits, or the sockets' retransmission timers fire on
/// packets that were never lost.
struct Tuned {
    inner: phy::Loopback,
    mtu: usize,
    checksums: bool,
    queued: usize,
}

/// `phy::Loopback`'s transmit token, counting the packet it queues.
struct CountedTx<'a> {
    inner: <phy::Loopback as Device>::TxToken<'a>,
    queued: &'a mut usize,
}

impl phy::TxToken for CountedTx<'_> {
    fn consume<R, F>(self, len: usize, f: F) -> R
    where
        F: FnOnce(&mut [u8]) -> R,
    {
        *self.queued += 1;
        self.inner.consume(len, f)
    }
}

impl Device for Tuned {
    type RxToken<'a> = <phy::Loopback as Device>::RxToken<'a>;
    type TxToken<'a> = CountedTx<'a>;

    fn receive(&mut self, t: Instant) -> Option<(Self::RxToken<'_>, Self::TxToken<'_>)> {
        let (rx, tx) = self.inner.receive(t)?;
        // `phy::Loopback` takes the packet off its queue here.
        self.queued -= 1;
        Some((
            rx,
            CountedTx {
                inner: tx,
                queued: &mut self.queued,
            },
        ))
    }

    fn transmit(&mut self, t: Instant) -> Option<Self::TxToken<'_>> {
        Some(CountedTx {
            inner: self.inner.transmit(t)?,
            queued: &mut self.queued,
        })
    }

    fn capabilities(&self) -> DeviceCapabilities {
        let mut caps = self.inner.capabilities();
        caps.max_transmission_unit = self.mtu;
        caps.checksum = if self.checksums {
            ChecksumCapabilities::default()
        } else {
            ChecksumCapabilities::ignored()
        };
        caps
    }
}

/// Theirs: the same exchange on raw sockets over smoltcp's `phy::Loopback`. `Err` with the
/// bytes received if they are not the file's length.
fn theirs(file: &[u8], mtu: usize, buffer: usize, checksums: bool) -> Result<f64, u64> {
    let mut device = Tuned {
        inner: phy::Loopback::new(Medium::Ip),
        mtu,
        checksums,
        queued: 0,
    };
    let mut iface = iface(&mut device);
    let mut storage = Vec::new();
    let bufs = buffers(&mut storage, buffer);
    let (sb, cb) = bufs.split_at_mut(2 * buffer);
    let mut socket_storage: [SocketStorage; 2] = Default::default();
    let mut sockets = SocketSet::new(&mut socket_storage[..]);
    let s = sockets.add(socket(sb, usize::MAX));
    let c = sockets.add(socket(cb, usize::MAX));
    let start = WallClock::now();
    sockets.get_mut::<tcp::Socket>(s).listen(PORT).unwrap();
    let mut now = Instant::ZERO;
    let cx = iface.context();
    sockets
        .get_mut::<tcp::Socket>(c)
        .connect(cx, (ADDR, PORT), 49152)
        .unwrap();
    let (mut sent, mut received, mut replied, mut reply) = (0, 0u64, false, 0);
    loop {
        receive(&mut iface, now, &mut device, &mut sockets);
        let server = sockets.get_mut::<tcp::Socket>(s);
        if sent < file.len() && server.may_send() {
            sent += server.send_slice(&file[sent..]).unwrap();
            if sent == file.len() {
                server.close();
            }
        }
        match server.recv(|b| (b.len(), b.len())) {
            Ok(n) => reply += n,
            Err(tcp::RecvError::Finished) => break,
            Err(tcp::RecvError::InvalidState) => {}
        }
        let client = sockets.get_mut::<tcp::Socket>(c);
        match client.recv(|b| (b.len(), b.len())) {
            Ok(n) => received += n as u64,
            Err(tcp::RecvError::Finished) if !replied => {
                client.send_slice(REPLY).unwrap();
                client.close();
                replied = true;
            }
            Err(_) => {}
        }
        send(&mut iface, now, &mut device, &mut sockets);
        if device.queued == 0 {
            now += iface
                .poll_delay(now, &sockets)
                .unwrap_or(Duration::from_millis(1));
        }
    }
    let secs = start.elapsed().as_secs_f64();
    assert_eq!(reply, REPLY.len());
    if received == file.len() as u64 {
        Ok(secs)
    } else {
        Err(received)
    }
}

fn memcpy(len: usize) -> f64 {
    let src = vec![1u8; len + 4096];
    let mut dst = vec![0u8; len + 4096];
    // Half a page apart, away from the `rep movsb` slow case.
    let s = (4096 - src.as_ptr() as usize % 4096) % 4096;
    let d = (2048 + 4096 - dst.as_ptr() as usize % 4096) % 4096;
    best(|| {
        let t = WallClock::now();
        dst[d..d + len].copy_from_slice(black_box(&src[s..s + len]));
        black_box(&dst);
        t.elapsed().as_secs_f64()
    })
}

fn best(mut f: impl FnMut() -> f64) -> f64 {
    (0..3).map(|_| f()).fold(f64::INFINITY, f64::min)
}

fn median(values: &[f64]) -> f64 {
    let mut values = values.to_vec();
    values.sort_by(f64::total_cmp);
    let mid = values.len() / 2;
    if values.len() % 2 == 1 {
        values[mid]
    } else {
        (values[mid - 1] + values[mid]) / 2.0
    }
}

/// One grid point: `runs` pairs of runs, ours then theirs each time.
struct Point {
    ours: Vec<f64>,
    theirs: Vec<f64>,
    /// Bytes smoltcp's Loopback delivered, when it delivered too few.
    short: Option<u64>,
}

impl Point {
    fn measure(
        runs: usize,
        mut ours: impl FnMut() -> f64,
        mut theirs: impl FnMut() -> Result<f64, u64>,
    ) -> Point {
        let mut point = Point {
            ours: Vec::with_capacity(runs),
            theirs: Vec::with_capacity(runs),
            short: None,
        };
        for _ in 0..runs {
            point.ours.push(ours());
            match theirs() {
                Ok(secs) => point.theirs.push(secs),
                Err(got) => point.short = Some(got),
            }
        }
        point
    }

    /// Per-pair speed-ups of ours over theirs: (median, min, max).
    fn ratio(&self) -> (f64, f64, f64) {
        let ratios: Vec<f64> = self
            .ours
            .iter()
            .zip(&self.theirs)
            .map(|(o, t)| t / o)
            .collect();
        let (min, max) = ratios
            .iter()
            .fold((f64::INFINITY, 0.0_f64), |(lo, hi), &r| {
                (lo.min(r), hi.max(r))
            });
        (median(&ratios), min, max)
    }
}

fn ours_at(mtu: usize, file: &[u8], buffer: usize, checksums: bool) -> f64 {
    match mtu {
        1500 => ours::<1500>(file, buffer, checksums),
        9000 => ours::<9000>(file, buffer, checksums),
        _ => ours::<65535>(file, buffer, checksums),
    }
}

/// Measures the in-memory transfer against smoltcp's own Loopback and memcpy.
#[derive(Parser, Debug)]
#[command(name = "bench")]
struct Args {
    /// Measure 64 and 256 MiB (default: 64 MiB)
    #[arg(long, conflicts_with = "one")]
    full: bool,
    /// Interleaved runs of each side per grid point
    #[arg(long, default_value_t = 7, conflicts_with = "one", value_parser = value_parser!(u64).range(1..=1000))]
    runs: u64,
    /// One 4 MiB run of one side (for callgrind: `--toggle-collect='bench::ours*'` or
    /// `'bench::theirs*'` counts the transfer alone, without building the file)
    #[arg(long, value_enum, value_name = "SIDE")]
    one: Option<Side>,
    /// With --one: the MTU
    #[arg(requires = "one", default_value_t = 1500, value_parser = mtu)]
    mtu: usize,
    /// With --one: checksums
    #[arg(requires = "one", value_enum, default_value = "on")]
    checksums: OnOff,
    /// With --one: each socket buffer, in KiB
    #[arg(requires = "one", default_value_t = 4, value_parser = value_parser!(u64).range(1..=65536))]
    kib: u64,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum Side {
    Ours,
    Theirs,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum OnOff {
    On,
    Off,
}

/// The MTUs the bench builds devices for.
fn mtu(text: &str) -> Result<usize, String> {
    match text.parse() {
        Ok(mtu @ (1500 | 9000 | 65535)) => Ok(mtu),
        _ => Err(format!("{text:?}: give 1500, 9000 or 65535")),
    }
}

/// `--one SIDE [MTU [on|off [KiB]]]`: one 4 MiB run.
fn one(side: Side, args: &Args) -> ExitCode {
    let (buffer, checksums) = (args.kib as usize * 1024, args.checksums == OnOff::On);
    let file = vec![0x5au8; 4 << 20];
    let (name, secs) = match side {
        Side::Ours => ("ours", ours_at(args.mtu, &file, buffer, checksums)),
        Side::Theirs => match theirs(&file, args.mtu, buffer, checksums) {
            Ok(secs) => ("theirs", secs),
            Err(got) => {
                eprintln!(
                    "bench: smoltcp's Loopback delivered {got} of {} bytes",
                    file.len()
                );
                return ExitCode::FAILURE;
            }
        },
    };
    println!("{name}: {} bytes in {secs:.3} s", file.len());
    ExitCode::SUCCESS
}

fn main() -> ExitCode {
    let args = Args::parse();
    if let Some(side) = args.one {
        return one(side, &args);
    }
    let sizes: &[usize] = if args.full {
        &[64 << 20, 256 << 20]
    } else {
        &[64 << 20]
    };
    for &size in sizes {
        let file: Vec<u8> = (0..size).map(|i| (i * 7 + i / 4099) as u8).collect();
        let copy = memcpy(size);
        let mbs = |secs: f64| size as f64 / secs / 1e6;
        println!(
            "\n{} MiB; memcpy {:.0} MB/s in this run\n",
            size >> 20,
            mbs(copy)
        );
        println!(
            "| MTU | checksums | buffers | ours MB/s | smoltcp Loopback MB/s | ours / theirs (min–max) | ours / memcpy |"
        );
        println!("|--:|---|--:|--:|--:|--:|--:|");
        let (mut log_ratios, mut points, mut lowest) = (0.0, 0, f64::INFINITY);
        let grid = [1500, 9000, 65535].into_iter().flat_map(|mtu| {
            [true, false].into_iter().flat_map(move |checksums| {
                [4 << 10, 64 << 10, 256 << 10].map(|buffer| (mtu, checksums, buffer))
            })
        });
        for (mtu, checksums, buffer) in grid {
            let point = Point::measure(
                args.runs as usize,
                || ours_at(mtu, &file, buffer, checksums),
                || theirs(&file, mtu, buffer, checksums),
            );
            let o = median(&point.ours);
            let (theirs_mbs, ratio) = match point.short {
                Some(got) => (format!("lost {} bytes", size as u64 - got), "-".into()),
                None => {
                    let (ratio, min, max) = point.ratio();
                    log_ratios += ratio.ln();
                    points += 1;
                    lowest = lowest.min(ratio);
                    (
                        format!("{:.0}", mbs(median(&point.theirs))),
                        format!("{ratio:.2} ({min:.2}–{max:.2})"),
                    )
                }
            };
            println!(
                "| {mtu} | {} | {} KiB | {:.0} | {theirs_mbs} | {ratio} | {:.0} % |",
                if checksums { "on" } else { "off" },
                buffer >> 10,
                mbs(o),
                100.0 * copy / o,
            );
        }
        println!(
            "\nMedian ratios over {points} points: geometric mean {:.2}, lowest {lowest:.2}",
            (log_ratios / f64::from(points)).exp()
        );
    }
    ExitCode::SUCCESS
}
