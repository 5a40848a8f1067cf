//! One connection of the sending side: [`Sender`], the sans-IO state machine over one
//! `tcp::Socket`, and [`State`], where it is.
//!
//! The machine's own states are `Stage`: [`State`]'s variants with what each of them needs
//! besides (the byte held back for the FIN, the rate window, whether the FIN is acknowledged,
//! when the reply began). [`State`] is their public view, and `Sender::set_stage` (or, for the
//! end, `Sender::end`) the one door through which both change. A finished connection's outcome
//! is kept once, in the view: its stage is `Over`.

use core::fmt;
use core::task::Poll;

use embedded_io::{Error as _, ErrorKind, Read};
use smoltcp::socket::tcp::{self, RecvError};
use smoltcp::time::{Duration, Instant};
use smoltcp::wire::IpEndpoint;

use super::{ReplyTiming, Report};
use crate::macros::{debug, trace};
use crate::{Error, Phase, Reply, Timeouts};

/// The keep-alive that guards a lone FIN (an empty file's) while it is unacknowledged: smoltcp
/// 0.14 can leave such a FIN with no timer running (see `docs/upstream/fin-stall.md`), and a
/// keep-alive is the one timer that still makes it go out again.
const LONE_FIN_KEEP_ALIVE: Duration = Duration::from_secs(1);

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

/// Where one connection is, with the data only that state has: [`State`] and the rest.
///
/// The running states' data is `Copy`: a transition builds the next stage from the current one
/// by value and hands it to `Sender::set_stage`. The end holds nothing: its [`Report`] or
/// [`Error`] is the view itself (`Sender::end`), so it is stored once.
#[derive(Debug, Clone, Copy)]
enum Stage {
    /// [`State::Accepting`].
    Accepting(Accepting),
    /// [`State::Sending`].
    Sending(Sending),
    /// [`State::HalfClosed`].
    HalfClosed(HalfClosed),
    /// [`State::Done`] or [`State::Failed`], which the view holds.
    Over,
}

/// SYN received; the handshake is not finished.
#[derive(Debug, Clone, Copy)]
struct Accepting {
    /// When the reply's first byte was read, if it came with the handshake's last ACK (a
    /// client that answers at once): before our FIN, then.
    reply_at: Option<Instant>,
}

/// Writing the file into the socket.
#[derive(Debug, Clone, Copy)]
struct Sending {
    /// File bytes read from the source so far ([`State::Sending`]'s `queued`).
    queued: u64,
    /// When the handshake completed.
    established_at: Instant,
    /// The last byte read from the reader, not yet queued: it goes out with the FIN.
    held: Option<u8>,
    /// The current window of the rate floor ([`Timeouts::min_rate`]), from the first check on.
    window: Option<RateWindow>,
    /// When the reply's first byte was read, if it came while the file was on its way.
    reply_at: Option<Instant>,
}

/// Our FIN is queued; the reply arrives here.
#[derive(Debug, Clone, Copy)]
struct HalfClosed {
    /// The file's length ([`State::HalfClosed`]'s `sent`).
    sent: u64,
    /// When the handshake completed.
    established_at: Instant,
    /// When `close()` was called.
    fin_queued_at: Instant,
    /// Whether the client has acknowledged our FIN.
    fin: Fin,
    /// When the reply's first byte was read, and whether before or after our FIN.
    first_reply: Option<FirstReply>,
}

/// Our FIN, once `close()` has queued it.
#[derive(Debug, Clone, Copy)]
enum Fin {
    /// Queued or in flight (FIN-WAIT-1, CLOSING, LAST-ACK).
    InFlight {
        /// Whether we turned the socket's keep-alive on to guard it (a lone FIN, and the
        /// keep-alive was off): it is turned off again when the FIN is acknowledged or the
        /// connection ends.
        our_keep_alive: bool,
    },
    /// Acknowledged at this time (the socket left FIN-WAIT-1).
    Acked(Instant),
}

/// The reply's first byte.
#[derive(Debug, Clone, Copy)]
struct FirstReply {
    /// When it was read.
    at: Instant,
    /// Whether before our FIN, recorded as it happened (the two times can be equal).
    before_fin: bool,
}

