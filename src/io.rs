//! Host adapters (feature `std`): files and `std::io` streams as sources and sinks.

use std::fs::File;
use std::path::PathBuf;
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::vec::Vec;

use crate::server::Source;

/// A `std::io` reader or writer usable as an `embedded_io` one.
#[derive(Debug)]
pub struct FromStd<T>(pub T);

/// A `std::io::Error` seen through `embedded_io`.
#[derive(Debug)]
pub struct StdError(pub std::io::Error);

impl core::fmt::Display for StdError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        self.0.fmt(f)
    }
}

impl core::error::Error for StdError {}

impl embedded_io::Error for StdError {
    fn kind(&self) -> embedded_io::ErrorKind {
        self.0.kind().into()
    }
}

impl<T> embedded_io::ErrorType for FromStd<T> {
    type Error = StdError;
}

impl<T: std::io::Read> embedded_io::Read for FromStd<T> {
    fn read(&mut self, buf: &mut [u8]) -> Result<usize, StdError> {
        loop {
            match self.0.read(buf) {
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                other => return other.map_err(StdError),
            }
        }
    }
}

impl<T: std::io::Write> embedded_io::Write for FromStd<T> {
    fn write(&mut self, buf: &[u8]) -> Result<usize, StdError> {
        loop {
            match self.0.write(buf) {
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                other => return other.map_err(StdError),
            }
        }
    }

    fn flush(&mut self) -> Result<(), StdError> {
        self.0.flush().map_err(StdError)
    }
}

/// A file on disk, opened afresh for every connection.
///
/// Reads go straight from the file into the socket's transmit buffer, in the buffer's own
/// chunk sizes: no `BufReader` and no second copy.
#[derive(Debug, Clone)]
pub struct FileSource {
    path: PathBuf,
}

impl FileSource {
    /// A source for `path`. Fails now, with the OS error, if the file cannot be opened, so a
    /// missing file is reported before any client connects.
    pub fn new(path: impl Into<PathBuf>) -> std::io::Result<Self> {
        let path = path.into();
        File::open(&path)?;
        Ok(FileSource { path })
    }
}

impl Source for FileSource {
    type Reader = FromStd<File>;

    fn open(&mut self) -> Result<FromStd<File>, embedded_io::ErrorKind> {
        File::open(&self.path)
            .map(FromStd)
            .map_err(|e| e.kind().into())
    }
}

/// Bytes handed from one thread to the other: a chunk of the file, or the reason there is none.
type Chunk = Result<Vec<u8>, embedded_io::ErrorKind>;

/// How big each chunk handed between threads is, and how many may wait between them.
///
/// The default, 4 chunks of 256 KiB, lets the other thread run up to a megabyte ahead (or
/// behind): large reads and writes for the kernel, and a bounded amount of memory (a reader's
/// thread holds at most `depth` chunks; a sink has at most `depth + 1`: those queued or being
/// written, and the one it fills).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HandOff {
    /// Bytes per chunk (at least 1).
    pub chunk: usize,
    /// Chunks waiting between the two threads (at least 1): the bound on memory and on how far
    /// one thread runs ahead.
    pub depth: usize,
}

impl HandOff {
    /// 4 chunks of 256 KiB.
    pub const DEFAULT: HandOff = HandOff {
        chunk: 256 << 10,
        depth: 4,
    };
}

impl Default for HandOff {
    fn default() -> Self {
        HandOff::DEFAULT
    }
}

