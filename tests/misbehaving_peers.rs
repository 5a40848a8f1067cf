//! Peers that break the protocol, driven with raw smoltcp sockets on the other host. Each ends
//! in its documented outcome, with no panic and no hang.

mod common;

use std::task::Poll;

use common::random_bytes;
use common::raw_peer::{drive, network, read_all, server_addr, wire};
use halfclose::{Error, Phase, REPLY, Timeouts, client, server};
use smoltcp::iface::{SocketHandle, SocketSet};
use smoltcp::socket::tcp;
use smoltcp::time::{Duration, Instant};

const PORT: u16 = halfclose::DEFAULT_PORT;
const LEN: usize = 100_000;
const TIMEOUTS: Timeouts = Timeouts {
    connect: Duration::from_secs(10),
    idle: Duration::from_secs(30),
    reply: Duration::from_secs(10),
    linger: Duration::ZERO,
    ..Timeouts::DEFAULT
};

fn socket(sockets: &mut SocketSet<'static>) -> SocketHandle {
    sockets.add(tcp::Socket::new(
        tcp::SocketBuffer::new(vec![0; 8192]),
        tcp::SocketBuffer::new(vec![0; 8192]),
    ))
}

/// Our server, one slot, serving `file`; `client` plays the client with a raw socket.
fn our_server_against(
    file: &[u8],
    mut client: impl FnMut(&mut tcp::Socket<'static>, Instant, &mut SimWireControl),
) -> Result<server::Report, Error> {
    let mut wire = wire();
    let mut net = network(&mut wire);
    let s = socket(&mut net.server_sockets);
    let c = socket(&mut net.client_sockets);
    let mut server =
        server::Server::listen(&mut net.server_sockets, [s], PORT, file, TIMEOUTS).unwrap();
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
        let mut control = SimWireControl { cut: None };
        client(net.client_sockets.get_mut(c), now, &mut control);
        if let Some(cut) = control.cut {
            net.wire.cut(cut);
        }
        (result.is_some(), server.poll_at())
    });
    result.unwrap()
}

/// What a raw peer may do to the wire.
struct SimWireControl {
    cut: Option<bool>,
}

#[test]
fn client_never_replies_server_times_out_in_the_reply_phase() {
    let file = random_bytes(LEN, 1);
    let mut got = Vec::new();
    let r = our_server_against(&file, |sock, _, _| {
        read_all(sock, &mut got);
    });
    assert_eq!(
        r.unwrap_err(),
        Error::TimedOut {
            phase: Phase::Reply,
            bytes: LEN as u64
        }
    );
    assert!(got == file, "the client still got the whole file");
}

#[test]
fn client_resets_mid_transfer_server_reports_reset_with_bytes_so_far() {
    let file = random_bytes(LEN, 2);
    let mut got = Vec::new();
    let r = our_server_against(&file, |sock, _, _| {
        read_all(sock, &mut got);
        if got.len() >= 20_000 && sock.is_active() {
            sock.abort();
        }
    });
    match r.unwrap_err() {
        Error::Reset {
            phase: Phase::Transfer,
            bytes,
        } => assert!((20_000..LEN as u64).contains(&bytes), "{bytes}"),
        e => panic!("{e:?}"),
    }
}

#[test]
fn client_replies_something_else_server_reports_the_wrong_reply() {
    let file = random_bytes(LEN, 3);
    let mut got = Vec::new();
    let mut sent = false;
    let r = our_server_against(&file, |sock, _, _| {
        if read_all(sock, &mut got) && !sent {
            sock.send_slice(b"Thanks!").unwrap();
            sock.close();
            sent = true;
        }
    });
    match r.unwrap_err() {
        Error::WrongReply { reply, bytes } => {
            // Read up to the first byte that cannot be "Thank you\0"'s: the 's'.
            assert_eq!(reply.kept(), b"Thanks");
            assert_eq!(bytes, LEN as u64);
        }
        e => panic!("{e:?}"),
    }
}

/// The first byte already rules out `"Thank you\0"`: the server does not read on to 1024.
#[test]
fn client_replies_2000_wrong_bytes_server_stops_at_the_first() {
    let file = random_bytes(LEN, 4);
    let long = [b'x'; 2000];
    let mut got = Vec::new();
    let mut queued = 0;
    let r = our_server_against(&file, |sock, _, _| {
        if read_all(sock, &mut got) && queued < long.len() && sock.may_send() {
            queued += sock.send_slice(&long[queued..]).unwrap();
        }
    });
    match r.unwrap_err() {
        Error::WrongReply { reply, bytes } => {
            assert_eq!(reply.kept(), b"x", "read up to the first wrong byte");
            assert_eq!(bytes, LEN as u64);
        }
        e => panic!("{e:?}"),
    }
}