impl Stage {
    /// What callers see of a running stage (`None` for `Over`: its view is the outcome, which
    /// only `Sender::end` has).
    fn view(&self) -> Option<State> {
        Some(match self {
            Stage::Accepting(_) => State::Accepting,
            Stage::Sending(sending) => State::Sending {
                queued: sending.queued,
            },
            Stage::HalfClosed(half_closed) => State::HalfClosed {
                sent: half_closed.sent,
                fin_queued_at: half_closed.fin_queued_at,
            },
            Stage::Over => return None,
        })
    }
}

/// A stage in the log, as its [`State`] shows it (`sending(0)`), or the end's name.
struct Logged<'a>(&'a Stage, &'static str);

impl fmt::Display for Logged<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0.view() {
            Some(view) => fmt::Display::fmt(&view, f),
            None => f.write_str(self.1),
        }
    }
}

#[cfg(feature = "defmt")]
impl defmt::Format for Logged<'_> {
    fn format(&self, f: defmt::Formatter<'_>) {
        match self.0.view() {
            Some(view) => defmt::Format::format(&view, f),
            None => defmt::write!(f, "{=str}", self.1),
        }
    }
}

impl HalfClosed {
    /// Until the file and FIN are acknowledged we are still transferring; after that only the
    /// reply is missing (so also once the reply has begun and nothing of ours is unacknowledged).
    fn waiting_phase(&self, socket: &tcp::Socket) -> Phase {
        let fin_acked = matches!(self.fin, Fin::Acked(_));
        if fin_acked || (socket.send_queue() == 0 && self.first_reply.is_some()) {
            Phase::Reply
        } else {
            Phase::Transfer
        }
    }

    /// Where the reply phase's limit runs from: the FIN's acknowledgement, or without one its
    /// queueing.
    fn reply_clock_start(&self) -> Instant {
        match self.fin {
            Fin::Acked(at) => at,
            Fin::InFlight { .. } => self.fin_queued_at,
        }
    }
}

/// One connection of the sending side, as a sans-IO state machine.
///
/// Call [`poll`](Sender::poll) after every `Interface::poll` with the current time and the
/// connection's socket. It moves bytes from the reader straight into the socket's transmit buffer
/// (no intermediate copy), half-closes when the reader is exhausted, and collects the reply.
///
/// [`Server`](super::Server) runs one per accepted connection; a program with one socket of its
/// own can run one directly: listen, and start a `Sender` once a SYN has arrived.
///
/// ```
/// # fn main() -> Result<(), Box<dyn core::error::Error>> {
/// use core::task::Poll;
/// use halfclose::client::{Client, Connect};
/// use halfclose::clock::SimClock;
/// use halfclose::device::Loopback;
/// use halfclose::server::Sender;
/// use halfclose::smoltcp::iface::{Config, Interface, SocketSet};
/// use halfclose::smoltcp::phy::Medium;
/// use halfclose::smoltcp::socket::tcp;
/// use halfclose::smoltcp::wire::{HardwareAddress, IpAddress, IpCidr};
///
/// let mut device = Loopback::<1500, 4>::new(Medium::Ip);
/// let mut clock = SimClock::new().with_limit(core::time::Duration::from_secs(60));
/// let mut iface = Interface::new(Config::new(HardwareAddress::Ip), &mut device, clock.now());
/// iface.update_ip_addrs(|a| a.push(IpCidr::new(IpAddress::v4(127, 0, 0, 1), 8)).unwrap());
/// let mut sockets = SocketSet::new(vec![]);
/// let buffer = || tcp::SocketBuffer::new(vec![0u8; 4096]);
/// let s = sockets.add(tcp::Socket::new(buffer(), buffer()));
/// let c = sockets.add(tcp::Socket::new(buffer(), buffer()));
/// sockets.get_mut::<tcp::Socket>(s).listen(7891)?;
/// let to = Connect::to((IpAddress::v4(127, 0, 0, 1), 7891));
/// let mut client = Client::connect(iface.context(), &mut sockets, c, to, Vec::new(), clock.now())?;
///
/// let mut sender = None;
/// loop {
///     let now = clock.now();
///     iface.poll(now, &mut device, &mut sockets);
///     let socket = sockets.get_mut::<tcp::Socket>(s);
///     // A SYN has arrived: the connection is ours to serve.
///     if sender.is_none() && socket.is_active() {
///         sender = Some(Sender::new(&b"hello"[..], now, Default::default()));
///     }
///     let served = sender.as_mut().map(|sender| sender.poll(now, socket));
///     let fetched = client.poll(now, &mut sockets);
///     if let (Some(Poll::Ready(served)), Poll::Ready(fetched)) = (served, fetched) {
///         assert!(served?.reply.is_thank_you());
///         assert_eq!(fetched?.bytes, 5);
///         break;
///     }
///     let deadline = sender.as_ref().and_then(Sender::deadline);
///     clock.advance(&mut iface, &sockets, &device, [deadline, client.deadline()])?;
/// }
/// assert_eq!(client.into_sink(), b"hello");
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct Sender<R> {
    conn: Conn<R>,
    timeouts: Timeouts,
    /// Where the connection is ([`Sender::state`]), and once it is over the outcome.
    view: State,
}

