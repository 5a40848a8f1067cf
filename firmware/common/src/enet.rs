//! The LM3S6965's Ethernet controller (Stellaris MAC at 0x4004_8000): its registers, and frames
//! in and out of its FIFO. The sync image (`firmware/cortex-m-qemu`) lends it to smoltcp as a
//! `phy::Device` (its `phy.rs`); the async image (`firmware/embassy-qemu`) to embassy-net as an
//! `embassy-net-driver` (its `mac.rs`).
//!
//! The MAC has no DMA: frames go in and out through one 32-bit FIFO register, word by word.
//! Received frames come with a 2-byte length (counting itself and the 4-byte FCS) in front and the
//! FCS behind; frames to send are written as a 2-byte length of the payload after the 14-byte
//! Ethernet header, then the frame, then a write to the transmit-request register. Polled: the
//! driver reads the packet-count register instead of taking interrupts.
//!
//! One frame each way is held in static buffers, lent to the network stack in place.

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
/// Room for the largest frame the FIFO can hold (2 KiB less its length and FCS).
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
pub struct Enet {
    buffers: &'static mut Buffers,
    /// Frames dropped because they did not fit.
    pub dropped: u32,
}

impl Enet {
    /// Reset the FIFOs and turn the MAC on with address `mac`, interrupts masked.
    pub fn new(mac: [u8; 6], buffers: &'static mut Buffers) -> Self {
        write(IM, 0);
        write(IA0, u32::from_le_bytes([mac[0], mac[1], mac[2], mac[3]]));
        write(IA1, u32::from_le_bytes([mac[4], mac[5], 0, 0]));
        write(RCTL, RCTL_RSTFIFO);
        write(TCTL, TCTL_DUPLEX | TCTL_CRC | TCTL_PADEN | TCTL_TXEN);
        write(RCTL, RCTL_BADCRC | RCTL_RXEN);
        write(RIS_IACK, !0);
        Enet {
            buffers,
            dropped: 0,
        }
    }

    /// The next frame in the receive FIFO that fits, read into the receive buffer, and the
    /// transmit buffer beside it (for an answer); `None` once the FIFO is empty. A frame that does
    /// not fit is read out of the FIFO all the same, and dropped.
    pub fn next_frame(&mut self) -> Option<(&mut [u8], &mut [u8])> {
        loop {
            if read(NP) == 0 {
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
            // The rest of the FIFO's words for this frame, FCS included: all must be read to move
            // on to the next frame, even when this one is dropped.
            for i in 1..words {
                let word = read(DATA).to_le_bytes();
                let at = 2 + (i - 1) * 4;
                if fits && at < frame {
                    let n = (frame - at).min(4);
                    rx[at..at + n].copy_from_slice(&word[..n]);
                }
            }
            if fits {
                return Some((&mut self.buffers.rx[..frame], &mut self.buffers.tx[..]));
            }
            self.dropped += 1;
        }
    }

    /// The transmit buffer, to build a frame in.
    pub fn tx_buffer(&mut self) -> &mut [u8] {
        &mut self.buffers.tx
    }
}

/// Let `build` write a frame of `len` bytes (at most [`MTU`]) into `buffer`, the transmit buffer,
/// then send it; returns what `build` returned.
pub fn send<R>(buffer: &mut [u8], len: usize, build: impl FnOnce(&mut [u8]) -> R) -> R {
    let len = len.min(MTU);
    let result = build(&mut buffer[..len]);
    let frame = &buffer[..len];
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
