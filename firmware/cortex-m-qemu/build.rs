//! Picks the board from the target and puts its memory map, as `memory.x`, where the linker (run
//! with cortex-m-rt's `link.x`) finds it.
//!
//! | target | board (QEMU machine) | core |
//! |---|---|---|
//! | `thumbv7m-none-eabi` | LM3S6965 (`lm3s6965evb`) | Cortex-M3 |
//! | `thumbv6m-none-eabi` | nRF51822 micro:bit (`microbit`) | Cortex-M0 |
//! | `riscv32imac-unknown-none-elf` | QEMU's RISC-V `virt` board (`virt`) | RV32IMAC |
use std::{env, fs, path::PathBuf};

fn main() {
    let target = env::var("TARGET").unwrap();
    let board = match target.as_str() {
        "thumbv7m-none-eabi" => "lm3s6965",
        "thumbv6m-none-eabi" => "microbit",
        "riscv32imac-unknown-none-elf" => "virt",
        other => panic!(
            "no board for target {other}: add boards/<board>.x, a `board` cfg value here and in src/board.rs"
        ),
    };
    println!("cargo::rustc-check-cfg=cfg(board, values(\"lm3s6965\", \"microbit\", \"virt\"))");
    println!("cargo::rustc-cfg=board=\"{board}\"");
    let out = PathBuf::from(env::var_os("OUT_DIR").unwrap());
    let map = format!("boards/{board}.x");
    fs::write(out.join("memory.x"), fs::read(&map).unwrap()).unwrap();
    // cortex-m-rt's `link.x` (feature `device`) includes `device.x`, where a device crate names
    // its interrupt handlers; src/board.rs points every entry at `DefaultHandler` itself.
    fs::write(out.join("device.x"), "").unwrap();
    println!("cargo::rustc-link-search={}", out.display());
    // defmt's linker script places its interned strings; only when defmt is in the image.
    if env::var_os("CARGO_FEATURE_DEFMT").is_some() {
        println!("cargo::rustc-link-arg=-Tdefmt.x");
    }
    println!("cargo::rerun-if-changed=boards");
    println!("cargo::rerun-if-changed=build.rs");
}
