//! The sending side: write a file, half-close, wait for `"Thank you\0"`.
//!
//! [`Sender`] is one connection's state machine over one `tcp::Socket`; [`Server`] runs a fixed pool
//! of them over sockets the caller created, so several clients are served at once and a finished
//! slot listens again for the next one. A small pool defends itself against hostile peers (SYN
//! floods, readers that never or barely read, trickled replies): see [`Server`] and
//! [`Timeouts`].
//!
//! ```text
//!  Accepting ──► Sending { queued } ──close()──► HalfClosed { sent, .. } ──► Done(Report)
//!      │               │                              │
//!      └───────────────┴──────────────────────────────┴────────────────────► Failed(Error)
//! ```

use core::fmt;
use core::task::Poll;

use embedded_io::{Error as _, Read};
use smoltcp::iface::{SocketHandle, SocketSet};
use smoltcp::socket::tcp::{self, RecvError};
use smoltcp::time::{Duration, Instant};
use smoltcp::wire::{IpEndpoint, IpListenEndpoint};

use crate::macros::{debug, trace};
use crate::{Error, Phase, Reply, Timeouts};

/// The keep-alive that guards a lone FIN (an empty file's) while it is unacknowledged: smoltcp
/// 0.14 can leave such a FIN with no timer running (see `docs/upstream/fin-stall.md`), and a
/// keep-alive is the one timer that still makes it go out again.
const LONE_FIN_KEEP_ALIVE: Duration = Duration::from_secs(1);

/// Where each connection's file comes from.
///
/// A server serving several clients needs one independent reader per connection; `open` is called
/// once per accepted connection. A byte slice (a payload in flash, say) is the simplest source.
pub trait Source {
    /// The reader one connection drains.
    type Reader: Read;

    /// Open the file for a new connection.
    fn open(&mut self) -> Result<Self::Reader, embedded_io::ErrorKind>;
}

impl<'a> Source for &'a [u8] {
    type Reader = &'a [u8];

    fn open(&mut self) -> Result<&'a [u8], embedded_io::ErrorKind> {
        Ok(self)
    }
}

/// What a finished connection did, and when.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Report {
    /// The client.
    pub remote: Option<IpEndpoint>,
    /// File bytes sent (all of them acknowledged).
    pub bytes: u64,
    /// The client's reply (exactly `"Thank you\0"` in a report; anything else is an error).
    pub reply: Reply,
    /// When the SYN was seen.
    pub accepted_at: Instant,
    /// When the handshake completed.
    pub established_at: Instant,
    /// When the client had acknowledged all of the file but its last byte, and `close()` queued
    /// that byte and the FIN: the half-close.
    pub fin_queued_at: Instant,
    /// When the client acknowledged the FIN (the socket left FIN-WAIT-1), if that was seen
    /// before the reply ended the exchange.
    pub fin_acked_at: Option<Instant>,
    /// When the first byte of the reply was read.
    pub reply_at: Instant,
    /// Whether the reply came before or after the half-close, and by how much.
    pub reply_timing: ReplyTiming,
    /// When the client's FIN ended the reply and the transfer.
    pub finished_at: Instant,
}

impl Report {
    /// From the SYN to the client's FIN.
    pub fn duration(&self) -> Duration {
        self.finished_at - self.accepted_at
    }
}

/// When the reply arrived, relative to the half-close (`close()` queueing our FIN).
///
/// A client that follows the lesson reads to EOF before it replies, so its reply comes after our
/// FIN. One that answers at once (`printf 'Thank you\0' | nc -N host port`) sends it while the
/// file is still on its way: the server reads it before its FIN. The order is recorded when the
/// reply's first byte is read, not inferred from the two times, which can be equal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum ReplyTiming {
    /// The reply's first byte was read this long before our FIN was queued.
    BeforeFin(Duration),
    /// The reply's first byte was read this long after our FIN was queued: the time the
    /// server's input stayed open while its output was already closed.
    AfterFin(Duration),
}

impl ReplyTiming {
    /// The order of two events: the reply's first byte read at `reply_at`, `before_fin` or not,
    /// and our FIN queued at `fin_queued_at`.
    fn new(reply_at: Instant, fin_queued_at: Instant, before_fin: bool) -> ReplyTiming {
        if before_fin {
            ReplyTiming::BeforeFin(fin_queued_at - reply_at)
        } else {
            ReplyTiming::AfterFin(reply_at - fin_queued_at)
        }
    }

    /// Whether the reply was read before our FIN was queued.
    pub fn is_before_fin(&self) -> bool {
        matches!(self, ReplyTiming::BeforeFin(_))
    }

    /// How far apart the two events were, whatever their order.
    pub fn duration(&self) -> Duration {
        match *self {
            ReplyTiming::BeforeFin(d) | ReplyTiming::AfterFin(d) => d,
        }
    }

