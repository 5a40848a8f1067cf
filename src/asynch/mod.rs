//! The same transfer for async programs (feature `async`): [`serve`] and [`fetch`] one connection
//! over any [`embedded_io_async`] stream that can also close its write side ([`HalfClose`]).
//!
//! The sync side drives a `smoltcp 0.14` socket through sans-IO state machines; here the transport
//! is the caller's (embassy-net's `TcpSocket`, a tokio `TcpStream`, ...) and the exchange is one
//! `async fn` per side, written once for all of them:
//!
//! ```text
//!  serve:  write the file ─► flush (acknowledged) ─► close_write (FIN acknowledged) ─► read the reply to EOF
//!  fetch:  read the file to EOF ─► write "Thank you\0" ─► close_write (FIN acknowledged)
//! ```
//!
//! The wire behaviour is the sync side's: the server's FIN leaves only once the client has
//! acknowledged the whole file (where the transport can tell: [`HalfClose::ACKNOWLEDGED`]), the
//! server accepts exactly [`REPLY`] and ends the connection at the first byte that rules it out
//! (so never reads more than [`REPLY_MAX`](crate::REPLY_MAX) bytes), and every phase is bounded
//! by its [`Timeouts`] limit, failing with the same typed [`Error`].
//!
//! # Time without an executor
//!
//! The library does not pick an executor: timeouts come from a [`Clock`] the caller passes in,
//! which tells the time and sleeps until a deadline. `embassy::EmbassyClock` (feature `embassy`)
//! uses `embassy-time`, `tokio::TokioClock` (feature `tokio`) uses tokio's timer; any other
//! runtime needs the two methods. Each await on the stream (one read, one write, one flush, the
//! close) is raced against the clock with the current phase's limit, so "nothing moved for that
//! long" means here "no single stream operation completed for that long".
//!
//! # Connecting
//!
//! [`serve`] and [`fetch`] take a connected stream: accepting and connecting are the transport's
//! own calls (the `embassy` module has helpers that map their errors to [`Error`], bound a
//! server's handshake by [`Timeouts::handshake`] and a client's by [`Timeouts::connect`]).

use core::future::{Future, poll_fn};
use core::pin::pin;
use core::task::Poll;

use embedded_io::Error as _;
use embedded_io_async::{ErrorKind, Read, Write};
use smoltcp::time::{Duration, Instant};

use crate::macros::{debug, trace};
use crate::{Error, Phase, REPLY, Reply, Timeouts};

#[cfg(feature = "embassy")]
pub mod embassy;
#[cfg(feature = "tokio")]
pub mod tokio;

/// How many bytes move per read or write call, on each side.
pub const CHUNK: usize = 1024;

/// The one thing `embedded-io-async` streams lack: closing the write side only.
///
/// `Write::flush` and [`close_write`](HalfClose::close_write) wait for the peer's acknowledgement
/// where the transport can tell ([`ACKNOWLEDGED`](HalfClose::ACKNOWLEDGED) is then `true`):
/// embassy-net's `TcpSocket` can, the kernel's sockets cannot (`flush` and `shutdown` return
/// once the kernel has the data).
#[allow(async_fn_in_trait)]
pub trait HalfClose: Read + Write {
    /// Whether `flush` returns only once everything written is acknowledged by the peer, and
    /// `close_write` only once the FIN is.
    const ACKNOWLEDGED: bool;

    /// Queue a FIN after everything written (`shutdown(SHUT_WR)`), keep the read side open, and,
    /// where the transport can tell, wait until the peer has acknowledged the FIN.
    async fn close_write(&mut self) -> Result<(), Self::Error>;
}

/// Time for the phase timeouts, from whatever runtime the program uses.
pub trait Clock {
    /// The current time (any fixed origin).
    fn now(&self) -> Instant;

    /// Wait until `deadline` (return at once when it has passed).
    fn sleep_until(&self, deadline: Instant) -> impl Future<Output = ()>;
}

/// What a finished [`serve`] did, and when (times from the [`Clock`]).
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct ServeReport {
    /// File bytes sent (all of them acknowledged where the transport can tell).
    pub bytes: u64,
    /// The client's reply (exactly `"Thank you\0"` in a report; anything else is an error).
    pub reply: Reply,
    /// When `serve` was called, on the connected stream.
    pub started_at: Instant,
    /// When the file was flushed and the FIN queued: the half-close.
    pub fin_queued_at: Instant,
    /// When the client had acknowledged the FIN (`None` where the transport cannot tell).
    pub fin_acked_at: Option<Instant>,
    /// When the first byte of the reply was read.
    pub reply_at: Instant,
    /// When the client's FIN ended the reply and the transfer.
    pub finished_at: Instant,
}

