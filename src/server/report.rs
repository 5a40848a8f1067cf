//! What a finished connection did, and when.

use core::fmt;

use smoltcp::time::{Duration, Instant};
use smoltcp::wire::IpEndpoint;

use crate::Reply;
use crate::human::{Bytes, Time};

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

/// One line in the units a person reads:
/// `44 bytes to 10.0.0.2:49152 in 1.2 ms; reply "Thank you\0" 300 µs after our FIN`.
impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", Bytes(self.bytes))?;
        if let Some(remote) = self.remote {
            write!(f, " to {remote}")?;
        }
        let side = match self.reply_timing {
            ReplyTiming::BeforeFin(_) => "before",
            ReplyTiming::AfterFin(_) => "after",
        };
        write!(
            f,
            " in {}; reply {} {} {side} our FIN",
            Time(self.duration()),
            self.reply,
            Time(self.reply_timing.duration()),
        )
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
    pub(crate) fn new(reply_at: Instant, fin_queued_at: Instant, before_fin: bool) -> Self {
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

/// `0.028s after our FIN`, or `0.012s before our FIN`: smoltcp's `Duration` as it shows itself,
/// which the programs' summaries and the tests expect (a [`Report`] shows it in human units).
impl fmt::Display for ReplyTiming {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReplyTiming::BeforeFin(d) => write!(f, "{d} before our FIN"),
            ReplyTiming::AfterFin(d) => write!(f, "{d} after our FIN"),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::format;

    use smoltcp::wire::{IpAddress, Ipv4Address};

    use super::*;

    fn report(remote: Option<IpEndpoint>, bytes: u64, timing: ReplyTiming) -> Report {
        let mut reply = Reply::new();
        reply.extend(crate::REPLY);
        Report {
            remote,
            bytes,
            reply,
            accepted_at: Instant::from_micros(1_000_000),
            established_at: Instant::from_micros(1_000_100),
            fin_queued_at: Instant::from_micros(1_000_900),
            fin_acked_at: None,
            reply_at: Instant::from_micros(1_001_200),
            reply_timing: timing,
            finished_at: Instant::from_micros(1_001_200),
        }
    }

    #[test]
    fn a_report_reads_as_one_line_in_human_units() {
        let client = IpEndpoint::new(IpAddress::Ipv4(Ipv4Address::new(10, 0, 0, 2)), 49152);
        let after = ReplyTiming::AfterFin(Duration::from_micros(300));
        assert_eq!(
            format!("{}", report(Some(client), 44, after)),
            "44 bytes to 10.0.0.2:49152 in 1.2 ms; reply \"Thank you\\0\" 300 µs after our FIN"
        );
        let before = ReplyTiming::BeforeFin(Duration::from_millis(18));
        assert_eq!(
            format!("{}", report(None, 3 << 20, before)),
            "3.00 MiB in 1.2 ms; reply \"Thank you\\0\" 18.0 ms before our FIN"
        );
    }

    #[test]
    fn reply_timing_shows_its_order_and_sign() {
        let d = Duration::from_millis(28);
        assert_eq!(
            format!("{}", ReplyTiming::AfterFin(d)),
            format!("{d} after our FIN")
        );
        assert_eq!(
            format!("{}", ReplyTiming::BeforeFin(d)),
            format!("{d} before our FIN")
        );
        assert_eq!(ReplyTiming::BeforeFin(d).micros(), -28_000);
        assert_eq!(ReplyTiming::AfterFin(d).micros(), 28_000);
    }
}
