//! Forged SYNs for `load --flood`: a SYN flood from addresses that never answer, at a fixed
//! rate, through a raw socket (root, Linux).
//!
//! The sources are in 198.51.100.0/24 (TEST-NET-2, RFC 5737): no host has them, and the server
//! under test has no route to them, so its SYN-ACKs go nowhere, as a flood's do. Every packet is
//! addressed to the server under test, inside the namespace the caller runs in.
#![allow(unsafe_code)]

use std::net::Ipv4Addr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// The forged sources' network.
pub const FORGED: [u8; 3] = [198, 51, 100];

/// The Internet checksum of `words` (RFC 1071), folded.
fn checksum(bytes: &[u8], mut sum: u32) -> u16 {
    for pair in bytes.chunks(2) {
        let word = u16::from_be_bytes([pair[0], *pair.get(1).unwrap_or(&0)]);
        sum += u32::from(word);
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// One forged SYN from `src:sport` to `dst:dport`: an IPv4 header and a TCP header, no options.
pub fn syn(src: Ipv4Addr, sport: u16, dst: Ipv4Addr, dport: u16, seq: u32) -> [u8; 40] {
    let mut p = [0u8; 40];
    p[0] = 0x45;
    p[2..4].copy_from_slice(&40u16.to_be_bytes());
    p[4..6].copy_from_slice(&(seq as u16).to_be_bytes());
    p[6] = 0x40; // Don't fragment.
    p[8] = 64;
    p[9] = 6;
    p[12..16].copy_from_slice(&src.octets());
    p[16..20].copy_from_slice(&dst.octets());
    let ip_sum = checksum(&p[..20], 0);
    p[10..12].copy_from_slice(&ip_sum.to_be_bytes());
    let tcp = &mut p[20..];
    tcp[0..2].copy_from_slice(&sport.to_be_bytes());
    tcp[2..4].copy_from_slice(&dport.to_be_bytes());
    tcp[4..8].copy_from_slice(&seq.to_be_bytes());
    tcp[12] = 5 << 4;
    tcp[13] = 0x02; // SYN.
    tcp[14..16].copy_from_slice(&64240u16.to_be_bytes());
    let mut pseudo = [0u8; 12];
    pseudo[0..4].copy_from_slice(&src.octets());
    pseudo[4..8].copy_from_slice(&dst.octets());
    pseudo[9] = 6;
    pseudo[10..12].copy_from_slice(&20u16.to_be_bytes());
    let partial: u32 = pseudo
        .chunks(2)
        .map(|w| u32::from(u16::from_be_bytes([w[0], w[1]])))
        .sum();
    let tcp_sum = checksum(tcp, partial);
    tcp[16..18].copy_from_slice(&tcp_sum.to_be_bytes());
    p
}

/// Send `rate` forged SYNs a second to `dst:dport` until `stop` is set or `limit` has passed;
/// returns how many were sent.
pub fn flood(
    dst: Ipv4Addr,
    dport: u16,
    rate: u64,
    stop: &Arc<AtomicBool>,
    limit: Duration,
) -> Result<u64, String> {
    // SAFETY: plain socket(2); the descriptor is closed below.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_RAW, libc::IPPROTO_RAW) };
    if fd < 0 {
        return Err(format!(
            "raw socket: {} (the flood needs root)",
            std::io::Error::last_os_error()
        ));
    }
    let to = libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: 0,
        sin_addr: libc::in_addr {
            s_addr: u32::from_ne_bytes(dst.octets()),
        },
        sin_zero: [0; 8],
    };
    let start = Instant::now();
    let mut sent = 0u64;
    let mut state = 0x9e37_79b9_u32 ^ start.elapsed().subsec_nanos();
    while !stop.load(Ordering::Relaxed) && start.elapsed() < limit {
        let due = (start.elapsed().as_secs_f64() * rate as f64) as u64;
        if sent >= due {
            std::thread::sleep(Duration::from_micros(200));
            continue;
        }
        // xorshift32: a new source, port and sequence number for every SYN.
        state ^= state << 13;
        state ^= state >> 17;
        state ^= state << 5;
        let src = Ipv4Addr::new(FORGED[0], FORGED[1], FORGED[2], 1 + (state % 254) as u8);
        let packet = syn(src, 1024 + (state >> 16) as u16 % 60000, dst, dport, state);
        // SAFETY: `packet` and `to` are valid for the call, their lengths given.
        unsafe {
            libc::sendto(
                fd,
                packet.as_ptr().cast(),
                packet.len(),
                0,
                (&to as *const libc::sockaddr_in).cast(),
                size_of::<libc::sockaddr_in>() as libc::socklen_t,
            );
        }
        sent += 1;
    }
    // SAFETY: our descriptor, closed once.
    unsafe { libc::close(fd) };
    Ok(sent)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_forged_syn_has_valid_checksums() {
        let p = syn(
            Ipv4Addr::new(198, 51, 100, 7),
            4000,
            Ipv4Addr::new(192, 168, 69, 1),
            7891,
            12345,
        );
        assert_eq!(checksum(&p[..20], 0), 0);
        let mut pseudo = vec![198, 51, 100, 7, 192, 168, 69, 1, 0, 6, 0, 20];
        pseudo.extend_from_slice(&p[20..]);
        assert_eq!(checksum(&pseudo, 0), 0);
    }
}
