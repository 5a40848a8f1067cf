//! The threaded adapters: a file read ahead on one thread and written behind on another, byte
//! exact, in order, with errors reported where they belong.

use std::io::Cursor;
use std::sync::{Arc, Mutex};
use std::task::Poll;

use embedded_io::{Read, Write};
use halfclose::device::Loopback;
use halfclose::io::{FromStd, HandOff, ThreadedReader, ThreadedSink, ThreadedSource};
use halfclose::{Timeouts, client, server};
use smoltcp::iface::{Config, Interface, SocketSet, SocketStorage};
use smoltcp::phy::Medium;
use smoltcp::socket::tcp;
use smoltcp::time::{Duration, Instant};
use smoltcp::wire::{HardwareAddress, IpAddress, IpCidr};

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

    let addr = IpAddress::v4(127, 0, 0, 1);
    let mut device = Box::new(Loopback::<1500, 8>::new(Medium::Ip));
    let mut iface = Interface::new(
        Config::new(HardwareAddress::Ip),
        &mut *device,
        Instant::ZERO,
    );
    iface.update_ip_addrs(|a| a.push(IpCidr::new(addr, 8)).unwrap());
    let socket = || {
        tcp::Socket::new(
            tcp::SocketBuffer::new(vec![0; 16 << 10]),
            tcp::SocketBuffer::new(vec![0; 16 << 10]),
        )
    };
    let mut storage: [SocketStorage; 2] = Default::default();
    let mut sockets = SocketSet::new(&mut storage[..]);
    let s = sockets.add(socket());
    let c = sockets.add(socket());
    let port = halfclose::DEFAULT_PORT;
    let mut server =
        server::Server::listen(&mut sockets, [s], port, source, Timeouts::DEFAULT).expect("listen");
    let mut now = Instant::ZERO;
    let mut client = client::Client::connect(
        iface.context(),
        &mut sockets,
        c,
        client::Connect::to((addr, port)).from_port(49152),
        sink,
        now,
    )
    .expect("connect");
    let (mut served, mut fetched) = (None, None);
    // Bounded: far more rounds than 3 MiB in 16 KiB windows needs.
    for _ in 0..1_000_000 {
        iface.poll(now, &mut *device, &mut sockets);
        if let Some(r) = server.poll(now, &mut sockets).into_iter().next() {
            served = Some(r);
        }
        if fetched.is_none()
            && let Poll::Ready(r) = client.poll(now, &mut sockets)
        {
            fetched = Some(r);
        }
        if served.is_some() && fetched.is_some() {
            break;
        }
        if device.queued() == 0 {
            now += iface
                .poll_delay(now, &sockets)
                .unwrap_or(Duration::from_millis(1));
        }
    }
    std::fs::remove_file(&path).unwrap();
    let served = served
        .expect("the server finished")
        .expect("the server's report");
    let fetched = fetched
        .expect("the client finished")
        .expect("the client's report");
    assert_eq!(served.bytes, file.len() as u64);
    assert_eq!(fetched.bytes, file.len() as u64);
    // The client flushed the sink when the file ended: every byte is written already.
    assert!(*out.0.lock().unwrap() == file, "bytes differ from the file");
}
