//! Fetch a file over a Linux TAP device from an ordinary TCP server that half-closes after it,
//! then send it "Thank you".
//!
//! ```text
//! tap_client [OPTIONS] [--peer ADDR] [-o PATH]   (run with CAP_NET_ADMIN; see the README)
//! ```

mod tap_common;

use std::fs::File;
use std::path::PathBuf;
use std::process::ExitCode;
use std::task::Poll;

use halfclose::client::{Client, State};
use halfclose::io::FromStd;
use smoltcp::iface::{SocketSet, SocketStorage};
use smoltcp::socket::tcp;
use smoltcp::time::Instant;
use smoltcp::wire::IpAddress;
use tap_common::{COMMON_HELP, Common, Progress, parse, rate};

struct Args {
    common: Common,
    peer: IpAddress,
    output: PathBuf,
    local_port: u16,
}

fn usage() -> String {
    format!(
        "usage: tap_client [OPTIONS]\n\n\
         Connects to the server, writes what it sends until its FIN, replies \"Thank you\\0\" and closes.\n\n\
         \x20 --peer ADDR            the server (default 192.168.69.100)\n\
         \x20 -o, --output PATH      where to write the file (default receive.dat)\n\
         \x20 --local-port PORT      our port (default: one from 49152-65535)\n\
         {COMMON_HELP}"
    )
}

fn parse_args() -> Result<Option<Args>, String> {
    let mut common = Common::new();
    let mut peer = IpAddress::v4(192, 168, 69, 100);
    let mut output = PathBuf::from("receive.dat");
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let mut local_port = 49152 + (nanos % 16384) as u16;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = |flag: &str| args.next().ok_or(format!("{flag} needs a value"));
        match arg.as_str() {
            "-h" | "--help" => return Ok(None),
            "--peer" => peer = parse(&value("--peer")?, "address")?,
            "-o" | "--output" => output = value("-o")?.into(),
            "--local-port" => local_port = parse(&value("--local-port")?, "port")?,
            flag => {
                if !common.take(flag, &mut args)? {
                    return Err(format!("unknown argument {flag}"));
                }
            }
        }
    }
    Ok(Some(Args {
        common,
        peer,
        output,
        local_port,
    }))
}

fn main() -> ExitCode {
    match parse_args() {
        Ok(Some(args)) => match run(&args) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("tap_client: {e}");
                ExitCode::FAILURE
            }
        },
        Ok(None) => {
            println!("{}", usage());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("tap_client: {e}\n{}", usage());
            ExitCode::from(2)
        }
    }
}

fn run(args: &Args) -> Result<(), String> {
    let sink = File::create(&args.output)
        .map_err(|e| format!("cannot create {}: {e}", args.output.display()))?;
    let (mut device, fd, mut iface) = tap_common::open(&args.common)?;

    let mut storage: [SocketStorage; 1] = Default::default();
    let mut sockets = SocketSet::new(&mut storage[..]);
    let handle = sockets.add(tcp::Socket::new(
        // The largest receive buffer the client accepts: an unscaled window.
        tcp::SocketBuffer::new(vec![0; halfclose::client::MAX_RECEIVE_BUFFER]),
        tcp::SocketBuffer::new(vec![0; 4 * 1024]),
    ));
    let mut client = Client::connect(
        iface.context(),
        sockets.get_mut::<tcp::Socket>(handle),
        (args.peer, args.common.port),
        (args.common.addr.address(), args.local_port),
        FromStd(sink),
        Instant::now(),
        args.common.timeouts,
    )
    .map_err(|e| e.to_string())?;

    let mut progress = Progress::new(None);
    let result = loop {
        let now = Instant::now();
        iface.poll(now, &mut device, &mut sockets);
        if let Poll::Ready(result) = client.poll(now, sockets.get_mut::<tcp::Socket>(handle)) {
            break result;
        }
        if let State::Receiving { received } = client.state() {
            progress.update(*received);
        }
        tap_common::wait(fd, &mut iface, &sockets);
    };
    progress.finish();
    // Whatever happened, every byte received is already in the file.
    let report =
        result.map_err(|e| format!("{e} (the bytes received are in {})", args.output.display()))?;
    // The rate is over the transfer (handshake to the server's FIN), not the connection's set-up.
    let (secs, mbps) = rate(report.bytes, report.transfer_time());
    println!(
        "received {} bytes from {} in {secs:.3} s ({mbps:.1} MB/s) into {}; connected in {}; replied \"Thank you\\0\"",
        report.bytes,
        report.remote,
        args.output.display(),
        report.connected_at - report.started_at,
    );
    Ok(())
}
