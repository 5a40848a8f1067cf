//! The client's last words, as the server saw them.

use core::fmt;

use crate::macros::trace;
use crate::{Error, REPLY};

/// How many leading bytes of a reply are kept for reports and error messages.
pub const REPLY_KEPT: usize = 32;

/// A reply: its first [`REPLY_KEPT`] bytes and its full length.
///
/// The server only needs to know whether the reply is exactly [`REPLY`], so it keeps a short
/// prefix for diagnostics instead of a 1 KiB buffer per connection.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Reply {
    kept: [u8; REPLY_KEPT],
    len: usize,
}

impl Reply {
    /// An empty reply.
    pub const fn new() -> Self {
        Reply {
            kept: [0; REPLY_KEPT],
            len: 0,
        }
    }

    /// Append received bytes.
    pub fn extend(&mut self, bytes: &[u8]) {
        if self.len < REPLY_KEPT {
            let n = bytes.len().min(REPLY_KEPT - self.len);
            self.kept[self.len..self.len + n].copy_from_slice(&bytes[..n]);
        }
        self.len += bytes.len();
    }

    /// Append received bytes up to and including the first one that cannot belong to
    /// `"Thank you\0"`; returns how many were taken.
    pub fn extend_until_wrong(&mut self, bytes: &[u8]) -> usize {
        for (i, &b) in bytes.iter().enumerate() {
            self.extend(&[b]);
            if !self.may_become_thank_you() {
                return i + 1;
            }
        }
        bytes.len()
    }

    /// Append received bytes up to and including the first one that cannot belong to
    /// `"Thank you\0"`, and judge the reply so far: the one check of the sync and async servers.
    /// Returns how many bytes were taken (the rest are never looked at) and the verdict.
    pub(crate) fn feed(&mut self, bytes: &[u8]) -> (usize, Verdict) {
        let taken = self.extend_until_wrong(bytes);
        (taken, self.verdict())
    }

    /// What the bytes so far make of the reply.
    pub(crate) fn verdict(&self) -> Verdict {
        if self.goes_on_after_thank_you() {
            return Verdict::TooLong;
        }
        if !self.may_become_thank_you() {
            return Verdict::Wrong;
        }
        if self.len == REPLY.len() {
            Verdict::Complete
        } else {
            Verdict::Incomplete
        }
    }

    /// Total number of bytes received.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether nothing was received.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The kept prefix (all of the reply when it is at most [`REPLY_KEPT`] bytes).
    pub fn kept(&self) -> &[u8] {
        &self.kept[..self.len.min(REPLY_KEPT)]
    }

    /// Whether the reply is exactly `"Thank you\0"`.
    pub fn is_thank_you(&self) -> bool {
        self.len == REPLY.len() && self.kept() == REPLY
    }

    /// Whether the bytes so far can still become `"Thank you\0"`: they are its beginning (the
    /// empty reply included). The first byte that breaks this ends the connection at once.
    pub fn may_become_thank_you(&self) -> bool {
        self.len <= REPLY.len() && REPLY.starts_with(self.kept())
    }

    /// Whether the reply is `"Thank you\0"` followed by more bytes.
    pub fn goes_on_after_thank_you(&self) -> bool {
        self.len > REPLY.len() && self.kept().starts_with(REPLY)
    }
}

/// What the bytes received so far make of a reply ([`Reply::feed`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// A beginning of `"Thank you\0"` (the empty reply included): more has to come.
    Incomplete,
    /// Exactly `"Thank you\0"`: the client's FIN may end it now.
    Complete,
    /// A byte of the reply (its last, when fed by [`Reply::feed`]) cannot belong to
    /// `"Thank you\0"`.
    Wrong,
    /// `"Thank you\0"` and then more.
    TooLong,
}

impl Verdict {
    /// The error that ends the connection, if this verdict ends it: a wrong or overlong reply at
    /// once (a trickled one must not hold the connection until a timeout), and, once the client
    /// has closed (`closed`), anything short of the whole reply. `bytes` is the file bytes the
    /// error reports. Out of line: one copy for its callers (flash, on a Cortex-M0 firmware).
    #[inline(never)]
    pub(crate) fn check(self, reply: Reply, closed: bool, bytes: u64) -> Result<(), Error> {
        match self {
            // Nothing is wrong yet; a FIN now would cut the reply short.
            Verdict::Incomplete if closed => Err(Error::WrongReply { reply, bytes }),
            // Still on its way, or whole.
            Verdict::Incomplete | Verdict::Complete => Ok(()),
            // The first impossible byte ends it.
            Verdict::Wrong => {
                trace!(
                    "halfclose: the reply went wrong at its byte {}",
                    reply.len()
                );
                Err(Error::WrongReply { reply, bytes })
            }
            // So does the first byte after "Thank you\0".
            Verdict::TooLong => Err(Error::ReplyTooLong { reply, bytes }),
        }
    }
}

impl Default for Reply {
    fn default() -> Self {
        Reply::new()
    }
}

/// Shows the reply as a quoted string with escapes, e.g. `"Thank you\0"`, noting any truncation.
impl fmt::Display for Reply {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("\"")?;
        for &b in self.kept() {
            match b {
                0 => f.write_str("\\0")?,
                b'"' => f.write_str("\\\"")?,
                b'\\' => f.write_str("\\\\")?,
                0x20..=0x7e => write!(f, "{}", b as char)?,
                _ => write!(f, "\\x{b:02x}")?,
            }
        }
        f.write_str("\"")?;
        if self.len > REPLY_KEPT {
            write!(f, "... ({} bytes)", self.len)?;
        }
        Ok(())
    }
}

