//! A tokio program serves a file with halfclose's async `serve` over the kernel's TCP on
//! 127.0.0.1; the client is a plain std socket on a thread: read to end-of-file, reply
//! "Thank you\0", close.

use std::io::{Read, Write};
use std::net::TcpStream;

use halfclose::asynch::serve;
use halfclose::asynch::tokio::{Stream, TokioClock};
use halfclose::{REPLY, Timeouts};
use tokio::net::TcpListener;

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let file: Vec<u8> = (0..1_000_000u32).map(|i| (i % 251) as u8).collect();
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind 127.0.0.1");
    let address = listener.local_addr().expect("the bound address");

    let client = std::thread::spawn(move || {
        let mut stream = TcpStream::connect(address).expect("connect");
        let mut copy = Vec::new();
        stream.read_to_end(&mut copy).expect("read to end-of-file");
        stream.write_all(REPLY).expect("reply");
        stream
            .shutdown(std::net::Shutdown::Write)
            .expect("close our side");
        copy
    });

    let (stream, _) = listener.accept().await.expect("accept");
    let report = serve(
        &mut Stream(stream),
        &file[..],
        &TokioClock::new(),
        Timeouts::DEFAULT,
    )
    .await
    .expect("the transfer succeeds");
    let copy = client.join().expect("the client thread");

    assert_eq!(copy, file, "the copy differs from the file");
    println!(
        "consumer tokio: {} bytes served, {} received, reply {:?}",
        report.bytes,
        copy.len(),
        report.reply
    );
}