    /// The reply's time relative to our FIN in microseconds: negative before, positive after.
    pub fn micros(&self) -> i64 {
        // A `Duration` of over 2^63 µs (292 000 years) cannot come from one connection.
        let d = i64::try_from(self.duration().total_micros()).unwrap_or(i64::MAX);
        match self {
            ReplyTiming::BeforeFin(_) => -d,
            ReplyTiming::AfterFin(_) => d,
        }
    }
}

/// `0.028s after our FIN`, or `0.012s before our FIN`.
impl fmt::Display for ReplyTiming {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReplyTiming::BeforeFin(d) => write!(f, "{d} before our FIN"),
            ReplyTiming::AfterFin(d) => write!(f, "{d} after our FIN"),
        }
    }
}

/// Where one connection is.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum State {
    /// SYN received; the handshake is not finished.
    Accepting,
    /// Writing the file into the socket, until the client has acknowledged all of it.
    Sending {
        /// File bytes read from the source so far: all queued on the socket but the last one
        /// read, which waits to go out with the FIN.
        queued: u64,
    },
    /// The client has acknowledged the whole file but its last byte, which `close()` has
    /// queued with the FIN (so they travel in one segment; see `fill`). The socket still
    /// receives: this is where the reply arrives.
    HalfClosed {
        /// The file's length.
        sent: u64,
        /// When `close()` was called.
        fin_queued_at: Instant,
    },
    /// The client acknowledged everything, replied `"Thank you\0"` and closed.
    Done(Report),
    /// The connection ended in an error (the socket was aborted if it was still open).
    Failed(Error),
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            State::Accepting => f.write_str("accepting"),
            State::Sending { queued } => write!(f, "sending({queued})"),
            State::HalfClosed { sent, .. } => write!(f, "half-closed({sent})"),
            State::Done(_) => f.write_str("done"),
            State::Failed(_) => f.write_str("failed"),
        }
    }
}

/// One connection of the sending side, as a sans-IO state machine.
///
/// Call [`poll`](Sender::poll) after every `Interface::poll` with the current time and the
/// connection's socket. It moves bytes from the reader straight into the socket's transmit buffer
/// (no intermediate copy), half-closes when the reader is exhausted, and collects the reply.
#[derive(Debug)]
pub struct Sender<R> {
    reader: R,
    state: State,
    timeouts: Timeouts,
    reply: Reply,
    remote: Option<IpEndpoint>,
    accepted_at: Instant,
    established_at: Option<Instant>,
    fin_acked_at: Option<Instant>,
    reply_at: Option<Instant>,
    /// Whether the reply's first byte was read before `close()` queued our FIN.
    reply_before_fin: bool,
    /// Last time anything moved: bytes queued, acknowledged or received, or a state change.
    last_progress: Instant,
    /// When the current phase times out if nothing moves (as of the last poll).
    deadline: Instant,
    /// The socket's transmit queue length at the last poll, to see acknowledgements.
    last_send_queue: usize,
    /// File bytes the client has acknowledged.
    acked: u64,
    /// The last byte read from the reader, not yet queued: it goes out with the FIN.
    held: Option<u8>,
    /// Whether we turned the socket's keep-alive on to guard a lone FIN (it was off).
    lone_fin_guard: bool,
    /// The current window of the rate floor ([`Timeouts::min_rate`]), once established.
    window: Option<RateWindow>,
}

/// One window of [`Timeouts::idle`] over which a transfer must move [`Timeouts::min_rate`].
#[derive(Debug, Clone, Copy)]
struct RateWindow {
    /// When it began.
    start: Instant,
    /// File bytes acknowledged when it began.
    acked: u64,
    /// Bytes queued and not yet acknowledged when it began: a peer that acknowledges all of
    /// them has kept up, whatever the floor (the end of a file is shorter than a window's worth).
    waiting: u64,
}

impl<R: Read> Sender<R> {
    /// Start serving a connection whose SYN has arrived (or that is already established).
    pub fn new(reader: R, now: Instant, timeouts: Timeouts) -> Self {
        Sender {
            reader,
            state: State::Accepting,
            timeouts,
            reply: Reply::new(),
            remote: None,
            accepted_at: now,
            established_at: None,
            fin_acked_at: None,
            reply_at: None,
            reply_before_fin: false,
            last_progress: now,
            deadline: now + timeouts.handshake,
            last_send_queue: 0,
            acked: 0,
            held: None,
            lone_fin_guard: false,
            window: None,
        }
    }

    /// When this connection times out if nothing happens before (`None` once it is over). An
    /// event loop sleeps no later than this, as it does for `Interface::poll_at`.
    pub fn deadline(&self) -> Option<Instant> {
        self.outcome().is_pending().then_some(self.deadline)
    }

    /// Where the connection is.
    pub fn state(&self) -> &State {
        &self.state
    }

    /// The reply bytes received so far.
    pub fn reply(&self) -> &Reply {
        &self.reply
    }

