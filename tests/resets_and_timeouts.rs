//! Resets in each phase, each phase's timeout, the phase an error names and the bytes it keeps:
//! raw smoltcp sockets play the peer that resets, vanishes or stops reading, on the two-host
//! wire.

mod common;

use std::task::Poll;

use common::pair::{
    SimNet, black_hole, our_client_against, our_server_against, our_server_watched_against, sim,
    wire,
};
use common::{LEN, LONG, PORT, TIMEOUTS, random_bytes, read_all, socket};
use halfclose::server::Sender;
use halfclose::sim::{Link, Side};
use halfclose::{Error, Phase, REPLY, client, server};
use smoltcp::socket::tcp;
use smoltcp::time::{Duration, Instant};

/// The error of a run that timed out in `phase` with `bytes` counted.
fn timed_out(phase: Phase, bytes: u64) -> Error {
    Error::TimedOut { phase, bytes }
}

/// The error of a run that was reset in `phase` with `bytes` counted.
fn reset(phase: Phase, bytes: u64) -> Error {
    Error::Reset { phase, bytes }
}

/// The bytes `e` counted, which must be a timeout in `phase`.
fn timed_out_in(phase: Phase, e: Error) -> u64 {
    match e {
        Error::TimedOut { phase: p, bytes } if p == phase => bytes,
        e => panic!("{e:?}"),
    }
}

/// The bytes `e` counted, which must be a reset in `phase`.
fn reset_in(phase: Phase, e: Error) -> u64 {
    match e {
        Error::Reset { phase: p, bytes } if p == phase => bytes,
        e => panic!("{e:?}"),
    }
}

/// The client resets: the server names the phase it was waiting in.
mod server_sees_a_reset {
    use super::*;

    #[test]
    fn client_resets_mid_transfer_server_reports_reset_with_bytes_so_far() {
        let file = random_bytes(LONG, 2);
        let mut got = Vec::new();
        let r = our_server_against(&file, TIMEOUTS, &mut |sock, _, _| {
            read_all(sock, &mut got);
            if got.len() >= 20_000 && sock.is_active() {
                sock.abort();
            }
            None
        });
        let bytes = reset_in(Phase::Transfer, r.unwrap_err());
        assert!((20_000..LONG as u64).contains(&bytes), "{bytes}");
    }

    /// The client has every byte but the last (which travels with our FIN), and from then on its
    /// packets are lost; then it resets: the server was still waiting for the transfer to be
    /// acknowledged (FIN-WAIT-1).
    #[test]
    fn a_reset_before_our_fin_is_acknowledged_is_a_reset_in_the_transfer_phase() {
        let file = random_bytes(LEN, 5);
        let mut got = Vec::new();
        let mut all_at = None;
        let r = our_server_against(&file, TIMEOUTS, &mut |sock, now, wire| {
            read_all(sock, &mut got);
            // The ACK of all but the last byte has just left; everything after it is lost.
            if got.len() >= LEN - 1 && all_at.is_none() {
                all_at = Some(now);
                wire.set_link(Side::Server, black_hole());
            }
            let abort_at = all_at? + Duration::from_millis(200);
            if now >= abort_at && sock.is_active() {
                wire.set_link(Side::Server, Link::clean(1500));
                sock.abort();
            }
            Some(abort_at)
        });
        let bytes = reset_in(Phase::Transfer, r.unwrap_err());
        assert!(bytes >= LEN as u64 - 1, "{bytes}");
    }

    /// The client reads the file and our FIN (its stack acknowledges the FIN at once: we are in
    /// FIN-WAIT-2), then aborts a second later instead of replying.
    #[test]
    fn a_reset_in_fin_wait_2_is_a_reset_in_the_reply_phase() {
        let file = random_bytes(LEN, 4);
        let mut got = Vec::new();
        let mut eof = None;
        let r = our_server_against(&file, TIMEOUTS, &mut |sock, now, _| {
            if read_all(sock, &mut got) && eof.is_none() {
                eof = Some(now);
            }
            let abort_at = eof? + Duration::from_secs(1);
            if now >= abort_at && sock.is_active() {
                sock.abort();
            }
            Some(abort_at)
        });
        assert_eq!(r.unwrap_err(), reset(Phase::Reply, LEN as u64));
    }

