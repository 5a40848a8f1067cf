//! QEMU `virt`'s network card: a virtio-net device behind a virtio-mmio transport, driven by the
//! `virtio-drivers` crate (rcore-os), as a `smoltcp::phy::Device`.
//!
//! `virtio-drivers` does the virtio part: feature negotiation, the legacy and the modern MMIO
//! register layouts (QEMU 7 offers the legacy one by default), the virtqueues and their rings,
//! and the header in front of every frame. What it leaves to the program is memory, through its
//! [`Hal`] trait, and buffer management, which is what this module adds: the queues' pages come
//! from a static pool that is never freed, addresses are physical ones (the hart runs in machine
//! mode, without translation), and the frames live in [`Buffers`], which the caller places.
//!
//! Receiving: every receive buffer is on the device's receive queue from the start. When one
//! comes back full, smoltcp reads the frame in place; the buffer goes back on the queue at the
//! next call into the device. Sending: one transmit buffer, handed to the device and waited for
//! (QEMU takes the frame at once), so smoltcp's next frame can be built in it.

use core::cell::UnsafeCell;
use core::ptr::NonNull;
use core::sync::atomic::{AtomicUsize, Ordering};

use halfclose::smoltcp::phy::{self, Device, DeviceCapabilities, Medium};
use halfclose::smoltcp::time::Instant;
use virtio_drivers::device::net::VirtIONetRaw;
use virtio_drivers::transport::mmio::{MmioTransport, VirtIOHeader};
use virtio_drivers::transport::{DeviceType, Transport};
use virtio_drivers::{BufferDirection, Hal, PAGE_SIZE, PhysAddr};

/// Largest Ethernet frame without its FCS.
pub const MTU: usize = 1514;
/// A frame and the virtio-net header in front of it (12 bytes, 10 on a legacy device without
/// mergeable buffers): the size `virtio-drivers` asks of a receive buffer.
const FRAME: usize = 1526;
/// Receive buffers on the device's queue at once.
const RX_SLOTS: usize = 4;
/// Descriptors per virtqueue (a power of two, at least `RX_SLOTS`).
const QUEUE: usize = 8;

/// QEMU `virt`'s eight virtio-mmio slots: the first at `0x1000_1000`, each `0x1000` long.
const MMIO_BASE: usize = 0x1000_1000;
const MMIO_SIZE: usize = 0x1000;
const MMIO_SLOTS: usize = 8;

/// Pages for the two virtqueues' rings: a legacy queue takes two, a modern one three.
const DMA_PAGES: usize = 6;

/// The frame buffers, placed by the caller (in a static: they are the device's for the whole run).
pub struct Buffers {
    rx: [[u8; FRAME]; RX_SLOTS],
    tx: [u8; FRAME],
}

impl Buffers {
    pub const fn new() -> Self {
        Buffers {
            rx: [[0; FRAME]; RX_SLOTS],
            tx: [0; FRAME],
        }
    }
}

impl Default for Buffers {
    fn default() -> Self {
        Self::new()
    }
}

/// Memory for the virtqueues, handed out page by page and never taken back: the device lives
/// as long as the program. Zeroed, as `Hal::dma_alloc` promises, because it is `.bss`.
#[repr(C, align(4096))]
struct Pool(UnsafeCell<[u8; DMA_PAGES * PAGE_SIZE]>);

// SAFETY: the pool is only reached through `Dma::dma_alloc`, which hands out each page once
// (`NEXT` only grows), so no two owners ever share a byte.
unsafe impl Sync for Pool {}

static POOL: Pool = Pool(UnsafeCell::new([0; DMA_PAGES * PAGE_SIZE]));
/// Pages of `POOL` handed out so far.
static NEXT: AtomicUsize = AtomicUsize::new(0);

/// `virtio-drivers`' view of the machine: physical addresses are addresses (machine mode, no
/// MMU), and the device sees RAM as the hart does (no cache to clean or invalidate on QEMU).
pub struct Dma;

// SAFETY: `dma_alloc` returns zeroed, page-aligned memory that no one else uses (see `Pool`),
// and every address handed to the device is the buffer's own address.
unsafe impl Hal for Dma {
    fn dma_alloc(pages: usize, _direction: BufferDirection) -> (PhysAddr, NonNull<u8>) {
        let first = NEXT.fetch_add(pages, Ordering::Relaxed);
        // The driver asks for a fixed number of pages at start-up; more is a bug in these
        // constants, which the run reports as a fault.
        assert!(first + pages <= DMA_PAGES, "virtqueue pool too small");
        let at = POOL.0.get().cast::<u8>().wrapping_add(first * PAGE_SIZE);
        // SAFETY: `at` points into `POOL`, which is not null.
        let vaddr = unsafe { NonNull::new_unchecked(at) };
        (at as usize as PhysAddr, vaddr)
    }

    unsafe fn dma_dealloc(_paddr: PhysAddr, _vaddr: NonNull<u8>, _pages: usize) -> i32 {
        // Never freed: the queues live as long as the program.
        0
    }

    unsafe fn mmio_phys_to_virt(paddr: PhysAddr, _size: usize) -> NonNull<u8> {
        NonNull::new(paddr as usize as *mut u8).expect("MMIO at address 0")
    }

    unsafe fn share(buffer: NonNull<[u8]>, _direction: BufferDirection) -> PhysAddr {
        buffer.cast::<u8>().as_ptr() as usize as PhysAddr
    }

    unsafe fn unshare(_paddr: PhysAddr, _buffer: NonNull<[u8]>, _direction: BufferDirection) {}
}

type Net = VirtIONetRaw<Dma, MmioTransport<'static>, QUEUE>;

