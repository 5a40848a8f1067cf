//! The async transfer on embassy-net, over a Linux TAP device: `halfclose::asynch::{serve, fetch}`
//! on embassy-net's `TcpSocket` (smoltcp 0.13 inside), driven by `embassy-executor` on std and
//! timed by `embassy-time`. The same library code runs on a microcontroller.
//!
//! ```text
//! embassy_tap server [--tap NAME] [--addr CIDR] [--port P] [--handshake SECS] FILE
//!     serve FILE to one client on port P (7891), print its reply; a handshake not finished
//!     within SECS (10) is aborted and the socket listens again
//! embassy_tap client [--tap NAME] [--addr CIDR] [--peer ADDR] [--port P] [--rx BYTES] [--wait SECS] OUT
//!     fetch from ADDR:P (192.168.69.100:7891) into OUT (OUT.partial until complete); retry a
//!     refused connect for up to SECS (0); BYTES of receive buffer offered (65536; at most 65535
//!     are used, see `asynch::embassy::client_socket`)
//! ```
//!
//! Defaults: TAP `tap0`, our address 192.168.69.1/24. Needs CAP_NET_ADMIN (see the README).
//! Exit 0 on success, 1 on a failed transfer, 2 on a usage error.

use std::fs::File;
use std::process::exit;
use std::str::FromStr;

use embassy_executor::Spawner;
use embassy_net::tcp::TcpSocket;
use embassy_net::{Config, Ipv4Address, Ipv4Cidr, Runner, StackResources, StaticConfigV4};
use embassy_net_tuntap::TunTapDevice;
use embassy_time::{Duration, Instant, Timer};
use halfclose::asynch::embassy::{EmbassyClock, accept, client_socket, connect};
use halfclose::asynch::{fetch, serve};
use halfclose::io::FromStd;
use halfclose::{DEFAULT_PORT, Error, Timeouts};

const USAGE: &str = "usage: embassy_tap server [--tap NAME] [--addr CIDR] [--port P] [--handshake SECS] FILE\n\
       embassy_tap client [--tap NAME] [--addr CIDR] [--peer ADDR] [--port P] [--rx BYTES] [--unclamped] [--wait SECS] OUT";

struct Args {
    server: bool,
    tap: String,
    addr: Ipv4Cidr,
    peer: Ipv4Address,
    port: u16,
    rx: usize,
    /// Offer the whole `rx` buffer (a plain `TcpSocket::new`), to show `connect` refusing it.
    unclamped: bool,
    wait: u64,
    handshake: u64,
    path: String,
}

fn parse_args() -> Result<Args, String> {
    fn parse<T: FromStr>(value: Option<String>, what: &str) -> Result<T, String> {
        let value = value.ok_or(format!("{what} needs a value"))?;
        value.parse().map_err(|_| format!("bad {what} {value:?}"))
    }
    let mut it = std::env::args().skip(1);
    let server = match it.next().as_deref() {
        Some("server") => true,
        Some("client") => false,
        _ => return Err("the first argument is server or client".into()),
    };
    let mut args = Args {
        server,
        tap: "tap0".into(),
        addr: Ipv4Cidr::new(Ipv4Address::new(192, 168, 69, 1), 24),
        peer: Ipv4Address::new(192, 168, 69, 100),
        port: DEFAULT_PORT,
        rx: 65536,
        unclamped: false,
        wait: 0,
        handshake: Timeouts::DEFAULT.handshake.secs(),
        path: String::new(),
    };
    let mut rest = Vec::new();
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--tap" => args.tap = parse(it.next(), "--tap")?,
            "--addr" => args.addr = parse(it.next(), "--addr")?,
            "--peer" => args.peer = parse(it.next(), "--peer")?,
            "--port" => args.port = parse(it.next(), "--port")?,
            "--rx" => args.rx = parse(it.next(), "--rx")?,
            "--unclamped" => args.unclamped = true,
            "--wait" => args.wait = parse(it.next(), "--wait")?,
            "--handshake" => args.handshake = parse(it.next(), "--handshake")?,
            flag if flag.starts_with('-') => return Err(format!("unknown option {flag}")),
            _ => rest.push(arg),
        }
    }
    let [path] = &rest[..] else {
        return Err("one FILE (server) or OUT (client) is needed".into());
    };
    if args.port == 0 || args.rx == 0 || args.handshake == 0 {
        return Err("the port, the receive buffer and the handshake limit must not be 0".into());
    }
    args.path = path.clone();
    Ok(args)
}

#[embassy_executor::task]
async fn net_task(mut runner: Runner<'static, TunTapDevice>) -> ! {
    runner.run().await
}

