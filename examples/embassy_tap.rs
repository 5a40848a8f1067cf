//! The async transfer on embassy-net, over a Linux TAP device: `halfclose::asynch::{serve, fetch}`
//! on embassy-net's `TcpSocket` (smoltcp 0.13 inside), driven by `embassy-executor` on std and
//! timed by `embassy-time`. The same library code runs on a microcontroller.
//!
//! ```text
//! embassy_tap server [--tap NAME] [--addr CIDR] [--port P] [--handshake S] FILE
//!     serve FILE to one client on port P (7891), print its reply; a handshake not finished
//!     within S seconds (10) is aborted and the socket listens again
//! embassy_tap client [--tap NAME] [--addr CIDR] [--peer ADDR] [--port P] [--rx BYTES] [--unclamped] [--wait S] OUT
//!     fetch from ADDR:P (192.168.69.100:7891) into OUT (OUT.partial until complete); retry a
//!     refused connect for up to S seconds; BYTES of receive buffer offered (65536; at most
//!     65535 are used, see `asynch::embassy::client_socket`)
//! ```
//!
//! Defaults: TAP `tap0`, our address 192.168.69.1/24. Needs CAP_NET_ADMIN (see the README).
//! Exit 0 on success, 1 on a failed transfer, 2 on a usage error.

mod common;

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::exit;

use clap::{Parser, Subcommand, value_parser};
use common::cli::{self, Seconds};
use common::files::{open_input, partial_path};
use embassy_executor::Spawner;
use embassy_net::tcp::TcpSocket;
use embassy_net::{Config, Ipv4Address, Ipv4Cidr, Runner, StackResources, StaticConfigV4};
use embassy_net_tuntap::TunTapDevice;
use embassy_time::{Duration, Instant, Timer};
use halfclose::asynch::embassy::{EmbassyClock, accept, client_socket, connect};
use halfclose::asynch::{fetch, serve};
use halfclose::io::FromStd;
use halfclose::{DEFAULT_PORT, Error, Timeouts};

/// The async transfer on embassy-net, over a Linux TAP device.
#[derive(Parser, Debug)]
#[command(name = "embassy_tap")]
struct Args {
    #[command(subcommand)]
    role: Role,
}

#[derive(Subcommand, Debug)]
enum Role {
    /// Serve FILE to one client, print its reply
    Server {
        #[command(flatten)]
        net: Net,
        /// Seconds a handshake may take before it is aborted and the socket listens again
        #[arg(long, value_name = "S", allow_negative_numbers = true, default_value_t = Seconds(Timeouts::DEFAULT.handshake))]
        handshake: Seconds,
        /// The file to send
        file: PathBuf,
    },
    /// Fetch from the server into OUT (OUT.partial until complete), reply "Thank you\0"
    Client {
        #[command(flatten)]
        net: Net,
        /// The server
        #[arg(long, value_name = "ADDR", default_value = "192.168.69.100", value_parser = ipv4_unicast)]
        peer: Ipv4Address,
        /// Bytes of receive buffer offered; at most 65535 are used unless --unclamped
        #[arg(long, value_name = "BYTES", default_value_t = 65536, value_parser = value_parser!(u64).range(1..=(1 << 30)))]
        rx: u64,
        /// Offer the whole --rx buffer (a plain `TcpSocket::new`), to show `connect` refusing it
        #[arg(long)]
        unclamped: bool,
        /// Retry a refused connect for up to S seconds (default: no retry)
        #[arg(long, value_name = "S", allow_negative_numbers = true, value_parser = cli::wait)]
        wait: Option<Seconds>,
        /// Where to write the file
        out: PathBuf,
    },
}

/// The options both roles take.
#[derive(clap::Args, Debug)]
struct Net {
    /// The TAP device; it must exist and be up (`ip tuntap add dev tap0 mode tap`)
    #[arg(long, value_name = "NAME", default_value = "tap0", value_parser = cli::interface_name)]
    tap: String,
    /// Our address and prefix on it
    #[arg(long, value_name = "ADDR/PREFIX", default_value = "192.168.69.1/24", value_parser = ipv4_interface)]
    addr: Ipv4Cidr,
    /// TCP port
    #[arg(long, default_value_t = DEFAULT_PORT, value_parser = value_parser!(u16).range(1..))]
    port: u16,
}

/// Our address and prefix, checked as the other TAP programs check it; IPv4 (embassy-net is
/// built without IPv6 here).
fn ipv4_interface(text: &str) -> Result<Ipv4Cidr, String> {
    match cli::interface_address(text)? {
        smoltcp::wire::IpCidr::Ipv4(v4) => Ok(Ipv4Cidr::new(v4.address(), v4.prefix_len())),
        #[allow(unreachable_patterns)]
        _ => Err(format!("{text} is not IPv4: this program speaks IPv4 only")),
    }
}