impl ServeReport {
    /// From `serve` to the client's FIN.
    pub fn duration(&self) -> Duration {
        self.finished_at - self.started_at
    }
}

/// What a finished [`fetch`] did, and when (times from the [`Clock`]).
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct FetchReport {
    /// File bytes received and written to the sink.
    pub bytes: u64,
    /// When `fetch` was called, on the connected stream.
    pub started_at: Instant,
    /// When the server's FIN was read: the file is complete.
    pub eof_at: Instant,
    /// When the reply and our FIN were handed over (and, where the transport can tell,
    /// acknowledged).
    pub finished_at: Instant,
    /// Whether `finished_at` is the server's acknowledgement ([`HalfClose::ACKNOWLEDGED`]).
    pub acknowledged: bool,
}

impl FetchReport {
    /// From `fetch` to the end of the file.
    pub fn transfer_time(&self) -> Duration {
        self.eof_at - self.started_at
    }
}

/// Serve `file` on a connected stream: write all of it, wait until it is acknowledged,
/// half-close, read the client's reply to EOF and check that it is exactly [`REPLY`] (ending at
/// the first byte that rules that out).
///
/// Limits, as on the sync server: each write, the flush and the close within
/// [`Timeouts::idle`], and at least [`Timeouts::min_rate`] bytes a second per `idle` window
/// (counted as the stream takes them); the whole reply phase within [`Timeouts::reply`]. On a
/// transport that acknowledges ([`HalfClose::ACKNOWLEDGED`]) `serve` returns only after
/// [`Timeouts::linger`], so the socket can still acknowledge a retransmitted FIN.
///
/// Errors name the phase; `bytes` in them counts file bytes written to the stream (after a
/// successful flush on an [`ACKNOWLEDGED`](HalfClose::ACKNOWLEDGED) transport, acknowledged ones).
/// After an error the stream is left as it is: abort or drop it (for embassy-net, `abort()` and
/// then `flush()` so the RST leaves).
///
/// Serving a BSD-sockets client (plain `std::net`: read to EOF, write the reply, close), on
/// tokio:
///
/// ```
/// # #[cfg(feature = "tokio")]
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use std::io::{Read, Write};
/// use halfclose::Timeouts;
/// use halfclose::asynch::serve;
/// use halfclose::asynch::tokio::{Stream, TokioClock};
///
/// let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
/// let listener = runtime.block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))?;
/// let addr = listener.local_addr()?;
/// let client = std::thread::spawn(move || -> std::io::Result<Vec<u8>> {
///     let mut stream = std::net::TcpStream::connect(addr)?;
///     let mut file = Vec::new();
///     stream.read_to_end(&mut file)?; // until the server's FIN
///     stream.write_all(b"Thank you\0")?;
///     Ok(file)
/// });
/// let report = runtime.block_on(async {
///     let (stream, _) = listener.accept().await?;
///     let file: &[u8] = b"The quick brown fox";
///     Ok::<_, Box<dyn std::error::Error>>(serve(&mut Stream(stream), file, &TokioClock::new(), Timeouts::DEFAULT).await?)
/// })?;
/// assert!(report.reply.is_thank_you());
/// assert_eq!(client.join().unwrap()?, b"The quick brown fox");
/// # Ok(()) }
/// # #[cfg(not(feature = "tokio"))]
/// # fn main() {}
/// ```
pub async fn serve<S, R, C>(
    stream: &mut S,
    mut file: R,
    clock: &C,
    timeouts: Timeouts,
) -> Result<ServeReport, Error>
where
    S: HalfClose,
    R: embedded_io::Read,
    C: Clock,
{
    let started_at = clock.now();
    let mut buf = [0u8; CHUNK];
    let mut sent = 0u64;
    // The rate floor (`Timeouts::min_rate`): each window of `idle` must see that many bytes a
    // second taken by the stream, so a client that reads a byte now and then cannot keep the
    // connection for ever (each write alone is bounded by `idle`).
    let mut floor = RateFloor::new(started_at, timeouts);
    debug!("halfclose async server: sending");
    loop {
        let n = file.read(&mut buf).map_err(|e| Error::Source {
            kind: e.kind(),
            bytes: sent,
        })?;
        if n == 0 {
            break;
        }
        let mut chunk = &buf[..n];
        while !chunk.is_empty() {
            let k = write_some(stream, chunk, clock, timeouts.idle, Phase::Transfer, sent).await?;
            chunk = &chunk[k..];
            sent += k as u64;
            floor.check(clock.now(), sent)?;
        }
    }
    // The FIN travels alone, after the client has acknowledged every byte: smoltcp (0.13 inside
    // embassy-net as well as 0.14) drops a FIN that rides on data the receiver already holds
    // out of order, and then stalls (see the README). On the kernel's sockets flush returns at
    // once and the kernel places its FIN itself.
    timed(clock, timeouts.idle, Phase::Transfer, sent, stream.flush()).await?;
    let fin_queued_at = clock.now();
    debug!("halfclose async server: sending({})=>half-closed", sent);
    // Until the FIN is acknowledged the transfer is not over (the sync side's phases).
    timed(
        clock,
        timeouts.idle,
        Phase::Transfer,
        sent,
        stream.close_write(),
    )
    .await?;
    let fin_acked_at = S::ACKNOWLEDGED.then(|| clock.now());

    // The whole reply phase, "Thank you\0" and the client's FIN, has `reply` in all.
    let reply_deadline = clock.now() + timeouts.reply;
    let mut reply = Reply::new();
    let mut reply_at = None;
    loop {
        let limit = reply_deadline - clock.now().min(reply_deadline);
        let n = timed(clock, limit, Phase::Reply, sent, stream.read(&mut buf)).await?;
        if n == 0 {
            break;
        }
        trace!("halfclose async server: {} reply bytes", n);
        reply_at.get_or_insert_with(|| clock.now());
        // End at the first byte that cannot belong to "Thank you\0", as the sync server does: a
        // wrong or endless reply must not hold the connection until a timeout.
        let (_, verdict) = reply.feed(&buf[..n]);
        verdict.check(reply, false, sent)?;
    }
    // The client has closed: the reply must be whole.
    reply.verdict().check(reply, true, sent)?;
    let finished_at = clock.now();
    debug!("halfclose async server: half-closed({})=>done", sent);
    // On a stack in this program (embassy-net), the socket is in TIME-WAIT and may have to
    // acknowledge a retransmitted FIN if our last ACK was lost; dropping or re-listening it
    // would answer with a RST. Keep it for `linger`, as the sync server's slot does. The
    // kernel keeps its own TIME-WAIT.
    if S::ACKNOWLEDGED && timeouts.linger > Duration::ZERO {
        clock.sleep_until(finished_at + timeouts.linger).await;
    }
    Ok(ServeReport {
        bytes: sent,
        reply,
        started_at,
        fin_queued_at,
        fin_acked_at,
        reply_at: reply_at.unwrap_or(finished_at),
        finished_at,
    })
}