/// [`Sender`] without its [`Timeouts`]: what a [`Server`](super::Server)'s slot holds, the
/// pool's one copy of them passed in to each call (`Timeouts` is 56 bytes on a 32-bit target).
#[derive(Debug)]
pub(super) struct Conn<R> {
    /// The file (drained in `Sending`; kept until the connection is dropped).
    reader: R,
    /// Where the connection is, with that state's data.
    stage: Stage,
    /// The reply bytes so far: in any state (a client may answer before the file ends).
    reply: Reply,
    remote: Option<IpEndpoint>,
    accepted_at: Instant,
    /// Last time anything moved: bytes queued, acknowledged or received, or a state change.
    last_progress: Instant,
    /// When the current phase times out if nothing moves (as of the last poll).
    deadline: Instant,
    /// The socket's transmit queue length at the last poll, to see acknowledgements.
    last_send_queue: usize,
    /// File bytes the client has acknowledged.
    acked: u64,
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
            conn: Conn::new(reader, now, &timeouts),
            timeouts,
            view: State::Accepting,
        }
    }

    /// When this connection times out if nothing happens before (`None` once it is over). An
    /// event loop sleeps no later than this, as it does for `Interface::poll_at`.
    pub fn deadline(&self) -> Option<Instant> {
        self.conn.deadline()
    }

    /// Where the connection is.
    pub fn state(&self) -> &State {
        &self.view
    }

    /// The reply bytes received so far.
    pub fn reply(&self) -> &Reply {
        &self.conn.reply
    }

    /// Advance the connection. Returns `Ready` once, and again on later calls, when it is over.
    #[must_use = "the connection's outcome is reported only once"]
    pub fn poll(&mut self, now: Instant, socket: &mut tcp::Socket) -> Poll<Result<Report, Error>> {
        match &self.view {
            State::Done(report) => return Poll::Ready(Ok(report.clone())),
            State::Failed(error) => return Poll::Ready(Err(error.clone())),
            State::Accepting | State::Sending { .. } | State::HalfClosed { .. } => {}
        }
        let outcome = self.conn.poll(now, socket, &self.timeouts);
        self.view = match &outcome {
            Poll::Ready(Ok(report)) => State::Done(report.clone()),
            Poll::Ready(Err(error)) => State::Failed(error.clone()),
            Poll::Pending => self.conn.state(),
        };
        outcome
    }
}

impl<R: Read> Conn<R> {
    pub(super) fn new(reader: R, now: Instant, timeouts: &Timeouts) -> Self {
        Conn {
            reader,
            stage: Stage::Accepting(Accepting { reply_at: None }),
            reply: Reply::new(),
            remote: None,
            accepted_at: now,
            last_progress: now,
            deadline: now + timeouts.handshake,
            last_send_queue: 0,
            acked: 0,
        }
    }

    pub(super) fn deadline(&self) -> Option<Instant> {
        self.is_running().then_some(self.deadline)
    }

    /// Where a running connection is (`Accepting` once it is over: never asked then).
    pub(super) fn state(&self) -> State {
        self.stage.view().unwrap_or(State::Accepting)
    }