#[embassy_executor::main]
async fn main(spawner: Spawner) {
    let args = match parse_args() {
        Ok(args) => args,
        Err(e) => {
            eprintln!("embassy_tap: {e}\n{USAGE}");
            exit(2)
        }
    };
    let device = match TunTapDevice::new(&args.tap) {
        Ok(device) => device,
        Err(e) => {
            eprintln!("embassy_tap: cannot open TAP device {}: {e}", args.tap);
            exit(1)
        }
    };
    let config = Config::ipv4_static(StaticConfigV4 {
        address: args.addr,
        gateway: None,
        dns_servers: Default::default(),
    });
    // The stack lives as long as the program: a one-time allocation, leaked on purpose.
    let resources = Box::leak(Box::new(StackResources::<2>::new()));
    let seed = Instant::now().as_ticks() ^ u64::from(std::process::id());
    let (stack, runner) = embassy_net::new(device, config, resources, seed);
    spawner.spawn(net_task(runner).expect("one net task"));
    stack.wait_config_up().await;

    let code = if args.server {
        run_server(stack, &args).await
    } else {
        run_client(stack, &args).await
    };
    exit(code)
}

async fn run_server(stack: embassy_net::Stack<'static>, args: &Args) -> i32 {
    let file = match File::open(&args.path) {
        Ok(file) => file,
        Err(e) => {
            eprintln!("embassy_tap: cannot open {}: {e}", args.path);
            return 1;
        }
    };
    let (mut rx, mut tx) = (vec![0u8; 65535], vec![0u8; 65536]);
    let mut socket = TcpSocket::new(stack, &mut rx, &mut tx);
    // `serve` keeps the socket in TIME-WAIT for `linger` (8 s by default, to re-acknowledge a FIN
    // whose last ACK was lost). This program serves one client and ends: 100 ms lets the ACK of
    // the client's FIN leave (smoltcp may delay it by 10 ms).
    let timeouts = Timeouts {
        linger: smoltcp::time::Duration::from_millis(100),
        handshake: smoltcp::time::Duration::from_secs(args.handshake),
        ..Timeouts::DEFAULT
    };
    let clock = EmbassyClock;
    println!("listening on {}:{}", args.addr.address(), args.port);
    let result = match accept(&mut socket, args.port, &clock, timeouts).await {
        Ok(()) => serve(&mut socket, FromStd(file), &clock, timeouts).await,
        Err(e) => Err(e),
    };
    match result {
        Ok(report) => {
            let text = report.reply.kept();
            println!(
                "Message from client: {}",
                String::from_utf8_lossy(text.strip_suffix(b"\0").unwrap_or(text))
            );
            let fin_ack = report
                .fin_acked_at
                .map(|at| (at - report.fin_queued_at).total_micros() as f64 / 1e6);
            println!(
                "sent {} bytes in {:.3} s; FIN acknowledged after {:.3} s; FIN to reply {:.3} s",
                report.bytes,
                report.duration().total_micros() as f64 / 1e6,
                fin_ack.unwrap_or(f64::NAN),
                (report.reply_at - report.fin_queued_at).total_micros() as f64 / 1e6,
            );
            0
        }
        Err(e) => {
            fail(&mut socket, &e).await;
            1
        }
    }
}

async fn run_client(stack: embassy_net::Stack<'static>, args: &Args) -> i32 {
    let partial = format!("{}.partial", args.path);
    let sink = match File::create(&partial) {
        Ok(file) => file,
        Err(e) => {
            eprintln!("embassy_tap: cannot create {partial}: {e}");
            return 1;
        }
    };
    let (mut rx, mut tx) = (vec![0u8; args.rx], vec![0u8; 4096]);
    let clock = EmbassyClock;
    let timeouts = Timeouts::DEFAULT;
    let give_up = Instant::now() + Duration::from_secs(args.wait);
    let remote = (args.peer, args.port);
    let mut socket = if args.unclamped {
        TcpSocket::new(stack, &mut rx, &mut tx)
    } else {
        client_socket(stack, &mut rx, &mut tx)
    };
    println!("receive buffer {} bytes", socket.recv_capacity());
    let mut connected = connect(&mut socket, remote, &clock, timeouts).await;
    while connected == Err(Error::Refused) && Instant::now() < give_up {
        // A refused socket is CLOSED again and may connect anew.
        Timer::after(Duration::from_millis(100)).await;
        connected = connect(&mut socket, remote, &clock, timeouts).await;
    }
    let result = match connected {
        Ok(()) => fetch(&mut socket, FromStd(sink), &clock, timeouts).await,
        Err(e) => Err(e),
    };
    match result {
        Ok(report) => {
            if let Err(e) = std::fs::rename(&partial, &args.path) {
                eprintln!("embassy_tap: rename {partial} to {}: {e}", args.path);
                return 1;
            }
            println!(
                "received {} bytes in {:.3} s; replied \"Thank you\\0\", acknowledged",
                report.bytes,
                report.transfer_time().total_micros() as f64 / 1e6
            );
            0
        }
        Err(e) => {
            fail(&mut socket, &e).await;
            eprintln!(
                "embassy_tap: the {} bytes received are in {partial}",
                e.bytes()
            );
            1
        }
    }
}

/// Report `error`, reset the connection and let the RST leave before the program ends.
async fn fail(socket: &mut TcpSocket<'_>, error: &Error) {
    eprintln!("embassy_tap: {error}");
    socket.abort();
    let _ = embassy_time::with_timeout(Duration::from_secs(1), socket.flush()).await;
}
