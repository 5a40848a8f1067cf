//! The half-close file transfer, server and client in one smoltcp interface, in memory.
//!
//! ```text
//! cargo run --release --example loopback                 # sends this very source file
//! cargo run --release --example loopback -- FILE         # sends FILE
//! cargo run --release --example loopback -- --trace      # shows every segment
//! cargo run --release --example loopback -- --svg ladder.svg --graph graph.svg   # draws them
//! ```
//!
//! The copy is written to `receive.dat` (or `-o PATH`). Time inside the network is simulated
//! (`halfclose::clock::SimClock`): the clock jumps to the next timer whenever no packet waits,
//! so nothing ever waits on a real timer; the throughput shown is the wall clock's, a figure for
//! the eye, not a benchmark (that is the maintainers' `bench`, in `tools/`).

mod common;

use std::path::PathBuf;
use std::process::ExitCode;
use std::task::Poll;

use clap::Parser;
use common::files::{self, Input, Output, SharedOutput};
use common::picture;
use common::trace::Trace;
use halfclose::Timeouts;
use halfclose::client::{self, Client, Connect};
use halfclose::clock::SimClock;
use halfclose::device::Loopback;
use halfclose::io::{ThreadedSink, ThreadedSource};
use halfclose::server::Server;
use smoltcp::iface::{Config, Interface, SocketSet, SocketStorage};
use smoltcp::phy::Medium;
use smoltcp::socket::tcp;
use smoltcp::wire::{HardwareAddress, IpAddress, IpCidr};

/// Largest IP packet: one segment carries up to 65495 bytes of the file.
const MTU: usize = 65535;
/// Packet slots in the loopback ring.
const SLOTS: usize = 8;
/// Each socket's receive and transmit buffer.
const BUFFER: usize = 256 * 1024;

const SERVER: IpAddress = IpAddress::v4(127, 0, 0, 1);
const PORT: u16 = halfclose::DEFAULT_PORT;
const CLIENT_PORT: u16 = 49152;

/// Sends FILE from a smoltcp server to a smoltcp client in one process, in memory; the client
/// writes the copy, replies "Thank you\0", and the server prints the reply.
#[derive(Parser, Debug)]
#[command(name = "loopback")]
struct Args {
    /// The file to send (a regular file)
    #[arg(default_value = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/loopback.rs"))]
    file: PathBuf,
    /// Where the client writes the copy (replaced only after a complete transfer)
    #[arg(short, long, value_name = "PATH", default_value = "receive.dat")]
    output: PathBuf,
    /// Print every segment: server | client, and both TCP states after it
    #[arg(long)]
    trace: bool,
    /// Draw the exchange as a ladder diagram (SVG) to PATH
    #[arg(long, value_name = "PATH")]
    svg: Option<PathBuf>,
    /// Draw the time-sequence graph (SVG) to PATH
    #[arg(long, value_name = "PATH")]
    graph: Option<PathBuf>,
}

fn main() -> ExitCode {
    let args = Args::parse();
    common::init_log(false);
    common::exit_with("loopback", run(&args))
}

