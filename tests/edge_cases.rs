//! The edges of the exchange that a change in behaviour would move: reply lengths at
//! `REPLY_MAX`, a reply one byte off, resets after our half-close, the phase an error names, the
//! reply's order relative to our FIN, the pool taking its sockets back, and the deadlines a new
//! connection starts with. Raw smoltcp sockets play the misbehaving peer on the two-host sim.

mod common;

use std::task::Poll;

use common::random_bytes;
use common::raw_peer::{Net, SimWire, drive, read_all, server_addr, wire};
use halfclose::server::{ReplyTiming, Sender};
use halfclose::sim::{self, Link, Network, Side};
use halfclose::{Error, Phase, REPLY, REPLY_MAX, Timeouts, client, server};
use smoltcp::iface::{SocketHandle, SocketSet};
use smoltcp::socket::tcp;
use smoltcp::time::{Duration, Instant};

const PORT: u16 = halfclose::DEFAULT_PORT;
const LEN: usize = 20_000;
/// Distinct limits per phase, so a timeout in the wrong phase also comes at the wrong time.
const TIMEOUTS: Timeouts = Timeouts {
    connect: Duration::from_secs(10),
    handshake: Duration::from_secs(10),
    idle: Duration::from_secs(30),
    min_rate: 64,
    reply: Duration::from_secs(10),
    stall: Duration::from_secs(10),
    linger: Duration::ZERO,
};

/// A link that loses everything: the peer's packets in that direction vanish.
fn black_hole() -> Link {
    Link {
        loss_ppm: 1_000_000,
        ..Link::clean(1500)
    }
}

/// A socket that acknowledges at once (no delayed ACK), so the tests know what is on the wire.
fn socket(sockets: &mut SocketSet<'static>, rx: usize) -> SocketHandle {
    let mut socket = tcp::Socket::new(
        tcp::SocketBuffer::new(vec![0; rx]),
        tcp::SocketBuffer::new(vec![0; 8192]),
    );
    socket.set_ack_delay(None);
    sockets.add(socket)
}

/// A raw peer: called after every poll with its socket, the time and the wire; returns when it
/// next wants to be called even if no packet arrives.
type Peer<'p> = dyn FnMut(&mut tcp::Socket<'static>, Instant, &mut SimWire) -> Option<Instant> + 'p;

/// Our server, one slot, serving `file`; `client` plays the client with a raw socket.
fn our_server_against(
    file: &[u8],
    timeouts: Timeouts,
    client: &mut Peer<'_>,
) -> Result<server::Report, Error> {
    our_server_watched_against(file, timeouts, client, &mut |_, _, _| {})
}

