//! Command-line values checked before smoltcp sees them: smoltcp panics on a non-unicast
//! interface address, and a zero port or timeout only fails later and less clearly.

use std::fmt;
use std::str::FromStr;

use smoltcp::time::Duration;
use smoltcp::wire::{IpAddress, IpCidr};

/// A timeout on the command line: seconds, fractions allowed, at least 1 ms.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Seconds(pub Duration);

impl FromStr for Seconds {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let secs: f64 = text
            .parse()
            .map_err(|_| format!("{text:?} is not a number of seconds"))?;
        // NaN fails both comparisons.
        if !(0.001..=1e6).contains(&secs) {
            return Err(format!(
                "{text} s is out of range: give 0.001 (1 ms) to 1000000"
            ));
        }
        Ok(Seconds(Duration::from_micros((secs * 1e6).round() as u64)))
    }
}

impl fmt::Display for Seconds {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let micros = self.0.total_micros();
        if micros.is_multiple_of(1_000_000) {
            write!(f, "{}", micros / 1_000_000)
        } else {
            write!(f, "{}", micros as f64 / 1e6)
        }
    }
}

/// How long to wait for something that may never come: seconds as for [`Seconds`], or 0 for
/// no limit (a zero `Seconds`).
pub fn wait(text: &str) -> Result<Seconds, String> {
    if text.parse::<f64>() == Ok(0.0) {
        return Ok(Seconds(Duration::ZERO));
    }
    text.parse()
}

/// An address a host can have: not unspecified, multicast or broadcast.
fn check_unicast(address: IpAddress) -> Result<IpAddress, String> {
    if address.is_unspecified() {
        Err(format!("{address} is the unspecified address, not a host"))
    } else if !address.is_unicast() {
        Err(format!("{address} is not a unicast address"))
    } else {
        Ok(address)
    }
}

/// A peer or gateway address.
pub fn unicast(text: &str) -> Result<IpAddress, String> {
    let address: IpAddress = text
        .parse()
        .map_err(|_| format!("{text:?} is not an IPv4 or IPv6 address"))?;
    check_unicast(address)
}

/// Our own address and prefix, e.g. `192.168.69.1/24`: unicast, and not its network's
/// broadcast address.
pub fn interface_address(text: &str) -> Result<IpCidr, String> {
    let cidr: IpCidr = text
        .parse()
        .map_err(|_| format!("{text:?} is not ADDRESS/PREFIX (e.g. 192.168.69.1/24)"))?;
    check_unicast(cidr.address())?;
    if let IpCidr::Ipv4(v4) = cidr
        && v4.prefix_len() < 31
        && v4.broadcast() == Some(v4.address())
    {
        return Err(format!(
            "{} is the broadcast address of {text}",
            v4.address()
        ));
    }
    Ok(cidr)
}

/// A Linux interface name: 1 to 15 bytes (IFNAMSIZ less the NUL), no `/`, no whitespace.
pub fn interface_name(text: &str) -> Result<String, String> {
    if text.is_empty() || text.len() > 15 {
        return Err(format!(
            "{text:?} is {} bytes: an interface name has 1 to 15",
            text.len()
        ));
    }
    if text == "."
        || text == ".."
        || text.contains(['/', ':'])
        || text.contains(char::is_whitespace)
    {
        return Err(format!("{text:?} is not a valid interface name"));
    }
    Ok(text.to_owned())
}

/// A percentage, 0 to 100, as parts per million.
pub fn percent(text: &str) -> Result<u32, String> {
    let pct: f64 = text
        .parse()
        .map_err(|_| format!("{text:?} is not a percentage"))?;
    if !(0.0..=100.0).contains(&pct) {
        return Err(format!("{text} % is not between 0 and 100"));
    }
    Ok((pct * 10_000.0).round() as u32)
}
