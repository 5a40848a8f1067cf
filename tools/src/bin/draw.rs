//! Draw a TCP connection of a pcap capture: its ladder diagram and time-sequence graph (SVG).
//!
//! ```text
//! cargo run --release -p halfclose-tools --bin draw -- CAPTURE.pcap --list
//! cargo run --release -p halfclose-tools --bin draw -- CAPTURE.pcap [--port N] --svg ladder.svg --graph graph.svg
//! ```
//!
//! The capture is ours (`tap_server --pcap`, `tap_client --pcap`) or one `tcpdump -w` took of
//! any two programs. Without `--port`, the first connection that opens in the capture is drawn.
//! A capture holds no socket's state: the ladder shows the states the segments imply.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use halfclose_tools::capture;
use halfclose_tools::picture;

/// Draws a TCP connection of a pcap capture as a ladder diagram and a time-sequence graph.
#[derive(Parser, Debug)]
#[command(name = "draw")]
struct Args {
    /// The capture (classic pcap: tcpdump's, or ours from --pcap)
    capture: PathBuf,
    /// Draw the first connection with this port at either end
    #[arg(long, value_name = "N")]
    port: Option<u16>,
    /// List the capture's TCP connections and draw nothing
    #[arg(long)]
    list: bool,
    /// Draw the connection as a ladder diagram (SVG) to PATH
    #[arg(long, value_name = "PATH")]
    svg: Option<PathBuf>,
    /// Draw its time-sequence graph (SVG) to PATH
    #[arg(long, value_name = "PATH")]
    graph: Option<PathBuf>,
}

fn main() -> ExitCode {
    match run(&Args::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("draw: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: &Args) -> Result<(), String> {
    let (svg, graph) = (args.svg.as_deref(), args.graph.as_deref());
    picture::check_paths(&[svg, graph], &[&args.capture])?;
    let path = args.capture.display();
    let bytes = std::fs::read(&args.capture).map_err(|e| format!("cannot read {path}: {e}"))?;
    let connections = capture::connections(&bytes).map_err(|e| format!("{path}: {e}"))?;
    if args.list {
        for (i, connection) in connections.iter().enumerate() {
            println!("{:>3}  {}", i + 1, connection.summary());
        }
        return Ok(());
    }
    let connection = match args.port {
        Some(port) => connections.iter().find(|c| c.has_port(port)),
        // The first that opens in the capture, or else the first seen.
        None => connections
            .iter()
            .find(|c| c.opens())
            .or(connections.first()),
    }
    .ok_or_else(|| match args.port {
        Some(port) => format!("{path}: no TCP connection with port {port} (--list shows them)"),
        None => format!("{path}: no TCP connection"),
    })?;
    // The file's name, not its path: the same capture draws the same picture anywhere.
    let name = args
        .capture
        .file_name()
        .unwrap_or_default()
        .to_string_lossy();
    let exchange = connection.exchange(&name);
    picture::draw(&exchange, svg, graph)?;
    println!("{}", connection.summary());
    Ok(())
}
