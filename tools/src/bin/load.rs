//! Many ordinary kernel-TCP clients against one server, as a load test: all at once or one after
//! another, each checked byte for byte and timed.
//!
//! ```text
//! load (--at-once N | --sequential N) [--from-port P] [--flood RATE] --expect FILE ADDR PORT
//! ```
//!
//! Each client connects, reads to EOF, compares what arrived with FILE, writes `"Thank you\0"`,
//! shuts down its write side and reads until the server closes. Each has a wall timeout
//! (`--timeout`), and the whole run a limit (`--limit`): clients not started by then count as
//! failed. Prints how many were served, why the others failed, the median and 99th percentile of
//! the connect time (from the `connect()` call to its return) and the time for all. With
//! `--flood`, forged SYNs arrive meanwhile (`halfclose_tools::flood`). With `--from-port`, the
//! clients one after another all connect from one source port, as a client that binds its port
//! does, or one whose system's ports wrapped round: each new connection has the four-tuple of the
//! last one. Exits 0 when
//! every client was served, 1 otherwise, 2 on bad arguments.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{IpAddr, Shutdown, SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use clap::{ArgGroup, Parser, value_parser};

/// At most this many clients in one run (one thread each when at once).
const MAX_CLIENTS: u64 = 100_000;
const MAX_AT_ONCE: u64 = 1024;

/// Kernel-TCP clients against a half-closing server, timed.
#[derive(Parser, Debug)]
#[command(name = "load", group(ArgGroup::new("mode").required(true).args(["at_once", "sequential"])))]
struct Args {
    /// N clients connecting at the same moment (one thread each, at most 1024)
    #[arg(long, value_name = "N", value_parser = value_parser!(u64).range(1..=MAX_AT_ONCE))]
    at_once: Option<u64>,
    /// N clients one after another, with no pause between them
    #[arg(long, value_name = "N", value_parser = value_parser!(u64).range(1..=MAX_CLIENTS))]
    sequential: Option<u64>,
    /// With --sequential: every client connects from this source port (each waits, at most a
    /// second, for the kernel to free the port of the connection before it)
    #[arg(long, value_name = "P", requires = "sequential", value_parser = value_parser!(u16).range(1..))]
    from_port: Option<u16>,
    /// The file every client must receive, byte for byte
    #[arg(long, value_name = "FILE")]
    expect: PathBuf,
    /// Seconds one client may take, from its connect() to the server's close
    #[arg(long, value_name = "S", default_value_t = 30, value_parser = value_parser!(u64).range(1..=3600))]
    timeout: u64,
    /// Seconds the whole run may take: clients not started by then fail
    #[arg(long, value_name = "S", default_value_t = 600, value_parser = value_parser!(u64).range(1..=86400))]
    limit: u64,
    /// Send RATE forged SYNs a second to ADDR:PORT from 198.51.100.0/24 while the clients run
    /// (a SYN flood; a raw socket: root, Linux, IPv4)
    #[arg(long, value_name = "RATE", value_parser = value_parser!(u64).range(1..=1_000_000))]
    flood: Option<u64>,
    /// The server's address
    addr: IpAddr,
    /// The server's port
    #[arg(value_parser = value_parser!(u16).range(1..))]
    port: u16,
}