/// A [`Source`] whose readers read on a thread of their own.
///
/// Each connection's reader is moved to a new thread that reads the file ahead in chunks and
/// hands them over through a bounded queue ([`HandOff`]), so reading the file overlaps the
/// protocol's work instead of interrupting it. The price is one more copy (chunk to socket
/// buffer) in the protocol's thread; the read itself (page cache to chunk) moves to the other
/// thread. Chunks are recycled: no allocation after the first `depth` chunks.
///
/// ```
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use embedded_io::Read;
/// use halfclose::io::{FileSource, ThreadedSource};
/// use halfclose::server::Source;
///
/// let path = std::env::temp_dir().join(format!("halfclose-doc-source-{}", std::process::id()));
/// std::fs::write(&path, b"The quick brown fox")?;
/// // A server opens one reader per connection; each reads the file on a thread of its own.
/// let mut source = ThreadedSource::new(FileSource::new(&path)?);
/// let mut reader = source.open().map_err(|kind| format!("{kind:?}"))?;
/// let mut buf = [0u8; 64];
/// let mut got = Vec::new();
/// loop {
///     match reader.read(&mut buf).map_err(|e| format!("{e:?}"))? {
///         0 => break,
///         n => got.extend_from_slice(&buf[..n]),
///     }
/// }
/// assert_eq!(got, b"The quick brown fox");
/// # std::fs::remove_file(&path)?;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct ThreadedSource<S> {
    inner: S,
    hand_off: HandOff,
}

impl<S> ThreadedSource<S> {
    /// Read `inner`'s readers ahead with [`HandOff::DEFAULT`].
    pub fn new(inner: S) -> Self {
        Self::with_hand_off(inner, HandOff::DEFAULT)
    }

    /// Read `inner`'s readers ahead with chunks of your choosing.
    pub fn with_hand_off(inner: S, hand_off: HandOff) -> Self {
        ThreadedSource { inner, hand_off }
    }
}

impl<S: Source> Source for ThreadedSource<S>
where
    S::Reader: Send + 'static,
{
    type Reader = ThreadedReader;

    fn open(&mut self) -> Result<ThreadedReader, embedded_io::ErrorKind> {
        Ok(ThreadedReader::spawn(self.inner.open()?, self.hand_off))
    }
}

/// A reader that reads on another thread (see [`ThreadedSource`]); also usable on its own.
///
/// `read` blocks until the other thread has read the next chunk (or reached the end of the
/// file), as a reader of a file does. Dropping it stops the thread at its next chunk.
#[derive(Debug)]
pub struct ThreadedReader {
    chunks: Receiver<Chunk>,
    free: SyncSender<Vec<u8>>,
    current: Vec<u8>,
    taken: usize,
    ended: bool,
}

impl ThreadedReader {
    /// Move `reader` to a new thread that reads it ahead.
    pub fn spawn<R>(reader: R, hand_off: HandOff) -> Self
    where
        R: embedded_io::Read + Send + 'static,
    {
        let depth = hand_off.depth.max(1);
        let chunk = hand_off.chunk.max(1);
        let (chunks_tx, chunks) = sync_channel::<Chunk>(depth);
        let (free, free_rx) = sync_channel::<Vec<u8>>(depth);
        std::thread::spawn(move || read_ahead(reader, chunk, depth, &chunks_tx, &free_rx));
        ThreadedReader {
            chunks,
            free,
            current: Vec::new(),
            taken: 0,
            ended: false,
        }
    }

    /// Read from `next` on, and give the spent chunk back (the thread may already be gone).
    fn replace_chunk(&mut self, next: Vec<u8>) {
        let used = core::mem::replace(&mut self.current, next);
        self.taken = 0;
        if used.capacity() > 0 {
            let _ = self.free.try_send(used);
        }
    }
}

