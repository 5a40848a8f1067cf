//! An embassy-net task that serves one file with halfclose's async `serve`, in a program that
//! also depends on smoltcp 0.14 with its default features (here only for the report's
//! `Duration`). Checked, not run: a program would add an executor and a network driver.

use embassy_net::Stack;
use embassy_net::tcp::TcpSocket;
use halfclose::asynch::embassy::{EmbassyClock, accept};
use halfclose::asynch::serve;
use halfclose::{DEFAULT_PORT, Error, Timeouts};
use smoltcp::time::Duration;

/// Accept one client on [`DEFAULT_PORT`], send it `file`, and return how long that took.
pub async fn serve_one(stack: Stack<'_>, file: &[u8]) -> Result<Duration, Error> {
    let (mut rx, mut tx) = ([0u8; 4096], [0u8; 4096]);
    let mut socket = TcpSocket::new(stack, &mut rx, &mut tx);
    let clock = EmbassyClock;
    accept(&mut socket, DEFAULT_PORT, &clock, Timeouts::DEFAULT).await?;
    let report = serve(&mut socket, file, &clock, Timeouts::DEFAULT).await?;
    Ok(report.duration())
}