#[test]
fn client_replies_thank_you_and_more_server_stops_at_the_first_extra_byte() {
    let file = random_bytes(LEN, 13);
    let mut got = Vec::new();
    let mut sent = false;
    let r = our_server_against(&file, |sock, _, _| {
        if read_all(sock, &mut got) && !sent {
            sock.send_slice(b"Thank you\0 and goodbye").unwrap();
            sent = true;
        }
    });
    match r.unwrap_err() {
        Error::ReplyTooLong { reply, bytes } => {
            assert_eq!(reply.kept(), b"Thank you\0 ");
            assert_eq!(bytes, LEN as u64);
        }
        e => panic!("{e:?}"),
    }
}

/// A BSD server would read these bytes after its shutdown, as the reply: so does ours.
#[test]
fn client_sends_the_reply_before_the_file_ends_and_it_counts_as_the_reply() {
    let file = random_bytes(LEN, 5);
    let mut got = Vec::new();
    let (mut sent, mut closed) = (false, false);
    let r = our_server_against(&file, |sock, _, _| {
        if !sent && sock.may_send() {
            sock.send_slice(REPLY).unwrap();
            sent = true;
        }
        if read_all(sock, &mut got) && !closed {
            sock.close();
            closed = true;
        }
    });
    let report = r.unwrap();
    assert!(report.reply.is_thank_you());
    assert!(
        report.reply_at < report.fin_queued_at,
        "the reply came first"
    );
    assert!(got == file);
}

/// A client that stops reading closes its window; smoltcp probes it with a backoff. A pause
/// well inside the idle timeout is ridden out; one longer than it ends in a timeout, because a
/// closed window moves nothing.
fn pause_reading_for(pause: Duration) -> (Result<server::Report, Error>, Vec<u8>) {
    let file = random_bytes(LEN, 6);
    let mut got = Vec::new();
    let mut replied = false;
    let r = our_server_against(&file, |sock, now, _| {
        // Read the first 16 KB, then nothing (a zero window) until `pause`, then the rest.
        let paused = got.len() >= 16_000 && now < Instant::ZERO + pause;
        if !paused && read_all(sock, &mut got) && !replied {
            sock.send_slice(REPLY).unwrap();
            sock.close();
            replied = true;
        }
    });
    assert!(got == file[..got.len()]);
    (r, got)
}

#[test]
fn client_stops_reading_for_a_while_then_resumes_and_the_transfer_completes() {
    let (r, got) = pause_reading_for(Duration::from_secs(10));
    let report = r.unwrap();
    assert_eq!(report.bytes, LEN as u64);
    assert!(report.finished_at > Instant::from_secs(10));
    assert_eq!(got.len(), LEN);
}

#[test]
fn client_stops_reading_longer_than_the_idle_timeout_and_the_server_gives_up() {
    let (r, _) = pause_reading_for(Duration::from_secs(90));
    match r.unwrap_err() {
        Error::TimedOut {
            phase: Phase::Transfer,
            bytes,
        } => assert!(bytes < LEN as u64),
        e => panic!("{e:?}"),
    }
}

#[test]
fn client_vanishes_mid_transfer_server_times_out() {
    let file = random_bytes(LEN, 7);
    let mut got = Vec::new();
    let r = our_server_against(&file, |sock, _, wire| {
        read_all(sock, &mut got);
        if got.len() >= 30_000 {
            wire.cut = Some(true);
        }
    });
    match r.unwrap_err() {
        Error::TimedOut {
            phase: Phase::Transfer,
            bytes,
        } => assert!(bytes < LEN as u64),
        e => panic!("{e:?}"),
    }
}

/// Our client against `server`, a raw socket on the server host. Returns the client's result
/// and the bytes in its sink.
fn our_client_against(
    mut server: impl FnMut(&mut tcp::Socket<'static>, Instant, &mut SimWireControl),
    listen: bool,
) -> (Result<client::Report, Error>, Vec<u8>) {
    let mut wire = wire();
    let mut net = network(&mut wire);
    let s = socket(&mut net.server_sockets);
    let c = socket(&mut net.client_sockets);
    if listen {
        net.server_sockets
            .get_mut::<tcp::Socket>(s)
            .listen(PORT)
            .unwrap();
    }
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
        let mut control = SimWireControl { cut: None };
        server(net.server_sockets.get_mut(s), now, &mut control);
        if let Some(cut) = control.cut {
            net.wire.cut(cut);
        }
        if let Poll::Ready(r) = client.poll(now, &mut net.client_sockets) {
            result = Some(r);
        }
        (result.is_some(), client.deadline())
    });
    (result.unwrap(), client.into_sink())
}

