//! A pcap capture that reports its write errors (smoltcp's `PcapWriter` panics on them).

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

use smoltcp::time::Instant;

/// A pcap capture (classic format, microseconds, Ethernet) that reports write errors.
pub(super) struct Pcap {
    pub(super) path: PathBuf,
    pub(super) out: BufWriter<File>,
}

impl Pcap {
    pub(super) fn create(path: &Path) -> io::Result<Pcap> {
        let mut out = BufWriter::new(File::create(path)?);
        let mut header = Vec::with_capacity(24);
        header.extend(0xa1b2_c3d4u32.to_le_bytes());
        header.extend(2u16.to_le_bytes());
        header.extend(4u16.to_le_bytes());
        header.extend(0i32.to_le_bytes());
        header.extend(0u32.to_le_bytes());
        // The snapshot length: whole frames, 64 KiB ones from segmentation offload too.
        header.extend(262_144u32.to_le_bytes());
        header.extend(1u32.to_le_bytes());
        out.write_all(&header)?;
        // Now, so that an unwritable path fails before the transfer rather than at its end.
        out.flush()?;
        Ok(Pcap {
            path: path.to_path_buf(),
            out,
        })
    }

    pub(super) fn frame(&mut self, now: Instant, frame: &[u8]) -> io::Result<()> {
        let micros = now.total_micros().max(0) as u64;
        let mut header = [0u8; 16];
        header[0..4].copy_from_slice(&((micros / 1_000_000) as u32).to_le_bytes());
        header[4..8].copy_from_slice(&((micros % 1_000_000) as u32).to_le_bytes());
        header[8..12].copy_from_slice(&(frame.len() as u32).to_le_bytes());
        header[12..16].copy_from_slice(&(frame.len() as u32).to_le_bytes());
        self.out.write_all(&header)?;
        self.out.write_all(frame)
    }
}
