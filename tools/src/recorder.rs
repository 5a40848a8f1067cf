//! A simulated run recorded for its pictures: a [`sim::Watch`] that keeps every segment with
//! what the wire did with it (`soak --seed N --svg PATH --graph PATH`).

use std::collections::HashMap;

use halfclose::segment::Segment;
use halfclose::sim::{self, Side};
use smoltcp::phy::Medium;
use smoltcp::socket::tcp::State;
use smoltcp::time::Instant;

use crate::picture::{self, End, Exchange};

/// Records a [`sim::transfer_watched`] run as an [`Exchange`].
#[derive(Debug)]
pub struct Recorder {
    exchange: Exchange,
    /// The packet number of each packet on the wire, by the side it travels to and the wire's
    /// number for it.
    on_wire: HashMap<(End, u64), usize>,
}

fn end(side: Side) -> End {
    match side {
        Side::Server => End::Server,
        Side::Client => End::Client,
    }
}

impl Recorder {
    /// An empty recording of a run called `title`.
    pub fn new(title: impl Into<String>) -> Recorder {
        Recorder {
            exchange: Exchange::new(title, "server", "client"),
            on_wire: HashMap::new(),
        }
    }

    /// The run as recorded.
    pub fn exchange(&self) -> &Exchange {
        &self.exchange
    }
}

impl sim::Watch for Recorder {
    fn sent(&mut self, now: Instant, from: Side, packet: &[u8], fate: sim::Fate) {
        // Only TCP travels in a transfer; anything else would not be part of the picture.
        let Some(segment) = Segment::parse(Medium::Ip, packet) else {
            return;
        };
        let from = end(from);
        if self.exchange.packets.is_empty() {
            let (server, client) = match from {
                End::Server => (segment.src, segment.dst),
                End::Client => (segment.dst, segment.src),
            };
            self.exchange.ends = (format!("server {server}"), format!("client {client}"));
        }
        let n = self
            .exchange
            .sent(now, from, segment, picture::window_scale(packet));
        let towards = from.other();
        match fate {
            sim::Fate::Queued {
                id,
                corrupted,
                copy,
                ..
            } => {
                self.on_wire.insert((towards, id), n);
                if corrupted {
                    self.exchange.dropped(n, picture::Fate::Corrupted);
                }
                let copied = copy.and_then(|(id, _)| Some((id, self.exchange.copied(n)?)));
                if let Some((id, copy)) = copied {
                    self.on_wire.insert((towards, id), copy);
                }
            }
            sim::Fate::Lost => self.exchange.dropped(n, picture::Fate::Lost),
            sim::Fate::Overflowed => self.exchange.dropped(n, picture::Fate::Overflowed),
            sim::Fate::Cut => self.exchange.dropped(n, picture::Fate::Cut),
        }
    }

    fn sent_states(&mut self, _: Instant, _: Side, server: State, client: State) {
        self.exchange.sent_states((server, client));
    }

    fn received(&mut self, now: Instant, by: Side, id: u64, server: State, client: State) {
        if let Some(n) = self.on_wire.remove(&(end(by), id)) {
            self.exchange.arrived(n, now, Some((server, client)));
        }
    }
}