/// As [`our_server_against`], and `watch` sees the time, the slot's state and the server's
/// socket after every `Server::poll`, the last one included.
fn our_server_watched_against(
    file: &[u8],
    timeouts: Timeouts,
    client: &mut Peer<'_>,
    watch: &mut dyn FnMut(Instant, Option<&server::State>, &tcp::Socket<'static>),
) -> Result<server::Report, Error> {
    let mut wire = wire();
    let mut net = Network::new(&mut wire, SocketSet::new(vec![]), SocketSet::new(vec![]));
    let s = socket(&mut net.server_sockets, 8192);
    let c = socket(&mut net.client_sockets, 8192);
    let mut server =
        server::Server::listen(&mut net.server_sockets, [s], PORT, file, timeouts).unwrap();
    let cx = net.client.context();
    net.client_sockets
        .get_mut::<tcp::Socket>(c)
        .connect(cx, (server_addr(), PORT), 49152)
        .unwrap();
    let mut result = None;
    drive(&mut net, |net| {
        let now = net.now();
        if let Some(r) = server.poll(now, &mut net.server_sockets).into_iter().next() {
            result = Some(r);
        }
        watch(
            now,
            server.states().next().flatten(),
            net.server_sockets.get(s),
        );
        // An event loop sleeps until `poll_at`: it is never in the past.
        if let Some(t) = server.poll_at() {
            assert!(t >= now, "poll_at {t} at {now}");
        }
        let wake = client(net.client_sockets.get_mut(c), now, net.wire);
        let next = [server.poll_at(), wake].into_iter().flatten().min();
        (result.is_some(), next)
    });
    result.unwrap()
}

/// Our client against `server`, a raw socket on the server host with `rx` bytes of receive
/// buffer. Returns the client's result and the bytes in its sink.
fn our_client_against(
    rx: usize,
    server: &mut Peer<'_>,
) -> (Result<client::Report, Error>, Vec<u8>) {
    let mut wire = wire();
    let mut net = Network::new(&mut wire, SocketSet::new(vec![]), SocketSet::new(vec![]));
    let s = socket(&mut net.server_sockets, rx);
    let c = socket(&mut net.client_sockets, 8192);
    net.server_sockets
        .get_mut::<tcp::Socket>(s)
        .listen(PORT)
        .unwrap();
    let now = net.now();
    let mut client = client::Client::connect(
        net.client.context(),
        &mut net.client_sockets,
        c,
        client::Connect::to((server_addr(), PORT))
            .from_port(49152)
            .timeouts(TIMEOUTS),
        Vec::new(),
        now,
    )
    .unwrap();
    let mut result = None;
    drive(&mut net, |net| {
        let now = net.now();
        let wake = server(net.server_sockets.get_mut(s), now, net.wire);
        if let Poll::Ready(r) = client.poll(now, &mut net.client_sockets) {
            result = Some(r);
        }
        let next = [client.deadline(), wake].into_iter().flatten().min();
        (result.is_some(), next)
    });
    (result.unwrap(), client.into_sink())
}

/// A client that reads the file to EOF, then sends `reply` and closes.
fn client_replying(file: &[u8], reply: &[u8]) -> Result<server::Report, Error> {
    let mut got = Vec::new();
    let mut queued = 0;
    let r = our_server_against(file, TIMEOUTS, &mut |sock, _, _| {
        if read_all(sock, &mut got) && queued < reply.len() && sock.may_send() {
            queued += sock.send_slice(&reply[queued..]).unwrap();
            if queued == reply.len() {
                sock.close();
            }
        }
        None
    });
    assert!(got == file, "the client got the whole file");
    r
}

#[test]
fn a_ten_byte_reply_with_one_byte_wrong_is_a_wrong_reply() {
    let file = random_bytes(LEN, 1);
    match client_replying(&file, b"Thank yoU\0").unwrap_err() {
        Error::WrongReply { reply, bytes } => {
            // Read up to the byte that rules it out.
            assert_eq!(reply.kept(), b"Thank yoU");
            assert_eq!(bytes, LEN as u64);
        }
        e => panic!("{e:?}"),
    }
}

/// The server stops at the first byte that rules the reply out, whatever its length: the BSD
/// server's single `read(fd, buf, 1024)` is no boundary here. One byte after `"Thank you\0"` is
/// too long; a 1024- or 1025-byte reply fails at its first impossible byte.
#[test]
fn a_reply_one_byte_longer_than_thank_you_is_too_long_at_that_byte() {
    let file = random_bytes(LEN, 2);
    match client_replying(&file, b"Thank you\0!").unwrap_err() {
        Error::ReplyTooLong { reply, bytes } => {
            assert_eq!(reply.kept(), b"Thank you\0!");
            assert_eq!(bytes, LEN as u64);
        }
        e => panic!("{e:?}"),
    }
}

#[test]
fn replies_of_1024_and_1025_bytes_fail_at_their_first_impossible_byte() {
    for len in [REPLY_MAX, REPLY_MAX + 1] {
        let file = random_bytes(LEN, 3);
        let mut long = REPLY.to_vec();
        long.resize(len, b'x');
        match client_replying(&file, &long).unwrap_err() {
            Error::ReplyTooLong { reply, bytes } => {
                assert_eq!(reply.kept(), b"Thank you\0x", "{len} bytes");
                assert_eq!(bytes, LEN as u64);
            }
            e => panic!("{len} bytes: {e:?}"),
        }
        let wrong = vec![b'T'; len];
        match client_replying(&file, &wrong).unwrap_err() {
            Error::WrongReply { reply, .. } => assert_eq!(reply.kept(), b"TT", "{len} bytes"),
            e => panic!("{len} bytes: {e:?}"),
        }
    }
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
    assert_eq!(
        r.unwrap_err(),
        Error::Reset {
            phase: Phase::Reply,
            bytes: LEN as u64
        }
    );
}

/// While the file lasts, the server leaves no room in its transmit buffer after a poll: the byte
/// it holds back for the FIN never costs the segment room (at the ring's end, where one byte is
/// left, that byte goes and the next is held).
#[test]
fn the_server_keeps_its_transmit_buffer_full_while_the_file_lasts() {
    let file = random_bytes(LEN, 20);
    let mut got = Vec::new();
    let mut checked = 0;
    let mut client = |sock: &mut tcp::Socket<'static>, _: Instant, _: &mut SimWire| {
        if read_all(sock, &mut got) && sock.may_send() {
            sock.send_slice(REPLY).unwrap();
            sock.close();
        }
        None
    };
    let r = our_server_watched_against(&file, TIMEOUTS, &mut client, &mut |_, state, socket| {
        if let Some(&server::State::Sending { queued }) = state
            && queued + 1 < LEN as u64
        {
            assert_eq!(
                socket.send_queue(),
                socket.send_capacity(),
                "room left with {queued} bytes queued"
            );
            checked += 1;
        }
    });
    assert!(r.unwrap().reply.is_thank_you());
    assert!(got == file);
    assert!(
        checked > 2,
        "the buffer was checked while full only {checked} times"
    );
}

