//! Time for the firmware, from the MCU, never from the host.
//!
//! smoltcp runs on a [`StepClock`]: simulated time that advances by a fixed step while packets are
//! in flight and jumps to smoltcp's next deadline when the link is idle. The run is then the same on
//! every machine and at any emulation speed, which is what CI needs. [`Timer`] measures the same
//! run on the core's own counter, as real firmware would clock itself: SysTick on a Cortex-M
//! ([`SysTickTimer`]), the machine timer `mtime` on RISC-V ([`MtimeTimer`]).

#[cfg(target_arch = "arm")]
use core::sync::atomic::{AtomicU32, Ordering};

#[cfg(target_arch = "arm")]
use cortex_m::peripheral::SYST;
#[cfg(target_arch = "arm")]
use cortex_m::peripheral::syst::SystClkSource;
#[cfg(target_arch = "arm")]
use cortex_m_rt::exception;
#[cfg(all(any(feature = "server", feature = "client"), not(feature = "net")))]
use smoltcp::time::{Duration, Instant};

/// Simulated time for smoltcp.
#[cfg(all(any(feature = "server", feature = "client"), not(feature = "net")))]
pub struct StepClock {
    now: Instant,
    steps: u32,
}

#[cfg(all(any(feature = "server", feature = "client"), not(feature = "net")))]
impl StepClock {
    /// How long one poll of the interface counts for while packets are queued on the link.
    pub const STEP: Duration = Duration::from_micros(100);

    pub const fn new() -> Self {
        StepClock {
            now: Instant::ZERO,
            steps: 0,
        }
    }

    pub fn now(&self) -> Instant {
        self.now
    }

    pub fn steps(&self) -> u32 {
        self.steps
    }

    /// Move on after one poll: by a step while the link carries packets, else to smoltcp's next
    /// deadline (`poll_delay`), or by a step when smoltcp has none.
    pub fn advance(&mut self, link_busy: bool, poll_delay: Option<Duration>) {
        let by = match poll_delay {
            Some(delay) if !link_busy && delay > Self::STEP => delay,
            Some(_) | None => Self::STEP,
        };
        self.now += by;
        self.steps += 1;
    }
}

/// The board's counter.
#[cfg(target_arch = "arm")]
pub type Timer = SysTickTimer;
#[cfg(target_arch = "riscv32")]
pub type Timer = MtimeTimer;

/// SysTick wrap-arounds since [`SysTickTimer::start`]: written by the exception handler only.
#[cfg(target_arch = "arm")]
static WRAPS: AtomicU32 = AtomicU32::new(0);

#[cfg(target_arch = "arm")]
const RELOAD: u32 = 0x00ff_ffff;

/// Counts core clock cycles with SysTick (24 bits, extended by counting wrap-arounds).
#[cfg(target_arch = "arm")]
pub struct SysTickTimer {
    // Owned so that nothing else reprograms the timer.
    _syst: SYST,
}

#[cfg(target_arch = "arm")]
impl SysTickTimer {
    /// What the counts are, for the summary (in words: the small build's records leave the
    /// name to the host).
    #[cfg_attr(any(feature = "net", not(feature = "messages")), allow(dead_code))]
    pub const UNIT: &str = "SysTick cycles";
    /// The counter's name.
    #[cfg(feature = "net")]
    pub const NAME: &str = "SysTick";

    /// Takes the core peripherals and starts SysTick; `None` if they were taken already.
    pub fn take() -> Option<Self> {
        Some(Self::start(cortex_m::Peripherals::take()?.SYST))
    }

    pub fn start(mut syst: SYST) -> Self {
        syst.set_clock_source(SystClkSource::Core);
        syst.set_reload(RELOAD);
        syst.clear_current();
        syst.enable_interrupt();
        syst.enable_counter();
        // The counter reads 0 until its first reload, which would look like a full period gone.
        while SYST::get_current() == 0 {}
        SysTickTimer { _syst: syst }
    }

    /// Core cycles since `start`.
    pub fn ticks(&self) -> u64 {
        loop {
            let wraps = WRAPS.load(Ordering::Acquire);
            let current = SYST::get_current();
            // A wrap between the two loads would pair an old count with a new value; the handler
            // runs at once on a wrap (interrupts are on), so an unchanged count means none.
            if wraps == WRAPS.load(Ordering::Acquire) {
                return u64::from(wraps) * u64::from(RELOAD + 1) + u64::from(RELOAD - current);
            }
        }
    }
}

#[cfg(target_arch = "arm")]
#[exception]
fn SysTick() {
    // A load and a store, not `fetch_add`: the Cortex-M0 (ARMv6-M) has no atomic
    // read-modify-write, and none is needed while this handler is the only writer.
    WRAPS.store(WRAPS.load(Ordering::Relaxed) + 1, Ordering::Release);
}

/// Counts ticks of the machine timer `mtime`: 64 bits, so it never wraps and needs no interrupt.
/// On QEMU's `virt` it is the CLINT's, memory-mapped at `0x0200_bff8` and running at 10 MHz of
/// virtual time; other RISC-V parts put it elsewhere (or, like the ESP32-C3, have a timer of
/// their own instead), which is the one line to change.
#[cfg(target_arch = "riscv32")]
pub struct MtimeTimer {
    start: u64,
}

#[cfg(target_arch = "riscv32")]
impl MtimeTimer {
    /// What the counts are, for the summary (in words: the small build's records leave the
    /// name to the host).
    #[cfg_attr(any(feature = "net", not(feature = "messages")), allow(dead_code))]
    pub const UNIT: &str = "mtime ticks";
    /// The counter's name.
    #[cfg(feature = "net")]
    pub const NAME: &str = "mtime";
    /// Ticks per second on QEMU `virt` (its CLINT's timebase).
    #[cfg(feature = "net")]
    pub const HZ: u64 = 10_000_000;
    const MTIME: *const u32 = 0x0200_bff8 as *const u32;

    /// Starts counting from now. Always `Some`: the timer runs from reset and nothing is taken.
    pub fn take() -> Option<Self> {
        Some(MtimeTimer {
            start: Self::read(),
        })
    }

    /// Ticks since `take`.
    pub fn ticks(&self) -> u64 {
        Self::read() - self.start
    }

    fn read() -> u64 {
        // A 32-bit hart reads the 64-bit counter in two halves: read high, low, high again, and
        // retry if the high half moved in between (the low half wrapped).
        loop {
            // SAFETY: `MTIME` and the word after it are the CLINT's `mtime` register, readable
            // at any time and without side effects.
            let (high, low, again) = unsafe {
                (
                    Self::MTIME.add(1).read_volatile(),
                    Self::MTIME.read_volatile(),
                    Self::MTIME.add(1).read_volatile(),
                )
            };
            if high == again {
                return (u64::from(high) << 32) | u64::from(low);
            }
        }
    }
}
