//! Simulated time for in-memory transfers, moved the one right way.
//!
//! In memory nothing waits on a real timer, so a program (or a test) keeps its own clock and
//! moves it forward itself. There is one right way to do that: **the clock moves only when no
//! packet waits in the device**. While a packet waits, the next `Interface::poll` must run at
//! the same instant to receive it; moving the clock first (say, by `Interface::poll_delay`,
//! the obvious loop) makes every round trip wait out a timer, and the sender's retransmission
//! timer fires for packets that were never lost: a 44-byte transfer then takes 12 simulated
//! seconds, and a megabyte never finishes.
//!
//! [`SimClock::advance`] does it right: it asks the device whether a packet waits ([`Pending`]),
//! and only when none does, jumps to the earliest of the interface's `poll_at` and the
//! deadlines passed in (the state machines' own: [`Server::poll_at`](crate::server::Server::poll_at),
//! [`Client::deadline`](crate::client::Client::deadline)).
//!
//! ```
//! # fn main() -> Result<(), Box<dyn core::error::Error>> {
//! use core::task::Poll;
//! use halfclose::clock::SimClock;
//! use halfclose::client::{Client, Connect};
//! use halfclose::device::Loopback;
//! use halfclose::server::Server;
//! use halfclose::smoltcp::iface::{Config, Interface, SocketSet, SocketStorage};
//! use halfclose::smoltcp::phy::Medium;
//! use halfclose::smoltcp::socket::tcp;
//! use halfclose::smoltcp::wire::{HardwareAddress, IpAddress, IpCidr};
//!
//! // A megabyte, through a loopback of four 1500-byte packet slots.
//! static FILE: [u8; 1 << 20] = [0x5a; 1 << 20];
//! let mut copy = vec![0u8; FILE.len()];
//! let mut device = Loopback::<1500, 4>::new(Medium::Ip);
//! let mut clock = SimClock::new().with_limit(core::time::Duration::from_secs(60));
//! let mut iface = Interface::new(Config::new(HardwareAddress::Ip), &mut device, clock.now());
//! iface.update_ip_addrs(|a| a.push(IpCidr::new(IpAddress::v4(127, 0, 0, 1), 8)).unwrap());
//!
//! let socket = |rx, tx| tcp::Socket::new(tcp::SocketBuffer::new(rx), tcp::SocketBuffer::new(tx));
//! let mut bufs = vec![0u8; 4 * 32 * 1024];
//! let (s_rx, rest) = bufs.split_at_mut(32 * 1024);
//! let (s_tx, rest) = rest.split_at_mut(32 * 1024);
//! let (c_rx, c_tx) = rest.split_at_mut(32 * 1024);
//! let mut storage: [SocketStorage; 2] = Default::default();
//! let mut sockets = SocketSet::new(&mut storage[..]);
//! let s = sockets.add(socket(s_rx, s_tx));
//! let c = sockets.add(socket(c_rx, c_tx));
//!
//! let mut server = Server::listen(&mut sockets, [s], 7891, &FILE[..], Default::default())?;
//! let to = Connect::to((IpAddress::v4(127, 0, 0, 1), 7891));
//! let mut client = Client::connect(iface.context(), &mut sockets, c, to, &mut copy[..], clock.now())?;
//!
//! let (mut served, mut fetched) = (None, None);
//! loop {
//!     let now = clock.now();
//!     iface.poll(now, &mut device, &mut sockets);
//!     if let Some(result) = server.poll(now, &mut sockets).into_iter().next() {
//!         served = Some(result?);
//!     }
//!     if let Poll::Ready(result) = client.poll(now, &mut sockets) {
//!         fetched = Some(result?);
//!     }
//!     if served.is_some() && fetched.is_some() {
//!         break;
//!     }
//!     // Stays put while a packet waits in the device; otherwise jumps to the next timer.
//!     clock.advance(&mut iface, &sockets, &device, [server.poll_at(), client.deadline()])?;
//! }
//! assert_eq!(fetched.unwrap().bytes, FILE.len() as u64);
//! assert!(clock.now() < halfclose::smoltcp::time::Instant::from_secs(1), "{}", clock.now());
//! drop(client);
//! assert!(copy == FILE);
//! # Ok(()) }
//! ```

