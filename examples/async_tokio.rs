//! The async transfer on tokio, over the kernel's TCP: `halfclose::asynch::{serve, fetch}` on a
//! `tokio::net::TcpStream`, the same code an embassy-net program runs on its `TcpSocket`.
//!
//! ```text
//! async_tokio server [--bind ADDR] PORT FILE   # serve FILE to one client, print its reply
//! async_tokio client [--wait SECS] HOST PORT OUT
//!                                              # fetch into OUT (written as OUT.partial, renamed
//!                                              # when complete), reply "Thank you\0", close;
//!                                              # retry a refused connect for up to SECS (0)
//! ```
//!
//! Exit 0 on success, 1 on a failed transfer, 2 on a usage error.

use std::fs::File;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use halfclose::Timeouts;
use halfclose::asynch::tokio::{Stream, TokioClock};
use halfclose::asynch::{fetch, serve};
use halfclose::io::FromStd;

const USAGE: &str = "usage: async_tokio server [--bind ADDR] PORT FILE | async_tokio client [--wait SECS] HOST PORT OUT";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("async_tokio: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = match args.first().map(String::as_str) {
        Some("server") => runtime.block_on(server(&args[1..])),
        Some("client") => runtime.block_on(client(&args[1..])),
        _ => Err(Failure::Usage(USAGE.into())),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Usage(e)) => {
            eprintln!("async_tokio: {e}\n{USAGE}");
            ExitCode::from(2)
        }
        Err(Failure::Run(e)) => {
            eprintln!("async_tokio: {e}");
            ExitCode::FAILURE
        }
    }
}

enum Failure {
    Usage(String),
    Run(String),
}

async fn server(args: &[String]) -> Result<(), Failure> {
    let (mut bind, mut rest) = ("127.0.0.1".to_string(), Vec::new());
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--bind" => {
                bind = it
                    .next()
                    .ok_or(Failure::Usage("--bind needs an address".into()))?
                    .clone()
            }
            _ => rest.push(arg.clone()),
        }
    }
    let [port, path] = &rest[..] else {
        return Err(Failure::Usage("server needs PORT FILE".into()));
    };
    let file = File::open(path).map_err(|e| Failure::Run(format!("cannot open {path}: {e}")))?;
    let listener = tokio::net::TcpListener::bind(format!("{bind}:{port}"))
        .await
        .map_err(|e| Failure::Run(format!("bind {bind}:{port}: {e}")))?;
    let local = listener
        .local_addr()
        .map_err(|e| Failure::Run(e.to_string()))?;
    println!("listening on {local}");
    let clock = TokioClock::new();
    let timeouts = Timeouts::DEFAULT;
    // Listening is not a phase: wait for a client as long as it takes (bounded by the caller).
    let (stream, peer) = listener
        .accept()
        .await
        .map_err(|e| Failure::Run(format!("accept: {e}")))?;
    let mut stream = Stream(stream);
    let report = serve(&mut stream, FromStd(file), &clock, timeouts)
        .await
        .map_err(|e| Failure::Run(format!("{peer}: {e}")))?;
    let text = report.reply.kept();
    println!(
        "Message from client: {}",
        String::from_utf8_lossy(text.strip_suffix(b"\0").unwrap_or(text))
    );
    println!(
        "sent {} bytes to {peer} in {:.3} s; FIN to reply {:.3} s",
        report.bytes,
        report.duration().total_micros() as f64 / 1e6,
        (report.reply_at - report.fin_queued_at).total_micros() as f64 / 1e6,
    );
    Ok(())
}

async fn client(args: &[String]) -> Result<(), Failure> {
    let (mut wait, mut rest) = (0u64, Vec::new());
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--wait" => {
                wait = it
                    .next()
                    .and_then(|s| s.parse().ok())
                    .ok_or(Failure::Usage("--wait needs seconds".into()))?
            }
            _ => rest.push(arg.clone()),
        }
    }
    let [host, port, out] = &rest[..] else {
        return Err(Failure::Usage("client needs HOST PORT OUT".into()));
    };
    let addr = format!("{host}:{port}");
    let timeouts = Timeouts::DEFAULT;
    let give_up = Instant::now() + Duration::from_secs(wait);
    let stream = loop {
        let connect = tokio::net::TcpStream::connect(&addr);
        let limit = Duration::from_micros(timeouts.connect.total_micros());
        match tokio::time::timeout(limit, connect).await {
            Ok(Ok(stream)) => break stream,
            Ok(Err(e))
                if e.kind() == std::io::ErrorKind::ConnectionRefused
                    && Instant::now() < give_up =>
            {
                tokio::time::sleep(Duration::from_millis(50)).await
            }
            Ok(Err(e)) => return Err(Failure::Run(format!("connect {addr}: {e}"))),
            Err(_) => return Err(Failure::Run(format!("connect {addr}: timed out"))),
        }
    };
    let partial = format!("{out}.partial");
    let sink = File::create(&partial)
        .map_err(|e| Failure::Run(format!("cannot create {partial}: {e}")))?;
    let clock = TokioClock::new();
    let mut stream = Stream(stream);
    match fetch(&mut stream, FromStd(sink), &clock, timeouts).await {
        Ok(report) => {
            std::fs::rename(&partial, out)
                .map_err(|e| Failure::Run(format!("rename {partial} to {out}: {e}")))?;
            println!(
                "received {} bytes in {:.3} s; replied \"Thank you\\0\"",
                report.bytes,
                report.transfer_time().total_micros() as f64 / 1e6
            );
            Ok(())
        }
        Err(e) => Err(Failure::Run(format!(
            "{addr}: {e}; the {} bytes received are in {partial}",
            e.bytes()
        ))),
    }
}
