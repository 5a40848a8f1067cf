//! Failures on our own side of the connection, each named where it happened: a sink that takes
//! nothing or fails to flush, a source that fails to open, a remote the client cannot address,
//! and the ephemeral port a client picks.

mod common;

use common::pair::{Hosts as _, Loop, Pair, Served};
use common::{PORT, SERVER_V4, TIMEOUTS, random_bytes, socket};
use embedded_io::ErrorKind;
use halfclose::client::{Client, Connect, EPHEMERAL_PORTS};
use halfclose::server::Source;
use halfclose::sim::Side;
use halfclose::{Error, client};
use smoltcp::socket::tcp;
use smoltcp::wire::IpAddress;

/// A sink that takes `room` bytes, then nothing (`Ok(0)`), and whose `flush` fails if `flush_fails`.
struct Sink {
    got: Vec<u8>,
    room: usize,
    flush_fails: bool,
}

impl embedded_io::ErrorType for Sink {
    type Error = ErrorKind;
}

impl embedded_io::Write for Sink {
    fn write(&mut self, buf: &[u8]) -> Result<usize, ErrorKind> {
        let n = buf.len().min(self.room - self.got.len());
        self.got.extend_from_slice(&buf[..n]);
        Ok(n)
    }

    fn flush(&mut self) -> Result<(), ErrorKind> {
        if self.flush_fails {
            Err(ErrorKind::Other)
        } else {
            Ok(())
        }
    }
}

/// Our server serving `file` to our client writing into `sink`, on the loopback.
fn fetch_into(file: &[u8], sink: Sink) -> (Served, Sink) {
    let mut pair = Pair::new(Loop::<1500>::new());
    let s = pair.add(Side::Server, socket(4096, 4096));
    let c = pair.add(Side::Client, socket(4096, 4096));
    let mut server = pair.listen([s], file, TIMEOUTS);
    let to = Connect::to((SERVER_V4, PORT)).timeouts(TIMEOUTS);
    let mut client = pair.connect(c, to, sink);
    let served = pair.serve(&mut server, &mut client);
    (served, client.into_sink())
}

/// A sink that takes nothing of a non-empty buffer is full: the client fails at once, not when
/// its idle limit runs out.
#[test]
fn a_sink_that_takes_nothing_fails_the_client_at_once() {
    let file = random_bytes(10_000, 1);
    let sink = Sink {
        got: Vec::new(),
        room: 0,
        flush_fails: false,
    };
    let (t, _) = fetch_into(&file, sink);
    assert_eq!(
        t.client.unwrap_err(),
        Error::Sink {
            kind: ErrorKind::WriteZero,
            bytes: 0
        }
    );
    let report = t.server.unwrap_err();
    assert!(matches!(report, Error::Reset { .. }), "{report:?}");
}

/// A sink full after 3000 bytes: the error counts what it holds.
#[test]
fn a_sink_that_fills_up_fails_with_the_bytes_it_took() {
    let file = random_bytes(10_000, 2);
    let sink = Sink {
        got: Vec::new(),
        room: 3000,
        flush_fails: false,
    };
    let (t, sink) = fetch_into(&file, sink);
    assert_eq!(
        t.client.unwrap_err(),
        Error::Sink {
            kind: ErrorKind::WriteZero,
            bytes: 3000
        }
    );
    assert!(sink.got == file[..3000]);
}

/// The file is whole in the sink, but the flush at EOF fails: no reply is sent, the client
/// fails with the flush's error and every byte counted.
#[test]
fn a_sink_whose_flush_fails_at_eof_fails_the_client_without_a_reply() {
    let file = random_bytes(10_000, 3);
    let sink = Sink {
        got: Vec::new(),
        room: usize::MAX,
        flush_fails: true,
    };
    let (t, sink) = fetch_into(&file, sink);
    assert_eq!(
        t.client.unwrap_err(),
        Error::Sink {
            kind: ErrorKind::Other,
            bytes: file.len() as u64
        }
    );
    assert!(sink.got == file);
    assert!(t.server.is_err(), "{:?}", t.server);
}

/// A source that cannot open its file for a connection.
struct Unopenable;

impl Source for Unopenable {
    type Reader = &'static [u8];

    fn open(&mut self) -> Result<&'static [u8], ErrorKind> {
        Err(ErrorKind::PermissionDenied)
    }
}

/// The server aborts the connection it cannot serve and says why; the client sees a reset
/// with nothing in its sink.
#[test]
fn a_source_that_fails_to_open_aborts_the_connection_and_names_the_source() {
    let mut pair = Pair::new(Loop::<1500>::new());
    let s = pair.add(Side::Server, socket(4096, 4096));
    let c = pair.add(Side::Client, socket(4096, 4096));
    let mut server = pair.listen([s], Unopenable, TIMEOUTS);
    let to = Connect::to((SERVER_V4, PORT)).timeouts(TIMEOUTS);
    let mut client = pair.connect(c, to, Vec::new());
    let t = pair.serve(&mut server, &mut client);
    assert_eq!(
        t.server.unwrap_err(),
        Error::Source {
            kind: ErrorKind::PermissionDenied,
            bytes: 0
        }
    );
    assert!(
        matches!(t.client, Err(Error::Reset { bytes: 0, .. })),
        "{:?}",
        t.client
    );
    assert!(client.into_sink().is_empty());
}

/// A remote the client cannot connect to is refused before anything is sent, naming what is
/// wrong.
#[test]
fn a_remote_port_0_or_an_unspecified_address_is_unaddressable() {
    let mut pair = Pair::new(Loop::<1500>::new());
    let c = pair.add(Side::Client, socket(4096, 4096));
    for remote in [(SERVER_V4, 0), (IpAddress::v4(0, 0, 0, 0), PORT)] {
        let now = pair.now();
        let (cx, sockets) = pair.net.host(Side::Client);
        let r = Client::connect(cx, sockets, c, Connect::to(remote), Vec::new(), now);
        assert!(
            matches!(r, Err(Error::Unaddressable { .. })),
            "{remote:?}: {:?}",
            r.map(|_| ())
        );
        assert_eq!(sockets.get::<tcp::Socket>(c).state(), tcp::State::Closed);
    }
}

/// Local port 0 picks a free port of the ephemeral range, not the one another socket of the set
/// already uses.
#[test]
fn local_port_0_picks_a_free_ephemeral_port() {
    let mut pair = Pair::new(Loop::<1500>::new());
    let first = pair.add(Side::Client, socket(4096, 4096));
    let second = pair.add(Side::Client, socket(4096, 4096));
    let to = Connect::to((SERVER_V4, PORT));
    let a = pair.connect(first, to, Vec::new());
    let port_a = pair.tcp(Side::Client, first).local_endpoint().unwrap().port;
    assert!(EPHEMERAL_PORTS.contains(&port_a), "{port_a}");
    // The same instant and the same set: the second pick must step past the first.
    let b: client::Client<Vec<u8>> = pair.connect(second, to, Vec::new());
    let port_b = pair
        .tcp(Side::Client, second)
        .local_endpoint()
        .unwrap()
        .port;
    assert!(EPHEMERAL_PORTS.contains(&port_b), "{port_b}");
    assert_ne!(port_a, port_b);
    drop((a, b));
}
