//! Serve a file over a Linux TAP device to ordinary TCP clients, half-closing after it and
//! waiting for their "Thank you".
//!
//! ```text
//! tap_server [OPTIONS] FILE   (run with CAP_NET_ADMIN; see the README's TAP walkthrough)
//! ```

mod common;

#[cfg(target_os = "linux")]
fn main() -> std::process::ExitCode {
    use clap::Parser;
    let args = linux::Args::parse();
    common::init_log(args.tap.verbose);
    match linux::run(&args) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("tap_server: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

#[cfg(not(target_os = "linux"))]
fn main() -> std::process::ExitCode {
    eprintln!("tap_server: TAP devices need Linux");
    std::process::ExitCode::FAILURE
}

#[cfg(target_os = "linux")]
mod linux {
    use std::ops::ControlFlow;
    use std::path::PathBuf;
    use std::time::Instant as WallClock;

    use clap::Parser;
    use halfclose::Error;
    use halfclose::server::{Server, State};
    use smoltcp::iface::{SocketSet, SocketStorage};
    use smoltcp::socket::tcp;
    use smoltcp::time::{Duration, Instant};

    use crate::common::cli::{self, Seconds};
    use crate::common::files::Input;
    use crate::common::{drive, progress, rate, tap};

    /// Sends FILE to each client that connects, half-closes, and prints the client's reply.
    #[derive(Parser, Debug)]
    #[command(name = "tap_server")]
    pub struct Args {
        /// The file to serve (a regular file)
        file: PathBuf,
        /// Serve N clients, then exit (0: for ever)
        #[arg(long, value_name = "N", default_value_t = 1)]
        clients: u64,
        /// Give up when no client has connected for S seconds (0: never)
        #[arg(long, value_name = "S", allow_negative_numbers = true, default_value = "60", value_parser = cli::wait)]
        wait: Seconds,
        #[command(flatten)]
        pub tap: tap::TapArgs,
    }

    pub fn run(args: &Args) -> Result<(), String> {
        let (source, len) = Input::new(&args.file)?;
        let read_errors = source.errors();
        let (mut device, mut iface) = tap::open(&args.tap)?;

        let mut storage: [SocketStorage; 1] = Default::default();
        let mut sockets = SocketSet::new(&mut storage[..]);
        let handle = sockets.add(tcp::Socket::new(
            tcp::SocketBuffer::new(vec![0; 64 * 1024]),
            tcp::SocketBuffer::new(vec![0; 256 * 1024]),
        ));
        let endpoint = (args.tap.addr.address(), args.tap.port);
        let mut server = Server::listen(
            &mut sockets,
            [handle],
            endpoint,
            source,
            args.tap.timeouts(),
        )
        .map_err(|e| e.to_string())?;
        println!(
            "tap_server: serving {} ({len} bytes) on {}:{} ({})",
            args.file.display(),
            endpoint.0,
            endpoint.1,
            args.tap.tap
        );

        let (mut served, mut failed) = (0u64, 0u64);
        let mut last_error = String::new();
        let mut idle_since = Instant::now();
        let mut started = WallClock::now();
        let bar = progress(Some(len));
        let outcome = drive::run(&mut device, &mut iface, &mut sockets, |now, sockets| {
            for result in server.poll(now, sockets) {
                bar.reset();
                let why = result.map(|report| bar.suspend(|| print_served(&report, started)));
                let why = why.map_err(|e| root_cause(&e, Input::error(&read_errors, &args.file)));
                match why {
                    Ok(()) => served += 1,
                    Err(why) => failed_one(&mut failed, &mut last_error, why, args.clients != 1),
                }
                idle_since = now;
            }
            if args.clients > 0 && served + failed >= args.clients {
                return ControlFlow::Break(Ok(()));
            }
            let waiting = match server.states().next().flatten() {
                Some(State::Accepting) => {
                    started = WallClock::now();
                    None
                }
                Some(State::Sending { queued }) => {
                    bar.set_position(*queued);
                    None
                }
                Some(_) => None,
                None => (args.wait.0 != Duration::ZERO).then(|| idle_since + args.wait.0),
            };
            match waiting {
                Some(until) if now >= until => {
                    ControlFlow::Break(Err(format!("no client connected within {} s", args.wait)))
                }
                _ => ControlFlow::Continue(drive::earliest(server.poll_at(), waiting)),
            }
        });
        bar.finish_and_clear();
        outcome??;
        // Let the last ACK (or RST) leave before the process, and its stack, go away.
        let end = Instant::now() + Duration::from_secs(1);
        drive::run(&mut device, &mut iface, &mut sockets, |now, sockets| {
            // Every connection has ended and been reported: only lingering slots are left.
            let _ = server.poll(now, sockets);
            if server.lingering() == 0 || now >= end {
                ControlFlow::Break(())
            } else {
                ControlFlow::Continue(Some(end))
            }
        })?;
        device.finish()?;
        if failed > 0 && args.clients == 1 {
            return Err(last_error);
        }
        if failed > 0 {
            return Err(format!("{failed} of {} clients failed", served + failed));
        }
        Ok(())
    }

    /// Count a client that failed and keep its error; print it now unless it will be the
    /// program's own, at the end (one client).
    fn failed_one(failed: &mut u64, last_error: &mut String, why: String, print: bool) {
        *failed += 1;
        if print {
            eprintln!("tap_server: client failed: {why}");
        }
        *last_error = why;
    }

    /// The lesson's line and a summary for one client served.
    fn print_served(report: &halfclose::server::Report, started: WallClock) {
        let (secs, mbps) = rate(report.bytes, started);
        let reply = report.reply.kept();
        let text = reply.strip_suffix(b"\0").unwrap_or(reply);
        println!("Message from client: {}", String::from_utf8_lossy(text));
        println!(
            "sent {} bytes to {} in {secs:.3} s ({mbps:.1} MB/s); reply {} {}",
            report.bytes,
            report.remote.map_or("?".into(), |r| r.to_string()),
            report.reply,
            report.reply_timing,
        );
    }

    /// What went wrong for one client, the file's own error first (in the OS's words).
    fn root_cause(e: &Error, read_error: Option<String>) -> String {
        match (e, read_error) {
            (Error::Source { bytes, .. }, Some(os)) => format!("{os} after {bytes} bytes"),
            _ => e.to_string(),
        }
    }
}