    pub(super) fn poll(
        &mut self,
        now: Instant,
        socket: &mut tcp::Socket,
        timeouts: &Timeouts,
    ) -> Poll<Result<Report, Error>> {
        // Over: the outcome was returned once, by the call that ended it; the pool never polls
        // a finished connection, and `Sender` keeps the outcome for later calls.
        if !self.is_running() {
            return Poll::Pending;
        }
        match self.step(now, socket, timeouts) {
            Ok(None) => Poll::Pending,
            Ok(Some(report)) => {
                self.end("done");
                Poll::Ready(Ok(report))
            }
            Err(error) => {
                self.restore_keep_alive(socket);
                crate::abort_if_open(socket);
                self.end("failed");
                Poll::Ready(Err(error))
            }
        }
    }

    /// Turn the socket's keep-alive off again, if we turned it on for a lone FIN still in
    /// flight (the connection is about to end).
    fn restore_keep_alive(&self, socket: &mut tcp::Socket) {
        if let Stage::HalfClosed(HalfClosed {
            fin: Fin::InFlight {
                our_keep_alive: true,
            },
            ..
        }) = self.stage
        {
            socket.set_keep_alive(None);
        }
    }

    /// Whether the connection is still running (not `Done` or `Failed`).
    fn is_running(&self) -> bool {
        !matches!(self.stage, Stage::Over)
    }

    /// The one door for the running stages: every change of the stage, and of the data its view
    /// shows, goes through here (or `end`), so the public view cannot drift from it. Data the
    /// view does not show (the rate window, the FIN's acknowledgement, when the reply began) is
    /// written in place, by the few methods that say so.
    fn set_stage(&mut self, next: Stage) {
        self.enter(next, "");
    }

    /// The connection is over, `outcome` says how ("done" or "failed", as [`State`] shows it);
    /// `poll` returns it, and keeps nothing.
    fn end(&mut self, outcome: &'static str) {
        self.enter(Stage::Over, outcome);
    }

    /// Write the stage. A change of state is logged (smoltcp's `state=A=>B`), as [`State`]
    /// shows it. Out of line: one copy of the write for the many transitions (flash, on a
    /// Cortex-M0 firmware).
    #[inline(never)]
    fn enter(&mut self, stage: Stage, outcome: &'static str) {
        if core::mem::discriminant(&stage) != core::mem::discriminant(&self.stage) {
            debug!(
                "halfclose server: {}=>{}",
                Logged(&self.stage, ""),
                Logged(&stage, outcome)
            );
        }
        self.stage = stage;
    }

    fn step(
        &mut self,
        now: Instant,
        socket: &mut tcp::Socket,
        timeouts: &Timeouts,
    ) -> Result<Option<Report>, Error> {
        if self.remote.is_none() {
            self.remote = socket.remote_endpoint();
        }
        self.note_acks(now, socket);
        let peer_closed = self.drain_reply(now, socket)?;

        match self.stage {
            // The handshake, or its end.
            Stage::Accepting(accepting) => {
                self.accepting(now, socket, accepting, timeouts)?;
                Ok(None)
            }
            // The file goes out.
            Stage::Sending(sending) => {
                self.sending(now, socket, sending, timeouts)?;
                Ok(None)
            }
            // The reply comes in.
            Stage::HalfClosed(half_closed) => {
                self.half_closed(now, socket, half_closed, peer_closed, timeouts)
            }
            // Over: `poll` steps only a pending connection.
            Stage::Over => Ok(None),
        }
    }

    fn accepting(
        &mut self,
        now: Instant,
        socket: &mut tcp::Socket,
        accepting: Accepting,
        timeouts: &Timeouts,
    ) -> Result<(), Error> {
        match socket.state() {
            // Our SYN-ACK is out; the handshake has a limit of its own: SYN floods are made of
            // handshakes.
            tcp::State::SynReceived => {
                self.expire_at(now, Phase::Connect, self.accepted_at + timeouts.handshake)
            }
            // Established (the client may even have closed already): the file goes out.
            tcp::State::Established | tcp::State::CloseWait => {
                self.progress(now);
                let sending = Sending {
                    queued: 0,
                    established_at: now,
                    held: None,
                    window: None,
                    reply_at: accepting.reply_at,
                };
                self.set_stage(Stage::Sending(sending));
                self.fill(now, socket, sending)
            }
            // A RST in SYN-RECEIVED sends smoltcp back to LISTEN; anything else is equally
            // not a connection we can serve.
            tcp::State::Closed
            | tcp::State::Listen
            | tcp::State::SynSent
            | tcp::State::FinWait1
            | tcp::State::FinWait2
            | tcp::State::Closing
            | tcp::State::TimeWait
            | tcp::State::LastAck => Err(self.reset_error(Phase::Connect)),
        }
    }