    /// As `nc -N`, and then our FIN (with the file's last byte) is lost and the client resets
    /// where it would acknowledge it (LAST-ACK). smoltcp shows a reset in LAST-ACK as CLOSED with the
    /// client's FIN read, as it shows the acknowledgement of our FIN; what tells them apart is the
    /// last byte, still unacknowledged: the exchange is a reset, not done.
    #[test]
    fn a_reset_in_last_ack_before_the_last_byte_is_acknowledged_is_a_reset() {
        let file = random_bytes(LEN, 10);
        let mut got = Vec::new();
        let mut sent = false;
        let mut all_at = None;
        let r = our_server_against(&file, TIMEOUTS, &mut |sock, now, wire| {
            if !sent && sock.may_send() {
                sock.send_slice(REPLY).unwrap();
                sock.close();
                sent = true;
            }
            read_all(sock, &mut got);
            if got.len() >= LEN - 1 && all_at.is_none() {
                all_at = Some(now);
                wire.set_link(Side::Client, black_hole());
            }
            let abort_at = all_at? + Duration::from_millis(200);
            if now >= abort_at && sock.is_active() {
                sock.abort();
            }
            Some(abort_at)
        });
        match r.unwrap_err() {
            Error::Reset { bytes, .. } => assert_eq!(bytes, LEN as u64 - 1),
            e => panic!("{e:?}"),
        }
        assert!(got == file[..LEN - 1]);
    }

    /// An empty file: our FIN never reaches the client (everything towards it is lost once it is
    /// connected), it replies at once or not at all, then resets. With nothing queued, the phase
    /// the reset names depends on the reply alone.
    fn empty_file_reset_before_our_fin_arrives(reply_first: bool) -> Error {
        let mut connected_at = None;
        let r = our_server_against(&[], TIMEOUTS, &mut |sock, now, wire| {
            let just_connected = sock.state() == tcp::State::Established && connected_at.is_none();
            if just_connected {
                connected_at = Some(now);
                wire.set_link(Side::Client, black_hole());
            }
            if just_connected && reply_first {
                sock.send_slice(REPLY).unwrap();
            }
            let abort_at = connected_at? + Duration::from_millis(200);
            if now >= abort_at && sock.is_active() {
                sock.abort();
            }
            Some(abort_at)
        });
        r.unwrap_err()
    }

    /// Nothing of the file is outstanding, but neither our FIN's acknowledgement nor a reply came:
    /// the transfer had not ended.
    #[test]
    fn an_empty_file_reset_before_our_fin_or_a_reply_arrives_is_a_reset_in_the_transfer_phase() {
        assert_eq!(
            empty_file_reset_before_our_fin_arrives(false),
            reset(Phase::Transfer, 0)
        );
    }

    /// The whole (empty) file is out and the reply is in, only our FIN is unacknowledged: what was
    /// missing was the end of the reply phase.
    #[test]
    fn an_empty_file_reset_after_the_reply_but_before_our_fin_arrives_is_a_reset_in_the_reply_phase()
     {
        assert_eq!(
            empty_file_reset_before_our_fin_arrives(true),
            reset(Phase::Reply, 0)
        );
    }
}

/// The client goes silent or slow: the server gives up in the phase it was waiting in.
mod server_times_out {
    use super::*;

    #[test]
    fn client_vanishes_mid_transfer_server_times_out() {
        let file = random_bytes(LONG, 7);
        let mut got = Vec::new();
        let r = our_server_against(&file, TIMEOUTS, &mut |sock, _, wire| {
            read_all(sock, &mut got);
            if got.len() >= 30_000 {
                wire.cut(true);
            }
            None
        });
        let bytes = timed_out_in(Phase::Transfer, r.unwrap_err());
        assert!(bytes < LONG as u64);
    }

    /// A client that stops reading closes its window; smoltcp probes it with a backoff. A pause
    /// well inside the idle timeout is ridden out; one longer than it ends in a timeout, because a
    /// closed window moves nothing.
    fn pause_reading_for(pause: Duration) -> (Result<server::Report, Error>, Vec<u8>) {
        let file = random_bytes(LONG, 6);
        let mut got = Vec::new();
        let mut replied = false;
        let r = our_server_against(&file, TIMEOUTS, &mut |sock, now, _| {
            // Read the first 16 KB, then nothing (a zero window) until `pause`, then the rest.
            let paused = got.len() >= 16_000 && now < Instant::ZERO + pause;
            if !paused && read_all(sock, &mut got) && !replied {
                sock.send_slice(REPLY).unwrap();
                sock.close();
                replied = true;
            }
            None
        });
        assert!(got == file[..got.len()]);
        (r, got)
    }

