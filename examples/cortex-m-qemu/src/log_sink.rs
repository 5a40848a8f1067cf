//! A `log` logger that prints each record over semihosting, as a firmware that logs through the
//! `log` facade would (on a board: RTT or a UART instead). Installed at start, level `Debug`: the
//! library's state transitions.

use cortex_m_semihosting::hprintln;

struct Semihosting;

impl log::Log for Semihosting {
    fn enabled(&self, metadata: &log::Metadata<'_>) -> bool {
        metadata.level() <= log::max_level()
    }

    fn log(&self, record: &log::Record<'_>) {
        if self.enabled(record.metadata()) {
            hprintln!("{} {}", record.level(), record.args());
        }
    }

    fn flush(&self) {}
}

static LOGGER: Semihosting = Semihosting;

/// Install the logger (once; a second call changes nothing).
pub fn init() {
    if log::set_logger(&LOGGER).is_ok() {
        log::set_max_level(log::LevelFilter::Debug);
    }
}