/// Fetch a file from a connected stream into `sink`: read to EOF, then write [`REPLY`] and
/// half-close (waiting for the acknowledgement where the transport can tell).
///
/// Every byte received is in the sink whatever the outcome; errors carry how many. EOF is the
/// only end of a file: a reset is an [`Error::Reset`] in the transfer phase, never a short file
/// reported as complete (on embassy-net, create the socket with
/// `embassy::client_socket` so smoltcp's window-edge truncation cannot happen either).
///
/// Fetching from a BSD-sockets server (plain `std::net`: write the file,
/// `shutdown(SHUT_WR)`, one read of the reply), on tokio:
///
/// ```
/// # #[cfg(feature = "tokio")]
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use std::io::{Read, Write};
/// use halfclose::Timeouts;
/// use halfclose::asynch::fetch;
/// use halfclose::asynch::tokio::{Stream, TokioClock};
/// use halfclose::io::FromStd;
///
/// let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
/// let addr = listener.local_addr()?;
/// let server = std::thread::spawn(move || -> std::io::Result<Vec<u8>> {
///     let (mut stream, _) = listener.accept()?;
///     stream.write_all(b"The quick brown fox")?;
///     stream.shutdown(std::net::Shutdown::Write)?; // the half-close
///     let mut reply = [0u8; 1024];
///     let n = stream.read(&mut reply)?;
///     Ok(reply[..n].to_vec())
/// });
/// let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
/// let mut copy = Vec::new();
/// let report = runtime.block_on(async {
///     let mut stream = Stream(tokio::net::TcpStream::connect(addr).await?);
///     Ok::<_, Box<dyn std::error::Error>>(fetch(&mut stream, FromStd(&mut copy), &TokioClock::new(), Timeouts::DEFAULT).await?)
/// })?;
/// assert_eq!(report.bytes, 19);
/// assert_eq!(copy, b"The quick brown fox");
/// assert_eq!(server.join().unwrap()?, b"Thank you\0");
/// # Ok(()) }
/// # #[cfg(not(feature = "tokio"))]
/// # fn main() {}
/// ```
pub async fn fetch<S, W, C>(
    stream: &mut S,
    mut sink: W,
    clock: &C,
    timeouts: Timeouts,
) -> Result<FetchReport, Error>
where
    S: HalfClose,
    W: embedded_io::Write,
    C: Clock,
{
    let started_at = clock.now();
    let mut buf = [0u8; CHUNK];
    let mut received = 0u64;
    debug!("halfclose async client: receiving");
    loop {
        let n = timed(
            clock,
            timeouts.idle,
            Phase::Transfer,
            received,
            stream.read(&mut buf),
        )
        .await?;
        if n == 0 {
            break;
        }
        let mut chunk = &buf[..n];
        while !chunk.is_empty() {
            match sink.write(chunk) {
                // A sink that accepts nothing of a non-empty buffer is full.
                Ok(0) => {
                    return Err(Error::Sink {
                        kind: ErrorKind::WriteZero,
                        bytes: received,
                    });
                }
                Ok(k) => {
                    chunk = &chunk[k..];
                    received += k as u64;
                }
                Err(e) => {
                    return Err(Error::Sink {
                        kind: e.kind(),
                        bytes: received,
                    });
                }
            }
        }
    }
    sink.flush().map_err(|e| Error::Sink {
        kind: e.kind(),
        bytes: received,
    })?;
    let eof_at = clock.now();
    debug!("halfclose async client: receiving({})=>replying", received);
    write_all(stream, REPLY, clock, timeouts, Phase::Reply, received).await?;
    // The reply is our last word: the FIN follows it.
    timed(
        clock,
        timeouts.reply,
        Phase::Reply,
        received,
        stream.close_write(),
    )
    .await?;
    debug!("halfclose async client: replying({})=>done", received);
    Ok(FetchReport {
        bytes: received,
        started_at,
        eof_at,
        finished_at: clock.now(),
        acknowledged: S::ACKNOWLEDGED,
    })
}

