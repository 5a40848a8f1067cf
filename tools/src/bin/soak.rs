//! Sweep a fault matrix over many seeds on the simulated two-host wire and tabulate how every
//! transfer ended.
//!
//! ```text
//! cargo run --release -p halfclose-tools --bin soak -- --seeds 10000 [--congestion none|reno|cubic]
//! cargo run --release -p halfclose-tools --bin soak -- --seed 58 --deadline 36000   # replay one run
//! cargo run --release -p halfclose-tools --bin soak -- --seed 58 --svg ladder.svg --graph graph.svg
//! ```
//!
//! Each seed runs one scenario (seed modulo the number of scenarios) with sizes, latency and
//! fault rates drawn from the seed. A run that is still going at its simulated deadline is a
//! hang; bytes in the client's sink that differ from the file are wrong bytes. Either makes the
//! program print the seed that reproduces it and exit 1. A replayed seed can be drawn: its
//! ladder diagram (`--svg`) and time-sequence graph (`--graph`), what the wire did with every
//! packet included.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant as WallClock;

use clap::{Parser, ValueEnum, value_parser};

use halfclose::Timeouts;
use halfclose::sim::{self, Link, Rng, Setup, Wire, percent};
use halfclose_tools::attacks;
use halfclose_tools::picture;
use halfclose_tools::recorder::Recorder;
use smoltcp::socket::tcp::CongestionControl;
use smoltcp::time::{Duration, Instant};

const MTU: usize = 9000;
const CAP: usize = 32;

/// The timeouts the sweep runs with: the defaults, and a TIME-WAIT long enough to re-acknowledge
/// a client's FIN whose first ACK was lost.
const TIMEOUTS: Timeouts = Timeouts {
    linger: Duration::from_secs(120),
    ..Timeouts::DEFAULT
};

/// One run's link, socket buffer size, payload length and cut time.
type Run = (Link, usize, usize, Option<Instant>);

struct Scenario {
    name: &'static str,
    /// Draws one run from its RNG.
    make: fn(&mut Rng) -> Run,
}

fn base(rng: &mut Rng) -> (Link, usize, usize) {
    let mut link = Link::clean(1500);
    link.latency = Duration::from_micros(200 + rng.below(20_000));
    link.queue = CAP;
    let buffer = 16 * 1024;
    let len = rng.below(256 * 1024) as usize;
    (link, buffer, len)
}

fn lossy(rng: &mut Rng, loss: u32) -> Run {
    let (mut link, buffer, len) = base(rng);
    link.loss_ppm = loss;
    (link, buffer, len, None)
}

const SCENARIOS: &[Scenario] = &[
    Scenario {
        name: "clean",
        make: |r| lossy(r, 0),
    },
    Scenario {
        name: "loss 1%",
        make: |r| lossy(r, percent(1)),
    },
    Scenario {
        name: "loss 5%",
        make: |r| lossy(r, percent(5)),
    },
    Scenario {
        name: "loss 10%",
        make: |r| lossy(r, percent(10)),
    },
    Scenario {
        name: "loss 30%",
        make: |r| lossy(r, percent(30)),
    },
    Scenario {
        name: "duplicate 10%",
        make: |r| {
            let (mut l, b, n) = base(r);
            l.duplicate_ppm = percent(10);
            (l, b, n, None)
        },
    },
    Scenario {
        name: "reorder 20%",
        make: |r| {
            let (mut l, b, n) = base(r);
            l.reorder_ppm = percent(20);
            l.reorder_by = Duration::from_millis(10);
            (l, b, n, None)
        },
    },
    Scenario {
        name: "corrupt 5%",
        make: |r| {
            let (mut l, b, n) = base(r);
            l.corrupt_ppm = percent(5);
            (l, b, n, None)
        },
    },
    Scenario {
        name: "MTU 256",
        make: |r| {
            let (mut l, b, n) = base(r);
            l.mtu = 256;
            (l, b, n, None)
        },
    },
    Scenario {
        name: "MTU 9000, 64 KiB buffers",
        make: |r| {
            let (mut l, _, _) = base(r);
            l.mtu = 9000;
            (l, 64 * 1024, r.below(1 << 20) as usize, None)
        },
    },
    Scenario {
        name: "1 MB/s bottleneck, 64 KiB buffers",
        make: |r| {
            let (mut l, _, _) = base(r);
            l.rate = Some(1_000_000);
            (l, 64 * 1024, r.below(1 << 20) as usize, None)
        },
    },
    Scenario {
        name: "1 MB/s bottleneck, 64 KiB buffers, loss 1%",
        make: |r| {
            let (mut l, _, _) = base(r);
            l.rate = Some(1_000_000);
            l.loss_ppm = percent(1);
            (l, 64 * 1024, r.below(1 << 20) as usize, None)
        },
    },
    Scenario {
        name: "64 B buffers",
        make: |r| {
            let (l, _, _) = base(r);
            (l, 64, r.below(16 * 1024) as usize, None)
        },
    },
    Scenario {
        name: "everything at once",
        make: |r| {
            let (mut l, _, _) = base(r);
            l.mtu = 256 + r.below(9000 - 256 + 1) as usize;
            l.loss_ppm = r.below(u64::from(percent(10)) + 1) as u32;
            l.duplicate_ppm = r.below(u64::from(percent(5)) + 1) as u32;
            l.reorder_ppm = r.below(u64::from(percent(10)) + 1) as u32;
            l.corrupt_ppm = r.below(u64::from(percent(2)) + 1) as u32;
            let buffer = 64 << r.below(11);
            let len = (r.below(1 << 20) as usize).min(buffer * 256);
            (l, buffer, len, None)
        },
    },
    Scenario {
        name: "link cut mid-transfer",
        make: |r| {
            let (l, b, _) = base(r);
            let cut = Instant::from_micros(r.below(3_000_000) as i64);
            (l, b, 256 * 1024, Some(cut))
        },
    },
];

