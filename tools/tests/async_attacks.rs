//! The hostile peers of `tools/tests/attacks.rs` ([`Attack`]) against the async server,
//! `halfclose::asynch::serve`: behind `asynch::embassy::accept` on one embassy-net socket, in
//! memory (`halfclose_tools::attacks::embassy`), each defence of the async path seen from the
//! wire; and on tokio over the kernel's loopback where they apply
//! (`halfclose_tools::attacks::tokio`). The runs take real time (embassy-net reads
//! embassy-time's clock), so the limits are tenths of a second and the bounds leave room for a
//! loaded machine.

use std::time::Duration;

use halfclose::sim::Side;
use halfclose::{Error, Phase, Timeouts};
use halfclose_tools::attacks::Attack;
use halfclose_tools::attacks::embassy::{Fault, Run, Scenario, connect_alone, file, run};
use halfclose_tools::attacks::tokio;
use smoltcp::time::Duration as SmolDuration;

fn ms(ms: u64) -> SmolDuration {
    SmolDuration::from_millis(ms)
}

/// The defaults, with the TAP example's linger: 100 ms lets the ACK of the client's FIN leave
/// (smoltcp may delay it by 10 ms) before the socket listens again.
const QUICK: Timeouts = Timeouts {
    linger: SmolDuration::from_millis(100),
    ..Timeouts::DEFAULT
};

fn show(name: &str, run: &Run) {
    eprintln!(
        "{name}: client {:?} after {} attempts, done at {:?}; server: {:?}",
        run.client, run.attempts, run.client_done, run.served
    );
}

/// The legitimate client got the whole file and replied, and the server took its reply; both
/// ends on embassy-net tell acknowledgements.
fn assert_served(run: &Run, len: usize) {
    let report = assert_served_by(run, len);
    assert!(report.fin_acked_at.is_some());
    assert!(run.client.as_ref().unwrap().as_ref().unwrap().acknowledged);
}

/// The same on any transport; returns the server's report.
fn assert_served_by(run: &Run, len: usize) -> &halfclose::asynch::ServeReport {
    let client = run.client.as_ref().expect("the client finished");
    let fetched = client.as_ref().unwrap_or_else(|e| panic!("client: {e}"));
    assert_eq!(fetched.bytes, len as u64);
    assert!(run.received == file(len), "the copy differs");
    let served = run
        .legit()
        .expect("the server took the client's connection");
    let report = served
        .result
        .as_ref()
        .unwrap_or_else(|e| panic!("server: {e}"));
    assert!(report.reply.is_thank_you());
    assert_eq!(report.bytes, len as u64);
    report
}

#[test]
fn an_embassy_server_serves_a_file_and_takes_the_reply() {
    let run = run(Scenario::new(QUICK));
    show("clean", &run);
    assert_served(&run, halfclose_tools::attacks::FILE_LEN);
    assert_eq!(run.attempts, 1);
    assert!(run.trace.iter().all(|t| !t.segment.rst), "no reset");
}

/// Listening has no limit, but `accept` looks at the socket in slices of half the handshake
/// limit: a server that waits a second for its first client sleeps a handful of times, it does
/// not spin.
#[test]
fn an_embassy_server_waiting_for_its_first_client_sleeps_rather_than_spins() {
    let run = run(Scenario {
        client_from: Duration::from_secs(1),
        ..Scenario::new(QUICK.with_handshake(Duration::from_millis(400)))
    });
    show("a second of waiting", &run);
    assert_served(&run, halfclose_tools::attacks::FILE_LEN);
    // 1 s in slices of 200 ms: 5 sleeps, and one more around the client's handshake.
    assert!(run.accept_sleeps >= 5, "{} sleeps", run.accept_sleeps);
    assert!(run.accept_sleeps <= 10, "{} sleeps", run.accept_sleeps);
}