    #[test]
    fn client_stops_reading_for_a_while_then_resumes_and_the_transfer_completes() {
        let (r, got) = pause_reading_for(Duration::from_secs(10));
        let report = r.unwrap();
        assert_eq!(report.bytes, LONG as u64);
        assert!(report.finished_at > Instant::from_secs(10));
        assert_eq!(got.len(), LONG);
    }

    #[test]
    fn client_stops_reading_longer_than_the_idle_timeout_and_the_server_gives_up() {
        let (r, _) = pause_reading_for(Duration::from_secs(90));
        let bytes = timed_out_in(Phase::Transfer, r.unwrap_err());
        assert!(bytes < LONG as u64);
    }

    /// Read up to `left` bytes of what has arrived into `got`.
    fn read_at_most(sock: &mut tcp::Socket, mut left: usize, got: &mut Vec<u8>) {
        while left > 0 {
            let read = sock.recv(|b| {
                let n = b.len().min(left);
                (n, b[..n].to_vec())
            });
            match read {
                Ok(bytes) if !bytes.is_empty() => {
                    left -= bytes.len();
                    got.extend(bytes);
                }
                _ => break,
            }
        }
    }

    /// The rate floor (64 B/s over each 30 s idle window here, so 1920 bytes a window): a client
    /// that reads 50 bytes a second moves something well inside every idle limit, but its
    /// acknowledgements fall under the floor once its receive buffer's first fill is behind it.
    #[test]
    fn a_client_reading_50_bytes_a_second_is_cut_off_by_the_rate_floor() {
        let file = random_bytes(LEN, 18);
        let mut got = Vec::new();
        let mut next_read = Instant::ZERO;
        let r = our_server_against(&file, TIMEOUTS, &mut |sock, now, _| {
            if now >= next_read {
                read_at_most(sock, 50, &mut got);
                next_read = now + Duration::from_secs(1);
            }
            Some(next_read)
        });
        let bytes = timed_out_in(Phase::Transfer, r.unwrap_err());
        assert!(bytes < LEN as u64, "{bytes}");
        assert!(got == file[..got.len()]);
    }

    /// As above, but the client never speaks again: the timeout names the transfer phase (and
    /// comes after the idle limit, not the shorter reply limit).
    #[test]
    fn a_client_that_never_acknowledges_our_fin_times_out_in_the_transfer_phase() {
        let file = random_bytes(LEN, 6);
        let mut got = Vec::new();
        let mut cut = false;
        let r = our_server_against(&file, TIMEOUTS, &mut |sock, _, wire| {
            read_all(sock, &mut got);
            if got.len() >= LEN - 1 && !cut {
                cut = true;
                wire.set_link(Side::Server, black_hole());
            }
            None
        });
        let bytes = timed_out_in(Phase::Transfer, r.unwrap_err());
        assert!(bytes >= LEN as u64 - 1, "{bytes}");
        assert!(got == file);
    }

    #[test]
    fn client_never_replies_server_times_out_in_the_reply_phase() {
        let file = random_bytes(LONG, 1);
        let mut got = Vec::new();
        let r = our_server_against(&file, TIMEOUTS, &mut |sock, _, _| {
            read_all(sock, &mut got);
            None
        });
        assert_eq!(r.unwrap_err(), timed_out(Phase::Reply, LONG as u64));
        assert!(got == file, "the client still got the whole file");
    }

    /// A client that sent its reply early has nothing left to transfer: when it then goes silent
    /// (our FIN unacknowledged), only the reply's end is missing, and the timeout says so.
    #[test]
    fn a_client_that_replied_early_then_went_silent_times_out_in_the_reply_phase() {
        let file = random_bytes(LEN, 7);
        let mut got = Vec::new();
        let (mut sent, mut cut) = (false, false);
        let r = our_server_against(&file, TIMEOUTS, &mut |sock, _, wire| {
            if !sent && sock.may_send() {
                sock.send_slice(REPLY).unwrap();
                sent = true;
            }
            read_all(sock, &mut got);
            if got.len() == LEN && !cut {
                cut = true;
                wire.set_link(Side::Server, black_hole());
            }
            None
        });
        assert_eq!(r.unwrap_err(), timed_out(Phase::Reply, LEN as u64));
    }