/// The server's rate floor ([`Timeouts::min_rate`]): each window of [`Timeouts::idle`] must see
/// that many bytes a second taken by the stream, so a client that reads a byte now and then
/// cannot keep the connection for ever (each write alone is bounded by `idle`).
struct RateFloor {
    /// Bytes a window must move (0: no floor).
    floor: u64,
    span: Duration,
    start: Instant,
    sent_at_start: u64,
}

impl RateFloor {
    fn new(now: Instant, timeouts: Timeouts) -> Self {
        RateFloor {
            floor: u64::from(timeouts.min_rate) * timeouts.idle.total_millis() / 1000,
            span: timeouts.idle,
            start: now,
            sent_at_start: 0,
        }
    }

    fn check(&mut self, now: Instant, sent: u64) -> Result<(), Error> {
        if self.floor == 0 || now < self.start + self.span {
            return Ok(());
        }
        if sent - self.sent_at_start < self.floor {
            debug!(
                "halfclose async server: {} bytes in {}, under the floor of {}",
                sent - self.sent_at_start,
                now - self.start,
                self.floor
            );
            return Err(Error::TimedOut {
                phase: Phase::Transfer,
                bytes: sent,
            });
        }
        self.start = now;
        self.sent_at_start = sent;
        Ok(())
    }
}

/// One write, bounded by `limit`; returns how many bytes the stream took (at least one).
async fn write_some<S: Write, C: Clock>(
    stream: &mut S,
    bytes: &[u8],
    clock: &C,
    limit: Duration,
    phase: Phase,
    before: u64,
) -> Result<usize, Error> {
    let n = timed(clock, limit, phase, before, stream.write(bytes)).await?;
    if n == 0 {
        // A stream that takes nothing is closed (embedded-io: `WriteZero`).
        return Err(stream_error(ErrorKind::WriteZero, phase, before));
    }
    Ok(n)
}

/// Write all of `bytes`, each write bounded by the phase's limit.
async fn write_all<S: Write, C: Clock>(
    stream: &mut S,
    mut bytes: &[u8],
    clock: &C,
    timeouts: Timeouts,
    phase: Phase,
    before: u64,
) -> Result<(), Error> {
    while !bytes.is_empty() {
        let n = write_some(stream, bytes, clock, timeouts.limit(phase), phase, before).await?;
        bytes = &bytes[n..];
    }
    Ok(())
}

/// A failed stream operation as a transfer error: a transport's own timeout is a timeout,
/// anything else ends the connection as a reset does.
fn stream_error(kind: ErrorKind, phase: Phase, bytes: u64) -> Error {
    match kind {
        ErrorKind::TimedOut => Error::TimedOut { phase, bytes },
        _ => Error::Reset { phase, bytes },
    }
}

