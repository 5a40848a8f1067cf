//! A TCP segment's header fields, read from a raw packet: for traces, tests and captures.

use core::fmt;
use core::ops::Range;

use smoltcp::phy::Medium;
#[cfg(feature = "proto-ipv6")]
use smoltcp::wire::Ipv6Packet;
#[cfg(feature = "medium-ethernet")]
use smoltcp::wire::{EthernetFrame, EthernetProtocol};
use smoltcp::wire::{IpAddress, IpEndpoint, IpProtocol, Ipv4Packet, TcpPacket};

/// The header fields of one TCP segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Segment {
    /// Sender.
    pub src: IpEndpoint,
    /// Receiver.
    pub dst: IpEndpoint,
    /// SYN flag.
    pub syn: bool,
    /// FIN flag.
    pub fin: bool,
    /// RST flag.
    pub rst: bool,
    /// PSH flag.
    pub psh: bool,
    /// The acknowledgement number, when the ACK flag is set.
    pub ack: Option<u32>,
    /// Sequence number of the first byte (or of the SYN/FIN).
    pub seq: u32,
    /// Advertised window, unscaled.
    pub window: u16,
    /// Where the payload starts in the packet the segment was parsed from.
    pub payload_offset: usize,
    /// Payload length in bytes.
    pub payload_len: usize,
}

impl Segment {
    /// Parse a packet as `medium` frames it (an Ethernet frame, or a bare IP packet). Returns
    /// `None` for anything that is not a well-formed TCP segment over IPv4 or IPv6 (ARP, NDP,
    /// IPv6 extension headers, truncated packets), and for a medium or IP version this build
    /// leaves out (features `medium-ethernet`, `proto-ipv6`).
    pub fn parse(medium: Medium, packet: &[u8]) -> Option<Segment> {
        match medium {
            #[cfg(feature = "medium-ethernet")]
            Medium::Ethernet => {
                let frame = EthernetFrame::new_checked(packet).ok()?;
                let offset = EthernetFrame::<&[u8]>::header_len();
                match frame.ethertype() {
                    EthernetProtocol::Ipv4 | EthernetProtocol::Ipv6 => {
                        Self::parse_ip(&packet[offset..]).map(|s| s.shifted(offset))
                    }
                    _ => None,
                }
            }
            Medium::Ip => Self::parse_ip(packet),
            #[allow(unreachable_patterns)]
            _ => None,
        }
    }

    fn parse_ip(packet: &[u8]) -> Option<Segment> {
        let (src, dst, offset) = match packet.first()? >> 4 {
            4 => {
                let ip = Ipv4Packet::new_checked(packet).ok()?;
                if ip.next_header() != IpProtocol::Tcp || ip.frag_offset() != 0 {
                    return None;
                }
                let end = usize::from(ip.total_len());
                let header = usize::from(ip.header_len());
                (
                    IpAddress::Ipv4(ip.src_addr()),
                    IpAddress::Ipv4(ip.dst_addr()),
                    header..end,
                )
            }
            #[cfg(feature = "proto-ipv6")]
            6 => {
                let ip = Ipv6Packet::new_checked(packet).ok()?;
                if ip.next_header() != IpProtocol::Tcp {
                    return None;
                }
                let header = ip.header_len();
                (
                    IpAddress::Ipv6(ip.src_addr()),
                    IpAddress::Ipv6(ip.dst_addr()),
                    header..header + usize::from(ip.payload_len()),
                )
            }
            _ => return None,
        };
        let tcp = TcpPacket::new_checked(packet.get(offset.clone())?).ok()?;
        let header = usize::from(tcp.header_len());
        Some(Segment {
            src: IpEndpoint::new(src, tcp.src_port()),
            dst: IpEndpoint::new(dst, tcp.dst_port()),
            syn: tcp.syn(),
            fin: tcp.fin(),
            rst: tcp.rst(),
            psh: tcp.psh(),
            ack: tcp.ack().then(|| tcp.ack_number().0 as u32),
            seq: tcp.seq_number().0 as u32,
            window: tcp.window_len(),
            payload_offset: offset.start + header,
            payload_len: offset.end.checked_sub(offset.start + header)?,
        })
    }