    fn sending(
        &mut self,
        now: Instant,
        socket: &mut tcp::Socket,
        sending: Sending,
        timeouts: &Timeouts,
    ) -> Result<(), Error> {
        if !socket.may_send() {
            return Err(self.reset_error(Phase::Transfer));
        }
        self.fill(now, socket, sending)?;
        // Half-closed by `fill`: the reply's limits apply from the next poll on.
        let Stage::Sending(Sending { mut window, .. }) = self.stage else {
            return Ok(());
        };
        self.expire_at(now, Phase::Transfer, self.last_progress + timeouts.idle)?;
        self.check_rate(now, socket, &mut window, timeouts)?;
        self.set_window(window);
        Ok(())
    }

    /// Queue as much of the file as the socket takes; half-close at the end of the file.
    fn fill(
        &mut self,
        now: Instant,
        socket: &mut tcp::Socket,
        mut sending: Sending,
    ) -> Result<(), Error> {
        let before = sending.queued;
        let eof = self.queue_file(socket, &mut sending)?;
        if sending.queued != before {
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
            return self.half_close(now, socket, sending);
        }
        self.last_send_queue = socket.send_queue();
        self.set_stage(Stage::Sending(sending));
        Ok(())
    }

    /// Read the file into the socket's transmit buffer until the buffer is full or the file
    /// ends. Returns whether it ended.
    fn queue_file(
        &mut self,
        socket: &mut tcp::Socket,
        sending: &mut Sending,
    ) -> Result<bool, Error> {
        while socket.can_send() {
            let reader = &mut self.reader;
            let held = &mut sending.held;
            match socket.send(|buf| read_one_behind(reader, held, buf)) {
                Ok(Ok(0)) => return Ok(true),
                Ok(Ok(n)) => sending.queued += n as u64,
                Ok(Err(kind)) => {
                    return Err(Error::Source {
                        kind,
                        bytes: sending.queued,
                    });
                }
                Err(tcp::SendError::InvalidState) => {
                    return Err(self.reset_error(Phase::Transfer));
                }
            }
        }
        Ok(false)
    }

    /// Everything but the last byte is acknowledged: queue it with the FIN (see `fill`).
    fn half_close(
        &mut self,
        now: Instant,
        socket: &mut tcp::Socket,
        sending: Sending,
    ) -> Result<(), Error> {
        let mut our_keep_alive = false;
        if let Some(last) = sending.held {
            // The queue is empty and holds at least one byte: this cannot fail short.
            if socket.send_slice(&[last]) != Ok(1) {
                return Err(self.reset_error(Phase::Transfer));
            }
        } else if socket.keep_alive().is_none() {
            // (A keep-alive of the caller's own already does the same.)
            our_keep_alive = true;
            socket.set_keep_alive(Some(LONE_FIN_KEEP_ALIVE));
        }
        // The receive half stays open for the reply (FIN-WAIT-1, then FIN-WAIT-2).
        socket.close();
        self.last_send_queue = socket.send_queue();
        self.progress(now);
        // A reply already begun came before our FIN, even at the same instant.
        let first_reply = sending.reply_at.map(|at| FirstReply {
            at,
            before_fin: true,
        });
        self.set_stage(Stage::HalfClosed(HalfClosed {
            sent: sending.queued,
            established_at: sending.established_at,
            fin_queued_at: now,
            fin: Fin::InFlight { our_keep_alive },
            first_reply,
        }));
        Ok(())
    }

    fn half_closed(
        &mut self,
        now: Instant,
        socket: &mut tcp::Socket,
        mut half_closed: HalfClosed,
        peer_closed: bool,
        timeouts: &Timeouts,
    ) -> Result<Option<Report>, Error> {
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
            | tcp::State::CloseWait => {
                return Err(self.reset_error(half_closed.waiting_phase(socket)));
            }
        };
        if fin_acked && let Fin::InFlight { our_keep_alive } = half_closed.fin {
            if our_keep_alive {
                socket.set_keep_alive(None);
            }
            half_closed.fin = Fin::Acked(now);
            self.progress(now);
            self.set_fin(half_closed.fin);
        }