/// One stream operation, bounded by `limit`: the clock running out is a timeout in `phase`, a
/// stream error the connection's end there ([`stream_error`]); `bytes` is the file bytes so far.
async fn timed<C: Clock, T, E: embedded_io::Error>(
    clock: &C,
    limit: Duration,
    phase: Phase,
    bytes: u64,
    operation: impl Future<Output = Result<T, E>>,
) -> Result<T, Error> {
    within(clock, limit, operation)
        .await
        .ok_or(Error::TimedOut { phase, bytes })?
        .map_err(|e| stream_error(e.kind(), phase, bytes))
}

/// Run `future` until it completes or `limit` has passed on `clock` (then `None`).
pub async fn within<C: Clock, F: Future>(
    clock: &C,
    limit: Duration,
    future: F,
) -> Option<F::Output> {
    let deadline = clock.now() + limit;
    let mut future = pin!(future);
    let mut sleep = pin!(clock.sleep_until(deadline));
    poll_fn(|cx| {
        if let Poll::Ready(output) = future.as_mut().poll(cx) {
            return Poll::Ready(Some(output));
        }
        match sleep.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(None),
            Poll::Pending => Poll::Pending,
        }
    })
    .await
}

#[cfg(test)]
mod tests {
    //! The exchange's order and timeouts on a scripted stream and a simulated clock, polled by
    //! hand: no runtime, no sockets.

    use core::cell::Cell;
    use core::convert::Infallible;
    use core::pin::pin;
    use core::task::{Context, Poll, Waker};
    use std::vec::Vec;

    use super::*;

    /// Simulated time: sleeping jumps the clock to the deadline.
    struct SimClock(Cell<Instant>);

    impl Clock for SimClock {
        fn now(&self) -> Instant {
            self.0.get()
        }

        async fn sleep_until(&self, deadline: Instant) {
            if self.0.get() < deadline {
                self.0.set(deadline);
            }
        }
    }

    #[derive(Debug, PartialEq)]
    enum Event {
        Write(usize),
        Flush,
        CloseWrite,
        Read(usize),
    }

    /// A peer that acknowledges at once and then sends `reply`, or never answers (`None`).
    struct Scripted {
        events: Vec<Event>,
        incoming: Option<Vec<u8>>,
    }

    impl embedded_io_async::ErrorType for Scripted {
        type Error = Infallible;
    }

    impl Read for Scripted {
        async fn read(&mut self, buf: &mut [u8]) -> Result<usize, Infallible> {
            let Some(incoming) = self.incoming.as_mut() else {
                // A silent peer: this read never completes.
                return core::future::pending().await;
            };
            let n = buf.len().min(incoming.len());
            buf[..n].copy_from_slice(&incoming[..n]);
            incoming.drain(..n);
            self.events.push(Event::Read(n));
            Ok(n)
        }
    }

    impl Write for Scripted {
        async fn write(&mut self, buf: &[u8]) -> Result<usize, Infallible> {
            // A transport that takes at most 700 bytes per call.
            let n = buf.len().min(700);
            self.events.push(Event::Write(n));
            Ok(n)
        }

        async fn flush(&mut self) -> Result<(), Infallible> {
            self.events.push(Event::Flush);
            Ok(())
        }
    }

    impl HalfClose for Scripted {
        const ACKNOWLEDGED: bool = true;

        async fn close_write(&mut self) -> Result<(), Infallible> {
            self.events.push(Event::CloseWrite);
            Ok(())
        }
    }

    /// Poll `future` to completion; the scripted stream and clock never leave it pending for long.
    fn block_on<F: Future>(future: F) -> F::Output {
        let mut future = pin!(future);
        let mut cx = Context::from_waker(Waker::noop());
        for _ in 0..10_000 {
            if let Poll::Ready(output) = future.as_mut().poll(&mut cx) {
                return output;
            }
        }
        panic!("the future did not finish in 10000 polls");
    }

