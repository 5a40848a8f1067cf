//! The network-input fuzz target (fuzz/fuzz_targets/wire.rs) on the stable toolchain: every
//! input of its committed corpus, then a seeded run of generated and mutated inputs. Forged
//! packets in both directions next to a legitimate transfer: no panic, no byte in the client's
//! file that the server did not send, both ends finished by the deadline.

use std::path::PathBuf;

use halfclose_tools::wire;
use halfclose_tools::xorshift64star as next;

fn corpus() -> Vec<(PathBuf, Vec<u8>)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus/wire");
    let mut inputs: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| {
            let path = entry.unwrap().path();
            let bytes = std::fs::read(&path).unwrap();
            (path, bytes)
        })
        .collect();
    inputs.sort();
    inputs
}

#[test]
fn every_committed_fuzz_input_ends_cleanly() {
    let inputs = corpus();
    assert!(inputs.len() >= 5, "the corpus is committed");
    let mut delivered = 0;
    for (path, bytes) in &inputs {
        eprintln!("input {}", path.display());
        let summary = wire::run(bytes);
        eprintln!("  {summary:?}");
        delivered += usize::from(summary.delivered);
    }
    // The corpus holds harmless inputs too: the legitimate transfer gets through.
    assert!(delivered > 0);
}

/// Random inputs (the decoder gives any bytes their structure) and corpus inputs with bytes
/// changed. `FUZZ_SEEDS` sets how many (default 300).
#[test]
fn seeded_forged_packets_never_put_a_wrong_byte_in_the_file() {
    let seeds: u64 = std::env::var("FUZZ_SEEDS").map_or(300, |s| s.parse().unwrap());
    let inputs = corpus();
    let (mut delivered, mut injected) = (0, 0);
    for seed in 0..seeds {
        let mut state = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
        let input: Vec<u8> = if seed % 2 == 0 {
            let len = (next(&mut state) % 160) as usize;
            (0..len).map(|_| next(&mut state) as u8).collect()
        } else {
            let input = inputs[(seed / 2) as usize % inputs.len()].1.clone();
            mutated(input, &mut state)
        };
        eprintln!("seed {seed}: {input:02x?}");
        let summary = wire::run(&input);
        delivered += usize::from(summary.delivered);
        injected += summary.injected;
    }
    eprintln!("{seeds} inputs: {delivered} delivered, {injected} packets forged");
    assert!(seeds == 0 || injected > 0, "the harness forged packets");
}

/// `input` with one to four of its bytes replaced at random (unchanged if empty).
fn mutated(mut input: Vec<u8>, state: &mut u64) -> Vec<u8> {
    for _ in 0..1 + next(state) % 4 {
        if input.is_empty() {
            break;
        }
        let at = (next(state) % input.len() as u64) as usize;
        input[at] = next(state) as u8;
    }
    input
}
