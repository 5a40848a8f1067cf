//! A `defmt` global logger for QEMU: frames go over semihosting into the host file `defmt.bin`
//! (in QEMU's working directory), apart from the text summary on stdout. Decode them with
//! `defmt-print -e IMAGE < defmt.bin`. On a board, a crate such as `defmt-rtt` takes this
//! module's place.

use core::cell::UnsafeCell;
use core::sync::atomic::{AtomicBool, Ordering};

use cortex_m::register::primask;
use cortex_m_semihosting::{nr, syscall};

#[defmt::global_logger]
struct Logger;

struct State {
    encoder: defmt::Encoder,
    /// The host file, opened on the first frame; `None` if the host refused.
    file: Option<usize>,
    opened: bool,
    /// Whether interrupts were on before `acquire` turned them off.
    interrupts_were_on: bool,
}

struct Shared(UnsafeCell<State>);

// SAFETY: the state is only touched between `acquire` and `release`, with interrupts off on this
// single core, and `TAKEN` refuses a second `acquire` before the `release`.
unsafe impl Sync for Shared {}

static TAKEN: AtomicBool = AtomicBool::new(false);
static STATE: Shared = Shared(UnsafeCell::new(State {
    encoder: defmt::Encoder::new(),
    file: None,
    opened: false,
    interrupts_were_on: false,
}));

const FILE: &[u8] = b"defmt.bin\0";

fn write_file(file: Option<usize>, mut bytes: &[u8]) {
    let Some(fd) = file else { return };
    while !bytes.is_empty() {
        // SAFETY: SYS_WRITE reads `bytes` and returns how many bytes it did *not* write.
        let left = unsafe { syscall!(WRITE, fd, bytes.as_ptr(), bytes.len()) };
        if left == 0 || left > bytes.len() {
            return;
        }
        bytes = &bytes[bytes.len() - left..];
    }
}

/// The state, once `acquire` holds it.
///
/// # Safety
/// Only between `acquire` and `release` (see `Shared`).
unsafe fn state() -> &'static mut State {
    // SAFETY: exclusive by the caller's contract.
    unsafe { &mut *STATE.0.get() }
}

// SAFETY: frames are written whole between `acquire` and `release`, one at a time.
unsafe impl defmt::Logger for Logger {
    fn acquire() {
        let interrupts_were_on = primask::read().is_active();
        cortex_m::interrupt::disable();
        if TAKEN.swap(true, Ordering::Acquire) {
            panic!("defmt logger acquired twice");
        }
        // SAFETY: acquired just above.
        let state = unsafe { state() };
        state.interrupts_were_on = interrupts_were_on;
        if !state.opened {
            state.opened = true;
            // SAFETY: SYS_OPEN reads the NUL-terminated name; the length excludes the NUL.
            let fd = unsafe {
                syscall!(
                    OPEN,
                    FILE.as_ptr(),
                    nr::open::W_TRUNC_BINARY,
                    FILE.len() - 1
                )
            };
            state.file = (fd as isize != -1).then_some(fd);
        }
        let file = state.file;
        state.encoder.start_frame(|bytes| write_file(file, bytes));
    }

    unsafe fn flush() {}

    unsafe fn release() {
        // SAFETY: `acquire` came first, as defmt guarantees.
        let state = unsafe { state() };
        let file = state.file;
        state.encoder.end_frame(|bytes| write_file(file, bytes));
        let interrupts_were_on = state.interrupts_were_on;
        TAKEN.store(false, Ordering::Release);
        if interrupts_were_on {
            // SAFETY: restores what `acquire` found.
            unsafe { cortex_m::interrupt::enable() };
        }
    }

    unsafe fn write(bytes: &[u8]) {
        // SAFETY: between `acquire` and `release`, as defmt guarantees.
        let state = unsafe { state() };
        let file = state.file;
        state.encoder.write(bytes, |bytes| write_file(file, bytes));
    }
}