    #[test]
    fn server_half_closes_only_after_the_whole_file_is_flushed() {
        let file = [7u8; 3000];
        let mut stream = Scripted {
            events: Vec::new(),
            incoming: Some(REPLY.to_vec()),
        };
        let clock = SimClock(Cell::new(Instant::ZERO));
        let report = block_on(serve(&mut stream, &file[..], &clock, Timeouts::DEFAULT)).unwrap();
        assert_eq!(report.bytes, 3000);
        assert!(report.reply.is_thank_you());
        assert!(report.fin_acked_at.is_some());
        let written: usize = stream
            .events
            .iter()
            .map(|e| if let Event::Write(n) = e { *n } else { 0 })
            .sum();
        assert_eq!(written, 3000);
        let flush = stream.events.iter().position(|e| *e == Event::Flush);
        let close = stream.events.iter().position(|e| *e == Event::CloseWrite);
        let last_write = stream
            .events
            .iter()
            .rposition(|e| matches!(e, Event::Write(_)));
        assert!(last_write < flush && flush < close, "{:?}", stream.events);
        assert!(
            stream.events[close.unwrap()..]
                .iter()
                .skip(1)
                .all(|e| matches!(e, Event::Read(_))),
            "after the FIN the server only reads: {:?}",
            stream.events
        );
    }

    #[test]
    fn client_replies_then_half_closes_after_eof() {
        let mut stream = Scripted {
            events: Vec::new(),
            incoming: Some(b"the file".to_vec()),
        };
        let clock = SimClock(Cell::new(Instant::ZERO));
        let mut sink = [0u8; 16];
        let report =
            block_on(fetch(&mut stream, &mut sink[..], &clock, Timeouts::DEFAULT)).unwrap();
        assert_eq!(report.bytes, 8);
        assert!(report.acknowledged);
        assert_eq!(&sink[..8], b"the file");
        assert_eq!(
            stream.events,
            [
                Event::Read(8),
                Event::Read(0),
                Event::Write(REPLY.len()),
                Event::CloseWrite
            ]
        );
    }

    #[test]
    fn client_times_out_in_the_transfer_phase_when_the_server_is_silent() {
        let mut stream = Scripted {
            events: Vec::new(),
            incoming: None,
        };
        let clock = SimClock(Cell::new(Instant::ZERO));
        let timeouts = Timeouts::all(Duration::from_secs(5));
        let result = block_on(fetch(&mut stream, &mut [0u8; 4][..], &clock, timeouts));
        assert_eq!(
            result,
            Err(Error::TimedOut {
                phase: Phase::Transfer,
                bytes: 0
            })
        );
        assert_eq!(clock.now(), Instant::ZERO + Duration::from_secs(5));
    }

    #[test]
    fn server_times_out_in_the_reply_phase_when_the_client_is_silent() {
        let mut stream = Scripted {
            events: Vec::new(),
            incoming: None,
        };
        let clock = SimClock(Cell::new(Instant::ZERO));
        let result = block_on(serve(&mut stream, &b"file"[..], &clock, Timeouts::DEFAULT));
        assert_eq!(
            result,
            Err(Error::TimedOut {
                phase: Phase::Reply,
                bytes: 4
            })
        );
        assert_eq!(clock.now(), Instant::ZERO + Timeouts::DEFAULT.reply);
    }