/// An empty file's FIN has no byte to travel with, so the server turns on a keep-alive until the
/// FIN is acknowledged (see tests/smoltcp_bugs.rs). It turns it off again however the exchange
/// ends: the socket keeps the setting when it listens again, and the next client would get it.
#[test]
fn an_empty_files_keep_alive_is_off_again_whether_the_exchange_ends_well_or_in_a_reset() {
    // The socket's keep-alive after each poll, the last one (the exchange over) included.
    let keep_alive_through = |client: &mut Peer<'_>| {
        let mut seen = Vec::new();
        let r = our_server_watched_against(&[], TIMEOUTS, client, &mut |_, _, socket| {
            seen.push(socket.keep_alive());
        });
        (r, seen)
    };
    // A client that thanks us.
    let (r, seen) = keep_alive_through(&mut |sock, _, _| {
        if read_all(sock, &mut Vec::new()) && sock.may_send() {
            sock.send_slice(REPLY).unwrap();
            sock.close();
        }
        None
    });
    assert!(r.unwrap().reply.is_thank_you());
    assert!(seen.contains(&Some(Duration::from_secs(1))), "{seen:?}");
    assert_eq!(seen.last(), Some(&None));

    // A client that resets as soon as it is connected, before it acknowledges our FIN.
    let (r, seen) = keep_alive_through(&mut |sock, _, _| {
        if sock.state() == tcp::State::Established {
            sock.abort();
        }
        None
    });
    assert!(matches!(r, Err(Error::Reset { .. })), "{r:?}");
    assert!(seen.contains(&Some(Duration::from_secs(1))), "{seen:?}");
    assert_eq!(seen.last(), Some(&None));
}

