//! The TAP programs' device: our own `phy::Device` over `/dev/net/tun`, with an optional pcap
//! capture and seeded faults, whose errors end the transfer instead of panicking.
//!
//! smoltcp's `TunTapInterface` and `PcapWriter` panic on an I/O error (their tokens cannot
//! return one), so a TAP device deleted or set down mid-transfer, or a full disk under the pcap,
//! would crash the program. Here the first error is kept and [`Driver::wait`] returns it.
#![allow(unsafe_code)]

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::num::NonZeroUsize;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use clap::value_parser;
use halfclose::Timeouts;
use halfclose::sim::Rng;
use smoltcp::iface::{Config, Interface};
use smoltcp::phy::{self, Device, DeviceCapabilities, Medium};
use smoltcp::time::{Duration, Instant};
use smoltcp::wire::{EthernetAddress, IpAddress, IpCidr};

use super::cli::{self, Seconds};
use super::drive::{Driver, earliest};
use super::faults::{Direction, FaultArgs, Faults};
use super::offload::{self, Segment};
use super::pcap::Pcap;

/// The options both TAP programs take.
#[derive(clap::Args, Debug)]
pub struct TapArgs {
    /// The TAP device; it must exist and be up (`ip tuntap add dev tap0 mode tap`)
    #[arg(long, value_name = "NAME", default_value = "tap0", value_parser = cli::interface_name)]
    pub tap: String,
    /// Our address and prefix on it
    #[arg(long, value_name = "ADDR/PREFIX", default_value = "192.168.69.1/24", value_parser = cli::interface_address)]
    pub addr: IpCidr,
    /// Default route, for peers outside the prefix
    #[arg(long, value_name = "ADDR", value_parser = cli::unicast)]
    pub gateway: Option<IpAddress>,
    /// TCP port
    #[arg(long, default_value_t = halfclose::DEFAULT_PORT, value_parser = value_parser!(u16).range(1..))]
    pub port: u16,
    /// Write every frame our stack sends and receives to PATH (pcap, for Wireshark or tshark)
    #[arg(long, value_name = "PATH")]
    pub pcap: Option<PathBuf>,
    /// Seconds for the handshake
    #[arg(long, value_name = "S", allow_negative_numbers = true, default_value_t = Seconds(Timeouts::DEFAULT.connect))]
    pub connect_timeout: Seconds,
    /// Seconds the transfer may stand still
    #[arg(long, value_name = "S", allow_negative_numbers = true, default_value_t = Seconds(Timeouts::DEFAULT.idle))]
    pub idle_timeout: Seconds,
    /// Seconds the reply (and the FIN after it) may stand still
    #[arg(long, value_name = "S", allow_negative_numbers = true, default_value_t = Seconds(Timeouts::DEFAULT.reply))]
    pub reply_timeout: Seconds,
    /// Log every state change of smoltcp and halfclose on stderr (RUST_LOG works too)
    #[arg(short, long)]
    pub verbose: bool,
    /// Set the TAP device's MTU first (its kernel side's too), 576 to 65521
    #[arg(long, value_name = "BYTES", value_parser = value_parser!(u32).range(576..=65521))]
    pub mtu: Option<u32>,
    /// Leave TCP checksums and segmentation to smoltcp, not to the kernel
    #[arg(long)]
    pub no_offload: bool,
    /// ours, or smoltcp's TunTapInterface (to compare)
    #[arg(long, value_enum, default_value_t = DeviceKind::Ours, hide_possible_values = true)]
    pub device: DeviceKind,
    #[command(flatten)]
    pub faults: FaultArgs,
}

impl TapArgs {
    /// The timeouts the options give.
    pub fn timeouts(&self) -> Timeouts {
        Timeouts {
            connect: self.connect_timeout.0,
            idle: self.idle_timeout.0,
            reply: self.reply_timeout.0,
            ..Timeouts::DEFAULT
        }
    }
}

/// The device our stack runs on.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeviceKind {
    // This program's device: offloads, faults, capture, errors that end the run in words. (No
    // doc comments here: clap would list them, and `--help` would turn to its long form.)
    Ours,
    // smoltcp's `phy::TunTapInterface`.
    Smoltcp,
}

