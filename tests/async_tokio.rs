//! The async transfer (`halfclose::asynch`) on tokio over the kernel's TCP on 127.0.0.1: our async
//! server to our async client, each against the lesson's BSD-sockets peers
//! (`tools/src/bin/lesson.rs`), byte-exact with the reply; and the typed errors a misbehaving
//! kernel peer causes.

mod common;

use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::process::{Child, Command, Output};
use std::time::Duration;

use common::netns::{Scratch, example, finish, text};
use common::random_bytes;
use halfclose::asynch::tokio::{Stream, TokioClock};
use halfclose::asynch::{fetch, serve};
use halfclose::{Error, Phase, REPLY, Timeouts};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Start an example binary on this host.
fn spawn(program: &str, args: &[&str]) -> Child {
    common::netns::spawn(Command::new(example(program)).args(args), 30)
}

/// Start our async server on an ephemeral port; returns it and the port it printed.
fn start_async_server(file: &str) -> (Child, u16) {
    let mut server = spawn("async_tokio", &["server", "0", file]);
    let mut first = String::new();
    BufReader::new(server.stdout.as_mut().unwrap())
        .read_line(&mut first)
        .unwrap();
    let port = first
        .trim()
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("async_tokio server printed {first:?}"));
    (server, port)
}

/// A port nobody listens on right now (the lesson server needs one named).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn server_stdout(mut server: Child) -> (Output, String) {
    // The first line was read already; the rest is in the pipe.
    let mut rest = String::new();
    let mut stdout = server.stdout.take().unwrap();
    let out = finish(server, Duration::from_secs(60));
    stdout.read_to_string(&mut rest).unwrap();
    (out, rest)
}

const SIZES: [usize; 4] = [0, 1, 100_000, 3 << 20];

#[test]
fn async_server_to_async_client_over_the_kernel() {
    for len in SIZES {
        let tmp = Scratch::new();
        let (file, copy) = (tmp.path("file"), tmp.path("copy"));
        let payload = random_bytes(len, len as u64 + 1);
        std::fs::write(&file, &payload).unwrap();
        let (server, port) = start_async_server(&file);
        let client = finish(
            spawn(
                "async_tokio",
                &["client", "127.0.0.1", &port.to_string(), &copy],
            ),
            Duration::from_secs(60),
        );
        let (server_out, stdout) = server_stdout(server);
        assert!(server_out.status.success(), "server: {}", text(&server_out));
        assert!(client.status.success(), "client: {}", text(&client));
        assert!(
            stdout.contains("Message from client: Thank you\n"),
            "{stdout}"
        );
        assert!(stdout.contains(&format!("sent {len} bytes")), "{stdout}");
        assert!(
            std::fs::read(&copy).unwrap() == payload,
            "{len} bytes: the copy differs"
        );
        assert!(!Path::new(&format!("{copy}.partial")).exists());
    }
}

#[test]
fn async_server_to_lesson_client() {
    for len in SIZES {
        let tmp = Scratch::new();
        let (file, copy) = (tmp.path("file"), tmp.path("copy"));
        let payload = random_bytes(len, len as u64 + 2);
        std::fs::write(&file, &payload).unwrap();
        let (server, port) = start_async_server(&file);
        let client = finish(
            spawn("lesson", &["client", "127.0.0.1", &port.to_string(), &copy]),
            Duration::from_secs(60),
        );
        let (server_out, stdout) = server_stdout(server);
        assert!(server_out.status.success(), "server: {}", text(&server_out));
        assert!(client.status.success(), "lesson client: {}", text(&client));
        assert!(
            stdout.contains("Message from client: Thank you\n"),
            "{stdout}"
        );
        assert!(
            std::fs::read(&copy).unwrap() == payload,
            "{len} bytes: the copy differs"
        );
    }
}

#[test]
fn lesson_server_to_async_client() {
    for len in SIZES {
        let tmp = Scratch::new();
        let (file, copy) = (tmp.path("file"), tmp.path("copy"));
        let payload = random_bytes(len, len as u64 + 3);
        std::fs::write(&file, &payload).unwrap();
        let port = free_port().to_string();
        let server = spawn("lesson", &["server", "--bind", "127.0.0.1", &port, &file]);
        let client = finish(
            spawn(
                "async_tokio",
                &["client", "--wait", "20", "127.0.0.1", &port, &copy],
            ),
            Duration::from_secs(60),
        );
        let server = finish(server, Duration::from_secs(60));
        assert!(server.status.success(), "lesson server: {}", text(&server));
        assert!(client.status.success(), "client: {}", text(&client));
        assert!(
            String::from_utf8_lossy(&server.stdout).contains("Message from client: Thank you\n"),
            "{}",
            text(&server)
        );
        assert!(
            std::fs::read(&copy).unwrap() == payload,
            "{len} bytes: the copy differs"
        );
    }
}

