//! The lesson's two BSD-sockets programs, on the kernel's TCP through `std::net`: the peers our
//! smoltcp server and client must work with.
//!
//! ```text
//! lesson server [--bind ADDR] [--chunk N] [--clients N] [--cc NAME] PORT FILE
//!                                                     # accept a client, write FILE in N-byte
//!                                                     # writes (1024), shutdown(SHUT_WR), one
//!                                                     # read of up to 1024 bytes, print it,
//!                                                     # close; N clients one after another
//!                                                     # (1; 0: for ever), the others queued
//!                                                     # by the kernel (listen backlog 128);
//!                                                     # --cc: the kernel's congestion control
//!                                                     # for each connection (TCP_CONGESTION)
//! lesson client HOST PORT OUT                         # read to EOF into OUT, write "Thank you\0",
//!                                                     # close
//! ```
//!
//! Every blocking call has a timeout (`LESSON_TIMEOUT` seconds, default 30), and the client
//! stops writing at 4 GiB, so a broken peer can neither hang these nor fill a disk.

use std::io::{Read, Write};
use std::net::{IpAddr, Shutdown, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::{Parser, Subcommand, value_parser};
use halfclose_tools::files::{Output, open_input};

const LIMIT: u64 = 4 << 30;

/// An I/O error on a socket with timeouts, in words: a timeout shows as `WouldBlock`.
fn io(e: std::io::Error, timeout: Duration) -> String {
    match e.kind() {
        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut => {
            format!("timed out after {} s (LESSON_TIMEOUT)", timeout.as_secs())
        }
        _ => e.to_string(),
    }
}

/// The lesson's BSD-sockets server and client, on the kernel's TCP.
#[derive(Parser, Debug)]
#[command(name = "lesson")]
struct Args {
    /// Seconds every blocking call may take
    #[arg(long, global = true, value_name = "S", env = "LESSON_TIMEOUT", default_value_t = 30, value_parser = value_parser!(u64).range(1..=86400))]
    timeout: u64,
    #[command(subcommand)]
    role: Role,
}

#[derive(Subcommand, Debug)]
enum Role {
    /// Accept a client, write FILE in CHUNK-byte writes, shutdown(SHUT_WR), read the reply
    /// (one read of up to 1024 bytes), print it and close; CLIENTS clients one after another
    Server {
        /// The address to listen on
        #[arg(long, default_value = "0.0.0.0")]
        bind: IpAddr,
        /// Bytes per write
        #[arg(long, default_value_t = 1024, value_parser = value_parser!(u64).range(1..=(1 << 24)))]
        chunk: u64,
        /// Serve N clients one after another, then exit (0: until none connects within the
        /// timeout); the kernel queues the others (Rust's `TcpListener` listens with a backlog of
        /// 128, where the C lesson's `listen(fd, 5)` has 5)
        #[arg(long, value_name = "N", default_value_t = 1)]
        clients: u64,
        /// The kernel's congestion control for each connection (`TCP_CONGESTION`: one of
        /// `net.ipv4.tcp_available_congestion_control`; one outside
        /// `tcp_allowed_congestion_control` needs CAP_NET_ADMIN); default: the system's
        #[arg(long, value_name = "NAME")]
        cc: Option<String>,
        /// The port to listen on
        #[arg(value_parser = value_parser!(u16).range(1..))]
        port: u16,
        /// The file to send (a regular file)
        file: PathBuf,
    },
    /// Read to EOF into OUT, write "Thank you\0", close
    Client {
        /// The server's address
        host: IpAddr,
        /// The server's port
        #[arg(value_parser = value_parser!(u16).range(1..))]
        port: u16,
        /// Where to write what arrives (replaced only when it all arrived)
        out: PathBuf,
    },
}

fn main() -> ExitCode {
    let args = Args::parse();
    let timeout = Duration::from_secs(args.timeout);
    let result = match &args.role {
        Role::Server {
            bind,
            chunk,
            clients,
            cc,
            port,
            file,
        } => server(
            SocketAddr::new(*bind, *port),
            Serving {
                chunk: *chunk as usize,
                cc: cc.as_deref(),
                timeout,
            },
            *clients,
            file,
        ),
        Role::Client { host, port, out } => client(SocketAddr::new(*host, *port), out, timeout),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("lesson: {e}");
            ExitCode::FAILURE
        }
    }
}

/// How the server serves each client.
struct Serving<'a> {
    /// Bytes per write.
    chunk: usize,
    /// The kernel's congestion control for the connection, if not the system's.
    cc: Option<&'a str>,
    /// How long every blocking call may take.
    timeout: Duration,
}