    #[cfg(feature = "medium-ethernet")]
    fn shifted(mut self, by: usize) -> Segment {
        self.payload_offset += by;
        self
    }

    /// Where the payload is in the packet the segment was parsed from.
    pub fn payload(&self) -> Range<usize> {
        self.payload_offset..self.payload_offset + self.payload_len
    }

    /// Payload length in bytes.
    pub fn len(&self) -> usize {
        self.payload_len
    }

    /// Whether the segment carries no payload.
    pub fn is_empty(&self) -> bool {
        self.payload_len == 0
    }

    /// Sequence space the segment occupies: payload, plus one each for SYN and FIN.
    pub fn seq_len(&self) -> u32 {
        self.len() as u32 + u32::from(self.syn) + u32::from(self.fin)
    }

    /// Flags as tcpdump prints them: `S` SYN, `F` FIN, `R` RST, `P` PSH, `.` ACK.
    pub fn flags(&self) -> Flags {
        Flags(*self)
    }
}

/// A segment's flags in tcpdump's notation, e.g. `[S.]` or `[F.]`.
#[derive(Debug, Clone, Copy)]
pub struct Flags(Segment);

impl fmt::Display for Flags {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = &self.0;
        f.write_str("[")?;
        for (on, c) in [
            (s.syn, "S"),
            (s.fin, "F"),
            (s.rst, "R"),
            (s.psh, "P"),
            (s.ack.is_some(), "."),
        ] {
            if on {
                f.write_str(c)?;
            }
        }
        f.write_str("]")
    }
}

