//! The async transfer on tokio, over the kernel's TCP: `halfclose::asynch::{serve, fetch}` on a
//! `tokio::net::TcpStream`, the same code an embassy-net program runs on its `TcpSocket`.
//!
//! ```text
//! async_tokio server [--bind ADDR] PORT FILE   # serve FILE to one client, print its reply
//! async_tokio client [--wait S] HOST PORT OUT  # fetch into OUT (written as OUT.partial, renamed
//!                                              # when complete), reply "Thank you\0", close;
//!                                              # retry a refused connect for up to S seconds
//! ```
//!
//! Exit 0 on success, 1 on a failed transfer, 2 on a usage error.

mod common;

use std::fs::File;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::{Parser, Subcommand, value_parser};
use common::cli::{self, Seconds};
use common::files;
use halfclose::Timeouts;
use halfclose::asynch::tokio::{Stream, TokioClock};
use halfclose::asynch::{fetch, serve};
use halfclose::io::FromStd;

/// The async transfer on tokio, over the kernel's TCP.
#[derive(Parser, Debug)]
#[command(name = "async_tokio")]
struct Args {
    #[command(subcommand)]
    role: Role,
}

#[derive(Subcommand, Debug)]
enum Role {
    /// Serve FILE to one client, print its reply
    Server {
        /// The address to listen on
        #[arg(long, value_name = "ADDR", default_value = "127.0.0.1")]
        bind: IpAddr,
        /// The port to listen on (0: any free one, printed)
        port: u16,
        /// The file to send
        file: PathBuf,
    },
    /// Fetch into OUT (OUT.partial until complete), reply "Thank you\0", close
    Client {
        /// Retry a refused connect for up to S seconds (default: no retry)
        #[arg(long, value_name = "S", allow_negative_numbers = true, value_parser = cli::wait)]
        wait: Option<Seconds>,
        /// The server's address
        #[arg(value_parser = server_address)]
        host: IpAddr,
        /// The server's port
        #[arg(value_parser = value_parser!(u16).range(1..))]
        port: u16,
        /// Where to write the file
        out: PathBuf,
    },
}

/// A server's address: a unicast one.
fn server_address(text: &str) -> Result<IpAddr, String> {
    cli::unicast(text).map(IpAddr::from)
}

fn main() -> ExitCode {
    let args = Args::parse();
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
    let result = match args.role {
        Role::Server { bind, port, file } => {
            runtime.block_on(server(SocketAddr::new(bind, port), file))
        }
        Role::Client {
            wait,
            host,
            port,
            out,
        } => {
            let wait = wait.map_or(Duration::ZERO, |s| {
                Duration::from_micros(s.0.total_micros())
            });
            runtime.block_on(client(SocketAddr::new(host, port), wait, out))
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("async_tokio: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn server(bind: SocketAddr, path: PathBuf) -> Result<(), String> {
    // A regular file only: a directory or FIFO would fail late or block.
    let file = files::open_input(&path)?;
    let listener = tokio::net::TcpListener::bind(bind)
        .await
        .map_err(|e| format!("bind {bind}: {e}"))?;
    let local = listener.local_addr().map_err(|e| e.to_string())?;
    println!("listening on {local}");
    let clock = TokioClock::new();
    let timeouts = Timeouts::DEFAULT;
    // Listening is not a phase: wait for a client as long as it takes (bounded by the caller).
    let (stream, peer) = listener
        .accept()
        .await
        .map_err(|e| format!("accept: {e}"))?;
    let mut stream = Stream(stream);
    let report = serve(&mut stream, FromStd(file), &clock, timeouts)
        .await
        .map_err(|e| format!("{peer}: {e}"))?;
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

async fn client(addr: SocketAddr, wait: Duration, out: PathBuf) -> Result<(), String> {
    let timeouts = Timeouts::DEFAULT;
    let give_up = Instant::now() + wait;
    let stream = loop {
        let connect = tokio::net::TcpStream::connect(addr);
        let limit = Duration::from_micros(timeouts.connect.total_micros());
        match tokio::time::timeout(limit, connect).await {
            Ok(Ok(stream)) => break stream,
            Ok(Err(e))
                if e.kind() == std::io::ErrorKind::ConnectionRefused
                    && Instant::now() < give_up =>
            {
                tokio::time::sleep(Duration::from_millis(50)).await
            }
            Ok(Err(e)) => return Err(format!("connect {addr}: {e}")),
            Err(_) => return Err(format!("connect {addr}: timed out")),
        }
    };
    let partial = files::partial_path(&out);
    let sink =
        File::create(&partial).map_err(|e| format!("cannot create {}: {e}", partial.display()))?;
    let clock = TokioClock::new();
    let mut stream = Stream(stream);
    match fetch(&mut stream, FromStd(sink), &clock, timeouts).await {
        Ok(report) => {
            std::fs::rename(&partial, &out)
                .map_err(|e| format!("rename {} to {}: {e}", partial.display(), out.display()))?;
            println!(
                "received {} bytes in {:.3} s; replied \"Thank you\\0\"",
                report.bytes,
                report.transfer_time().total_micros() as f64 / 1e6
            );
            Ok(())
        }
        Err(e) => Err(format!(
            "{addr}: {e}; the {} bytes received are in {}",
            e.bytes(),
            partial.display()
        )),
    }
}
