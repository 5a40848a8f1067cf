//! Forged packets in both directions next to a legitimate transfer (see `halfclose_tools::wire`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    halfclose_tools::wire::run(data);
});
