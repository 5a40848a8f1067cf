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

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use halfclose::segment::Segment;
use smoltcp::phy::Medium;

const OURS: &str = "192.168.69.1";
const KERNEL: &str = "192.168.69.100";
const PORT: u16 = halfclose::DEFAULT_PORT;
/// `tap_client` runs, each racing the kernel's link-up as a person's would.
const ROUNDS: usize = 20;
/// "Well under a second": from our first frame (the ARP request that starts the connection) to
/// the server's SYN-ACK.
const CONNECT_LIMIT: Duration = Duration::from_millis(250);

/// Why this test cannot run here, if it cannot.
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

/// A network namespace with a TAP device `tap0`, the kernel's side addressed `KERNEL/24`;
/// deleted on drop.
struct Namespace {
    name: String,
    dir: PathBuf,
}

impl Namespace {
    fn new() -> Namespace {
        let name = format!("halfclose-first-{}", std::process::id());
        let dir = std::env::temp_dir().join(&name);
        std::fs::create_dir_all(&dir).unwrap();
        let ns = Namespace { name, dir };
        ns.ip(&["netns", "add", &ns.name]);
        ns.ip(&["-n", &ns.name, "link", "set", "lo", "up"]);
        ns.ip(&[
            "-n", &ns.name, "tuntap", "add", "dev", "tap0", "mode", "tap",
        ]);
        ns.ip(&["-n", &ns.name, "link", "set", "tap0", "up"]);
        let kernel = format!("{KERNEL}/24");
        ns.ip(&["-n", &ns.name, "addr", "add", &kernel, "dev", "tap0"]);
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

    fn path(&self, name: &str) -> String {
        self.dir.join(name).to_str().unwrap().to_owned()
    }

    /// Start an example binary inside the namespace.
    fn spawn(&self, program: &str, args: &[&str]) -> Child {
        Command::new("ip")
            .args(["netns", "exec", &self.name])
            .arg(example(program))
            .args(args)
            .env("LESSON_TIMEOUT", "20")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn")
    }

    /// The output of a command run inside the namespace.
    fn read(&self, args: &[&str]) -> String {
        let out = Command::new("ip")
            .args(["netns", "exec", &self.name])
            .args(args)
            .output()
            .expect("run ip netns exec");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Wait (at most `limit`) until `ready` holds; false if it never did.
    fn wait_until(&self, limit: Duration, ready: impl Fn(&Namespace) -> bool) -> bool {
        let end = Instant::now() + limit;
        while Instant::now() < end {
            if ready(self) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        false
    }

    /// The kernel's view of the TAP link: `up`, or `down` once it has seen our side go.
    fn operstate(&self) -> String {
        self.read(&["cat", "/sys/class/net/tap0/operstate"])
            .trim()
            .to_owned()
    }

    /// Whether the kernel has a socket listening on `KERNEL:PORT`.
    fn kernel_listens(&self) -> bool {
        // /proc/net/tcp: local address as little-endian hex, then port; state 0A is LISTEN.
        let local = format!("6445A8C0:{PORT:04X}");
        self.read(&["cat", "/proc/net/tcp"]).lines().any(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            f.len() > 3 && f[1] == local && f[3] == "0A"
        })
    }
}

impl Drop for Namespace {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// An example binary next to this test's (`cargo test` builds the examples).
fn example(name: &str) -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().unwrap().parent().unwrap();
    let path = dir.join("examples").join(name);
    assert!(
        path.exists(),
        "{} is missing: `cargo test` builds the examples, `cargo test --test tap_first_connect` \
         alone does not (run `cargo build --examples` first)",
        path.display()
    );
    path
}

/// Wait for `child` at most `limit`, killing it after that.
fn finish(mut child: Child, limit: Duration) -> Output {
    let end = Instant::now() + limit;
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > end {
            let _ = child.kill();
            let out = child.wait_with_output().unwrap();
            panic!("killed after {limit:?}: {}", text(&out));
        }
        std::thread::sleep(Duration::from_millis(5));
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
    if let Some(why) = missing() {
        eprintln!("skipping: {why}; this test needs root, /dev/net/tun and iproute2");
        return;
    }
    let ns = Namespace::new();
    let file = ns.path("file");
    std::fs::write(&file, vec![b'x'; 31 * 1024]).unwrap();

    // 1. Our server, the kernel's client (which retries until our server answers).
    let server = ns.spawn("tap_server", &["--clients", "1", "--wait", "20", &file]);
    let copy = ns.path("copy-from-us");
    let end = Instant::now() + Duration::from_secs(20);
    let client = loop {
        let out = finish(
            ns.spawn("lesson", &["client", OURS, &PORT.to_string(), &copy]),
            Duration::from_secs(30),
        );
        if out.status.success() || Instant::now() > end {
            break out;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(client.status.success(), "lesson client: {}", text(&client));
    let server = finish(server, Duration::from_secs(30));
    assert!(server.status.success(), "tap_server: {}", text(&server));

    // 2. The kernel's server, our client; again and again, each time on a link the kernel has
    //    already seen go down.
    let mut times = Vec::new();
    for round in 0..ROUNDS {
        let kernel = ns.spawn(
            "lesson",
            &["server", "--bind", KERNEL, &PORT.to_string(), &file],
        );
        assert!(
            ns.wait_until(Duration::from_secs(10), Namespace::kernel_listens),
            "the kernel's server is not listening"
        );
        assert!(
            ns.wait_until(Duration::from_secs(3), |ns| ns.operstate() == "down"),
            "the kernel never saw the previous program leave tap0 (operstate {})",
            ns.operstate()
        );
        let pcap = ns.path(&format!("client-{round}.pcap"));
        let copy = ns.path("copy-from-kernel");
        let started = Instant::now();
        let client = finish(
            ns.spawn(
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
