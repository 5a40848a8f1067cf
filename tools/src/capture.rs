//! TCP connections read from a pcap capture, for their pictures (`draw`): ours from the TAP
//! programs' `--pcap`, or one `tcpdump -w` took of two kernel programs.
//!
//! The classic pcap format (both byte orders, micro- or nanosecond timestamps) is read here by
//! hand: it is a 24-byte file header and a 16-byte header per frame, the format our own writer
//! (`examples/common/pcap.rs`) and tcpdump write. pcapng (Wireshark's default) is refused with
//! a way to convert it. Nothing in a capture is trusted: every length is checked before use.

use std::fmt::Write as _;

use halfclose::segment::Segment;
use smoltcp::phy::Medium;
use smoltcp::time::Instant;
use smoltcp::wire::IpEndpoint;

use crate::picture::{self, End, Exchange};

/// A frame of a capture: when it was taken and the IP packet in it.
struct Frame<'a> {
    /// Microseconds since the epoch of the capture's clock.
    micros: i64,
    ip: &'a [u8],
}

/// The frames' link type, as pcap numbers it (the few a TCP capture on Linux or BSD has).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Link {
    /// 1: Ethernet (tcpdump on `lo` or a TAP device).
    Ethernet,
    /// 101, 228, 229, 12 (OpenBSD): a bare IP packet.
    Ip,
    /// 113: Linux "cooked" capture v1 (tcpdump `-i any`).
    LinuxSll,
    /// 276: Linux "cooked" capture v2.
    LinuxSll2,
    /// 0: BSD loopback (a 4-byte address family before the packet).
    Null,
}

impl Link {
    fn from_pcap(link_type: u32) -> Result<Link, String> {
        match link_type {
            1 => Ok(Link::Ethernet),
            12 | 101 | 228 | 229 => Ok(Link::Ip),
            113 => Ok(Link::LinuxSll),
            276 => Ok(Link::LinuxSll2),
            0 => Ok(Link::Null),
            other => Err(format!(
                "link type {other} is not one this reader knows (Ethernet, raw IP, Linux cooked, BSD loopback)"
            )),
        }
    }

    /// The IP packet in `frame`, if it carries IPv4 or IPv6.
    fn ip(self, frame: &[u8]) -> Option<&[u8]> {
        let (header, ethertype) = match self {
            Link::Ethernet => (14, frame.get(12..14)?),
            Link::LinuxSll => (16, frame.get(14..16)?),
            Link::LinuxSll2 => (20, frame.get(0..2)?),
            Link::Ip => return Some(frame),
            Link::Null => return frame.get(4..),
        };
        // 0x0800 IPv4, 0x86dd IPv6 (a VLAN tag or anything else: not our traffic).
        matches!(ethertype, [0x08, 0x00] | [0x86, 0xdd]).then(|| frame.get(header..))?
    }
}

/// The frames of a classic pcap file, in order.
fn frames(bytes: &[u8]) -> Result<Vec<Frame<'_>>, String> {
    let magic = bytes.get(..4).ok_or("too short for a pcap file")?;
    let (little, nanos) = match magic {
        [0xd4, 0xc3, 0xb2, 0xa1] => (true, false),
        [0xa1, 0xb2, 0xc3, 0xd4] => (false, false),
        [0x4d, 0x3c, 0xb2, 0xa1] => (true, true),
        [0xa1, 0xb2, 0x3c, 0x4d] => (false, true),
        [0x0a, 0x0d, 0x0d, 0x0a] => {
            return Err("a pcapng file: save it as pcap first (`tshark -r IN -w OUT -F pcap`, or `editcap -F pcap IN OUT`)".into());
        }
        _ => return Err("not a pcap file (no pcap magic number)".into()),
    };
    let u32_at = |at: usize| -> Option<u32> {
        let b: [u8; 4] = bytes.get(at..at + 4)?.try_into().ok()?;
        Some(if little {
            u32::from_le_bytes(b)
        } else {
            u32::from_be_bytes(b)
        })
    };
    let link = Link::from_pcap(u32_at(20).ok_or("a pcap header cut short")?)?;
    let mut frames = Vec::new();
    let mut at = 24;
    // Each frame takes at least its 16-byte header: at most len / 16 steps.
    for _ in 0..bytes.len() / 16 {
        if at == bytes.len() {
            break;
        }
        let (Some(secs), Some(frac), Some(len)) = (u32_at(at), u32_at(at + 4), u32_at(at + 8))
        else {
            return Err(format!("a frame header cut short at byte {at}"));
        };
        let start = at + 16;
        let frame = bytes
            .get(start..start.saturating_add(len as usize))
            .ok_or_else(|| format!("a frame cut short at byte {start}"))?;
        at = start + frame.len();
        let micros =
            i64::from(secs) * 1_000_000 + i64::from(if nanos { frac / 1000 } else { frac });
        if let Some(ip) = link.ip(frame) {
            frames.push(Frame { micros, ip });
        }
    }
    Ok(frames)
}