    /// Advance the connection. Returns `Ready` once, and again on later calls, when it is over.
    #[must_use = "the connection's outcome is reported only once"]
    pub fn poll(&mut self, now: Instant, socket: &mut tcp::Socket) -> Poll<Result<Report, Error>> {
        if self.outcome().is_pending()
            && let Err(error) = self.step(now, socket)
        {
            self.restore_keep_alive(socket);
            crate::abort_if_open(socket);
            self.set_state(State::Failed(error));
        }
        self.outcome()
    }

    /// Turn the socket's keep-alive off again, if we turned it on.
    fn restore_keep_alive(&mut self, socket: &mut tcp::Socket) {
        if core::mem::take(&mut self.lone_fin_guard) {
            socket.set_keep_alive(None);
        }
    }

    /// `Ready` with the result once the state is `Done` or `Failed`.
    fn outcome(&self) -> Poll<Result<Report, Error>> {
        match &self.state {
            State::Done(report) => Poll::Ready(Ok(report.clone())),
            State::Failed(error) => Poll::Ready(Err(error.clone())),
            State::Accepting | State::Sending { .. } | State::HalfClosed { .. } => Poll::Pending,
        }
    }

    fn set_state(&mut self, next: State) {
        debug!("halfclose server: {}=>{}", self.state, next);
        self.state = next;
    }

    fn step(&mut self, now: Instant, socket: &mut tcp::Socket) -> Result<(), Error> {
        if self.remote.is_none() {
            self.remote = socket.remote_endpoint();
        }
        self.note_acks(now, socket);
        let peer_closed = self.drain_reply(now, socket)?;

        match self.state {
            State::Accepting => match socket.state() {
                tcp::State::SynReceived => self.check_deadline(now, Phase::Connect)?,
                tcp::State::Established | tcp::State::CloseWait => {
                    self.established_at = Some(now);
                    self.progress(now);
                    self.set_state(State::Sending { queued: 0 });
                    self.fill(now, socket, 0)?;
                }
                // A RST in SYN-RECEIVED sends smoltcp back to LISTEN; anything else is equally
                // not a connection we can serve.
                _ => return Err(self.reset_error(Phase::Connect)),
            },
            State::Sending { queued } => {
                if !socket.may_send() {
                    return Err(self.reset_error(Phase::Transfer));
                }
                self.fill(now, socket, queued)?;
                if matches!(self.state, State::Sending { .. }) {
                    self.check_deadline(now, Phase::Transfer)?;
                    self.check_rate(now, socket)?;
                }
            }
            State::HalfClosed {
                sent,
                fin_queued_at,
            } => self.half_closed(now, socket, sent, fin_queued_at, peer_closed)?,
            State::Done(_) | State::Failed(_) => {}
        }
        Ok(())
    }

    /// Queue as much of the file as the socket takes; half-close at the end of the file.
    fn fill(
        &mut self,
        now: Instant,
        socket: &mut tcp::Socket,
        mut queued: u64,
    ) -> Result<(), Error> {
        let reader = &mut self.reader;
        let held = &mut self.held;
        let eof = loop {
            if !socket.can_send() {
                break false;
            }
            // The reader fills the socket's transmit buffer in place, one byte behind: the
            // last byte read is held back, so the file's last byte can go out with the FIN.
            let read = socket.send(|buf| {
                let mut one = [0u8; 1];
                let start = usize::from(held.is_some());
                let roomy = buf.len() > start;
                let into: &mut [u8] = if roomy { &mut buf[start..] } else { &mut one };
                match reader.read(into) {
                    Ok(0) => (0, Ok(0)),
                    Ok(n) => {
                        let (queued, next) = if roomy {
                            if let Some(b) = *held {
                                buf[0] = b;
                            }
                            (start + n - 1, buf[start + n - 1])
                        } else {
                            // Room for the held byte only: it goes, the new one is held.
                            buf[0] = held.unwrap_or(one[0]);
                            (1, one[0])
                        };
                        *held = Some(next);
                        (queued, Ok(n))
                    }
                    Err(e) => (0, Err(e.kind())),
                }
            });
            match read {
                Ok(Ok(0)) => break true,
                Ok(Ok(n)) => queued += n as u64,
                Ok(Err(kind)) => {
                    return Err(Error::Source {
                        kind,
                        bytes: queued,
                    });
                }
                Err(tcp::SendError::InvalidState) => {
                    return Err(self.reset_error(Phase::Transfer));
                }
            }
        };
        if let State::Sending { queued: before } = self.state
            && queued != before
        {
            self.progress(now);
        }
        // Half-close once the client has acknowledged the whole file but its last byte, which
        // then goes out with the FIN in one segment. smoltcp 0.14 has two ways to lose a FIN:
        // - it drops a FIN that rides on data the receiver already holds (data that arrived
        //   out of order, ahead of a hole): its acceptability test leaves the FIN out of the
        //   segment's length. With everything before the last byte acknowledged there is no
        //   hole behind the FIN's segment, so it is accepted whenever it arrives.
        // - after three duplicate ACKs with only a FIN outstanding its fast retransmit sends
        //   nothing and leaves the retransmission timer stopped, so a lost FIN stalls the
        //   transfer until a timeout. With the last byte outstanding too, the fast
        //   retransmit resends byte and FIN (`server_recovers_at_once_from_a_lost_fin_...`
        //   in tests/smoltcp_bugs.rs; docs/upstream/).
        // The cost is one round trip per transfer. An empty file has no byte to carry its FIN:
        // there a keep-alive stands in for the stopped timer (smoltcp's keep-alive dispatch
        // sends the pending fast retransmit, FIN included) until the FIN is acknowledged.
        if eof && socket.send_queue() == 0 {
            if let Some(last) = self.held.take() {
                // The queue is empty and holds at least one byte: this cannot fail short.
                if socket.send_slice(&[last]) != Ok(1) {
                    return Err(self.reset_error(Phase::Transfer));
                }
            } else if socket.keep_alive().is_none() {
                // (A keep-alive of the caller's own already does the same.)
                self.lone_fin_guard = true;
                socket.set_keep_alive(Some(LONE_FIN_KEEP_ALIVE));
            }
            // The receive half stays open for the reply (FIN-WAIT-1, then FIN-WAIT-2).
            socket.close();
            self.last_send_queue = socket.send_queue();
            self.progress(now);
            self.set_state(State::HalfClosed {
                sent: queued,
                fin_queued_at: now,
            });
        } else {
            self.last_send_queue = socket.send_queue();
            self.state = State::Sending { queued };
        }
        Ok(())
    }

