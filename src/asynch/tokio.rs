//! tokio's `TcpStream` as a [`HalfClose`] stream (feature `tokio`): the async transfer against the
//! kernel's TCP, for host programs and tests.
//!
//! `close_write` is `shutdown(SHUT_WR)`. The kernel tells nothing about acknowledgements, so
//! [`HalfClose::ACKNOWLEDGED`] is `false`: `flush` and `close_write` return once the kernel
//! has the bytes, and the kernel decides where its FIN goes.

use std::io;

use ::tokio::io::{AsyncReadExt, AsyncWriteExt};
use ::tokio::net::TcpStream;
use smoltcp::time::Instant;

use super::{Clock, HalfClose};

/// A tokio `TcpStream` seen through `embedded-io-async`.
#[derive(Debug)]
pub struct Stream(pub TcpStream);

impl embedded_io_async::ErrorType for Stream {
    type Error = io::Error;
}

impl embedded_io_async::Read for Stream {
    async fn read(&mut self, buf: &mut [u8]) -> Result<usize, io::Error> {
        self.0.read(buf).await
    }
}

impl embedded_io_async::Write for Stream {
    async fn write(&mut self, buf: &[u8]) -> Result<usize, io::Error> {
        self.0.write(buf).await
    }

    async fn flush(&mut self) -> Result<(), io::Error> {
        self.0.flush().await
    }
}

impl HalfClose for Stream {
    const ACKNOWLEDGED: bool = false;

    async fn close_write(&mut self) -> Result<(), io::Error> {
        // tokio's `shutdown` on a `TcpStream` is `shutdown(fd, SHUT_WR)`: the read side stays open.
        self.0.shutdown().await
    }
}

/// tokio's timer as a [`Clock`] (times count from the clock's creation).
#[derive(Debug, Clone, Copy)]
pub struct TokioClock {
    origin: ::tokio::time::Instant,
}

impl TokioClock {
    /// A clock whose zero is now.
    pub fn new() -> Self {
        TokioClock {
            origin: ::tokio::time::Instant::now(),
        }
    }
}

impl Default for TokioClock {
    fn default() -> Self {
        TokioClock::new()
    }
}

impl Clock for TokioClock {
    fn now(&self) -> Instant {
        Instant::from_micros(self.origin.elapsed().as_micros() as i64)
    }

    async fn sleep_until(&self, deadline: Instant) {
        let after = std::time::Duration::from_micros(deadline.total_micros().max(0) as u64);
        ::tokio::time::sleep_until(self.origin + after).await
    }
}