/// One TCP connection of a capture: its two endpoints and its segments.
#[derive(Debug)]
pub struct Connection {
    /// The end that opened the connection (sent the first SYN), or the first sender seen.
    pub client: IpEndpoint,
    /// The other end.
    pub server: IpEndpoint,
    /// Each segment with its time (microseconds of the capture's clock), the window scale on a
    /// SYN, and whether the client sent it.
    segments: Vec<(i64, Segment, Option<u8>, bool)>,
}

impl Connection {
    /// Whether `port` is either end's.
    pub fn has_port(&self, port: u16) -> bool {
        self.client.port == port || self.server.port == port
    }

    /// Whether the capture holds its opening SYN.
    pub fn opens(&self) -> bool {
        self.segments.iter().any(|s| s.1.syn && s.1.ack.is_none())
    }

    /// Segments, and payload bytes each way (to the client, to the server).
    pub fn summary(&self) -> String {
        let mut out = String::new();
        let bytes = |from_client: bool| -> usize {
            let of = self.segments.iter().filter(|s| s.3 == from_client);
            of.map(|s| s.1.len()).sum()
        };
        let _ = write!(
            out,
            "{} -> {}: {} segments, {} bytes to the client, {} to the server",
            self.client,
            self.server,
            self.segments.len(),
            bytes(false),
            bytes(true)
        );
        out
    }

    /// The connection as an exchange, titled with the capture's `name` and the
    /// [`summary`](Connection::summary), times from its first segment.
    pub fn exchange(&self, name: &str) -> Exchange {
        let mut exchange = Exchange::new(
            format!("{name}: {}", self.summary()),
            format!("server {}", self.server),
            format!("client {}", self.client),
        );
        let start = self.segments.first().map_or(0, |s| s.0);
        for &(micros, segment, scale, from_client) in &self.segments {
            let from = if from_client {
                End::Client
            } else {
                End::Server
            };
            let at = Instant::from_micros(micros - start);
            exchange.seen(at, from, segment, scale, None);
        }
        // A capture holds no socket's state: what the segments say they must be.
        exchange.infer_states();
        exchange
    }
}

