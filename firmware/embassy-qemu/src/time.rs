//! An `embassy-time` driver on the Cortex-M SysTick: a 1 ms tick interrupt counts milliseconds,
//! the counter's current value gives the microseconds in between, and each tick wakes the timers
//! that are due (embassy's timer queue) and the Ethernet driver (which has no interrupt of its
//! own wired here, so it is polled once a millisecond, like the sync image's loop polls it).
//!
//! QEMU's model of the board runs SysTick from a clock this image does not program, so its rate
//! is measured once against the host's semihosting clock before the tick starts.

use core::cell::{Cell, RefCell};
use core::sync::atomic::{AtomicU32, Ordering};
use core::task::Waker;

use cortex_m::peripheral::syst::SystClkSource;
use cortex_m::peripheral::{SCB, SYST};
use cortex_m_rt::exception;
use critical_section::Mutex;
use embassy_sync::waitqueue::AtomicWaker;
use embassy_time_driver::Driver;
use embassy_time_queue_utils::Queue;

/// Core cycles per millisecond, once measured (0 before: `now` then reads 0).
static CYCLES_PER_MS: AtomicU32 = AtomicU32::new(0);

/// Woken on every tick: the Ethernet driver's receive side.
pub static TICK_WAKER: AtomicWaker = AtomicWaker::new();

struct SysTickDriver {
    millis: Mutex<Cell<u64>>,
    queue: Mutex<RefCell<Queue>>,
}

embassy_time_driver::time_driver_impl!(static DRIVER: SysTickDriver = SysTickDriver {
    millis: Mutex::new(Cell::new(0)),
    queue: Mutex::new(RefCell::new(Queue::new())),
});

impl Driver for SysTickDriver {
    /// Microseconds (embassy-time's default tick rate is 1 MHz).
    fn now(&self) -> u64 {
        let per_ms = u64::from(CYCLES_PER_MS.load(Ordering::Relaxed));
        if per_ms == 0 {
            return 0;
        }
        critical_section::with(|cs| {
            let mut millis = self.millis.borrow(cs).get();
            let mut current = SYST::get_current();
            // A wrap whose interrupt has not run yet (we are in a critical section): count it.
            if SCB::is_pendst_pending() {
                millis += 1;
                current = SYST::get_current();
            }
            let into = per_ms - 1 - u64::from(current).min(per_ms - 1);
            millis * 1000 + into * 1000 / per_ms
        })
    }

    fn schedule_wake(&self, at: u64, waker: &Waker) {
        critical_section::with(|cs| {
            // Due timers are woken by the next tick, at most a millisecond late.
            self.queue.borrow(cs).borrow_mut().schedule_wake(at, waker);
        });
    }
}

fn semihosting_centiseconds() -> usize {
    // SAFETY: SYS_CLOCK takes no argument and only returns a value.
    unsafe { cortex_m_semihosting::syscall!(CLOCK) }
}

/// Measure the core clock against the host's, then start the 1 ms tick. Returns the core clock
/// in Hz.
pub fn start(mut syst: SYST) -> u32 {
    const FREE: u32 = 0x00ff_ffff;
    syst.disable_interrupt();
    syst.set_clock_source(SystClkSource::Core);
    syst.set_reload(FREE);
    syst.clear_current();
    syst.enable_counter();
    // Count 24-bit down-counter periods by hand over 0.2 s of host time.
    let mut cycles = 0u64;
    let mut last = SYST::get_current();
    let mut sample = |cycles: &mut u64| {
        let now = SYST::get_current();
        *cycles += u64::from(last.wrapping_sub(now) & FREE);
        last = now;
    };
    let start = semihosting_centiseconds();
    while semihosting_centiseconds() == start {
        sample(&mut cycles);
    }
    cycles = 0;
    let t0 = semihosting_centiseconds();
    while semihosting_centiseconds() < t0 + 20 {
        sample(&mut cycles);
    }
    let hz = (cycles * 5).clamp(1_000, u64::from(u32::MAX)) as u32;
    let per_ms = (hz / 1000).clamp(2, FREE + 1);
    syst.disable_counter();
    syst.set_reload(per_ms - 1);
    syst.clear_current();
    CYCLES_PER_MS.store(per_ms, Ordering::Relaxed);
    syst.enable_interrupt();
    syst.enable_counter();
    hz
}

#[exception]
fn SysTick() {
    critical_section::with(|cs| {
        let millis = DRIVER.millis.borrow(cs);
        millis.set(millis.get() + 1);
    });
    let now = DRIVER.now();
    critical_section::with(|cs| {
        DRIVER.queue.borrow(cs).borrow_mut().next_expiration(now);
    });
    TICK_WAKER.wake();
}