/// One client's times and outcome.
struct Outcome {
    /// From the `connect()` call to its return (`None` if it failed).
    connect: Option<Duration>,
    /// From the `connect()` call to the server's close.
    end: Instant,
    result: Result<(), String>,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let expected = match std::fs::read(&args.expect) {
        Ok(bytes) => Arc::new(bytes),
        Err(e) => {
            eprintln!("load: cannot read {}: {e}", args.expect.display());
            return ExitCode::FAILURE;
        }
    };
    let addr = SocketAddr::new(args.addr, args.port);
    let timeout = Duration::from_secs(args.timeout);
    let limit = Duration::from_secs(args.limit);
    let flood = args.flood.map(|rate| Flood::start(addr, rate, limit));
    let (what, started, outcomes) = match (args.at_once, args.sequential) {
        (Some(n), _) => {
            let started = Instant::now();
            let outcomes = at_once(n, addr, &expected, timeout);
            (format!("{n} clients at once"), started, outcomes)
        }
        (None, n) => {
            let n = n.unwrap_or(1);
            let started = Instant::now();
            let outcomes = sequential(n, addr, args.from_port, &expected, timeout, started + limit);
            (format!("{n} clients one after another"), started, outcomes)
        }
    };
    println!("load: {what} to {addr}, {} bytes each", expected.len());
    if let Some(flood) = flood {
        match flood.stop() {
            Ok((sent, secs)) => println!(
                "flood: {sent} forged SYNs in {secs:.3} s ({:.0}/s) from 198.51.100.0/24",
                sent as f64 / secs.max(1e-9)
            ),
            Err(e) => {
                eprintln!("load: {e}");
                return ExitCode::FAILURE;
            }
        }
    }
    if summarise(&outcomes, started) {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// Forged SYNs on a thread of their own while the clients run.
struct Flood {
    stop: Arc<std::sync::atomic::AtomicBool>,
    started: Instant,
    thread: std::thread::JoinHandle<Result<u64, String>>,
}

impl Flood {
    #[cfg(target_os = "linux")]
    fn start(addr: SocketAddr, rate: u64, limit: Duration) -> Flood {
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let thread = std::thread::spawn(move || match addr {
            SocketAddr::V4(v4) => {
                halfclose_tools::flood::flood(*v4.ip(), v4.port(), rate, &flag, limit)
            }
            SocketAddr::V6(_) => Err("--flood: IPv4 only".into()),
        });
        // Let the flood fill the server's queue before the clients come.
        std::thread::sleep(Duration::from_millis(200));
        Flood {
            stop,
            started: Instant::now(),
            thread,
        }
    }

    #[cfg(not(target_os = "linux"))]
    fn start(_: SocketAddr, _: u64, _: Duration) -> Flood {
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let thread = std::thread::spawn(|| Err("--flood: Linux only".to_string()));
        Flood {
            stop,
            started: Instant::now(),
            thread,
        }
    }

    /// Stop it; how many SYNs it sent, and in how many seconds.
    fn stop(self) -> Result<(u64, f64), String> {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let secs = self.started.elapsed().as_secs_f64() + 0.2;
        let sent = self
            .thread
            .join()
            .map_err(|_| "the flood's thread panicked".to_string())??;
        Ok((sent, secs))
    }
}

/// `n` clients, each on its own thread, released together.
fn at_once(n: u64, addr: SocketAddr, expected: &Arc<Vec<u8>>, timeout: Duration) -> Vec<Outcome> {
    let start = Arc::new(Barrier::new(n as usize));
    let threads: Vec<_> = (0..n)
        .map(|_| {
            let (start, expected) = (Arc::clone(&start), Arc::clone(expected));
            std::thread::Builder::new()
                .stack_size(256 * 1024)
                .spawn(move || {
                    start.wait();
                    client(addr, None, &expected, timeout)
                })
        })
        .collect();
    threads
        .into_iter()
        .map(|t| match t.map(|t| t.join()) {
            Ok(Ok(outcome)) => outcome,
            Ok(Err(_)) => failed_outcome("the client's thread panicked"),
            Err(e) => failed_outcome(&format!("cannot start a thread: {e}")),
        })
        .collect()
}

fn failed_outcome(why: &str) -> Outcome {
    Outcome {
        connect: None,
        end: Instant::now(),
        result: Err(why.to_owned()),
    }
}

/// `n` clients one after another (from `port`, if given), none started after `until`.
fn sequential(
    n: u64,
    addr: SocketAddr,
    port: Option<u16>,
    expected: &[u8],
    timeout: Duration,
    until: Instant,
) -> Vec<Outcome> {
    (0..n)
        .map(|_| {
            if Instant::now() >= until {
                failed_outcome("not started: the run's --limit passed")
            } else {
                client(addr, port, expected, timeout)
            }
        })
        .collect()
}

/// One client: connect (from `port`, if given), read to EOF comparing with `expected`, reply,
/// shut down, read to the server's close.
fn client(addr: SocketAddr, port: Option<u16>, expected: &[u8], timeout: Duration) -> Outcome {
    let (stream, start) = match port {
        None => {
            let start = Instant::now();
            (TcpStream::connect_timeout(&addr, timeout), start)
        }
        Some(port) => connect_from(port, addr, timeout),
    };
    let deadline = start + timeout;
    let connect = start.elapsed();
    let result = match stream {
        Ok(stream) => exchange(stream, expected, deadline),
        Err(e) => {
            return Outcome {
                connect: None,
                end: Instant::now(),
                result: Err(format!("connect: {e}")),
            };
        }
    };
    Outcome {
        connect: Some(connect),
        end: Instant::now(),
        result,
    }
}

/// A connection to `addr` from source `port`, and when the `connect()` that made it was
/// called. The connection before, from the same port, may still hold it for a moment (the
/// client closed last, so its side waits for the server's ACK of its FIN): while the kernel
/// says the address is taken, try again, for at most a second.
fn connect_from(
    port: u16,
    addr: SocketAddr,
    timeout: Duration,
) -> (std::io::Result<TcpStream>, Instant) {
    use socket2::{Domain, Socket, Type};
    let local = match addr {
        SocketAddr::V4(_) => SocketAddr::from(([0, 0, 0, 0], port)),
        SocketAddr::V6(_) => SocketAddr::from(([0u16; 8], port)),
    };
    let give_up = Instant::now() + Duration::from_secs(1);
    loop {
        let start = Instant::now();
        let attempt = Socket::new(Domain::for_address(addr), Type::STREAM, None).and_then(|s| {
            s.set_reuse_address(true)?;
            s.bind(&local.into())?;
            s.connect_timeout(&addr.into(), timeout)?;
            Ok(TcpStream::from(s))
        });
        match attempt {
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::AddrInUse | std::io::ErrorKind::AddrNotAvailable
                ) && Instant::now() < give_up =>
            {
                std::thread::sleep(Duration::from_millis(1));
            }
            attempt => return (attempt, start),
        }
    }
}

/// The time left until `deadline`, as a socket timeout (never zero, which means none).
fn left(deadline: Instant) -> Result<Option<Duration>, String> {
    let left = deadline.saturating_duration_since(Instant::now());
    if left.is_zero() {
        return Err("timed out (--timeout)".into());
    }
    Ok(Some(left))
}

fn io(e: std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut => {
            "timed out (--timeout)".into()
        }
        _ => e.to_string(),
    }
}

