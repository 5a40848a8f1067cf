//! RISC-V: the prologue and epilogue routines that code compiled with `+save-restore` calls
//! (`.cargo/config.toml`), so that a function saving many registers spends one call on it, not
//! one store and one load per register. GCC's `-msave-restore` calls the same routines from
//! libgcc; a bare-metal Rust image has no libgcc, so they are here.
//!
//! The convention, which GCC and LLVM share (ILP32, 16-byte stack alignment):
//! - `__riscv_save_N` (N = 0 to 12) is called with `jal t0`, at a function's entry. It saves `ra`
//!   and `s0` to `s(N-1)` in a new frame of `4 * (N + 1)` bytes rounded up to 16, `ra` at its top
//!   word, `s0` below it, then `s1`, and so on, and returns through `t0`. It may use `t1`.
//! - `__riscv_restore_N` is jumped to (`tail`) instead of the function's return: it loads the
//!   same registers from the same places, frees the frame and returns through `ra`.
//!
//! Every entry works in one 64-byte view of the frame: the registers' offsets are the same for
//! every N (`ra` at 60, `s0` at 56, ..., `s11` at 12), so one run of stores and one of loads
//! serve all thirteen entries. A save moves `sp` down 64 bytes, stores from its own register
//! down to `ra`, then gives back what its frame does not need (`t1`); a restore first moves
//! `sp` down by that much (nothing below `sp` is read or written), then loads and frees 64.
//!
//! Checked by running: every RISC-V image's transfer goes through these routines, and a wrong
//! offset would fail it (a wrong register or return address faults or corrupts the file).

