//! Hostile peers against a pool of four on the simulated wire, with and without the server's
//! defences: prints the README's tables (Markdown).
//!
//! ```sh
//! cargo run --release -p halfclose-tools --bin attacks [-- --seed N --seconds S]
//! ```
//!
//! Each attack runs for `S` simulated seconds (600 by default) while one legitimate client tries
//! to fetch a 4 KiB file every second; the table gives how many of its attempts were served and
//! how long the attackers' connections held a server slot. A second table measures the default
//! `linger` under loss. The scenarios are the ones `tools/tests/attacks.rs` asserts.

use std::process::ExitCode;

use clap::{Parser, value_parser};

use halfclose::sim::{Link, percent};
use halfclose::{Error, Phase, Timeouts};
use halfclose_tools::attacks::{Attack, BACKLOG, Defences, Outcome, run, single};
use smoltcp::time::Duration;

/// Runs hostile peers against a pool of four on the simulated wire and prints the README's
/// tables.
#[derive(Parser, Debug)]
#[command(name = "attacks")]
struct Args {
    /// Seed of the simulated wire
    #[arg(long, value_name = "N", default_value_t = 1, value_parser = value_parser!(u64).range(1..))]
    seed: u64,
    /// Simulated seconds each attack runs
    #[arg(long, value_name = "S", default_value_t = 600, value_parser = value_parser!(u64).range(1..=86_400))]
    seconds: u64,
}

fn served(o: &Outcome) -> String {
    format!(
        "{} of {} ({:.1} %)",
        o.served,
        o.attempts,
        o.served_percent()
    )
}

fn holds(o: &Outcome) -> String {
    if o.attacker_holds.is_empty() {
        return "-".into();
    }
    format!(
        "{:.1} s / {:.1} s",
        o.longest_hold().total_millis() as f64 / 1000.0,
        o.mean_hold().total_millis() as f64 / 1000.0
    )
}

/// The link's latency, where it is not the LAN's 1 ms.
fn wire(latency: Duration) -> String {
    if latency == Duration::from_millis(1) {
        String::new()
    } else {
        format!(", {} ms each way", latency.total_millis())
    }
}

fn connect_times(o: &Outcome) -> String {
    match o.connect_times() {
        Some((median, longest)) => format!(
            "{:.1} ms / {:.1} ms",
            median.total_micros() as f64 / 1000.0,
            longest.total_micros() as f64 / 1000.0
        ),
        None => "-".into(),
    }
}

fn main() -> ExitCode {
    let Args { seed, seconds } = Args::parse();
    let duration = Duration::from_secs(seconds);
    let lan = Duration::from_millis(1);
    let attacks: [(Attack, Duration); 12] = [
        (Attack::None, lan),
        (Attack::ForgedSyns(1), lan),
        (Attack::ForgedSyns(10), lan),
        (Attack::ForgedSyns(100), lan),
        (Attack::ForgedSyns(100), Duration::from_millis(10)),
        (Attack::NeverRead, lan),
        (
            Attack::SlowReaders {
                clients: 1,
                every: 60,
            },
            lan,
        ),
        (
            Attack::SlowReaders {
                clients: 4,
                every: 60,
            },
            lan,
        ),
        (
            Attack::TrickledReply {
                clients: 1,
                wrong: false,
            },
            lan,
        ),
        (
            Attack::TrickledReply {
                clients: 4,
                wrong: false,
            },
            lan,
        ),
        (
            Attack::TrickledReply {
                clients: 1,
                wrong: true,
            },
            lan,
        ),
        (
            Attack::TrickledReply {
                clients: 4,
                wrong: true,
            },
            lan,
        ),
    ];
    let wall = std::time::Instant::now();
    println!(
        "| attack | legitimate attempts served, defences on | ... off | attacker's slot hold, longest / mean, on | ... off |"
    );
    println!("|---|--:|--:|--:|--:|");
    for (attack, latency) in attacks {
        let on = run(attack, Defences::On, seed, duration, latency);
        let off = run(attack, Defences::Off, seed, duration, latency);
        println!(
            "| {}{} | {} | {} | {} | {} |",
            attack.describe(),
            wire(latency),
            served(&on),
            served(&off),
            holds(&on),
            holds(&off)
        );
    }

    println!();
    println!(
        "| attack | served, defences on | ... and a backlog of {BACKLOG} | connect time, median / longest, on | ... and a backlog |"
    );
    println!("|---|--:|--:|--:|--:|");
    for (attack, latency) in attacks.iter().take(6) {
        let on = run(*attack, Defences::On, seed, duration, *latency);
        let queued = run(*attack, Defences::Backlog, seed, duration, *latency);
        println!(
            "| {}{} | {} | {} | {} | {} |",
            attack.describe(),
            wire(*latency),
            served(&on),
            served(&queued),
            connect_times(&on),
            connect_times(&queued),
        );
    }

    println!();
    println!(
        "| loss (5 ms each way) | clients reset after a complete transfer, of 400, by `linger`: 0 s | 1 s | 2 s | 4 s | 8 s | 16 s |"
    );
    println!("|---|--:|--:|--:|--:|--:|--:|");
    for loss in [5, 10, 20] {
        let mut link = Link::clean(1500);
        link.loss_ppm = percent(loss);
        link.latency = Duration::from_millis(5);
        let counts: Vec<String> = [0, 1, 2, 4, 8, 16]
            .iter()
            .map(|&linger| {
                let timeouts = Timeouts {
                    linger: Duration::from_secs(linger),
                    ..Timeouts::DEFAULT
                };
                (0..400)
                    .filter(|&s| {
                        matches!(
                            single::<2>(timeouts, link, (seed - 1) * 400 + s, false).client,
                            Some(Err(Error::Reset {
                                phase: Phase::Reply,
                                ..
                            }))
                        )
                    })
                    .count()
                    .to_string()
            })
            .collect();
        println!("| {loss} % | {} |", counts.join(" | "));
    }
    eprintln!("{:.1} s", wall.elapsed().as_secs_f64());
    ExitCode::SUCCESS
}
