//! Fetch a file over a Linux TAP device from an ordinary TCP server that half-closes after it,
//! then send it "Thank you".
//!
//! ```text
//! tap_client [OPTIONS]        (run with CAP_NET_ADMIN; see the README's TAP walkthrough)
//! ```
//!
//! The file appears under its name only when the server has acknowledged our reply; otherwise
//! what arrived is kept as `NAME.partial` and the one error line says how many bytes that is.

mod common;

#[cfg(target_os = "linux")]
fn main() -> std::process::ExitCode {
    use clap::Parser;
    let args = linux::Args::parse();
    common::init_log(args.tap.verbose);
    common::exit_with("tap_client", linux::run(&args))
}

#[cfg(not(target_os = "linux"))]
fn main() -> std::process::ExitCode {
    common::exit_with("tap_client", Err("TAP devices need Linux".into()))
}

#[cfg(target_os = "linux")]
mod linux {
    use std::ops::ControlFlow;
    use std::path::PathBuf;
    use std::task::Poll;

    use clap::{Parser, value_parser};
    use halfclose::client::Client;
    use halfclose::io::FromStd;
    use halfclose::{Error, Phase};
    use smoltcp::iface::{SocketSet, SocketStorage};
    use smoltcp::time::Instant;
    use smoltcp::wire::IpAddress;

    use crate::common::files::Output;
    use crate::common::{cli, drive, progress, tap};

    /// Connects to the server, writes what it sends until its FIN, replies "Thank you\0" and
    /// closes.
    #[derive(Parser, Debug)]
    #[command(name = "tap_client")]
    pub struct Args {
        /// The server
        #[arg(long, value_name = "ADDR", default_value = "192.168.69.100", value_parser = cli::unicast)]
        peer: IpAddress,
        /// Where to write the file (replaced only after a complete transfer)
        #[arg(short, long, value_name = "PATH", default_value = "receive.dat")]
        output: PathBuf,
        /// Our port (default: one from 49152-65535)
        #[arg(long, value_name = "PORT", value_parser = value_parser!(u16).range(1..))]
        local_port: Option<u16>,
        #[command(flatten)]
        pub tap: tap::TapArgs,
    }

    pub fn run(args: &Args) -> Result<(), String> {
        let (mut device, mut iface) = tap::open(&args.tap)?;
        let mut output = Output::create(&args.output, &[])?;
        match fetch(args, &mut device, &mut iface, &mut output) {
            Ok(report) => {
                let pcap = device.finish();
                let bytes = output.commit()?;
                // Over the transfer (handshake to the server's FIN), not the connection's set-up.
                let secs = report.transfer_time().total_micros() as f64 / 1e6;
                let mbps = bytes as f64 / secs.max(1e-9) / 1e6;
                println!(
                    "received {bytes} bytes from {} in {secs:.3} s ({mbps:.1} MB/s) into {}; connected in {}; replied \"Thank you\\0\"",
                    report.remote,
                    args.output.display(),
                    report.connected_at - report.started_at,
                );
                pcap
            }
            Err(e) => Err(format!("{e}; {}", output.abandon())),
        }
    }

    fn fetch(
        args: &Args,
        device: &mut tap::Tap,
        iface: &mut smoltcp::iface::Interface,
        output: &mut Output,
    ) -> Result<halfclose::client::Report, String> {
        let mut storage: [SocketStorage; 1] = Default::default();
        let mut sockets = SocketSet::new(&mut storage[..]);
        // The largest receive buffer the client accepts: an unscaled window.
        let handle = sockets.add(tap::socket(halfclose::client::MAX_RECEIVE_BUFFER, 4 * 1024));
        let local_port = args.local_port.unwrap_or_else(|| {
            let nanos = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.subsec_nanos());
            49152 + (nanos % 16384) as u16
        });
        let mut client = Client::connect(
            iface.context(),
            &mut sockets,
            handle,
            halfclose::client::Connect::to((args.peer, args.tap.port))
                .from((args.tap.addr.address(), local_port))
                .timeouts(args.tap.timeouts()),
            FromStd(&mut *output),
            Instant::now(),
        )
        .map_err(|e| e.to_string())?;

        let bar = progress(None);
        let result = drive::run(device, iface, &mut sockets, |now, sockets| {
            match client.poll(now, sockets) {
                Poll::Ready(result) => ControlFlow::Break(result),
                Poll::Pending => {
                    bar.set_position(client.received());
                    ControlFlow::Continue(client.deadline())
                }
            }
        });
        bar.finish_and_clear();
        let received = client.received();
        match result {
            Ok(Ok(report)) => Ok(report),
            Ok(Err(e)) => Err(explain(&e, output)),
            Err(device) => Err(format!("{device} after {received} bytes")),
        }
    }

    /// The error line's cause: the OS's words for a failed write, and no claim that a file whose
    /// end was never confirmed is complete.
    fn explain(e: &Error, output: &Output) -> String {
        match e {
            Error::Sink { bytes, .. } => match output.error() {
                Some(os) => format!("{os} after {bytes} bytes"),
                None => e.to_string(),
            },
            // The lesson's protocol has no length: a server that dies mid-file also ends in a
            // FIN (its kernel closes the socket), then answers our reply with a reset. Only the
            // server's acknowledgement of the reply says the file was whole.
            Error::Reset {
                phase: Phase::Reply,
                bytes,
            } => format!(
                "EOF seen after {bytes} bytes, reply not acknowledged (the server reset the connection): the file may be incomplete"
            ),
            Error::TimedOut {
                phase: Phase::Reply,
                bytes,
            } => format!(
                "EOF seen after {bytes} bytes, reply not acknowledged (timed out): the file may be incomplete"
            ),
            _ => e.to_string(),
        }
    }
}