#[test]
fn client_keeps_bytes_when_server_vanishes() {
    let file = random_bytes(LEN, 8);
    let mut queued = 0;
    let (r, got) = our_client_against(
        |sock, _, wire| {
            if sock.may_send() && queued < file.len() {
                queued += sock.send_slice(&file[queued..]).unwrap();
            }
            if queued >= 40_000 {
                wire.cut = Some(true);
            }
        },
        true,
    );
    match r.unwrap_err() {
        Error::TimedOut {
            phase: Phase::Transfer,
            bytes,
        } => {
            assert_eq!(
                bytes,
                got.len() as u64,
                "the error counts what the sink holds"
            );
            assert!(!got.is_empty() && got.len() < LEN);
            assert!(got == file[..got.len()], "every byte kept is right");
        }
        e => panic!("{e:?}"),
    }
}

#[test]
fn nobody_listens_and_the_client_is_refused() {
    let (r, got) = our_client_against(|_, _, _| {}, false);
    assert_eq!(r.unwrap_err(), Error::Refused);
    assert!(got.is_empty());
}

#[test]
fn server_never_sends_fin_and_the_client_times_out_with_the_whole_file() {
    let file = random_bytes(LEN, 10);
    let mut queued = 0;
    let (r, got) = our_client_against(
        |sock, _, _| {
            if sock.may_send() && queued < file.len() {
                queued += sock.send_slice(&file[queued..]).unwrap();
            }
        },
        true,
    );
    assert_eq!(
        r.unwrap_err(),
        Error::TimedOut {
            phase: Phase::Transfer,
            bytes: LEN as u64
        }
    );
    assert!(
        got == file,
        "all the bytes are in the sink, though EOF never came"
    );
}

/// The client's FIN comes first and leaves it no way to reply: the server still sends the whole
/// file (the client can still read), then reports the empty reply.
#[test]
fn client_half_closes_first_server_sends_everything_and_reports_an_empty_reply() {
    let file = random_bytes(LEN, 11);
    let mut got = Vec::new();
    let mut closed = false;
    let r = our_server_against(&file, |sock, _, _| {
        if !closed && sock.may_send() {
            sock.close();
            closed = true;
        }
        read_all(sock, &mut got);
    });
    match r.unwrap_err() {
        Error::WrongReply { reply, bytes } => {
            assert!(reply.is_empty());
            assert_eq!(bytes, LEN as u64);
        }
        e => panic!("{e:?}"),
    }
    assert!(got == file);
}

#[test]
fn a_second_syn_to_a_busy_pool_of_one_is_refused_and_the_first_client_is_served() {
    let file = random_bytes(LEN, 12);
    let mut wire = wire();
    let mut net = network(&mut wire);
    let s = socket(&mut net.server_sockets);
    let (a, b) = (
        socket(&mut net.client_sockets),
        socket(&mut net.client_sockets),
    );
    let mut server =
        server::Server::listen(&mut net.server_sockets, [s], PORT, &file[..], TIMEOUTS).unwrap();
    let now = net.now();
    let mut first = client::Client::connect(
        net.client.context(),
        &mut net.client_sockets,
        a,
        client::Connect::to((server_addr(), PORT))
            .from_port(40001)
            .timeouts(TIMEOUTS),
        Vec::new(),
        now,
    )
    .unwrap();
    let mut second = None;
    let (mut first_result, mut second_result, mut served) = (None, None, None);
    drive(&mut net, |net| {
        let now = net.now();
        if let Some(r) = server.poll(now, &mut net.server_sockets).into_iter().next() {
            served = Some(r);
        }
        if first_result.is_none()
            && let Poll::Ready(r) = first.poll(now, &mut net.client_sockets)
        {
            first_result = Some(r);
        }
        // The second client knocks once the first is mid-transfer.
        if second.is_none() && first.received() > 10_000 {
            second = Some(
                client::Client::connect(
                    net.client.context(),
                    &mut net.client_sockets,
                    b,
                    client::Connect::to((server_addr(), PORT))
                        .from_port(40002)
                        .timeouts(TIMEOUTS),
                    Vec::new(),
                    now,
                )
                .unwrap(),
            );
        }
        if let Some(c) = &mut second
            && second_result.is_none()
            && let Poll::Ready(r) = c.poll(now, &mut net.client_sockets)
        {
            second_result = Some(r);
        }
        let done = first_result.is_some() && second_result.is_some() && served.is_some();
        (done, server.poll_at())
    });
    assert_eq!(second_result.unwrap().unwrap_err(), Error::Refused);
    assert_eq!(first_result.unwrap().unwrap().bytes, LEN as u64);
    assert!(served.unwrap().unwrap().reply.is_thank_you());
}