/// `struct ifreq` as `TUNSETIFF` reads it: the name, the flags, and the rest of the union.
#[repr(C)]
struct IfReq {
    name: [u8; 16],
    flags: libc::c_short,
    _rest: [u8; 22],
}

/// `_IOW('T', n, int)`: the direction bits differ on some architectures.
const fn tun_iow(n: libc::c_ulong) -> libc::c_ulong {
    let write = if cfg!(any(
        target_arch = "mips",
        target_arch = "mips64",
        target_arch = "powerpc",
        target_arch = "powerpc64",
        target_arch = "sparc64"
    )) {
        0x8000_0000
    } else {
        0x4000_0000
    };
    write | (4 << 16) | ((b'T' as libc::c_ulong) << 8) | n
}
const TUNSETIFF: libc::c_ulong = tun_iow(202);
const TUNSETOFFLOAD: libc::c_ulong = tun_iow(208);
/// `TUN_F_CSUM`, `TUN_F_TSO4`, `TUN_F_TSO6`: the offloads we take, as `TUNSETOFFLOAD` names them.
const TUN_F_CSUM: libc::c_ulong = 1;
const TUN_F_TSO: libc::c_ulong = 2 | 4;

/// The largest frame with segmentation offload: a 64 KiB IP packet and its Ethernet header.
const FRAME_MAX: usize = 14 + 65535;

/// Our TAP device.
pub struct Tap {
    /// Where a frame is read to: the virtio-net header's place, then the frame. One buffer for
    /// every frame, lent to smoltcp while it reads it: no allocation, no zeroing.
    rx: Box<[u8]>,
    port: Port,
    /// smoltcp's own device in our place (`--device smoltcp`), to compare the two.
    stock: Option<phy::TunTapInterface>,
}

/// The device but its receive buffer: what sending a frame needs while smoltcp reads one.
pub struct Port {
    name: String,
    file: File,
    /// The largest frame on the link, Ethernet header included.
    mtu: usize,
    /// A virtio-net header comes before every frame each way (`IFF_VNET_HDR`).
    vnet: bool,
    /// The kernel takes TCP checksums from us and gives us its own unfinished (`TUN_F_CSUM`):
    /// smoltcp leaves them to the device.
    csum: bool,
    /// The kernel cuts our large TCP frames into segments and gives us its own uncut
    /// (`TUN_F_TSO4`, `TUN_F_TSO6`): smoltcp sends up to 64 KiB at a time.
    tso: bool,
    /// Where a frame is built to, as `rx`.
    tx: Box<[u8]>,
    /// The segment size smoltcp asked for with the frame it is sending.
    gso: Option<u16>,
    pcap: Option<Pcap>,
    faults: Faults,
    /// The first error: the run ends with it.
    failure: Option<String>,
    now: Instant,
}

