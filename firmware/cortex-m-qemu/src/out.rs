//! Lines to the host over semihosting, without `core::fmt`.
//!
//! `core::fmt` is a few kilobytes of code (and its tables) that a small port pays only for its
//! own printing: numbers and strings put together here by hand cost a few hundred bytes. The
//! `messages` feature adds `core::fmt` back for what only it can say (a panic's message, an
//! error's `Display`): [`Line`] then implements [`core::fmt::Write`] too.

/// One line of output, built in a fixed buffer and written in one semihosting call. A line
/// longer than the buffer is written in pieces, never cut.
pub struct Line {
    // One byte more than the text: SYS_WRITE0 takes a NUL-terminated string. Left
    // uninitialised: only `..=len` is ever read, and zeroing 121 bytes at every `line!` costs
    // a call (and its arguments) at each of them.
    buf: [core::mem::MaybeUninit<u8>; Self::CAPACITY + 1],
    len: usize,
}

// Out of line, every one: printing is not the hot path, and inlined copies at every call site
// would cost more flash than all of it.
impl Line {
    const CAPACITY: usize = 120;

    pub const fn new() -> Self {
        Line {
            buf: [core::mem::MaybeUninit::uninit(); Self::CAPACITY + 1],
            len: 0,
        }
    }

    /// Text, as is.
    #[inline(never)]
    pub fn str(&mut self, s: &str) -> &mut Self {
        self.bytes(s.as_bytes())
    }

    /// Bytes, as is (the caller knows they are text).
    #[inline(never)]
    pub fn bytes(&mut self, bytes: &[u8]) -> &mut Self {
        for &b in bytes {
            if self.len == Self::CAPACITY {
                self.flush();
            }
            self.buf[self.len].write(b);
            self.len += 1;
        }
        self
    }

    /// A number in decimal.
    #[inline(never)]
    pub fn dec(&mut self, mut n: u64) -> &mut Self {
        let mut digits = [0u8; 20];
        let mut i = digits.len();
        loop {
            i -= 1;
            // Narrowed to 32 bits once it fits: a 64-bit division is a library call on a
            // 32-bit core, a 32-bit one is an instruction (a short one on the M3, M4, RISC-V).
            let digit = if let Ok(small) = u32::try_from(n) {
                n = u64::from(small / 10);
                small % 10
            } else {
                let d = (n % 10) as u32;
                n /= 10;
                d
            };
            digits[i] = b'0' + digit as u8;
            if n == 0 {
                break;
            }
        }
        self.bytes(&digits[i..])
    }

    /// A 32-bit number as eight hexadecimal digits.
    #[inline(never)]
    pub fn hex(&mut self, n: u32) -> &mut Self {
        for shift in (0..8).rev() {
            let nibble = ((n >> (shift * 4)) & 0xf) as u8;
            let c = if nibble < 10 {
                b'0' + nibble
            } else {
                b'a' + nibble - 10
            };
            self.bytes(&[c]);
        }
        self
    }

    /// End the line and write it.
    #[inline(never)]
    pub fn print(&mut self) {
        self.bytes(b"\n");
        self.flush();
    }

    #[inline(never)]
    fn flush(&mut self) {
        self.buf[self.len].write(0);
        // SAFETY: SYS_WRITE0 reads the NUL-terminated string at the address and nothing else;
        // `buf` has the NUL at `len`, inside the array.
        unsafe {
            crate::semihosting::syscall1!(WRITE0, self.buf.as_ptr().cast::<u8>());
        }
        self.len = 0;
    }
}

#[cfg(feature = "messages")]
impl core::fmt::Write for Line {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        self.str(s);
        Ok(())
    }
}

/// `line!(a, b, ...)`: one [`Line`] made of the pieces, each a `&str` or an [`Arg`] (see
/// [`dec`], [`hex`]), printed.
macro_rules! line {
    ($($piece:expr),* $(,)?) => {{
        let mut line = $crate::out::Line::new();
        $( $crate::out::Piece::put($piece, &mut line); )*
        line.print();
    }};
}
pub(crate) use line;

/// What [`line!`] accepts.
pub trait Piece {
    fn put(self, line: &mut Line);
}

impl Piece for &str {
    fn put(self, line: &mut Line) {
        line.str(self);
    }
}

/// A number to print in decimal ([`dec`]) or hexadecimal ([`hex`]).
pub enum Arg {
    Dec(u64),
    Hex(u32),
}

impl Piece for Arg {
    fn put(self, line: &mut Line) {
        match self {
            Arg::Dec(n) => line.dec(n),
            Arg::Hex(n) => line.hex(n),
        };
    }
}

/// `n` in decimal.
pub fn dec(n: u64) -> Arg {
    Arg::Dec(n)
}

/// `n` as eight hexadecimal digits.
pub fn hex(n: u32) -> Arg {
    Arg::Hex(n)
}

/// An error: with `messages` its `Display` (the library's sentence), without it its variant,
/// phase and byte count, which need no formatting.
#[cfg(any(feature = "server", feature = "client"))]
impl Piece for &halfclose::Error {
    #[cfg(feature = "messages")]
    fn put(self, line: &mut Line) {
        use core::fmt::Write as _;
        let _ = write!(line, "{self}");
    }

    #[cfg(not(feature = "messages"))]
    fn put(self, line: &mut Line) {
        use halfclose::{Error, Phase};
        let (name, phase) = match self {
            Error::Listen(_) => ("cannot listen", None),
            Error::Connect(_) => ("cannot connect", None),
            Error::Refused => ("connection refused", None),
            Error::Reset { phase, .. } => ("connection reset", Some(phase)),
            Error::TimedOut { phase, .. } => ("timed out", Some(phase)),
            Error::Source { .. } => ("the file source failed", None),
            Error::Sink { .. } => ("the file sink failed", None),
            Error::WrongReply { .. } => ("wrong reply", None),
            Error::ReplyTooLong { .. } => ("reply too long", None),
            // The library may grow variants; the sentence for them comes with `messages`.
            #[allow(unreachable_patterns)]
            _ => ("error", None),
        };
        line.str(name);
        if let Some(phase) = phase {
            line.str(match phase {
                Phase::Connect => " in the connect phase",
                Phase::Transfer => " in the transfer phase",
                Phase::Reply => " in the reply phase",
                // `Phase` is non-exhaustive: a later release may add phases.
                _ => " in a later phase",
            });
        }
        line.str(" after ").dec(self.bytes()).str(" bytes");
    }
}

/// Bytes in quotes, as Rust would write them (`"Thank you\0"`).
#[cfg(feature = "server")]
pub struct Quoted<'a>(pub &'a [u8]);

#[cfg(feature = "server")]
impl Piece for Quoted<'_> {
    fn put(self, line: &mut Line) {
        line.str("\"");
        for &b in self.0 {
            match b {
                b'"' | b'\\' => line.bytes(&[b'\\', b]),
                0 => line.str("\\0"),
                0x20..=0x7e => line.bytes(&[b]),
                _ => {
                    let hex = b"0123456789abcdef";
                    line.bytes(&[
                        b'\\',
                        b'x',
                        hex[usize::from(b >> 4)],
                        hex[usize::from(b & 0xf)],
                    ])
                }
            };
        }
        line.str("\"");
    }
}
