//! The one event loop every example runs: poll the interface, let our state machines act, then
//! sleep until the earliest of the interface's `poll_at`, our deadlines and the next frame.

use std::ops::ControlFlow;

use smoltcp::iface::{Interface, SocketSet};
use smoltcp::phy::Device;
use smoltcp::time::Instant;

/// A device with a clock: real time over a real device, or simulated time in memory.
pub trait Driver {
    /// The device the interface polls.
    type Device: Device;

    /// The device.
    fn device(&mut self) -> &mut Self::Device;

    /// The time now.
    fn now(&mut self) -> Instant;

    /// Return when a frame may have arrived or at `until` at the latest. An error (a device
    /// that failed) ends the run.
    fn wait(&mut self, until: Option<Instant>) -> Result<(), String>;

    /// One pass of the interface (a driver may do it frame by frame, to trace).
    fn poll(&mut self, now: Instant, iface: &mut Interface, sockets: &mut SocketSet<'_>) {
        iface.poll(now, self.device(), sockets);
    }
}

/// The earlier of two optional instants.
pub fn earliest(a: Option<Instant>, b: Option<Instant>) -> Option<Instant> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// Run until `step` breaks with a value. `step` sees the time and the sockets after each pass
/// of the interface and returns its own next deadline (e.g. `Client::deadline`).
pub fn run<D: Driver, T>(
    driver: &mut D,
    iface: &mut Interface,
    sockets: &mut SocketSet<'_>,
    mut step: impl FnMut(Instant, &mut SocketSet<'_>) -> ControlFlow<T, Option<Instant>>,
) -> Result<T, String> {
    loop {
        let now = driver.now();
        driver.poll(now, iface, sockets);
        match step(now, sockets) {
            ControlFlow::Break(done) => return Ok(done),
            ControlFlow::Continue(deadline) => {
                driver.wait(earliest(iface.poll_at(now, sockets), deadline))?
            }
        }
    }
}

/// [`run`] with a listen backlog in front of the device: every pass of the interface reads
/// through `backlog`, `step` sees it (to [`admit`](halfclose::backlog::Backlog::admit) after
/// each `Server::poll`), and the loop wakes by the backlog's `poll_at`, or at once while a held
/// SYN may go to a socket that listens.
pub fn run_behind<D: Driver, T, const LEN: usize>(
    driver: &mut D,
    backlog: &mut halfclose::backlog::Backlog<LEN>,
    iface: &mut Interface,
    sockets: &mut SocketSet<'_>,
    mut step: impl FnMut(
        Instant,
        &mut SocketSet<'_>,
        &mut halfclose::backlog::Backlog<LEN>,
    ) -> ControlFlow<T, Option<Instant>>,
) -> Result<T, String> {
    loop {
        let now = driver.now();
        iface.poll(now, &mut backlog.guard(driver.device()), sockets);
        let deadline = match step(now, sockets, backlog) {
            ControlFlow::Break(done) => return Ok(done),
            ControlFlow::Continue(deadline) => deadline,
        };
        let release = (backlog.releasable() > 0).then_some(now);
        let deadline = earliest(earliest(deadline, backlog.poll_at()), release);
        driver.wait(earliest(iface.poll_at(now, sockets), deadline))?;
    }
}
