//! A pool of four against hostile peers, on the simulated wire: each attack asserts what the
//! legitimate client still gets and how long an attacker may hold a slot. The README's table
//! comes from the same scenarios (`cargo run --release -p halfclose-tools --bin attacks`).

use halfclose::sim::{self, Link, Wire, percent};
use halfclose::{Error, Phase, Timeouts};
use halfclose_tools::attacks::{Attack, Defences, Outcome, linger_then_busy, run, single};
use halfclose_tools::random_bytes;
use smoltcp::time::{Duration, Instant};

const TEN_MINUTES: Duration = Duration::from_secs(600);
/// The simulated LAN: 1 ms each way.
const LAN: Duration = Duration::from_millis(1);

fn attacked(attack: Attack, defences: Defences) -> Outcome {
    let o = run(attack, defences, 1, TEN_MINUTES, LAN);
    eprintln!(
        "{} ({defences:?}): {} of {} served, attacker holds: longest {}, mean {}",
        attack.describe(),
        o.served,
        o.attempts,
        o.longest_hold(),
        o.mean_hold()
    );
    o
}

#[test]
fn a_legitimate_client_gets_through_10_forged_syns_a_second() {
    let o = attacked(Attack::ForgedSyns(10), Defences::On);
    assert!(o.attempts >= 590, "{}", o.attempts);
    assert!(o.served_percent() >= 99.0, "{:?}", o.failures);
    assert!(
        o.longest_hold() <= Duration::from_secs(10),
        "handshake limit"
    );
    // Without the defences the flood takes the pool.
    let o = attacked(Attack::ForgedSyns(10), Defences::Off);
    assert!(o.served_percent() < 10.0);
}

#[test]
fn a_legitimate_client_gets_through_100_forged_syns_a_second() {
    let o = attacked(Attack::ForgedSyns(100), Defences::On);
    assert!(o.attempts >= 590, "{}", o.attempts);
    assert!(o.served_percent() >= 90.0, "{:?}", o.failures);
}

/// A reader that takes a byte a minute moves something before every idle limit; the rate floor
/// cuts it at the end of its first window. Alone, it never fills the pool, so nothing but the
/// floor is at work here.
#[test]
fn a_reader_of_one_byte_a_minute_is_cut_within_five_minutes() {
    let o = attacked(
        Attack::SlowReaders {
            clients: 1,
            every: 60,
        },
        Defences::On,
    );
    assert!(o.attacker_holds.len() >= 2, "it was cut and came back");
    assert!(o.longest_hold() <= Duration::from_secs(300));
    assert!(
        o.server_errors.iter().all(|e| matches!(
            e,
            Error::TimedOut {
                phase: Phase::Transfer,
                ..
            }
        )),
        "{:?}",
        o.server_errors
    );
    assert_eq!(o.served, o.attempts, "{:?}", o.failures);
    // Without the floor it holds its slot for the whole run.
    let o = attacked(
        Attack::SlowReaders {
            clients: 1,
            every: 60,
        },
        Defences::Off,
    );
    assert!(o.longest_hold() >= Duration::from_secs(590));
}

/// The rate floor (64 B/s per 120 s window) leaves a real slow link alone: 1 MiB at 1000 B/s.
#[test]
fn a_1_kb_per_second_link_still_completes_a_1_mb_file() {
    let mut link = Link::clean(576);
    link.rate = Some(1000);
    link.latency = Duration::from_millis(20);
    let file = random_bytes(1 << 20, 21);
    let mut sink = vec![0u8; file.len()];
    let mut buffers = vec![0u8; 4 * 8192];
    let mut wire = Box::new(Wire::<1500, 16>::new(21, link, link));
    let setup = sim::Setup {
        deadline: Instant::from_secs(4 * 3600),
        ..sim::Setup::new(Timeouts::DEFAULT)
    };
    let outcome = sim::transfer(&mut wire, &file, &mut sink, &mut buffers, setup);
    assert!(outcome.delivered(), "{outcome:?}");
    assert!(sink == file);
    let took = outcome.end - Instant::ZERO;
    eprintln!("1 MiB at 1000 B/s: {took}");
    assert!(
        took > Duration::from_secs(1000),
        "the link really is that slow"
    );
}

/// A full pool takes back the longest-stalled slot after `stall`: clients that connect and never
/// read no longer hold it for the whole idle limit. The legitimate client, always moving, is
/// never the one taken: its failures are all refusals while the pool is full.
#[test]
fn clients_that_never_read_lose_their_slots_to_a_new_client_after_the_stall_limit() {
    let o = attacked(Attack::NeverRead, Defences::On);
    assert!(o.longest_hold() <= Duration::from_secs(12));
    assert!(o.served_percent() >= 50.0);
    assert!(
        o.failures.iter().all(|f| f == "refused"),
        "{:?}",
        o.failures
    );
    let off = attacked(Attack::NeverRead, Defences::Off);
    assert!(off.longest_hold() >= Duration::from_secs(119));
    assert!(off.served * 5 < o.served);
}

#[test]
fn a_wrong_reply_trickled_a_byte_at_a_time_fails_at_its_first_byte() {
    let o = attacked(
        Attack::TrickledReply {
            clients: 4,
            wrong: true,
        },
        Defences::On,
    );
    assert!(o.longest_hold() < Duration::from_secs(1));
    assert!(!o.server_errors.is_empty());
    for e in &o.server_errors {
        match e {
            Error::WrongReply { reply, bytes } => {
                assert_eq!(reply.kept(), b"X", "what was received is kept");
                assert_eq!(*bytes, halfclose_tools::attacks::FILE_LEN as u64);
            }
            e => panic!("{e:?}"),
        }
    }
    assert_eq!(o.served, o.attempts);
}

