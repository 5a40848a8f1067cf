//! The async transfer on embassy-net (`examples/embassy_tap.rs`) against the kernel's TCP, over a
//! TAP device inside a network namespace each test creates (and always deletes). The kernel side
//! is `examples/lesson.rs`, the lesson's BSD-sockets programs.
//!
//! Needs root, `/dev/net/tun` and `ip`; without them each test prints why it skips and passes.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use common::random_bytes;

const OURS: &str = "192.168.69.1";
const KERNEL: &str = "192.168.69.100";
const PORT: &str = "7891";

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
            eprintln!(
                "skipping: {why}; the embassy TAP tests need root, /dev/net/tun and iproute2"
            );
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
            "halfclose-embassy-{}-{}",
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
        let cidr = format!("{KERNEL}/24");
        ns.ip(&["-n", &ns.name, "addr", "add", &cidr, "dev", "tap0"]);
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
    let path = exe
        .parent()
        .unwrap()
        .parent()
        .unwrap()
        .join("examples")
        .join(name);
    assert!(
        path.exists(),
        "{} is missing: `cargo test` builds the examples (or run `cargo build --examples`)",
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
            panic!("killed after {limit:?}: {}", text(&out));
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

/// A temporary directory (in /dev/shm when there is one), removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> TempDir {
        static COUNT: AtomicUsize = AtomicUsize::new(0);
        let base = if Path::new("/dev/shm").is_dir() {
            PathBuf::from("/dev/shm")
        } else {
            std::env::temp_dir()
        };
        let dir = base.join(format!(
            "halfclose-embassy-{}-{}",
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

/// Our embassy-net server sends `len` bytes to the kernel's lesson client.
fn embassy_server_to_lesson_client(len: usize) {
    let tmp = TempDir::new();
    let (file, copy) = (tmp.path("file"), tmp.path("copy"));
    let payload = random_bytes(len, len as u64 + 11);
    std::fs::write(&file, &payload).unwrap();
    let ns = Namespace::new();
    let server = ns.spawn("embassy_tap", &["server", &file]);
    // The lesson client does not retry: run it again while our stack is not up yet.
    let end = Instant::now() + Duration::from_secs(20);
    let client = loop {
        let out = finish(
            ns.spawn("lesson", &["client", OURS, PORT, &copy]),
            Duration::from_secs(60),
        );
        let refused = String::from_utf8_lossy(&out.stderr).contains("connect:");
        if out.status.success() || !refused || Instant::now() > end {
            break out;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let server = finish(server, Duration::from_secs(60));
    assert!(
        server.status.success(),
        "embassy_tap server: {}",
        text(&server)
    );
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
    assert!(
        std::fs::read(&copy).unwrap() == payload,
        "{len} bytes: the copy differs"
    );
}

/// The kernel's lesson server sends `len` bytes to our embassy-net client offering `rx` bytes of
/// receive buffer; returns the client's output.
fn lesson_server_to_embassy_client(len: usize, rx: usize) -> Output {
    let tmp = TempDir::new();
    let (file, copy) = (tmp.path("file"), tmp.path("copy"));
    let payload = random_bytes(len, len as u64 + 13);
    std::fs::write(&file, &payload).unwrap();
    let ns = Namespace::new();
    let server = ns.spawn("lesson", &["server", "--bind", KERNEL, PORT, &file]);
    let rx = rx.to_string();
    let client = finish(
        ns.spawn(
            "embassy_tap",
            &["client", "--rx", &rx, "--wait", "20", &copy],
        ),
        Duration::from_secs(60),
    );
    let server = finish(server, Duration::from_secs(60));
    assert!(
        client.status.success(),
        "embassy_tap client: {}",
        text(&client)
    );
    assert!(server.status.success(), "lesson server: {}", text(&server));
    assert!(
        String::from_utf8_lossy(&server.stdout).contains("Message from client: Thank you\n"),
        "{}",
        text(&server)
    );
    let got = std::fs::read(&copy).unwrap();
    assert_eq!(got.len(), len, "{}", text(&client));
    assert!(got == payload, "{len} bytes: the copy differs");
    assert!(!Path::new(&format!("{copy}.partial")).exists());
    client
}

#[test]
fn embassy_server_sends_to_the_kernel_lesson_client() {
    require_tap!();
    for len in [0, 100_000, 2 << 20] {
        embassy_server_to_lesson_client(len);
    }
}

#[test]
fn embassy_client_fetches_from_the_kernel_lesson_server() {
    require_tap!();
    for len in [0, 100_000, 2 << 20] {
        lesson_server_to_embassy_client(len, 65536);
    }
}

/// smoltcp (0.13 in embassy-net, as 0.14) can end a file short when its receive window is scaled
/// and a FIN rides on a segment trimmed at a window edge that moved back. `client_socket` keeps
/// the window unscaled however much buffer is offered; sizes around multiples of 64 KiB, against
/// a kernel that puts its FIN on the last data segment, all arrive whole.
#[test]
fn embassy_client_never_ends_a_short_file_at_the_window_edge() {
    require_tap!();
    for k in 1..=4usize {
        for delta in [-3isize, -1, 1, 3] {
            let len = (k * 65536).checked_add_signed(delta).unwrap();
            let out = lesson_server_to_embassy_client(len, 256 * 1024);
            let stdout = String::from_utf8_lossy(&out.stdout);
            assert!(
                stdout.contains("receive buffer 65535 bytes\n"),
                "256 KiB offered must be clamped to 65535 bytes: {}",
                text(&out)
            );
        }
    }
}

/// A SYN from an address that never answers (a forged one, or a client that vanished) leaves the
/// server's only socket in SYN-RECEIVED; `asynch::embassy::accept` aborts it after the handshake
/// limit and listens again, so the next real client is served. Without that the socket would stay
/// half-open for as long as smoltcp retransmits its SYN-ACK, and every client would be refused.
#[test]
fn embassy_server_drops_a_half_open_handshake_and_serves_the_next_client() {
    require_tap!();
    let tmp = TempDir::new();
    let (file, copy) = (tmp.path("file"), tmp.path("copy"));
    let payload = random_bytes(10_000, 17);
    std::fs::write(&file, &payload).unwrap();
    let ns = Namespace::new();
    let server = ns.spawn("embassy_tap", &["server", "--handshake", "1", &file]);
    // Wait until our stack answers: a connection that is refused by a RST proves it listens
    // (the lesson client cannot be used for this: it would take the one connection).
    std::thread::sleep(Duration::from_millis(500));
    // One SYN from 192.168.69.200, an address nobody on the link answers ARP for: our SYN-ACK
    // never leaves, the socket stays in SYN-RECEIVED.
    let forged = Command::new("ip")
        .args([
            "netns", "exec", &ns.name, "python3", "-c", FORGE_SYN, OURS, PORT,
        ])
        .output()
        .expect("run python3");
    assert!(forged.status.success(), "forging a SYN: {}", text(&forged));
    std::thread::sleep(Duration::from_millis(200));
    let started = Instant::now();
    let mut refused = 0;
    let client = loop {
        let out = finish(
            ns.spawn("lesson", &["client", OURS, PORT, &copy]),
            Duration::from_secs(60),
        );
        let was_refused = String::from_utf8_lossy(&out.stderr).contains("connect:");
        if out.status.success() || !was_refused || started.elapsed() > Duration::from_secs(20) {
            break out;
        }
        refused += 1;
        std::thread::sleep(Duration::from_millis(100));
    };
    let waited = started.elapsed();
    let server = finish(server, Duration::from_secs(60));
    assert!(
        server.status.success(),
        "embassy_tap server: {}",
        text(&server)
    );
    assert!(client.status.success(), "lesson client: {}", text(&client));
    assert!(std::fs::read(&copy).unwrap() == payload, "the copy differs");
    assert!(
        refused > 0,
        "the half-open handshake should have held the socket for a while"
    );
    // Half-open for at most 1.5 handshake limits, then the next attempt gets in.
    assert!(
        waited < Duration::from_secs(5),
        "served only after {waited:?}"
    );
}

/// Python: send one TCP SYN to ADDR:PORT from 192.168.69.200 through a raw socket.
const FORGE_SYN: &str = r#"
import socket, struct, sys
dst, port = sys.argv[1], int(sys.argv[2])
src = "192.168.69.200"
def checksum(data):
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack("!%dH" % (len(data) // 2), data))
    s = (s >> 16) + (s & 0xffff)
    s += s >> 16
    return ~s & 0xffff
tcp = struct.pack("!HHIIBBHHH", 40000, port, 12345, 0, 5 << 4, 0x02, 1024, 0, 0)
pseudo = socket.inet_aton(src) + socket.inet_aton(dst) + struct.pack("!BBH", 0, 6, len(tcp))
tcp = tcp[:16] + struct.pack("!H", checksum(pseudo + tcp)) + tcp[18:]
ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(tcp), 1, 0, 64, 6, 0,
                 socket.inet_aton(src), socket.inet_aton(dst))
ip = ip[:10] + struct.pack("!H", checksum(ip)) + ip[12:]
s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
s.sendto(ip + tcp, (dst, 0))
"#;

/// A socket the program built itself with a scaled window (256 KiB) is refused by `connect`
/// before anything is sent: no SYN, no file, and the error names the buffer.
#[test]
fn embassy_connect_refuses_a_receive_buffer_that_would_scale_the_window() {
    require_tap!();
    let tmp = TempDir::new();
    let copy = tmp.path("copy");
    let ns = Namespace::new();
    let out = finish(
        ns.spawn(
            "embassy_tap",
            &["client", "--rx", "262144", "--unclamped", &copy],
        ),
        Duration::from_secs(30),
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("262144") && stderr.contains("receive buffer"),
        "{}",
        text(&out)
    );
    assert!(!Path::new(&copy).exists(), "no file may appear");
}
