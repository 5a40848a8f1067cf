//! How long each phase may stand still, and what a peer must move to keep its slot.

use smoltcp::time::Duration;

/// Limits after which a transfer ends in [`Error::TimedOut`](crate::Error::TimedOut) naming its
/// phase, so neither a dead peer nor a hostile one keeps a connection (and, on the server, one of
/// a few pool slots) for long.
///
/// smoltcp retransmits for ever unless told otherwise; these are measured on the time the caller
/// passes to `poll`, so they work the same on a simulated clock. Each field names the fault or
/// attack that sets it; the figures come from `cargo run --release -p halfclose-tools --bin attacks` (see
/// [the attacks table](https://github.com/halfclose/halfclose/blob/main/docs/tables/attacks.md)).
///
/// Start from [`Timeouts::DEFAULT`] and change what your link needs, with `core::time::Duration`
/// or smoltcp's own `Duration`:
///
/// ```
/// use core::time::Duration;
/// use halfclose::Timeouts;
///
/// let timeouts = Timeouts::DEFAULT
///     .with_connect(Duration::from_secs(5))
///     .with_idle(Duration::from_secs(30))
///     .with_linger(Duration::ZERO);
/// assert_eq!(timeouts.idle, Duration::from_secs(30).into());
/// assert_eq!(timeouts.reply, Timeouts::DEFAULT.reply);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Timeouts {
    /// Client: from its SYN to an established connection. Set by a server that is down or whose
    /// answers are lost: smoltcp resends the SYN after 1, 3, 7 and 15 s, so 30 s gives it four
    /// retries.
    pub connect: Duration,
    /// Server: from a SYN to an established connection (SYN-RECEIVED). Set by SYN floods: a
    /// forged SYN is never completed and holds its slot until this limit. 10 s covers smoltcp's
    /// SYN-ACK retransmissions at 1, 3 and 7 s; measured in the soak sweep (10,000 seeds), 5 s
    /// ended 8 of 667 good transfers at 10 % loss in refusals and resets, 10 s none. A flood
    /// needs nothing shorter: a full pool takes back its oldest half-open slot whenever a SYN
    /// takes the last listener (see [`Server`](crate::server::Server)).
    pub handshake: Duration,
    /// The longest the file transfer may go without a byte queued, acknowledged or received. Set
    /// by a peer that vanishes or stops reading: 120 s sits above smoltcp's retransmission
    /// backoff, which doubles up to 60 s (RFC 6298). Measured on the simulated wire at 20 %
    /// loss, 30 s ended good transfers in timeouts. It is also the window over which
    /// [`min_rate`](Timeouts::min_rate) is measured.
    pub idle: Duration,
    /// Server: the least a transfer must move, in bytes per second, averaged over each window of
    /// [`idle`](Timeouts::idle); fewer (while more was waiting) ends it with `TimedOut` in the
    /// transfer phase. Set by slow readers: a client that takes one byte every 60 s moves
    /// something before every idle limit and would otherwise keep its slot for months. 64 B/s
    /// cuts it at the end of its first window (120 s) while a 1000 B/s link, 16 times faster,
    /// still completes a 1 MiB file. Its cost, measured in the soak sweep: at 30 % loss, where
    /// 87 of 667 transfers get through without a floor, 80 do with it (16 B/s: 85); at 10 % loss
    /// and below, none. Zero turns the floor off.
    pub min_rate: u32,
    /// Server: the whole reply phase (from the client's acknowledgement of our FIN to its
    /// `"Thank you\0"` and FIN) may take at most this; client: how long the acknowledgement of its
    /// reply may stand still. Set by a peer that never replies, or trickles its ten bytes one by
    /// one (each byte inside an idle limit); 120 s leaves the ten bytes six retransmissions.
    pub reply: Duration,
    /// Server, pools of two or more: when no socket of the pool listens, a connection whose peer
    /// has moved nothing for this long may be taken back (aborted with a RST) so that a new
    /// client can connect. Set by clients that connect and never read: four of them would
    /// otherwise hold a pool of four for the whole idle limit. 10 s: ten of smoltcp's minimum
    /// retransmission timeouts, well beyond a round trip, well under the idle limit. See
    /// [`Server`](crate::server::Server) for the order slots are taken back in.
    pub stall: Duration,
    /// How long a finished server slot stays in TIME-WAIT before it listens again, so that it can
    /// re-acknowledge the client's FIN if our last ACK was lost (otherwise the client, its
    /// transfer complete, sees `Reset` in the reply phase). Set by loss of the last ACK: the
    /// client resends its FIN after its retransmission timeout (at least 1 s, then doubling),
    /// so 8 s covers three retransmissions (at 1, 3 and 7 s). Measured with a pool of two at
    /// 10 % loss (5 ms each way), 400 transfers: 43 clients saw that reset with no linger, 9
    /// with 2 s, 1 with 4 s, none with 8 s; at 20 % loss 57, 24, 11 and 7. In a pool of two or more the other slots
    /// listen meanwhile; a pool with no listening slot left cuts the linger short, so a pool of
    /// one listens again as soon as the last ACK has been sent (unless
    /// [`Server::set_reclaim`](crate::server::Server::set_reclaim) turned that off).
    pub linger: Duration,
}

