//! How much stack the run used, measured rather than guessed.
//!
//! The stack is filled with `0xCCCC_CCCC` before `main`; scanning up from the region's bottom for
//! the first word that is no longer paint finds the deepest the stack ever reached. On a
//! Cortex-M, cortex-m-rt's `paint-stack` feature paints it. On RISC-V, riscv-rt has no such
//! feature: its `pre-init` hook, `__pre_init` below, paints the region in assembly, before
//! `.data` and `.bss` are set up and before any Rust code has used the stack.

#[cfg(target_arch = "arm")]
use cortex_m_rt::STACK_PAINT_VALUE as PAINT;
/// What an untouched stack word holds (cortex-m-rt's value, on every architecture).
#[cfg(not(target_arch = "arm"))]
const PAINT: u32 = 0xcccc_cccc;

#[cfg(target_arch = "arm")]
unsafe extern "C" {
    // Both are defined by cortex-m-rt's `link.x`: the stack grows down from `_stack_start`
    // towards `_stack_end` (the end of `.bss`/`.uninit`).
    static _stack_start: u32;
    static _stack_end: u32;
}

#[cfg(target_arch = "riscv32")]
unsafe extern "C" {
    // Both are defined by riscv-rt's `link.x`: the stack grows down from `_stack_start` towards
    // `__estack`, the bottom of its `.stack` section (after `.bss`, `.uninit` and an empty heap).
    static _stack_start: u32;
    #[link_name = "__estack"]
    static _stack_end: u32;
}

// RISC-V: the painter. riscv-rt (feature `pre-init`) calls `__pre_init` with the stack pointer
// already at the top of the stack and nothing pushed yet; it is a leaf in assembly that touches
// only `t0` and `t1`, so every word from the bottom of the region to `sp` can be painted.
#[cfg(target_arch = "riscv32")]
core::arch::global_asm!(
    ".section .text.__pre_init, \"ax\"",
    ".global __pre_init",
    "__pre_init:",
    "    la t0, __estack",
    "    li t1, 0xcccccccc",
    "1:  bgeu t0, sp, 2f",
    "    sw t1, 0(t0)",
    "    addi t0, t0, 4",
    "    j 1b",
    "2:  ret",
);

/// Bytes between the stack's lowest painted word still intact and its top.
pub fn peak() -> usize {
    let top = (&raw const _stack_start) as usize;
    let mut word = &raw const _stack_end;
    while (word as usize) < top {
        // SAFETY: every word in `_stack_end.._stack_start` is RAM this program owns; it is read
        // volatile because the compiler cannot know the stack wrote it.
        if unsafe { word.read_volatile() } != PAINT {
            break;
        }
        word = word.wrapping_add(1);
    }
    top - word as usize
}

/// The stack region's size: RAM left after `.data`, `.bss` and `.uninit`.
pub fn size() -> usize {
    (&raw const _stack_start) as usize - (&raw const _stack_end) as usize
}