impl Tap {
    /// Attach to the existing TAP device `name`. smoltcp would create a missing one (down, so
    /// the first frame would fail): insist on one that exists and is up.
    pub fn open(args: &TapArgs) -> Result<Tap, String> {
        let faults = &args.faults;
        if args.device == DeviceKind::Smoltcp && (faults.any() || args.pcap.is_some()) {
            return Err(
                "--device smoltcp takes no faults and no --pcap: those are our device's".into(),
            );
        }
        let name = super::cli::interface_name(&args.tap)?;
        let name = name.as_str();
        let sys = Path::new("/sys/class/net").join(name);
        let flags = std::fs::read_to_string(sys.join("flags")).map_err(|_| {
            format!(
                "cannot open TAP device {name}: no such device (create it: `ip tuntap add dev {name} mode tap`)"
            )
        })?;
        if !sys.join("tun_flags").exists() {
            return Err(format!(
                "cannot open TAP device {name}: it is not a TUN/TAP device"
            ));
        }
        let up = u32::from_str_radix(flags.trim().trim_start_matches("0x"), 16)
            .is_ok_and(|f| f & 1 == 1);
        if !up {
            return Err(format!(
                "TAP device {name} is down (`ip link set {name} up`)"
            ));
        }
        if let Some(mtu) = args.mtu {
            set_mtu(name, mtu)?;
        }
        let mtu: usize = std::fs::read_to_string(sys.join("mtu"))
            .ok()
            .and_then(|m| m.trim().parse().ok())
            .unwrap_or(1500);
        let stock = match args.device {
            DeviceKind::Ours => None,
            DeviceKind::Smoltcp => {
                let stock = phy::TunTapInterface::new(name, Medium::Ethernet)
                    .map_err(|e| format!("cannot open TAP device {name}: {e}"))?;
                wait_for_carrier(name);
                Some(stock)
            }
        };

        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
            .open("/dev/net/tun")
            .map_err(|e| format!("cannot open /dev/net/tun: {e}"))?;
        // Faults model the link frame by frame at its MTU: one dropped 64 KiB frame would be
        // forty lost segments at once. Under faults the kernel cuts its segments for us and we
        // send ours at the link's size: checksum offload only.
        let wanted = match (args.no_offload, faults.any()) {
            (true, _) => 0,
            (false, true) => TUN_F_CSUM,
            (false, false) => TUN_F_CSUM | TUN_F_TSO,
        };
        let (vnet, offloads) = if stock.is_some() {
            // Our descriptor only carries the checks above; smoltcp's reads and writes.
            (false, 0)
        } else {
            attach(&file, name, wanted)?
        };
        if stock.is_none() {
            wait_for_carrier(name);
        }
        let pcap = match &args.pcap {
            Some(path) => Some(
                Pcap::create(path).map_err(|e| format!("cannot write {}: {e}", path.display()))?,
            ),
            None => None,
        };
        let seed = faults.seed.unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(1, |d| d.as_nanos() as u64)
        });
        if faults.any() {
            // On stdout with the other progress lines: stderr is for the one error line.
            println!(
                "faults on {name}, each way: drop {} %, corrupt {} %, duplicate {} %, reorder {} %, rate {}, delay {} ms, seed {seed}",
                faults.drop_ppm as f64 / 1e4,
                faults.corrupt_ppm as f64 / 1e4,
                faults.duplicate_ppm as f64 / 1e4,
                faults.reorder_ppm as f64 / 1e4,
                faults
                    .rate
                    .map_or("unlimited".into(), |r| format!("{r} B/s")),
                faults.delay,
            );
        }
        let csum = offloads & TUN_F_CSUM != 0;
        let tso = offloads & TUN_F_TSO != 0;
        log::info!(
            "TAP device {name}: MTU {mtu}, checksum offload {csum}, segmentation offload {tso}"
        );
        let frames = if tso { FRAME_MAX } else { mtu + 14 };
        Ok(Tap {
            // One byte more than the largest frame: a read that fills it was cut short.
            rx: vec![0; offload::LEN + frames + 1].into_boxed_slice(),
            port: Port {
                name: name.to_owned(),
                file,
                mtu: mtu + 14,
                vnet,
                csum,
                tso,
                tx: vec![0; offload::LEN + frames].into_boxed_slice(),
                gso: None,
                pcap,
                faults: Faults {
                    args: faults.clone(),
                    rng: Rng::new(seed),
                    rx: Direction::new(),
                    tx: Direction::new(),
                },
                failure: None,
                now: Instant::now(),
            },
            stock,
        })
    }

    /// The next frame for our stack, if any: its length, the frame itself in `rx` after the
    /// virtio-net header's place.
    fn next_frame(&mut self, now: Instant) -> Option<usize> {
        // Bounded, so that a flood of dropped frames cannot starve the transmit side.
        for _ in 0..64 {
            if self.port.failure.is_some() {
                return None;
            }
            let frame = match self.port.faults.rx.due(now) {
                Some(frame) => frame,
                None => match self.read(now)? {
                    Got::Ready(len) => return Some(len),
                    Got::Faulted(frame) => frame,
                    Got::Again => continue,
                },
            };
            if self.port.csum && !checksum_ok(&frame) {
                continue;
            }
            self.rx[offload::LEN..][..frame.len()].copy_from_slice(&frame);
            return Some(frame.len());
        }
        None
    }

    /// Read one frame from the device into `rx`; `None` when there is none (or the device
    /// failed).
    fn read(&mut self, now: Instant) -> Option<Got> {
        let port = &mut self.port;
        if !port.faults.rx.allowed(port.faults.args.rate, port.mtu, now) {
            return None;
        }
        // Without the header, the frame goes where it would have gone with it.
        let at = if port.vnet { 0 } else { offload::LEN };
        let n = match port.file.read(&mut self.rx[at..]) {
            Ok(0) => {
                let text = format!("TAP device {} closed", port.name);
                port.fail(text);
                return None;
            }
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return None,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => return Some(Got::Again),
            Err(e) => {
                let text = format!("TAP device {} failed: {e}", port.name);
                port.fail(text);
                return None;
            }
        };
        if at + n < offload::LEN || at + n == self.rx.len() {
            // Shorter than its header or longer than any frame we asked for.
            return Some(Got::Again);
        }
        let len = at + n - offload::LEN;
        port.faults.rx.tokens -= len as f64;
        let (header, frame) = self.rx.split_at_mut(offload::LEN);
        let frame = &mut frame[..len];
        if !port.faults.args.any() {
            // The fast way: the frame stays where it was read.
            if port.csum && !offload::vouched(header) && !checksum_ok(frame) {
                return Some(Got::Again);
            }
            return Some(Got::Ready(len));
        }
        // A frame the faults may corrupt carries its whole checksum, for the device to check
        // after them.
        if port.vnet
            && offload::needs_checksum(header)
            && let Some(segment) = Segment::find(frame)
        {
            segment.complete(frame);
        }
        let faults = &mut port.faults;
        let passed = Faults::apply(
            &faults.args,
            &mut faults.rng,
            &mut faults.rx.held,
            frame.to_vec(),
            now,
        );
        // Dropped or held back by the faults: read on.
        Some(passed.map_or(Got::Again, Got::Faulted))
    }

    /// Flush the capture; its error if it fails.
    pub fn finish(&mut self) -> Result<(), String> {
        if let Some(pcap) = &mut self.port.pcap {
            pcap.out
                .flush()
                .map_err(|e| format!("cannot write {}: {e}", pcap.path.display()))?;
        }
        Ok(())
    }

    /// The device's error, if it failed.
    pub fn failure(&self) -> Option<&str> {
        self.port.failure.as_deref()
    }
}

