//! A `memcpy` for ARMv7-M (the Cortex-M3 and up), in place of compiler-builtins' portable one.
//!
//! Every byte of a transfer is copied three times (file to socket, socket to packet, packet to
//! socket), and compiler-builtins' `memcpy` copies a word per round when source and destination
//! are aligned alike, and shifts and merges two words per word otherwise: on the Cortex-M3 the
//! copies are a third of all instructions per byte. ARMv7-M loads a word from any address with
//! one `ldr` (only `ldm`, `ldrd` and their stores need alignment), so this one aligns the
//! destination with single bytes, then moves 16 bytes per round with four `ldr` from the source,
//! wherever it is, and one `stm` to the destination (seven instructions for 16 bytes), then
//! what is left a word, then a byte, at a time.
//!
//! compiler-builtins defines its `memcpy` and the `__aeabi_memcpy*` that Arm's ABI calls as weak
//! symbols, so that a program may bring its own; these are strong. A port with another core
//! keeps compiler-builtins' (the feature `memcpy` builds this only for ARMv7-M).

/// Copies `n` bytes from `src` to `dst`, which do not overlap.
///
/// # Safety
///
/// `memcpy`'s: `src` readable and `dst` writable for `n` bytes, the two not overlapping.
#[inline(always)]
unsafe fn copy(mut dst: *mut u8, mut src: *const u8, mut n: usize) {
    // SAFETY: every access stays within the `n` bytes the caller vouches for; volatile byte
    // accesses keep the compiler from turning these loops back into a call of `memcpy`.
    unsafe {
        while n != 0 && dst as usize & 3 != 0 {
            dst.write_volatile(src.read_volatile());
            dst = dst.add(1);
            src = src.add(1);
            n -= 1;
        }
        let rounds = n / 16;
        if rounds != 0 {
            // r3, r4, r5 and r12, in ascending order as `stm` lists them.
            core::arch::asm!(
                "2:",
                "ldr r3, [{src}], #4",
                "ldr r4, [{src}], #4",
                "ldr r5, [{src}], #4",
                "ldr r12, [{src}], #4",
                "stmia {dst}!, {{r3, r4, r5, r12}}",
                "subs {rounds}, #1",
                "bne 2b",
                src = inout(reg) src,
                dst = inout(reg) dst,
                rounds = inout(reg) rounds => _,
                out("r3") _,
                out("r4") _,
                out("r5") _,
                out("r12") _,
                options(nostack),
            );
            n %= 16;
        }
        let words = n / 4;
        if words != 0 {
            core::arch::asm!(
                "2:",
                "ldr {word}, [{src}], #4",
                "str {word}, [{dst}], #4",
                "subs {words}, #1",
                "bne 2b",
                src = inout(reg) src,
                dst = inout(reg) dst,
                words = inout(reg) words => _,
                word = out(reg) _,
                options(nostack),
            );
            n %= 4;
        }
        while n != 0 {
            dst.write_volatile(src.read_volatile());
            dst = dst.add(1);
            src = src.add(1);
            n -= 1;
        }
    }
}

/// C's `memcpy`.
///
/// # Safety
///
/// C's: see [`copy`].
#[unsafe(no_mangle)]
pub unsafe extern "C" fn memcpy(dst: *mut u8, src: *const u8, n: usize) -> *mut u8 {
    // SAFETY: the caller's promise is `copy`'s.
    unsafe { copy(dst, src, n) };
    dst
}

/// The Arm run-time ABI's `memcpy` (RTABI 4.3.4), and its variants for 4- and 8-byte aligned
/// pointers, which the compiler calls for copies it does not inline.
///
/// # Safety
///
/// C's `memcpy`'s: see [`copy`].
#[unsafe(no_mangle)]
pub unsafe extern "aapcs" fn __aeabi_memcpy(dst: *mut u8, src: *const u8, n: usize) {
    // SAFETY: the caller's promise is `copy`'s.
    unsafe { copy(dst, src, n) }
}

/// See [`__aeabi_memcpy`].
///
/// # Safety
///
/// C's `memcpy`'s, and both pointers aligned to 4 bytes.
#[unsafe(no_mangle)]
pub unsafe extern "aapcs" fn __aeabi_memcpy4(dst: *mut u8, src: *const u8, n: usize) {
    // SAFETY: the caller's promise is `copy`'s.
    unsafe { copy(dst, src, n) }
}

/// See [`__aeabi_memcpy`].
///
/// # Safety
///
/// C's `memcpy`'s, and both pointers aligned to 8 bytes.
#[unsafe(no_mangle)]
pub unsafe extern "aapcs" fn __aeabi_memcpy8(dst: *mut u8, src: *const u8, n: usize) {
    // SAFETY: the caller's promise is `copy`'s.
    unsafe { copy(dst, src, n) }
}

/// Checks the copy against a byte loop at every length up to 70 and every alignment of both
/// ends, then on a long run; false on any difference. The images call it first, so that a
/// wrong copy fails the run even where no transfer would show it.
pub fn self_test() -> bool {
    let mut from = [0u8; 160];
    for (i, b) in from.iter_mut().enumerate() {
        *b = (i as u8).wrapping_mul(37).wrapping_add(11);
    }
    for n in (0..=70).chain([150]) {
        for s in 0..4 {
            for d in 0..4 {
                if n + s.max(d) > from.len() {
                    continue;
                }
                let mut to = [0xa5u8; 160];
                // SAFETY: both ranges lie inside their arrays (the check above); distinct arrays.
                unsafe { memcpy(to.as_mut_ptr().add(d), from.as_ptr().add(s), n) };
                let copied = (0..n).all(|i| to[d + i] == from[s + i]);
                let untouched = (0..to.len()).all(|i| (d..d + n).contains(&i) || to[i] == 0xa5);
                if !copied || !untouched {
                    return false;
                }
            }
        }
    }
    true
}
