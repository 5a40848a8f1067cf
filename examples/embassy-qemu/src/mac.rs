//! The LM3S6965's Ethernet controller (Stellaris MAC at 0x4004_8000) as an `embassy-net-driver`.
//!
//! The register protocol is the one `examples/cortex-m-qemu/src/enet.rs` drives for smoltcp: no
//! DMA, frames in and out through one 32-bit FIFO register; a received frame comes with a 2-byte
//! length (counting itself and the 4-byte FCS) in front and the FCS behind; a frame to send is
//! written as the 2-byte length of its payload after the Ethernet header, the frame, then a
//! transmit request. Here the receive side registers its waker with the 1 ms tick instead of
//! taking the MAC's interrupt, so embassy-net's runner sleeps between frames.

use core::task::Context;

use embassy_net_driver::{Capabilities, Driver, HardwareAddress, LinkState, RxToken, TxToken};

const BASE: usize = 0x4004_8000;
/// Raw interrupt status (read) and acknowledge (write).
const RIS_IACK: usize = 0x00;
/// Interrupt mask.
const IM: usize = 0x04;
const RCTL: usize = 0x08;
const TCTL: usize = 0x0c;
const DATA: usize = 0x10;
const IA0: usize = 0x14;
const IA1: usize = 0x18;
/// Frames waiting in the receive FIFO.
const NP: usize = 0x34;
/// Transmit request.
const TR: usize = 0x38;

const RCTL_RXEN: u32 = 0x01;
const RCTL_BADCRC: u32 = 0x08;
const RCTL_RSTFIFO: u32 = 0x10;
const TCTL_TXEN: u32 = 0x01;
const TCTL_PADEN: u32 = 0x02;
const TCTL_CRC: u32 = 0x04;
const TCTL_DUPLEX: u32 = 0x10;
const TR_NEWTX: u32 = 0x01;

/// The largest Ethernet frame without FCS.
pub const MTU: usize = 1514;
/// Room for the largest frame the FIFO can hold.
const BUFFER: usize = 2048;

fn read(offset: usize) -> u32 {
    // SAFETY: BASE + offset is one of the MAC's 32-bit registers (the LM3S6965 datasheet's
    // memory map, as QEMU's `stellaris_enet` models it); volatile keeps every access.
    unsafe { core::ptr::read_volatile((BASE + offset) as *const u32) }
}

fn write(offset: usize, value: u32) {
    // SAFETY: as in `read`.
    unsafe { core::ptr::write_volatile((BASE + offset) as *mut u32, value) }
}

/// Frame buffers for the driver: one received frame and one frame being sent.
pub struct Buffers {
    rx: [u8; BUFFER],
    tx: [u8; BUFFER],
}

impl Buffers {
    pub const fn new() -> Self {
        Buffers {
            rx: [0; BUFFER],
            tx: [0; BUFFER],
        }
    }
}

/// The Ethernet MAC, owning its buffers.
pub struct Mac {
    mac: [u8; 6],
    buffers: &'static mut Buffers,
}

impl Mac {
    /// Reset the FIFOs and turn the MAC on with address `mac`, interrupts masked.
    pub fn new(mac: [u8; 6], buffers: &'static mut Buffers) -> Self {
        write(IM, 0);
        write(IA0, u32::from_le_bytes([mac[0], mac[1], mac[2], mac[3]]));
        write(IA1, u32::from_le_bytes([mac[4], mac[5], 0, 0]));
        write(RCTL, RCTL_RSTFIFO);
        write(TCTL, TCTL_DUPLEX | TCTL_CRC | TCTL_PADEN | TCTL_TXEN);
        write(RCTL, RCTL_BADCRC | RCTL_RXEN);
        write(RIS_IACK, !0);
        Mac { mac, buffers }
    }
}

impl Driver for Mac {
    type RxToken<'a> = Rx<'a>;
    type TxToken<'a> = Tx<'a>;

    fn receive(&mut self, cx: &mut Context) -> Option<(Rx<'_>, Tx<'_>)> {
        loop {
            if read(NP) == 0 {
                crate::time::TICK_WAKER.register(cx.waker());
                return None;
            }
            // The first word: the length (of length, frame and FCS) and the frame's first 2 bytes.
            let first = read(DATA);
            let total = (first & 0xffff) as usize;
            let words = total.div_ceil(4);
            let frame = total.saturating_sub(6);
            let fits = frame >= 14 && frame <= self.buffers.rx.len() - 2;
            let rx = &mut self.buffers.rx;
            rx[..2].copy_from_slice(&first.to_le_bytes()[2..]);
            // Every word of this frame must leave the FIFO, FCS included, even when it is dropped.
            for i in 1..words {
                let word = read(DATA).to_le_bytes();
                let at = 2 + (i - 1) * 4;
                if fits && at < frame {
                    let n = (frame - at).min(4);
                    rx[at..at + n].copy_from_slice(&word[..n]);
                }
            }
            if fits {
                let (rx, tx) = (&mut self.buffers.rx[..frame], &mut self.buffers.tx);
                return Some((Rx { frame: rx }, Tx { buffer: tx }));
            }
        }
    }

    fn transmit(&mut self, _cx: &mut Context) -> Option<Tx<'_>> {
        Some(Tx {
            buffer: &mut self.buffers.tx,
        })
    }

    fn link_state(&mut self, _cx: &mut Context) -> LinkState {
        LinkState::Up
    }

    fn capabilities(&self) -> Capabilities {
        let mut caps = Capabilities::default();
        caps.max_transmission_unit = MTU;
        caps.max_burst_size = Some(1);
        caps
    }

    fn hardware_address(&self) -> HardwareAddress {
        HardwareAddress::Ethernet(self.mac)
    }
}

/// A received frame, read in place from the driver's buffer.
pub struct Rx<'a> {
    frame: &'a mut [u8],
}

impl RxToken for Rx<'_> {
    fn consume<R, F>(self, f: F) -> R
    where
        F: FnOnce(&mut [u8]) -> R,
    {
        f(self.frame)
    }
}

/// The transmit buffer, lent to embassy-net to build one frame in.
pub struct Tx<'a> {
    buffer: &'a mut [u8; BUFFER],
}

impl TxToken for Tx<'_> {
    fn consume<R, F>(self, len: usize, f: F) -> R
    where
        F: FnOnce(&mut [u8]) -> R,
    {
        let len = len.min(MTU);
        let result = f(&mut self.buffer[..len]);
        let frame = &self.buffer[..len];
        // The first word: the payload length after the Ethernet header, and 2 bytes of frame.
        let payload = len.saturating_sub(14) as u32;
        let b = |i: usize| u32::from(frame.get(i).copied().unwrap_or(0));
        write(DATA, payload | (b(0) << 16) | (b(1) << 24));
        let mut at = 2;
        while at < len {
            write(
                DATA,
                b(at) | (b(at + 1) << 8) | (b(at + 2) << 16) | (b(at + 3) << 24),
            );
            at += 4;
        }
        write(TR, TR_NEWTX);
        result
    }
}
