//! The threaded adapters: a file read ahead on one thread and written behind on another, byte
//! exact, in order, with errors reported where they belong.

mod common;

use std::io::Cursor;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};

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

/// How long a test here may run: a hand-off that stops handing over leaves its reader or writer
/// waiting for ever, and a test must end either way.
const LIMIT: std::time::Duration = std::time::Duration::from_secs(30);

/// Ends the whole test program if the test holding it is still running after [`LIMIT`].
struct Watchdog(#[allow(dead_code)] std::sync::mpsc::Sender<()>);

impl Watchdog {
    fn arm(test: &'static str) -> Watchdog {
        let (alive, watched) = std::sync::mpsc::channel::<()>();
        std::thread::spawn(move || {
            // Dropping the watchdog (the test ended, or panicked) disconnects the channel.
            if let Err(std::sync::mpsc::RecvTimeoutError::Timeout) = watched.recv_timeout(LIMIT) {
                eprintln!("{test}: still running after {LIMIT:?}: it hangs");
                std::process::exit(101);
            }
        });
        Watchdog(alive)
    }
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
    let _hang = Watchdog::arm("a_file_read_ahead_in_small_chunks_arrives_in_order");
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
    let _hang = Watchdog::arm("a_read_error_arrives_after_every_byte_before_it");
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
    let _hang = Watchdog::arm("a_sink_written_behind_holds_everything_once_flushed");
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

/// Dropped without a flush, the sink still hands over what it took and waits for its thread.
#[test]
fn a_sink_dropped_unflushed_still_writes_what_it_took() {
    let _hang = Watchdog::arm("a_sink_dropped_unflushed_still_writes_what_it_took");
    let out = Shared::default();
    let mut sink = ThreadedSink::with_hand_off(out.clone(), HandOff { chunk: 4, depth: 2 });
    let mut taken = 0;
    while taken < 10 {
        taken += sink.write(&b"0123456789"[taken..]).unwrap();
    }
    drop(sink);
    assert_eq!(&out.0.lock().unwrap()[..], b"0123456789");
}

#[test]
fn a_write_error_is_reported_by_flush() {
    let _hang = Watchdog::arm("a_write_error_is_reported_by_flush");
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
    let _hang = Watchdog::arm("a_threaded_transfer_arrives_byte_exact");
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

/// How long a thread is given to show it would run further ahead than it should: it is already
/// running, so a bound it does not keep is broken within microseconds.
const SETTLE: std::time::Duration = std::time::Duration::from_millis(50);

/// Wait (up to five seconds) until `count` reaches `want`, then give the other thread time to
/// go past it, and return where it stopped.
fn settled(count: &AtomicUsize, want: usize) -> usize {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while count.load(Ordering::SeqCst) < want && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
    std::thread::sleep(SETTLE);
    count.load(Ordering::SeqCst)
}

/// A reader of `len` bytes that counts what it has handed out and notes any call that asks it
/// for nothing (which some readers answer as the end of the file).
struct Counted {
    file: Vec<u8>,
    at: usize,
    handed: Arc<AtomicUsize>,
    asked_for_nothing: Arc<AtomicBool>,
}

impl embedded_io::ErrorType for Counted {
    type Error = embedded_io::ErrorKind;
}

impl Read for Counted {
    fn read(&mut self, buf: &mut [u8]) -> Result<usize, embedded_io::ErrorKind> {
        if buf.is_empty() {
            self.asked_for_nothing.store(true, Ordering::SeqCst);
            return Ok(0);
        }
        let n = buf.len().min(self.file.len() - self.at);
        buf[..n].copy_from_slice(&self.file[self.at..self.at + n]);
        self.at += n;
        self.handed.fetch_add(n, Ordering::SeqCst);
        Ok(n)
    }
}

/// The reading thread holds `depth` chunks and no more: it reads a chunk further only when the
/// reader gives one back, so memory stays bounded however slow the connection is.
#[test]
fn a_reader_runs_ahead_by_its_depth_of_chunks_and_reuses_each_one_given_back() {
    let _hang =
        Watchdog::arm("a_reader_runs_ahead_by_its_depth_of_chunks_and_reuses_each_one_given_back");
    let file = bytes(200);
    let handed = Arc::new(AtomicUsize::new(0));
    let asked_for_nothing = Arc::new(AtomicBool::new(false));
    let counted = Counted {
        file: file.clone(),
        at: 0,
        handed: handed.clone(),
        asked_for_nothing: asked_for_nothing.clone(),
    };
    let (chunk, depth) = (SMALL.chunk, SMALL.depth);
    let mut reader = ThreadedReader::spawn(counted, SMALL);
    assert_eq!(
        settled(&handed, depth * chunk),
        depth * chunk,
        "read ahead before anything is read"
    );

    let mut got = vec![0u8; file.len()];
    // One byte: the first chunk is in the reader's hands, none is given back yet.
    assert_eq!(reader.read(&mut got[..1]).unwrap(), 1);
    assert_eq!(
        settled(&handed, depth * chunk),
        depth * chunk,
        "read ahead while the first chunk is being read"
    );
    // The rest of the first chunk and a byte of the second: the first goes back, and is filled.
    let mut at = 1;
    while at < chunk + 1 {
        at += reader.read(&mut got[at..chunk + 1]).unwrap();
    }
    assert_eq!(
        settled(&handed, (depth + 1) * chunk),
        (depth + 1) * chunk,
        "read ahead once the first chunk is given back"
    );

    loop {
        match reader.read(&mut got[at..]).unwrap() {
            0 => break,
            n => at += n,
        }
    }
    assert_eq!(at, file.len());
    assert!(got == file, "bytes differ from the file");
    assert!(
        !asked_for_nothing.load(Ordering::SeqCst),
        "the thread asked its reader for zero bytes"
    );
}

/// A writer that holds every write until the test opens its gate, and notes each write's size.
#[derive(Clone, Default)]
struct Gated {
    open: Arc<(Mutex<bool>, Condvar)>,
    written: Arc<Mutex<Vec<u8>>>,
    sizes: Arc<Mutex<Vec<usize>>>,
}

impl Gated {
    fn open(&self) {
        *self.open.0.lock().unwrap() = true;
        self.open.1.notify_all();
    }
}

impl std::io::Write for Gated {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let (open, changed) = &*self.open;
        let mut is_open = open.lock().unwrap();
        while !*is_open {
            is_open = changed.wait(is_open).unwrap();
        }
        self.written.lock().unwrap().extend_from_slice(buf);
        self.sizes.lock().unwrap().push(buf.len());
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Write all of `piece`, counting each byte the sink takes.
fn write_counted(
    sink: &mut ThreadedSink,
    mut piece: &[u8],
    taken: &AtomicUsize,
) -> Result<(), embedded_io::ErrorKind> {
    while !piece.is_empty() {
        let n = sink.write(piece)?;
        taken.fetch_add(n, Ordering::SeqCst);
        piece = &piece[n..];
    }
    Ok(())
}

/// Behind a writer that does not move (a stalled disk), the sink takes `depth + 1` chunks (the
/// queue and the one being filled) and then blocks: it does not buffer the file in memory.
/// Each chunk reaches the writer whole and no larger than a chunk.
#[test]
fn a_sink_behind_a_stalled_writer_takes_its_depth_of_chunks_and_then_waits() {
    let _hang =
        Watchdog::arm("a_sink_behind_a_stalled_writer_takes_its_depth_of_chunks_and_then_waits");
    let file = bytes(200);
    let writer = Gated::default();
    let taken = Arc::new(AtomicUsize::new(0));
    let (chunk, depth) = (SMALL.chunk, SMALL.depth);
    let writing = {
        let (file, writer, taken) = (file.clone(), writer.clone(), taken.clone());
        std::thread::spawn(move || {
            let mut sink = ThreadedSink::with_hand_off(writer, SMALL);
            // Writes of 3 bytes, so that chunks fill across writes.
            for piece in file.chunks(3) {
                write_counted(&mut sink, piece, &taken)?;
            }
            sink.flush()
        })
    };
    // One chunk in the stalled write, `depth - 1` queued behind it and a full one in the sink's
    // hands: the `depth + 1` chunks that exist. The next write waits for one to come back.
    let bound = (depth + 1) * chunk;
    let held = settled(&taken, bound);
    writer.open();
    let flushed = writing.join().expect("the writing thread");
    assert_eq!(held, bound, "bytes taken while the writer was stalled");
    assert_eq!(flushed, Ok(()));
    assert!(
        *writer.written.lock().unwrap() == file,
        "bytes differ from the file"
    );
    let sizes = writer.sizes.lock().unwrap();
    assert!(
        sizes.iter().all(|&n| n <= chunk),
        "a write larger than a chunk: {sizes:?}"
    );
    assert_eq!(sizes.iter().filter(|&&n| n < chunk).count(), 1, "{sizes:?}");
}
