//! The sending side: write a file, half-close, wait for `"Thank you\0"`.
//!
//! [`Sender`] is one connection's state machine over one `tcp::Socket`; [`Server`] runs a fixed pool
//! of them over sockets the caller created, so several clients are served at once and a finished
//! slot listens again for the next one. A small pool defends itself against hostile peers (SYN
//! floods, readers that never or barely read, trickled replies): see [`Server`] and
//! [`Timeouts`](crate::Timeouts).
//!
//! ```text
//!  Accepting ──► Sending { queued } ──close()──► HalfClosed { sent, .. } ──► Done(Report)
//!      │               │                              │
//!      └───────────────┴──────────────────────────────┴────────────────────► Failed(Error)
//! ```
//!
//! One file per idea: `sender` (the one-connection state machine), `pool` (the [`Server`] and
//! its reclaim policy), `report` (what a finished connection did), `source` (where each
//! connection's file comes from).

mod pool;
mod report;
mod sender;
mod source;

pub use pool::{FIRST_HANDSHAKE, Finished, LONGEST_HANDSHAKE, Server};
pub use report::{ReplyTiming, Report};
pub use sender::{Sender, State};
pub use source::Source;