/// One forged SYN holds the server's only socket in SYN-RECEIVED; `accept` aborts it after the
/// handshake limit (at most 1.5 limits: it looks in slices of half the limit) and listens
/// again, and the client that was refused meanwhile gets in.
#[test]
fn an_embassy_server_drops_a_forged_syn_after_the_handshake_limit_and_serves_the_next_client() {
    let handshake = 400;
    let run = run(Scenario {
        // One SYN in the run: the next would come 60 s later.
        attack: Attack::ForgedSyns(1),
        second: Duration::from_secs(60),
        client_from: Duration::from_millis(50),
        ..Scenario::new(QUICK.with_handshake(Duration::from_millis(handshake)))
    });
    show("forged SYN", &run);
    assert_served(&run, halfclose_tools::attacks::FILE_LEN);
    assert!(run.attempts > 1, "refused while the SYN held the socket");
    let syn = run
        .trace
        .iter()
        .find(|t| t.towards == Side::Server && t.segment.syn && t.segment.src.port == 1024)
        .expect("the forged SYN");
    let rst = run
        .trace
        .iter()
        .find(|t| t.towards == Side::Client && t.segment.rst && t.segment.dst.port == 1024)
        .expect("the server's abort of the half-open connection");
    let held = rst.at - syn.at;
    assert!(
        held >= Duration::from_millis(handshake),
        "aborted after {held:?}, before the limit"
    );
    assert!(
        held <= Duration::from_millis(handshake * 3 / 2 + 250),
        "aborted only after {held:?}"
    );
}

/// A reader that takes a byte every 100 ms completes each write well inside the idle limit
/// (500 ms); the rate floor (5000 bytes per window) cuts it at the end of its second window
/// (the first is all buffer filling), and the client it kept out is served next. Without the
/// floor it keeps the socket, and the client is refused for as long as it tries.
#[test]
fn an_embassy_server_cuts_a_reader_under_the_rate_floor() {
    let floor = Timeouts {
        idle: ms(500),
        min_rate: 10_000,
        ..QUICK
    };
    let slow_reader = Scenario {
        attack: Attack::SlowReaders {
            clients: 1,
            every: 1,
        },
        second: Duration::from_millis(100),
        file_len: 200_000,
        client_from: Duration::from_millis(50),
        ..Scenario::new(floor)
    };
    let cut = run(slow_reader);
    show("slow reader", &cut);
    assert_served(&cut, 200_000);
    let reader = cut.attackers().next().expect("the reader's connection");
    match reader.result {
        Err(Error::TimedOut {
            phase: Phase::Transfer,
            bytes,
        }) => assert!(bytes < 20_000, "{bytes} bytes"),
        ref other => panic!("{other:?}"),
    }
    let held = reader.ended - reader.accepted;
    assert!(held >= Duration::from_millis(900), "cut after {held:?}");
    assert!(
        held <= Duration::from_millis(2000),
        "cut only after {held:?}"
    );

    let no_floor = run(Scenario {
        timeouts: Timeouts {
            min_rate: 0,
            ..floor
        },
        client_until: Duration::from_secs(3),
        ..slow_reader
    });
    show("slow reader, no floor", &no_floor);
    assert!(matches!(no_floor.client, Some(Err(Error::Refused))));
    assert_eq!(no_floor.served.len(), 0, "{:?}", no_floor.served);
}

/// Clients that connect and never read: each write of the one that holds the socket waits for
/// room that never comes, and the idle limit cuts it; the legitimate client gets in between the
/// attackers' reconnections.
#[test]
fn an_embassy_server_cuts_a_client_that_never_reads_at_the_idle_limit() {
    let idle = 300;
    let run = run(Scenario {
        attack: Attack::NeverRead,
        second: Duration::from_millis(100),
        file_len: 100_000,
        client_from: Duration::from_millis(50),
        ..Scenario::new(QUICK.with_idle(Duration::from_millis(idle)))
    });
    show("never read", &run);
    assert_served(&run, 100_000);
    let first = run.attackers().next().expect("an attacker's connection");
    assert!(
        matches!(
            first.result,
            Err(Error::TimedOut {
                phase: Phase::Transfer,
                ..
            })
        ),
        "{:?}",
        first.result
    );
    let held = first.ended - first.accepted;
    assert!(held >= Duration::from_millis(idle), "cut after {held:?}");
    assert!(
        held <= Duration::from_millis(idle + 500),
        "cut only after {held:?}"
    );
}

