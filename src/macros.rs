//! Logging macros that route to `log` when its feature is on and compile to nothing otherwise.
//!
//! Arguments are still type-checked when logging is off, so a format string cannot rot
//! behind a disabled feature.

macro_rules! debug {
    ($($arg:tt)*) => {{
        #[cfg(feature = "log")]
        ::log::debug!($($arg)*);
        #[cfg(not(feature = "log"))]
        { let _ = ::core::format_args!($($arg)*); }
    }};
}

macro_rules! trace {
    ($($arg:tt)*) => {{
        #[cfg(feature = "log")]
        ::log::trace!($($arg)*);
        #[cfg(not(feature = "log"))]
        { let _ = ::core::format_args!($($arg)*); }
    }};
}

pub(crate) use {debug, trace};
