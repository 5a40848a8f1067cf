//! What `tap_server` and `tap_client` share: options, the TAP-backed interface, the wait loop,
//! progress and logging.
#![allow(dead_code)]

use std::fs::File;
use std::io::{IsTerminal, Write};
use std::os::fd::AsRawFd;
use std::path::PathBuf;
use std::str::FromStr;

use halfclose::Timeouts;
use smoltcp::iface::{Config, Interface, SocketSet};
use smoltcp::phy::{Medium, PcapMode, PcapWriter, TunTapInterface};
use smoltcp::time::{Duration, Instant};
use smoltcp::wire::{EthernetAddress, IpAddress, IpCidr};

/// Options both programs take.
pub struct Common {
    pub tap: String,
    pub addr: IpCidr,
    pub gateway: Option<IpAddress>,
    pub port: u16,
    pub pcap: Option<PathBuf>,
    pub timeouts: Timeouts,
    pub verbose: bool,
}

pub const COMMON_HELP: &str = "\
  --tap NAME             TAP device to use (default tap0)
  --addr ADDR/PREFIX     our address on it (default 192.168.69.1/24)
  --gateway ADDR         default route, for peers outside the prefix
  --port PORT            TCP port (default 7891)
  --pcap PATH            write every frame to PATH (pcap, opens in Wireshark/tshark)
  --connect-timeout S    seconds for the handshake (default 10)
  --idle-timeout S       seconds the transfer may stand still (default 30)
  --reply-timeout S      seconds for the reply and the final FIN (default 10)
  -v                     smoltcp's and halfclose's log on stderr
  -h, --help             this text";

impl Common {
    pub fn new() -> Self {
        Common {
            tap: "tap0".into(),
            addr: IpCidr::new(IpAddress::v4(192, 168, 69, 1), 24),
            gateway: None,
            port: halfclose::DEFAULT_PORT,
            pcap: None,
            timeouts: Timeouts::DEFAULT,
            verbose: false,
        }
    }

    /// Take `flag` (and its value from `args`) if it is a common option.
    pub fn take(
        &mut self,
        flag: &str,
        args: &mut impl Iterator<Item = String>,
    ) -> Result<bool, String> {
        let mut value = || args.next().ok_or(format!("{flag} needs a value"));
        match flag {
            "--tap" => self.tap = value()?,
            "--addr" => self.addr = parse(&value()?, "address/prefix")?,
            "--gateway" => self.gateway = Some(parse(&value()?, "address")?),
            "--port" => self.port = parse(&value()?, "port")?,
            "--pcap" => self.pcap = Some(value()?.into()),
            "--connect-timeout" => self.timeouts.connect = seconds(&value()?)?,
            "--idle-timeout" => self.timeouts.idle = seconds(&value()?)?,
            "--reply-timeout" => self.timeouts.reply = seconds(&value()?)?,
            "-v" => self.verbose = true,
            _ => return Ok(false),
        }
        Ok(true)
    }
}

pub fn parse<T: FromStr>(text: &str, what: &str) -> Result<T, String> {
    text.parse().map_err(|_| format!("bad {what}: {text:?}"))
}

fn seconds(text: &str) -> Result<Duration, String> {
    let s: f64 = parse(text, "number of seconds")?;
    if !(s > 0.0 && s < 1e6) {
        return Err(format!("bad number of seconds: {text:?}"));
    }
    Ok(Duration::from_micros((s * 1e6) as u64))
}

/// The TAP device, seen through a pcap writer (to a file, or to nowhere).
pub type Device = PcapWriter<TunTapInterface, Box<dyn Write>>;

