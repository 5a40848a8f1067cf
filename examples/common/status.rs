//! `SIGUSR1` asks a running server for a status line (as `dd` prints its progress): the handler
//! only sets a flag, which the event loop reads after each pass (it wakes at least every 100 ms).
#![allow(unsafe_code)]

use std::sync::atomic::{AtomicBool, Ordering};

static ASKED: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: libc::c_int) {
    ASKED.store(true, Ordering::Relaxed);
}

/// Install the handler for `SIGUSR1`.
pub fn listen() -> Result<(), String> {
    let handler = on_signal as extern "C" fn(libc::c_int);
    // SAFETY: the handler only stores to an atomic, which is async-signal-safe.
    let old = unsafe { libc::signal(libc::SIGUSR1, handler as libc::sighandler_t) };
    if old == libc::SIG_ERR {
        return Err(format!(
            "cannot handle SIGUSR1: {}",
            std::io::Error::last_os_error()
        ));
    }
    Ok(())
}

/// Whether a status line was asked for since the last call.
pub fn asked() -> bool {
    ASKED.swap(false, Ordering::Relaxed)
}