    fn half_closed(
        &mut self,
        now: Instant,
        socket: &mut tcp::Socket,
        sent: u64,
        fin_queued_at: Instant,
        peer_closed: bool,
    ) -> Result<(), Error> {
        let fin_acked = match socket.state() {
            // Our FIN is queued or in flight (LAST-ACK when the client half-closed first).
            tcp::State::FinWait1 | tcp::State::Closing | tcp::State::LastAck => false,
            // Our FIN was acknowledged.
            tcp::State::FinWait2 | tcp::State::TimeWait => true,
            // LAST-ACK ends in CLOSED when our FIN is acknowledged.
            tcp::State::Closed if peer_closed && socket.send_queue() == 0 => true,
            // CLOSED without the client's FIN is a reset; the rest cannot follow close().
            tcp::State::Closed
            | tcp::State::Listen
            | tcp::State::SynSent
            | tcp::State::SynReceived
            | tcp::State::Established
            | tcp::State::CloseWait => return Err(self.reset_error(self.waiting_phase(socket))),
        };
        if fin_acked && self.fin_acked_at.is_none() {
            self.fin_acked_at = Some(now);
            self.restore_keep_alive(socket);
            self.progress(now);
        }

        if peer_closed && fin_acked {
            if !self.reply.is_thank_you() {
                return Err(Error::WrongReply {
                    reply: self.reply,
                    bytes: sent,
                });
            }
            let report = Report {
                remote: self.remote,
                bytes: sent,
                reply: self.reply,
                accepted_at: self.accepted_at,
                established_at: self.established_at.unwrap_or(self.accepted_at),
                fin_queued_at,
                fin_acked_at: self.fin_acked_at,
                reply_at: self.reply_at.unwrap_or(now),
                reply_timing: ReplyTiming::new(
                    self.reply_at.unwrap_or(now),
                    fin_queued_at,
                    self.reply_before_fin,
                ),
                finished_at: now,
            };
            self.set_state(State::Done(report));
            return Ok(());
        }
        self.check_deadline(now, self.waiting_phase(socket))
    }

    /// Until the file and FIN are acknowledged we are still transferring; after that only the
    /// reply is missing.
    fn waiting_phase(&self, socket: &tcp::Socket) -> Phase {
        if self.fin_acked_at.is_some() || (socket.send_queue() == 0 && self.reply_at.is_some()) {
            Phase::Reply
        } else {
            Phase::Transfer
        }
    }

    /// Read whatever the client sent. Returns whether the client has closed (FIN seen, all read).
    fn drain_reply(&mut self, now: Instant, socket: &mut tcp::Socket) -> Result<bool, Error> {
        loop {
            // Nothing to read and no FIN: what `recv` would say, without the call (this runs
            // on every poll of the transfer, and the reply is only ten bytes at its end).
            if socket.recv_queue() == 0 && socket.may_recv() {
                return Ok(false);
            }
            let reply = &mut self.reply;
            // Stop at the first byte that rules the reply out: that is all the error needs.
            match socket.recv(|buf| {
                let n = reply.extend_until_wrong(buf);
                (n, n)
            }) {
                Ok(0) => return Ok(false),
                Ok(n) => {
                    trace!("halfclose server: {} reply bytes", n);
                    if self.reply_at.is_none() {
                        self.reply_at = Some(now);
                        // Read before `close()`, the reply came first, even at the same instant.
                        self.reply_before_fin = !matches!(self.state, State::HalfClosed { .. });
                    }
                    self.progress(now);
                    // Fail at the first byte that cannot belong to "Thank you\0": a wrong or
                    // trickled reply must not hold a slot until a timeout.
                    if self.reply.goes_on_after_thank_you() {
                        return Err(Error::ReplyTooLong {
                            reply: self.reply,
                            bytes: self.acked,
                        });
                    }
                    if !self.reply.may_become_thank_you() {
                        return Err(Error::WrongReply {
                            reply: self.reply,
                            bytes: self.acked,
                        });
                    }
                }
                Err(RecvError::Finished) => return Ok(true),
                // Not synchronized yet, or reset: the state checks that follow decide which.
                Err(RecvError::InvalidState) => return Ok(false),
            }
        }
    }

