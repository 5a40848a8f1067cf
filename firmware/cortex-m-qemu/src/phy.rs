//! The board's Ethernet MAC (`firmware/common`'s `enet`) as a `smoltcp::phy::Device`: tokens
//! that lend smoltcp the driver's frame buffers in place.

use smoltcp::phy::{self, Device, DeviceCapabilities, Medium};
use smoltcp::time::Instant;

use crate::enet::{self, Enet, MTU};

/// The MAC as smoltcp sees it (a type of this crate, so that it may implement smoltcp's trait).
pub struct Phy(pub Enet);

impl Device for Phy {
    type RxToken<'a> = RxToken<'a>;
    type TxToken<'a> = TxToken<'a>;

    fn receive(&mut self, _timestamp: Instant) -> Option<(RxToken<'_>, TxToken<'_>)> {
        let (frame, buffer) = self.0.next_frame()?;
        Some((RxToken { frame }, TxToken { buffer }))
    }

    fn transmit(&mut self, _timestamp: Instant) -> Option<TxToken<'_>> {
        Some(TxToken {
            buffer: self.0.tx_buffer(),
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

/// A received frame, read in place from the driver's buffer.
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

/// The transmit buffer, lent to smoltcp to build one frame in.
pub struct TxToken<'a> {
    buffer: &'a mut [u8],
}

impl phy::TxToken for TxToken<'_> {
    fn consume<R, F>(self, len: usize, f: F) -> R
    where
        F: FnOnce(&mut [u8]) -> R,
    {
        enet::send(self.buffer, len, f)
    }
}
