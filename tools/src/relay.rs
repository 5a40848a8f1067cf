//! The `relay` program's link (Linux): Ethernet frames between two TAP devices, each direction
//! dropping some and delaying all, as our TAP programs' `--drop` and `--delay` do at their own
//! device. Two kernel TCP stacks on the two devices then talk over a link with the faults ours
//! meet: the kernel → kernel column of `scripts/tap-loss.sh`.
#![allow(unsafe_code)]

use std::collections::VecDeque;
use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use halfclose::sim::Rng;

/// The faults, the same each way.
#[derive(Debug, Clone, Copy)]
pub struct Link {
    /// The chance that a frame is dropped, in parts per million.
    pub drop_ppm: u32,
    /// How long every frame is held.
    pub delay: Duration,
    /// Each direction's generator is seeded from this.
    pub seed: u64,
    /// [`relay`] returns after this long without a frame either way.
    pub idle: Duration,
}

/// What one direction did with its frames.
#[derive(Debug, Default, Clone, Copy)]
pub struct Counts {
    /// Written to the other device.
    pub forwarded: u64,
    /// Dropped by chance.
    pub dropped: u64,
    /// Not written: the queue was full, or the other device refused it (down, say).
    pub lost: u64,
    /// Still held when the relay stopped.
    pub held: u64,
}

/// Frames held in one direction at most; past that, the newest are lost.
const QUEUE_MAX: usize = 100_000;

static STOP: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: libc::c_int) {
    STOP.store(true, Ordering::Relaxed);
}

/// Make SIGTERM and SIGINT end [`relay`] (which then returns its counts).
pub fn stop_on_signals() {
    for signal in [libc::SIGTERM, libc::SIGINT] {
        let handler = on_signal as extern "C" fn(libc::c_int);
        // SAFETY: the handler only stores to an atomic, which is async-signal-safe.
        unsafe { libc::signal(signal, handler as libc::sighandler_t) };
    }
}

/// One direction: its generator, the frames it holds and its counts.
struct Way {
    rng: Rng,
    held: VecDeque<(Instant, Vec<u8>)>,
    counts: Counts,
}

impl Way {
    /// Read what `from` has (at most 64 frames, so that a flood one way cannot starve the
    /// other) and pass it through the faults towards `to`; whether a frame came.
    fn pump(
        &mut self,
        mut from: &File,
        to: &File,
        buf: &mut [u8],
        link: &Link,
    ) -> io::Result<bool> {
        let mut came = false;
        for _ in 0..64 {
            let n = match from.read(buf) {
                Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            came = true;
            if self.rng.chance(link.drop_ppm) {
                self.counts.dropped += 1;
            } else if link.delay.is_zero() {
                self.send(to, &buf[..n])?;
            } else if self.held.len() >= QUEUE_MAX {
                self.counts.lost += 1;
            } else {
                // Every frame due `delay` after it came: they leave in the order they came.
                self.held
                    .push_back((Instant::now() + link.delay, buf[..n].to_vec()));
            }
        }
        Ok(came)
    }

    /// Write the held frames that are due to `to`.
    fn flush(&mut self, to: &File, now: Instant) -> io::Result<()> {
        while self.held.front().is_some_and(|(due, _)| *due <= now) {
            let (_, frame) = self.held.pop_front().expect("a front frame");
            self.send(to, &frame)?;
        }
        Ok(())
    }

    fn send(&mut self, mut to: &File, frame: &[u8]) -> io::Result<()> {
        match to.write(frame) {
            Ok(_) => self.counts.forwarded += 1,
            // Down (EIO) or its queue full: the frame is lost, as on a wire.
            Err(e)
                if matches!(
                    e.raw_os_error(),
                    Some(libc::EIO | libc::EAGAIN | libc::ENOBUFS)
                ) =>
            {
                self.counts.lost += 1
            }
            Err(e) => return Err(e),
        }
        Ok(())
    }
}

/// Forward frames between `taps` (named `names`) with the faults of `link`, until `link.idle`
/// passes without a frame or a signal of [`stop_on_signals`] comes; what each direction did,
/// from the first device's to the second's first.
pub fn relay(taps: &[File; 2], names: [&str; 2], link: &Link) -> Result<[Counts; 2], String> {
    // Each way its own generator, both from the seed: the k-th frame one way meets the same
    // fate on every run with that seed, whatever the other way carries.
    let mut first = Rng::new(link.seed);
    let second = Rng::new(first.next_u64());
    let mut ways = [first, second].map(|rng| Way {
        rng,
        held: VecDeque::new(),
        counts: Counts::default(),
    });
    let mut buf = vec![0u8; 65536];
    let mut last = Instant::now();
    while !STOP.load(Ordering::Relaxed) && last.elapsed() < link.idle {
        // Sleep until a frame comes, a held one is due, or the idle time is up.
        let next = ways.iter().filter_map(|w| w.held.front().map(|(t, _)| *t));
        let until = next.fold(last + link.idle, Instant::min);
        let ms = until
            .saturating_duration_since(Instant::now())
            .as_micros()
            .div_ceil(1000);
        let mut fds = taps.each_ref().map(|t| libc::pollfd {
            fd: t.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        });
        // SAFETY: `fds` is an array of two `pollfd`, valid for the call.
        if unsafe { libc::poll(fds.as_mut_ptr(), 2, ms as libc::c_int) } < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(format!("poll: {e}"));
        }
        for (from, way) in ways.iter_mut().enumerate() {
            let (name, to) = (names[from], &taps[1 - from]);
            if fds[from].revents & (libc::POLLERR | libc::POLLHUP | libc::POLLNVAL) != 0 {
                return Err(format!("TAP device {name} failed (deleted?)"));
            }
            let failed = |e: io::Error| format!("from {name}: {e}");
            if way.pump(&taps[from], to, &mut buf, link).map_err(failed)? {
                last = Instant::now();
            }
            way.flush(to, Instant::now()).map_err(failed)?;
        }
    }
    Ok(ways.map(|w| Counts {
        held: w.held.len() as u64,
        ..w.counts
    }))
}