    /// An empty file whose FIN never reaches the client (everything towards it is lost), and a
    /// reply that comes 3 s later: the reply phase as a whole is bounded from our FIN, so the
    /// server gives up `reply` after it, not `reply` after the reply's last byte.
    #[test]
    fn an_empty_files_reply_phase_is_bounded_from_our_fin_even_before_it_is_acknowledged() {
        let (mut connected_at, mut replied) = (None, false);
        let (mut serving_since, mut ended_at) = (None, None);
        let r = our_server_watched_against(
            &[],
            TIMEOUTS,
            &mut |sock, now, wire| {
                if sock.state() == tcp::State::Established && connected_at.is_none() {
                    connected_at = Some(now);
                    wire.set_link(Side::Client, black_hole());
                }
                let reply_at = connected_at? + Duration::from_secs(3);
                if now < reply_at {
                    return Some(reply_at);
                }
                if !replied && sock.may_send() {
                    replied = sock.send_slice(REPLY) == Ok(REPLY.len());
                }
                None
            },
            &mut |now, state, _| match state {
                Some(_) => {
                    serving_since.get_or_insert(now);
                }
                None if serving_since.is_some() => {
                    ended_at.get_or_insert(now);
                }
                None => {}
            },
        );
        assert_eq!(r.unwrap_err(), timed_out(Phase::Reply, 0));
        // Our FIN was queued in the poll that began serving the empty file.
        let waited = ended_at.unwrap() - serving_since.unwrap();
        assert!(
            waited >= TIMEOUTS.reply && waited < TIMEOUTS.reply + Duration::from_millis(500),
            "gave up {waited} after our FIN"
        );
    }
}

/// The server is missing, vanishes or never ends: the client keeps what arrived.
mod client_fails {
    use super::*;

    #[test]
    fn nobody_listens_and_the_client_is_refused() {
        let (r, got) = our_client_against(8192, false, &mut |_, _, _| None);
        assert_eq!(r.unwrap_err(), Error::Refused);
        assert!(got.is_empty());
    }

    /// An event loop may sleep until `deadline()` before the first poll: a new connection is due
    /// at its connect timeout.
    #[test]
    fn a_new_client_and_a_new_sender_are_due_at_their_connect_timeout() {
        let start = Instant::from_secs(5);
        let sender = Sender::new(&b""[..], start, TIMEOUTS);
        assert_eq!(sender.deadline(), Some(start + TIMEOUTS.connect));

        let mut wire = wire();
        let mut pair = sim(&mut wire);
        let c = pair.add(Side::Client, socket(8192, 8192));
        let net = &mut pair.net;
        let client = client::Client::connect(
            net.client.context(),
            &mut net.client_sockets,
            c,
            client::Connect::to((SimNet::address(Side::Server, false), PORT))
                .from_port(49152)
                .timeouts(TIMEOUTS),
            Vec::new(),
            start,
        )
        .unwrap();
        assert_eq!(client.deadline(), Some(start + TIMEOUTS.connect));
    }

    /// An event loop sleeps until the earliest deadline of what still runs: a sender that is
    /// over, whether it ended well or in an error, has none (and neither has a finished client).
    #[test]
    fn a_sender_has_no_deadline_once_its_connection_is_over() {
        let mut wire = wire();
        let mut pair = sim(&mut wire);
        let s = pair.add(Side::Server, socket(8192, 8192));
        let c = pair.add(Side::Client, socket(8192, 8192));
        pair.tcp(Side::Server, s).listen(PORT).unwrap();
        let to = client::Connect::to((SimNet::address(Side::Server, false), PORT))
            .from_port(49152)
            .timeouts(TIMEOUTS);
        let mut client = pair.connect(c, to, Vec::new());
        let file = random_bytes(LEN, 9);
        let (mut sender, mut served, mut fetched) = (None, None, None);
        pair.drive(|net| {
            let now = net.now();
            let socket = net.server_sockets.get_mut::<tcp::Socket>(s);
            if sender.is_none() && socket.is_active() {
                sender = Some(Sender::new(&file[..], now, TIMEOUTS));
            }
            if let Some(Poll::Ready(r)) = sender.as_mut().map(|sender| sender.poll(now, socket)) {
                served.get_or_insert(r);
            }
            if let Poll::Ready(r) = client.poll(now, &mut net.client_sockets) {
                fetched.get_or_insert(r);
            }
            let wake = [
                sender.as_ref().and_then(Sender::deadline),
                client.deadline(),
            ];
            let done = served.is_some() && fetched.is_some();
            (done, wake.into_iter().flatten().min())
        });
        assert_eq!(served.unwrap().unwrap().bytes, LEN as u64);
        assert_eq!(fetched.unwrap().unwrap().bytes, LEN as u64);
        assert_eq!(sender.unwrap().deadline(), None);
        assert_eq!(client.deadline(), None);

        // A socket that is only listening was never a connection: the sender fails at once.
        let mut listening = socket(64, 64);
        listening.listen(PORT).unwrap();
        let mut sender = Sender::new(&file[..], Instant::ZERO, TIMEOUTS);
        assert_eq!(
            sender.poll(Instant::ZERO, &mut listening),
            Poll::Ready(Err(reset(Phase::Connect, 0)))
        );
        assert_eq!(sender.deadline(), None);
    }