/// Attach `file` to the TAP device `name`, with the virtio-net header and the kernel's offloads
/// `wanted` (none: no header) as far as the kernel agrees: whether the header is on, and the
/// offloads it took. A kernel that refuses them is no error: the frames then go as they are.
fn attach(file: &File, name: &str, wanted: libc::c_ulong) -> Result<(bool, libc::c_ulong), String> {
    let fd = file.as_raw_fd();
    let set = |flags: libc::c_int| {
        let mut request = IfReq {
            name: [0; 16],
            flags: flags as libc::c_short,
            _rest: [0; 22],
        };
        // `interface_name` allowed at most 15 bytes: the NUL fits.
        request.name[..name.len()].copy_from_slice(name.as_bytes());
        // SAFETY: TUNSETIFF reads and writes one `struct ifreq`, which `request` is (40 bytes,
        // C layout), valid for the whole call; the descriptor is open.
        match unsafe { libc::ioctl(fd, TUNSETIFF as _, &mut request) } {
            0.. => Ok(()),
            _ => Err(io::Error::last_os_error()),
        }
    };
    let plain = libc::IFF_TAP | libc::IFF_NO_PI;
    let vnet = wanted != 0 && set(plain | libc::IFF_VNET_HDR).is_ok();
    if !vnet && let Err(e) = set(plain) {
        let hint = match e.raw_os_error() {
            Some(libc::EBUSY) => " (another program has it open)",
            Some(libc::EPERM) => " (we need CAP_NET_ADMIN)",
            _ => "",
        };
        return Err(format!("cannot open TAP device {name}: {e}{hint}"));
    }
    if !vnet {
        return Ok((false, 0));
    }
    // Segmentation offload needs checksum offload: try what is wanted, then checksums alone.
    for offloads in [wanted, TUN_F_CSUM] {
        // SAFETY: TUNSETOFFLOAD takes its argument by value; the descriptor is open.
        if unsafe { libc::ioctl(fd, TUNSETOFFLOAD as _, offloads) } == 0 {
            return Ok((true, offloads));
        }
    }
    Ok((true, 0))
}

/// What one read of the device gave.
enum Got {
    /// A frame of this length, in place in the receive buffer.
    Ready(usize),
    /// A frame that went through the faults, to be checked and put in place.
    Faulted(Vec<u8>),
    /// Nothing to hand on (dropped, held back, interrupted): read again.
    Again,
}