    /// Count acknowledged file bytes: the transmit queue shrinks as ACKs arrive.
    fn note_acks(&mut self, now: Instant, socket: &tcp::Socket) {
        let queue = socket.send_queue();
        if queue < self.last_send_queue {
            self.acked += (self.last_send_queue - queue) as u64;
            self.progress(now);
        }
        self.last_send_queue = queue;
    }

    fn progress(&mut self, now: Instant) {
        self.last_progress = now;
    }

    fn check_deadline(&mut self, now: Instant, phase: Phase) -> Result<(), Error> {
        self.deadline = match (phase, &self.state) {
            // A handshake has a limit of its own: SYN floods are made of handshakes.
            (Phase::Connect, _) => self.accepted_at + self.timeouts.handshake,
            // The reply phase as a whole is bounded, so ten bytes trickled one by one, each
            // inside a limit, cannot hold the slot for long. (It is only checked half-closed.)
            (Phase::Reply, state) => {
                let since = match state {
                    State::HalfClosed { fin_queued_at, .. } => *fin_queued_at,
                    _ => self.last_progress,
                };
                self.fin_acked_at.unwrap_or(since) + self.timeouts.reply
            }
            (Phase::Transfer, _) => self.last_progress + self.timeouts.idle,
        };
        if now >= self.deadline {
            Err(Error::TimedOut {
                phase,
                bytes: self.acked,
            })
        } else {
            Ok(())
        }
    }

    /// The rate floor: each window of `idle` must see `min_rate` bytes a second acknowledged, or
    /// everything that was waiting when it began. A slow reader moves a byte now and then, so
    /// the idle limit never fires; this does.
    fn check_rate(&mut self, now: Instant, socket: &tcp::Socket) -> Result<(), Error> {
        if self.timeouts.min_rate == 0 {
            return Ok(());
        }
        let span = self.timeouts.idle;
        let fresh = RateWindow {
            start: now,
            acked: self.acked,
            waiting: socket.send_queue() as u64,
        };
        let window = *self.window.get_or_insert(fresh);
        let end = window.start + span;
        if now < end {
            self.deadline = self.deadline.min(end);
            return Ok(());
        }
        let floor =
            (u64::from(self.timeouts.min_rate) * span.total_millis() / 1000).min(window.waiting);
        if self.acked - window.acked < floor {
            debug!(
                "halfclose server: {} bytes acknowledged in {}, under the floor of {}",
                self.acked - window.acked,
                span,
                floor
            );
            return Err(Error::TimedOut {
                phase: Phase::Transfer,
                bytes: self.acked,
            });
        }
        self.window = Some(fresh);
        self.deadline = self.deadline.min(now + span);
        Ok(())
    }

    /// Whether the connection is still in its handshake (a candidate for a SYN flood's reclaim).
    fn is_half_open(&self) -> bool {
        matches!(self.state, State::Accepting)
    }

    /// Since when the peer has moved nothing, if the connection is established and running.
    fn stalled_since(&self) -> Option<Instant> {
        match self.state {
            State::Sending { .. } | State::HalfClosed { .. } => Some(self.last_progress),
            State::Accepting | State::Done(_) | State::Failed(_) => None,
        }
    }

    /// The pool takes this connection's slot back for a new client: it ends as timed out in its
    /// phase (the handshake, or whatever it stalled in).
    fn reclaim(&mut self, socket: &mut tcp::Socket) -> Error {
        let phase = match self.state {
            State::Accepting => Phase::Connect,
            State::Sending { .. } => Phase::Transfer,
            State::HalfClosed { .. } => self.waiting_phase(socket),
            // Never called on a finished connection; its own phase is as good as any.
            State::Done(_) | State::Failed(_) => Phase::Reply,
        };
        let error = Error::TimedOut {
            phase,
            bytes: self.acked,
        };
        debug!("halfclose server: slot reclaimed ({})", error);
        self.restore_keep_alive(socket);
        self.set_state(State::Failed(error.clone()));
        error
    }

    fn reset_error(&self, phase: Phase) -> Error {
        Error::Reset {
            phase,
            bytes: self.acked,
        }
    }
}

