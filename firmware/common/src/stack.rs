//! How much stack the run used, measured rather than guessed.
//!
//! cortex-m-rt's `paint-stack` feature fills the stack region with `0xCCCC_CCCC` before `main`;
//! scanning up from the region's bottom for the first word that is no longer paint finds the
//! deepest the stack ever reached.

use cortex_m_rt::STACK_PAINT_VALUE;

unsafe extern "C" {
    // Both are defined by cortex-m-rt's `link.x`: the stack grows down from `_stack_start`
    // towards `_stack_end` (the end of `.bss`/`.uninit`).
    static _stack_start: u32;
    static _stack_end: u32;
}

/// Bytes between the stack's lowest painted word still intact and its top.
pub fn peak() -> usize {
    let top = (&raw const _stack_start) as usize;
    let mut word = &raw const _stack_end;
    while (word as usize) < top {
        // SAFETY: every word in `_stack_end.._stack_start` is RAM this program owns; it is read
        // volatile because the compiler cannot know the stack wrote it.
        if unsafe { word.read_volatile() } != STACK_PAINT_VALUE {
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