/// A reply wrong from its first byte, one byte per 100 (scaled) seconds: the server ends at
/// that byte.
#[test]
fn an_embassy_server_ends_a_trickled_wrong_reply_at_its_first_byte() {
    let run = run(Scenario {
        attack: Attack::TrickledReply {
            clients: 1,
            wrong: true,
        },
        second: Duration::from_millis(20),
        client_from: Duration::from_millis(50),
        ..Scenario::new(QUICK)
    });
    show("wrong reply", &run);
    assert_served(&run, halfclose_tools::attacks::FILE_LEN);
    let trickler = run.attackers().next().expect("the attacker's connection");
    match &trickler.result {
        Err(Error::WrongReply { reply, bytes }) => {
            assert_eq!(reply.kept(), b"X");
            assert_eq!(*bytes, halfclose_tools::attacks::FILE_LEN as u64);
        }
        other => panic!("{other:?}"),
    }
    // Its second byte would have come 2 s after the first.
    assert!(trickler.ended - trickler.accepted < Duration::from_millis(1500));
}

/// The server's ACK of the client's FIN is lost; the client retransmits its FIN (after
/// smoltcp's 1 s RTO). A server that lingers (2 s here) still holds its socket in TIME-WAIT
/// and acknowledges it again; one that does not has listened again, and its stack answers the
/// FIN with a reset after a complete transfer.
#[test]
fn an_embassy_server_lingers_to_reacknowledge_a_retransmitted_fin() {
    let lingering = Scenario {
        fault: Fault::LoseLastAck,
        ..Scenario::new(QUICK.with_linger(Duration::from_secs(2)))
    };
    let run_lingering = run(lingering);
    show("lost last ACK", &run_lingering);
    assert_served(&run_lingering, halfclose_tools::attacks::FILE_LEN);
    let port = run_lingering.client_port;
    let fins: Vec<_> = run_lingering
        .trace
        .iter()
        .filter(|t| t.towards == Side::Server && t.segment.fin && Some(t.segment.src.port) == port)
        .collect();
    assert_eq!(fins.len(), 2, "the FIN and its retransmission");
    let dropped: Vec<_> = run_lingering.trace.iter().filter(|t| t.dropped).collect();
    assert_eq!(dropped.len(), 1, "{dropped:?}");
    assert!(
        run_lingering.trace.iter().any(|t| t.at > fins[1].at
            && t.towards == Side::Client
            && !t.dropped
            && t.segment.ack == dropped[0].segment.ack),
        "the retransmitted FIN is acknowledged again"
    );
    assert!(
        run_lingering.trace.iter().all(|t| !t.segment.rst),
        "no reset"
    );
    let served = run_lingering.legit().unwrap();
    let report = served.result.as_ref().unwrap();
    assert!(
        served.ended - served.accepted >= Duration::from_secs(2),
        "serve returned {:?} after the client's FIN",
        served.ended - served.accepted
    );
    assert!(report.finished_at > report.started_at);

    let no_linger = run(Scenario {
        timeouts: QUICK.with_linger(Duration::ZERO),
        ..lingering
    });
    show("lost last ACK, no linger", &no_linger);
    assert!(
        no_linger
            .trace
            .iter()
            .any(|t| t.towards == Side::Client && t.segment.rst),
        "the retransmitted FIN is answered with a reset"
    );
}

/// The client resets the connection when the file ends, and the server never sees its FIN
/// acknowledged: `close_write` (FIN-WAIT-1, then CLOSED) is a reset in the transfer phase,
/// never a half-close that went well.
#[test]
fn an_embassy_server_whose_fin_is_answered_by_a_reset_fails_in_the_transfer_phase() {
    let run = run(Scenario {
        fault: Fault::LoseAcksOfTheServersFin,
        client_resets_at_eof: true,
        ..Scenario::new(QUICK)
    });
    show("reset for our FIN", &run);
    let len = halfclose_tools::attacks::FILE_LEN;
    assert_eq!(run.received.len(), len);
    let served = run
        .legit()
        .expect("the server took the client's connection");
    assert_eq!(
        served.result,
        Err(Error::Reset {
            phase: Phase::Transfer,
            bytes: len as u64
        })
    );
}

