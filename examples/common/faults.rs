//! Faults at our device, both directions, seeded: the link smoltcp's examples simulate with
//! their `--drop-chance` and friends, without `netem`.

use std::collections::VecDeque;

use clap::value_parser;
use halfclose::sim::Rng;
use smoltcp::time::{Duration, Instant};

use super::cli;
use super::drive::earliest;

/// Faults our device applies to the frames it passes, in both directions, as smoltcp's examples
/// do: a lossy, noisy, reordering or slow link without `netem`.
#[derive(clap::Args, Debug, Clone)]
#[command(next_help_heading = "Faults (each direction, at our device)")]
pub struct FaultArgs {
    /// Drop PCT % of frames
    #[arg(long = "drop", value_name = "PCT", default_value = "0", value_parser = cli::percent)]
    pub drop_ppm: u32,
    /// Flip a bit in PCT % of frames (the receiver's checksum drops them)
    #[arg(long = "corrupt", value_name = "PCT", default_value = "0", value_parser = cli::percent)]
    pub corrupt_ppm: u32,
    /// Send PCT % of frames twice
    #[arg(long = "duplicate", value_name = "PCT", default_value = "0", value_parser = cli::percent)]
    pub duplicate_ppm: u32,
    /// Hold PCT % of frames back 10 ms, so later ones overtake them
    #[arg(long = "reorder", value_name = "PCT", default_value = "0", value_parser = cli::percent)]
    pub reorder_ppm: u32,
    /// Pass at most BYTES per second (received: a 20 ms token bucket; sent: a 100 ms queue)
    #[arg(long, value_name = "BYTES", value_parser = value_parser!(u64).range(1..))]
    pub rate: Option<u64>,
    /// Hold every frame MS milliseconds (each way: the round trip grows by twice MS)
    #[arg(long, value_name = "MS", default_value = "0", conflicts_with = "rate",
          value_parser = value_parser!(u64).range(0..=10_000))]
    pub delay: u64,
    /// Seed of the faults' random choices (default: from the clock)
    #[arg(long)]
    pub seed: Option<u64>,
}

impl FaultArgs {
    pub(super) fn any(&self) -> bool {
        self.drop_ppm + self.corrupt_ppm + self.duplicate_ppm + self.reorder_ppm > 0
            || self.rate.is_some()
            || self.delay > 0
    }
}

/// How long a reordered frame is held back.
const REORDER_BY: Duration = Duration::from_millis(10);

/// The longest an outgoing frame may queue behind the rate limit before it is dropped, as a
/// router's queue would.
const QUEUE: Duration = Duration::from_millis(100);

/// Frames held back in one direction, and its rate limit: a token bucket for what we read, a
/// queue for what we send.
pub(super) struct Direction {
    pub(super) held: VecDeque<(Instant, Vec<u8>)>,
    pub(super) tokens: f64,
    refilled: Instant,
    /// When the outgoing queue has drained.
    busy_until: Instant,
}

impl Direction {
    pub(super) fn new() -> Self {
        Direction {
            held: VecDeque::new(),
            tokens: 0.0,
            refilled: Instant::ZERO,
            busy_until: Instant::ZERO,
        }
    }

    /// Queue an outgoing `frame` behind the rate limit: `Some` if it may go now; otherwise it
    /// is held until its turn, or dropped if that is more than [`QUEUE`] away.
    ///
    /// The frame is always taken: a `transmit()` that returns `None` would make smoltcp 0.14
    /// lose a fast retransmission for good (it clears its pending flag and idles the
    /// retransmission timer before the device takes the segment), stalling the transfer until
    /// an idle timeout.
    pub(super) fn shape(
        &mut self,
        rate: Option<u64>,
        frame: Vec<u8>,
        now: Instant,
    ) -> Option<Vec<u8>> {
        let Some(rate) = rate else {
            return Some(frame);
        };
        let start = self.busy_until.max(now);
        if start > now + QUEUE {
            return None;
        }
        let micros = (frame.len() as f64 / rate as f64 * 1e6).ceil() as u64;
        self.busy_until = start + Duration::from_micros(micros);
        if start <= now {
            Some(frame)
        } else {
            self.held.push_back((start, frame));
            None
        }
    }

    /// A held frame that is due.
    pub(super) fn due(&mut self, now: Instant) -> Option<Vec<u8>> {
        let at = self.held.iter().position(|(t, _)| *t <= now)?;
        self.held.remove(at).map(|(_, f)| f)
    }

    /// Refill the bucket; whether a frame may pass now.
    pub(super) fn allowed(&mut self, rate: Option<u64>, mtu: usize, now: Instant) -> bool {
        let Some(rate) = rate else { return true };
        let burst = (rate as f64 / 50.0).max(2.0 * mtu as f64);
        if self.refilled == Instant::ZERO {
            self.tokens = burst;
        } else if now > self.refilled {
            let secs = (now - self.refilled).total_micros() as f64 / 1e6;
            self.tokens = (self.tokens + rate as f64 * secs).min(burst);
        }
        self.refilled = now;
        self.tokens > 0.0
    }

    /// When this direction next has something to do: a held frame or a refilled bucket.
    pub(super) fn poll_at(&self, rate: Option<u64>) -> Option<Instant> {
        let held = self.held.iter().map(|(t, _)| *t).min();
        let refill = match rate {
            Some(rate) if self.tokens <= 0.0 => {
                let micros = (-self.tokens + 1.0) / rate as f64 * 1e6;
                Some(self.refilled + Duration::from_micros(micros.ceil() as u64))
            }
            _ => None,
        };
        earliest(held, refill)
    }
}

/// The fault model's state: the options, their RNG and what each direction holds.
pub(super) struct Faults {
    pub(super) args: FaultArgs,
    pub(super) rng: Rng,
    pub(super) rx: Direction,
    pub(super) tx: Direction,
}

impl Faults {
    /// Pass `frame` through the faults: `Some` to deliver it now; duplicates, reordered
    /// frames and, under `--delay`, every frame go to `held`, in the order they are due.
    pub(super) fn apply(
        args: &FaultArgs,
        rng: &mut Rng,
        held: &mut VecDeque<(Instant, Vec<u8>)>,
        mut frame: Vec<u8>,
        now: Instant,
    ) -> Option<Vec<u8>> {
        if rng.chance(args.drop_ppm) {
            return None;
        }
        // Past the Ethernet header, so the frame still reaches its receiver, whose checksum
        // must catch it.
        if rng.chance(args.corrupt_ppm) && frame.len() > 14 {
            let at = 14 + rng.below(frame.len() as u64 - 14) as usize;
            frame[at] ^= 1 << rng.below(8);
        }
        // Every frame is due `delay` from now: held frames leave in the order they came.
        let due = now + Duration::from_millis(args.delay);
        if rng.chance(args.duplicate_ppm) {
            held.push_back((due, frame.clone()));
        }
        if rng.chance(args.reorder_ppm) {
            held.push_back((due + REORDER_BY, frame));
            return None;
        }
        if args.delay > 0 {
            held.push_back((due, frame));
            return None;
        }
        Some(frame)
    }
}