fn run(args: &Args) -> Result<(), String> {
    let (svg, graph) = (args.svg.as_deref(), args.graph.as_deref());
    picture::check_paths(&[svg, graph], &[&args.file, &args.output])?;
    let (source, len) = Input::new(&args.file)?;
    let read_errors = source.errors();
    // The files are read and written on threads of their own, overlapping the protocol's work.
    let source = ThreadedSource::new(source);
    let output = SharedOutput::new(Output::create(&args.output, &[&args.file])?);

    // Memory cannot corrupt a packet: no checksums, as in smoltcp's own `phy::Loopback`.
    let mut device = Box::new(Loopback::<MTU, SLOTS>::new(Medium::Ip).with_checksums(false));
    let mut clock = SimClock::new().with_limit(std::time::Duration::from_secs(3600));
    let mut iface = Interface::new(Config::new(HardwareAddress::Ip), &mut *device, clock.now());
    iface.update_ip_addrs(|addrs| {
        let _ = addrs.push(IpCidr::new(SERVER, 8));
    });

    let mut storage: [SocketStorage; 2] = Default::default();
    let mut sockets = SocketSet::new(&mut storage[..]);
    let mut buffers = vec![0u8; 4 * BUFFER];
    let (server_buffers, client_buffers) = buffers.split_at_mut(2 * BUFFER);
    let server_socket = sockets.add(new_socket(server_buffers, BUFFER));
    // The client accepts no receive buffer that would scale its window.
    let client_socket = sockets.add(new_socket(client_buffers, client::MAX_RECEIVE_BUFFER));
    let drawn = args.svg.is_some() || args.graph.is_some();
    let mut trace = (args.trace || drawn).then(|| {
        let title = format!("loopback: {len} bytes, server and client in memory");
        let (server, client) = (server_socket, client_socket);
        Trace::new(
            server,
            client,
            (SERVER, PORT),
            CLIENT_PORT,
            args.trace,
            title,
        )
    });

    let timeouts = Timeouts::DEFAULT;
    let mut server = Server::listen(&mut sockets, [server_socket], PORT, source, timeouts)
        .map_err(|e| e.to_string())?;
    let to = Connect::to((SERVER, PORT)).from_port(CLIENT_PORT);
    let sink = ThreadedSink::new(output.clone());
    let now = clock.now();
    let mut client = Client::connect(iface.context(), &mut sockets, client_socket, to, sink, now)
        .map_err(|e| e.to_string())?;

    let started = std::time::Instant::now();
    let (mut served, mut fetched) = (None, None);
    let ended = loop {
        let now = clock.now();
        match &mut trace {
            Some(trace) => trace.poll(now, &mut iface, &mut device, &mut sockets),
            None => _ = iface.poll(now, &mut *device, &mut sockets),
        }
        if let Some(result) = server.poll(now, &mut sockets).into_iter().next() {
            served = Some(result);
        }
        if fetched.is_none()
            && let Poll::Ready(result) = client.poll(now, &mut sockets)
        {
            fetched = Some(result);
        }
        if served.is_some() && fetched.is_some() {
            break Ok(());
        }
        // Stays put while a packet waits in the device; otherwise jumps to the next timer.
        let deadlines = [server.poll_at(), client.deadline()];
        if let Err(stalled) = clock.advance(&mut iface, &sockets, &*device, deadlines) {
            break Err(stalled.to_string());
        }
    };
    let wall = started.elapsed();
    // Dropping the client ends its writing thread, which lets the output go.
    drop(client);
    let settled = files::settle(ended, served, fetched, (&args.file, &read_errors), output);
    // Drawn whatever the outcome (a failed run is the one worth looking at), after the copy
    // is settled, so that a picture that cannot be written costs no file.
    let drawn = trace.map_or(Ok(()), |trace| picture::draw(trace.exchange(), svg, graph));
    let (served, fetched) = settled?;
    drawn?;

    let reply = served.reply.kept();
    let reply = std::str::from_utf8(reply.strip_suffix(b"\0").unwrap_or(reply)).unwrap_or("?");
    println!("Message from client: {reply}");
    let secs = wall.as_secs_f64();
    let (bytes, mbps) = (fetched.bytes, fetched.bytes as f64 / secs.max(1e-9) / 1e6);
    let (from, to) = (args.file.display(), args.output.display());
    let timing = served.reply_timing;
    println!(
        "{bytes} bytes from {from} to {to} in {secs:.3} s ({mbps:.1} MB/s); reply {timing} (simulated)"
    );
    Ok(())
}

/// A socket over half of `buffers` each way, at most `rx_max` bytes to receive. No delayed ACK:
/// on a loopback an ACK costs nothing and a delayed one only stalls the end of the transfer.
fn new_socket(buffers: &mut [u8], rx_max: usize) -> tcp::Socket<'_> {
    let (rx, tx) = buffers.split_at_mut(buffers.len() / 2);
    let rx_len = rx.len().min(rx_max);
    let rx = &mut rx[..rx_len];
    let mut socket = tcp::Socket::new(tcp::SocketBuffer::new(rx), tcp::SocketBuffer::new(tx));
    socket.set_ack_delay(None);
    socket
}