/// An empty file: our FIN never reaches the client (everything towards it is lost once it is
/// connected), it replies at once or not at all, then resets. With nothing queued, the phase
/// the reset names depends on the reply alone.
fn empty_file_reset_before_our_fin_arrives(reply_first: bool) -> Error {
    let mut connected_at = None;
    let r = our_server_against(&[], TIMEOUTS, &mut |sock, now, wire| {
        if sock.state() == tcp::State::Established && connected_at.is_none() {
            connected_at = Some(now);
            wire.set_link(Side::Client, black_hole());
            if reply_first {
                sock.send_slice(REPLY).unwrap();
            }
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
        Error::Reset {
            phase: Phase::Transfer,
            bytes: 0
        }
    );
}

/// The whole (empty) file is out and the reply is in, only our FIN is unacknowledged: what was
/// missing was the end of the reply phase.
#[test]
fn an_empty_file_reset_after_the_reply_but_before_our_fin_arrives_is_a_reset_in_the_reply_phase() {
    assert_eq!(
        empty_file_reset_before_our_fin_arrives(true),
        Error::Reset {
            phase: Phase::Reply,
            bytes: 0
        }
    );
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
    assert_eq!(
        r.unwrap_err(),
        Error::TimedOut {
            phase: Phase::Reply,
            bytes: 0
        }
    );
    // Our FIN was queued in the poll that began serving the empty file.
    let waited = ended_at.unwrap() - serving_since.unwrap();
    assert!(
        waited >= TIMEOUTS.reply && waited < TIMEOUTS.reply + Duration::from_millis(500),
        "gave up {waited} after our FIN"
    );
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
    match r.unwrap_err() {
        Error::Reset {
            phase: Phase::Transfer,
            bytes,
        } => assert!(bytes >= LEN as u64 - 1, "{bytes}"),
        e => panic!("{e:?}"),
    }
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
    match r.unwrap_err() {
        Error::TimedOut {
            phase: Phase::Transfer,
            bytes,
        } => assert!(bytes >= LEN as u64 - 1, "{bytes}"),
        e => panic!("{e:?}"),
    }
    assert!(got == file);
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
    assert_eq!(
        r.unwrap_err(),
        Error::TimedOut {
            phase: Phase::Reply,
            bytes: LEN as u64
        }
    );
}

/// `printf 'Thank you\0' | nc -N host port`: the reply and the client's FIN leave at once,
/// before the file. The server ends in LAST-ACK, and reports the reply as *before* its FIN.
#[test]
fn a_client_that_replies_and_half_closes_at_once_is_reported_as_replying_before_our_fin() {
    let file = random_bytes(LEN, 8);
    let mut got = Vec::new();
    let mut sent = false;
    let r = our_server_against(&file, TIMEOUTS, &mut |sock, _, _| {
        if !sent && sock.may_send() {
            sock.send_slice(REPLY).unwrap();
            sock.close();
            sent = true;
        }
        read_all(sock, &mut got);
        None
    });
    let report = r.unwrap();
    assert!(got == file);
    assert!(report.reply.is_thank_you());
    assert!(report.reply_at < report.fin_queued_at);
    let early = report.fin_queued_at - report.reply_at;
    assert_eq!(report.reply_timing, ReplyTiming::BeforeFin(early));
    assert!(report.reply_timing.is_before_fin());
    assert_eq!(report.reply_timing.duration(), early);
    assert_eq!(report.reply_timing.micros(), -(early.total_micros() as i64));
    assert_eq!(
        report.reply_timing.to_string(),
        format!("{early} before our FIN")
    );
}

/// The lesson's client: read to EOF, then reply. The reply comes after our FIN, by at least
/// the round trip of the FIN and the reply on a 1 ms link.
#[test]
fn a_client_that_replies_at_eof_is_reported_as_replying_after_our_fin() {
    let file = random_bytes(LEN, 9);
    let mut wire = wire();
    let mut sink = vec![0; LEN];
    let mut buffers = vec![0; 4 * 8192];
    let outcome = sim::transfer(
        &mut wire,
        &file,
        &mut sink,
        &mut buffers,
        sim::Setup::new(TIMEOUTS),
    );
    assert!(outcome.delivered() && sink == file);
    let report = outcome.server.unwrap().unwrap();
    let late = report.reply_at - report.fin_queued_at;
    assert!(report.reply_at >= report.fin_queued_at + Duration::from_millis(2));
    assert_eq!(report.reply_timing, ReplyTiming::AfterFin(late));
    assert!(!report.reply_timing.is_before_fin());
    assert_eq!(report.reply_timing.micros(), late.total_micros() as i64);
    assert_eq!(
        report.reply_timing.to_string(),
        format!("{late} after our FIN")
    );
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

/// Our server and our client on a clean wire, a pool of one; `before` may meddle with the
/// server's socket before the client connects. Returns both results, with the pool's lingering
/// count sampled right after the server's result and the time it drops to zero.
struct Served {
    server: Result<server::Report, Error>,
    client: Result<client::Report, Error>,
    received: Vec<u8>,
}

fn serve_one(
    net: &mut Net<'_>,
    server: &mut server::Server<&[u8], 1>,
    c: SocketHandle,
    local_port: u16,
) -> Served {
    let now = net.now();
    let mut client = client::Client::connect(
        net.client.context(),
        &mut net.client_sockets,
        c,
        client::Connect::to((server_addr(), PORT))
            .from_port(local_port)
            .timeouts(TIMEOUTS),
        Vec::new(),
        now,
    )
    .unwrap();
    let (mut served, mut fetched) = (None, None);
    drive(net, |net| {
        let now = net.now();
        if let Some(r) = server.poll(now, &mut net.server_sockets).into_iter().next() {
            served = Some(r);
        }
        if fetched.is_none()
            && let Poll::Ready(r) = client.poll(now, &mut net.client_sockets)
        {
            fetched = Some(r);
        }
        let next = [server.poll_at(), client.deadline()]
            .into_iter()
            .flatten()
            .min();
        (served.is_some() && fetched.is_some(), next)
    });
    Served {
        server: served.unwrap(),
        client: fetched.unwrap(),
        received: client.into_sink(),
    }
}

#[test]
fn a_socket_closed_behind_the_pools_back_listens_again() {
    let file = random_bytes(LEN, 12);
    let mut wire = wire();
    let mut net = Network::new(&mut wire, SocketSet::new(vec![]), SocketSet::new(vec![]));
    let s = socket(&mut net.server_sockets, 8192);
    let c = socket(&mut net.client_sockets, 8192);
    let mut server =
        server::Server::listen(&mut net.server_sockets, [s], PORT, &file[..], TIMEOUTS).unwrap();
    // Someone else's code closes the listening socket.
    net.server_sockets.get_mut::<tcp::Socket>(s).close();
    assert!(!net.server_sockets.get::<tcp::Socket>(s).is_listening());
    assert!(server.poll(net.now(), &mut net.server_sockets).is_empty());
    assert!(net.server_sockets.get::<tcp::Socket>(s).is_listening());

    let t = serve_one(&mut net, &mut server, c, 40000);
    assert!(t.server.unwrap().reply.is_thank_you());
    assert_eq!(t.client.unwrap().bytes, LEN as u64);
    assert!(t.received == file);
}

/// With a linger time a finished slot stays in TIME-WAIT that long (a second client meanwhile
/// would be refused), then listens again and serves the next client. (A pool with no listening
/// slot cuts the linger short by default; `set_reclaim(false)` keeps the full TIME-WAIT.)
#[test]
fn a_finished_slot_lingers_for_its_linger_time_then_serves_again() {
    let file = random_bytes(LEN, 13);
    let linger = Duration::from_secs(5);
    let mut wire = wire();
    let mut net = Network::new(&mut wire, SocketSet::new(vec![]), SocketSet::new(vec![]));
    let s = socket(&mut net.server_sockets, 8192);
    let c = socket(&mut net.client_sockets, 8192);
    let timeouts = Timeouts { linger, ..TIMEOUTS };
    let mut server =
        server::Server::listen(&mut net.server_sockets, [s], PORT, &file[..], timeouts).unwrap();
    server.set_reclaim(false);

    let first = serve_one(&mut net, &mut server, c, 40000);
    let finished_at = first.server.unwrap().finished_at;
    assert_eq!(server.lingering(), 1);
    assert_eq!(server.poll_at(), Some(finished_at + linger));
    let mut listening_at = None;
    drive(&mut net, |net| {
        let now = net.now();
        assert!(server.poll(now, &mut net.server_sockets).is_empty());
        if server.lingering() == 0 {
            listening_at = Some(now);
        }
        (listening_at.is_some(), server.poll_at())
    });
    assert_eq!(listening_at, Some(finished_at + linger));
    assert!(net.server_sockets.get::<tcp::Socket>(s).is_listening());

    let second = serve_one(&mut net, &mut server, c, 40001);
    assert_eq!(second.server.unwrap().remote.unwrap().port, 40001);
    assert!(second.received == file);
}

/// A connection that ended in an error was aborted with a RST; once that has gone (not before)
/// there is nothing to linger for, and the slot listens again at once, whatever the linger time
/// and even while a delayed-ACK timer (smoltcp's default 10 ms) would hold it.
#[test]
fn a_failed_slot_listens_again_once_its_reset_has_gone() {
    failed_slot_keeps_its_reset(Some(Duration::from_millis(10)), Duration::ZERO);
}

/// Without a delayed-ACK timer to hold the slot, a `poll` before the interface has sent the RST,
/// even a second later, still does not drop it by listening.
#[test]
fn a_failed_slot_keeps_its_reset_without_a_delayed_ack_timer() {
    failed_slot_keeps_its_reset(None, Duration::from_secs(1));
}

/// The server fails a connection, is polled again `later` without the interface polling in
/// between, and must still send the RST before it listens again.
fn failed_slot_keeps_its_reset(ack_delay: Option<Duration>, later: Duration) {
    let file = random_bytes(LEN, 14);
    let mut wire = wire();
    let mut net = Network::new(&mut wire, SocketSet::new(vec![]), SocketSet::new(vec![]));
    let s = socket(&mut net.server_sockets, 8192);
    net.server_sockets
        .get_mut::<tcp::Socket>(s)
        .set_ack_delay(ack_delay);
    let raw = socket(&mut net.client_sockets, 8192);
    let c = socket(&mut net.client_sockets, 8192);
    let timeouts = Timeouts {
        linger: Duration::from_secs(60),
        ..TIMEOUTS
    };
    let mut server =
        server::Server::listen(&mut net.server_sockets, [s], PORT, &file[..], timeouts).unwrap();
    let cx = net.client.context();
    net.client_sockets
        .get_mut::<tcp::Socket>(raw)
        .connect(cx, (server_addr(), PORT), 49152)
        .unwrap();
    // A raw client whose wrong reply makes the server abort the connection at its first byte.
    let mut got = Vec::new();
    let mut sent = false;
    let mut failed_at = None;
    drive(&mut net, |net| {
        let now = net.now();
        if let Some(r) = server.poll(now, &mut net.server_sockets).into_iter().next() {
            assert!(matches!(r, Err(Error::WrongReply { .. })), "{r:?}");
            failed_at = Some(now);
        }
        let sock = net.client_sockets.get_mut::<tcp::Socket>(raw);
        if read_all(sock, &mut got) && !sent {
            sock.send_slice(b"x").unwrap();
            sent = true;
        }
        (failed_at.is_some(), server.poll_at())
    });
    assert_eq!(server.lingering(), 1, "the RST has yet to go");
    // Polled again before the interface has sent it: the RST must not be dropped by listening.
    assert!(
        server
            .poll(net.now() + later, &mut net.server_sockets)
            .is_empty()
    );
    assert_eq!(server.lingering(), 1, "the RST has still to go");
    net.poll();
    assert!(server.poll(net.now(), &mut net.server_sockets).is_empty());
    assert_eq!(
        server.lingering(),
        0,
        "listening again, long before the linger time"
    );
    assert!(net.server_sockets.get::<tcp::Socket>(s).is_listening());
    // The RST reached the client.
    drive(&mut net, |net| {
        let state = net.client_sockets.get::<tcp::Socket>(raw).state();
        (state == tcp::State::Closed, None)
    });

    let next = serve_one(&mut net, &mut server, c, 40001);
    assert!(next.server.unwrap().reply.is_thank_you());
    assert!(next.received == file);
}

/// An event loop may sleep until `deadline()` before the first poll: a new connection is due
/// at its connect timeout.
#[test]
fn a_new_client_and_a_new_sender_are_due_at_their_connect_timeout() {
    let start = Instant::from_secs(5);
    let sender = Sender::new(&b""[..], start, TIMEOUTS);
    assert_eq!(sender.deadline(), Some(start + TIMEOUTS.connect));

    let mut wire = wire();
    let mut net = Network::new(&mut wire, SocketSet::new(vec![]), SocketSet::new(vec![]));
    let c = socket(&mut net.client_sockets, 8192);
    let client = client::Client::connect(
        net.client.context(),
        &mut net.client_sockets,
        c,
        client::Connect::to((server_addr(), PORT))
            .from_port(49152)
            .timeouts(TIMEOUTS),
        Vec::new(),
        start,
    )
    .unwrap();
    assert_eq!(client.deadline(), Some(start + TIMEOUTS.connect));
}

/// A server that receives the file's end and then hears nothing more from us: our reply is
/// never acknowledged, and the client gives up in the reply phase after the reply limit.
#[test]
fn a_client_whose_reply_is_never_acknowledged_times_out_in_the_reply_phase() {
    let file = random_bytes(1000, 15);
    let mut sent = false;
    let mut eof_sent_at = None;
    let (r, got) = our_client_against(8192, &mut |sock, now, wire| {
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
    assert_eq!(
        r.unwrap_err(),
        Error::TimedOut {
            phase: Phase::Reply,
            bytes: file.len() as u64
        }
    );
    assert!(got == file);
}

/// A server with a 4-byte receive buffer that reads it every 6 s takes the reply a few bytes at
/// a time: the reply phase lasts longer than the reply limit, but each acknowledgement is
/// progress, so the client waits it out.
#[test]
fn a_server_that_takes_the_reply_a_few_bytes_at_a_time_is_waited_for() {
    let file = random_bytes(1000, 16);
    let mut sent = false;
    let mut reply = Vec::new();
    let mut next_read = Instant::ZERO;
    let (r, got) = our_client_against(4, &mut |sock, now, _| {
        if !sent && sock.may_send() {
            sock.send_slice(&file).unwrap();
            sock.close();
            sent = true;
            next_read = now + Duration::from_secs(6);
        }
        if sent && now >= next_read {
            read_all(sock, &mut reply);
            next_read = now + Duration::from_secs(6);
        }
        sent.then_some(next_read)
    });
    let report = r.unwrap();
    assert!(got == file);
    // The server's stack acknowledged all of it (the client is done); the last read may not
    // have come round yet.
    assert!(reply.len() >= 4 && REPLY.starts_with(&reply), "{reply:?}");
    assert!(
        report.finished_at - report.eof_at > TIMEOUTS.reply,
        "the reply phase took {}",
        report.finished_at - report.eof_at
    );
}

/// What the logs and summaries print: each state by name, with its count of bytes.
#[test]
fn states_show_their_names_and_byte_counts() {
    use halfclose::Reply;
    let report = server::Report {
        remote: None,
        bytes: 7,
        reply: Reply::new(),
        accepted_at: Instant::from_millis(1000),
        established_at: Instant::from_millis(1001),
        fin_queued_at: Instant::from_millis(1500),
        fin_acked_at: None,
        reply_at: Instant::from_millis(1600),
        reply_timing: ReplyTiming::AfterFin(Duration::from_millis(100)),
        finished_at: Instant::from_millis(1750),
    };
    assert_eq!(report.duration(), Duration::from_millis(750));
    let shown: Vec<String> = [
        server::State::Accepting,
        server::State::Sending { queued: 5 },
        server::State::HalfClosed {
            sent: 9,
            fin_queued_at: Instant::ZERO,
        },
        server::State::Done(report),
        server::State::Failed(Error::Refused),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    assert_eq!(
        shown,
        [
            "accepting",
            "sending(5)",
            "half-closed(9)",
            "done",
            "failed"
        ]
    );

    let report = client::Report {
        remote: (server_addr(), PORT).into(),
        bytes: 7,
        started_at: Instant::from_millis(1000),
        connected_at: Instant::from_millis(1010),
        eof_at: Instant::from_millis(1400),
        finished_at: Instant::from_millis(1420),
    };
    assert_eq!(report.transfer_time(), Duration::from_millis(390));
    assert_eq!(report.duration(), Duration::from_millis(420));
    let shown: Vec<String> = [
        client::State::Connecting,
        client::State::Receiving { received: 3 },
        client::State::Replying {
            received: 4,
            queued: 2,
            eof_at: Instant::ZERO,
        },
        client::State::Done(report),
        client::State::Failed(Error::Refused),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    assert_eq!(
        shown,
        [
            "connecting",
            "receiving(3)",
            "replying(4)",
            "done",
            "failed"
        ]
    );
}

/// The pool tells which slot does what: one entry per slot, in the order of its handles.
#[test]
fn the_pool_shows_each_slots_state_in_the_order_of_its_handles() {
    let file = random_bytes(LEN, 17);
    let mut wire = wire();
    let mut net = Network::new(&mut wire, SocketSet::new(vec![]), SocketSet::new(vec![]));
    let handles = [
        socket(&mut net.server_sockets, 8192),
        socket(&mut net.server_sockets, 8192),
    ];
    let c = socket(&mut net.client_sockets, 8192);
    let mut server =
        server::Server::listen(&mut net.server_sockets, handles, PORT, &file[..], TIMEOUTS)
            .unwrap();
    assert_eq!(server.handles(), &handles);
    assert_eq!(server.states().collect::<Vec<_>>(), [None, None]);
    assert_eq!((server.busy(), server.listening()), (0, 2));
    assert_eq!(server.poll_at(), None);

    let now = net.now();
    let mut client = client::Client::connect(
        net.client.context(),
        &mut net.client_sockets,
        c,
        client::Connect::to((server_addr(), PORT))
            .from_port(40000)
            .timeouts(TIMEOUTS),
        Vec::new(),
        now,
    )
    .unwrap();
    let mut seen = Vec::new();
    drive(&mut net, |net| {
        let now = net.now();
        assert!(server.poll(now, &mut net.server_sockets).is_empty());
        let _ = client.poll(now, &mut net.client_sockets);
        let states: Vec<_> = server.states().map(|s| s.cloned()).collect();
        assert_eq!(states.len(), 2);
        let sending = matches!(states[..], [Some(server::State::Sending { .. }), None]);
        if sending {
            seen = states;
        }
        (sending, server.poll_at())
    });
    assert_eq!((server.busy(), server.listening()), (1, 1));
    assert!(matches!(
        seen[..],
        [Some(server::State::Sending { .. }), None]
    ));
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
            let mut left = 50;
            while left > 0 {
                match sock.recv(|b| {
                    let n = b.len().min(left);
                    (n, b[..n].to_vec())
                }) {
                    Ok(bytes) if !bytes.is_empty() => {
                        left -= bytes.len();
                        got.extend(bytes);
                    }
                    _ => break,
                }
            }
            next_read = now + Duration::from_secs(1);
        }
        Some(next_read)
    });
    match r.unwrap_err() {
        Error::TimedOut {
            phase: Phase::Transfer,
            bytes,
        } => assert!(bytes < LEN as u64, "{bytes}"),
        e => panic!("{e:?}"),
    }
    assert!(got == file[..got.len()]);
}

/// A pool of two held by two clients that never read: once one has moved nothing for `stall`,
/// the pool takes it back (a RST) so that a new client can connect.
#[test]
fn a_full_pool_of_two_takes_back_a_stalled_connection() {
    let file = random_bytes(LEN, 19);
    let mut wire = wire();
    let mut net = Network::new(&mut wire, SocketSet::new(vec![]), SocketSet::new(vec![]));
    let handles = [
        socket(&mut net.server_sockets, 8192),
        socket(&mut net.server_sockets, 8192),
    ];
    let readers = [
        socket(&mut net.client_sockets, 8192),
        socket(&mut net.client_sockets, 8192),
    ];
    let mut server =
        server::Server::listen(&mut net.server_sockets, handles, PORT, &file[..], TIMEOUTS)
            .unwrap();
    for (i, &r) in readers.iter().enumerate() {
        let cx = net.client.context();
        net.client_sockets
            .get_mut::<tcp::Socket>(r)
            .connect(cx, (server_addr(), PORT), 40000 + i as u16)
            .unwrap();
    }
    let (mut full_at, mut reclaimed) = (None, Vec::new());
    drive(&mut net, |net| {
        let now = net.now();
        reclaimed.extend(server.poll(now, &mut net.server_sockets));
        if full_at.is_none() && server.busy() == 2 {
            full_at = Some(now);
        }
        let done = server.listening() > 0 && full_at.is_some();
        (done, server.poll_at())
    });
    let full_at = full_at.unwrap();
    let now = net.now();
    assert!(now >= full_at + TIMEOUTS.stall, "taken back at {now}");
    assert!(
        now < full_at + TIMEOUTS.idle,
        "taken back at {now}, not by the idle limit"
    );
    assert_eq!(reclaimed.len(), 1, "{reclaimed:?}");
    assert!(reclaimed[0].is_err());
    assert_eq!(server.busy(), 1);
}
