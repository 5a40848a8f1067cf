//! Our smoltcp server and client against the kernel's TCP, over a TAP device inside a network
//! namespace each test creates (and always deletes). The kernel side is `examples/lesson.rs`,
//! the lesson's BSD-sockets programs on `std::net`.
//!
//! Needs root, `/dev/net/tun` and `ip`; without them each test prints why it skips and passes.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use common::random_bytes;
use halfclose::REPLY;
use halfclose::segment::Segment;
use smoltcp::phy::Medium;

const OURS: &str = "192.168.69.1";
const KERNEL: &str = "192.168.69.100";
const PORT: u16 = halfclose::DEFAULT_PORT;

/// Why these tests cannot run here, if they cannot.
fn missing() -> Option<String> {
    let root = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .map(|l| l.split_whitespace().nth(2) == Some("0"))
        })
        .unwrap_or(false);
    if !root {
        return Some("not running as root".into());
    }
    if !Path::new("/dev/net/tun").exists() {
        return Some("no /dev/net/tun".into());
    }
    match Command::new("ip").arg("-V").output() {
        Ok(o) if o.status.success() => None,
        _ => Some("no `ip` command (iproute2)".into()),
    }
}

macro_rules! require_tap {
    () => {
        if let Some(why) = missing() {
            eprintln!("skipping: {why}; the TAP tests need root, /dev/net/tun and iproute2");
            return;
        }
    };
}

/// A network namespace with a TAP device `tap0`, the kernel's side addressed `KERNEL/24`.
/// Deleted on drop, so also when a test fails.
struct Namespace {
    name: String,
}

impl Namespace {
    fn new() -> Namespace {
        static COUNT: AtomicUsize = AtomicUsize::new(0);
        let name = format!(
            "halfclose-{}-{}",
            std::process::id(),
            COUNT.fetch_add(1, Ordering::Relaxed)
        );
        let ns = Namespace { name };
        ns.ip(&["netns", "add", &ns.name]);
        ns.ip(&["-n", &ns.name, "link", "set", "lo", "up"]);
        ns.ip(&[
            "-n", &ns.name, "tuntap", "add", "dev", "tap0", "mode", "tap",
        ]);
        ns.ip(&["-n", &ns.name, "link", "set", "tap0", "up"]);
        ns.ip(&[
            "-n",
            &ns.name,
            "addr",
            "add",
            &format!("{KERNEL}/24"),
            "dev",
            "tap0",
        ]);
        ns
    }

    fn ip(&self, args: &[&str]) {
        let out = Command::new("ip").args(args).output().expect("run ip");
        assert!(
            out.status.success(),
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Start `program` (an example binary) inside the namespace.
    fn spawn(&self, program: &str, args: &[&str]) -> Child {
        Command::new("ip")
            .args(["netns", "exec", &self.name])
            .arg(example(program))
            .args(args)
            .env("LESSON_TIMEOUT", "30")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn")
    }
}

impl Drop for Namespace {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
    }
}

/// An example binary next to this test's (`cargo test` builds the examples).
fn example(name: &str) -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().unwrap().parent().unwrap();
    let path = dir.join("examples").join(name);
    assert!(
        path.exists(),
        "{} is missing: `cargo test` builds the examples, `cargo test --test tap` alone does not \
         (run `cargo build --examples` first)",
        path.display()
    );
    path
}