    #[test]
    fn client_keeps_bytes_when_server_vanishes() {
        let file = random_bytes(LONG, 8);
        let mut queued = 0;
        let (r, got) = our_client_against(8192, true, &mut |sock, _, wire| {
            if sock.may_send() && queued < file.len() {
                queued += sock.send_slice(&file[queued..]).unwrap();
            }
            if queued >= 40_000 {
                wire.cut(true);
            }
            None
        });
        let bytes = timed_out_in(Phase::Transfer, r.unwrap_err());
        assert_eq!(
            bytes,
            got.len() as u64,
            "the error counts what the sink holds"
        );
        assert!(!got.is_empty() && got.len() < LONG);
        assert!(got == file[..got.len()], "every byte kept is right");
    }

    #[test]
    fn server_never_sends_fin_and_the_client_times_out_with_the_whole_file() {
        let file = random_bytes(LONG, 10);
        let mut queued = 0;
        let (r, got) = our_client_against(8192, true, &mut |sock, _, _| {
            if sock.may_send() && queued < file.len() {
                queued += sock.send_slice(&file[queued..]).unwrap();
            }
            None
        });
        assert_eq!(r.unwrap_err(), timed_out(Phase::Transfer, LONG as u64));
        assert!(
            got == file,
            "all the bytes are in the sink, though EOF never came"
        );
    }

    /// A server that receives the file's end and then hears nothing more from us: our reply is
    /// never acknowledged, and the client gives up in the reply phase after the reply limit.
    #[test]
    fn a_client_whose_reply_is_never_acknowledged_times_out_in_the_reply_phase() {
        let file = random_bytes(1000, 15);
        let mut sent = false;
        let mut eof_sent_at = None;
        let (r, got) = our_client_against(8192, true, &mut |sock, now, wire| {
            if !sent && sock.may_send() {
                // One segment with the FIN; every packet from the client is lost from now on.
                assert_eq!(sock.send_slice(&file).unwrap(), file.len());
                sock.close();
                wire.set_link(Side::Server, black_hole());
                sent = true;
                eof_sent_at = Some(now);
            }
            None
        });
        assert_eq!(r.unwrap_err(), timed_out(Phase::Reply, file.len() as u64));
        assert!(got == file);
    }
}

/// The limits a program sets.
mod limits {
    use super::*;
    use halfclose::Timeouts;

    /// Each `with_*` replaces its own limit, from a `core::time::Duration`, and keeps every other
    /// one as it was (not as the defaults have it).
    #[test]
    fn each_with_replaces_its_own_limit_and_keeps_the_others() {
        let base = TIMEOUTS;
        let limit = core::time::Duration::from_millis(1234);
        let set = Duration::from_millis(1234);
        assert_eq!(
            base.with_connect(limit),
            Timeouts {
                connect: set,
                ..base
            }
        );
        assert_eq!(
            base.with_handshake(limit),
            Timeouts {
                handshake: set,
                ..base
            }
        );
        assert_eq!(base.with_idle(limit), Timeouts { idle: set, ..base });
        assert_eq!(
            base.with_min_rate(7),
            Timeouts {
                min_rate: 7,
                ..base
            }
        );
        assert_eq!(base.with_reply(limit), Timeouts { reply: set, ..base });
        assert_eq!(base.with_stall(limit), Timeouts { stall: set, ..base });
        assert_eq!(
            base.with_linger(limit),
            Timeouts {
                linger: set,
                ..base
            }
        );
    }
}