/// Set the MTU of the device `name`, as `ip link set NAME mtu MTU` does.
fn set_mtu(name: &str, mtu: u32) -> Result<(), String> {
    /// `struct ifreq` as `SIOCSIFMTU` reads it: the name and `ifr_mtu`.
    #[repr(C)]
    struct IfMtu {
        name: [u8; 16],
        mtu: libc::c_int,
        _rest: [u8; 20],
    }
    let failed = |e: io::Error| format!("cannot set the MTU of {name} to {mtu}: {e}");
    // SAFETY: `socket` takes no pointers; a descriptor it returns is ours to own.
    let socket = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if socket < 0 {
        return Err(failed(io::Error::last_os_error()));
    }
    // SAFETY: a new descriptor, owned by nothing else.
    let socket = unsafe { OwnedFd::from_raw_fd(socket) };
    let mut request = IfMtu {
        name: [0; 16],
        mtu: mtu as libc::c_int,
        _rest: [0; 20],
    };
    // `interface_name` allowed at most 15 bytes: the NUL fits.
    request.name[..name.len()].copy_from_slice(name.as_bytes());
    // SAFETY: SIOCSIFMTU reads one `struct ifreq` (40 bytes, C layout), valid for the call.
    if unsafe { libc::ioctl(socket.as_raw_fd(), libc::SIOCSIFMTU as _, &mut request) } < 0 {
        return Err(failed(io::Error::last_os_error()));
    }
    Ok(())
}

/// Whether a frame's TCP checksum, if it has one, is right.
fn checksum_ok(frame: &[u8]) -> bool {
    Segment::find(frame).is_none_or(|segment| segment.verify(frame))
}

impl Drop for Port {
    /// Turn the offloads off again: a later reader of the device without the virtio-net header
    /// (smoltcp's `TunTapInterface`, for one) would get 64 KiB frames with unfinished checksums.
    fn drop(&mut self) {
        if self.vnet {
            // SAFETY: as in `attach`.
            unsafe {
                libc::ioctl(
                    self.file.as_raw_fd(),
                    TUNSETOFFLOAD as _,
                    0 as libc::c_ulong,
                )
            };
        }
    }
}

impl Port {
    fn fail(&mut self, what: String) {
        if self.failure.is_none() {
            self.failure = Some(what);
        }
    }

    fn capture(&mut self, frame: &[u8]) {
        if let Some(pcap) = &mut self.pcap
            && let Err(e) = pcap.frame(self.now, frame)
        {
            let text = format!("cannot write {}: {e}", pcap.path.display());
            self.pcap = None;
            self.fail(text);
        }
    }

    /// Write one frame, its virtio-net header first if the device has them, to the TAP device.
    fn write(&mut self, frame: &[u8]) {
        match self.file.write(frame) {
            Ok(_) => {}
            // The device's queue is full: the frame is lost, as on a congested link.
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(e) => {
                let text = format!("TAP device {} failed: {e}", self.name);
                self.fail(text);
            }
        }
    }

    /// Write a frame that went through the faults (an empty header before it: its checksum is
    /// whole and it needs no cutting).
    fn write_faulty(&mut self, frame: &[u8]) {
        if self.vnet {
            let mut whole = vec![0; offload::LEN];
            whole.extend_from_slice(frame);
            self.write(&whole);
        } else {
            self.write(frame);
        }
    }

    /// Write the held outgoing frames that are due.
    fn release(&mut self, now: Instant) {
        while self.failure.is_none()
            && let Some(frame) = self.faults.tx.due(now)
        {
            self.write_faulty(&frame);
        }
    }
}

/// A frame read from the device, or from smoltcp's.
pub enum Frame<'a> {
    Ours(&'a [u8]),
    Stock(<phy::TunTapInterface as Device>::RxToken<'a>),
}

impl phy::RxToken for Frame<'_> {
    fn consume<R, F: FnOnce(&[u8]) -> R>(self, f: F) -> R {
        match self {
            Frame::Ours(frame) => f(frame),
            Frame::Stock(token) => token.consume(f),
        }
    }
}

