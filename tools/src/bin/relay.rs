//! A lossy, slow link between two kernel TCP stacks: every Ethernet frame read from one TAP
//! device is written to the other, or dropped, with the faults our TAP programs apply at their
//! own device (`--drop`, `--delay`, `--seed` of `examples/common/faults.rs`). It is the
//! kernel → kernel column of `scripts/tap-loss.sh`: the kernel's sender and receiver on a link
//! that loses and delays frames as the link to our programs does (`halfclose_tools::relay`).
//!
//! ```text
//! relay --a TAPA [--a-netns NS] --b TAPB [--b-netns NS] [--drop PCT] [--delay MS] [--seed N]
//!       [--idle S]
//! ```
//!
//! Both TAP devices must exist (`ip tuntap add dev TAPA mode tap`), each in the network
//! namespace `--a-netns` or `--b-netns` names (`ip netns add NS`) or else in the relay's own, so
//! that the two kernel stacks can live in namespaces of their own. Each direction drops PCT % of
//! frames and holds the others MS ms, in order; its own generator, seeded from N, makes the
//! choices. The relay prints `relay: forwarding ...` on stderr once both devices are open, and
//! on leaving (after S seconds without a frame, or on SIGTERM or SIGINT) the frames forwarded
//! and dropped each way. Exits 0 then, 1 on an error, 2 on bad arguments.

use std::process::ExitCode;

use clap::{Parser, value_parser};

/// Forward Ethernet frames between two TAP devices, dropping and delaying them.
#[derive(Parser, Debug)]
#[command(name = "relay")]
struct Args {
    /// One TAP device
    #[arg(long, value_name = "NAME")]
    a: String,
    /// The network namespace of --a (`ip netns add NS`; default: the relay's own)
    #[arg(long, value_name = "NS")]
    a_netns: Option<String>,
    /// The other TAP device
    #[arg(long, value_name = "NAME")]
    b: String,
    /// The network namespace of --b
    #[arg(long, value_name = "NS")]
    b_netns: Option<String>,
    /// Drop PCT % of frames, each direction
    #[arg(long = "drop", value_name = "PCT", default_value = "0", value_parser = percent)]
    drop_ppm: u32,
    /// Hold every frame MS milliseconds, each direction (the round trip grows by twice MS)
    #[arg(long, value_name = "MS", default_value_t = 0, value_parser = value_parser!(u64).range(0..=10_000))]
    delay: u64,
    /// Seed of the random drops
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Leave after S seconds without a frame either way
    #[arg(long, value_name = "S", default_value_t = 30, value_parser = value_parser!(u64).range(1..=86_400))]
    idle: u64,
}

/// "1.5" (percent) as parts per million, as the TAP programs' `--drop` reads it.
fn percent(text: &str) -> Result<u32, String> {
    let pct: f64 = text
        .parse()
        .map_err(|_| format!("{text:?} is not a percentage"))?;
    if !(0.0..=100.0).contains(&pct) {
        return Err(format!("{text} % is not between 0 and 100"));
    }
    Ok((pct * 10_000.0).round() as u32)
}

fn main() -> ExitCode {
    let args = Args::parse();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("relay: {e}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(not(target_os = "linux"))]
fn run(_: &Args) -> Result<(), String> {
    Err("TAP devices are Linux's".into())
}

#[cfg(target_os = "linux")]
fn run(args: &Args) -> Result<(), String> {
    use halfclose_tools::relay::{self, Link};
    use std::time::Duration;

    let taps = [
        relay::open(&args.a, args.a_netns.as_deref())?,
        relay::open(&args.b, args.b_netns.as_deref())?,
    ];
    relay::stop_on_signals();
    let link = Link {
        drop_ppm: args.drop_ppm,
        delay: Duration::from_millis(args.delay),
        seed: args.seed,
        idle: Duration::from_secs(args.idle),
    };
    // The line a script waits for.
    eprintln!(
        "relay: forwarding {} <-> {}, drop {} %, delay {} ms, seed {}",
        args.a,
        args.b,
        f64::from(args.drop_ppm) / 1e4,
        args.delay,
        args.seed
    );
    let names = [args.a.as_str(), args.b.as_str()];
    let counts = relay::relay(&taps, names, &link)?;
    for (from, c) in counts.iter().enumerate() {
        eprintln!(
            "relay: {} -> {}: {} forwarded, {} dropped, {} lost (queue full or device down), {} held at exit",
            names[from],
            names[1 - from],
            c.forwarded,
            c.dropped,
            c.lost,
            c.held
        );
    }
    Ok(())
}