/// The reading thread: fill chunks until the end of the file, an error, or a reader that hung up.
fn read_ahead<R: embedded_io::Read>(
    mut reader: R,
    chunk: usize,
    depth: usize,
    chunks: &SyncSender<Chunk>,
    free: &Receiver<Vec<u8>>,
) {
    let mut fresh = depth;
    loop {
        // At most `depth` chunks exist: a new one while fewer do, else one the reader gave back.
        let mut buf = if fresh > 0 {
            fresh -= 1;
            Vec::with_capacity(chunk)
        } else {
            match free.recv() {
                Ok(buf) => buf,
                Err(_) => return,
            }
        };
        buf.resize(chunk, 0);
        let (filled, result) = fill_chunk(&mut reader, &mut buf);
        buf.truncate(filled);
        let last = filled < chunk || result.is_err();
        // Sent even when empty (a file that ends on a chunk's edge): the reader passes over it.
        if chunks.send(Ok(buf)).is_err() {
            return;
        }
        if let Err(kind) = result {
            let _ = chunks.send(Err(kind));
        }
        if last {
            // The end of the file: dropping the sender tells the reader.
            return;
        }
    }
}

/// Fill `buf`, so the other side gets few large chunks, not many small ones: read until it is
/// full, the file ends or the reader fails. Returns how many bytes it holds, and the failure.
fn fill_chunk<R: embedded_io::Read>(
    reader: &mut R,
    buf: &mut [u8],
) -> (usize, Result<(), embedded_io::ErrorKind>) {
    let mut filled = 0;
    while filled < buf.len() {
        match reader.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) => return (filled, Err(embedded_io::Error::kind(&e))),
        }
    }
    (filled, Ok(()))
}

impl embedded_io::ErrorType for ThreadedReader {
    type Error = embedded_io::ErrorKind;
}

impl embedded_io::Read for ThreadedReader {
    fn read(&mut self, buf: &mut [u8]) -> Result<usize, embedded_io::ErrorKind> {
        if buf.is_empty() {
            return Ok(0);
        }
        while self.taken == self.current.len() {
            if self.ended {
                return Ok(0);
            }
            match self.chunks.recv() {
                Ok(Ok(next)) => self.replace_chunk(next),
                Ok(Err(kind)) => {
                    self.ended = true;
                    return Err(kind);
                }
                Err(_) => self.ended = true,
            }
        }
        let n = buf.len().min(self.current.len() - self.taken);
        buf[..n].copy_from_slice(&self.current[self.taken..self.taken + n]);
        self.taken += n;
        Ok(n)
    }
}

/// What the writing thread is asked to do.
enum Job {
    /// Write this chunk, then give it back.
    Write(Vec<u8>),
    /// Flush, and answer with the first error since the last flush, if any.
    Flush(SyncSender<Result<(), embedded_io::ErrorKind>>),
}