    /// A client that takes one byte every 10 s: inside every idle limit, far under the floor.
    struct Trickle<'a> {
        clock: &'a SimClock,
        taken: u64,
    }

    impl embedded_io_async::ErrorType for Trickle<'_> {
        type Error = Infallible;
    }

    impl Read for Trickle<'_> {
        async fn read(&mut self, _buf: &mut [u8]) -> Result<usize, Infallible> {
            core::future::pending().await
        }
    }

    impl Write for Trickle<'_> {
        async fn write(&mut self, buf: &[u8]) -> Result<usize, Infallible> {
            self.clock
                .sleep_until(self.clock.now() + Duration::from_secs(10))
                .await;
            self.taken += 1;
            Ok(buf.len().min(1))
        }

        async fn flush(&mut self) -> Result<(), Infallible> {
            Ok(())
        }
    }

    impl HalfClose for Trickle<'_> {
        const ACKNOWLEDGED: bool = true;

        async fn close_write(&mut self) -> Result<(), Infallible> {
            Ok(())
        }
    }

    #[test]
    fn server_ends_a_transfer_that_crawls_under_the_rate_floor() {
        let clock = SimClock(Cell::new(Instant::ZERO));
        let mut stream = Trickle {
            clock: &clock,
            taken: 0,
        };
        let file = [1u8; 10_000];
        let result = block_on(serve(&mut stream, &file[..], &clock, Timeouts::DEFAULT));
        // 64 B/s over the 120 s idle window: the first window's 12 bytes end it, when it ends.
        assert_eq!(
            result,
            Err(Error::TimedOut {
                phase: Phase::Transfer,
                bytes: 12
            })
        );
        assert_eq!(stream.taken, 12);
        assert_eq!(clock.now(), Instant::ZERO + Duration::from_secs(120));
    }

    /// A client that takes `pace(taken)` bytes per write, each write taking that long on the
    /// clock; whose `incoming` bytes arrive `read_chunk` per read, `read_every` apart, then EOF.
    struct Paced<'a, const ACKNOWLEDGED: bool> {
        clock: &'a SimClock,
        pace: fn(u64) -> (usize, Duration),
        taken: u64,
        incoming: Vec<u8>,
        read_chunk: usize,
        read_every: Duration,
    }

    impl<'a, const ACKNOWLEDGED: bool> Paced<'a, ACKNOWLEDGED> {
        /// A client of `pace` that replies "Thank you\0" at once.
        fn replying(clock: &'a SimClock, pace: fn(u64) -> (usize, Duration)) -> Self {
            Paced {
                clock,
                pace,
                taken: 0,
                incoming: REPLY.to_vec(),
                read_chunk: REPLY.len(),
                read_every: Duration::ZERO,
            }
        }
    }

    impl<const ACKNOWLEDGED: bool> embedded_io_async::ErrorType for Paced<'_, ACKNOWLEDGED> {
        type Error = Infallible;
    }

    impl<const ACKNOWLEDGED: bool> Read for Paced<'_, ACKNOWLEDGED> {
        async fn read(&mut self, buf: &mut [u8]) -> Result<usize, Infallible> {
            if self.incoming.is_empty() {
                return Ok(0);
            }
            let n = buf.len().min(self.read_chunk).min(self.incoming.len());
            let at = self.clock.now() + self.read_every;
            self.clock.sleep_until(at).await;
            buf[..n].copy_from_slice(&self.incoming[..n]);
            self.incoming.drain(..n);
            Ok(n)
        }
    }

    impl<const ACKNOWLEDGED: bool> Write for Paced<'_, ACKNOWLEDGED> {
        async fn write(&mut self, buf: &[u8]) -> Result<usize, Infallible> {
            let (n, takes) = (self.pace)(self.taken);
            let at = self.clock.now() + takes;
            self.clock.sleep_until(at).await;
            let n = buf.len().min(n);
            self.taken += n as u64;
            Ok(n)
        }

        async fn flush(&mut self) -> Result<(), Infallible> {
            Ok(())
        }
    }

    impl<const ACKNOWLEDGED: bool> HalfClose for Paced<'_, ACKNOWLEDGED> {
        const ACKNOWLEDGED: bool = ACKNOWLEDGED;

        async fn close_write(&mut self) -> Result<(), Infallible> {
            Ok(())
        }
    }

    /// A floor of 1280 bytes per 10 s window (128 B/s: a write of 128 bytes a second, which
    /// divides the server's chunks, is exactly at it).
    const FLOOR_128: Timeouts = Timeouts {
        idle: Duration::from_secs(10),
        min_rate: 128,
        linger: Duration::ZERO,
        ..Timeouts::DEFAULT
    };

    #[test]
    fn a_client_exactly_at_the_rate_floor_in_every_window_is_served_to_the_end() {
        let clock = SimClock(Cell::new(Instant::ZERO));
        // 128 bytes a second: 1280 in each window, exactly the floor.
        let mut stream = Paced::<true>::replying(&clock, |_| (128, Duration::from_secs(1)));
        let file = [2u8; 3 * CHUNK];
        let report = block_on(serve(&mut stream, &file[..], &clock, FLOOR_128)).unwrap();
        assert_eq!(report.bytes, 3 * CHUNK as u64);
        assert_eq!(
            report.fin_queued_at,
            Instant::ZERO + Duration::from_secs(24)
        );
    }

    #[test]
    fn a_client_that_slows_down_after_a_fast_first_window_is_cut_at_the_end_of_the_second() {
        let clock = SimClock(Cell::new(Instant::ZERO));
        // 256 bytes a second for 2560 bytes (twice the floor), then a byte a second.
        let mut stream = Paced::<true>::replying(&clock, |taken| {
            (if taken < 2560 { 256 } else { 1 }, Duration::from_secs(1))
        });
        let file = [3u8; 10_000];
        let result = block_on(serve(&mut stream, &file[..], &clock, FLOOR_128));
        // The second window (10 s to 20 s) moved 10 bytes of its 1280.
        assert_eq!(
            result,
            Err(Error::TimedOut {
                phase: Phase::Transfer,
                bytes: 2570
            })
        );
        assert_eq!(clock.now(), Instant::ZERO + Duration::from_secs(20));
    }

    #[test]
    fn an_acknowledging_server_keeps_its_stream_for_the_linger_after_the_clients_fin() {
        let clock = SimClock(Cell::new(Instant::ZERO));
        let mut stream = Paced::<true>::replying(&clock, |_| (CHUNK, Duration::from_secs(1)));
        let timeouts = Timeouts {
            linger: Duration::from_secs(7),
            ..Timeouts::DEFAULT
        };
        let report = block_on(serve(&mut stream, &[4u8; 2 * CHUNK][..], &clock, timeouts)).unwrap();
        assert_eq!(report.finished_at, Instant::ZERO + Duration::from_secs(2));
        assert_eq!(clock.now(), report.finished_at + Duration::from_secs(7));
    }

    #[test]
    fn a_server_on_a_transport_that_cannot_tell_acknowledgements_returns_at_the_clients_fin() {
        let clock = SimClock(Cell::new(Instant::ZERO));
        let mut stream = Paced::<false>::replying(&clock, |_| (CHUNK, Duration::from_secs(1)));
        let timeouts = Timeouts {
            linger: Duration::from_secs(7),
            ..Timeouts::DEFAULT
        };
        let report = block_on(serve(&mut stream, &[4u8; 2 * CHUNK][..], &clock, timeouts)).unwrap();
        assert_eq!(report.fin_acked_at, None);
        assert_eq!(clock.now(), report.finished_at);
        assert_eq!(report.finished_at, Instant::ZERO + Duration::from_secs(2));
    }

    #[test]
    fn the_reports_durations_run_from_the_call_to_the_clients_fin_and_to_the_servers() {
        let start = Instant::from_secs(100);
        let clock = SimClock(Cell::new(start));
        // Three chunks, one a second; the reply comes 2 s after our FIN.
        let mut stream = Paced::<true>::replying(&clock, |_| (CHUNK, Duration::from_secs(1)));
        stream.read_every = Duration::from_secs(2);
        let report =
            block_on(serve(&mut stream, &[5u8; 3 * CHUNK][..], &clock, FLOOR_128)).unwrap();
        assert_eq!(report.started_at, start);
        assert_eq!(report.duration(), Duration::from_secs(5));

        let clock = SimClock(Cell::new(start));
        // 5000 bytes, 1000 a second, then EOF.
        let mut stream = Paced::<true> {
            incoming: [6u8; 5000].to_vec(),
            read_chunk: 1000,
            read_every: Duration::from_secs(1),
            ..Paced::replying(&clock, |_| (CHUNK, Duration::from_secs(3)))
        };
        let mut sink = [0u8; 5000];
        let report = block_on(fetch(&mut stream, &mut sink[..], &clock, FLOOR_128)).unwrap();
        assert_eq!(report.started_at, start);
        assert_eq!(report.transfer_time(), Duration::from_secs(5));
        // The reply's write took its 3 s after the end of the file.
        assert_eq!(report.finished_at, start + Duration::from_secs(8));
    }

    /// A stream whose reads fail with `kind` (after taking the whole file).
    struct Failing(ErrorKind);

    impl embedded_io_async::ErrorType for Failing {
        type Error = ErrorKind;
    }

    impl Read for Failing {
        async fn read(&mut self, _buf: &mut [u8]) -> Result<usize, ErrorKind> {
            Err(self.0)
        }
    }

    impl Write for Failing {
        async fn write(&mut self, buf: &[u8]) -> Result<usize, ErrorKind> {
            Ok(buf.len())
        }

        async fn flush(&mut self) -> Result<(), ErrorKind> {
            Ok(())
        }
    }

    impl HalfClose for Failing {
        const ACKNOWLEDGED: bool = false;

        async fn close_write(&mut self) -> Result<(), ErrorKind> {
            Ok(())
        }
    }

    #[test]
    fn a_transports_own_timeout_is_a_timeout_and_any_other_failure_a_reset() {
        let clock = SimClock(Cell::new(Instant::ZERO));
        let serve_into = |kind| {
            block_on(serve(
                &mut Failing(kind),
                &b"file"[..],
                &clock,
                Timeouts::DEFAULT,
            ))
        };
        assert_eq!(
            serve_into(ErrorKind::TimedOut),
            Err(Error::TimedOut {
                phase: Phase::Reply,
                bytes: 4
            })
        );
        for kind in [
            ErrorKind::ConnectionReset,
            ErrorKind::BrokenPipe,
            ErrorKind::Other,
        ] {
            assert_eq!(
                serve_into(kind),
                Err(Error::Reset {
                    phase: Phase::Reply,
                    bytes: 4
                }),
                "{kind:?}"
            );
        }
    }
}