impl Timeouts {
    /// The defaults: 30 s for the client to connect, 10 s for the server's handshake, 120 s idle
    /// during the transfer with at least 64 B/s per idle window, 120 s for the reply, 10 s for a
    /// stalled connection in a full pool, 8 s of TIME-WAIT.
    pub const DEFAULT: Timeouts = Timeouts {
        connect: Duration::from_secs(30),
        handshake: Duration::from_secs(10),
        idle: Duration::from_secs(120),
        min_rate: 64,
        reply: Duration::from_secs(120),
        stall: Duration::from_secs(10),
        linger: Duration::from_secs(8),
    };

    /// The same limit for every phase (handshake, stall and reply included), no rate floor and no
    /// linger.
    pub const fn all(limit: Duration) -> Timeouts {
        Timeouts {
            connect: limit,
            handshake: limit,
            idle: limit,
            min_rate: 0,
            reply: limit,
            stall: limit,
            linger: Duration::ZERO,
        }
    }
}

/// Each limit replaced, from a `core::time::Duration` (or smoltcp's own `Duration`).
impl Timeouts {
    /// With [`connect`](Timeouts::connect) set to `limit`.
    pub fn with_connect(mut self, limit: impl Into<Duration>) -> Self {
        self.connect = limit.into();
        self
    }

    /// With [`handshake`](Timeouts::handshake) set to `limit`.
    pub fn with_handshake(mut self, limit: impl Into<Duration>) -> Self {
        self.handshake = limit.into();
        self
    }

    /// With [`idle`](Timeouts::idle) set to `limit`.
    pub fn with_idle(mut self, limit: impl Into<Duration>) -> Self {
        self.idle = limit.into();
        self
    }

    /// With [`min_rate`](Timeouts::min_rate) set to `bytes_per_second` (0: no floor).
    pub const fn with_min_rate(mut self, bytes_per_second: u32) -> Self {
        self.min_rate = bytes_per_second;
        self
    }

    /// With [`reply`](Timeouts::reply) set to `limit`.
    pub fn with_reply(mut self, limit: impl Into<Duration>) -> Self {
        self.reply = limit.into();
        self
    }

    /// With [`stall`](Timeouts::stall) set to `limit`.
    pub fn with_stall(mut self, limit: impl Into<Duration>) -> Self {
        self.stall = limit.into();
        self
    }

    /// With [`linger`](Timeouts::linger) set to `limit`.
    pub fn with_linger(mut self, limit: impl Into<Duration>) -> Self {
        self.linger = limit.into();
        self
    }
}

impl Timeouts {
    /// The client's limit for `phase`: how long it may stand still there.
    pub const fn limit(&self, phase: crate::Phase) -> Duration {
        match phase {
            crate::Phase::Connect => self.connect,
            crate::Phase::Transfer => self.idle,
            crate::Phase::Reply => self.reply,
        }
    }
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts::DEFAULT
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Phase;

    #[test]
    fn each_phase_has_its_own_limit() {
        let t = Timeouts {
            connect: Duration::from_secs(1),
            handshake: Duration::from_secs(5),
            idle: Duration::from_secs(2),
            min_rate: 6,
            reply: Duration::from_secs(3),
            stall: Duration::from_secs(7),
            linger: Duration::from_secs(4),
        };
        assert_eq!(t.limit(Phase::Connect), Duration::from_secs(1));
        assert_eq!(t.limit(Phase::Transfer), Duration::from_secs(2));
        assert_eq!(t.limit(Phase::Reply), Duration::from_secs(3));
    }

    #[test]
    fn one_limit_for_all_phases_and_no_linger() {
        let t = Timeouts::all(Duration::from_millis(1500));
        for phase in [Phase::Connect, Phase::Transfer, Phase::Reply] {
            assert_eq!(t.limit(phase), Duration::from_millis(1500));
        }
        assert_eq!((t.handshake, t.stall), (t.idle, t.idle));
        assert_eq!((t.min_rate, t.linger), (0, Duration::ZERO));
    }

    #[test]
    fn the_default_is_the_documented_one() {
        assert_eq!(Timeouts::default(), Timeouts::DEFAULT);
        let t = Timeouts::DEFAULT;
        assert_eq!(t.connect, Duration::from_secs(30));
        assert_eq!(t.handshake, Duration::from_secs(10));
        assert_eq!((t.idle, t.min_rate), (Duration::from_secs(120), 64));
        assert_eq!(t.reply, Duration::from_secs(120));
        assert_eq!(t.stall, Duration::from_secs(10));
        assert_eq!(t.linger, Duration::from_secs(8));
    }
}
