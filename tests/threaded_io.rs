//! The threaded adapters: a file read ahead on one thread and written behind on another, byte
//! exact, in order, with errors reported where they belong.

mod common;

use std::io::Cursor;
use std::sync::{Arc, Mutex};

use common::pair::{Loop, Pair};
use common::{CLIENT_V4, PORT, SERVER_V4};
use embedded_io::{Read, Write};
use halfclose::io::{FromStd, HandOff, ThreadedReader, ThreadedSink, ThreadedSource};
use halfclose::sim::Side;
use halfclose::{Timeouts, client};
use smoltcp::socket::tcp;

const SMALL: HandOff = HandOff { chunk: 7, depth: 2 };

fn bytes(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 31 + i / 251) as u8).collect()
}

/// A `std::io::Write` whose bytes the test can look at after the sink's thread wrote them.
#[derive(Clone, Default)]
struct Shared(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Shared {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// A reader that gives `good` bytes, then fails.
struct FailsAfter {
    good: usize,
}

impl embedded_io::ErrorType for FailsAfter {
    type Error = embedded_io::ErrorKind;
}

impl Read for FailsAfter {
    fn read(&mut self, buf: &mut [u8]) -> Result<usize, embedded_io::ErrorKind> {
        if self.good == 0 {
            return Err(embedded_io::ErrorKind::Interrupted);
        }
        let n = buf.len().min(self.good).min(5);
        buf[..n].fill(1);
        self.good -= n;
        Ok(n)
    }
}

/// A writer that takes `room` bytes, then fails.
struct Full {
    room: usize,
}

impl std::io::Write for Full {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if self.room == 0 {
            return Err(std::io::ErrorKind::WriteZero.into());
        }
        let n = buf.len().min(self.room);
        self.room -= n;
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[test]
fn a_file_read_ahead_in_small_chunks_arrives_in_order() {
    let file = bytes(10_000);
    let mut reader = ThreadedReader::spawn(FromStd(Cursor::new(file.clone())), SMALL);
    let mut got = Vec::new();
    // Odd read sizes, across chunk boundaries.
    for size in [1, 3, 13, 64, 5].into_iter().cycle() {
        let mut buf = [0u8; 64];
        match reader.read(&mut buf[..size]).unwrap() {
            0 => break,
            n => got.extend_from_slice(&buf[..n]),
        }
        assert!(got.len() <= file.len(), "more bytes than the file");
    }
    assert!(got == file, "bytes differ from the file");
    assert_eq!(
        reader.read(&mut [0; 8]).unwrap(),
        0,
        "the end stays the end"
    );
}

#[test]
fn a_read_error_arrives_after_every_byte_before_it() {
    let mut reader = ThreadedReader::spawn(FailsAfter { good: 23 }, SMALL);
    let mut good = 0;
    let error = loop {
        match reader.read(&mut [0; 4]) {
            Ok(0) => panic!("an error is not the end of the file"),
            Ok(n) => good += n,
            Err(kind) => break kind,
        }
    };
    assert_eq!(good, 23);
    assert_eq!(error, embedded_io::ErrorKind::Interrupted);
}

#[test]
fn a_sink_written_behind_holds_everything_once_flushed() {
    let file = bytes(10_000);
    let out = Shared::default();
    let mut sink = ThreadedSink::with_hand_off(out.clone(), SMALL);
    let mut rest = &file[..];
    while !rest.is_empty() {
        let n = sink.write(&rest[..rest.len().min(300)]).unwrap();
        assert!(n > 0);
        rest = &rest[n..];
    }
    sink.flush().unwrap();
    assert!(*out.0.lock().unwrap() == file, "bytes differ from the file");
}

#[test]
fn a_write_error_is_reported_by_flush() {
    let mut sink = ThreadedSink::with_hand_off(Full { room: 20 }, SMALL);
    // Writes may succeed until the thread has met the error: it shows at the latest at flush.
    for _ in 0..10 {
        if sink.write(&[0; 5]).is_err() {
            break;
        }
    }
    assert_eq!(sink.flush(), Err(embedded_io::ErrorKind::WriteZero));
}

/// The whole exchange with both ends threaded: the file is read ahead by one thread and written
/// behind by another, and arrives byte exact, the sink flushed before the client reports.
#[test]
fn a_threaded_transfer_arrives_byte_exact() {
    let file = bytes(3 << 20);
    let path = std::env::temp_dir().join(format!("halfclose-threaded-{}", std::process::id()));
    std::fs::write(&path, &file).unwrap();
    let source = ThreadedSource::with_hand_off(
        halfclose::io::FileSource::new(&path).unwrap(),
        HandOff {
            chunk: 64 << 10,
            depth: 3,
        },
    );
    let out = Shared::default();
    let sink = ThreadedSink::new(out.clone());

    // Both ends on the loopback, smoltcp's default socket settings (delayed ACK included).
    let socket = || {
        tcp::Socket::new(
            tcp::SocketBuffer::new(vec![0; 16 << 10]),
            tcp::SocketBuffer::new(vec![0; 16 << 10]),
        )
    };
    let mut pair = Pair::new(Loop::<1500>::new());
    let s = pair.add(Side::Server, socket());
    let c = pair.add(Side::Client, socket());
    let mut server = pair.listen([s], source, Timeouts::DEFAULT);
    let to = client::Connect::to((SERVER_V4, PORT)).from((CLIENT_V4, 49152));
    let mut client = pair.connect(c, to, sink);
    let served = pair.serve(&mut server, &mut client);
    std::fs::remove_file(&path).unwrap();
    let fetched = served.client.expect("the client's report");
    let served = served.server.expect("the server's report");
    assert_eq!(served.bytes, file.len() as u64);
    assert_eq!(fetched.bytes, file.len() as u64);
    // The client flushed the sink when the file ended: every byte is written already.
    assert!(*out.0.lock().unwrap() == file, "bytes differ from the file");
}
