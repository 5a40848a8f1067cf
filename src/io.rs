//! Host adapters (feature `std`): files and `std::io` streams as sources and sinks.

use std::fs::File;
use std::path::PathBuf;

use crate::server::Source;

/// A `std::io` reader or writer usable as an `embedded_io` one.
#[derive(Debug)]
pub struct FromStd<T>(pub T);

/// A `std::io::Error` seen through `embedded_io`.
#[derive(Debug)]
pub struct StdError(pub std::io::Error);

impl core::fmt::Display for StdError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        self.0.fmt(f)
    }
}

impl core::error::Error for StdError {}

impl embedded_io::Error for StdError {
    fn kind(&self) -> embedded_io::ErrorKind {
        self.0.kind().into()
    }
}

impl<T> embedded_io::ErrorType for FromStd<T> {
    type Error = StdError;
}

impl<T: std::io::Read> embedded_io::Read for FromStd<T> {
    fn read(&mut self, buf: &mut [u8]) -> Result<usize, StdError> {
        loop {
            match self.0.read(buf) {
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                other => return other.map_err(StdError),
            }
        }
    }
}

impl<T: std::io::Write> embedded_io::Write for FromStd<T> {
    fn write(&mut self, buf: &[u8]) -> Result<usize, StdError> {
        loop {
            match self.0.write(buf) {
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                other => return other.map_err(StdError),
            }
        }
    }

    fn flush(&mut self) -> Result<(), StdError> {
        self.0.flush().map_err(StdError)
    }
}

/// A file on disk, opened afresh for every connection.
///
/// Reads go straight from the file into the socket's transmit buffer, in the buffer's own
/// chunk sizes: no `BufReader` and no second copy.
#[derive(Debug, Clone)]
pub struct FileSource {
    path: PathBuf,
}

impl FileSource {
    /// A source for `path`. Fails now, with the OS error, if the file cannot be opened, so a
    /// missing file is reported before any client connects.
    pub fn new(path: impl Into<PathBuf>) -> std::io::Result<Self> {
        let path = path.into();
        File::open(&path)?;
        Ok(FileSource { path })
    }
}

impl Source for FileSource {
    type Reader = FromStd<File>;

    fn open(&mut self) -> Result<FromStd<File>, embedded_io::ErrorKind> {
        File::open(&self.path)
            .map(FromStd)
            .map_err(|e| e.kind().into())
    }
}