#[derive(Default)]
struct Row {
    runs: u64,
    delivered: u64,
    errors: BTreeMap<String, u64>,
    hangs: u64,
    wrong: u64,
    delivered_bytes: u64,
    delivered_time: Duration,
    simulated: Duration,
    wall: std::time::Duration,
}

/// Sweeps the fault matrix over many seeds on the simulated wire; prints a table, and the seed
/// of any hang or wrong byte (then exits 1).
#[derive(Parser, Debug)]
#[command(name = "soak")]
struct Args {
    /// Run seeds 0 to N-1
    #[arg(
        long,
        value_name = "N",
        default_value_t = 1000,
        conflicts_with = "seed"
    )]
    seeds: u64,
    /// Run this one seed and print its details (to replay a failure)
    #[arg(long, value_name = "N")]
    seed: Option<u64>,
    /// Simulated seconds after which a run still going counts as a hang
    #[arg(long, value_name = "SECONDS", default_value_t = 3600, allow_negative_numbers = true, value_parser = value_parser!(i64).range(1..=1_000_000_000))]
    deadline: i64,
    /// Congestion control for every socket (default: what the features chose)
    #[arg(long, value_enum)]
    congestion: Option<Congestion>,
    /// Draw the replayed seed's exchange as a ladder diagram (SVG) to PATH
    #[arg(long, value_name = "PATH", requires = "seed")]
    svg: Option<PathBuf>,
    /// Draw the replayed seed's time-sequence graph (SVG) to PATH
    #[arg(long, value_name = "PATH", requires = "seed")]
    graph: Option<PathBuf>,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum Congestion {
    None,
    Reno,
    #[cfg(feature = "socket-tcp-cubic")]
    Cubic,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let deadline = Instant::from_secs(args.deadline);
    let only = args.seed;
    let seeds = args.seeds;
    let congestion = args.congestion.map(|c| match c {
        Congestion::None => CongestionControl::None,
        Congestion::Reno => CongestionControl::Reno,
        #[cfg(feature = "socket-tcp-cubic")]
        Congestion::Cubic => CongestionControl::Cubic,
    });

    let mut rows: Vec<Row> = SCENARIOS.iter().map(|_| Row::default()).collect();
    let mut failed = false;
    let mut wire = Box::new(Wire::<MTU, CAP>::new(
        0,
        Link::clean(1500),
        Link::clean(1500),
    ));
    let mut file = Vec::new();
    let mut sink = Vec::new();
    let mut buffers = Vec::new();
    let started = WallClock::now();
    // `seed..seed + 1` would overflow at u64::MAX.
    let range: Box<dyn Iterator<Item = u64>> = match only {
        Some(seed) => Box::new(std::iter::once(seed)),
        None => Box::new(0..seeds),
    };
    for seed in range {
        let index = (seed % SCENARIOS.len() as u64) as usize;
        let mut rng = Rng::new(seed);
        let (link, buffer, len, cut_at) = (SCENARIOS[index].make)(&mut rng);
        file.clear();
        file.extend((0..len).map(|_| rng.next_u64() as u8));
        sink.clear();
        sink.resize(len, 0);
        buffers.clear();
        buffers.resize(4 * buffer, 0);
        *wire = Wire::new(seed, link, link);
        let mut setup = Setup {
            v6: rng.below(2) == 1,
            cut_at,
            deadline,
            ..Setup::new(TIMEOUTS)
        };
        if let Some(c) = congestion {
            setup.congestion = c;
        }

        let t = WallClock::now();
        let outcome = if args.svg.is_some() || args.graph.is_some() {
            let title = format!(
                "soak seed {seed} ({}): {len} B file, {buffer} B buffers",
                SCENARIOS[index].name
            );
            let mut recorder = Recorder::new(title);
            let outcome = sim::transfer_watched(
                &mut wire,
                &file,
                &mut sink,
                &mut buffers,
                setup,
                &mut recorder,
            );
            let drawn = picture::draw(
                recorder.exchange(),
                args.svg.as_deref(),
                args.graph.as_deref(),
            );
            if let Err(e) = drawn {
                eprintln!("soak: {e}");
                return ExitCode::FAILURE;
            }
            outcome
        } else {
            sim::transfer(&mut wire, &file, &mut sink, &mut buffers, setup)
        };
        if only.is_some() {
            println!(
                "seed {seed} ({}): {link:?}, {buffer} B buffers, {len} B file",
                SCENARIOS[index].name
            );
            println!("{outcome:?}");
            println!("wire: to client {:?}", wire.stats(sim::Side::Client));
            println!("wire: to server {:?}", wire.stats(sim::Side::Server));
        }
        let row = &mut rows[index];
        row.wall += t.elapsed();
        row.runs += 1;
        row.simulated += outcome.end - Instant::ZERO;
        let n = outcome.received;
        if sink[..n] != file[..n] || (outcome.delivered() && n != len) {
            row.wrong += 1;
            failed = true;
            println!(
                "WRONG BYTES: seed {seed} ({}): {outcome:?}",
                SCENARIOS[index].name
            );
        }
        if outcome.hung() {
            row.hangs += 1;
            failed = true;
            println!("HANG: seed {seed} ({}): {outcome:?}", SCENARIOS[index].name);
        } else if outcome.delivered() {
            row.delivered += 1;
            row.delivered_bytes += len as u64;
            if let Some(Ok(c)) = &outcome.client {
                row.delivered_time += c.duration();
            }
        } else {
            // The first error, the client's if both ended in one.
            let error = match (&outcome.client, &outcome.server) {
                (Some(Err(e)), _) | (_, Some(Err(e))) => attacks::kind(e),
                _ => "no connection".into(),
            };
            *row.errors.entry(error).or_default() += 1;
        }
    }

    println!(
        "| scenario | runs | delivered with reply | typed errors | hangs | wrong bytes | goodput (delivered) | simulated | real |"
    );
    println!("|---|--:|--:|---|--:|--:|--:|--:|--:|");
    let mut total = Row::default();
    for (scenario, row) in SCENARIOS.iter().zip(&rows) {
        let errors: Vec<String> = row.errors.iter().map(|(k, v)| format!("{k} {v}")).collect();
        let goodput = row.delivered_bytes as f64 * 8.0
            / (row.delivered_time.total_micros().max(1) as f64 / 1e6)
            / 1e6;
        println!(
            "| {} | {} | {} | {} | {} | {} | {:.2} Mbit/s | {:.0} s | {:.2} s |",
            scenario.name,
            row.runs,
            row.delivered,
            if errors.is_empty() {
                "-".into()
            } else {
                errors.join(", ")
            },
            row.hangs,
            row.wrong,
            goodput,
            row.simulated.total_millis() as f64 / 1000.0,
            row.wall.as_secs_f64(),
        );
        total.runs += row.runs;
        total.delivered += row.delivered;
        total.hangs += row.hangs;
        total.wrong += row.wrong;
        total.simulated += row.simulated;
    }
    println!(
        "| **all** | {} | {} | {} | {} | {} | | {:.0} s | {:.2} s |",
        total.runs,
        total.delivered,
        total.runs - total.delivered - total.hangs,
        total.hangs,
        total.wrong,
        total.simulated.total_millis() as f64 / 1000.0,
        started.elapsed().as_secs_f64()
    );
    if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}
