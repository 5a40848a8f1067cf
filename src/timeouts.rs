//! How long each phase may stand still.

use smoltcp::time::Duration;

/// Limits after which a transfer ends in [`Error::TimedOut`](crate::Error::TimedOut) naming its
/// phase, so a dead or silent peer never leaves a connection hanging.
///
/// smoltcp retransmits for ever unless told otherwise; these are measured on the time the caller
/// passes to `poll`, so they work the same on a simulated clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Timeouts {
    /// From SYN to an established connection.
    pub connect: Duration,
    /// The longest the file transfer may go without a byte queued, acknowledged or received.
    pub idle: Duration,
    /// After the file: how long the reply (server) or its acknowledgement (client) may stand still.
    pub reply: Duration,
    /// How long a finished server slot stays in TIME-WAIT before it listens again, so that it can
    /// re-acknowledge the client's FIN if the last ACK was lost. Zero (the default) listens again
    /// as soon as the last ACK has been sent: best for a pool of one on a reliable link. On a
    /// lossy link a few round-trip times spare clients a reset after a lost final ACK.
    pub linger: Duration,
}

impl Timeouts {
    /// The defaults: 30 s to connect (smoltcp's SYN retransmissions at 1, 3, 7, 15 s), 120 s
    /// idle during the transfer and for the reply, no linger.
    ///
    /// smoltcp doubles its retransmission timeout after each loss, up to 60 s (RFC 6298). An idle
    /// limit under that gives up on a lossy link while TCP is still retrying: measured on the
    /// simulated wire at 20 % loss, 30 s ended good transfers in timeouts.
    pub const DEFAULT: Timeouts = Timeouts {
        connect: Duration::from_secs(30),
        idle: Duration::from_secs(120),
        reply: Duration::from_secs(120),
        linger: Duration::ZERO,
    };

    /// The same limit for every phase (and no linger).
    pub const fn all(limit: Duration) -> Timeouts {
        Timeouts {
            connect: limit,
            idle: limit,
            reply: limit,
            linger: Duration::ZERO,
        }
    }
}

impl Timeouts {
    /// The limit for `phase`.
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