/// Sends one frame (through the faults) to the device, or to smoltcp's.
pub enum Sender<'a> {
    Ours(&'a mut Port),
    Stock(<phy::TunTapInterface as Device>::TxToken<'a>),
}

impl phy::TxToken for Sender<'_> {
    fn consume<R, F: FnOnce(&mut [u8]) -> R>(self, len: usize, f: F) -> R {
        let port = match self {
            Sender::Ours(port) => port,
            Sender::Stock(token) => return token.consume(len, f),
        };
        // Out of the port while it is written to, so the port can capture and send it.
        let mut tx = std::mem::take(&mut port.tx);
        let (header, frame) = tx.split_at_mut(offload::LEN);
        let frame = &mut frame[..len];
        let result = f(frame);
        let gso = port.gso.take().filter(|_| port.tso);
        let under_faults = port.faults.args.any();
        if port.csum
            && let Some(segment) = Segment::find(frame)
        {
            if under_faults {
                // Whole, so that the kernel catches a bit the faults flip.
                segment.complete(frame);
            } else {
                header.copy_from_slice(&segment.offload(frame, gso));
            }
        } else {
            header.fill(0);
        }
        port.capture(frame);
        if !under_faults {
            let at = if port.vnet { 0 } else { offload::LEN };
            port.write(&tx[at..offload::LEN + len]);
        } else {
            let now = port.now;
            let faults = &mut port.faults;
            let rate = faults.args.rate;
            if let Some(frame) = Faults::apply(
                &faults.args,
                &mut faults.rng,
                &mut faults.tx.held,
                frame.to_vec(),
                now,
            ) && let Some(frame) = faults.tx.shape(rate, frame, now)
            {
                port.write_faulty(&frame);
            }
        }
        port.tx = tx;
        result
    }

    fn set_meta(&mut self, meta: phy::PacketMeta) {
        match self {
            Sender::Ours(port) => port.gso = meta.segmentation_offload_size.map(|s| s.get()),
            Sender::Stock(token) => token.set_meta(meta),
        }
    }
}

impl Device for Tap {
    type RxToken<'a> = Frame<'a>;
    type TxToken<'a> = Sender<'a>;

    fn receive(&mut self, now: Instant) -> Option<(Frame<'_>, Sender<'_>)> {
        if let Some(stock) = &mut self.stock {
            return stock
                .receive(now)
                .map(|(rx, tx)| (Frame::Stock(rx), Sender::Stock(tx)));
        }
        self.port.now = now;
        self.port.release(now);
        let len = self.next_frame(now)?;
        let frame = &self.rx[offload::LEN..][..len];
        self.port.capture(frame);
        Some((Frame::Ours(frame), Sender::Ours(&mut self.port)))
    }

    fn transmit(&mut self, now: Instant) -> Option<Sender<'_>> {
        if let Some(stock) = &mut self.stock {
            return stock.transmit(now).map(Sender::Stock);
        }
        self.port.now = now;
        self.port.release(now);
        if self.port.failure.is_some() {
            return None;
        }
        Some(Sender::Ours(&mut self.port))
    }

    fn capabilities(&self) -> DeviceCapabilities {
        if let Some(stock) = &self.stock {
            return stock.capabilities();
        }
        let port = &self.port;
        let mut caps = DeviceCapabilities::default();
        caps.medium = Medium::Ethernet;
        caps.max_transmission_unit = port.mtu;
        if port.csum {
            caps.checksum.tcp = phy::Checksum::None;
        }
        if port.tso {
            caps.segmentation.tcpv4 = NonZeroUsize::new(FRAME_MAX);
            caps.segmentation.tcpv6 = NonZeroUsize::new(FRAME_MAX);
        }
        caps
    }
}

impl Driver for Tap {
    type Device = Tap;

    fn device(&mut self) -> &mut Tap {
        self
    }

    fn now(&mut self) -> Instant {
        Instant::now()
    }

