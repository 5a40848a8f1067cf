//! The LM3S6965's Ethernet controller (Stellaris MAC at 0x4004_8000) as an `embassy-net-driver`.
//!
//! The registers and the FIFO protocol are `firmware/common`'s `enet`, shared with the sync image;
//! what is this image's own is the receive side's waiting: when the FIFO is empty it registers its
//! waker with the 1 ms tick instead of taking the MAC's interrupt, so embassy-net's runner sleeps
//! between frames.

use core::task::Context;

use embassy_net_driver::{Capabilities, Driver, HardwareAddress, LinkState, RxToken, TxToken};

use crate::enet::{self, Buffers, Enet, MTU};

/// The Ethernet MAC with its address, as embassy-net asks for both.
pub struct Mac {
    mac: [u8; 6],
    enet: Enet,
}

impl Mac {
    /// Reset the FIFOs and turn the MAC on with address `mac`, interrupts masked.
    pub fn new(mac: [u8; 6], buffers: &'static mut Buffers) -> Self {
        Mac {
            mac,
            enet: Enet::new(mac, buffers),
        }
    }
}

impl Driver for Mac {
    type RxToken<'a> = Rx<'a>;
    type TxToken<'a> = Tx<'a>;

    fn receive(&mut self, cx: &mut Context) -> Option<(Rx<'_>, Tx<'_>)> {
        let Some((frame, buffer)) = self.enet.next_frame() else {
            crate::time::TICK_WAKER.register(cx.waker());
            return None;
        };
        Some((Rx { frame }, Tx { buffer }))
    }

    fn transmit(&mut self, _cx: &mut Context) -> Option<Tx<'_>> {
        Some(Tx {
            buffer: self.enet.tx_buffer(),
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
    buffer: &'a mut [u8],
}

impl TxToken for Tx<'_> {
    fn consume<R, F>(self, len: usize, f: F) -> R
    where
        F: FnOnce(&mut [u8]) -> R,
    {
        enet::send(self.buffer, len, f)
    }
}
