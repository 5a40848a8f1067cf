//! A `memcpy` for Cortex-M (ARMv7-M and ARMv6-M), in place of compiler-builtins' portable one.
//!
//! Every byte of a transfer is copied three times (file to socket, socket to packet, packet to
//! socket), and compiler-builtins' `memcpy` copies a word per round when source and destination
//! are aligned alike, and shifts and merges two words per word otherwise: on a Cortex-M the
//! copies are a third of all instructions per byte. This one aligns the destination with single
//! bytes, then:
//!
//! - where the source is now aligned too, moves 16 bytes per round with one `ldm` and one `stm`
//!   (four instructions for 16 bytes, on either core);
//! - otherwise, on ARMv7-M, which loads a word from any address with one `ldr` (only `ldm`,
//!   `ldrd` and their stores need alignment), 16 bytes per round with four `ldr` and one `stm`
//!   (seven instructions); on ARMv6-M, which cannot, a word per round, put together from the
//!   two aligned words it straddles;
//!
//! then what is left a word, then a byte, at a time. TCP segments of a 1460-byte MSS (or 536)
//! keep the socket buffers, the file and the packets aligned alike, so a transfer's copies take
//! the first way.
//!
//! compiler-builtins defines its `memcpy` and the `__aeabi_memcpy*` that Arm's ABI calls as weak
//! symbols, so that a program may bring its own; these are strong. A port with another core
//! keeps compiler-builtins' (the feature `memcpy` builds this only for Arm).

/// Copies `n` bytes from `src` to `dst`, which do not overlap.
///
/// # Safety
///
/// `memcpy`'s: `src` readable and `dst` writable for `n` bytes, the two not overlapping.
#[inline(always)]
unsafe fn copy(mut dst: *mut u8, mut src: *const u8, mut n: usize) {
    // SAFETY: every access stays within the `n` bytes the caller vouches for (but for the
    // ARMv6-M path's aligned loads, see `merge_words`); volatile byte accesses keep the
    // compiler from turning these loops back into a call of `memcpy`.
    unsafe {
        while n != 0 && dst as usize & 3 != 0 {
            dst.write_volatile(src.read_volatile());
            dst = dst.add(1);
            src = src.add(1);
            n -= 1;
        }
        let rounds = n / 16;
        if rounds != 0 && src as usize & 3 == 0 {
            // Both aligned: `ldm` and `stm` of four words, which must be aligned. The four
            // registers are low ones (ARMv6-M's `ldm` takes no other), r2 to r5: r6 and r7
            // are the compiler's, so the pointers are r0 and r1 and the end goes to r8 (which
            // Thumb-1 takes only as a register the code may overwrite, moved there from r2).
            let end = src.add(rounds * 16);
            core::arch::asm!(
                "mov r8, r2",
                "2:",
                "ldm r0!, {{r2, r3, r4, r5}}",
                "stm r1!, {{r2, r3, r4, r5}}",
                "cmp r0, r8",
                "bne 2b",
                inout("r0") src,
                inout("r1") dst,
                inout("r2") end => _,
                out("r8") _,
                out("r3") _,
                out("r4") _,
                out("r5") _,
                options(nostack),
            );
            n %= 16;
        }
        #[cfg(target_feature = "v7")]
        if rounds != 0 && n >= 16 {
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
        #[cfg(not(target_feature = "v7"))]
        if n >= 4 && src as usize & 3 != 0 {
            let words = n / 4;
            merge_words(dst.cast(), src, words);
            dst = dst.add(words * 4);
            src = src.add(words * 4);
            n %= 4;
        }
        let words = n / 4;
        if words != 0 {
            // The destination is aligned; on ARMv6-M the source is too (the branch above
            // took the other case), on ARMv7-M it may be anything.
            core::arch::asm!(
                "2:",
                "ldr {word}, [{src}]",
                "str {word}, [{dst}]",
                "adds {src}, #4",
                "adds {dst}, #4",
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

/// ARMv6-M, the destination aligned and the source not: each word stored is the high bytes of
/// the aligned word the source is in and the low bytes of the next (a little-endian core).
///
/// # Safety
///
/// `dst` aligned and writable for `words` words, `src` readable for `words * 4` bytes. The
/// aligned loads also read the bytes before `src` in its first word and after the end in its
/// last: never outside those two words, so never across a page or a region, as
/// compiler-builtins' own `memcpy` does.
#[cfg(not(target_feature = "v7"))]
#[inline(always)]
unsafe fn merge_words(mut dst: *mut u32, src: *const u8, words: usize) {
    let offset = src as usize & 3;
    let low = 8 * offset as u32;
    let high = 32 - low;
    let mut from = src.wrapping_sub(offset).cast::<u32>();
    // SAFETY: the caller's promise; volatile: the compiler sees no out-of-bounds read to
    // reason from, and no loop to make a `memcpy` of.
    unsafe {
        let mut last = from.read_volatile();
        for _ in 0..words {
            from = from.add(1);
            let next = from.read_volatile();
            dst.write_volatile((last >> low) | (next << high));
            dst = dst.add(1);
            last = next;
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
