//! Our smoltcp server and client against the kernel's TCP, over a TAP device inside a network
//! namespace each test creates (and always deletes). The kernel side is `tools/src/bin/lesson.rs`,
//! the lesson's BSD-sockets programs on `std::net`.
//!
//! Needs root, `/dev/net/tun` and `ip`; without them each test prints why it skips and passes.
#![cfg(target_os = "linux")]

mod common;

use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use common::netns::{
    Namespace, Scratch, assert_served, example, finish, require_tap, retry_while_refused, text,
};
use common::random_bytes;
use halfclose::REPLY;
use halfclose::segment::Segment;
use smoltcp::phy::Medium;

const OURS: &str = "192.168.69.1";
const KERNEL: &str = "192.168.69.100";
const PORT: u16 = halfclose::DEFAULT_PORT;

/// A namespace whose TAP device has the MTU `mtu`.
fn namespace(mtu: u32) -> Namespace {
    let ns = Namespace::new("halfclose", KERNEL);
    let mtu = mtu.to_string();
    ns.ip(&["-n", &ns.name, "link", "set", "tap0", "mtu", &mtu]);
    ns
}

/// Our server sends `len` bytes to the kernel's lesson client over a link of MTU `mtu`, with
/// `options` of ours; returns the pcap's path.
fn our_server_to_kernel_client(len: usize, tmp: &Scratch, mtu: u32, options: &[&str]) -> String {
    let ns = namespace(mtu);
    let file = tmp.path("file");
    let copy = tmp.path("copy");
    let pcap = tmp.path("server.pcap");
    let payload = random_bytes(len, len as u64 + 7);
    std::fs::write(&file, &payload).unwrap();

    let mut args = vec!["--clients", "1", "--wait", "30", "--pcap", &pcap, &file];
    args.extend(options);
    let server = ns.spawn("tap_server", &args);
    // The client retries its connection until the server's interface answers ARP and SYN.
    let client = retry_while_refused("connect:", || {
        let args = ["client", OURS, &PORT.to_string(), &copy];
        finish(ns.spawn("lesson", &args), Duration::from_secs(60))
    });
    let server = finish(server, Duration::from_secs(60));
    assert_served("tap_server", &server, &client, len);
    let got = std::fs::read(&copy).unwrap();
    assert_eq!(got.len(), len);
    assert!(got == payload, "the kernel client's copy differs");
    pcap
}

/// The lesson's kernel server in `ns`, serving `file` on `PORT`.
fn kernel_server(ns: &Namespace, file: &str) -> std::process::Child {
    ns.spawn(
        "lesson",
        &["server", "--bind", KERNEL, &PORT.to_string(), file],
    )
}

/// The kernel's lesson server sends `len` bytes (1024-byte writes) to our client over a link of
/// MTU `mtu`, with `options` of ours; returns the pcap's path.
fn kernel_server_to_our_client(len: usize, tmp: &Scratch, mtu: u32, options: &[&str]) -> String {
    let ns = namespace(mtu);
    let file = tmp.path("file");
    let copy = tmp.path("copy");
    let pcap = tmp.path("client.pcap");
    let payload = random_bytes(len, len as u64 + 11);
    std::fs::write(&file, &payload).unwrap();

    let server = kernel_server(&ns, &file);
    // Refused only if the kernel server has not bound yet.
    let client = retry_while_refused("refused", || {
        let mut args = vec!["--peer", KERNEL, "-o", &copy, "--pcap", &pcap];
        args.extend(options);
        finish(ns.spawn("tap_client", &args), Duration::from_secs(60))
    });
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
    pcap
}

const SIZES: [usize; 4] = [0, 1, 100 * 1024, 32 << 20];

#[test]
fn our_server_serves_the_kernels_client_byte_exact_and_gets_thank_you() {
    require_tap!("the TAP tests need");
    for len in SIZES {
        let tmp = Scratch::new();
        our_server_to_kernel_client(len, &tmp, 1500, &[]);
    }
}