/// What one socket of the pool is doing.
// Every slot must be able to hold a connection, so the pool's size is N senders whatever the
// variant; boxing would need an allocator.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
enum Slot<R> {
    /// Waiting for a SYN.
    Listening,
    /// Running a connection.
    Serving(Sender<R>),
    /// The connection ended; the socket still has its last ACK (or a RST) to send, and may
    /// re-acknowledge a retransmitted FIN until `until`.
    Lingering {
        /// When the slot listens again.
        until: Instant,
        /// The earliest it may listen again when the pool needs a listener: after the socket's
        /// delayed-ACK time, so the last ACK has left.
        earliest: Instant,
        /// The socket's own delayed-ACK setting, restored when it listens again.
        ack_delay: Option<Duration>,
    },
}

/// An aborted socket whose RST has not left yet: smoltcp keeps its endpoints until it sends the
/// RST (a socket closed by the peer's RST, or by the ACK of its FIN, has none).
fn reset_pending(socket: &tcp::Socket) -> bool {
    socket.state() == tcp::State::Closed && socket.remote_endpoint().is_some()
}

/// A pool of `N` listening sockets, each serving one client at a time.
///
/// The caller creates the sockets (and so owns their buffers) and adds them to the `SocketSet`;
/// the server makes them listen and runs a [`Sender`] on each accepted connection.
///
/// When a connection ends well, its socket lingers in TIME-WAIT for [`Timeouts::linger`] (and at
/// least until the next `poll` and the socket's delayed-ACK time, so the final ACK of the
/// client's FIN is sent first), then listens again; after an error it listens again as soon as
/// its RST has left (however often `poll` is called before the interface sends it; at most
/// `linger` later if the device never takes it). smoltcp's own TIME-WAIT lasts 10 s, far longer
/// than a small pool can spare a socket.
///
/// # A full pool keeps one socket listening
///
/// A SYN that finds no socket listening is answered with a reset by smoltcp (the client sees
/// "connection refused"), and the server never learns of it. So whenever no slot listens
/// after a `poll`, the pool takes one slot back (unless [`set_reclaim`](Server::set_reclaim)
/// turned this off), in this order:
///
/// 1. A lingering slot: its transfer is over; only a lost last ACK would have needed it. In
///    a pool of one this is the only reclaim, so a pool of one listens again as soon as its last
///    ACK (or, after an error, its RST) has left, whatever `linger` says.
/// 2. In a pool of two or more, when a SYN has just taken the last listener: the oldest other
///    half-open connection (SYN-RECEIVED), without a RST (its address is likely forged). This is
///    the kernel's SYN-queue policy: a real client completes its handshake in one round trip,
///    long before a flood has pushed it to the front, and one that is reclaimed anyway retries
///    its SYN and finds a listener.
/// 3. In a pool of two or more: the established connection whose peer has moved nothing for the
///    longest, if that is at least [`Timeouts::stall`]; it is aborted (a RST tells the peer at
///    once). This is fair because it only happens when the pool is full, it takes the slot that
///    does no work for anyone, longest-idle first, and a peer that moves anything within
///    `stall` is never touched: an attacker cannot evict a client that is making progress.
///
/// A reclaimed connection is reported as [`Error::TimedOut`] in its phase. A pool whose every
/// slot serves a live, progressing connection has nothing to take back, and refuses new clients
/// until one finishes.
///
/// Call [`poll`](Server::poll) after every `Interface::poll`: the pool relies on the interface
/// having sent what the sockets queued between two calls.
#[derive(Debug)]
pub struct Server<S: Source, const N: usize> {
    handles: [SocketHandle; N],
    slots: [Slot<S::Reader>; N],
    endpoint: IpListenEndpoint,
    source: S,
    timeouts: Timeouts,
    reclaim: bool,
}

impl<S: Source, const N: usize> Server<S, N> {
    /// Make the sockets listen on `endpoint` (a port, or an address and port).
    pub fn listen(
        sockets: &mut SocketSet<'_>,
        handles: [SocketHandle; N],
        endpoint: impl Into<IpListenEndpoint>,
        source: S,
        timeouts: Timeouts,
    ) -> Result<Self, Error> {
        let endpoint = endpoint.into();
        for &handle in &handles {
            sockets
                .get_mut::<tcp::Socket>(handle)
                .listen(endpoint)
                .map_err(Error::Listen)?;
        }
        Ok(Server {
            handles,
            slots: core::array::from_fn(|_| Slot::Listening),
            endpoint,
            source,
            timeouts,
            reclaim: true,
        })
    }

    /// Whether a pool with no listening socket takes a slot back (on by default; see
    /// [`Server`]). Off, lingering slots linger their full [`Timeouts::linger`] and no
    /// connection is ever cut short for a new client: the behaviour before these defences, kept
    /// for comparisons and for single-connection tests that want a full TIME-WAIT.
    pub fn set_reclaim(&mut self, on: bool) {
        self.reclaim = on;
    }