/// Why the network card could not be brought up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Error {
    /// No virtio-mmio slot holds a network device (QEMU was started without
    /// `-device virtio-net-device`).
    NoDevice,
    /// The device refused the driver's set-up (features, queues).
    Init,
    /// The device did not take a receive buffer.
    Queue,
}

impl core::fmt::Display for Error {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            Error::NoDevice => "no virtio-net device on the virtio-mmio bus",
            Error::Init => "the virtio-net device refused its set-up",
            Error::Queue => "the virtio-net device took no receive buffer",
        })
    }
}

/// The network card, with its buffers.
pub struct VirtioNet {
    net: Net,
    rx: &'static mut [[u8; FRAME]; RX_SLOTS],
    /// The token of each receive buffer while it is on the device's queue.
    tokens: [Option<u16>; RX_SLOTS],
    /// A receive buffer lent to smoltcp, to put back on the queue at the next call.
    lent: Option<usize>,
    tx: &'static mut [u8; FRAME],
}

impl VirtioNet {
    /// Find the network device on the virtio-mmio bus, set it up, and give it every receive
    /// buffer.
    pub fn new(buffers: &'static mut Buffers) -> Result<Self, Error> {
        let transport = (0..MMIO_SLOTS)
            .filter_map(|slot| {
                let header = (MMIO_BASE + slot * MMIO_SIZE) as *mut VirtIOHeader;
                // SAFETY: each slot is a virtio-mmio register block of `MMIO_SIZE` bytes on
                // QEMU's `virt`, mapped for the whole run, and only this driver opens it.
                unsafe { MmioTransport::new(NonNull::new(header)?, MMIO_SIZE) }.ok()
            })
            .find(|transport| transport.device_type() == DeviceType::Network)
            .ok_or(Error::NoDevice)?;
        let net = Net::new(transport).map_err(|_| Error::Init)?;
        let Buffers { rx, tx } = buffers;
        let mut nic = VirtioNet {
            net,
            rx,
            tokens: [None; RX_SLOTS],
            lent: None,
            tx,
        };
        for slot in 0..RX_SLOTS {
            nic.give(slot)?;
        }
        Ok(nic)
    }

    /// The MAC address QEMU gave the card (`-device virtio-net-device,mac=...`).
    pub fn mac(&self) -> [u8; 6] {
        self.net.mac_address()
    }

    /// Bytes of frame buffers (the virtqueues' pages not counted).
    pub const fn buffer_bytes() -> usize {
        core::mem::size_of::<Buffers>()
    }

    /// Put receive buffer `slot` on the device's queue.
    fn give(&mut self, slot: usize) -> Result<(), Error> {
        // SAFETY: the buffer is not touched again until the device hands it back in `receive`
        // (its token is the one `poll_receive` then returns).
        let token =
            unsafe { self.net.receive_begin(&mut self.rx[slot]) }.map_err(|_| Error::Queue)?;
        self.tokens[slot] = Some(token);
        Ok(())
    }

    /// The buffer smoltcp read last goes back on the queue (if the device refuses it, one
    /// receive buffer fewer: the others still work).
    fn give_back(&mut self) {
        if let Some(slot) = self.lent.take() {
            let _ = self.give(slot);
        }
    }
}

impl Device for VirtioNet {
    type RxToken<'a> = RxToken<'a>;
    type TxToken<'a> = TxToken<'a>;

    fn receive(&mut self, _timestamp: Instant) -> Option<(RxToken<'_>, TxToken<'_>)> {
        self.give_back();
        let token = self.net.poll_receive()?;
        let slot = self.tokens.iter().position(|&t| t == Some(token))?;
        self.tokens[slot] = None;
        // SAFETY: `rx[slot]` is the buffer that was queued with this token.
        let received = unsafe { self.net.receive_complete(token, &mut self.rx[slot]) };
        self.lent = Some(slot);
        let (header, len) = received.ok()?;
        let frame = self.rx[slot].get(header..header + len)?;
        Some((
            RxToken { frame },
            TxToken {
                net: &mut self.net,
                buffer: &mut self.tx[..],
            },
        ))
    }

    fn transmit(&mut self, _timestamp: Instant) -> Option<TxToken<'_>> {
        self.give_back();
        Some(TxToken {
            net: &mut self.net,
            buffer: &mut self.tx[..],
        })
    }

    fn capabilities(&self) -> DeviceCapabilities {
        let mut caps = DeviceCapabilities::default();
        caps.medium = Medium::Ethernet;
        caps.max_transmission_unit = MTU;
        caps.max_burst_size = Some(1);
        caps
    }
}

/// A received frame, read in place from its receive buffer.
pub struct RxToken<'a> {
    frame: &'a [u8],
}

impl phy::RxToken for RxToken<'_> {
    fn consume<R, F>(self, f: F) -> R
    where
        F: FnOnce(&[u8]) -> R,
    {
        f(self.frame)
    }
}

/// The transmit buffer, lent to smoltcp to build one frame in; the frame is sent when it is built.
pub struct TxToken<'a> {
    net: &'a mut Net,
    buffer: &'a mut [u8],
}

impl phy::TxToken for TxToken<'_> {
    fn consume<R, F>(self, len: usize, f: F) -> R
    where
        F: FnOnce(&mut [u8]) -> R,
    {
        let frame = &mut self.buffer[..len.min(MTU)];
        let result = f(frame);
        // `send` puts the virtio-net header in front and waits until the device has taken the
        // frame. A frame the device refuses is lost, as on a wire: TCP sends it again.
        let _ = self.net.send(frame);
        result
    }
}