#[test]
fn our_client_fetches_from_the_kernels_half_closing_server_and_thanks_it() {
    require_tap!("the TAP tests need");
    for len in SIZES {
        let tmp = Scratch::new();
        kernel_server_to_our_client(len, &tmp, 1500, &[]);
    }
}

/// The longest frames in a capture of ours: those we sent, and those we received.
fn longest_frames(pcap: &str) -> (usize, usize) {
    let bytes = std::fs::read(pcap).unwrap();
    let frames = pcap_frames(&bytes);
    // Our interface's MAC (`examples/common/tap.rs`): the frames to us.
    let to_us = |f: &&[u8]| f[0..6] == [2, 0, 0, 0, 0, 1];
    let longest = |to: bool| {
        frames
            .iter()
            .filter(|f| to_us(f) == to)
            .map(|f| f.len())
            .max()
            .unwrap_or(0)
    };
    (longest(false), longest(true))
}

/// At each MTU, with the kernel's offloads and without, both ways: byte-exact with the reply.
/// With them, frames longer than the link's carry the data (the kernel's 64 KiB segments to us,
/// ours for the kernel to cut) where the link leaves room for them; without them, none does.
///
/// How long the kernel's segments to us are is the kernel's choice: it sizes them by its pacing
/// rate and cuts them to our window, so on a busy machine, where our client reads late and opens
/// the window a segment at a time, a whole transfer can come in frames no longer than the link's.
/// That direction is therefore tried up to [`KERNEL_TRIES`] times, each one byte-exact, until
/// one carries a longer frame. Our own segments are ours to size, and are held to it at once.
#[test]
fn at_each_mtu_with_offloads_on_and_off_both_ways_are_byte_exact_with_the_reply() {
    require_tap!("the TAP tests need");
    const LEN: usize = 4 << 20;
    for (mtu, offload) in [1500, 9000, 65521]
        .into_iter()
        .flat_map(|m| [(m, true), (m, false)])
    {
        let options: &[&str] = if offload { &[] } else { &["--no-offload"] };
        let link = mtu as usize + 14;
        // Whether frames longer than the link's must carry the data: a 64 KiB frame is no longer
        // than the link's at the largest MTU.
        let longer = offload && mtu < 65000;
        let check = |direction: &str, pcap: &str, data_sent: bool| {
            let (sent, received) = longest_frames(pcap);
            let what = format!(
                "MTU {mtu}, offload {offload}, {direction}: longest frames sent {sent}, received {received}"
            );
            eprintln!("{what}");
            assert!(sent <= 14 + 65535 && received <= 14 + 65535, "{what}");
            if !offload {
                assert!(sent <= link && received <= link, "{what}");
            }
            let data = if data_sent { sent } else { received };
            (data > link, what)
        };

        let tmp = Scratch::new();
        let ours = our_server_to_kernel_client(LEN, &tmp, mtu, options);
        let (ours_longer, what) = check("ours -> kernel", &ours, true);
        assert!(ours_longer || !longer, "{what}");

        let mut tries = 0;
        loop {
            tries += 1;
            let tmp = Scratch::new();
            let theirs = kernel_server_to_our_client(LEN, &tmp, mtu, options);
            let (theirs_longer, what) = check("kernel -> ours", &theirs, false);
            if theirs_longer || !longer {
                break;
            }
            assert!(tries < KERNEL_TRIES, "{what}, in each of {tries} transfers");
        }
    }
}

/// How many transfers from the kernel may pass before one carries a frame longer than the link's.
const KERNEL_TRIES: usize = 5;