    fn wait(&mut self, until: Option<Instant>) -> Result<(), String> {
        let port = &self.port;
        if let Some(failure) = &port.failure {
            return Err(failure.clone());
        }
        let now = Instant::now();
        let rate = port.faults.args.rate;
        let until = earliest(
            until,
            earliest(port.faults.rx.poll_at(rate), port.faults.tx.poll_at(rate)),
        );
        // At most 100 ms, so the progress bar moves and a stuck device is noticed.
        let delay = until.map_or(Duration::from_millis(100), |t| {
            if t > now {
                (t - now).min(Duration::from_millis(100))
            } else {
                Duration::ZERO
            }
        });
        // While the receive bucket is empty, frames wait in the kernel: sleep, do not spin.
        let readable = port.faults.rx.tokens > 0.0 || rate.is_none();
        let fd = match &self.stock {
            Some(stock) => stock.as_raw_fd(),
            None => port.file.as_raw_fd(),
        };
        let mut fd = libc::pollfd {
            fd,
            events: if readable { libc::POLLIN } else { 0 },
            revents: 0,
        };
        let millis = delay.total_micros().div_ceil(1000) as libc::c_int;
        // SAFETY: one valid `pollfd` for the duration of the call.
        let n = unsafe { libc::poll(&mut fd, 1, millis) };
        if n < 0 {
            let e = io::Error::last_os_error();
            if e.kind() != io::ErrorKind::Interrupted {
                return Err(format!("poll on TAP device {}: {e}", port.name));
            }
        }
        Ok(())
    }
}

/// A TCP socket of the TAP programs, with `rx` and `tx` bytes of buffers. Built against smoltcp
/// with `patches/` applied (`scripts/smoltcp-patched.sh`, which sets `--cfg smoltcp_patched`),
/// its minimum retransmission timeout is Linux's 200 ms, not smoltcp's fixed second (patch 0009,
/// `tcp::Socket::set_min_rto`).
pub fn socket(rx: usize, tx: usize) -> smoltcp::socket::tcp::Socket<'static> {
    use smoltcp::socket::tcp;
    #[allow(unused_mut)]
    let mut socket = tcp::Socket::new(
        tcp::SocketBuffer::new(vec![0; rx]),
        tcp::SocketBuffer::new(vec![0; tx]),
    );
    #[cfg(smoltcp_patched)]
    socket.set_min_rto(MIN_RTO);
    socket
}

/// The minimum retransmission timeout of [`socket`] with the patched smoltcp: Linux's.
pub const MIN_RTO: Duration = Duration::from_millis(200);

/// Open the TAP device and bring up an interface on it.
pub fn open(args: &TapArgs) -> Result<(Tap, Interface), String> {
    let mut tap = Tap::open(args)?;
    // A locally administered MAC, and a seed from the clock so sequence numbers and ports
    // differ between runs.
    let mut config = Config::new(EthernetAddress([0x02, 0x00, 0x00, 0x00, 0x00, 0x01]).into());
    config.random_seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(1, |d| d.as_nanos() as u64);
    let mut iface = Interface::new(config, &mut tap, Instant::now());
    iface.update_ip_addrs(|addrs| {
        // One address on a fresh interface always fits.
        let _ = addrs.push(args.addr);
    });
    let route = match args.gateway {
        Some(IpAddress::Ipv4(gw)) => iface.routes_mut().add_default_ipv4_route(gw).map(|_| ()),
        Some(IpAddress::Ipv6(gw)) => iface.routes_mut().add_default_ipv6_route(gw).map(|_| ()),
        None => Ok(()),
    };
    route.map_err(|_| "cannot add the default route: the route table is full".to_string())?;
    Ok((tap, iface))
}

/// Wait (at most 2 s) until Linux has brought the link up on its side of the TAP device.
///
/// Opening the device turns its carrier on, but Linux starts transmitting on it only when its
/// link-watch work has handled that, a few milliseconds later. A device the previous program
/// left (as in the README's walkthrough: `tap_server`, then `tap_client`) shows `down` until
/// then. The kernel drops what it sends before that: its answer to our first ARP request. smoltcp
/// sends no SYN until the neighbour is resolved and asks again only after a second (its
/// neighbour discovery rate limit), so the first connection took a second. `operstate` leaves
/// `down` when the link-watch work has run; on a device that never reports it we go on after the
/// limit, and smoltcp's retry covers the rest.
fn wait_for_carrier(name: &str) {
    let path = format!("/sys/class/net/{name}/operstate");
    let end = std::time::Instant::now() + std::time::Duration::from_secs(2);
    while std::time::Instant::now() < end {
        match std::fs::read_to_string(&path) {
            Ok(state) if state.trim() == "down" || state.trim() == "lowerlayerdown" => {
                std::thread::sleep(std::time::Duration::from_millis(1))
            }
            _ => return,
        }
    }
}
