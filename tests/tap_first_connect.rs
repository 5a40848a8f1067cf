//! The README's TAP walkthrough, in its order: `tap_server` serves the kernel's client, then
//! `tap_client` fetches from the kernel's server on the same TAP device. The first connection of
//! each `tap_client` run must take well under a second.
//!
//! It used to take a second whenever the previous program's departure had already taken the
//! device's link down on the kernel's side: the kernel dropped its answer to our first ARP
//! request, and smoltcp waits a second before asking again. Each round here waits for that state
//! (what a person typing the next command always gets) before starting `tap_client`.
//!
//! Needs root, `/dev/net/tun` and `ip`; without them the test prints why it skips and passes.
//! Runs in a network namespace of its own, deleted afterwards even when the test fails.

mod common;

use std::process::Child;
use std::time::{Duration, Instant};

use common::netns::{Namespace, Scratch, finish, require_tap, retry_while_refused, text};
use halfclose::segment::Segment;
use smoltcp::phy::Medium;

const OURS: &str = "192.168.69.1";
const KERNEL: &str = "192.168.69.100";
const PORT: u16 = halfclose::DEFAULT_PORT;
/// `tap_client` runs, each racing the kernel's link-up as a person's would (`FIRST_CONNECT_ROUNDS`
/// sets another count, as CI does).
const ROUNDS: usize = 20;
/// "Well under a second": from our first frame (the ARP request that starts the connection) to
/// the server's SYN-ACK.
const CONNECT_LIMIT: Duration = Duration::from_millis(250);

/// The lesson programs' timeout for every blocking call, in seconds.
const LESSON_TIMEOUT: u64 = 20;

/// Start an example binary inside the namespace.
fn spawn(ns: &Namespace, program: &str, args: &[&str]) -> Child {
    ns.spawn_with_timeout(program, args, LESSON_TIMEOUT)
}

/// The output of a command run inside the namespace.
fn read(ns: &Namespace, args: &[&str]) -> String {
    let out = ns.run(args, Duration::from_secs(10));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Wait (at most `limit`) until `ready` holds; false if it never did.
fn wait_until(limit: Duration, ready: impl Fn() -> bool) -> bool {
    let end = Instant::now() + limit;
    while Instant::now() < end {
        if ready() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    false
}

/// The kernel's view of the TAP link: `up`, or `down` once it has seen our side go.
fn operstate(ns: &Namespace) -> String {
    read(ns, &["cat", "/sys/class/net/tap0/operstate"])
        .trim()
        .to_owned()
}

/// Whether the kernel has a socket listening on `KERNEL:PORT`.
fn kernel_listens(ns: &Namespace) -> bool {
    // /proc/net/tcp: local address as little-endian hex, then port; state 0A is LISTEN.
    let local = format!("6445A8C0:{PORT:04X}");
    read(ns, &["cat", "/proc/net/tcp"]).lines().any(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        f.len() > 3 && f[1] == local && f[3] == "0A"
    })
}

/// From the first frame of a capture to the first SYN-ACK in it.
fn connect_time(pcap: &str) -> Result<Duration, String> {
    let bytes = std::fs::read(pcap).map_err(|e| format!("{pcap}: {e}"))?;
    if bytes.len() < 24 || bytes[..4] != 0xa1b2_c3d4u32.to_le_bytes() {
        return Err(format!("{pcap} is not a little-endian microsecond pcap"));
    }
    let (mut at, mut first) = (24, None);
    while at + 16 <= bytes.len() {
        let word = |i: usize| u32::from_le_bytes(bytes[at + i..at + i + 4].try_into().unwrap());
        let t = Duration::from_secs(word(0).into()) + Duration::from_micros(word(4).into());
        let len = word(8) as usize;
        let frame = bytes
            .get(at + 16..at + 16 + len)
            .ok_or("truncated capture")?;
        let first = *first.get_or_insert(t);
        if let Some(seg) = Segment::parse(Medium::Ethernet, frame)
            && seg.syn
            && seg.ack.is_some()
        {
            return Ok(t - first);
        }
        at += 16 + len;
    }
    Err(format!("{pcap} has no SYN-ACK"))
}

#[test]
fn the_first_connection_after_the_readme_walkthrough_takes_well_under_a_second() {
    require_tap!("this test needs");
    let ns = Namespace::new("halfclose-first", KERNEL);
    let tmp = Scratch::new();
    let file = tmp.path("file");
    std::fs::write(&file, vec![b'x'; 31 * 1024]).unwrap();

    // 1. Our server, the kernel's client (which retries until our server answers).
    let server = spawn(
        &ns,
        "tap_server",
        &["--clients", "1", "--wait", "20", &file],
    );
    let copy = tmp.path("copy-from-us");
    let client = retry_while_refused("connect:", || {
        let args = ["client", OURS, &PORT.to_string(), &copy];
        finish(spawn(&ns, "lesson", &args), Duration::from_secs(30))
    });
    assert!(client.status.success(), "lesson client: {}", text(&client));
    let server = finish(server, Duration::from_secs(30));
    assert!(server.status.success(), "tap_server: {}", text(&server));

    // 2. The kernel's server, our client; again and again, each time on a link the kernel has
    //    already seen go down.
    let rounds: usize =
        std::env::var("FIRST_CONNECT_ROUNDS").map_or(ROUNDS, |s| s.parse().unwrap());
    assert!(rounds > 0, "FIRST_CONNECT_ROUNDS must be at least 1");
    let mut times = Vec::new();
    for round in 0..rounds {
        let kernel = spawn(
            &ns,
            "lesson",
            &["server", "--bind", KERNEL, &PORT.to_string(), &file],
        );
        assert!(
            wait_until(Duration::from_secs(10), || kernel_listens(&ns)),
            "the kernel's server is not listening"
        );
        assert!(
            wait_until(Duration::from_secs(3), || operstate(&ns) == "down"),
            "the kernel never saw the previous program leave tap0 (operstate {})",
            operstate(&ns)
        );
        let pcap = tmp.path(&format!("client-{round}.pcap"));
        let copy = tmp.path("copy-from-kernel");
        let started = Instant::now();
        let client = finish(
            spawn(
                &ns,
                "tap_client",
                &["--peer", KERNEL, "-o", &copy, "--pcap", &pcap],
            ),
            Duration::from_secs(30),
        );
        let wall = started.elapsed();
        assert!(client.status.success(), "tap_client: {}", text(&client));
        let kernel = finish(kernel, Duration::from_secs(30));
        assert!(kernel.status.success(), "lesson server: {}", text(&kernel));
        assert_eq!(std::fs::read(&copy).unwrap().len(), 31 * 1024);
        let connect = connect_time(&pcap).unwrap();
        eprintln!("round {round}: connected in {connect:?}, whole run {wall:?}");
        times.push((connect, wall));
    }
    for (round, &(connect, wall)) in times.iter().enumerate() {
        assert!(
            connect < CONNECT_LIMIT && wall < Duration::from_secs(1),
            "round {round}: the first connection took {connect:?} (whole run {wall:?}); \
             every round: {times:?}"
        );
    }
}
