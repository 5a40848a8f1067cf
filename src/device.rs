//! In-memory devices: no NIC, no allocation, no privileges.

use core::mem::MaybeUninit;

use smoltcp::phy::{self, ChecksumCapabilities, Device, DeviceCapabilities, Medium};
use smoltcp::time::Instant;

/// A loopback device with a fixed ring of `SLOTS` packet buffers of `MTU` bytes each.
///
/// Every packet transmitted is received back in FIFO order, so one `Interface` can run a server
/// and a client talking to each other. The packet buffers are lent to smoltcp in place: a packet
/// is built directly in its slot and read directly from it, and slots are never zero-filled.
/// Whenever the ring empties it starts again at its first slot, so an exchange that keeps it
/// draining touches two or three slots, not all of them.
///
/// `MTU` is the device's maximum transmission unit as smoltcp counts it: the IP packet for
/// [`Medium::Ip`], the Ethernet frame (14 bytes more) for `Medium::Ethernet`.
///
/// One slot is always kept free so that the answer smoltcp may send while it reads a packet has
/// somewhere to go; at most `SLOTS - 1` packets are queued, and `transmit` reports the device busy
/// when that many are. `SLOTS` must be at least 2.
///
/// The device takes `MTU * SLOTS` bytes: put a large one in a `static` or a `Box`, not on a
/// small stack.
///
/// ```
/// use halfclose::clock::Pending;
/// use halfclose::device::Loopback;
/// use halfclose::smoltcp::iface::{Config, Interface, SocketSet, SocketStorage};
/// use halfclose::smoltcp::phy::Medium;
/// use halfclose::smoltcp::socket::tcp;
/// use halfclose::smoltcp::time::Instant;
/// use halfclose::smoltcp::wire::{HardwareAddress, IpAddress, IpCidr};
///
/// // Four 1500-byte slots, on the stack here; a large ring belongs in a `static` or a `Box`.
/// let mut device = Loopback::<1500, 4>::new(Medium::Ip);
/// let mut iface = Interface::new(Config::new(HardwareAddress::Ip), &mut device, Instant::ZERO);
/// iface.update_ip_addrs(|a| a.push(IpCidr::new(IpAddress::v4(127, 0, 0, 1), 8)).unwrap());
/// let (mut rx, mut tx) = ([0u8; 64], [0u8; 64]);
/// let mut storage: [SocketStorage; 1] = Default::default();
/// let mut sockets = SocketSet::new(&mut storage[..]);
/// let socket = tcp::Socket::new(tcp::SocketBuffer::new(&mut rx[..]), tcp::SocketBuffer::new(&mut tx[..]));
/// let handle = sockets.add(socket);
/// let remote = (IpAddress::v4(127, 0, 0, 1), 7891);
/// sockets.get_mut::<tcp::Socket>(handle).connect(iface.context(), remote, 49152).unwrap();
///
/// // The SYN the interface sends to itself waits in the ring for the next poll...
/// iface.poll(Instant::ZERO, &mut device, &mut sockets);
/// assert_eq!(device.pending(), 1);
/// // ...which reads it and answers with a reset (nobody listens), read by the poll after.
/// iface.poll(Instant::ZERO, &mut device, &mut sockets);
/// iface.poll(Instant::ZERO, &mut device, &mut sockets);
/// assert_eq!(device.pending(), 0);
/// assert_eq!(sockets.get::<tcp::Socket>(handle).state(), tcp::State::Closed);
/// ```
#[derive(Debug)]
pub struct Loopback<const MTU: usize, const SLOTS: usize> {
    slots: [[u8; MTU]; SLOTS],
    lens: [usize; SLOTS],
    head: usize,
    len: usize,
    medium: Medium,
    checksums: bool,
}

impl<const MTU: usize, const SLOTS: usize> Loopback<MTU, SLOTS> {
    const CHECK: () = assert!(SLOTS >= 2, "a Loopback needs at least two slots");

    /// An empty loopback for `medium`; checksums are computed and verified.
    pub const fn new(medium: Medium) -> Self {
        #[allow(clippy::let_unit_value)]
        let () = Self::CHECK;
        Loopback {
            slots: [[0; MTU]; SLOTS],
            lens: [0; SLOTS],
            head: 0,
            len: 0,
            medium,
            checksums: true,
        }
    }

