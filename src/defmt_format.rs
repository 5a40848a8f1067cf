//! `defmt::Format` for the types whose `Display` a firmware would otherwise log through
//! `core::fmt` (feature `defmt`). The output reads like `Display`'s, so a state transition looks
//! the same in `defmt` and in `log`: `halfclose server: sending(0)=>half-closed(65536)`.
//!
//! Types without a `Display` of their own (`Error`'s fields, the reports, `Timeouts`) derive
//! `defmt::Format` where they are defined.

use defmt::{Format, Formatter, write};

use crate::{Reply, client, server};

impl Format for server::State {
    fn format(&self, f: Formatter<'_>) {
        match self {
            server::State::Accepting => write!(f, "accepting"),
            server::State::Sending { queued } => write!(f, "sending({=u64})", queued),
            server::State::HalfClosed { sent, .. } => write!(f, "half-closed({=u64})", sent),
            server::State::Done(_) => write!(f, "done"),
            server::State::Failed(_) => write!(f, "failed"),
        }
    }
}

impl Format for client::State {
    fn format(&self, f: Formatter<'_>) {
        match self {
            client::State::Connecting => write!(f, "connecting"),
            client::State::Receiving { received } => write!(f, "receiving({=u64})", received),
            client::State::Replying { received, .. } => {
                write!(f, "replying({=u64})", received)
            }
            client::State::Done(_) => write!(f, "done"),
            client::State::Failed(_) => write!(f, "failed"),
        }
    }
}

/// The kept bytes as an ASCII byte string (`b"Thank you\0"`), and the full length when only a
/// prefix was kept.
impl Format for Reply {
    fn format(&self, f: Formatter<'_>) {
        if self.len() > crate::REPLY_KEPT {
            write!(f, "{=[u8]:a}... ({=usize} bytes)", self.kept(), self.len())
        } else {
            write!(f, "{=[u8]:a}", self.kept())
        }
    }
}
