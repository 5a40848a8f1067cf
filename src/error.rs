//! What can go wrong in a transfer, and in which phase.

use core::fmt;

use smoltcp::socket::tcp::{ConnectError, ListenError};

use crate::reply::Reply;

/// The part of the exchange a transfer was in when it ended.
///
/// Both sides walk through the same three phases:
///
/// | phase      | server (sender)                                   | client (receiver)                              |
/// |------------|---------------------------------------------------|------------------------------------------------|
/// | `Connect`  | SYN received, handshake not finished              | SYN sent, no answer yet                        |
/// | `Transfer` | writing the file, FIN not yet acknowledged        | reading the file until the server's FIN        |
/// | `Reply`    | FIN acknowledged, waiting for the reply and a FIN | reply and FIN sent, waiting for their ACK      |
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum Phase {
    /// The three-way handshake.
    Connect,
    /// The file's bytes and the FIN that ends them.
    Transfer,
    /// The client's `"Thank you\0"` and the FIN that ends it.
    Reply,
}

impl fmt::Display for Phase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Phase::Connect => "connect",
            Phase::Transfer => "transfer",
            Phase::Reply => "reply",
        })
    }
}

/// Why a transfer failed.
///
/// Every variant that can happen after bytes moved carries `bytes`: for the server the file bytes
/// the client acknowledged, for the client the file bytes already written to its sink. Those bytes
/// are never lost: a client's sink keeps them, whatever ends the connection.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum Error {
    /// The socket could not listen (port 0, or the socket was in use).
    Listen(ListenError),
    /// The socket could not connect (unspecified or mismatched address, port 0, socket in use).
    Connect(ConnectError),
    /// The client cannot connect there, and this says why: the remote address is unspecified
    /// or not unicast, the remote port is 0, or no ephemeral local port is free.
    Unaddressable {
        /// What is wrong, naming the argument.
        what: &'static str,
    },
    /// The client's socket has a receive buffer over
    /// [`client::MAX_RECEIVE_BUFFER`](crate::client::MAX_RECEIVE_BUFFER) bytes: smoltcp 0.14
    /// would scale its window, and a scaled window can end a file short (see that constant).
    ReceiveBufferTooLarge {
        /// The socket's receive buffer, in bytes.
        capacity: usize,
    },
    /// The peer answered our SYN with a reset: nobody listens on that port.
    Refused,
    /// The peer reset the connection.
    Reset {
        /// Where the exchange was.
        phase: Phase,
        /// File bytes delivered before the reset.
        bytes: u64,
    },
    /// Nothing moved for longer than the phase's timeout (see [`Timeouts`](crate::Timeouts)).
    TimedOut {
        /// Where the exchange was.
        phase: Phase,
        /// File bytes delivered before the timeout.
        bytes: u64,
    },
    /// The server's source failed to open or read.
    Source {
        /// The source's error.
        kind: embedded_io::ErrorKind,
        /// File bytes read from the source before the failure.
        bytes: u64,
    },
    /// The client's sink failed to write or flush (or is full).
    Sink {
        /// The sink's error.
        kind: embedded_io::ErrorKind,
        /// File bytes the sink accepted before the failure.
        bytes: u64,
    },
    /// The client's reply is not `"Thank you\0"`: the server ends the connection at the first byte
    /// that cannot belong to it, or when the client closes after fewer bytes (none included).
    WrongReply {
        /// What the client sent.
        reply: Reply,
        /// File bytes the client acknowledged.
        bytes: u64,
    },
    /// The client sent `"Thank you\0"` and then more: the server ends the connection at the first
    /// extra byte (a BSD server would read up to [`REPLY_MAX`](crate::REPLY_MAX) of them).
    ReplyTooLong {
        /// The reply's first bytes (the length is how many arrived before the server gave up).
        reply: Reply,
        /// File bytes the client acknowledged.
        bytes: u64,
    },
}

impl Error {
    /// File bytes delivered before the failure (0 where none could have moved).
    pub fn bytes(&self) -> u64 {
        match self {
            Error::Listen(_)
            | Error::Connect(_)
            | Error::Unaddressable { .. }
            | Error::ReceiveBufferTooLarge { .. }
            | Error::Refused => 0,
            Error::Reset { bytes, .. }
            | Error::TimedOut { bytes, .. }
            | Error::Source { bytes, .. }
            | Error::Sink { bytes, .. }
            | Error::WrongReply { bytes, .. }
            | Error::ReplyTooLong { bytes, .. } => *bytes,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Listen(e) => write!(f, "cannot listen: {e}"),
            Error::Connect(e) => write!(f, "cannot connect: {e}"),
            Error::Unaddressable { what } => write!(f, "cannot connect: {what}"),
            Error::ReceiveBufferTooLarge { capacity } => write!(
                f,
                "the client's receive buffer of {capacity} bytes is over {}: smoltcp would scale \
                 its window, which can end a file short",
                crate::client::MAX_RECEIVE_BUFFER
            ),
            Error::Refused => {
                f.write_str("connection refused (the peer answered the SYN with a reset)")
            }
            Error::Reset { phase, bytes } => {
                write!(
                    f,
                    "connection reset by the peer in the {phase} phase after {bytes} bytes"
                )
            }
            Error::TimedOut { phase, bytes } => {
                write!(f, "timed out in the {phase} phase after {bytes} bytes")
            }
            Error::Source { kind, bytes } => {
                write!(f, "the file source failed after {bytes} bytes: {kind:?}")
            }
            Error::Sink { kind, bytes } => {
                write!(f, "the file sink failed after {bytes} bytes: {kind:?}")
            }
            Error::WrongReply { reply, bytes } => write!(
                f,
                "the client's reply was {reply}, not \"Thank you\\0\" (after {bytes} bytes)"
            ),
            Error::ReplyTooLong { reply, bytes } => write!(
                f,
                "the client's reply went on after \"Thank you\\0\": {reply} (after {bytes} bytes)"
            ),
        }
    }
}

impl core::error::Error for Error {}

#[cfg(test)]
mod tests {
    use std::format;

    use super::*;

    #[test]
    fn an_error_reads_as_what_failed_in_which_phase_after_how_many_bytes() {
        let reset = Error::Reset {
            phase: Phase::Reply,
            bytes: 4096,
        };
        assert_eq!(
            format!("{reset}"),
            "connection reset by the peer in the reply phase after 4096 bytes"
        );
        let timed_out = Error::TimedOut {
            phase: Phase::Transfer,
            bytes: 12,
        };
        assert_eq!(
            format!("{timed_out}"),
            "timed out in the transfer phase after 12 bytes"
        );
        assert_eq!(format!("{}", Phase::Connect), "connect");
    }

    #[test]
    fn an_errors_bytes_are_those_that_moved_before_it() {
        let reset = Error::Reset {
            phase: Phase::Transfer,
            bytes: 7,
        };
        assert_eq!(reset.bytes(), 7);
        assert_eq!(Error::Refused.bytes(), 0);
    }
}