    /// Advance every connection; returns those that ended in this call.
    ///
    /// A source that fails to open for a new connection aborts that connection and is reported
    /// as [`Error::Source`].
    #[must_use = "each connection's outcome is reported only once, by the call in which it ended"]
    pub fn poll(
        &mut self,
        now: Instant,
        sockets: &mut SocketSet<'_>,
    ) -> heapless::Vec<Result<Report, Error>, N> {
        let mut ended = heapless::Vec::new();
        // Slots that took a SYN or finished in this call: never reclaimed in the same call.
        let mut fresh = [false; N];
        let mut took_syn = false;
        for (i, (slot, &handle)) in self.slots.iter_mut().zip(&self.handles).enumerate() {
            let socket = sockets.get_mut::<tcp::Socket>(handle);
            match slot {
                Slot::Listening => {
                    if socket.is_active() {
                        fresh[i] = true;
                        took_syn = true;
                        match self.source.open() {
                            Ok(reader) => {
                                *slot = Slot::Serving(Sender::new(reader, now, self.timeouts))
                            }
                            Err(kind) => {
                                socket.abort();
                                // One result per slot per call: the push cannot fail.
                                let _ = ended.push(Err(Error::Source { kind, bytes: 0 }));
                                *slot = Self::linger(socket, now, self.timeouts.linger);
                                continue;
                            }
                        }
                    } else if !socket.is_listening() {
                        // Someone else closed or aborted the socket; take it back. `listen` only
                        // fails for port 0, which `Server::listen` rejected.
                        let _ = socket.listen(self.endpoint);
                    }
                }
                Slot::Lingering {
                    until, ack_delay, ..
                } => {
                    // An aborted socket whose RST has gone has nothing left to linger for; one
                    // whose RST the interface has yet to send waits for it, until `until`.
                    let reset_sent = socket.state() == tcp::State::Closed && !reset_pending(socket);
                    if now >= *until || reset_sent {
                        Self::relisten(socket, *ack_delay, self.endpoint);
                        *slot = Slot::Listening;
                    }
                    continue;
                }
                Slot::Serving(_) => {}
            }
            if let Slot::Serving(sender) = slot
                && let Poll::Ready(result) = sender.poll(now, socket)
            {
                // A finished exchange may have a FIN to re-acknowledge; after an error the
                // slot waits just for its RST to leave (the `reset_sent` test above), at most
                // `linger`.
                let _ = ended.push(result);
                *slot = Self::linger(socket, now, self.timeouts.linger);
                fresh[i] = true;
            }
        }
        if self.reclaim && !self.slots.iter().any(|s| matches!(s, Slot::Listening)) {
            self.keep_one_listening(now, sockets, &fresh, took_syn, &mut ended);
        }
        ended
    }

    /// Take one slot back so the pool listens again (see [`Server`] for the order and why).
    fn keep_one_listening(
        &mut self,
        now: Instant,
        sockets: &mut SocketSet<'_>,
        fresh: &[bool; N],
        took_syn: bool,
        ended: &mut heapless::Vec<Result<Report, Error>, N>,
    ) {
        let candidates = || self.slots.iter().enumerate().filter(|&(i, _)| !fresh[i]);
        // 1. A lingering slot whose last ACK (or RST) has left.
        let lingering = candidates()
            .filter_map(|(i, s)| match s {
                Slot::Lingering { earliest, .. } => (now >= *earliest
                    && !reset_pending(sockets.get::<tcp::Socket>(self.handles[i])))
                .then_some(i),
                Slot::Listening | Slot::Serving(_) => None,
            })
            .next();
        if let Some(i) = lingering {
            if let Slot::Lingering { ack_delay, .. } = self.slots[i] {
                let socket = sockets.get_mut::<tcp::Socket>(self.handles[i]);
                Self::relisten(socket, ack_delay, self.endpoint);
            }
            self.slots[i] = Slot::Listening;
            return;
        }
        if N < 2 {
            return;
        }
        // 2. The oldest half-open connection, when a SYN just took the last listener.
        let half_open = candidates()
            .filter_map(|(i, s)| match s {
                Slot::Serving(sender) => {
                    (took_syn && sender.is_half_open()).then_some((sender.accepted_at, i))
                }
                Slot::Listening | Slot::Lingering { .. } => None,
            })
            .min();
        if let Some((_, i)) = half_open {
            let socket = sockets.get_mut::<tcp::Socket>(self.handles[i]);
            if let Slot::Serving(sender) = &mut self.slots[i] {
                // One result per slot per call: this slot has not reported in this call.
                let _ = ended.push(Err(sender.reclaim(socket)));
            }
            // No RST: a forged source would never read it, and a real one retries its SYN.
            socket.abort();
            let ack_delay = socket.ack_delay();
            Self::relisten(socket, ack_delay, self.endpoint);
            self.slots[i] = Slot::Listening;
            return;
        }
        // 3. The longest-stalled established connection, stalled for at least `stall`.
        let stalled = candidates()
            .filter_map(|(i, s)| match s {
                Slot::Serving(sender) => sender
                    .stalled_since()
                    .filter(|&since| now >= since + self.timeouts.stall)
                    .map(|since| (since, i)),
                Slot::Listening | Slot::Lingering { .. } => None,
            })
            .min();
        if let Some((_, i)) = stalled {
            let socket = sockets.get_mut::<tcp::Socket>(self.handles[i]);
            if let Slot::Serving(sender) = &mut self.slots[i] {
                let _ = ended.push(Err(sender.reclaim(socket)));
            }
            // The peer may be alive: tell it with a RST, and listen once that has left.
            socket.abort();
            self.slots[i] = Self::linger(socket, now, self.timeouts.linger);
        }
    }