        if peer_closed && fin_acked {
            return self.finish(now, half_closed).map(Some);
        }
        let deadline = match half_closed.waiting_phase(socket) {
            // The reply phase as a whole is bounded, so ten bytes trickled one by one, each
            // inside a limit, cannot hold the slot for long.
            Phase::Reply => self.expire_at(
                now,
                Phase::Reply,
                half_closed.reply_clock_start() + timeouts.reply,
            ),
            // File or FIN unacknowledged: the transfer's idle limit.
            phase @ (Phase::Transfer | Phase::Connect) => {
                self.expire_at(now, phase, self.last_progress + timeouts.idle)
            }
        };
        deadline.map(|()| None)
    }

    /// Everything is acknowledged and the client has closed: the reply must be whole.
    fn finish(&mut self, now: Instant, half_closed: HalfClosed) -> Result<Report, Error> {
        let sent = half_closed.sent;
        self.reply.verdict().check(self.reply, true, sent)?;
        let first_reply = half_closed.first_reply.unwrap_or(FirstReply {
            at: now,
            before_fin: false,
        });
        Ok(Report {
            remote: self.remote,
            bytes: sent,
            reply: self.reply,
            accepted_at: self.accepted_at,
            established_at: half_closed.established_at,
            fin_queued_at: half_closed.fin_queued_at,
            fin_acked_at: match half_closed.fin {
                Fin::Acked(at) => Some(at),
                Fin::InFlight { .. } => None,
            },
            reply_at: first_reply.at,
            reply_timing: ReplyTiming::new(
                first_reply.at,
                half_closed.fin_queued_at,
                first_reply.before_fin,
            ),
            finished_at: now,
        })
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
                let (n, verdict) = reply.feed(buf);
                (n, (n, verdict))
            }) {
                Ok((0, _)) => return Ok(false),
                Ok((n, verdict)) => {
                    trace!("halfclose server: {} reply bytes", n);
                    self.note_reply_start(now);
                    self.progress(now);
                    // Fail at the first byte that cannot belong to "Thank you\0": a wrong or
                    // trickled reply must not hold a slot until a timeout.
                    verdict.check(self.reply, false, self.acked)?;
                }
                Err(RecvError::Finished) => return Ok(true),
                // Not synchronized yet, or reset: the state checks that follow decide which.
                Err(RecvError::InvalidState) => return Ok(false),
            }
        }
    }

    /// The reply's first byte was read now: record when, and whether before our FIN. (Data the
    /// view does not show: written in place.)
    fn note_reply_start(&mut self, now: Instant) {
        match &mut self.stage {
            // Read before `close()`: the reply came first, even at the same instant.
            Stage::Accepting(Accepting { reply_at }) | Stage::Sending(Sending { reply_at, .. }) => {
                reply_at.get_or_insert(now);
            }
            Stage::HalfClosed(half_closed) => {
                half_closed.first_reply.get_or_insert(FirstReply {
                    at: now,
                    before_fin: false,
                });
            }
            // Over: nothing is read any more.
            Stage::Over => {}
        }
    }

    /// The rate window of a sending connection changed. (Data the view does not show: written
    /// in place.)
    fn set_window(&mut self, window: Option<RateWindow>) {
        if let Stage::Sending(sending) = &mut self.stage {
            sending.window = window;
        }
    }

    /// Our FIN's state changed. (Data the view does not show: written in place.)
    fn set_fin(&mut self, fin: Fin) {
        if let Stage::HalfClosed(half_closed) = &mut self.stage {
            half_closed.fin = fin;
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

    /// The current phase times out at `deadline` (the next poll is due then at the latest):
    /// fail if that has come. Out of line: one copy for its four callers.
    #[inline(never)]
    fn expire_at(&mut self, now: Instant, phase: Phase, deadline: Instant) -> Result<(), Error> {
        self.deadline = deadline;
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
    fn check_rate(
        &mut self,
        now: Instant,
        socket: &tcp::Socket,
        window: &mut Option<RateWindow>,
        timeouts: &Timeouts,
    ) -> Result<(), Error> {
        if timeouts.min_rate == 0 {
            return Ok(());
        }
        let span = timeouts.idle;
        let fresh = RateWindow {
            start: now,
            acked: self.acked,
            waiting: socket.send_queue() as u64,
        };
        let current = *window.get_or_insert(fresh);
        let end = current.start + span;
        if now < end {
            self.deadline = self.deadline.min(end);
            return Ok(());
        }
        let floor =
            (u64::from(timeouts.min_rate) * span.total_millis() / 1000).min(current.waiting);
        if self.acked - current.acked < floor {
            debug!(
                "halfclose server: {} bytes acknowledged in {}, under the floor of {}",
                self.acked - current.acked,
                span,
                floor
            );
            return Err(Error::TimedOut {
                phase: Phase::Transfer,
                bytes: self.acked,
            });
        }
        *window = Some(fresh);
        self.deadline = self.deadline.min(now + span);
        Ok(())
    }

    /// When the SYN was seen.
    pub(super) fn accepted_at(&self) -> Instant {
        self.accepted_at
    }

    /// Whether the connection is still in its handshake (a candidate for a SYN flood's reclaim).
    pub(super) fn is_half_open(&self) -> bool {
        matches!(self.stage, Stage::Accepting(_))
    }

    /// Since when the peer has moved nothing, if the connection is established and running.
    pub(super) fn stalled_since(&self) -> Option<Instant> {
        match self.stage {
            Stage::Sending(_) | Stage::HalfClosed(_) => Some(self.last_progress),
            Stage::Accepting(_) | Stage::Over => None,
        }
    }

    /// The pool takes this connection's slot back for a new client: it ends as timed out in its
    /// phase (the handshake, or whatever it stalled in).
    pub(super) fn reclaim(&mut self, socket: &mut tcp::Socket) -> Error {
        let phase = match &self.stage {
            Stage::Accepting(_) => Phase::Connect,
            Stage::Sending(_) => Phase::Transfer,
            Stage::HalfClosed(half_closed) => half_closed.waiting_phase(socket),
            // Never called on a finished connection; its own phase is as good as any.
            Stage::Over => Phase::Reply,
        };
        let error = Error::TimedOut {
            phase,
            bytes: self.acked,
        };
        debug!("halfclose server: slot reclaimed ({})", error);
        self.restore_keep_alive(socket);
        self.end("failed");
        error
    }

    fn reset_error(&self, phase: Phase) -> Error {
        Error::Reset {
            phase,
            bytes: self.acked,
        }
    }
}

/// Fill `buf` (the socket's transmit buffer, in place) from `reader`, one byte behind: the last
/// byte read is held back in `held`, so the file's last byte can go out with the FIN. Returns
/// how many bytes it queued and what the read returned (0 at the end of the file).
fn read_one_behind<R: Read>(
    reader: &mut R,
    held: &mut Option<u8>,
    buf: &mut [u8],
) -> (usize, Result<usize, ErrorKind>) {
    let mut one = [0u8; 1];
    let start = usize::from(held.is_some());
    let roomy = buf.len() > start;
    let into: &mut [u8] = if roomy { &mut buf[start..] } else { &mut one };
    let n = match reader.read(into) {
        Ok(0) => return (0, Ok(0)),
        Ok(n) => n,
        Err(e) => return (0, Err(e.kind())),
    };
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

#[cfg(test)]
mod tests {
    use super::*;
    use smoltcp::socket::tcp::SocketBuffer;

    /// A sender whose current rate window began at time 0 with 1 MiB waiting, and whose client
    /// has acknowledged `acked` bytes since; checked at the window's end.
    fn rate_check_at_window_end(acked: u64) -> Result<(), Error> {
        let timeouts = Timeouts::DEFAULT;
        let mut sender = Conn::new(&[][..], Instant::ZERO, &timeouts);
        let mut window = Some(RateWindow {
            start: Instant::ZERO,
            acked: 0,
            waiting: 1 << 20,
        });
        sender.acked = acked;
        let socket = tcp::Socket::new(
            SocketBuffer::new(&mut [][..]),
            SocketBuffer::new(&mut [][..]),
        );
        sender.check_rate(
            Instant::ZERO + timeouts.idle,
            &socket,
            &mut window,
            &timeouts,
        )
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