/// A sink that writes on a thread of its own.
///
/// `write` copies into a chunk and returns; full chunks go through a bounded queue
/// ([`HandOff`]) to a thread that writes them to the inner writer, so writing the file overlaps
/// the protocol's work. `flush` hands over what is left, waits until the thread has written
/// and flushed everything, and reports the first write error; an error also shows at the next
/// `write` after the thread met it. The price is one more copy (socket buffer to chunk) in the
/// protocol's thread; the write itself (chunk to page cache) moves to the other thread.
///
/// Dropping it without `flush` still writes everything (waiting for the thread), but any error
/// is lost: flush first, as [`Client`](crate::client::Client) does when the file ends.
///
/// ```
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use embedded_io::Write;
/// use halfclose::io::ThreadedSink;
///
/// let path = std::env::temp_dir().join(format!("halfclose-doc-sink-{}", std::process::id()));
/// // A client's sink: the file is written on a thread of its own.
/// let mut sink = ThreadedSink::new(std::fs::File::create(&path)?);
/// sink.write_all(b"The quick brown fox").map_err(|e| format!("{e:?}"))?;
/// // Flush waits for the thread and reports its first error.
/// sink.flush().map_err(|e| format!("{e:?}"))?;
/// assert_eq!(std::fs::read(&path)?, b"The quick brown fox");
/// # std::fs::remove_file(&path)?;
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct ThreadedSink {
    jobs: Option<SyncSender<Job>>,
    free: Receiver<Vec<u8>>,
    errors: Receiver<embedded_io::ErrorKind>,
    current: Vec<u8>,
    chunk: usize,
    fresh: usize,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl ThreadedSink {
    /// Write to `writer` on a new thread, with [`HandOff::DEFAULT`].
    pub fn new<W: std::io::Write + Send + 'static>(writer: W) -> Self {
        Self::with_hand_off(writer, HandOff::DEFAULT)
    }

    /// Write to `writer` on a new thread, with chunks of your choosing.
    pub fn with_hand_off<W: std::io::Write + Send + 'static>(writer: W, hand_off: HandOff) -> Self {
        let depth = hand_off.depth.max(1);
        let chunk = hand_off.chunk.max(1);
        let (jobs, jobs_rx) = sync_channel::<Job>(depth);
        // `depth + 1` chunks exist and the sink always holds one: `depth` can come back at once.
        let (free_tx, free) = sync_channel::<Vec<u8>>(depth);
        let (errors_tx, errors) = sync_channel::<embedded_io::ErrorKind>(1);
        let thread =
            std::thread::spawn(move || write_behind(writer, &jobs_rx, &free_tx, &errors_tx));
        ThreadedSink {
            jobs: Some(jobs),
            free,
            errors,
            current: Vec::with_capacity(chunk),
            chunk,
            // `current` is one of the chunks.
            fresh: depth,
            thread: Some(thread),
        }
    }

    /// Hand the current chunk to the thread and take an empty one (a new one while fewer than
    /// `depth` exist, else one the thread gave back, waiting for it if need be).
    fn hand_over(&mut self) -> Result<(), embedded_io::ErrorKind> {
        let next = if self.fresh > 0 {
            self.fresh -= 1;
            Vec::with_capacity(self.chunk)
        } else {
            self.free.recv().map_err(|_| self.thread_error())?
        };
        let full = core::mem::replace(&mut self.current, next);
        self.send(Job::Write(full))
    }

    fn send(&mut self, job: Job) -> Result<(), embedded_io::ErrorKind> {
        match &self.jobs {
            Some(jobs) => jobs.send(job).map_err(|_| self.thread_error()),
            None => Err(embedded_io::ErrorKind::BrokenPipe),
        }
    }

    /// The error the thread reported, or a broken pipe if it is gone without one (it panicked).
    fn thread_error(&self) -> embedded_io::ErrorKind {
        self.errors
            .try_recv()
            .unwrap_or(embedded_io::ErrorKind::BrokenPipe)
    }
}

/// The writing thread: write each chunk and give it back; after an error, drop the rest and
/// report the error once, at the next flush or as soon as the sink looks.
fn write_behind<W: std::io::Write>(
    mut writer: W,
    jobs: &Receiver<Job>,
    free: &SyncSender<Vec<u8>>,
    errors: &SyncSender<embedded_io::ErrorKind>,
) {
    let mut failed: Option<embedded_io::ErrorKind> = None;
    for job in jobs {
        match job {
            Job::Write(mut chunk) => {
                if failed.is_none()
                    && let Err(e) = writer.write_all(&chunk)
                {
                    let kind = e.kind().into();
                    failed = Some(kind);
                    let _ = errors.try_send(kind);
                }
                chunk.clear();
                let _ = free.try_send(chunk);
            }
            Job::Flush(answer) => {
                let result = match failed {
                    Some(kind) => Err(kind),
                    None => writer.flush().map_err(|e| e.kind().into()),
                };
                let _ = answer.send(result);
            }
        }
    }
}

impl embedded_io::ErrorType for ThreadedSink {
    type Error = embedded_io::ErrorKind;
}

impl embedded_io::Write for ThreadedSink {
    fn write(&mut self, buf: &[u8]) -> Result<usize, embedded_io::ErrorKind> {
        if let Ok(kind) = self.errors.try_recv() {
            return Err(kind);
        }
        if buf.is_empty() {
            return Ok(0);
        }
        if self.current.len() == self.chunk {
            self.hand_over()?;
        }
        let n = buf.len().min(self.chunk - self.current.len());
        self.current.extend_from_slice(&buf[..n]);
        Ok(n)
    }