fn exchange(mut stream: TcpStream, expected: &[u8], deadline: Instant) -> Result<(), String> {
    let mut buf = vec![0u8; 64 * 1024];
    let mut got = 0usize;
    loop {
        stream.set_read_timeout(left(deadline)?).map_err(io)?;
        let n = stream
            .read(&mut buf)
            .map_err(|e| format!("read after {got} bytes: {}", io(e)))?;
        if n == 0 {
            break;
        }
        let Some(want) = expected.get(got..got + n) else {
            return Err(format!(
                "more than the {} bytes of the file",
                expected.len()
            ));
        };
        if want != &buf[..n] {
            return Err(format!("the bytes differ in {got}..{}", got + n));
        }
        got += n;
    }
    if got != expected.len() {
        return Err(format!("EOF after {got} of {} bytes", expected.len()));
    }
    stream.set_write_timeout(left(deadline)?).map_err(io)?;
    stream
        .write_all(halfclose::REPLY)
        .map_err(|e| format!("write reply: {}", io(e)))?;
    stream
        .shutdown(Shutdown::Write)
        .map_err(|e| format!("shutdown: {e}"))?;
    // The server closed its side with its FIN; anything more is a protocol error.
    stream.set_read_timeout(left(deadline)?).map_err(io)?;
    match stream.read(&mut buf) {
        Ok(0) => Ok(()),
        Ok(n) => Err(format!("{n} bytes after EOF")),
        Err(e) => Err(format!("read after the reply: {}", io(e))),
    }
}

/// The `q` quantile of sorted durations.
fn quantile(sorted: &[Duration], q: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((sorted.len() as f64 * q).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1e3)
}

/// Print the summary; whether every client was served.
fn summarise(outcomes: &[Outcome], started: Instant) -> bool {
    let served = outcomes.iter().filter(|o| o.result.is_ok()).count();
    println!("served {served} of {}", outcomes.len());
    let mut reasons: BTreeMap<&str, usize> = BTreeMap::new();
    for o in outcomes {
        if let Err(why) = &o.result {
            *reasons.entry(why).or_default() += 1;
        }
    }
    for (why, count) in &reasons {
        println!("failed {count}: {why}");
    }
    let mut connects: Vec<Duration> = outcomes.iter().filter_map(|o| o.connect).collect();
    connects.sort();
    println!(
        "connect: median {}, p99 {}, max {}",
        ms(quantile(&connects, 0.5)),
        ms(quantile(&connects, 0.99)),
        ms(connects.last().copied().unwrap_or_default()),
    );
    let last = outcomes.iter().map(|o| o.end).max().unwrap_or(started);
    println!("all done within {:.3} s", (last - started).as_secs_f64());
    served == outcomes.len()
}