// --- Misbehaving kernel peers, in process -------------------------------------------------------

fn run<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(async {
            tokio::time::timeout(Duration::from_secs(60), f)
                .await
                .expect("the test itself ran over 60 s")
        })
}

/// Our async server with `file` on an ephemeral port, and a kernel client doing `peer` to it.
async fn serve_to<P, Fut>(
    file: &[u8],
    timeouts: Timeouts,
    peer: P,
) -> Result<halfclose::asynch::ServeReport, Error>
where
    P: FnOnce(TcpStream) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let client = tokio::spawn(peer(TcpStream::connect(addr).await.unwrap()));
    let (stream, _) = listener.accept().await.unwrap();
    let clock = TokioClock::new();
    let result = serve(&mut Stream(stream), file, &clock, timeouts).await;
    client.abort();
    result
}

#[test]
fn server_rejects_a_reply_that_is_not_thank_you() {
    let file = random_bytes(50_000, 5);
    let result = run(serve_to(&file, Timeouts::DEFAULT, |mut s| async move {
        let mut sink = Vec::new();
        s.read_to_end(&mut sink).await.unwrap();
        s.write_all(b"No thanks").await.unwrap();
        s.shutdown().await.unwrap();
    }));
    match result {
        Err(Error::WrongReply { reply, bytes }) => {
            // Ended at the first byte that cannot begin "Thank you\0".
            assert_eq!(reply.kept(), b"N");
            assert_eq!(bytes, 50_000);
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn server_stops_at_the_first_byte_after_thank_you() {
    let result = run(serve_to(b"hello", Timeouts::DEFAULT, |mut s| async move {
        let mut sink = Vec::new();
        s.read_to_end(&mut sink).await.unwrap();
        let _ = s.write_all(b"Thank you\0and then some").await;
        let _ = s.shutdown().await;
        // Keep the connection open until the server has given up.
        let _ = s.read(&mut [0u8; 1]).await;
    }));
    match result {
        Err(Error::ReplyTooLong { reply, bytes: 5 }) => assert_eq!(reply.kept(), b"Thank you\0a"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn server_times_out_in_the_reply_phase_when_the_client_stays_silent() {
    let timeouts = Timeouts::all(smoltcp::time::Duration::from_millis(300));
    let result = run(serve_to(b"hello", timeouts, |mut s| async move {
        let mut sink = Vec::new();
        s.read_to_end(&mut sink).await.unwrap();
        tokio::time::sleep(Duration::from_secs(5)).await;
    }));
    assert_eq!(
        result,
        Err(Error::TimedOut {
            phase: Phase::Reply,
            bytes: 5
        })
    );
}

#[test]
fn client_reports_a_reset_mid_file_never_a_short_file() {
    let result = run(async {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.unwrap();
            s.write_all(&[7u8; 20_000]).await.unwrap();
            tokio::time::sleep(Duration::from_millis(100)).await;
            // SO_LINGER 0: close() sends a RST instead of a FIN.
            s.set_zero_linger().unwrap();
            drop(s);
        });
        let mut stream = Stream(TcpStream::connect(addr).await.unwrap());
        let mut sink = Vec::new();
        let result = fetch(
            &mut stream,
            halfclose::io::FromStd(&mut sink),
            &TokioClock::new(),
            Timeouts::DEFAULT,
        )
        .await;
        server.await.unwrap();
        (result, sink.len())
    });
    assert_eq!(
        result.0,
        Err(Error::Reset {
            phase: Phase::Transfer,
            bytes: 20_000
        })
    );
    assert_eq!(
        result.1, 20_000,
        "the bytes before the reset are in the sink"
    );
}

#[test]
fn client_replies_thank_you_and_half_closes_after_eof() {
    let (report, reply) = run(async {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.unwrap();
            s.write_all(b"file").await.unwrap();
            s.shutdown().await.unwrap();
            // Everything until the client's FIN: exactly the reply.
            let mut reply = Vec::new();
            s.read_to_end(&mut reply).await.unwrap();
            reply
        });
        let mut stream = Stream(TcpStream::connect(addr).await.unwrap());
        let mut sink = Vec::new();
        let report = fetch(
            &mut stream,
            halfclose::io::FromStd(&mut sink),
            &TokioClock::new(),
            Timeouts::DEFAULT,
        )
        .await
        .unwrap();
        assert_eq!(sink, b"file");
        (report, server.await.unwrap())
    });
    assert_eq!(report.bytes, 4);
    assert!(!report.acknowledged, "the kernel cannot tell");
    assert_eq!(reply, REPLY);
}