/// `--mtu` sets the TAP device's MTU before our client connects: without offloads, the kernel's
/// segments then fill frames of the new size.
#[test]
fn the_mtu_option_sets_the_links_mtu_before_the_transfer() {
    require_tap!("the TAP tests need");
    let tmp = Scratch::new();
    let options = ["--mtu", "9000", "--no-offload"];
    let pcap = kernel_server_to_our_client(1 << 20, &tmp, 1500, &options);
    let (_, received) = longest_frames(&pcap);
    assert_eq!(received, 14 + 9000, "the kernel's longest frame to us");
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
    require_tap!("the TAP tests need");
    let tmp = Scratch::new();
    let pcap = our_server_to_kernel_client(100 * 1024, &tmp, 1500, &[]);
    let bytes = std::fs::read(pcap).unwrap();
    let frames = pcap_frames(&bytes);
    let segments: Vec<_> = frames
        .iter()
        .filter_map(|f| Segment::parse(Medium::Ethernet, f).map(|s| (s, *f)))
        .collect();
    let sent: usize = segments
        .iter()
        .filter(|(s, _)| s.src.port == PORT)
        .map(|(s, _)| s.payload().len())
        .sum();
    assert!(sent >= 100 * 1024, "the capture has the transfer in it");

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
    require_tap!("the TAP tests need");
    let ns = Namespace::new("halfclose", KERNEL);
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
fn a_pcap_that_cannot_be_written_is_a_clear_error_not_a_panic() {
    require_tap!("the TAP tests need");
    let ns = Namespace::new("halfclose", KERNEL);
    let tmp = Scratch::new();
    std::fs::write(tmp.path("file"), b"x").unwrap();
    let out = finish(
        ns.spawn("tap_server", &["--pcap", "/dev/full", &tmp.path("file")]),
        Duration::from_secs(20),
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert_eq!(
        one_line(&out),
        "tap_server: cannot write /dev/full: No space left on device (os error 28)"
    );
}

/// The single line a failed run printed on stderr (and no panic).
fn one_line(out: &Output) -> String {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "{}", text(out));
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 1, "one line on stderr: {}", text(out));
    lines[0].to_owned()
}

