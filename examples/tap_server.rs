//! Serve a file over a Linux TAP device to ordinary TCP clients, half-closing after it and
//! waiting for their "Thank you".
//!
//! ```text
//! tap_server [OPTIONS] FILE        (run with CAP_NET_ADMIN; see the README's TAP walkthrough)
//! ```

mod tap_common;

use std::path::PathBuf;
use std::process::ExitCode;

use halfclose::io::FileSource;
use halfclose::server::{self, State};
use smoltcp::iface::{SocketSet, SocketStorage};
use smoltcp::socket::tcp;
use smoltcp::time::Instant;
use tap_common::{COMMON_HELP, Common, Progress, parse, rate};

struct Args {
    common: Common,
    file: PathBuf,
    clients: u64,
    wait_secs: u64,
}

fn usage() -> String {
    format!(
        "usage: tap_server [OPTIONS] FILE\n\n\
         Sends FILE to each client that connects, half-closes, and prints the client's reply.\n\n\
         \x20 --clients N            serve N clients, then exit (default 1; 0: for ever)\n\
         \x20 --wait S               give up when no client has connected for S seconds (default 60; 0: never)\n\
         {COMMON_HELP}"
    )
}

fn parse_args() -> Result<Option<Args>, String> {
    let mut common = Common::new();
    let (mut file, mut clients, mut wait_secs) = (None, 1, 60);
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "-h" | "--help" => return Ok(None),
            "--clients" => {
                clients = parse(&args.next().ok_or("--clients needs a value")?, "count")?
            }
            "--wait" => wait_secs = parse(&args.next().ok_or("--wait needs a value")?, "seconds")?,
            flag if flag.starts_with('-') => {
                if !common.take(flag, &mut args)? {
                    return Err(format!("unknown option {flag}"));
                }
            }
            _ if file.is_some() => return Err("only one FILE".into()),
            _ => file = Some(PathBuf::from(arg)),
        }
    }
    let file = file.ok_or("which FILE should be served?")?;
    Ok(Some(Args {
        common,
        file,
        clients,
        wait_secs,
    }))
}

fn main() -> ExitCode {
    match parse_args() {
        Ok(Some(args)) => match run(&args) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("tap_server: {e}");
                ExitCode::FAILURE
            }
        },
        Ok(None) => {
            println!("{}", usage());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("tap_server: {e}\n{}", usage());
            ExitCode::from(2)
        }
    }
}

fn run(args: &Args) -> Result<(), String> {
    let source = FileSource::new(&args.file)
        .map_err(|e| format!("cannot read {}: {e}", args.file.display()))?;
    let total = std::fs::metadata(&args.file).map(|m| m.len()).ok();
    let (mut device, fd, mut iface) = tap_common::open(&args.common)?;

    let mut storage: [SocketStorage; 1] = Default::default();
    let mut sockets = SocketSet::new(&mut storage[..]);
    let handle = sockets.add(tcp::Socket::new(
        tcp::SocketBuffer::new(vec![0; 64 * 1024]),
        tcp::SocketBuffer::new(vec![0; 256 * 1024]),
    ));
    let mut server = server::Server::listen(
        &mut sockets,
        [handle],
        (args.common.addr.address(), args.common.port),
        source,
        args.common.timeouts,
    )
    .map_err(|e| e.to_string())?;
    eprintln!(
        "tap_server: serving {} on {}:{} ({})",
        args.file.display(),
        args.common.addr.address(),
        args.common.port,
        args.common.tap
    );

    let (mut served, mut failed) = (0u64, 0u64);
    let mut idle_since = std::time::Instant::now();
    let mut progress = Progress::new(total);
    let mut started = std::time::Instant::now();
    loop {
        let now = Instant::now();
        iface.poll(now, &mut device, &mut sockets);
        for result in server.poll(now, &mut sockets) {
            progress.finish();
            match result {
                Ok(report) => {
                    served += 1;
                    let (secs, mbps) = rate(report.bytes, started.elapsed().into());
                    let reply = report.reply.kept();
                    let text = reply.strip_suffix(b"\0").unwrap_or(reply);
                    println!("Message from client: {}", String::from_utf8_lossy(text));
                    println!(
                        "sent {} bytes to {} in {secs:.3} s ({mbps:.1} MB/s); reply {} {} after our FIN",
                        report.bytes,
                        report.remote.map_or("?".into(), |r| r.to_string()),
                        report.reply,
                        report.reply_after_fin(),
                    );
                }
                Err(e) => {
                    failed += 1;
                    eprintln!("tap_server: client failed: {e}");
                }
            }
            idle_since = std::time::Instant::now();
        }
        if args.clients > 0 && served + failed >= args.clients {
            break;
        }
        match server.states().next().flatten() {
            Some(State::Accepting) => started = std::time::Instant::now(),
            Some(State::Sending { queued }) => progress.update(*queued),
            Some(_) => {}
            None if args.wait_secs > 0 && idle_since.elapsed().as_secs() >= args.wait_secs => {
                return Err(format!("no client connected within {} s", args.wait_secs));
            }
            None => {}
        }
        tap_common::wait(fd, &mut iface, &sockets);
    }
    // Let the last ACK (or RST) leave before the process, and its stack, goes away.
    let end = std::time::Instant::now() + std::time::Duration::from_secs(1);
    while server.lingering() > 0 && std::time::Instant::now() < end {
        tap_common::wait(fd, &mut iface, &sockets);
        let now = Instant::now();
        iface.poll(now, &mut device, &mut sockets);
        // Every connection has ended and been reported: only lingering slots are left.
        let _ = server.poll(now, &mut sockets);
    }
    if failed > 0 {
        return Err(format!("{failed} of {} clients failed", served + failed));
    }
    Ok(())
}