/// A peer's unicast IPv4 address.
fn ipv4_unicast(text: &str) -> Result<Ipv4Address, String> {
    match cli::unicast(text)? {
        smoltcp::wire::IpAddress::Ipv4(v4) => Ok(v4),
        #[allow(unreachable_patterns)]
        _ => Err(format!("{text} is not IPv4: this program speaks IPv4 only")),
    }
}

/// What the program does once the stack is up.
enum Job {
    Serve {
        handshake: Seconds,
        file: File,
    },
    Fetch {
        remote: (Ipv4Address, u16),
        rx: usize,
        unclamped: bool,
        wait: Duration,
        out: PathBuf,
    },
}

/// A command-line duration as embassy-time's.
fn embassy_duration(seconds: Seconds) -> Duration {
    Duration::from_micros(seconds.0.total_micros())
}

#[embassy_executor::task]
async fn net_task(mut runner: Runner<'static, TunTapDevice>) -> ! {
    runner.run().await
}

#[embassy_executor::main]
async fn main(spawner: Spawner) {
    // A usage error ends here with clap's message and exit 2, before any device is opened.
    let args = Args::parse();
    // The file to send is opened before the device: a regular file only (a directory or FIFO
    // would fail late or block).
    let (net, job) = match args.role {
        Role::Server {
            net,
            handshake,
            file,
        } => match open_input(&file) {
            Ok(file) => (net, Job::Serve { handshake, file }),
            Err(e) => {
                eprintln!("embassy_tap: {e}");
                exit(1)
            }
        },
        Role::Client {
            net,
            peer,
            rx,
            unclamped,
            wait,
            out,
        } => {
            let job = Job::Fetch {
                remote: (peer, net.port),
                // At most 1 GiB (the parser's limit): this fits any usize a host has.
                rx: usize::try_from(rx).unwrap_or(usize::MAX),
                unclamped,
                wait: wait.map_or(Duration::from_ticks(0), embassy_duration),
                out,
            };
            (net, job)
        }
    };
    let device = match TunTapDevice::new(&net.tap) {
        Ok(device) => device,
        Err(e) => {
            eprintln!("embassy_tap: cannot open TAP device {}: {e}", net.tap);
            exit(1)
        }
    };
    let config = Config::ipv4_static(StaticConfigV4 {
        address: net.addr,
        gateway: None,
        dns_servers: Default::default(),
    });
    // The stack lives as long as the program: a one-time allocation, leaked on purpose.
    let resources = Box::leak(Box::new(StackResources::<2>::new()));
    let seed = Instant::now().as_ticks() ^ u64::from(std::process::id());
    let (stack, runner) = embassy_net::new(device, config, resources, seed);
    spawner.spawn(net_task(runner).expect("one net task"));
    stack.wait_config_up().await;

    let code = match job {
        Job::Serve { handshake, file } => run_server(stack, &net, handshake, file).await,
        Job::Fetch {
            remote,
            rx,
            unclamped,
            wait,
            out,
        } => run_client(stack, remote, rx, unclamped, wait, &out).await,
    };
    exit(code)
}

async fn run_server(
    stack: embassy_net::Stack<'static>,
    net: &Net,
    handshake: Seconds,
    file: File,
) -> i32 {
    let (mut rx, mut tx) = (vec![0u8; 65535], vec![0u8; 65536]);
    let mut socket = TcpSocket::new(stack, &mut rx, &mut tx);
    // `serve` keeps the socket in TIME-WAIT for `linger` (8 s by default, to re-acknowledge a FIN
    // whose last ACK was lost). This program serves one client and ends: 100 ms lets the ACK of
    // the client's FIN leave (smoltcp may delay it by 10 ms).
    let timeouts = Timeouts {
        linger: smoltcp::time::Duration::from_millis(100),
        handshake: handshake.0,
        ..Timeouts::DEFAULT
    };
    let clock = EmbassyClock;
    println!("listening on {}:{}", net.addr.address(), net.port);
    let result = match accept(&mut socket, net.port, &clock, timeouts).await {
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

async fn run_client(
    stack: embassy_net::Stack<'static>,
    remote: (Ipv4Address, u16),
    rx: usize,
    unclamped: bool,
    wait: Duration,
    out: &Path,
) -> i32 {
    let partial = partial_path(out);
    let sink = match File::create(&partial) {
        Ok(file) => file,
        Err(e) => {
            eprintln!("embassy_tap: cannot create {}: {e}", partial.display());
            return 1;
        }
    };
    let (mut rx, mut tx) = (vec![0u8; rx], vec![0u8; 4096]);
    let clock = EmbassyClock;
    let timeouts = Timeouts::DEFAULT;
    let give_up = Instant::now() + wait;
    let mut socket = if unclamped {
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
            if let Err(e) = std::fs::rename(&partial, out) {
                eprintln!(
                    "embassy_tap: rename {} to {}: {e}",
                    partial.display(),
                    out.display()
                );
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
                "embassy_tap: the {} bytes received are in {}",
                e.bytes(),
                partial.display()
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