    fn relisten(socket: &mut tcp::Socket, ack_delay: Option<Duration>, endpoint: IpListenEndpoint) {
        socket.set_ack_delay(ack_delay);
        if socket.is_open() {
            // TIME-WAIT cut short (or a socket that never closed): `listen` needs it closed.
            socket.abort();
        }
        // `listen` only fails for port 0, which `Server::listen` rejected.
        let _ = socket.listen(endpoint);
    }

    fn linger(socket: &mut tcp::Socket, now: Instant, linger: Duration) -> Slot<S::Reader> {
        let ack_delay = socket.ack_delay();
        // A delayed-ACK timer already running keeps its deadline, so the slot lingers at least
        // that long; ACKs of anything that still arrives leave at once.
        socket.set_ack_delay(None);
        let earliest = now + ack_delay.unwrap_or(Duration::ZERO);
        Slot::Lingering {
            until: earliest.max(now + linger),
            earliest,
            ack_delay,
        }
    }

    /// How many slots are lingering after a connection, their last ACK or RST perhaps not yet
    /// sent. A program that stops serving should keep polling until this is zero.
    pub fn lingering(&self) -> usize {
        self.slots
            .iter()
            .filter(|s| matches!(s, Slot::Lingering { .. }))
            .count()
    }

    /// The earliest time a connection or a lingering slot needs a `poll` even if no packet
    /// arrives (`None` when every slot listens). Sleep no later than this and `poll_at`.
    pub fn poll_at(&self) -> Option<Instant> {
        let full = self.reclaim && !self.slots.iter().any(|s| matches!(s, Slot::Listening));
        self.slots
            .iter()
            .filter_map(|s| match s {
                Slot::Listening => None,
                Slot::Serving(sender) => {
                    // A full pool takes back a stalled slot once it has stalled for `stall`.
                    let reclaim = sender
                        .stalled_since()
                        .filter(|_| full && N >= 2)
                        .map(|since| since + self.timeouts.stall);
                    [sender.deadline(), reclaim].into_iter().flatten().min()
                }
                Slot::Lingering {
                    until, earliest, ..
                } => Some(if full { *earliest } else { *until }),
            })
            .min()
    }

    /// How many slots are serving a connection.
    pub fn busy(&self) -> usize {
        self.slots
            .iter()
            .filter(|s| matches!(s, Slot::Serving(_)))
            .count()
    }

    /// How many slots are listening for a new client.
    pub fn listening(&self) -> usize {
        self.slots
            .iter()
            .filter(|s| matches!(s, Slot::Listening))
            .count()
    }

    /// The state of each slot's connection (`None` while it listens or lingers).
    pub fn states(&self) -> impl Iterator<Item = Option<&State>> {
        self.slots.iter().map(|s| match s {
            Slot::Serving(sender) => Some(sender.state()),
            Slot::Listening | Slot::Lingering { .. } => None,
        })
    }

    /// The socket handles, in slot order.
    pub fn handles(&self) -> &[SocketHandle; N] {
        &self.handles
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use smoltcp::socket::tcp::SocketBuffer;

    /// A sender whose current rate window began at time 0 with 1 MiB waiting, and whose client
    /// has acknowledged `acked` bytes since; checked at the window's end.
    fn rate_check_at_window_end(acked: u64) -> Result<(), Error> {
        let timeouts = Timeouts::DEFAULT;
        let mut sender = Sender::new(&[][..], Instant::ZERO, timeouts);
        sender.window = Some(RateWindow {
            start: Instant::ZERO,
            acked: 0,
            waiting: 1 << 20,
        });
        sender.acked = acked;
        let socket = tcp::Socket::new(
            SocketBuffer::new(&mut [][..]),
            SocketBuffer::new(&mut [][..]),
        );
        sender.check_rate(Instant::ZERO + timeouts.idle, &socket)
    }

    /// `min_rate` is a floor the peer may sit on: a window that moved exactly `min_rate` bytes
    /// per second keeps the connection, one byte fewer ends it.
    #[test]
    fn a_peer_exactly_at_the_rate_floor_keeps_its_connection() {
        let t = Timeouts::DEFAULT;
        let floor = u64::from(t.min_rate) * t.idle.total_millis() / 1000;
        assert_eq!(rate_check_at_window_end(floor), Ok(()));
        assert_eq!(
            rate_check_at_window_end(floor - 1),
            Err(Error::TimedOut {
                phase: Phase::Transfer,
                bytes: floor - 1
            })
        );
    }
}
