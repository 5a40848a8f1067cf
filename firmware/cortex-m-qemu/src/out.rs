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
    pub fn hex(&mut self, n: u32) -> &mut Self {
        self.hex_digits(n, 8)
    }

    /// A 32-bit number in hexadecimal: at least `min` digits (1 to 8), more where it needs them.
    #[inline(never)]
    fn hex_digits(&mut self, n: u32, min: u32) -> &mut Self {
        let mut digits = 8;
        while digits > min && n >> ((digits - 1) * 4) == 0 {
            digits -= 1;
        }
        while digits > 0 {
            digits -= 1;
            let nibble = ((n >> (digits * 4)) & 0xf) as u8;
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

/// A record for the host to read: a tag, then numbers in hexadecimal without leading zeros, one
/// space apart (`summary 1 0 10000 ...`). The small build (no `messages`) prints its banner, its
/// summary and its errors this way. The words that name each number live on the host, in
/// `scripts/summary.py`, which turns each record back into the lines the `messages` build prints:
/// they cost no flash, as defmt keeps its format strings on the host.
#[cfg(not(feature = "messages"))]
pub struct Record(Line);

#[cfg(not(feature = "messages"))]
impl Record {
    /// A record whose layout `tag` names.
    #[inline(never)]
    pub fn new(tag: &str) -> Self {
        let mut line = Line::new();
        line.str(tag);
        Record(line)
    }

    /// One number.
    #[inline(never)]
    pub fn num(&mut self, n: u64) -> &mut Self {
        self.0.bytes(b" ");
        let high = (n >> 32) as u32;
        if high != 0 {
            self.0.hex_digits(high, 1).hex_digits(n as u32, 8);
        } else {
            self.0.hex_digits(n as u32, 1);
        }
        self
    }

    /// An error, as three numbers: its variant, its phase and its byte count. The codes are
    /// `scripts/summary.py`'s `ERRORS` and `PHASES`.
    #[cfg(any(feature = "server", feature = "client"))]
    #[inline(never)]
    pub fn error(&mut self, error: &halfclose::Error) -> &mut Self {
        use halfclose::{Error, Phase};
        let (variant, phase) = match error {
            Error::Listen(_) => (1, None),
            Error::Connect(_) => (2, None),
            Error::Unaddressable { .. } => (3, None),
            Error::ReceiveBufferTooLarge { .. } => (4, None),
            Error::Refused => (5, None),
            Error::Reset { phase, .. } => (6, Some(phase)),
            Error::TimedOut { phase, .. } => (7, Some(phase)),
            Error::Source { .. } => (8, None),
            Error::Sink { .. } => (9, None),
            Error::WrongReply { .. } => (10, None),
            Error::ReplyTooLong { .. } => (11, None),
            // The library may grow variants: 0 is "an error" to the host.
            #[allow(unreachable_patterns)]
            _ => (0, None),
        };
        let phase = match phase {
            None => 0,
            Some(Phase::Connect) => 1,
            Some(Phase::Transfer) => 2,
            Some(Phase::Reply) => 3,
            // `Phase` is non-exhaustive: a later release may add phases.
            Some(_) => 4,
        };
        self.num(variant).num(phase).num(error.bytes())
    }

    /// End the record and write it.
    pub fn end(&mut self) {
        self.0.print();
    }
}

#[cfg(feature = "messages")]
impl core::fmt::Write for Line {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        self.str(s);
        Ok(())
    }
}

/// `line!(a, b, ...)`: one [`Line`] made of the pieces, each a `&str`, a [`dec`] or a [`hex`]
/// number, printed.
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

/// A number to print in decimal ([`dec`]).
pub struct Dec(u64);

/// A number to print as eight hexadecimal digits ([`hex`]).
pub struct Hex(u32);

// One type each, not one enum for both: an image that prints only hexadecimal (a fault's
// address) then links no decimal printing, and its 64-bit division.
impl Piece for Dec {
    fn put(self, line: &mut Line) {
        line.dec(self.0);
    }
}

impl Piece for Hex {
    fn put(self, line: &mut Line) {
        line.hex(self.0);
    }
}

/// `n` in decimal.
pub fn dec(n: u64) -> Dec {
    Dec(n)
}

/// `n` as eight hexadecimal digits.
pub fn hex(n: u32) -> Hex {
    Hex(n)
}

/// An error: its `Display` (the library's sentence). Without `messages` an error is a record's
/// numbers ([`Record::error`]).
#[cfg(all(feature = "messages", any(feature = "server", feature = "client")))]
impl Piece for &halfclose::Error {
    fn put(self, line: &mut Line) {
        use core::fmt::Write as _;
        let _ = write!(line, "{self}");
    }
}

/// Bytes in quotes, as Rust would write them (`"Thank you\0"`).
#[cfg(all(feature = "server", feature = "messages"))]
pub struct Quoted<'a>(pub &'a [u8]);

#[cfg(all(feature = "server", feature = "messages"))]
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