// --- On tokio, over the kernel's loopback ------------------------------------------------------

#[test]
fn a_tokio_server_serves_a_file_and_takes_the_reply() {
    let run = tokio::run(Scenario {
        file_len: 300_000,
        ..Scenario::new(QUICK)
    });
    show("tokio, clean", &run);
    let report = assert_served_by(&run, 300_000);
    assert_eq!(report.fin_acked_at, None, "the kernel cannot tell");
    assert!(!run.client.unwrap().unwrap().acknowledged);
}

/// Clients that connect and never read: once the kernel's buffers are full, a write waits, and
/// the idle limit (300 ms, counted on a clock that started 500 ms before the attack) cuts it.
#[test]
fn a_tokio_server_cuts_a_client_that_never_reads_at_the_idle_limit() {
    let idle = 300;
    let len = 16 << 20;
    let run = tokio::run(Scenario {
        attack: Attack::NeverRead,
        attack_from: Duration::from_millis(500),
        client: false,
        file_len: len,
        ..Scenario::new(Timeouts {
            min_rate: 0,
            ..QUICK.with_idle(Duration::from_millis(idle))
        })
    });
    show("tokio, never read", &run);
    let first = &run.served[0];
    match first.result {
        Err(Error::TimedOut {
            phase: Phase::Transfer,
            bytes,
        }) => assert!(bytes < len as u64, "{bytes} bytes"),
        ref other => panic!("{other:?}"),
    }
    let held = first.ended - first.accepted;
    assert!(held >= Duration::from_millis(idle), "cut after {held:?}");
    assert!(
        held <= Duration::from_millis(idle + 700),
        "cut only after {held:?}"
    );
}

/// The right reply, a byte a (scaled) 100 s: each byte comes inside the idle limit, and the
/// reply phase as a whole (1.5 s) ends it.
#[test]
fn a_tokio_server_bounds_a_right_reply_trickled_a_byte_at_a_time_by_the_reply_limit() {
    let reply = 1500;
    let run = tokio::run(Scenario {
        attack: Attack::TrickledReply {
            clients: 1,
            wrong: false,
        },
        second: Duration::from_millis(10),
        client: false,
        ..Scenario::new(Timeouts {
            reply: ms(reply),
            ..QUICK
        })
    });
    show("tokio, trickled reply", &run);
    let first = &run.served[0];
    assert_eq!(
        first.result,
        Err(Error::TimedOut {
            phase: Phase::Reply,
            bytes: halfclose_tools::attacks::FILE_LEN as u64
        })
    );
    let held = first.ended - first.accepted;
    assert!(held >= Duration::from_millis(reply), "cut after {held:?}");
    assert!(
        held <= Duration::from_millis(reply + 700),
        "cut only after {held:?}"
    );
}

/// `connect` refuses a socket whose receive buffer would scale the window before anything is
/// sent, and takes one of exactly the largest unscaled size (its SYN leaves; nobody answers
/// here, so the connect limit ends it).
#[test]
fn an_embassy_client_refuses_a_receive_buffer_that_would_scale_the_window_before_its_syn() {
    let limit = QUICK.with_connect(Duration::from_millis(200));
    let (result, trace) = connect_alone(256 * 1024, limit);
    assert_eq!(
        result,
        Err(Error::ReceiveBufferTooLarge {
            capacity: 256 * 1024
        })
    );
    assert!(trace.is_empty(), "{trace:?}");
    let largest = halfclose::asynch::embassy::MAX_UNSCALED_RX;
    let (result, trace) = connect_alone(largest, limit);
    assert_eq!(
        result,
        Err(Error::TimedOut {
            phase: Phase::Connect,
            bytes: 0
        })
    );
    assert!(trace.iter().any(|t| t.segment.syn), "{trace:?}");
}