    /// An empty loopback for `medium`, like [`new`](Self::new), built in `place`: the
    /// `MTU * SLOTS` bytes of the ring are zeroed where they are and never pass through the stack.
    ///
    /// [`new`](Self::new) returns the device by value; where the compiler does not build it in
    /// its destination (seen on `thumbv6m-none-eabi`, where `StaticCell::init_with(||
    /// Loopback::new(..))` of a 3 KiB ring made a 6.8 KiB stack frame) a small core's stack
    /// overflows. `place` is typically a `static`'s storage, such as `static_cell`'s
    /// `StaticCell::uninit()`.
    #[allow(unsafe_code)]
    pub fn new_in(place: &mut MaybeUninit<Self>, medium: Medium) -> &mut Self {
        #[allow(clippy::let_unit_value)]
        let () = Self::CHECK;
        let this = place.as_mut_ptr();
        // SAFETY: `this` comes from a `&mut MaybeUninit<Self>`, so it is valid for writes of one
        // `Self` and aligned. Every field is written once through a raw pointer, with no read of
        // and no reference to uninitialised memory; zero bytes are a valid `[[u8; MTU]; SLOTS]`
        // and `[usize; SLOTS]`. Afterwards every field holds a valid value, so the whole is
        // initialised and `assume_init_mut` is sound.
        unsafe {
            (&raw mut (*this).slots).write_bytes(0, 1);
            (&raw mut (*this).lens).write_bytes(0, 1);
            (&raw mut (*this).head).write(0);
            (&raw mut (*this).len).write(0);
            (&raw mut (*this).medium).write(medium);
            (&raw mut (*this).checksums).write(true);
            place.assume_init_mut()
        }
    }

    /// Compute and verify checksums (`true`, the default) or skip them (`false`): a loopback
    /// cannot corrupt packets, so skipping them measures the stack without its checksum cost.
    pub const fn with_checksums(mut self, on: bool) -> Self {
        self.checksums = on;
        self
    }

    /// Packets queued and not yet received.
    pub fn queued(&self) -> usize {
        self.len
    }

    /// The next packet `receive` will hand to smoltcp, to look at without consuming it.
    pub fn peek(&self) -> Option<&[u8]> {
        (self.len > 0).then(|| &self.slots[self.head][..self.lens[self.head]])
    }

    /// Drop every queued packet (a cable pulled out and plugged back in).
    pub fn clear(&mut self) {
        self.len = 0;
        self.head = 0;
    }

    fn tail(&self) -> usize {
        (self.head + self.len) % SLOTS
    }
}

/// A packet waits while the ring holds one: [`SimClock`](crate::clock::SimClock) keeps the time
/// still until the interface has received them all.
impl<const MTU: usize, const SLOTS: usize> crate::clock::Pending for Loopback<MTU, SLOTS> {
    fn pending(&self) -> usize {
        self.len
    }
}

impl<const MTU: usize, const SLOTS: usize> Device for Loopback<MTU, SLOTS> {
    type RxToken<'a> = RxToken<'a>;
    type TxToken<'a> = TxToken<'a, MTU>;

    fn receive(&mut self, _timestamp: Instant) -> Option<(RxToken<'_>, TxToken<'_, MTU>)> {
        if self.len == 0 {
            return None;
        }
        let read = self.head;
        self.len -= 1;
        self.head = if self.len == 0 {
            // The ring is empty once this packet is read: the answer goes to slot 0 (1 if this
            // is 0), so a ring that keeps draining, as in a request-response exchange, reuses
            // the same two or three slots, warm in the cache, instead of walking through all
            // `SLOTS * MTU` bytes.
            usize::from(read == 0)
        } else {
            (self.head + 1) % SLOTS
        };
        // At most SLOTS - 1 packets were queued, so after taking one the tail is a free slot
        // other than the one being read.
        let write = self.tail();
        debug_assert_ne!(read, write);
        let (rx, tx) = if read < write {
            let (low, high) = self.slots.split_at_mut(write);
            (&low[read], &mut high[0])
        } else {
            let (low, high) = self.slots.split_at_mut(read);
            (&high[0], &mut low[write])
        };
        Some((
            RxToken::new(&rx[..self.lens[read]]),
            TxToken {
                slot: tx,
                slot_len: &mut self.lens[write],
                queue_len: &mut self.len,
            },
        ))
    }

    fn transmit(&mut self, _timestamp: Instant) -> Option<TxToken<'_, MTU>> {
        if self.len + 1 >= SLOTS {
            return None;
        }
        if self.len == 0 {
            // Nothing queued, nothing lent: start again at the first slot (see `receive`).
            self.head = 0;
        }
        let write = self.tail();
        Some(TxToken {
            slot: &mut self.slots[write],
            slot_len: &mut self.lens[write],
            queue_len: &mut self.len,
        })
    }

    fn capabilities(&self) -> DeviceCapabilities {
        let mut caps = DeviceCapabilities::default();
        caps.medium = self.medium;
        caps.max_transmission_unit = MTU;
        caps.checksum = if self.checksums {
            ChecksumCapabilities::default()
        } else {
            ChecksumCapabilities::ignored()
        };
        caps
    }
}

