//! The async transfer on embassy-net (`examples/embassy_tap.rs`) against the kernel's TCP, over a
//! TAP device inside a network namespace each test creates (and always deletes). The kernel side
//! is `tools/src/bin/lesson.rs`, the lesson's BSD-sockets programs.
//!
//! Needs root, `/dev/net/tun` and `ip`; without them each test prints why it skips and passes.

mod common;

use std::path::Path;
use std::process::Output;
use std::time::{Duration, Instant};

use common::netns::{
    Namespace, Scratch, assert_served, finish, require_tap, retry_while_refused, text,
};
use common::random_bytes;

const OURS: &str = "192.168.69.1";
const KERNEL: &str = "192.168.69.100";
const PORT: &str = "7891";

/// Our embassy-net server sends `len` bytes to the kernel's lesson client.
fn embassy_server_to_lesson_client(len: usize) {
    let tmp = Scratch::new();
    let (file, copy) = (tmp.path("file"), tmp.path("copy"));
    let payload = random_bytes(len, len as u64 + 11);
    std::fs::write(&file, &payload).unwrap();
    let ns = Namespace::new("halfclose-embassy", KERNEL);
    let server = ns.spawn("embassy_tap", &["server", &file]);
    // The lesson client does not retry: run it again while our stack is not up yet.
    let client = retry_while_refused("connect:", || {
        let args = ["client", OURS, PORT, &copy];
        finish(ns.spawn("lesson", &args), Duration::from_secs(60))
    });
    let server = finish(server, Duration::from_secs(60));
    assert_served("embassy_tap server", &server, &client, len);
    assert!(
        std::fs::read(&copy).unwrap() == payload,
        "{len} bytes: the copy differs"
    );
}

/// The kernel's lesson server sends `len` bytes to our embassy-net client offering `rx` bytes of
/// receive buffer; returns the client's output.
fn lesson_server_to_embassy_client(len: usize, rx: usize) -> Output {
    let tmp = Scratch::new();
    let (file, copy) = (tmp.path("file"), tmp.path("copy"));
    let payload = random_bytes(len, len as u64 + 13);
    std::fs::write(&file, &payload).unwrap();
    let ns = Namespace::new("halfclose-embassy", KERNEL);
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
    require_tap!("the embassy TAP tests need");
    for len in [0, 100_000, 2 << 20] {
        embassy_server_to_lesson_client(len);
    }
}

#[test]
fn embassy_client_fetches_from_the_kernel_lesson_server() {
    require_tap!("the embassy TAP tests need");
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
    require_tap!("the embassy TAP tests need");
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
    require_tap!("the embassy TAP tests need");
    let tmp = Scratch::new();
    let (file, copy) = (tmp.path("file"), tmp.path("copy"));
    let payload = random_bytes(10_000, 17);
    std::fs::write(&file, &payload).unwrap();
    let ns = Namespace::new("halfclose-embassy", KERNEL);
    let server = ns.spawn("embassy_tap", &["server", "--handshake", "1", &file]);
    // Wait until our stack answers: a connection that is refused by a RST proves it listens
    // (the lesson client cannot be used for this: it would take the one connection).
    std::thread::sleep(Duration::from_millis(500));
    // One SYN from 192.168.69.200, an address nobody on the link answers ARP for: our SYN-ACK
    // never leaves, the socket stays in SYN-RECEIVED.
    let forged = ns.run(
        &["python3", "-c", FORGE_SYN, OURS, PORT],
        Duration::from_secs(30),
    );
    assert!(forged.status.success(), "forging a SYN: {}", text(&forged));
    std::thread::sleep(Duration::from_millis(200));
    let started = Instant::now();
    let mut attempts = 0;
    let client = retry_while_refused("connect:", || {
        attempts += 1;
        let args = ["client", OURS, PORT, &copy];
        finish(ns.spawn("lesson", &args), Duration::from_secs(60))
    });
    // Every attempt but the last was refused.
    let refused = attempts - 1;
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
    require_tap!("the embassy TAP tests need");
    let tmp = Scratch::new();
    let copy = tmp.path("copy");
    let ns = Namespace::new("halfclose-embassy", KERNEL);
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