fn server(bind: SocketAddr, how: Serving, clients: u64, path: &Path) -> Result<(), String> {
    let timeout = how.timeout;
    // The file is checked before the port is taken.
    drop(open_input(path)?);
    let listener = TcpListener::bind(bind).map_err(|e| format!("bind {bind}: {e}"))?;
    listener.set_nonblocking(true).map_err(|e| e.to_string())?;
    let (mut served, mut failed, mut last_error) = (0u64, 0u64, String::new());
    while clients == 0 || served + failed < clients {
        let stream = match accept(&listener, timeout) {
            Ok(stream) => stream,
            // Serving for ever ends when no client comes.
            Err(_) if clients == 0 => break,
            Err(e) => return Err(e),
        };
        match serve(stream, &how, path) {
            Ok(()) => served += 1,
            Err(e) => {
                if clients != 1 {
                    eprintln!("lesson: client failed: {e}");
                }
                failed += 1;
                last_error = e;
            }
        }
    }
    if clients != 1 {
        println!("lesson: served {served}, failed {failed}");
    }
    match failed {
        0 => Ok(()),
        _ if clients == 1 => Err(last_error),
        _ => Err(format!("{failed} of {} clients failed", served + failed)),
    }
}

/// The next client, waiting at most `timeout`.
fn accept(listener: &TcpListener, timeout: Duration) -> Result<TcpStream, String> {
    let deadline = Instant::now() + timeout;
    loop {
        match listener.accept() {
            Ok((stream, _)) => return Ok(stream),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock && Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(1))
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                return Err(format!("accept: no client within {} s", timeout.as_secs()));
            }
            Err(e) => return Err(format!("accept: {e}")),
        }
    }
}

/// Sets the kernel's congestion control for one connection (`TCP_CONGESTION`).
fn set_congestion_control(stream: &TcpStream, name: &str) -> Result<(), String> {
    use std::os::fd::AsRawFd;
    // SAFETY: the pointer and length describe `name`'s bytes, which live across the call; the
    // kernel only reads them.
    let rc = unsafe {
        libc::setsockopt(
            stream.as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_CONGESTION,
            name.as_ptr().cast(),
            name.len() as libc::socklen_t,
        )
    };
    if rc != 0 {
        return Err(format!(
            "congestion control {name:?}: {}",
            std::io::Error::last_os_error()
        ));
    }
    Ok(())
}

/// Send the file to one client, half-close, and read its reply.
fn serve(mut stream: TcpStream, how: &Serving, path: &Path) -> Result<(), String> {
    let (chunk, timeout) = (how.chunk, how.timeout);
    let mut file = open_input(path)?;
    if let Some(cc) = how.cc {
        set_congestion_control(&stream, cc)?;
    }
    stream.set_nonblocking(false).map_err(|e| e.to_string())?;
    stream
        .set_write_timeout(Some(timeout))
        .map_err(|e| e.to_string())?;
    stream
        .set_read_timeout(Some(timeout))
        .map_err(|e| e.to_string())?;

    let mut buf = vec![0u8; chunk];
    loop {
        let n = file
            .read(&mut buf)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        if n == 0 {
            break;
        }
        stream
            .write_all(&buf[..n])
            .map_err(|e| format!("write: {}", io(e, timeout)))?;
    }
    stream
        .shutdown(Shutdown::Write)
        .map_err(|e| format!("shutdown: {e}"))?;
    let mut reply = [0u8; 1024];
    let n = stream
        .read(&mut reply)
        .map_err(|e| format!("read reply: {}", io(e, timeout)))?;
    let text = &reply[..n];
    println!(
        "Message from client: {}",
        String::from_utf8_lossy(text.strip_suffix(b"\0").unwrap_or(text))
    );
    if text != halfclose::REPLY {
        return Err(format!(
            "the reply was {:?}, not \"Thank you\\0\"",
            String::from_utf8_lossy(text)
        ));
    }
    Ok(())
}

fn client(addr: SocketAddr, out: &Path, timeout: Duration) -> Result<(), String> {
    let mut output = Output::create(out)?;
    match receive(addr, &mut output, timeout) {
        Ok(()) => {
            let total = output.commit()?;
            println!("received {total} bytes; replied \"Thank you\\0\"");
            Ok(())
        }
        Err(e) => Err(format!("{e}; {}", output.abandon())),
    }
}

fn receive(addr: SocketAddr, output: &mut Output, timeout: Duration) -> Result<(), String> {
    let mut stream =
        TcpStream::connect_timeout(&addr, timeout).map_err(|e| format!("connect: {e}"))?;
    stream
        .set_read_timeout(Some(timeout))
        .map_err(|e| e.to_string())?;
    stream
        .set_write_timeout(Some(timeout))
        .map_err(|e| e.to_string())?;
    let mut buf = vec![0u8; 64 * 1024];
    let mut total = 0u64;
    loop {
        let n = stream
            .read(&mut buf)
            .map_err(|e| format!("read after {total} bytes: {}", io(e, timeout)))?;
        if n == 0 {
            break;
        }
        total += n as u64;
        if total > LIMIT {
            return Err("more than 4 GiB: giving up".into());
        }
        output.write_all(&buf[..n]).map_err(|e| {
            output
                .error()
                .unwrap_or_else(|| format!("cannot write: {e}"))
        })?;
    }
    stream
        .write_all(halfclose::REPLY)
        .map_err(|e| format!("write reply after {total} bytes: {}", io(e, timeout)))?;
    Ok(())
}