/// `[S.] seq 100 ack 201 win 1024 len 0`, raw sequence numbers.
impl fmt::Display for Segment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} seq {}", self.flags(), self.seq)?;
        if let Some(ack) = self.ack {
            write!(f, " ack {ack}")?;
        }
        write!(f, " win {} len {}", self.window, self.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use smoltcp::phy::ChecksumCapabilities;
    use smoltcp::wire::{IpRepr, Ipv4Address, Ipv4Repr, TcpControl, TcpRepr, TcpSeqNumber};
    use std::string::ToString;
    use std::vec::Vec;

    const SRC: Ipv4Address = Ipv4Address::new(10, 0, 0, 1);
    const DST: Ipv4Address = Ipv4Address::new(10, 0, 0, 2);

    fn repr<'a>(control: TcpControl, ack: Option<u32>, payload: &'a [u8]) -> TcpRepr<'a> {
        TcpRepr {
            src_port: 1000,
            dst_port: 2000,
            control,
            seq_number: TcpSeqNumber(100),
            ack_number: ack.map(|a| TcpSeqNumber(a as i32)),
            window_len: 1024,
            window_scale: None,
            max_seg_size: None,
            sack_permitted: false,
            sack_ranges: [None; 3],
            timestamp: None,
            payload,
        }
    }

    /// `tcp` in an IPv4 packet from `SRC` to `DST`, checksums filled in.
    fn ipv4(tcp: &TcpRepr) -> Vec<u8> {
        let ip = IpRepr::Ipv4(Ipv4Repr {
            src_addr: SRC,
            dst_addr: DST,
            next_header: IpProtocol::Tcp,
            payload_len: tcp.buffer_len(),
            hop_limit: 64,
        });
        let mut buf = std::vec![0u8; ip.header_len() + tcp.buffer_len()];
        let caps = ChecksumCapabilities::default();
        ip.emit(&mut buf[..], &caps);
        let (_, rest) = buf.split_at_mut(ip.header_len());
        tcp.emit(
            &mut TcpPacket::new_unchecked(rest),
            &SRC.into(),
            &DST.into(),
            &caps,
        );
        buf
    }

    #[test]
    fn each_flag_is_read_and_printed_as_tcpdump_prints_it() {
        for (control, ack, payload, flags, seq_len) in [
            (TcpControl::Syn, None, &b""[..], "[S]", 1),
            (TcpControl::Syn, Some(7), b"", "[S.]", 1),
            (TcpControl::None, Some(7), b"", "[.]", 0),
            (TcpControl::Psh, Some(7), b"abc", "[P.]", 3),
            (TcpControl::Fin, Some(7), b"ab", "[F.]", 3),
            (TcpControl::Rst, None, b"", "[R]", 0),
        ] {
            let packet = ipv4(&repr(control, ack, payload));
            let seg = Segment::parse(Medium::Ip, &packet).unwrap();
            assert_eq!(seg.flags().to_string(), flags);
            assert_eq!(seg.syn, control == TcpControl::Syn, "{flags}");
            assert_eq!(seg.fin, control == TcpControl::Fin, "{flags}");
            assert_eq!(seg.rst, control == TcpControl::Rst, "{flags}");
            assert_eq!(seg.psh, control == TcpControl::Psh, "{flags}");
            assert_eq!(seg.ack, ack, "{flags}");
            assert_eq!(seg.seq_len(), seq_len, "{flags}");
            assert_eq!(seg.len(), payload.len(), "{flags}");
            assert_eq!(seg.is_empty(), payload.is_empty(), "{flags}");
            assert_eq!(&packet[seg.payload()], payload, "{flags}");
            assert_eq!(seg.src, IpEndpoint::new(SRC.into(), 1000));
            assert_eq!(seg.dst, IpEndpoint::new(DST.into(), 2000));
        }
    }

    #[test]
    fn a_segment_reads_as_one_line_with_its_raw_numbers() {
        let syn_ack = ipv4(&repr(TcpControl::Syn, Some(201), b""));
        let seg = Segment::parse(Medium::Ip, &syn_ack).unwrap();
        assert_eq!(seg.to_string(), "[S.] seq 100 ack 201 win 1024 len 0");
        let syn = ipv4(&repr(TcpControl::Syn, None, b""));
        let seg = Segment::parse(Medium::Ip, &syn).unwrap();
        assert_eq!(seg.to_string(), "[S] seq 100 win 1024 len 0");
    }

    /// An Ethernet frame shorter than 60 bytes is padded: the IP header's length says where the
    /// segment ends, not the frame's.
    #[test]
    fn padding_after_the_ip_packet_is_not_payload() {
        let mut packet = ipv4(&repr(TcpControl::None, Some(7), b"ab"));
        let len = packet.len();
        packet.extend_from_slice(&[0xee; 6]);
        let seg = Segment::parse(Medium::Ip, &packet).unwrap();
        assert_eq!(seg.len(), 2);
        assert_eq!(seg.payload(), len - 2..len);
    }

    #[test]
    fn what_is_not_a_whole_unfragmented_tcp_segment_is_none() {
        let good = ipv4(&repr(TcpControl::None, Some(7), b"abc"));
        assert!(Segment::parse(Medium::Ip, &good).is_some());
        assert!(Segment::parse(Medium::Ip, &[]).is_none(), "empty");
        assert!(
            Segment::parse(Medium::Ip, &good[..good.len() - 4]).is_none(),
            "cut short"
        );
        let mut udp = good.clone();
        Ipv4Packet::new_unchecked(&mut udp[..]).set_next_header(IpProtocol::Udp);
        assert!(Segment::parse(Medium::Ip, &udp).is_none(), "UDP");
        let mut later_fragment = good.clone();
        Ipv4Packet::new_unchecked(&mut later_fragment[..]).set_frag_offset(8);
        assert!(
            Segment::parse(Medium::Ip, &later_fragment).is_none(),
            "a later fragment"
        );
        let mut version = good.clone();
        version[0] = 0x55;
        assert!(
            Segment::parse(Medium::Ip, &version).is_none(),
            "IP version 5"
        );
    }

    #[cfg(feature = "medium-ethernet")]
    #[test]
    fn an_ethernet_frame_is_read_past_its_header_and_only_for_ip() {
        use smoltcp::wire::EthernetAddress;
        let packet = ipv4(&repr(TcpControl::Psh, Some(7), b"Thank you\0"));
        let header = EthernetFrame::<&[u8]>::header_len();
        let mut frame = std::vec![0u8; header + packet.len()];
        let mut eth = EthernetFrame::new_unchecked(&mut frame[..]);
        eth.set_src_addr(EthernetAddress([2, 0, 0, 0, 0, 1]));
        eth.set_dst_addr(EthernetAddress([2, 0, 0, 0, 0, 2]));
        eth.set_ethertype(EthernetProtocol::Ipv4);
        eth.payload_mut().copy_from_slice(&packet);
        let seg = Segment::parse(Medium::Ethernet, &frame).unwrap();
        assert_eq!(&frame[seg.payload()], b"Thank you\0");
        assert_eq!(seg.payload_offset, header + 40);
        EthernetFrame::new_unchecked(&mut frame[..]).set_ethertype(EthernetProtocol::Arp);
        assert!(Segment::parse(Medium::Ethernet, &frame).is_none(), "ARP");
        assert!(
            Segment::parse(Medium::Ethernet, &frame[..10]).is_none(),
            "cut short"
        );
    }

    #[cfg(feature = "proto-ipv6")]
    #[test]
    fn an_ipv6_segment_is_read_as_an_ipv4_one_is() {
        use smoltcp::wire::{Ipv6Address, Ipv6Repr};
        let (src, dst) = (
            Ipv6Address::new(0xfd00, 0, 0, 0, 0, 0, 0, 1),
            Ipv6Address::new(0xfd00, 0, 0, 0, 0, 0, 0, 2),
        );
        let tcp = repr(TcpControl::Fin, Some(9), b"xyz");
        let ip = Ipv6Repr {
            src_addr: src,
            dst_addr: dst,
            next_header: IpProtocol::Tcp,
            payload_len: tcp.buffer_len(),
            hop_limit: 64,
        };
        let mut packet = std::vec![0u8; ip.buffer_len() + tcp.buffer_len() + 4];
        ip.emit(&mut Ipv6Packet::new_unchecked(&mut packet[..]));
        let caps = ChecksumCapabilities::default();
        let end = ip.buffer_len() + tcp.buffer_len();
        tcp.emit(
            &mut TcpPacket::new_unchecked(&mut packet[ip.buffer_len()..end]),
            &src.into(),
            &dst.into(),
            &caps,
        );
        let seg = Segment::parse(Medium::Ip, &packet).unwrap();
        assert_eq!(seg.src, IpEndpoint::new(src.into(), 1000));
        assert_eq!(seg.dst, IpEndpoint::new(dst.into(), 2000));
        assert!(seg.fin);
        assert_eq!(
            seg.payload(),
            60..63,
            "after 40 bytes of IPv6 and 20 of TCP, not the padding"
        );
        let mut udp = packet.clone();
        Ipv6Packet::new_unchecked(&mut udp[..]).set_next_header(IpProtocol::Udp);
        assert!(Segment::parse(Medium::Ip, &udp).is_none(), "UDP");
    }

    #[test]
    fn parses_a_fin_with_payload() {
        let src = Ipv4Address::new(10, 0, 0, 1);
        let dst = Ipv4Address::new(10, 0, 0, 2);
        let tcp = TcpRepr {
            src_port: 1000,
            dst_port: 2000,
            control: TcpControl::Fin,
            seq_number: TcpSeqNumber(77),
            ack_number: Some(TcpSeqNumber(5)),
            window_len: 512,
            window_scale: None,
            max_seg_size: None,
            sack_permitted: false,
            sack_ranges: [None; 3],
            timestamp: None,
            payload: b"Thank you\0",
        };
        let ip = IpRepr::Ipv4(Ipv4Repr {
            src_addr: src,
            dst_addr: dst,
            next_header: IpProtocol::Tcp,
            payload_len: tcp.buffer_len(),
            hop_limit: 64,
        });
        let mut buf = [0u8; 128];
        let len = ip.header_len() + tcp.buffer_len();
        let caps = ChecksumCapabilities::default();
        ip.emit(&mut buf[..], &caps);
        tcp.emit(
            &mut TcpPacket::new_unchecked(&mut buf[ip.header_len()..len]),
            &src.into(),
            &dst.into(),
            &caps,
        );

        let seg = Segment::parse(Medium::Ip, &buf[..len]).unwrap();
        assert!(seg.fin && !seg.syn && !seg.rst);
        assert_eq!(seg.seq, 77);
        assert_eq!(seg.ack, Some(5));
        assert_eq!(&buf[seg.payload()], b"Thank you\0");
        assert_eq!(seg.seq_len(), 11);
        assert_eq!(seg.flags().to_string(), "[F.]");
        assert!(Segment::parse(Medium::Ip, &buf[..10]).is_none());
    }
}
