//! What the tests that run the example programs share: each program started with its output
//! piped and waited for under a wall timeout (nothing can hang), scratch directories in memory,
//! and for the TAP tests a network namespace of their own with a TAP device in it, deleted on
//! drop so also when a test fails.
//!
//! Reached as `common::netns`. Not every test uses every item: those only the TAP tests use say
//! so in an `allow(dead_code)` of their own.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// An example binary, or a maintainers' program (`tools/`: bench, soak, attacks, lesson, load), next to
/// this test's (`cargo test` builds both).
pub fn example(name: &str) -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().unwrap().parent().unwrap();
    let tool = dir.join(name);
    let path = if tool.exists() {
        tool
    } else {
        dir.join("examples").join(name)
    };
    assert!(
        path.exists(),
        "{} is missing: `cargo test` builds the examples and tools, `cargo test --test NAME` \
         alone does not (run `cargo build --bins --examples` first)",
        path.display()
    );
    path
}

/// Start `command` with its output piped, the lesson programs' timeout for every blocking call
/// set to `lesson_timeout` seconds, and no `RUST_LOG` (a failed run's stderr is one line).
pub fn spawn(command: &mut Command, lesson_timeout: u64) -> Child {
    command
        .env("LESSON_TIMEOUT", lesson_timeout.to_string())
        .env_remove("RUST_LOG")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn")
}

/// Wait for `child` at most `limit`, killing it after that: nothing here can hang.
pub fn finish(mut child: Child, limit: Duration) -> Output {
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

/// A finished program's status and output, for assertion messages.
pub fn text(out: &Output) -> String {
    format!(
        "status {}\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// A scratch directory in memory (`/dev/shm`) where there is one, removed on drop: the big files
/// go there.
pub struct Scratch(pub tempfile::TempDir);

impl Scratch {
    pub fn new() -> Scratch {
        let shm = Path::new("/dev/shm");
        let dir = if shm.is_dir() {
            tempfile::Builder::new()
                .prefix("halfclose-")
                .tempdir_in(shm)
        } else {
            tempfile::Builder::new().prefix("halfclose-").tempdir()
        };
        Scratch(dir.unwrap())
    }

    /// The path of `name` in the directory.
    pub fn path(&self, name: &str) -> String {
        self.0.path().join(name).to_str().unwrap().to_owned()
    }
}

/// Run `attempt` again, every 100 ms for up to 20 s, while it fails with `refused` on stderr: the
/// peer it connects to was started just before and may not be listening yet.
#[allow(
    dead_code,
    reason = "the TAP tests' retries; tests on 127.0.0.1 wait in the client"
)]
pub fn retry_while_refused(refused: &str, mut attempt: impl FnMut() -> Output) -> Output {
    let end = Instant::now() + Duration::from_secs(20);
    loop {
        let out = attempt();
        let was_refused = String::from_utf8_lossy(&out.stderr).contains(refused);
        if out.status.success() || !was_refused || Instant::now() > end {
            return out;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Return from the test, saying why, when no [`Namespace`] can be made here; `$who` is the
/// subject of the message (`"the TAP tests need"`).
#[allow(unused_macros, reason = "only the TAP tests need a namespace")]
macro_rules! require_tap {
    ($who:literal) => {
        if let Some(why) = $crate::common::netns::Namespace::unavailable() {
            eprintln!("skipping: {why}; {} root, /dev/net/tun and iproute2", $who);
            return;
        }
    };
}
#[allow(unused_imports, reason = "only the TAP tests need a namespace")]
pub(crate) use require_tap;

/// A network namespace with a TAP device `tap0`, the kernel's side of it addressed `kernel/24`.
/// Deleted on drop, so also when a test fails.
#[allow(dead_code, reason = "only the TAP tests need a namespace")]
pub struct Namespace {
    pub name: String,
}

#[allow(
    dead_code,
    reason = "only the TAP tests need a namespace, each some of its methods"
)]
impl Namespace {
    /// Why no namespace with a TAP device can be made here, if it cannot.
    pub fn unavailable() -> Option<String> {
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

    /// A new namespace named `prefix-PID-N`.
    pub fn new(prefix: &str, kernel: &str) -> Namespace {
        static COUNT: AtomicUsize = AtomicUsize::new(0);
        let name = format!(
            "{prefix}-{}-{}",
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
        let cidr = format!("{kernel}/24");
        ns.ip(&["-n", &ns.name, "addr", "add", &cidr, "dev", "tap0"]);
        ns
    }

    /// Run `ip ARGS`, which must succeed.
    pub fn ip(&self, args: &[&str]) {
        let out = Command::new("ip").args(args).output().expect("run ip");
        assert!(
            out.status.success(),
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Start `program` (an example binary) inside the namespace.
    pub fn spawn(&self, program: &str, args: &[&str]) -> Child {
        self.spawn_with_timeout(program, args, 30)
    }

    /// The same, with the lesson programs' timeout for every blocking call.
    pub fn spawn_with_timeout(&self, program: &str, args: &[&str], lesson_timeout: u64) -> Child {
        spawn(
            Command::new("ip")
                .args(["netns", "exec", &self.name])
                .arg(example(program))
                .args(args),
            lesson_timeout,
        )
    }

    /// Run a command (`args[0]`, from the `PATH`) inside the namespace, for at most `limit`.
    pub fn run(&self, args: &[&str], limit: Duration) -> Output {
        let child = Command::new("ip")
            .args(["netns", "exec", &self.name])
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run ip netns exec");
        finish(child, limit)
    }
}

impl Drop for Namespace {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
    }
}

/// `ours` (its name in messages) served `len` bytes to the lesson's client: both exited 0, and
/// ours printed the client's "Thank you" and how many bytes it sent.
pub fn assert_served(ours: &str, server: &Output, client: &Output, len: usize) {
    assert!(server.status.success(), "{ours}: {}", text(server));
    assert!(client.status.success(), "lesson client: {}", text(client));
    let stdout = String::from_utf8_lossy(&server.stdout);
    assert!(
        stdout.contains("Message from client: Thank you\n"),
        "{}",
        text(server)
    );
    assert!(
        stdout.contains(&format!("sent {len} bytes")),
        "{}",
        text(server)
    );
}
