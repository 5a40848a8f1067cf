//! Where each connection's file comes from.

use embedded_io::Read;

/// Where each connection's file comes from.
///
/// A server serving several clients needs one independent reader per connection; `open` is called
/// once per accepted connection. A byte slice (a payload in flash, say) is the simplest source.
pub trait Source {
    /// The reader one connection drains.
    type Reader: Read;

    /// Open the file for a new connection.
    fn open(&mut self) -> Result<Self::Reader, embedded_io::ErrorKind>;
}

impl<'a> Source for &'a [u8] {
    type Reader = &'a [u8];

    fn open(&mut self) -> Result<&'a [u8], embedded_io::ErrorKind> {
        Ok(self)
    }
}