core::arch::global_asm!(
    ".section .text.riscv_save_restore,\"ax\",@progbits",
    ".balign 2",
    // Saves. Frames: 16 bytes for N = 0 to 3, 32 for 4 to 7, 48 for 8 to 11, 64 for 12; `t1` is
    // what a frame leaves of the 64-byte view.
    ".globl __riscv_save_12",
    ".globl __riscv_save_11",
    ".globl __riscv_save_10",
    ".globl __riscv_save_9",
    ".globl __riscv_save_8",
    ".globl __riscv_save_7",
    ".globl __riscv_save_6",
    ".globl __riscv_save_5",
    ".globl __riscv_save_4",
    ".globl __riscv_save_3",
    ".globl __riscv_save_2",
    ".globl __riscv_save_1",
    ".globl __riscv_save_0",
    ".type __riscv_save_12, @function",
    ".type __riscv_save_0, @function",
    "__riscv_save_12:",
    "    addi sp, sp, -64",
    "    li t1, 0",
    "    j 12f",
    "__riscv_save_11:",
    "    addi sp, sp, -64",
    "    li t1, 16",
    "    j 11f",
    "__riscv_save_10:",
    "    addi sp, sp, -64",
    "    li t1, 16",
    "    j 10f",
    "__riscv_save_9:",
    "    addi sp, sp, -64",
    "    li t1, 16",
    "    j 9f",
    "__riscv_save_8:",
    "    addi sp, sp, -64",
    "    li t1, 16",
    "    j 8f",
    "__riscv_save_7:",
    "    addi sp, sp, -64",
    "    li t1, 32",
    "    j 7f",
    "__riscv_save_6:",
    "    addi sp, sp, -64",
    "    li t1, 32",
    "    j 6f",
    "__riscv_save_5:",
    "    addi sp, sp, -64",
    "    li t1, 32",
    "    j 5f",
    "__riscv_save_4:",
    "    addi sp, sp, -64",
    "    li t1, 32",
    "    j 4f",
    "__riscv_save_3:",
    "    addi sp, sp, -64",
    "    li t1, 48",
    "    j 3f",
    "__riscv_save_2:",
    "    addi sp, sp, -64",
    "    li t1, 48",
    "    j 2f",
    "__riscv_save_1:",
    "    addi sp, sp, -64",
    "    li t1, 48",
    "    j 1f",
    "__riscv_save_0:",
    "    addi sp, sp, -64",
    "    li t1, 48",
    "    j 0f",
    "12: sw s11, 12(sp)",
    "11: sw s10, 16(sp)",
    "10: sw s9, 20(sp)",
    "9: sw s8, 24(sp)",
    "8: sw s7, 28(sp)",
    "7: sw s6, 32(sp)",
    "6: sw s5, 36(sp)",
    "5: sw s4, 40(sp)",
    "4: sw s3, 44(sp)",
    "3: sw s2, 48(sp)",
    "2: sw s1, 52(sp)",
    "1: sw s0, 56(sp)",
    "0: sw ra, 60(sp)",
    "    add sp, sp, t1",
    "    jr t0",
    ".size __riscv_save_12, . - __riscv_save_12",
    // Restores: into the 64-byte view, then the loads from the entry's own register down.
    ".globl __riscv_restore_12",
    ".globl __riscv_restore_11",
    ".globl __riscv_restore_10",
    ".globl __riscv_restore_9",
    ".globl __riscv_restore_8",
    ".globl __riscv_restore_7",
    ".globl __riscv_restore_6",
    ".globl __riscv_restore_5",
    ".globl __riscv_restore_4",
    ".globl __riscv_restore_3",
    ".globl __riscv_restore_2",
    ".globl __riscv_restore_1",
    ".globl __riscv_restore_0",
    ".type __riscv_restore_12, @function",
    "__riscv_restore_12:",
    "    j 12f",
    "__riscv_restore_11:",
    "    addi sp, sp, -16",
    "    j 11f",
    "__riscv_restore_10:",
    "    addi sp, sp, -16",
    "    j 10f",
    "__riscv_restore_9:",
    "    addi sp, sp, -16",
    "    j 9f",
    "__riscv_restore_8:",
    "    addi sp, sp, -16",
    "    j 8f",
    "__riscv_restore_7:",
    "    addi sp, sp, -32",
    "    j 7f",
    "__riscv_restore_6:",
    "    addi sp, sp, -32",
    "    j 6f",
    "__riscv_restore_5:",
    "    addi sp, sp, -32",
    "    j 5f",
    "__riscv_restore_4:",
    "    addi sp, sp, -32",
    "    j 4f",
    "__riscv_restore_3:",
    "    addi sp, sp, -48",
    "    j 3f",
    "__riscv_restore_2:",
    "    addi sp, sp, -48",
    "    j 2f",
    "__riscv_restore_1:",
    "    addi sp, sp, -48",
    "    j 1f",
    "__riscv_restore_0:",
    "    addi sp, sp, -48",
    "    j 0f",
    "12: lw s11, 12(sp)",
    "11: lw s10, 16(sp)",
    "10: lw s9, 20(sp)",
    "9: lw s8, 24(sp)",
    "8: lw s7, 28(sp)",
    "7: lw s6, 32(sp)",
    "6: lw s5, 36(sp)",
    "5: lw s4, 40(sp)",
    "4: lw s3, 44(sp)",
    "3: lw s2, 48(sp)",
    "2: lw s1, 52(sp)",
    "1: lw s0, 56(sp)",
    "0: lw ra, 60(sp)",
    "    addi sp, sp, 64",
    "    ret",
    ".size __riscv_restore_12, . - __riscv_restore_12",
);