/// The TCP connections in a classic pcap capture, in the order they first appear. A
/// connection is its two endpoints; the end that sends the first SYN without ACK is the
/// client (without one, the end seen first).
pub fn connections(bytes: &[u8]) -> Result<Vec<Connection>, String> {
    let mut connections: Vec<Connection> = Vec::new();
    for frame in frames(bytes)? {
        let Some(segment) = Segment::parse(Medium::Ip, frame.ip) else {
            continue;
        };
        let scale = picture::window_scale(frame.ip);
        let pair = |c: &Connection| {
            (c.client, c.server) == (segment.src, segment.dst)
                || (c.server, c.client) == (segment.src, segment.dst)
        };
        // A new SYN on the same endpoints after the old connection closed starts another.
        let opens = segment.syn && segment.ack.is_none();
        let found = connections.iter_mut().rev().find(|c| pair(c));
        let connection = match found {
            Some(c) if !(opens && c.segments.iter().any(|s| s.1.fin || s.1.rst)) => c,
            _ => {
                let (client, server) = if opens || !segment.syn {
                    (segment.src, segment.dst)
                } else {
                    (segment.dst, segment.src)
                };
                connections.push(Connection {
                    client,
                    server,
                    segments: Vec::new(),
                });
                let last = connections.len() - 1;
                &mut connections[last]
            }
        };
        let from_client = segment.src == connection.client;
        connection
            .segments
            .push((frame.micros, segment, scale, from_client));
    }
    Ok(connections)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A pcap file (little-endian, microseconds, `link`) holding `frames`.
    fn pcap(link: u32, frames: &[(u32, &[u8])]) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend(0xa1b2_c3d4u32.to_le_bytes());
        out.extend(2u16.to_le_bytes());
        out.extend(4u16.to_le_bytes());
        out.extend([0; 8]);
        out.extend(65535u32.to_le_bytes());
        out.extend(link.to_le_bytes());
        for (micros, frame) in frames {
            out.extend(0u32.to_le_bytes());
            out.extend(micros.to_le_bytes());
            out.extend((frame.len() as u32).to_le_bytes());
            out.extend((frame.len() as u32).to_le_bytes());
            out.extend(*frame);
        }
        out
    }

    #[test]
    fn a_capture_cut_short_or_of_another_format_is_refused_in_words() {
        let syn = [0u8; 44];
        let whole = pcap(101, &[(1, &syn)]);
        for cut in [3, 20, 30, whole.len() - 1] {
            let refused = connections(&whole[..cut]).err();
            assert!(refused.is_some_and(|e| e.contains("short")), "cut at {cut}");
        }
        let pcapng = [0x0a, 0x0d, 0x0d, 0x0a, 0, 0, 0, 0];
        assert!(connections(&pcapng).unwrap_err().contains("pcapng"));
        assert!(
            connections(&pcap(147, &[]))
                .unwrap_err()
                .contains("link type 147")
        );
        // Frames that hold no TCP are skipped, not refused.
        assert_eq!(connections(&whole).map(|c| c.len()), Ok(0));
    }

    #[test]
    fn the_syn_sender_is_the_client_and_a_new_syn_after_a_fin_opens_another_connection() {
        let (a, b) = ([10, 0, 0, 2], [10, 0, 0, 1]);
        let syn = forged(a, 49152, b, 7891, true, false);
        let fin = forged(a, 49152, b, 7891, false, true);
        let other = forged([10, 0, 0, 3], 5000, b, 7891, true, false);
        let capture = pcap(101, &[(1, &syn), (2, &other), (3, &fin), (4, &syn)]);
        let found = connections(&capture).unwrap();
        assert_eq!(found.len(), 3);
        assert_eq!(found[0].client.port, 49152);
        assert_eq!(found[0].server.port, 7891);
        assert_eq!(found[0].segments.len(), 2);
        assert!(found[1].has_port(5000) && !found[0].has_port(5000));
        let exchange = found[0].exchange("t");
        // Times count from the connection's first segment.
        assert_eq!(exchange.packets[0].sent, Instant::from_micros(0));
        assert_eq!(exchange.packets[1].sent, Instant::from_micros(2));
        assert!(exchange.packets.iter().all(|p| p.from == End::Client));
    }

    /// An IPv4 TCP segment with SYN or FIN (with ACK), no payload.
    fn forged(src: [u8; 4], sport: u16, dst: [u8; 4], dport: u16, syn: bool, fin: bool) -> Vec<u8> {
        use smoltcp::wire::Ipv4Address;
        let mut buf = vec![0u8; halfclose::sim::FORGED_SYN_LEN];
        let (s, d) = (Ipv4Address::from(src), Ipv4Address::from(dst));
        let len = halfclose::sim::forged_syn(&mut buf, (s, sport), (d, dport), 1000);
        buf.truncate(len);
        if !syn {
            // The TCP header's flags byte: ACK, with FIN if asked, instead of SYN.
            buf[20 + 13] = if fin { 0x11 } else { 0x10 };
        }
        buf
    }
}