use core::fmt;

use smoltcp::iface::{Interface, SocketSet};
use smoltcp::time::{Duration, Instant};

/// A device that can tell whether a packet waits in it for the next `Interface::poll`.
///
/// Implemented by [`Loopback`](crate::device::Loopback) and, with the `sim` feature, by the
/// simulated wire (`sim::Wire`). An in-memory device of your own implements it to be driven by
/// [`SimClock`].
pub trait Pending {
    /// Packets the next `Interface::poll` would receive if it ran now.
    fn pending(&self) -> usize;
}

impl<T: Pending + ?Sized> Pending for &T {
    fn pending(&self) -> usize {
        (**self).pending()
    }
}

impl<T: Pending + ?Sized> Pending for &mut T {
    fn pending(&self) -> usize {
        (**self).pending()
    }
}

/// Why [`SimClock::advance`] did not move the clock on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum Stalled {
    /// The next event lies beyond the clock's limit ([`SimClock::with_limit`]): the run did not
    /// end in the simulated time it was given.
    PastLimit {
        /// The limit.
        limit: Instant,
    },
    /// No packet waits, nothing is in flight and nobody has a deadline: nothing will ever
    /// happen again. A run that reaches this without having ended is stuck.
    Idle {
        /// The time the clock stands at.
        at: Instant,
    },
}

impl fmt::Display for Stalled {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use crate::human::Time;
        match *self {
            Stalled::PastLimit { limit } => write!(
                f,
                "simulated time ran out at {} before the run ended",
                Time(limit - Instant::ZERO)
            ),
            Stalled::Idle { at } => write!(
                f,
                "nothing left to happen at {}, the run not ended",
                Time(at - Instant::ZERO)
            ),
        }
    }
}

impl core::error::Error for Stalled {}

/// The earliest of `candidates`, or `None` if there is none.
pub(crate) fn earliest(candidates: impl IntoIterator<Item = Option<Instant>>) -> Option<Instant> {
    candidates.into_iter().flatten().min()
}

/// The time a simulated clock standing at `now` moves to next, once no packet waits: the
/// earliest candidate, and never `now` itself (whatever was due now, the poll just served),
/// so a loop always makes progress.
pub(crate) fn next_instant(
    now: Instant,
    candidates: impl IntoIterator<Item = Option<Instant>>,
) -> Option<Instant> {
    earliest(candidates).map(|t| t.max(now + Duration::from_micros(1)))
}

/// Simulated time for an in-memory device: it moves only when nothing waits in the device.
///
/// Starts at `Instant::ZERO`; see the [module docs](self) for the loop it belongs in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SimClock {
    now: Instant,
    limit: Option<Instant>,
}

impl Default for SimClock {
    fn default() -> Self {
        SimClock::new()
    }
}

impl SimClock {
    /// A clock at `Instant::ZERO`, with no limit.
    pub const fn new() -> Self {
        SimClock {
            now: Instant::ZERO,
            limit: None,
        }
    }

    /// A clock at `now`, with no limit.
    pub const fn starting_at(now: Instant) -> Self {
        SimClock { now, limit: None }
    }

    /// The same clock, allowed to run `limit` past where it stands now: an event later than
    /// that is [`Stalled::PastLimit`]. Every loop in a test should have one.
    pub fn with_limit(mut self, limit: impl Into<Duration>) -> Self {
        self.limit = Some(self.now + limit.into());
        self
    }

    /// The simulated time.
    pub const fn now(&self) -> Instant {
        self.now
    }

    /// Move the clock after a pass of the loop (`Interface::poll`, then the state machines).
    ///
    /// While `device` holds a packet the clock stays where it is and the loop runs again at the
    /// same instant. Otherwise it jumps to the earliest of the interface's `poll_at` and
    /// `deadlines` (pass every state machine's: `Server::poll_at`, `Client::deadline`,
    /// `Sender::deadline`). Returns the new time.
    pub fn advance(
        &mut self,
        iface: &mut Interface,
        sockets: &SocketSet<'_>,
        device: &impl Pending,
        deadlines: impl IntoIterator<Item = Option<Instant>>,
    ) -> Result<Instant, Stalled> {
        if device.pending() > 0 {
            return Ok(self.now);
        }
        let poll_at = iface.poll_at(self.now, sockets);
        self.jump(core::iter::once(poll_at).chain(deadlines))
    }