// The routines' own check, run at start-up by the images with `messages` (the full and the cost
// images; the small ones link the same routines without its 4 KiB of code): for every N, save
// with known values in `ra` and `s0` to `s11`, look at the frame (its size, `ra` at its top, `s0`
// below, ...), wipe the registers, restore, and check that the saved ones came back, the others
// were left alone and `sp` is where it was. Written in assembly, as no compiled code can choose
// which registers a call saves. Returns 0 when every N passes, else N + 1 of the first that
// fails.
#[cfg(feature = "messages")]
core::arch::global_asm!(
    r#"
    .macro sr_fill
        li s0, 0x5a5a0000
        li s1, 0x5a5a0001
        li s2, 0x5a5a0002
        li s3, 0x5a5a0003
        li s4, 0x5a5a0004
        li s5, 0x5a5a0005
        li s6, 0x5a5a0006
        li s7, 0x5a5a0007
        li s8, 0x5a5a0008
        li s9, 0x5a5a0009
        li s10, 0x5a5a000a
        li s11, 0x5a5a000b
    .endm
    .macro sr_wipe
        li s0, 0
        li s1, 0
        li s2, 0
        li s3, 0
        li s4, 0
        li s5, 0
        li s6, 0
        li s7, 0
        li s8, 0
        li s9, 0
        li s10, 0
        li s11, 0
    .endm
    // Register s<i>, index i, after the restore of N = n: its value if saved, else 0.
    .macro sr_back reg, i, n
        .if \i < \n
            li t2, 0x5a5a0000 + \i
        .else
            li t2, 0
        .endif
        bne \reg, t2, 8f
    .endm
    // Saved word of s<i> in the frame, when N = n saves it (a5: `sp` before the save).
    .macro sr_slot i, n
        .if \i < \n
            lw t1, -(8 + 4 * \i)(a5)
            li t2, 0x5a5a0000 + \i
            bne t1, t2, 8f
        .endif
    .endm
    .macro sr_case n
        li a0, \n + 1
        sr_fill
        la ra, 2f
        jal t0, __riscv_save_\n
        sub t1, a5, sp
        li t2, ((\n + 1) * 4 + 15) & -16
        bne t1, t2, 8f
        lw t1, -4(a5)
        la t2, 2f
        bne t1, t2, 8f
        sr_slot 0, \n
        sr_slot 1, \n
        sr_slot 2, \n
        sr_slot 3, \n
        sr_slot 4, \n
        sr_slot 5, \n
        sr_slot 6, \n
        sr_slot 7, \n
        sr_slot 8, \n
        sr_slot 9, \n
        sr_slot 10, \n
        sr_slot 11, \n
        sr_wipe
        j __riscv_restore_\n
    2:
        bne sp, a5, 8f
        sr_back s0, 0, \n
        sr_back s1, 1, \n
        sr_back s2, 2, \n
        sr_back s3, 3, \n
        sr_back s4, 4, \n
        sr_back s5, 5, \n
        sr_back s6, 6, \n
        sr_back s7, 7, \n
        sr_back s8, 8, \n
        sr_back s9, 9, \n
        sr_back s10, 10, \n
        sr_back s11, 11, \n
    .endm

    .section .text.halfclose_save_restore_check,"ax",@progbits
    .globl halfclose_save_restore_check
    .type halfclose_save_restore_check, @function
halfclose_save_restore_check:
    addi sp, sp, -64
    sw ra, 60(sp)
    sw s0, 56(sp)
    sw s1, 52(sp)
    sw s2, 48(sp)
    sw s3, 44(sp)
    sw s4, 40(sp)
    sw s5, 36(sp)
    sw s6, 32(sp)
    sw s7, 28(sp)
    sw s8, 24(sp)
    sw s9, 20(sp)
    sw s10, 16(sp)
    sw s11, 12(sp)
    mv a5, sp
    sr_case 0
    sr_case 1
    sr_case 2
    sr_case 3
    sr_case 4
    sr_case 5
    sr_case 6
    sr_case 7
    sr_case 8
    sr_case 9
    sr_case 10
    sr_case 11
    sr_case 12
    li a0, 0
8:
    mv sp, a5
    lw ra, 60(sp)
    lw s0, 56(sp)
    lw s1, 52(sp)
    lw s2, 48(sp)
    lw s3, 44(sp)
    lw s4, 40(sp)
    lw s5, 36(sp)
    lw s6, 32(sp)
    lw s7, 28(sp)
    lw s8, 24(sp)
    lw s9, 20(sp)
    lw s10, 16(sp)
    lw s11, 12(sp)
    addi sp, sp, 64
    ret
    .size halfclose_save_restore_check, . - halfclose_save_restore_check
"#
);

#[cfg(feature = "messages")]
unsafe extern "C" {
    fn halfclose_save_restore_check() -> u32;
}

/// Check every `__riscv_save_N` / `__riscv_restore_N` pair (see above): `Err(N)` for the first
/// N whose frame or registers are wrong.
#[cfg(feature = "messages")]
pub fn check() -> Result<(), u32> {
    // SAFETY: the routine keeps the calling convention (it saves and restores every callee-saved
    // register it uses and leaves `sp` as it found it) and touches no memory above `sp`'s entry
    // value.
    match unsafe { halfclose_save_restore_check() } {
        0 => Ok(()),
        n => Err(n - 1),
    }
}
