//! Logging macros that route to `log` or `defmt`, whichever feature is on, and compile to nothing
//! otherwise.
//!
//! Arguments are still type-checked when logging is off, so a format string cannot rot
//! behind a disabled feature. Through `defmt`, each argument is sent with its own
//! `defmt::Format` (integers, and the states: `src/defmt_format.rs`), so logging costs no
//! `core::fmt` on a firmware.

macro_rules! debug {
    ($($arg:tt)*) => {{
        #[cfg(feature = "log")]
        ::log::debug!($($arg)*);
        #[cfg(feature = "defmt")]
        $crate::macros::to_defmt!(debug, $($arg)*);
        #[cfg(not(any(feature = "log", feature = "defmt")))]
        { let _ = ::core::format_args!($($arg)*); }
    }};
}

macro_rules! trace {
    ($($arg:tt)*) => {{
        #[cfg(feature = "log")]
        ::log::trace!($($arg)*);
        #[cfg(feature = "defmt")]
        $crate::macros::to_defmt!(trace, $($arg)*);
        #[cfg(not(any(feature = "log", feature = "defmt")))]
        { let _ = ::core::format_args!($($arg)*); }
    }};
}

#[cfg(feature = "defmt")]
macro_rules! to_defmt {
    ($level:ident, $fmt:literal $(, $arg:expr)* $(,)?) => {
        ::defmt::$level!($fmt $(, $arg)*)
    };
}

#[cfg(feature = "defmt")]
pub(crate) use to_defmt;
pub(crate) use {debug, trace};
