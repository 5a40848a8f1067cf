//! The TAP programs' device: our own `phy::Device` over `/dev/net/tun`, with an optional pcap
//! capture and seeded faults, whose errors end the transfer instead of panicking.
//!
//! smoltcp's `TunTapInterface` and `PcapWriter` panic on an I/O error (their tokens cannot
//! return one), so a TAP device deleted or set down mid-transfer, or a full disk under the pcap,
//! would crash the program. Here the first error is kept and [`Driver::wait`] returns it.
#![allow(unsafe_code)]

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::fd::AsRawFd;
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

/// `struct ifreq` as `TUNSETIFF` reads it: the name, the flags, and the rest of the union.
#[repr(C)]
struct IfReq {
    name: [u8; 16],
    flags: libc::c_short,
    _rest: [u8; 22],
}

/// `_IOW('T', 202, int)`: the direction bits differ on some architectures.
const TUNSETIFF: libc::c_ulong = if cfg!(any(
    target_arch = "mips",
    target_arch = "mips64",
    target_arch = "powerpc",
    target_arch = "powerpc64",
    target_arch = "sparc64"
)) {
    0x8004_54ca
} else {
    0x4004_54ca
};

/// Our TAP device.
pub struct Tap {
    name: String,
    file: File,
    /// The largest frame, Ethernet header included.
    mtu: usize,
    pcap: Option<Pcap>,
    faults: Faults,
    /// The first error: the run ends with it.
    failure: Option<String>,
    now: Instant,
}

impl Tap {
    /// Attach to the existing TAP device `name`. smoltcp would create a missing one (down, so
    /// the first frame would fail): insist on one that exists and is up.
    pub fn open(name: &str, pcap: Option<&Path>, faults: &FaultArgs) -> Result<Tap, String> {
        let name = super::cli::interface_name(name)?;
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
        let mtu: usize = std::fs::read_to_string(sys.join("mtu"))
            .ok()
            .and_then(|m| m.trim().parse().ok())
            .unwrap_or(1500);

        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
            .open("/dev/net/tun")
            .map_err(|e| format!("cannot open /dev/net/tun: {e}"))?;
        let mut request = IfReq {
            name: [0; 16],
            flags: (libc::IFF_TAP | libc::IFF_NO_PI) as libc::c_short,
            _rest: [0; 22],
        };
        // `interface_name` allowed at most 15 bytes: the NUL fits.
        request.name[..name.len()].copy_from_slice(name.as_bytes());
        // SAFETY: TUNSETIFF reads and writes one `struct ifreq`, which `request` is (40 bytes,
        // C layout), valid for the whole call; the descriptor is open.
        let done = unsafe { libc::ioctl(file.as_raw_fd(), TUNSETIFF as _, &mut request) };
        if done < 0 {
            let e = io::Error::last_os_error();
            let hint = match e.raw_os_error() {
                Some(libc::EBUSY) => " (another program has it open)",
                Some(libc::EPERM) => " (we need CAP_NET_ADMIN)",
                _ => "",
            };
            return Err(format!("cannot open TAP device {name}: {e}{hint}"));
        }
        wait_for_carrier(name);
        let pcap = match pcap {
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
                "faults on {name}, each way: drop {} %, corrupt {} %, duplicate {} %, reorder {} %, rate {}, seed {seed}",
                faults.drop_ppm as f64 / 1e4,
                faults.corrupt_ppm as f64 / 1e4,
                faults.duplicate_ppm as f64 / 1e4,
                faults.reorder_ppm as f64 / 1e4,
                faults
                    .rate
                    .map_or("unlimited".into(), |r| format!("{r} B/s")),
            );
        }
        Ok(Tap {
            name: name.to_owned(),
            file,
            mtu: mtu + 14,
            pcap,
            faults: Faults {
                args: faults.clone(),
                rng: Rng::new(seed),
                rx: Direction::new(),
                tx: Direction::new(),
            },
            failure: None,
            now: Instant::now(),
        })
    }

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

    /// Write one frame to the TAP device.
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

    /// Write the held outgoing frames that are due.
    fn release(&mut self, now: Instant) {
        while self.failure.is_none()
            && let Some(frame) = self.faults.tx.due(now)
        {
            self.write(&frame);
        }
    }

    /// The first `len` bytes of `frame`, just read, through the receive side's faults: the frame
    /// to hand on now, or `None` if they dropped or held it.
    fn faults_on(&mut self, mut frame: Vec<u8>, len: usize, now: Instant) -> Option<Vec<u8>> {
        frame.truncate(len);
        self.faults.rx.tokens -= len as f64;
        let faults = &mut self.faults;
        Faults::apply(
            &faults.args,
            &mut faults.rng,
            &mut faults.rx.held,
            frame,
            now,
        )
    }

    /// The next frame for our stack, if any.
    fn next_frame(&mut self, now: Instant) -> Option<Vec<u8>> {
        if let Some(frame) = self.faults.rx.due(now) {
            return Some(frame);
        }
        // Bounded, so that a flood of dropped frames cannot starve the transmit side.
        for _ in 0..64 {
            if self.failure.is_some()
                || !self.faults.rx.allowed(self.faults.args.rate, self.mtu, now)
            {
                return None;
            }
            let mut frame = vec![0; self.mtu];
            match self.file.read(&mut frame) {
                Ok(0) => {
                    let text = format!("TAP device {} closed", self.name);
                    self.fail(text);
                    return None;
                }
                Ok(n) => match self.faults_on(frame, n, now) {
                    Some(frame) => return Some(frame),
                    // Dropped or held back by the faults: read on.
                    None => continue,
                },
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return None,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    let text = format!("TAP device {} failed: {e}", self.name);
                    self.fail(text);
                    return None;
                }
            }
        }
        None
    }

    /// Flush the capture; its error if it fails.
    pub fn finish(&mut self) -> Result<(), String> {
        if let Some(pcap) = &mut self.pcap {
            pcap.out
                .flush()
                .map_err(|e| format!("cannot write {}: {e}", pcap.path.display()))?;
        }
        Ok(())
    }

    /// The device's error, if it failed.
    pub fn failure(&self) -> Option<&str> {
        self.failure.as_deref()
    }
}

