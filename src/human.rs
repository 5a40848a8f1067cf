//! Durations, sizes and rates in the units a person reads: `18.0 ms`, `1.5 MiB`, `12.3 MB/s`.

use core::fmt;

use smoltcp::time::Duration;

/// A duration in the largest unit that keeps it readable: `750 µs`, `18.0 ms`, `2.50 s`,
/// `3 min 05 s`.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Time(pub Duration);

impl fmt::Display for Time {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let us = self.0.total_micros();
        match us {
            0..1_000 => write!(f, "{us} µs"),
            1_000..1_000_000 => write!(f, "{}.{} ms", us / 1_000, us % 1_000 / 100),
            1_000_000..60_000_000 => {
                write!(f, "{}.{:02} s", us / 1_000_000, us % 1_000_000 / 10_000)
            }
            _ => {
                let secs = us / 1_000_000;
                write!(f, "{} min {:02} s", secs / 60, secs % 60)
            }
        }
    }
}

impl fmt::Debug for Time {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// A byte count in binary units past a KiB: `44 bytes`, `12.0 KiB`, `1.00 MiB`.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Bytes(pub u64);

impl fmt::Display for Bytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const KIB: u64 = 1024;
        const MIB: u64 = 1024 * KIB;
        const GIB: u64 = 1024 * MIB;
        let n = self.0;
        // Two decimals, truncated (never rounded up to a size not reached).
        let frac = |unit: u64| (n % unit) * 100 / unit;
        match n {
            0..KIB => write!(f, "{n} bytes"),
            KIB..MIB => write!(f, "{}.{:02} KiB", n / KIB, frac(KIB)),
            MIB..GIB => write!(f, "{}.{:02} MiB", n / MIB, frac(MIB)),
            _ => write!(f, "{}.{:02} GiB", n / GIB, frac(GIB)),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::format;

    use super::*;

    #[test]
    fn durations_read_in_the_largest_sensible_unit() {
        let t = |us| format!("{}", Time(Duration::from_micros(us)));
        assert_eq!(t(0), "0 µs");
        assert_eq!(t(999), "999 µs");
        assert_eq!(t(18_001), "18.0 ms");
        assert_eq!(t(999_999), "999.9 ms");
        assert_eq!(t(2_500_000), "2.50 s");
        assert_eq!(t(185_000_000), "3 min 05 s");
    }

    #[test]
    fn a_duration_debugs_as_it_displays() {
        assert_eq!(
            format!("{:?}", Time(Duration::from_micros(18_001))),
            "18.0 ms"
        );
    }

    #[test]
    fn sizes_read_in_binary_units_never_rounded_up() {
        let b = |n| format!("{}", Bytes(n));
        assert_eq!(b(44), "44 bytes");
        assert_eq!(b(1023), "1023 bytes");
        assert_eq!(b(1024), "1.00 KiB");
        assert_eq!(b(1536), "1.50 KiB");
        assert_eq!(b(1024 * 1024 - 1), "1023.99 KiB");
        assert_eq!(b(1024 * 1024), "1.00 MiB");
        assert_eq!(b(3 << 30), "3.00 GiB");
    }
}
