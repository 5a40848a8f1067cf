//! The half-close file transfer, server and client in one smoltcp interface, in memory.
//!
//! ```text
//! cargo run --release --example loopback                 # sends this very source file
//! cargo run --release --example loopback -- FILE         # sends FILE
//! cargo run --release --example loopback -- --trace      # shows every segment
//! ```
//!
//! The copy is written to `receive.dat` (or `-o PATH`). Time inside the network is simulated:
//! the clock jumps to the next timer whenever nothing is in flight, so nothing ever waits on a
//! real timer; throughput is measured on the wall clock.

mod common;

use std::ops::ControlFlow;
use std::path::PathBuf;
use std::process::ExitCode;
use std::task::Poll;

use clap::Parser;
use common::drive::{self, Driver};
use common::files::{Input, Output, SharedOutput};
use halfclose::device::Loopback;
use halfclose::io::{ThreadedSink, ThreadedSource};
use halfclose::segment::Segment;
use halfclose::{Error, Timeouts, client, server};
use smoltcp::iface::{Config, Interface, SocketHandle, SocketSet, SocketStorage};
use smoltcp::phy::Medium;
use smoltcp::socket::tcp;
use smoltcp::time::{Duration, Instant};
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
}

fn main() -> ExitCode {
    let args = Args::parse();
    common::init_log(false);
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("loopback: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: &Args) -> Result<(), String> {
    let (source, _) = Input::new(&args.file)?;
    let read_errors = source.errors();
    // The files are read and written on threads of their own, overlapping the protocol's work.
    let source = ThreadedSource::new(source);
    let output = SharedOutput::new(Output::create(&args.output, &[&args.file])?);

    let mut sim = Simulated {
        // Memory cannot corrupt a packet: no checksums, as in smoltcp's own `phy::Loopback`.
        device: Box::new(Loopback::new(Medium::Ip).with_checksums(false)),
        now: Instant::ZERO,
        trace: None,
    };
    let mut iface = Interface::new(Config::new(HardwareAddress::Ip), &mut *sim.device, sim.now);
    iface.update_ip_addrs(|addrs| {
        let _ = addrs.push(IpCidr::new(SERVER, 8));
    });

    let mut storage: [SocketStorage; 2] = Default::default();
    let mut sockets = SocketSet::new(&mut storage[..]);
    let mut storage = vec![0u8; 4 * BUFFER + PAGE];
    let buffers = half_page_aligned(&mut storage, 4 * BUFFER);
    let (server_bufs, client_bufs) = buffers.split_at_mut(2 * BUFFER);
    let server_socket = sockets.add(new_socket(server_bufs, BUFFER));
    // The client accepts no receive buffer that would scale its window.
    let client_socket = sockets.add(new_socket(client_bufs, client::MAX_RECEIVE_BUFFER));
    if args.trace {
        sim.trace = Some(Trace::new(server_socket, client_socket));
    }

    let mut server = server::Server::listen(
        &mut sockets,
        [server_socket],
        PORT,
        source,
        Timeouts::DEFAULT,
    )
    .map_err(|e| e.to_string())?;
    let mut client = client::Client::connect(
        iface.context(),
        &mut sockets,
        client_socket,
        halfclose::client::Connect::to((SERVER, PORT)).from_port(CLIENT_PORT),
        ThreadedSink::new(output.clone()),
        sim.now,
    )
    .map_err(|e| e.to_string())?;

    let started = std::time::Instant::now();
    let deadline = Instant::ZERO + Duration::from_secs(3600);
    let (mut served, mut fetched) = (None, None);
    let ended = drive::run(&mut sim, &mut iface, &mut sockets, |now, sockets| {
        if let Some(result) = server.poll(now, sockets).into_iter().next() {
            served = Some(result);
        }
        if fetched.is_none()
            && let Poll::Ready(result) = client.poll(now, sockets)
        {
            fetched = Some(result);
        }
        match (&served, &fetched) {
            (Some(_), Some(_)) => ControlFlow::Break(Ok(())),
            _ if now > deadline => {
                ControlFlow::Break(Err("no end after an hour of simulated time".to_string()))
            }
            _ => ControlFlow::Continue(drive::earliest(server.poll_at(), client.deadline())),
        }
    });
    let wall = started.elapsed();
    let result = match (ended, served, fetched) {
        (Err(e) | Ok(Err(e)), ..) => Err(e),
        (Ok(Ok(())), Some(Ok(served)), Some(Ok(fetched))) => Ok((served, fetched)),
        // The root cause first: a disk error, not the reset it causes on the other side. The
        // count is what reached the file, not what the client handed to the writing thread.
        (Ok(Ok(())), _, Some(Err(e @ Error::Sink { .. }))) => {
            Err(output.error().map_or(e.to_string(), |os| {
                format!("{os} after {} bytes", output.written())
            }))
        }
        (Ok(Ok(())), Some(Err(e @ Error::Source { .. })), _) => {
            Err(
                Input::error(&read_errors, &args.file).map_or(e.to_string(), |os| {
                    format!("{os} after {} bytes", e.bytes())
                }),
            )
        }
        (Ok(Ok(())), _, Some(Err(e))) => Err(format!("client: {e}")),
        (Ok(Ok(())), Some(Err(e)), _) => Err(format!("server: {e}")),
        (Ok(Ok(())), None, _) | (Ok(Ok(())), _, None) => {
            Err("the transfer ended without a result".to_string())
        }
    };
    // Dropping the client ends its writing thread, which lets the output go.
    drop(client);
    let output = output.into_inner()?;
    let (served, fetched) = match result {
        Ok(reports) => reports,
        Err(e) => return Err(format!("{e}; {}", output.abandon())),
    };
    output.commit()?;

    let reply = served.reply.kept();
    let reply = std::str::from_utf8(reply.strip_suffix(b"\0").unwrap_or(reply)).unwrap_or("?");
    println!("Message from client: {reply}");
    let secs = wall.as_secs_f64();
    println!(
        "{} bytes from {} to {} in {:.3} s ({:.1} MB/s); reply {} (simulated)",
        fetched.bytes,
        args.file.display(),
        args.output.display(),
        secs,
        fetched.bytes as f64 / secs.max(1e-9) / 1e6,
        served.reply_timing,
    );
    Ok(())
}

/// The in-memory device on a simulated clock, which jumps to the next deadline whenever
/// nothing is in flight: nothing ever waits on a real timer.
struct Simulated {
    device: Box<Loopback<MTU, SLOTS>>,
    now: Instant,
    trace: Option<Trace>,
}

impl Driver for Simulated {
    type Device = Loopback<MTU, SLOTS>;

    fn device(&mut self) -> &mut Self::Device {
        &mut self.device
    }

    fn now(&mut self) -> Instant {
        self.now
    }

    fn wait(&mut self, until: Option<Instant>) -> Result<(), String> {
        if self.device.queued() == 0 {
            self.now = until
                .unwrap_or(self.now + Duration::from_millis(1))
                .max(self.now);
        }
        Ok(())
    }

    fn poll(&mut self, now: Instant, iface: &mut Interface, sockets: &mut SocketSet<'_>) {
        let Some(trace) = &mut self.trace else {
            iface.poll(now, &mut *self.device, sockets);
            return;
        };
        // Deliver packets one by one so each line shows both TCP states right after it.
        while let Some(packet) = self.device.peek() {
            let segment = Segment::parse(Medium::Ip, packet);
            iface.poll_ingress_single(now, &mut *self.device, sockets);
            if let Some(segment) = segment {
                trace.line(&segment, sockets);
            }
        }
        iface.poll_egress(now, &mut *self.device, sockets);
    }
}

const PAGE: usize = 4096;

/// `len` bytes of `storage` starting half-way into a page.
///
/// The file's bytes are copied by the kernel between its page cache (page-aligned, at file
/// offset `k`) and the socket ring buffers (at ring offset `k` modulo the ring's size, a multiple
/// of the page size). With a ring starting a few bytes into a page, as a fresh heap allocation
/// does, source and destination sit at nearly the same offset in their pages, the slow case of
/// `rep movsb`; half a page apart they copy at full speed.
fn half_page_aligned(storage: &mut [u8], len: usize) -> &mut [u8] {
    let misalign = storage.as_ptr() as usize % PAGE;
    let start = (PAGE / 2 + PAGE - misalign) % PAGE;
    &mut storage[start..start + len]
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

/// Prints segments in two columns, sequence numbers relative to each side's SYN.
struct Trace {
    server: SocketHandle,
    client: SocketHandle,
    server_isn: Option<u32>,
    client_isn: Option<u32>,
    count: usize,
}

impl Trace {
    fn new(server: SocketHandle, client: SocketHandle) -> Self {
        let (left, right) = (
            format!("server {SERVER}:{PORT}"),
            format!("client {SERVER}:{CLIENT_PORT}"),
        );
        println!(
            "{:>4}  {left:<36} {right:<36}  {:<13} client state",
            "#", "server state"
        );
        Trace {
            server,
            client,
            server_isn: None,
            client_isn: None,
            count: 0,
        }
    }

    fn line(&mut self, seg: &Segment, sockets: &SocketSet<'_>) {
        let from_server = seg.src.port == PORT;
        let (own, peer) = if from_server {
            (&mut self.server_isn, self.client_isn)
        } else {
            (&mut self.client_isn, self.server_isn)
        };
        if seg.syn {
            *own = Some(seg.seq);
        }
        let rel = |n: u32, isn: Option<u32>| n.wrapping_sub(isn.unwrap_or(n));
        let mut text = format!("{} seq {}", seg.flags(), rel(seg.seq, *own));
        if let Some(ack) = seg.ack {
            text += &format!(" ack {}", rel(ack, peer));
        }
        text += &format!(" len {}", seg.len());
        let (left, right) = if from_server {
            (format!("{text} -->"), String::new())
        } else {
            (String::new(), format!("<-- {text}"))
        };
        self.count += 1;
        println!(
            "{:>4}  {:<36} {:<36}  {:<13} {}",
            self.count,
            left,
            right,
            sockets.get::<tcp::Socket>(self.server).state().to_string(),
            sockets.get::<tcp::Socket>(self.client).state(),
        );
    }
}