    /// Move the clock to the earliest of `candidates` (never standing still), for a caller that
    /// has already checked that no packet waits: several interfaces, or a device of its own.
    /// [`advance`](Self::advance) is this with the check and the interface's `poll_at`.
    pub fn jump(
        &mut self,
        candidates: impl IntoIterator<Item = Option<Instant>>,
    ) -> Result<Instant, Stalled> {
        let Some(next) = next_instant(self.now, candidates) else {
            return Err(Stalled::Idle { at: self.now });
        };
        if let Some(limit) = self.limit
            && next > limit
        {
            return Err(Stalled::PastLimit { limit });
        }
        self.now = next;
        Ok(next)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Queue(usize);

    impl Pending for Queue {
        fn pending(&self) -> usize {
            self.0
        }
    }

    fn ms(n: u64) -> Instant {
        Instant::ZERO + Duration::from_millis(n)
    }

    #[test]
    fn the_clock_stands_still_while_a_packet_waits() {
        let mut clock = SimClock::new();
        // A packet waits: the loop must run again at once, whatever the timers say.
        assert_eq!(clock.jump([Some(ms(5))]), Ok(ms(5)));
        let mut iface = smoltcp::iface::Interface::new(
            smoltcp::iface::Config::new(smoltcp::wire::HardwareAddress::Ip),
            &mut crate::device::Loopback::<64, 2>::new(smoltcp::phy::Medium::Ip),
            clock.now(),
        );
        let sockets = SocketSet::new(&mut [][..]);
        assert_eq!(
            clock.advance(&mut iface, &sockets, &Queue(1), [Some(ms(7))]),
            Ok(ms(5))
        );
        assert_eq!(clock.now(), ms(5));
        // Nothing waits: on to the earliest deadline.
        assert_eq!(
            clock.advance(
                &mut iface,
                &sockets,
                &Queue(0),
                [Some(ms(9)), None, Some(ms(7))]
            ),
            Ok(ms(7))
        );
    }

    #[test]
    fn the_clock_never_stands_still_when_nothing_waits() {
        let mut clock = SimClock::starting_at(ms(3));
        // A deadline in the past or now was served by the pass that just ran.
        assert_eq!(
            clock.jump([Some(ms(1))]),
            Ok(ms(3) + Duration::from_micros(1))
        );
    }

    #[test]
    fn the_clock_stops_at_its_limit_and_when_nothing_is_left() {
        let mut clock = SimClock::new().with_limit(Duration::from_millis(10));
        assert_eq!(clock.jump([Some(ms(10))]), Ok(ms(10)));
        assert_eq!(
            clock.jump([Some(ms(11))]),
            Err(Stalled::PastLimit { limit: ms(10) })
        );
        assert_eq!(clock.now(), ms(10));
        assert_eq!(clock.jump([None]), Err(Stalled::Idle { at: ms(10) }));
    }

    #[test]
    fn a_reference_to_a_device_says_what_the_device_says() {
        let mut queue = Queue(3);
        let shared: &Queue = &queue;
        assert_eq!(<&Queue as Pending>::pending(&shared), 3);
        let unique: &mut Queue = &mut queue;
        assert_eq!(<&mut Queue as Pending>::pending(&unique), 3);
    }

    #[test]
    fn a_stall_says_why_and_when() {
        let past = Stalled::PastLimit { limit: ms(10) };
        assert_eq!(
            std::format!("{past}"),
            "simulated time ran out at 10.0 ms before the run ended"
        );
        let idle = Stalled::Idle { at: ms(3) };
        assert_eq!(
            std::format!("{idle}"),
            "nothing left to happen at 3.0 ms, the run not ended"
        );
    }

    #[test]
    fn a_limit_counts_from_where_the_clock_stands() {
        let clock = SimClock::starting_at(ms(100)).with_limit(core::time::Duration::from_millis(5));
        assert_eq!(clock.limit, Some(ms(105)));
    }
}
