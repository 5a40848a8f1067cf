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
    common::exit_with("tap_server", linux::run(&args))
}

#[cfg(not(target_os = "linux"))]
fn main() -> std::process::ExitCode {
    common::exit_with("tap_server", Err("TAP devices need Linux".into()))
}

#[cfg(target_os = "linux")]
mod linux {
    use std::ops::ControlFlow;
    use std::path::PathBuf;

    use clap::Parser;
    use halfclose::Error;
    use halfclose::backlog::Backlog;
    use halfclose::server::{Report, Server, State};
    use indicatif::ProgressBar;
    use smoltcp::iface::{SocketHandle, SocketSet, SocketStorage};
    use smoltcp::time::{Duration, Instant};

    use crate::common::cli::{self, Seconds};
    use crate::common::files::{ErrorSlot, Input};
    use crate::common::{drive, progress, status, tap};

    /// The largest pool: each size is a const generic the program is built with.
    const POOL_MAX: usize = 32;
    /// SYNs that may wait for a free socket, as `listen(2)`'s backlog (Linux's and Rust's
    /// `TcpListener` default is 128); a full queue drops a SYN, and its client retransmits.
    const BACKLOG: usize = 128;
    /// Each socket's receive and send buffers.
    const RX_BUFFER: usize = 64 * 1024;
    const TX_BUFFER: usize = 256 * 1024;

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
        /// Clients served at once, 1 to 32: each socket has 320 KiB of buffers, so 8 take
        /// 2.5 MiB and keep a LAN busy; the others wait in a backlog of 128 SYNs
        #[arg(long, value_name = "N", default_value_t = 8, value_parser = clap::value_parser!(u16).range(1..=POOL_MAX as i64))]
        pool: u16,
        #[command(flatten)]
        pub tap: tap::TapArgs,
    }

    /// The pool's size is part of the server's type: one `serve` per size.
    macro_rules! serve_pool {
        ($args:expr, $($n:literal)*) => {
            match $args.pool {
                $($n => serve::<$n>($args),)*
                n => Err(format!("--pool {n}: at most {POOL_MAX}")),
            }
        };
    }

    pub fn run(args: &Args) -> Result<(), String> {
        serve_pool!(args, 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16
            17 18 19 20 21 22 23 24 25 26 27 28 29 30 31 32)
    }

    /// What the server has done so far.
    #[derive(Default)]
    struct Tally {
        served: u64,
        failed: u64,
        last_error: String,
    }

    /// The server and what the event loop keeps between passes.
    struct Serving<'a, const N: usize> {
        args: &'a Args,
        server: Server<Input, N>,
        read_errors: ErrorSlot,
        tally: Tally,
        idle_since: Instant,
        bar: ProgressBar,
    }

    fn serve<const N: usize>(args: &Args) -> Result<(), String> {
        let (source, len) = Input::new(&args.file)?;
        let read_errors = source.errors();
        let (mut device, mut iface) = tap::open(&args.tap)?;
        status::listen()?;

        let mut storage: [SocketStorage; N] = std::array::from_fn(|_| SocketStorage::EMPTY);
        let mut sockets = SocketSet::new(&mut storage[..]);
        let handles: [SocketHandle; N] =
            std::array::from_fn(|_| sockets.add(tap::socket(RX_BUFFER, TX_BUFFER)));
        let endpoint = (args.tap.addr.address(), args.tap.port);
        let server = Server::listen(&mut sockets, handles, endpoint, source, args.tap.timeouts())
            .map_err(|e| e.to_string())?;
        println!(
            "tap_server: serving {} ({len} bytes) on {}:{} ({}), {N} at once, {BACKLOG} waiting",
            args.file.display(),
            endpoint.0,
            endpoint.1,
            args.tap.tap
        );

        let mut backlog = Backlog::<BACKLOG>::new(args.tap.port);
        backlog.admit(server.listening());
        let mut serving = Serving {
            args,
            server,
            read_errors,
            tally: Tally::default(),
            idle_since: Instant::now(),
            // One bar for one client at a time; a pool's transfers interleave.
            bar: if N == 1 {
                progress(Some(len))
            } else {
                ProgressBar::hidden()
            },
        };
        let outcome = drive::run_behind(
            &mut device,
            &mut backlog,
            &mut iface,
            &mut sockets,
            |now, sockets, backlog| serving.step(now, sockets, backlog),
        );
        serving.bar.finish_and_clear();
        let stats = backlog.stats();
        let tally = &serving.tally;
        println!(
            "tap_server: served {}, failed {}, turned away {} (backlog: held {}, dropped {})",
            tally.served, tally.failed, stats.refused, stats.held, stats.dropped
        );
        outcome??;
        // Let the last ACK (or RST) leave before the process, and its stack, go away.
        let end = Instant::now() + Duration::from_secs(1);
        let server = &mut serving.server;
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
        let tally = serving.tally;
        if tally.failed > 0 && args.clients == 1 {
            return Err(tally.last_error);
        }
        if tally.failed > 0 {
            return Err(format!(
                "{} of {} clients failed",
                tally.failed,
                tally.served + tally.failed
            ));
        }
        Ok(())
    }

    impl<const N: usize> Serving<'_, N> {
        /// One pass of the event loop after the interface's.
        fn step(
            &mut self,
            now: Instant,
            sockets: &mut SocketSet<'_>,
            backlog: &mut Backlog<BACKLOG>,
        ) -> ControlFlow<Result<(), String>, Option<Instant>> {
            for result in self.server.poll(now, sockets) {
                self.ended(result);
                self.idle_since = now;
            }
            // Also frees a lingering slot whose client comes back from the same port.
            self.server.admit(backlog, sockets);
            if status::asked() {
                self.print_status(backlog);
            }
            let clients = self.args.clients;
            if clients > 0 && self.tally.served + self.tally.failed >= clients {
                return ControlFlow::Break(Ok(()));
            }
            if let Some(Some(State::Sending { queued })) = self.server.states().next() {
                self.bar.set_position(queued);
            }
            if self.server.busy() > 0 || backlog.waiting() > 0 {
                self.idle_since = now;
            }
            let wait = self.args.wait.0;
            let waiting = (wait != Duration::ZERO).then(|| self.idle_since + wait);
            match waiting {
                Some(until) if now >= until => ControlFlow::Break(Err(format!(
                    "no client connected within {} s",
                    self.args.wait
                ))),
                _ => ControlFlow::Continue(drive::earliest(self.server.poll_at(), waiting)),
            }
        }

        /// Count and print one connection that ended.
        fn ended(&mut self, result: Result<Report, Error>) {
            self.bar.reset();
            let report = match result {
                Ok(report) => report,
                Err(e) => return self.failed(&e),
            };
            self.bar.suspend(|| print_served(&report));
            self.tally.served += 1;
        }

        /// Count one client that failed and keep its error; print it now unless it will be the
        /// program's own, at the end (one client).
        fn failed(&mut self, e: &Error) {
            let why = root_cause(e, Input::error(&self.read_errors, &self.args.file));
            if self.args.clients != 1 {
                eprintln!("tap_server: client failed: {why}");
            }
            self.tally.failed += 1;
            self.tally.last_error = why;
        }

        /// The line `SIGUSR1` asks for.
        fn print_status(&self, backlog: &Backlog<BACKLOG>) {
            let (server, stats) = (&self.server, backlog.stats());
            println!(
                "tap_server: status: served {}, failed {}, turned away {}; pool of {N}: listening {}, serving {}, lingering {}; backlog: waiting {}, held {}, dropped {}",
                self.tally.served,
                self.tally.failed,
                stats.refused,
                server.listening(),
                server.busy(),
                server.lingering(),
                backlog.waiting(),
                stats.held,
                stats.dropped,
            );
        }
    }

    /// The lesson's line and a summary for one client served.
    fn print_served(report: &Report) {
        let secs = report.duration().total_micros() as f64 / 1e6;
        let mbps = report.bytes as f64 / secs.max(1e-9) / 1e6;
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
