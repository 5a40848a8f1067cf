//! The virtio-net header that `IFF_VNET_HDR` puts before every frame on a TAP device, and the
//! TCP checksum work it lets the kernel and us share, as a virtio-net guest shares it with its
//! host.
//!
//! With checksum offload the kernel hands us its own TCP segments with the checksum not yet
//! computed (`NEEDS_CSUM`: it never left memory, so there is nothing to check) and accepts ours
//! the same way; with segmentation offload it hands us up to 64 KiB of a connection in one frame
//! and cuts our large frames into segments of the size we name. smoltcp then neither checks
//! nor computes TCP checksums (`Checksum::None`): the device checks those that need it, the
//! frames the kernel did not vouch for and every frame when faults are injected.

use smoltcp::wire::{
    EthernetFrame, EthernetProtocol, IpAddress, IpProtocol, Ipv4Packet, Ipv6Packet, TcpPacket,
};

/// Bytes of `struct virtio_net_hdr` before each frame.
pub const LEN: usize = 10;

/// `VIRTIO_NET_HDR_F_NEEDS_CSUM`: the checksum is to be computed from `csum_start` on; the field
/// holds the pseudo-header's sum.
const NEEDS_CSUM: u8 = 1;
/// `VIRTIO_NET_HDR_F_DATA_VALID`: the kernel has checked the checksum.
const DATA_VALID: u8 = 2;
/// `VIRTIO_NET_HDR_GSO_TCPV4` and `_TCPV6`.
const GSO_TCPV4: u8 = 1;
const GSO_TCPV6: u8 = 4;

/// Whether the kernel vouched for a received frame's checksum (the header's flags).
pub fn vouched(header: &[u8]) -> bool {
    header[0] & (NEEDS_CSUM | DATA_VALID) != 0
}

/// Whether a received frame's checksum field holds only the pseudo-header's sum.
pub fn needs_checksum(header: &[u8]) -> bool {
    header[0] & NEEDS_CSUM != 0
}

/// A TCP segment inside an Ethernet frame: its addresses and where it lies.
pub struct Segment {
    src: IpAddress,
    dst: IpAddress,
    start: usize,
    end: usize,
}

impl Segment {
    /// The TCP segment in `frame`, if it carries one (IPv4 without fragments, or IPv6 with TCP
    /// as the first next header, as smoltcp and Linux send them).
    pub fn find(frame: &[u8]) -> Option<Segment> {
        let ethernet = EthernetFrame::new_checked(frame).ok()?;
        let start = EthernetFrame::<&[u8]>::header_len();
        let (src, dst, header, total) = match ethernet.ethertype() {
            EthernetProtocol::Ipv4 => {
                let ip = Ipv4Packet::new_checked(ethernet.payload()).ok()?;
                if ip.next_header() != IpProtocol::Tcp || ip.more_frags() || ip.frag_offset() != 0 {
                    return None;
                }
                let header = usize::from(ip.header_len());
                let total = usize::from(ip.total_len());
                (ip.src_addr().into(), ip.dst_addr().into(), header, total)
            }
            EthernetProtocol::Ipv6 => {
                let ip = Ipv6Packet::new_checked(ethernet.payload()).ok()?;
                if ip.next_header() != IpProtocol::Tcp {
                    return None;
                }
                let header = ip.header_len();
                (
                    ip.src_addr().into(),
                    ip.dst_addr().into(),
                    header,
                    header + usize::from(ip.payload_len()),
                )
            }
            _ => return None,
        };
        let segment = Segment {
            src,
            dst,
            start: start + header,
            end: start + total,
        };
        TcpPacket::new_checked(&frame[segment.start..segment.end]).ok()?;
        Some(segment)
    }

    /// Whether the segment's checksum is right.
    pub fn verify(&self, frame: &[u8]) -> bool {
        TcpPacket::new_unchecked(&frame[self.start..self.end]).verify_checksum(&self.src, &self.dst)
    }

    /// Compute the segment's checksum in full.
    pub fn complete(&self, frame: &mut [u8]) {
        TcpPacket::new_unchecked(&mut frame[self.start..self.end])
            .fill_checksum(&self.src, &self.dst);
    }

    /// The header that hands the segment's checksum, and with `gso` its cutting into segments
    /// of that many payload bytes, to the kernel; the checksum field gets the pseudo-header's
    /// sum, as `NEEDS_CSUM` asks.
    pub fn offload(&self, frame: &mut [u8], gso: Option<u16>) -> [u8; LEN] {
        let len = (self.end - self.start) as u32;
        let sum =
            smoltcp::wire::checksum::pseudo_header(&self.src, &self.dst, IpProtocol::Tcp, len);
        let mut tcp = TcpPacket::new_unchecked(&mut frame[self.start..self.end]);
        tcp.set_checksum(sum);
        let header_len = self.start + usize::from(tcp.header_len());
        let mut header = [0u8; LEN];
        header[0] = NEEDS_CSUM;
        if let Some(size) = gso {
            header[1] = match self.src {
                IpAddress::Ipv4(_) => GSO_TCPV4,
                IpAddress::Ipv6(_) => GSO_TCPV6,
            };
            header[2..4].copy_from_slice(&(header_len as u16).to_ne_bytes());
            header[4..6].copy_from_slice(&size.to_ne_bytes());
        }
        header[6..8].copy_from_slice(&(self.start as u16).to_ne_bytes());
        // The checksum's offset in the TCP header.
        header[8..10].copy_from_slice(&16u16.to_ne_bytes());
        header
    }
}
