//! The one event loop the TAP programs run: take in what the device holds, let our state
//! machines act, send what they queued, then sleep until the earliest of the interface's
//! `poll_at`, our deadlines and the next frame.
//!
//! smoltcp's `Interface::poll` reads, then sends, in one call. Acting between the two halves
//! (`poll_ingress_single`, then `poll_egress`) lets one pass answer what it read: the client
//! empties its receive buffer before the acknowledgement goes, so that one ACK carries the
//! opened window instead of a zero-window ACK followed by an update, and the server refills its
//! transmit buffer before the segments go. On a fast link that halves the frames and the
//! passes per window.

use std::ops::ControlFlow;

use smoltcp::iface::{Interface, PollIngressSingleResult, PollResult, SocketSet};
use smoltcp::phy::Device;
use smoltcp::time::Instant;

/// The most frames one pass takes in before it lets our state machines act and sends: a
/// device that never runs dry (a flood) cannot starve the rest of the loop.
const INGRESS_MAX: usize = 1024;

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
}

/// The first half of a pass of the interface: what the device holds, up to [`INGRESS_MAX`]
/// frames.
fn ingress(
    now: Instant,
    iface: &mut Interface,
    device: &mut impl Device,
    sockets: &mut SocketSet<'_>,
) {
    iface.poll_maintenance(now);
    for _ in 0..INGRESS_MAX {
        if matches!(
            iface.poll_ingress_single(now, device, sockets),
            PollIngressSingleResult::None
        ) {
            break;
        }
    }
}

/// The second half: what the sockets have to send (each call is bounded; it is repeated while
/// a socket's state may have changed, as `Interface::poll` does).
fn egress(
    now: Instant,
    iface: &mut Interface,
    device: &mut impl Device,
    sockets: &mut SocketSet<'_>,
) {
    while matches!(
        iface.poll_egress(now, device, sockets),
        PollResult::SocketStateChanged
    ) {}
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
        ingress(now, iface, driver.device(), sockets);
        let flow = step(now, sockets);
        egress(now, iface, driver.device(), sockets);
        match flow {
            ControlFlow::Break(done) => return Ok(done),
            ControlFlow::Continue(deadline) => {
                driver.wait(earliest(iface.poll_at(now, sockets), deadline))?
            }
        }
    }
}

/// [`run`] with a listen backlog in front of the device: every pass of the interface goes
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
        ingress(now, iface, &mut backlog.guard(driver.device()), sockets);
        let flow = step(now, sockets, backlog);
        egress(now, iface, &mut backlog.guard(driver.device()), sockets);
        let deadline = match flow {
            ControlFlow::Break(done) => return Ok(done),
            ControlFlow::Continue(deadline) => deadline,
        };
        let release = (backlog.releasable() > 0).then_some(now);
        let deadline = earliest(earliest(deadline, backlog.poll_at()), release);
        driver.wait(earliest(iface.poll_at(now, sockets), deadline))?;
    }
}