/// Wait for `child` at most `limit`, killing it after that: nothing here can hang.
fn finish(mut child: Child, limit: Duration) -> Output {
    let end = Instant::now() + limit;
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > end {
            let _ = child.kill();
            let out = child.wait_with_output().unwrap();
            panic!(
                "killed after {limit:?}: {}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    child.wait_with_output().unwrap()
}

fn text(out: &Output) -> String {
    format!(
        "status {}\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// A temporary directory, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> TempDir {
        static COUNT: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "halfclose-{tag}-{}-{}",
            std::process::id(),
            COUNT.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }

    fn path(&self, name: &str) -> String {
        self.0.join(name).to_str().unwrap().to_owned()
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Our server sends `len` bytes to the kernel's lesson client; returns the pcap's path.
fn our_server_to_kernel_client(len: usize, tmp: &TempDir) -> String {
    let ns = Namespace::new();
    let file = tmp.path("file");
    let copy = tmp.path("copy");
    let pcap = tmp.path("server.pcap");
    let payload = random_bytes(len, len as u64 + 7);
    std::fs::write(&file, &payload).unwrap();

    let server = ns.spawn(
        "tap_server",
        &["--clients", "1", "--wait", "30", "--pcap", &pcap, &file],
    );
    // The client retries its connection until the server's interface answers ARP and SYN.
    let client = retry_connect(&ns, &["client", OURS, &PORT.to_string(), &copy]);
    let server = finish(server, Duration::from_secs(60));
    assert!(server.status.success(), "tap_server: {}", text(&server));
    assert!(client.status.success(), "lesson client: {}", text(&client));

    let stdout = String::from_utf8_lossy(&server.stdout);
    assert!(
        stdout.contains("Message from client: Thank you\n"),
        "{}",
        text(&server)
    );
    assert!(
        stdout.contains(&format!("sent {len} bytes")),
        "{}",
        text(&server)
    );
    let got = std::fs::read(&copy).unwrap();
    assert_eq!(got.len(), len);
    assert!(got == payload, "the kernel client's copy differs");
    pcap
}

/// Run the lesson client, again if the connection was refused because our server was not up yet.
fn retry_connect(ns: &Namespace, args: &[&str]) -> Output {
    let end = Instant::now() + Duration::from_secs(20);
    loop {
        let out = finish(ns.spawn("lesson", args), Duration::from_secs(60));
        let refused = String::from_utf8_lossy(&out.stderr).contains("connect:");
        if out.status.success() || !refused || Instant::now() > end {
            return out;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The kernel's lesson server sends `len` bytes (1024-byte writes) to our client.
fn kernel_server_to_our_client(len: usize, tmp: &TempDir) {
    let ns = Namespace::new();
    let file = tmp.path("file");
    let copy = tmp.path("copy");
    let payload = random_bytes(len, len as u64 + 11);
    std::fs::write(&file, &payload).unwrap();

    let server = ns.spawn(
        "lesson",
        &["server", "--bind", KERNEL, &PORT.to_string(), &file],
    );
    let end = Instant::now() + Duration::from_secs(20);
    let client = loop {
        let out = finish(
            ns.spawn("tap_client", &["--peer", KERNEL, "-o", &copy]),
            Duration::from_secs(60),
        );
        // Refused only if the kernel server has not bound yet.
        let refused = String::from_utf8_lossy(&out.stderr).contains("refused");
        if out.status.success() || !refused || Instant::now() > end {
            break out;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let server = finish(server, Duration::from_secs(60));
    assert!(client.status.success(), "tap_client: {}", text(&client));
    assert!(server.status.success(), "lesson server: {}", text(&server));
    assert!(
        String::from_utf8_lossy(&server.stdout).contains("Message from client: Thank you\n"),
        "{}",
        text(&server)
    );
    let got = std::fs::read(&copy).unwrap();
    assert_eq!(got.len(), len);
    assert!(got == payload, "our client's copy differs");
}

const SIZES: [usize; 4] = [0, 1, 100 * 1024, 32 << 20];

#[test]
fn our_server_serves_the_kernels_client_byte_exact_and_gets_thank_you() {
    require_tap!();
    for len in SIZES {
        let tmp = TempDir::new("server");
        our_server_to_kernel_client(len, &tmp);
    }
}

#[test]
fn our_client_fetches_from_the_kernels_half_closing_server_and_thanks_it() {
    require_tap!();
    for len in SIZES {
        let tmp = TempDir::new("client");
        kernel_server_to_our_client(len, &tmp);
    }
}

/// The classic pcap format: a 24-byte file header, then a 16-byte header before each frame.
fn pcap_frames(bytes: &[u8]) -> Vec<&[u8]> {
    assert!(bytes.len() >= 24, "pcap too short");
    let magic = u32::from_le_bytes(bytes[0..4].try_into().unwrap());
    assert_eq!(magic, 0xa1b2_c3d4, "little-endian microsecond pcap");
    let link = u32::from_le_bytes(bytes[20..24].try_into().unwrap());
    assert_eq!(link, 1, "Ethernet link type");
    let mut frames = Vec::new();
    let mut at = 24;
    while at + 16 <= bytes.len() {
        let len = u32::from_le_bytes(bytes[at + 8..at + 12].try_into().unwrap()) as usize;
        frames.push(&bytes[at + 16..at + 16 + len]);
        at += 16 + len;
    }
    assert_eq!(at, bytes.len(), "pcap ends on a frame boundary");
    frames
}

#[test]
fn the_pcap_shows_our_fin_before_the_thank_you_which_we_acknowledge() {
    require_tap!();
    let tmp = TempDir::new("pcap");
    let pcap = our_server_to_kernel_client(100 * 1024, &tmp);
    let bytes = std::fs::read(pcap).unwrap();
    let frames = pcap_frames(&bytes);
    let segments: Vec<_> = frames
        .iter()
        .filter_map(|f| Segment::parse(Medium::Ethernet, f).map(|s| (s, *f)))
        .collect();
    assert!(segments.len() > 70, "the capture has the transfer in it");

    let fin = segments
        .iter()
        .position(|(s, _)| s.src.port == PORT && s.fin)
        .expect("our FIN is in the capture");
    let reply = segments
        .iter()
        .position(|(s, f)| s.dst.port == PORT && &f[s.payload()] == REPLY)
        .expect("the client's \"Thank you\\0\" segment is in the capture");
    assert!(fin < reply, "our FIN ({fin}) precedes the reply ({reply})");

    let (reply_seg, _) = segments[reply];
    let reply_end = reply_seg.seq.wrapping_add(REPLY.len() as u32);
    assert!(
        segments[reply..].iter().any(|(s, _)| s.src.port == PORT
            && s.ack.is_some_and(|a| a.wrapping_sub(reply_end) as i32 >= 0)),
        "our stack acknowledges the reply"
    );
}

#[test]
fn a_missing_tap_device_is_a_clear_error() {
    require_tap!();
    let ns = Namespace::new();
    let out = finish(
        ns.spawn("tap_client", &["--tap", "nosuchtap0", "-o", "/dev/null"]),
        Duration::from_secs(20),
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("cannot open TAP device nosuchtap0"),
        "{}",
        text(&out)
    );
}

#[test]
fn bad_arguments_are_clear_errors_without_privileges() {
    let out = Command::new(example("tap_server"))
        .args(["--addr", "300.1.2.3/24", "x"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("bad address/prefix"));

    let out = Command::new(example("tap_server"))
        .arg("/nonexistent/file")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot read /nonexistent/file"));
}