/// Ten right bytes, one every 100 s, each inside the idle limit: the reply phase as a whole is
/// bounded (120 s from the client's acknowledgement of our FIN). Four of them fill the pool, and
/// a full pool takes a slot back once it has stalled for `stall`.
#[test]
fn a_right_reply_trickled_a_byte_at_a_time_holds_a_slot_at_most_the_reply_limit() {
    let trickle = |clients| Attack::TrickledReply {
        clients,
        wrong: false,
    };
    let one = attacked(trickle(1), Defences::On);
    assert!(one.longest_hold() <= Duration::from_secs(121));
    assert!(
        one.longest_hold() >= Duration::from_secs(100),
        "it got to send a byte or two"
    );
    assert_eq!(one.served, one.attempts);
    let four = attacked(trickle(4), Defences::On);
    assert!(four.longest_hold() <= Duration::from_secs(12));
    assert!(four.served_percent() >= 50.0);
}

/// The client's FIN is acknowledged, but that ACK is lost. A pool of two lingers in TIME-WAIT
/// while its other slot listens, re-acknowledges the retransmitted FIN, and the client ends
/// well; a pool of one listens again at once (as before), and the client gets a reset after a
/// complete transfer.
#[test]
fn a_pool_of_two_lingers_to_reacknowledge_a_retransmitted_fin() {
    let link = Link::clean(1500);
    let two = single::<2>(Timeouts::DEFAULT, link, 1, true);
    assert!(matches!(two.server, Some(Ok(_))), "{two:?}");
    assert!(matches!(two.client, Some(Ok(_))), "{two:?}");
    // Not by chance: without the linger the pool of two fails the same way.
    let no_linger = Timeouts {
        linger: Duration::ZERO,
        ..Timeouts::DEFAULT
    };
    let two = single::<2>(no_linger, link, 1, true);
    assert!(
        matches!(
            two.client,
            Some(Err(Error::Reset {
                phase: Phase::Reply,
                ..
            }))
        ),
        "{two:?}"
    );
    let one = single::<1>(Timeouts::DEFAULT, link, 1, true);
    assert!(matches!(one.server, Some(Ok(_))), "{one:?}");
    assert!(
        matches!(
            one.client,
            Some(Err(Error::Reset {
                phase: Phase::Reply,
                ..
            }))
        ),
        "{one:?}"
    );
}

/// A lingering slot is the first a pool takes back when nothing else listens: a client that
/// arrives while the other slot is held is served, not refused.
#[test]
fn a_lingering_slot_gives_way_when_the_rest_of_the_pool_is_busy() {
    let [a, b] = linger_then_busy(true);
    assert!(matches!(a, Some(Ok(_))), "{a:?}");
    assert!(matches!(b, Some(Ok(_))), "{b:?}");
    let [a, b] = linger_then_busy(false);
    assert!(matches!(a, Some(Ok(_))), "{a:?}");
    assert_eq!(
        b,
        Some(Err(Error::Refused)),
        "without reclaim the linger refuses it"
    );
}

/// The default linger, measured: at 10 % loss (5 ms each way) clients of a pool of two see a
/// reset after a complete transfer about one time in ten without it, almost never with it.
#[test]
fn the_default_linger_spares_clients_a_reset_under_loss() {
    let mut link = Link::clean(1500);
    link.loss_ppm = percent(10);
    link.latency = Duration::from_millis(5);
    let resets = |linger| {
        (0..200)
            .filter(|&seed| {
                let t = Timeouts {
                    linger,
                    ..Timeouts::DEFAULT
                };
                matches!(
                    single::<2>(t, link, seed, false).client,
                    Some(Err(Error::Reset {
                        phase: Phase::Reply,
                        ..
                    }))
                )
            })
            .count()
    };
    let without = resets(Duration::ZERO);
    let with = resets(Timeouts::DEFAULT.linger);
    eprintln!("reset after a complete transfer, of 200: {without} without linger, {with} with");
    assert!(without >= 10, "{without}");
    assert!(with <= 1, "{with}");
}

/// A listen backlog in front of the pool costs a legitimate client nothing under a SYN flood:
/// the pool's reclaim keeps a socket listening, so its SYN is let through at once, as without.
#[test]
fn a_backlog_costs_a_legitimate_client_nothing_under_a_syn_flood() {
    for rate in [10, 100] {
        let on = attacked(Attack::ForgedSyns(rate), Defences::On);
        let queued = attacked(Attack::ForgedSyns(rate), Defences::Backlog);
        assert!(queued.served >= on.served, "{rate}/s: {queued:?}");
        let (on, queued) = (on.connect_times().unwrap(), queued.connect_times().unwrap());
        assert!(
            queued.1 <= on.1,
            "{rate}/s: longest connect {} against {}",
            queued.1,
            on.1
        );
    }
}

/// Behind a backlog, a client that finds the pool held by clients that never read waits for
/// the stall limit to free a slot, instead of being refused.
#[test]
fn behind_a_backlog_a_client_waits_out_stalled_readers_instead_of_being_refused() {
    let on = attacked(Attack::NeverRead, Defences::On);
    assert!(
        on.failures.iter().any(|f| f == "refused"),
        "{:?}",
        on.failures
    );
    let queued = attacked(Attack::NeverRead, Defences::Backlog);
    assert!(
        !queued.failures.iter().any(|f| f == "refused"),
        "{:?}",
        queued.failures
    );
    assert!(queued.served_percent() >= 99.0, "{:?}", queued.failures);
    let (_, longest) = queued.connect_times().unwrap();
    assert!(
        longest <= Duration::from_secs(11),
        "longest connect {longest}"
    );
}
