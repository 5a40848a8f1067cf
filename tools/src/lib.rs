//! What the maintainers' programs and tests share (not a user's example: those are in
//! `examples/`):
//!
//! - [`attacks`]: hostile peers against a pool of four on the simulated wire, asserted by
//!   `tools/tests/attacks.rs` and tabulated by the `attacks` program (`docs/tables/attacks.md`);
//! - [`wire`]: forged packets next to a legitimate transfer, the `cargo fuzz` target's harness
//!   (`fuzz/`) and, replayed from its committed corpus, `tools/tests/fuzz_wire.rs`;
//! - [`files`]: the `lesson` programs' input and all-or-nothing output files;
//! - [`picture`]: the ladder diagram and time-sequence graph of a run (the loopback example's
//!   `examples/common/picture.rs`, included by path), [`recorder`] for a simulated run and
//!   [`capture`] for a pcap file's connections;
//! - [`xorshift64star`] and [`random_bytes`]: the tests' seeded pseudo-random inputs.
//! - `flood`: forged SYNs for `load --flood` (Linux, a raw socket).
//! - `relay`: the `relay` program's lossy, slow link between two TAP devices (Linux).
//!
//! The programs: `bench` (throughput against smoltcp's own loopback and memcpy), `soak` (the
//! fault matrix over many seeds), `attacks`, `lesson` (the kernel-TCP peers the TAP tests
//! and the firmware scripts talk to), `load` (many kernel-TCP clients at once or in a row,
//! timed: `scripts/load.sh`, `tests/tap_load.rs`), `draw` (the pictures of a connection in a
//! pcap capture) and `relay` (two kernel TCP stacks over a lossy, slow link of two TAP devices:
//! `scripts/tap-loss.sh`). Run one with `cargo run --release -p halfclose-tools --bin NAME`.

pub mod attacks;
pub mod capture;
pub mod files;
#[cfg(target_os = "linux")]
pub mod flood;
// The pictures' drawing is the loopback example's (`examples/common/picture.rs`): one copy, in
// the published crate where that example needs it.
#[path = "../../examples/common/picture.rs"]
pub mod picture;
pub mod recorder;
#[cfg(target_os = "linux")]
pub mod relay;
pub mod wire;

/// One step of xorshift64*: seeded inputs are replayed from their seed.
pub fn xorshift64star(state: &mut u64) -> u64 {
    *state ^= *state >> 12;
    *state ^= *state << 25;
    *state ^= *state >> 27;
    state.wrapping_mul(0x2545_f491_4f6c_dd1d)
}

/// `len` bytes of xorshift64* from `seed`.
pub fn random_bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut state = seed | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        out.extend_from_slice(&xorshift64star(&mut state).to_le_bytes());
    }
    out.truncate(len);
    out
}