/// A received packet, read in place from its slot.
#[derive(Debug)]
pub struct RxToken<'a> {
    packet: &'a [u8],
}

impl<'a> RxToken<'a> {
    pub(crate) fn new(packet: &'a [u8]) -> Self {
        RxToken { packet }
    }
}

impl phy::RxToken for RxToken<'_> {
    fn consume<R, F>(self, f: F) -> R
    where
        F: FnOnce(&[u8]) -> R,
    {
        f(self.packet)
    }
}

/// A free slot, lent to smoltcp to build one packet in.
#[derive(Debug)]
pub struct TxToken<'a, const MTU: usize> {
    slot: &'a mut [u8; MTU],
    slot_len: &'a mut usize,
    queue_len: &'a mut usize,
}

impl<const MTU: usize> phy::TxToken for TxToken<'_, MTU> {
    /// # Panics
    /// If `len` exceeds `MTU`; smoltcp never asks for more than the device's MTU.
    fn consume<R, F>(self, len: usize, f: F) -> R
    where
        F: FnOnce(&mut [u8]) -> R,
    {
        let result = f(&mut self.slot[..len]);
        *self.slot_len = len;
        *self.queue_len += 1;
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use phy::{RxToken as _, TxToken as _};

    fn send(dev: &mut Loopback<64, 3>, byte: u8) -> bool {
        match dev.transmit(Instant::ZERO) {
            Some(tx) => {
                tx.consume(4, |buf| buf.fill(byte));
                true
            }
            None => false,
        }
    }

    #[test]
    fn a_loopback_built_in_place_works_like_a_new_one() {
        use std::boxed::Box;
        use std::format;
        let mut place = Box::new(MaybeUninit::<Loopback<64, 3>>::uninit());
        let dev = Loopback::new_in(&mut place, Medium::Ip);
        let new = Loopback::<64, 3>::new(Medium::Ip);
        assert_eq!(dev.queued(), 0);
        assert!(dev.peek().is_none());
        let (caps, new_caps) = (dev.capabilities(), new.capabilities());
        assert_eq!(caps.medium, new_caps.medium);
        assert_eq!(caps.max_transmission_unit, new_caps.max_transmission_unit);
        assert_eq!(
            format!("{:?}", caps.checksum),
            format!("{:?}", new_caps.checksum)
        );
        assert!(send(dev, 7));
        assert!(send(dev, 8));
        assert!(!send(dev, 9), "one slot stays free");
        let (rx, _) = dev.receive(Instant::ZERO).unwrap();
        assert_eq!(rx.consume(|p| <[u8; 4]>::try_from(p).unwrap()), [7; 4]);
    }

    #[test]
    fn packets_come_back_in_order() {
        let mut dev = Loopback::<64, 3>::new(Medium::Ip);
        assert!(send(&mut dev, 1));
        assert!(send(&mut dev, 2));
        let (rx, _) = dev.receive(Instant::ZERO).unwrap();
        assert_eq!(rx.consume(|p| <[u8; 4]>::try_from(p).unwrap()), [1; 4]);
        let (rx, _) = dev.receive(Instant::ZERO).unwrap();
        assert_eq!(rx.consume(|p| <[u8; 4]>::try_from(p).unwrap()), [2; 4]);
        assert!(dev.receive(Instant::ZERO).is_none());
    }

    #[test]
    fn a_full_ring_refuses_to_transmit_but_can_answer_while_reading() {
        let mut dev = Loopback::<64, 3>::new(Medium::Ip);
        assert!(send(&mut dev, 1));
        assert!(send(&mut dev, 2));
        assert!(!send(&mut dev, 3), "one slot stays free");
        let (rx, tx) = dev.receive(Instant::ZERO).unwrap();
        rx.consume(|p| {
            assert_eq!(p, [1; 4]);
            tx.consume(4, |buf| buf.fill(9));
        });
        assert_eq!(dev.queued(), 2);
        assert_eq!(dev.peek(), Some(&[2u8; 4][..]));
        let (rx, _) = dev.receive(Instant::ZERO).unwrap();
        rx.consume(|_| ());
        assert_eq!(dev.peek(), Some(&[9u8; 4][..]));
    }

    /// `SLOTS - 1` packets fit, whatever the ring's position; the next is refused until one is
    /// read.
    #[test]
    fn a_ring_holds_one_packet_less_than_its_slots_at_any_position() {
        let mut dev = Loopback::<64, 4>::new(Medium::Ip);
        for start in 0..8u8 {
            for i in 0..3 {
                let tx = dev
                    .transmit(Instant::ZERO)
                    .expect("room for SLOTS - 1 packets");
                tx.consume(2, |buf| buf.fill(start * 10 + i));
            }
            assert_eq!(dev.queued(), 3);
            assert!(
                dev.transmit(Instant::ZERO).is_none(),
                "the last slot stays free"
            );
            for i in 0..3 {
                let (rx, _) = dev.receive(Instant::ZERO).unwrap();
                assert_eq!(rx.consume(|p| p.to_vec()), [start * 10 + i; 2]);
            }
            // One more round trip moves the ring's start by one slot.
            assert!(dev.receive(Instant::ZERO).is_none());
            dev.transmit(Instant::ZERO).unwrap().consume(1, |_| ());
            dev.receive(Instant::ZERO).unwrap().0.consume(|_| ());
        }
    }

    #[test]
    fn a_cleared_loopback_receives_nothing_and_takes_packets_again() {
        let mut dev = Loopback::<64, 3>::new(Medium::Ip);
        assert!(send(&mut dev, 1));
        assert!(send(&mut dev, 2));
        dev.clear();
        assert_eq!(dev.queued(), 0);
        assert_eq!(dev.peek(), None);
        assert!(dev.receive(Instant::ZERO).is_none());
        assert!(send(&mut dev, 3));
        assert!(send(&mut dev, 4));
        let (rx, _) = dev.receive(Instant::ZERO).unwrap();
        assert_eq!(rx.consume(|p| p[0]), 3);
    }

    #[test]
    fn an_empty_loopback_has_nothing_to_peek_or_receive() {
        let mut dev = Loopback::<64, 2>::new(Medium::Ip);
        assert_eq!(dev.peek(), None);
        assert!(dev.receive(Instant::ZERO).is_none());
        let tx = dev
            .transmit(Instant::ZERO)
            .expect("one packet fits in two slots");
        tx.consume(3, |buf| buf.copy_from_slice(b"abc"));
        assert_eq!(dev.peek(), Some(&b"abc"[..]));
        assert!(dev.transmit(Instant::ZERO).is_none());
    }

    #[test]
    fn capabilities_report_the_medium_mtu_and_checksum_choice() {
        // smoltcp has `Medium::Ethernet` only with its `medium-ethernet` feature.
        #[cfg(feature = "medium-ethernet")]
        {
            let dev = Loopback::<1514, 2>::new(Medium::Ethernet);
            let caps = dev.capabilities();
            assert_eq!(caps.medium, Medium::Ethernet);
            assert_eq!(caps.max_transmission_unit, 1514);
            assert!(caps.checksum.ipv4.tx() && caps.checksum.tcp.rx());
        }
        let caps = Loopback::<576, 2>::new(Medium::Ip)
            .with_checksums(false)
            .capabilities();
        assert_eq!(caps.medium, Medium::Ip);
        assert_eq!(caps.max_transmission_unit, 576);
        assert!(!caps.checksum.ipv4.tx() && !caps.checksum.tcp.rx());
    }

    #[test]
    fn a_ring_that_keeps_draining_reuses_its_first_slots() {
        let mut dev = Loopback::<64, 8>::new(Medium::Ip);
        for i in 0..100u8 {
            // A request, and its answer sent while the request is read.
            let tx = dev
                .transmit(Instant::ZERO)
                .expect("an empty ring takes a packet");
            tx.consume(4, |b| b.fill(i));
            let (rx, tx) = dev.receive(Instant::ZERO).unwrap();
            rx.consume(|p| {
                assert_eq!(p, [i; 4]);
                tx.consume(4, |b| b.fill(!i));
            });
            let (rx, _) = dev.receive(Instant::ZERO).unwrap();
            assert_eq!(rx.consume(|p| p[0]), !i);
        }
        // Slots are never zero-filled: one never written is still all zeros.
        assert!(
            dev.slots[2..]
                .iter()
                .all(|slot| slot.iter().all(|&b| b == 0))
        );
    }

    #[test]
    fn wraps_around_many_times() {
        let mut dev = Loopback::<64, 3>::new(Medium::Ip);
        for i in 0..100u8 {
            assert!(send(&mut dev, i));
            let (rx, _) = dev.receive(Instant::ZERO).unwrap();
            assert_eq!(rx.consume(|p| p[0]), i);
        }
    }
}