/// What the tests of outputs cut short look for in the scratch directory.
impl Scratch {
    /// The size of the hidden temporary file an output is being written to, if there is one.
    fn temp_size(&self) -> u64 {
        std::fs::read_dir(self.0.path())
            .unwrap()
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().ends_with(".tmp"))
            .filter_map(|e| e.metadata().ok())
            .map(|m| m.len())
            .max()
            .unwrap_or(0)
    }

    /// Wait until an output being written has passed `bytes`.
    fn wait_for_temp(&self, bytes: u64) {
        let end = Instant::now() + Duration::from_secs(60);
        while self.temp_size() < bytes {
            assert!(
                Instant::now() < end,
                "no output grew past {bytes} bytes in 60 s"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

/// What a failed client must leave: the old target as it was, and a `.partial` holding the
/// count of bytes the error line names, each of them right.
fn assert_partial(line: &str, tmp: &Scratch, payload: &[u8]) {
    assert_eq!(
        std::fs::read(tmp.path("copy")).unwrap(),
        b"an older copy that must survive",
        "the existing target is untouched"
    );
    let partial = std::fs::read(tmp.path("copy.partial")).expect("the partial file is kept");
    let kept = format!(
        "{} bytes kept in {}",
        partial.len(),
        tmp.path("copy.partial")
    );
    assert!(line.contains(&kept), "the line says {kept:?}: {line}");
    assert!(!partial.is_empty() && partial.len() < payload.len());
    assert!(
        payload.starts_with(&partial),
        "the partial file is the file's beginning"
    );
    assert_eq!(tmp.temp_size(), 0, "no temporary file left");
}

const BIG: usize = 64 << 20;
/// Bytes a second our program passes in the tests that cut a transfer short: at full speed
/// `BIG` can be over before the test has acted.
const SLOW: &str = "50000000";

#[test]
fn deleting_the_tap_device_mid_transfer_ends_our_client_in_one_line_keeping_a_partial() {
    require_tap!("the TAP tests need");
    let ns = Namespace::new("halfclose", KERNEL);
    let tmp = Scratch::new();
    let payload = random_bytes(BIG, 5);
    std::fs::write(tmp.path("file"), &payload).unwrap();
    std::fs::write(tmp.path("copy"), b"an older copy that must survive").unwrap();

    let server = kernel_server(&ns, &tmp.path("file"));
    std::thread::sleep(Duration::from_millis(300));
    let client = ns.spawn(
        "tap_client",
        &["--peer", KERNEL, "-o", &tmp.path("copy"), "--rate", SLOW],
    );
    tmp.wait_for_temp(1 << 20);
    ns.ip(&["-n", &ns.name, "link", "del", "tap0"]);
    let out = finish(client, Duration::from_secs(30));
    // The kernel's server has nowhere to send now: end it.
    let mut server = server;
    let _ = server.kill();
    let _ = server.wait();

    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let line = one_line(&out);
    assert!(
        line.starts_with("tap_client: TAP device tap0 failed: "),
        "{line}"
    );
    assert_partial(&line, &tmp, &payload);
}

#[test]
fn a_tap_device_set_down_mid_transfer_ends_our_server_in_one_line() {
    require_tap!("the TAP tests need");
    let ns = Namespace::new("halfclose", KERNEL);
    let tmp = Scratch::new();
    std::fs::write(tmp.path("file"), random_bytes(BIG, 6)).unwrap();
    let server = ns.spawn(
        "tap_server",
        &["--wait", "30", "--rate", SLOW, &tmp.path("file")],
    );
    let client = ns.spawn(
        "lesson",
        &["client", OURS, &PORT.to_string(), &tmp.path("copy")],
    );
    tmp.wait_for_temp(1 << 20);
    ns.ip(&["-n", &ns.name, "link", "set", "tap0", "down"]);
    let out = finish(server, Duration::from_secs(30));
    // The kernel's client would wait for its read timeout: end it.
    let mut client = client;
    let _ = client.kill();
    let _ = client.wait();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let line = one_line(&out);
    assert!(
        line.starts_with("tap_server: TAP device tap0 failed: Input/output error"),
        "{line}"
    );
    assert!(
        !Path::new(&tmp.path("copy")).exists(),
        "the kernel client's copy was not completed"
    );
}

/// The file is opened afresh for each client: gone by then, the OS's words say so.
#[test]
fn a_file_gone_before_the_client_connects_is_named_in_the_os_words() {
    require_tap!("the TAP tests need");
    let ns = Namespace::new("halfclose", KERNEL);
    let tmp = Scratch::new();
    let file = tmp.path("file");
    std::fs::write(&file, b"soon gone").unwrap();
    let server = ns.spawn("tap_server", &["--wait", "30", &file]);
    // Started once it has said what it serves; then the file goes.
    let end = Instant::now() + Duration::from_secs(20);
    let mut server = server;
    let mut stdout = server.stdout.take().unwrap();
    let mut seen = Vec::new();
    while !String::from_utf8_lossy(&seen).contains("serving") {
        assert!(Instant::now() < end, "tap_server did not start");
        let mut byte = [0u8; 1];
        if std::io::Read::read(&mut stdout, &mut byte).unwrap_or(0) == 0 {
            break;
        }
        seen.push(byte[0]);
    }
    std::fs::remove_file(&file).unwrap();
    // Our interface is up once it said so: one connection, which our server resets.
    let client = ns.spawn(
        "lesson",
        &["client", OURS, &PORT.to_string(), &tmp.path("copy")],
    );
    let _ = finish(client, Duration::from_secs(30));
    let out = finish(server, Duration::from_secs(30));
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let line = one_line(&out);
    assert_eq!(
        line,
        format!(
            "tap_server: cannot read {file}: No such file or directory (os error 2) after 0 bytes"
        )
    );
}

/// When the kernel's server dies mid-file, its kernel closes the socket with a FIN: our client
/// sees EOF, but the reply is answered with a reset. The file is not called complete.
#[test]
fn a_server_killed_mid_file_is_eof_without_acknowledgement_never_a_complete_file() {
    require_tap!("the TAP tests need");
    let ns = Namespace::new("halfclose", KERNEL);
    let tmp = Scratch::new();
    let payload = random_bytes(BIG, 7);
    std::fs::write(tmp.path("file"), &payload).unwrap();
    std::fs::write(tmp.path("copy"), b"an older copy that must survive").unwrap();

    let mut server = kernel_server(&ns, &tmp.path("file"));
    std::thread::sleep(Duration::from_millis(300));
    let client = ns.spawn(
        "tap_client",
        &["--peer", KERNEL, "-o", &tmp.path("copy"), "--rate", SLOW],
    );
    tmp.wait_for_temp(1 << 20);
    // `ip netns exec` execs the program: this is the lesson server itself.
    server.kill().unwrap();
    let _ = server.wait();
    let out = finish(client, Duration::from_secs(60));

    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let line = one_line(&out);
    assert!(
        !line.replace("incomplete", "").contains("complete"),
        "{line}"
    );
    assert!(
        line.contains("reply not acknowledged") || line.contains("reset"),
        "{line}"
    );
    assert_partial(&line, &tmp, &payload);
}

/// One run under faults, with its outcome checked: byte-exact with the reply, or a typed
/// error that leaves no file under the target's name and only right bytes in the partial one.
fn faulty_run(
    ours_serve: bool,
    len: usize,
    mtu: u32,
    faults: &[&str],
    limit: Duration,
) -> &'static str {
    let ns = namespace(mtu);
    let tmp = Scratch::new();
    let payload = random_bytes(len, len as u64 + 3);
    let (file, copy) = (tmp.path("file"), tmp.path("copy"));
    std::fs::write(&file, &payload).unwrap();
    let port = PORT.to_string();
    // The kernel may back off its retransmissions for tens of seconds: give it time.
    let lesson_timeout = 120;
    let (ours, theirs) = if ours_serve {
        let mut args = vec!["--wait", "60"];
        args.extend(faults);
        args.push(&file);
        let ours = ns.spawn("tap_server", &args);
        // The lesson client is run again until our server's interface answers.
        let theirs = retry_while_refused("connect:", || {
            let args = ["client", OURS, &port, &copy];
            let lesson = ns.spawn_with_timeout("lesson", &args, lesson_timeout);
            finish(lesson, Duration::from_secs(600))
        });
        (finish(ours, limit), theirs)
    } else {
        let theirs = ns.spawn_with_timeout(
            "lesson",
            &["server", "--bind", KERNEL, &port, &file],
            lesson_timeout,
        );
        std::thread::sleep(Duration::from_millis(300));
        let mut args = vec!["--peer", KERNEL, "-o", &copy];
        args.extend(faults);
        let ours = finish(ns.spawn("tap_client", &args), limit);
        (ours, finish(theirs, limit))
    };
    let what = format!(
        "{} {len} bytes at MTU {mtu} with {faults:?}\nours: {}\nkernel: {}",
        if ours_serve {
            "our server sends"
        } else {
            "the kernel sends"
        },
        text(&ours),
        text(&theirs)
    );
    assert!(!text(&ours).contains("panicked"), "{what}");
    if ours.status.success() {
        let got = std::fs::read(&copy).unwrap_or_else(|e| panic!("{e}: {what}"));
        assert!(got == payload, "the copy differs: {what}");
        assert!(theirs.status.success(), "{what}");
        let reply_seen = if ours_serve {
            &ours.stdout
        } else {
            &theirs.stdout
        };
        assert!(
            String::from_utf8_lossy(reply_seen).contains("Message from client: Thank you\n"),
            "{what}"
        );
        "delivered"
    } else {
        assert_eq!(ours.status.code(), Some(1), "{what}");
        one_line(&ours);
        assert!(
            !Path::new(&copy).exists(),
            "no file under the target's name: {what}"
        );
        if let Ok(partial) = std::fs::read(tmp.path("copy.partial")) {
            assert!(payload.starts_with(&partial), "right bytes only: {what}");
        }
        eprintln!("typed error: {what}");
        "typed error"
    }
}

/// Drop, corruption, duplication and reordering at our device, both ways, against the kernel's
/// TCP, in both directions: heavy faults on small files, lighter ones on a large file (32 MiB;
/// `TAP_FAULTS_MIB` sets another size, as CI does), and a rate limit; and on links of 9000 and
/// 65521 bytes, whose frames the faults drop, corrupt and reorder whole.
#[test]
fn under_faults_every_run_is_byte_exact_with_the_reply_or_a_typed_error() {
    require_tap!("the TAP tests need");
    const HEAVY: &[&str] = &[
        "--drop",
        "2",
        "--corrupt",
        "1",
        "--duplicate",
        "2",
        "--reorder",
        "5",
    ];
    const LIGHT: &[&str] = &[
        "--drop",
        "0.5",
        "--corrupt",
        "0.5",
        "--duplicate",
        "1",
        "--reorder",
        "1",
    ];
    const RATE: &[&str] = &["--rate", "4000000", "--drop", "0.5"];
    let large_mib: usize = std::env::var("TAP_FAULTS_MIB").map_or(32, |s| s.parse().unwrap());
    assert!(large_mib > 0, "TAP_FAULTS_MIB must be at least 1");
    let runs: &[(usize, &[&str], &str, u32)] = &[
        (1, HEAVY, "11", 1500),
        (100 * 1024, HEAVY, "12", 1500),
        (1 << 20, HEAVY, "13", 1500),
        (2 << 20, RATE, "14", 1500),
        (large_mib << 20, LIGHT, "15", 1500),
        (1 << 20, HEAVY, "16", 9000),
        (4 << 20, LIGHT, "17", 65521),
    ];
    // Every run at once, each in a namespace of its own: a run waits on timers (the kernel's
    // retransmission backoff, our retransmissions), not on the CPU, so the test takes as long as
    // its longest run instead of the sum of all fourteen. A run's failed assertion fails the test.
    let outcomes: Vec<String> = std::thread::scope(|scope| {
        let runs: Vec<_> = runs
            .iter()
            .flat_map(|&(len, faults, seed, mtu)| {
                [
                    (len, faults, seed, mtu, false),
                    (len, faults, seed, mtu, true),
                ]
            })
            .map(|(len, faults, seed, mtu, ours_serve)| {
                scope.spawn(move || {
                    let mut args = faults.to_vec();
                    args.extend(["--seed", seed]);
                    let started = Instant::now();
                    let outcome = faulty_run(ours_serve, len, mtu, &args, Duration::from_secs(600));
                    format!(
                        "{} {len} B MTU {mtu} {faults:?}: {outcome} in {:.1} s",
                        if ours_serve {
                            "ours->kernel"
                        } else {
                            "kernel->ours"
                        },
                        started.elapsed().as_secs_f64()
                    )
                })
            })
            .collect();
        runs.into_iter()
            .map(|run| {
                run.join()
                    .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
            })
            .collect()
    });
    eprintln!("{}", outcomes.join("\n"));
}

#[test]
fn bad_arguments_are_clear_errors_without_privileges() {
    let out = Command::new(example("tap_server"))
        .args(["--addr", "300.1.2.3/24", "x"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("is not ADDRESS/PREFIX"));

    let out = Command::new(example("tap_server"))
        .arg("/nonexistent/file")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot read /nonexistent/file"));

    let out = Command::new(example("tap_client"))
        .args(["--mtu", "100"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("100 is not in 576..=65521"));

    let out = Command::new(example("tap_client"))
        .args(["--device", "smoltcp", "--drop", "1"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("--device smoltcp takes no faults"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
