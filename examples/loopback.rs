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

use std::fs::File;
use std::path::PathBuf;
use std::process::ExitCode;
use std::task::Poll;

use halfclose::device::Loopback;
use halfclose::io::{FileSource, FromStd};
use halfclose::segment::Segment;
use halfclose::{Timeouts, client, server};
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

struct Args {
    file: PathBuf,
    output: PathBuf,
    trace: bool,
}

fn usage() -> String {
    "usage: loopback [FILE] [-o OUTPUT] [--trace]\n\
     \n  FILE         file to send (default: this example's own source)\
     \n  -o OUTPUT    where the client writes the copy (default: receive.dat)\
     \n  --trace      print every segment: server | client, and both TCP states after it"
        .to_string()
}

fn parse_args() -> Result<Option<Args>, String> {
    let mut args = Args {
        file: PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/examples/loopback.rs")),
        output: PathBuf::from("receive.dat"),
        trace: false,
    };
    let mut file_given = false;
    let mut it = std::env::args_os().skip(1);
    while let Some(arg) = it.next() {
        match arg.to_str() {
            Some("-h" | "--help") => return Ok(None),
            Some("--trace") => args.trace = true,
            Some("-o" | "--output") => {
                args.output = it.next().ok_or("-o needs a path")?.into();
            }
            Some(flag) if flag.starts_with('-') => return Err(format!("unknown option {flag}")),
            _ if file_given => return Err("only one FILE can be sent".into()),
            _ => {
                args.file = arg.into();
                file_given = true;
            }
        }
    }
    Ok(Some(args))
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(Some(args)) => args,
        Ok(None) => {
            println!("{}", usage());
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("error: {e}\n{}", usage());
            return ExitCode::from(2);
        }
    };
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: &Args) -> Result<(), String> {
    let source = FileSource::new(&args.file)
        .map_err(|e| format!("cannot read {}: {e}", args.file.display()))?;
    let sink = File::create(&args.output)
        .map_err(|e| format!("cannot create {}: {e}", args.output.display()))?;

    // Memory cannot corrupt a packet: no checksums, as in smoltcp's own `phy::Loopback`.
    let mut device = Box::new(Loopback::<MTU, SLOTS>::new(Medium::Ip).with_checksums(false));
    let mut now = Instant::ZERO;
    let mut iface = Interface::new(Config::new(HardwareAddress::Ip), &mut *device, now);
    iface.update_ip_addrs(|addrs| {
        addrs.push(IpCidr::new(SERVER, 8)).unwrap();
    });

    let mut storage: [SocketStorage; 2] = Default::default();
    let mut sockets = SocketSet::new(&mut storage[..]);
    let mut storage = vec![0u8; 4 * BUFFER + PAGE];
    let buffers = half_page_aligned(&mut storage, 4 * BUFFER);
    let (server_bufs, client_bufs) = buffers.split_at_mut(2 * BUFFER);
    let server_socket = sockets.add(new_socket(server_bufs, BUFFER));
    // The client accepts no receive buffer that would scale its window.
    let client_socket = sockets.add(new_socket(client_bufs, client::MAX_RECEIVE_BUFFER));

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
        sockets.get_mut::<tcp::Socket>(client_socket),
        (SERVER, PORT),
        CLIENT_PORT,
        FromStd(sink),
        now,
        Timeouts::DEFAULT,
    )
    .map_err(|e| e.to_string())?;

    let mut trace = args.trace.then(Trace::new);
    let started = std::time::Instant::now();
    let deadline = now + Duration::from_secs(3600);
    let mut served = None;
    let mut fetched = None;
    while served.is_none() || fetched.is_none() {
        match &mut trace {
            // Deliver packets one by one so each line shows both TCP states right after it.
            Some(trace) => {
                while let Some(packet) = device.peek() {
                    let segment = Segment::parse(Medium::Ip, packet);
                    iface.poll_ingress_single(now, &mut *device, &mut sockets);
                    if let Some(segment) = segment {
                        trace.line(&segment, &sockets, server_socket, client_socket);
                    }
                }
                iface.poll_egress(now, &mut *device, &mut sockets);
            }
            None => {
                iface.poll(now, &mut *device, &mut sockets);
            }
        }
        step(
            now,
            &mut sockets,
            &mut server,
            &mut client,
            client_socket,
            &mut served,
            &mut fetched,
        );
        if device.queued() == 0 {
            now += iface
                .poll_delay(now, &sockets)
                .unwrap_or(Duration::from_millis(1));
        }
        if now > deadline {
            return Err("no end after an hour of simulated time".into());
        }
    }
    let wall = started.elapsed();

    let served = served.unwrap().map_err(|e| format!("server: {e}"))?;
    let fetched = fetched.unwrap().map_err(|e| format!("client: {e}"))?;
    let reply = served.reply.kept();
    let reply = std::str::from_utf8(reply.strip_suffix(b"\0").unwrap_or(reply)).unwrap_or("?");
    println!("Message from client: {reply}");
    let secs = wall.as_secs_f64();
    println!(
        "{} bytes from {} to {} in {:.3} s ({:.1} MB/s); FIN to reply {} simulated",
        fetched.bytes,
        args.file.display(),
        args.output.display(),
        secs,
        fetched.bytes as f64 / secs.max(1e-9) / 1e6,
        served.reply_after_fin(),
    );
    Ok(())
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

type Served = Option<Result<server::Report, halfclose::Error>>;
type Fetched = Option<Result<client::Report, halfclose::Error>>;

/// Let both state machines act on what the interface just did.
fn step(
    now: Instant,
    sockets: &mut SocketSet<'_>,
    server: &mut server::Server<FileSource, 1>,
    client: &mut client::Client<FromStd<File>>,
    client_socket: SocketHandle,
    served: &mut Served,
    fetched: &mut Fetched,
) {
    if let Some(result) = server.poll(now, sockets).into_iter().next() {
        *served = Some(result);
    }
    if fetched.is_none()
        && let Poll::Ready(result) = client.poll(now, sockets.get_mut::<tcp::Socket>(client_socket))
    {
        *fetched = Some(result);
    }
}

/// Prints segments in two columns, sequence numbers relative to each side's SYN.
struct Trace {
    server_isn: Option<u32>,
    client_isn: Option<u32>,
    count: usize,
}

impl Trace {
    fn new() -> Self {
        let (server, client) = (
            format!("server {SERVER}:{PORT}"),
            format!("client {SERVER}:{CLIENT_PORT}"),
        );
        println!(
            "{:>4}  {server:<36} {client:<36}  {:<13} client state",
            "#", "server state"
        );
        Trace {
            server_isn: None,
            client_isn: None,
            count: 0,
        }
    }

    fn line(
        &mut self,
        seg: &Segment,
        sockets: &SocketSet<'_>,
        server: SocketHandle,
        client: SocketHandle,
    ) {
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
            sockets.get::<tcp::Socket>(server).state().to_string(),
            sockets.get::<tcp::Socket>(client).state(),
        );
    }
}
