//! What the example programs share: command-line types, all-or-nothing output files, the event
//! loop, logging and progress, (on Linux) the TAP device, and the loopback's segment trace and
//! its pictures.
#![allow(dead_code)]

pub mod cli;
pub mod drive;
// The TAP programs' pieces: faults drawn from the simulation's random source, Ethernet and IPv6
// on the device. The loopback example needs none of them, and so builds with the defaults.
#[cfg(feature = "sim")]
pub mod faults;
pub mod files;
#[cfg(all(
    target_os = "linux",
    feature = "sim",
    feature = "medium-ethernet",
    feature = "proto-ipv6"
))]
pub mod offload;
pub mod pcap;
pub mod picture;
// A status line on SIGUSR1, for the TAP server.
#[cfg(target_os = "linux")]
pub mod status;
#[cfg(all(
    target_os = "linux",
    feature = "sim",
    feature = "medium-ethernet",
    feature = "proto-ipv6"
))]
pub mod tap;
pub mod trace;

use indicatif::{ProgressBar, ProgressStyle};

/// Logs on stderr through `env_logger`: `RUST_LOG` as usual, or everything with `-v`.
pub fn init_log(verbose: bool) {
    let default = if verbose { "trace" } else { "warn" };
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or(default))
        .format_timestamp_micros()
        .init();
}

/// A progress bar on stderr for `total` bytes (a spinner with a byte count if unknown). indicatif
/// draws nothing when stderr is not a terminal, so logs and tests see only the summary lines.
pub fn progress(total: Option<u64>) -> ProgressBar {
    match total {
        Some(total) => ProgressBar::new(total).with_style(
            ProgressStyle::with_template(
                "[{bar:30}] {percent:>3}% {bytes}/{total_bytes} {binary_bytes_per_sec} eta {eta}",
            )
            .expect("a valid template")
            .progress_chars("#>-"),
        ),
        None => ProgressBar::no_length().with_style(
            ProgressStyle::with_template("{spinner} {bytes} {binary_bytes_per_sec}")
                .expect("a valid template"),
        ),
    }
}

/// Seconds and MB/s for a summary line.
pub fn rate(bytes: u64, started: std::time::Instant) -> (f64, f64) {
    let secs = started.elapsed().as_secs_f64();
    (secs, bytes as f64 / secs.max(1e-9) / 1e6)
}

/// A program's exit: success, or its error on one stderr line as `NAME: error` and exit code 1
/// (usage errors exit 2 from clap before this).
pub fn exit_with(name: &str, result: Result<(), String>) -> std::process::ExitCode {
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{name}: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