/// A frame read from the device.
pub struct Frame(Vec<u8>);

impl phy::RxToken for Frame {
    fn consume<R, F: FnOnce(&[u8]) -> R>(self, f: F) -> R {
        f(&self.0)
    }
}

/// Sends one frame through the faults to the device.
pub struct Sender<'a>(&'a mut Tap);

impl phy::TxToken for Sender<'_> {
    fn consume<R, F: FnOnce(&mut [u8]) -> R>(self, len: usize, f: F) -> R {
        let tap = self.0;
        let mut frame = vec![0; len];
        let result = f(&mut frame);
        tap.capture(&frame);
        let now = tap.now;
        let faults = &mut tap.faults;
        let rate = faults.args.rate;
        if let Some(frame) = Faults::apply(
            &faults.args,
            &mut faults.rng,
            &mut faults.tx.held,
            frame,
            now,
        ) && let Some(frame) = faults.tx.shape(rate, frame, now)
        {
            tap.write(&frame);
        }
        result
    }
}

impl Device for Tap {
    type RxToken<'a> = Frame;
    type TxToken<'a> = Sender<'a>;

    fn receive(&mut self, now: Instant) -> Option<(Frame, Sender<'_>)> {
        self.now = now;
        self.release(now);
        let frame = self.next_frame(now)?;
        self.capture(&frame);
        Some((Frame(frame), Sender(self)))
    }

    fn transmit(&mut self, now: Instant) -> Option<Sender<'_>> {
        self.now = now;
        self.release(now);
        if self.failure.is_some() {
            return None;
        }
        Some(Sender(self))
    }

    fn capabilities(&self) -> DeviceCapabilities {
        let mut caps = DeviceCapabilities::default();
        caps.medium = Medium::Ethernet;
        caps.max_transmission_unit = self.mtu;
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
        if let Some(failure) = &self.failure {
            return Err(failure.clone());
        }
        let now = Instant::now();
        let rate = self.faults.args.rate;
        let until = earliest(
            until,
            earliest(self.faults.rx.poll_at(rate), self.faults.tx.poll_at(rate)),
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
        let readable = self.faults.rx.tokens > 0.0 || rate.is_none();
        let mut fd = libc::pollfd {
            fd: self.file.as_raw_fd(),
            events: if readable { libc::POLLIN } else { 0 },
            revents: 0,
        };
        let millis = delay.total_micros().div_ceil(1000) as libc::c_int;
        // SAFETY: one valid `pollfd` for the duration of the call.
        let n = unsafe { libc::poll(&mut fd, 1, millis) };
        if n < 0 {
            let e = io::Error::last_os_error();
            if e.kind() != io::ErrorKind::Interrupted {
                return Err(format!("poll on TAP device {}: {e}", self.name));
            }
        }
        Ok(())
    }
}

/// Open the TAP device and bring up an interface on it.
pub fn open(args: &TapArgs) -> Result<(Tap, Interface), String> {
    let mut tap = Tap::open(&args.tap, args.pcap.as_deref(), &args.faults)?;
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