/// `struct ifreq` as `TUNSETIFF` reads it.
#[repr(C)]
struct IfReq {
    name: [u8; 16],
    flags: libc::c_short,
    _rest: [u8; 22],
}

/// `_IOW('T', 202, int)`: the write direction's bit differs on some architectures.
const TUNSETIFF: libc::c_ulong = {
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
    write | (4 << 16) | ((b'T' as libc::c_ulong) << 8) | 202
};

/// Enter the network namespace `ns` is a descriptor of.
fn setns(ns: &File, what: &str) -> Result<(), String> {
    // SAFETY: setns takes a descriptor, open for the call, and a flag.
    if unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) } < 0 {
        let e = io::Error::last_os_error();
        return Err(format!("cannot enter {what}: {e}"));
    }
    Ok(())
}

/// Attach to the existing TAP device `name` of the network namespace `netns` (`ip netns add`;
/// `None`: ours), non-blocking, without a packet-info header. The device stays ours wherever it
/// is moved later.
pub fn open(name: &str, netns: Option<&str>) -> Result<File, String> {
    let Some(netns) = netns else {
        return attach(name);
    };
    // /dev/net/tun looks the device up in the namespace it is opened in: enter that one, then
    // come back.
    let open = |path: &str| File::open(path).map_err(|e| format!("cannot open {path}: {e}"));
    let home = open("/proc/self/ns/net")?;
    setns(&open(&format!("/run/netns/{netns}"))?, netns)?;
    let file = attach(name).map_err(|e| format!("{e} (network namespace {netns})"));
    setns(&home, "our own network namespace again")?;
    file
}

/// Attach to the existing TAP device `name` of our network namespace.
fn attach(name: &str) -> Result<File, String> {
    // TUNSETIFF would create a missing device: insist on one that exists.
    let c_name = std::ffi::CString::new(name)
        .ok()
        .filter(|_| name.len() < 16);
    // SAFETY: `c_name` is a NUL-terminated string, valid for the call.
    if c_name.is_none_or(|c| unsafe { libc::if_nametoindex(c.as_ptr()) } == 0) {
        return Err(format!(
            "no device {name:?} (`ip tuntap add dev {name} mode tap`)"
        ));
    }
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
    request.name[..name.len()].copy_from_slice(name.as_bytes());
    // SAFETY: TUNSETIFF reads and writes one `struct ifreq`, which `request` is (40 bytes, C
    // layout), valid for the whole call; the descriptor is open.
    if unsafe { libc::ioctl(file.as_raw_fd(), TUNSETIFF as _, &mut request) } < 0 {
        let e = io::Error::last_os_error();
        let hint = match e.raw_os_error() {
            Some(libc::EINVAL) => " (not a TAP device)",
            Some(libc::EBUSY) => " (another program has it open)",
            _ => "",
        };
        return Err(format!("cannot attach to TAP device {name}: {e}{hint}"));
    }
    Ok(file)
}
