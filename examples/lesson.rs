//! The lesson's two BSD-sockets programs, on the kernel's TCP through `std::net`: the peers our
//! smoltcp server and client must work with.
//!
//! ```text
//! lesson server [--bind ADDR] [--chunk N] PORT FILE   # accept one client, write FILE in N-byte
//!                                                     # writes (1024), shutdown(SHUT_WR), one
//!                                                     # read of up to 1024 bytes, print it
//! lesson client HOST PORT OUT                         # read to EOF into OUT, write "Thank you\0",
//!                                                     # close
//! ```
//!
//! Every blocking call has a timeout (`LESSON_TIMEOUT` seconds, default 30), and the client
//! stops writing at 4 GiB, so a broken peer can neither hang these nor fill a disk.

use std::fs::File;
use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::process::ExitCode;
use std::time::{Duration, Instant};

const LIMIT: u64 = 4 << 30;

fn timeout() -> Duration {
    let secs = std::env::var("LESSON_TIMEOUT")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(30);
    Duration::from_secs(secs)
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("server") => server(&args[1..]),
        Some("client") => client(&args[1..]),
        _ => Err("usage: lesson server [--bind ADDR] [--chunk N] PORT FILE | lesson client HOST PORT OUT".into()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("lesson: {e}");
            ExitCode::FAILURE
        }
    }
}

fn server(args: &[String]) -> Result<(), String> {
    let (mut bind, mut chunk, mut rest) = ("0.0.0.0".to_string(), 1024usize, Vec::new());
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--bind" => bind = it.next().ok_or("--bind needs an address")?.clone(),
            "--chunk" => {
                chunk = it
                    .next()
                    .and_then(|s| s.parse().ok())
                    .filter(|&n| n > 0)
                    .ok_or("--chunk needs a size")?
            }
            _ => rest.push(arg.clone()),
        }
    }
    let [port, file] = &rest[..] else {
        return Err("server needs PORT FILE".into());
    };
    let mut file = File::open(file).map_err(|e| format!("cannot open {file}: {e}"))?;
    let listener = TcpListener::bind(format!("{bind}:{port}")).map_err(|e| format!("bind: {e}"))?;
    listener.set_nonblocking(true).map_err(|e| e.to_string())?;
    let deadline = Instant::now() + timeout();
    let mut stream = loop {
        match listener.accept() {
            Ok((stream, _)) => break stream,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock && Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(5))
            }
            Err(e) => return Err(format!("accept: {e}")),
        }
    };
    stream.set_nonblocking(false).map_err(|e| e.to_string())?;
    stream
        .set_write_timeout(Some(timeout()))
        .map_err(|e| e.to_string())?;
    stream
        .set_read_timeout(Some(timeout()))
        .map_err(|e| e.to_string())?;

    let mut buf = vec![0u8; chunk];
    loop {
        let n = file.read(&mut buf).map_err(|e| format!("read file: {e}"))?;
        if n == 0 {
            break;
        }
        stream
            .write_all(&buf[..n])
            .map_err(|e| format!("write: {e}"))?;
    }
    stream
        .shutdown(Shutdown::Write)
        .map_err(|e| format!("shutdown: {e}"))?;
    let mut reply = [0u8; 1024];
    let n = stream
        .read(&mut reply)
        .map_err(|e| format!("read reply: {e}"))?;
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

fn client(args: &[String]) -> Result<(), String> {
    let [host, port, out] = args else {
        return Err("client needs HOST PORT OUT".into());
    };
    let addr = format!("{host}:{port}");
    let sockaddr = addr.parse().map_err(|_| format!("bad address {addr}"))?;
    let mut stream =
        TcpStream::connect_timeout(&sockaddr, timeout()).map_err(|e| format!("connect: {e}"))?;
    stream
        .set_read_timeout(Some(timeout()))
        .map_err(|e| e.to_string())?;
    stream
        .set_write_timeout(Some(timeout()))
        .map_err(|e| e.to_string())?;
    let mut file = File::create(out).map_err(|e| format!("cannot create {out}: {e}"))?;
    let mut buf = vec![0u8; 64 * 1024];
    let mut total = 0u64;
    loop {
        let n = stream
            .read(&mut buf)
            .map_err(|e| format!("read after {total} bytes: {e}"))?;
        if n == 0 {
            break;
        }
        total += n as u64;
        if total > LIMIT {
            return Err("more than 4 GiB: giving up".into());
        }
        file.write_all(&buf[..n])
            .map_err(|e| format!("write {out}: {e}"))?;
    }
    stream
        .write_all(halfclose::REPLY)
        .map_err(|e| format!("write reply: {e}"))?;
    drop(stream);
    println!("received {total} bytes; replied \"Thank you\\0\"");
    Ok(())
}