/// Open the TAP device and bring up an interface on it.
pub fn open(opts: &Common) -> Result<(Device, i32, Interface), String> {
    if opts.verbose {
        log::set_logger(&StderrLogger).ok();
        log::set_max_level(log::LevelFilter::Trace);
    }
    // smoltcp would create a missing TAP device (down, so the first frame would fail): insist on
    // one that exists and is up.
    let flags = std::fs::read_to_string(format!("/sys/class/net/{}/flags", opts.tap))
        .map_err(|_| format!("cannot open TAP device {}: no such device (create it: `ip tuntap add dev {} mode tap`)", opts.tap, opts.tap))?;
    let up =
        u32::from_str_radix(flags.trim().trim_start_matches("0x"), 16).is_ok_and(|f| f & 1 == 1);
    if !up {
        return Err(format!(
            "TAP device {} is down (`ip link set {} up`)",
            opts.tap, opts.tap
        ));
    }
    let tap = TunTapInterface::new(&opts.tap, Medium::Ethernet).map_err(|e| {
        format!(
            "cannot open TAP device {}: {e} (it must exist, e.g. `ip tuntap add dev {} mode tap`, and we need CAP_NET_ADMIN)",
            opts.tap, opts.tap
        )
    })?;
    wait_for_carrier(&opts.tap);
    let fd = tap.as_raw_fd();
    let sink: Box<dyn Write> = match &opts.pcap {
        Some(path) => Box::new(
            File::create(path).map_err(|e| format!("cannot create {}: {e}", path.display()))?,
        ),
        None => Box::new(std::io::sink()),
    };
    let mut device = PcapWriter::new(tap, sink, PcapMode::Both);

    // A locally administered MAC, and a seed from the clock so sequence numbers and ports
    // differ between runs.
    let mut config = Config::new(EthernetAddress([0x02, 0x00, 0x00, 0x00, 0x00, 0x01]).into());
    config.random_seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(1, |d| d.as_nanos() as u64);
    let mut iface = Interface::new(config, &mut device, Instant::now());
    iface.update_ip_addrs(|addrs| {
        addrs.push(opts.addr).expect("one address fits");
    });
    match opts.gateway {
        Some(IpAddress::Ipv4(gw)) => {
            iface
                .routes_mut()
                .add_default_ipv4_route(gw)
                .map_err(|_| "cannot add the route")?;
        }
        Some(IpAddress::Ipv6(gw)) => {
            iface
                .routes_mut()
                .add_default_ipv6_route(gw)
                .map_err(|_| "cannot add the route")?;
        }
        None => {}
    }
    Ok((device, fd, iface))
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
pub fn wait_for_carrier(tap: &str) {
    let path = format!("/sys/class/net/{tap}/operstate");
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

/// Sleep until the TAP has a frame or the interface's next timer, at most 100 ms.
pub fn wait(fd: i32, iface: &mut Interface, sockets: &SocketSet<'_>) {
    let delay = iface
        .poll_delay(Instant::now(), sockets)
        .map_or(Duration::from_millis(100), |d| {
            d.min(Duration::from_millis(100))
        });
    // An error here (EINTR) only means we poll a little early.
    let _ = smoltcp::phy::wait(fd, Some(delay));
}

/// A one-line progress bar on stderr, redrawn at most every 200 ms, only on a terminal and only
/// for large files.
pub struct Progress {
    on: bool,
    total: Option<u64>,
    last: std::time::Instant,
    started: std::time::Instant,
}

impl Progress {
    pub fn new(total: Option<u64>) -> Self {
        let now = std::time::Instant::now();
        Progress {
            on: std::io::stderr().is_terminal() && total.is_none_or(|t| t >= 1 << 20),
            total,
            last: now,
            started: now,
        }
    }

    pub fn update(&mut self, bytes: u64) {
        if !self.on || self.last.elapsed() < std::time::Duration::from_millis(200) {
            return;
        }
        self.last = std::time::Instant::now();
        let rate = bytes as f64 / self.started.elapsed().as_secs_f64().max(1e-9) / 1e6;
        let line = match self.total {
            Some(total) if total > 0 => {
                let done = (bytes as f64 / total as f64).min(1.0);
                let bar = (done * 30.0) as usize;
                format!(
                    "[{}{}] {:5.1}% {bytes}/{total} bytes {rate:.1} MB/s",
                    "#".repeat(bar),
                    " ".repeat(30 - bar),
                    done * 100.0
                )
            }
            _ => format!("{bytes} bytes {rate:.1} MB/s"),
        };
        eprint!("\r{line}\x1b[K");
    }

    pub fn finish(&self) {
        if self.on {
            eprint!("\r\x1b[K");
        }
    }
}

/// Seconds and MB/s for a summary line, over `took`.
pub fn rate(bytes: u64, took: Duration) -> (f64, f64) {
    let secs = took.total_micros() as f64 / 1e6;
    (secs, bytes as f64 / secs.max(1e-9) / 1e6)
}

struct StderrLogger;

impl log::Log for StderrLogger {
    fn enabled(&self, _: &log::Metadata) -> bool {
        true
    }

    fn log(&self, record: &log::Record) {
        eprintln!(
            "{:5} {}: {}",
            record.level(),
            record.target(),
            record.args()
        );
    }

    fn flush(&self) {}
}