    fn flush(&mut self) -> Result<(), embedded_io::ErrorKind> {
        if !self.current.is_empty() {
            self.hand_over()?;
        }
        let (answer, result) = sync_channel(1);
        self.send(Job::Flush(answer))?;
        result.recv().map_err(|_| self.thread_error())?
    }
}

impl Drop for ThreadedSink {
    fn drop(&mut self) {
        if !self.current.is_empty() {
            let _ = self.hand_over();
        }
        // Hanging up ends the thread once it has written what it holds.
        self.jobs = None;
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io;
    use std::string::ToString;

    use embedded_io::{Error as _, Read, Write};

    use super::*;

    /// A `std::io` stream interrupted (`EINTR`) on every other call, that moves at most three
    /// bytes a call and fails with `fail` once `limit` bytes have moved (its flush too). It
    /// panics when called again and again after failing: a caller that retries any error
    /// would never stop.
    struct Flaky {
        interrupt: bool,
        moved: usize,
        limit: usize,
        fail: io::ErrorKind,
        calls_after_failing: u32,
    }

    impl Flaky {
        fn new(limit: usize, fail: io::ErrorKind) -> Flaky {
            Flaky {
                interrupt: false,
                moved: 0,
                limit,
                fail,
                calls_after_failing: 0,
            }
        }

        fn call(&mut self, len: usize) -> io::Result<usize> {
            self.interrupt = !self.interrupt;
            if self.interrupt {
                return Err(io::ErrorKind::Interrupted.into());
            }
            if self.moved == self.limit {
                self.calls_after_failing += 1;
                assert!(self.calls_after_failing < 100, "a failure retried for ever");
                return Err(self.fail.into());
            }
            let n = len.min(self.limit - self.moved).min(3);
            self.moved += n;
            Ok(n)
        }
    }

    impl io::Read for Flaky {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let n = self.call(buf.len())?;
            buf[..n].fill(7);
            Ok(n)
        }
    }

    impl io::Write for Flaky {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.call(buf.len())
        }

        fn flush(&mut self) -> io::Result<()> {
            if self.moved == self.limit {
                return Err(self.fail.into());
            }
            Ok(())
        }
    }

    #[test]
    fn a_std_reader_interrupted_is_read_again_and_its_failure_is_passed_on_with_its_kind() {
        let mut reader = FromStd(Flaky::new(5, io::ErrorKind::BrokenPipe));
        let mut buf = [0u8; 8];
        assert_eq!(reader.read(&mut buf).unwrap(), 3);
        assert_eq!(reader.read(&mut buf).unwrap(), 2);
        let e = reader.read(&mut buf).unwrap_err();
        assert_eq!(e.kind(), embedded_io::ErrorKind::BrokenPipe);
        assert_eq!(
            e.to_string(),
            io::Error::from(io::ErrorKind::BrokenPipe).to_string()
        );
    }

    #[test]
    fn a_std_writer_interrupted_is_written_again_and_its_failures_are_passed_on_with_their_kind() {
        let mut writer = FromStd(Flaky::new(4, io::ErrorKind::StorageFull));
        writer.flush().unwrap();
        assert_eq!(writer.write(&[1; 8]).unwrap(), 3);
        assert_eq!(writer.write(&[1; 8]).unwrap(), 1);
        let e = writer.write(&[1; 8]).unwrap_err();
        assert_eq!(e.0.kind(), io::ErrorKind::StorageFull);
        assert_eq!(
            writer.flush().unwrap_err().0.kind(),
            io::ErrorKind::StorageFull
        );
    }

    #[test]
    fn the_default_hand_off_is_four_chunks_of_256_kib() {
        assert_eq!(
            HandOff::default(),
            HandOff {
                chunk: 256 * 1024,
                depth: 4
            }
        );
    }
}