impl fmt::Debug for Reply {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thank_you_is_recognised_only_when_exact() {
        let mut r = Reply::new();
        r.extend(b"Thank ");
        assert!(!r.is_thank_you());
        r.extend(b"you\0");
        assert!(r.is_thank_you());
        r.extend(b"!");
        assert!(!r.is_thank_you());
    }

    /// Same length as the real reply, one byte different: the length alone must not pass.
    #[test]
    fn a_ten_byte_reply_that_differs_in_one_byte_is_not_thank_you() {
        let mut r = Reply::new();
        r.extend(b"Thank yoU\0");
        assert_eq!(r.len(), REPLY.len());
        assert!(!r.is_thank_you());
        let mut r = Reply::new();
        r.extend(b"Thank you\0");
        assert!(r.is_thank_you());
    }

    #[test]
    fn a_reply_counts_its_bytes_and_is_empty_only_without_any() {
        let mut r = Reply::default();
        assert!(r.is_empty());
        assert_eq!((r.len(), r.kept()), (0, &b""[..]));
        r.extend(b"");
        assert!(r.is_empty());
        r.extend(b"a");
        assert!(!r.is_empty());
        assert_eq!((r.len(), r.kept()), (1, &b"a"[..]));
    }

    #[test]
    fn a_reply_shows_escaped_with_its_length_when_cut() {
        let mut r = Reply::new();
        r.extend(b"Thank you\0");
        assert_eq!(std::format!("{r}"), "\"Thank you\\0\"");
        assert_eq!(std::format!("{r:?}"), "\"Thank you\\0\"");
        let mut r = Reply::new();
        r.extend(b"a\"b\\c\x01\x7f~ ");
        assert_eq!(std::format!("{r}"), "\"a\\\"b\\\\c\\x01\\x7f~ \"");
        let mut r = Reply::new();
        r.extend(&[b'x'; REPLY_KEPT]);
        assert_eq!(
            std::format!("{r}"),
            std::format!("\"{}\"", "x".repeat(REPLY_KEPT))
        );
        r.extend(b"y");
        assert_eq!(
            std::format!("{r}"),
            std::format!("\"{}\"... (33 bytes)", "x".repeat(REPLY_KEPT))
        );
    }

    #[test]
    fn a_reply_is_wrong_from_its_first_impossible_byte() {
        let mut r = Reply::new();
        assert!(r.may_become_thank_you());
        r.extend(b"Thank");
        assert!(r.may_become_thank_you());
        r.extend(b"s");
        assert!(!r.may_become_thank_you());
        assert!(!r.goes_on_after_thank_you());
        let mut r = Reply::new();
        r.extend(REPLY);
        assert!(r.may_become_thank_you());
        r.extend(b"\0");
        assert!(!r.may_become_thank_you());
        assert!(r.goes_on_after_thank_you());
        let mut r = Reply::new();
        assert_eq!(r.extend_until_wrong(b"ThXnk you"), 3);
        assert_eq!(r.kept(), b"ThX");
    }

    #[test]
    fn a_fed_reply_is_judged_at_its_first_deciding_byte() {
        let mut r = Reply::new();
        assert_eq!(r.verdict(), Verdict::Incomplete);
        assert_eq!(r.feed(b"Thank"), (5, Verdict::Incomplete));
        assert_eq!(r.feed(b" you\0"), (5, Verdict::Complete));
        assert_eq!(r.feed(b"!!"), (1, Verdict::TooLong));
        let mut r = Reply::new();
        assert_eq!(r.feed(b"ThXnk you"), (3, Verdict::Wrong));
        let mut r = Reply::new();
        r.extend(b"Thank you\0 and more than thirty-two bytes of it");
        assert_eq!(r.verdict(), Verdict::TooLong);
        let mut r = Reply::new();
        r.extend(b"Thank yo");
        r.extend(&[b'u'; 40]);
        assert_eq!(r.verdict(), Verdict::Wrong);
    }

    #[test]
    fn a_verdict_ends_the_connection_when_wrong_or_cut_short() {
        let mut r = Reply::new();
        r.extend(b"Thank");
        assert_eq!(r.verdict().check(r, false, 7), Ok(()));
        assert_eq!(
            r.verdict().check(r, true, 7),
            Err(Error::WrongReply { reply: r, bytes: 7 })
        );
        r.extend(b" you\0");
        assert_eq!(r.verdict().check(r, true, 7), Ok(()));
        r.extend(b"x");
        assert_eq!(
            r.verdict().check(r, false, 7),
            Err(Error::ReplyTooLong { reply: r, bytes: 7 })
        );
        let mut r = Reply::new();
        r.extend(b"x");
        assert_eq!(
            r.verdict().check(r, false, 7),
            Err(Error::WrongReply { reply: r, bytes: 7 })
        );
    }

    #[test]
    fn long_reply_keeps_prefix_and_counts_everything() {
        let mut r = Reply::new();
        for _ in 0..100 {
            r.extend(&[b'x'; 20]);
        }
        assert_eq!(r.len(), 2000);
        assert_eq!(r.kept(), &[b'x'; REPLY_KEPT][..]);
    }
}
