//! Whole transfers in memory: the half-close exchange end to end, on a simulated clock.

mod common;

use std::task::Poll;

use common::{Net, PORT, SERVER_V4, random_bytes, transfer};
use halfclose::{Error, Phase, REPLY, Timeouts, client, server};
use smoltcp::socket::tcp;
use smoltcp::time::Duration;

const BUFFER: usize = 4096;

fn assert_delivered<const MTU: usize>(net: &mut Net<MTU>, payload: &[u8], buffer: usize, v6: bool) {
    let t = transfer(net, payload, buffer, v6);
    let served = t.server.expect("server report");
    let got = t.client.expect("client report");
    assert_eq!(t.received.len(), payload.len(), "length");
    assert!(t.received == payload, "received bytes differ from the file");
    assert_eq!(served.bytes, payload.len() as u64);
    assert_eq!(got.bytes, payload.len() as u64);
    assert!(served.reply.is_thank_you(), "reply was {}", served.reply);
}

#[test]
fn every_edge_size_arrives_byte_exact_with_the_reply() {
    for len in [0, 1, BUFFER - 1, BUFFER, BUFFER + 1, 1 << 20] {
        let payload = random_bytes(len, len as u64);
        let mut net = Net::<1500>::new();
        assert_delivered(&mut net, &payload, BUFFER, false);
    }
}

#[test]
fn random_three_mebibytes_arrive_byte_exact() {
    let payload = random_bytes(3 << 20, 0xfeed);
    let mut net = Net::<1500>::new();
    assert_delivered(&mut net, &payload, 64 * 1024, false);
}

/// With smoltcp's default 10 ms delayed ACK the server's last ACK (of the client's reply and
/// FIN) is still pending when the server sees the exchange complete; the slot must not listen
/// again before it has gone, or the client's retransmitted FIN meets a RST.
#[test]
fn the_last_ack_goes_out_before_the_slot_listens_again() {
    let payload = random_bytes(30_000, 5);
    let mut net = Net::<1500>::new();
    net.ack_delay = Some(Duration::from_millis(10));
    assert_delivered(&mut net, &payload, BUFFER, false);
    assert!(
        !net.trace.iter().any(|s| s.seg.rst),
        "no connection was reset"
    );
}

/// A kernel-like client (its reply and its FIN leave in separate segments, so the reply starts
/// the server's delayed-ACK timer before the FIN arrives) and a loop that polls several times
/// per instant, as one on a fast clock does: the exchange still ends without a reset. (The TAP
/// capture test covers the real-clock case, where a slot that reopened before its delayed-ACK
/// timer fired once lost the last ACK.)
#[test]
fn a_busy_poll_loop_waits_for_the_delayed_ack_before_listening_again() {
    let payload = random_bytes(30_000, 9);
    let mut net = Net::<1500>::new();
    net.ack_delay = Some(Duration::from_millis(10));
    let s = net.socket(BUFFER, BUFFER);
    let c = net.socket(BUFFER, BUFFER);
    let mut server =
        server::Server::listen(&mut net.sockets, [s], PORT, &payload[..], Timeouts::DEFAULT)
            .unwrap();
    let cx = net.iface.context();
    net.sockets
        .get_mut::<tcp::Socket>(c)
        .connect(cx, (SERVER_V4, PORT), 49152)
        .unwrap();

    let mut served = None;
    let mut received = Vec::new();
    let mut replied = false;
    net.drive(Duration::from_secs(60), |net| {
        // Several rounds at the same instant, as a loop on a fast clock would do.
        for _ in 0..5 {
            net.step();
            let now = net.now;
            if let Some(r) = server.poll(now, &mut net.sockets).into_iter().next() {
                served = Some(r);
            }
            let client = net.tcp(c);
            if replied && client.state() == tcp::State::CloseWait {
                client.close(); // write(), and later close(): two segments
            } else if !replied {
                match client.recv(|b| (b.len(), b.to_vec())) {
                    Ok(bytes) => received.extend(bytes),
                    Err(tcp::RecvError::Finished) => {
                        client.send_slice(REPLY).unwrap();
                        replied = true;
                    }
                    Err(tcp::RecvError::InvalidState) => {}
                }
            }
        }
        served.is_some() && net.tcp(c).state() == tcp::State::Closed
    });
    assert!(served.unwrap().unwrap().reply.is_thank_you());
    assert!(received == payload);
    assert!(
        !net.trace.iter().any(|s| s.seg.rst),
        "no connection was reset"
    );
}

#[test]
fn the_transfer_works_over_ipv6() {
    let payload = random_bytes(100_000, 6);
    let mut net = Net::<1500>::new();
    assert_delivered(&mut net, &payload, BUFFER, true);
}

#[test]
fn tiny_buffers_and_a_small_mtu_still_deliver_byte_exact() {
    let payload = random_bytes(20_000, 64);
    // 64-byte socket buffers, and an MTU that leaves 64 bytes of TCP payload per segment.
    let mut net = Net::<{ 20 + 20 + 64 }>::new();
    assert_delivered(&mut net, &payload, 64, false);
    let mut net = Net::<{ 40 + 20 + 64 }>::new();
    assert_delivered(&mut net, &payload, 64, true);
}

#[test]
fn server_receives_reply_after_its_fin() {
    let payload = random_bytes(50_000, 1);
    let mut net = Net::<1500>::new();
    let t = transfer(&mut net, &payload, BUFFER, false);
    let served = t.server.unwrap();
    t.client.unwrap();

    // On the wire: the server's FIN, then the client's "Thank you\0", then the client's FIN.
    let server_fin = net
        .trace
        .iter()
        .position(|s| s.sent_by(PORT) && s.seg.fin)
        .expect("the server sent a FIN");
    let reply = net
        .trace
        .iter()
        .position(|s| !s.sent_by(PORT) && s.payload == REPLY)
        .expect("the client sent \"Thank you\\0\" in one segment");
    let client_fin = net
        .trace
        .iter()
        .position(|s| !s.sent_by(PORT) && s.seg.fin)
        .expect("the client sent a FIN");
    assert!(server_fin < reply, "FIN at {server_fin}, reply at {reply}");
    assert!(reply <= client_fin);
    // Every file byte precedes the server's FIN in sequence space (the FIN may ride on the
    // last data segment).
    let fin = &net.trace[server_fin].seg;
    let fin_seq = fin.seq.wrapping_add(fin.len() as u32);
    assert!(
        net.segments_from(PORT)
            .filter(|s| !s.seg.is_empty())
            .all(|s| {
                let end = s.seg.seq.wrapping_add(s.seg.len() as u32);
                fin_seq.wrapping_sub(end) as i32 >= 0
            })
    );
    // The server's stack acknowledges the reply: half-closed, its input was still open.
    let reply_end = net.trace[reply].seg.seq.wrapping_add(REPLY.len() as u32);
    assert!(
        net.trace[reply..].iter().any(|s| s.sent_by(PORT)
            && s.seg
                .ack
                .is_some_and(|a| a.wrapping_sub(reply_end) as i32 >= 0)),
        "the server acknowledged the reply"
    );

    // And the server's own account agrees.
    assert_eq!(served.reply.kept(), REPLY);
    assert!(served.fin_queued_at <= served.reply_at);
    assert!(served.reply_at <= served.finished_at);
}

/// The lesson's contrast: a server that closes its socket fully (no half-close) refuses
/// whatever arrives afterwards with a RST, as a kernel does, and so never reads the reply.
#[test]
fn a_server_that_closes_fully_never_gets_the_reply() {
    let payload = random_bytes(10_000, 2);
    let mut net = Net::<1500>::new();
    let s = net.socket(BUFFER, BUFFER);
    let c = net.socket(BUFFER, BUFFER);
    net.tcp(s).listen(PORT).unwrap();
    let mut client = client::Client::connect(
        net.iface.context(),
        &mut net.sockets,
        c,
        client::Connect::to((SERVER_V4, PORT)).from_port(49152),
        Vec::new(),
        net.now,
    )
    .unwrap();

    let mut rest: &[u8] = &payload;
    let mut closed = false;
    let mut reply_bytes_read = 0;
    let mut outcome = None;
    net.drive(Duration::from_secs(60), |net| {
        let now = net.now;
        let socket = net.tcp(s);
        if socket.may_send() && !closed {
            let n = socket.send_slice(rest).unwrap();
            rest = &rest[n..];
            if rest.is_empty() {
                socket.close();
                closed = true;
            }
        } else if closed && socket.state() == tcp::State::FinWait2 {
            // The file and FIN are acknowledged and the program has closed its socket
            // altogether: from here on the stack answers anything that arrives with a RST.
            socket.abort();
        } else if socket.can_recv() {
            reply_bytes_read += socket.recv(|b| (b.len(), b.len())).unwrap_or(0);
        }
        if let Poll::Ready(r) = client.poll(now, &mut net.sockets) {
            outcome = Some(r);
        }
        outcome.is_some()
    });

    assert_eq!(reply_bytes_read, 0, "the closed server read nothing");
    assert_eq!(client.into_sink(), payload, "the file itself still arrived");
    assert_eq!(
        outcome.unwrap().unwrap_err(),
        Error::Reset {
            phase: Phase::Reply,
            bytes: payload.len() as u64
        },
        "the client's reply was refused"
    );
    assert!(
        net.segments_from(PORT).any(|s| s.seg.rst),
        "the server's stack answered the reply with a RST"
    );
}

fn serve_clients<const N: usize>(clients: usize, at_once: bool) -> Vec<server::Report> {
    let payload = random_bytes(40_000, 3);
    let mut net = Net::<1500>::new();
    let handles = core::array::from_fn(|_| net.socket(BUFFER, BUFFER));
    let mut server = server::Server::<_, N>::listen(
        &mut net.sockets,
        handles,
        PORT,
        &payload[..],
        Timeouts::DEFAULT,
    )
    .unwrap();
    let client_sockets: Vec<_> = (0..clients).map(|_| net.socket(BUFFER, BUFFER)).collect();
    let mut clients_running: Vec<Option<client::Client<Vec<u8>>>> =
        (0..clients).map(|_| None).collect();
    let mut finished = Vec::new();
    let mut served = Vec::new();
    let mut next = 0;
    let mut max_busy = 0;

    net.drive(Duration::from_secs(600), |net| {
        let now = net.now;
        for r in server.poll(now, &mut net.sockets) {
            served.push(r.expect("server side"));
        }
        max_busy = max_busy.max(server.busy());
        // Start clients: all at once, or each when the previous one is done.
        while next < clients && (at_once || finished.len() == next) {
            let handle = client_sockets[next];
            clients_running[next] = Some(
                client::Client::connect(
                    net.iface.context(),
                    &mut net.sockets,
                    handle,
                    client::Connect::to((SERVER_V4, PORT)).from(40000 + next as u16),
                    Vec::new(),
                    now,
                )
                .unwrap(),
            );
            next += 1;
        }
        for (i, slot) in clients_running.iter_mut().enumerate() {
            if let Some(c) = slot
                && let Poll::Ready(r) = c.poll(now, &mut net.sockets)
            {
                r.expect("client side");
                assert!(
                    slot.take().unwrap().into_sink() == payload,
                    "client {i} bytes"
                );
                finished.push(i);
            }
        }
        served.len() == clients && finished.len() == clients
    });
    if at_once {
        assert_eq!(max_busy, N, "all slots served at the same time");
    } else {
        assert_eq!(max_busy, 1);
    }
    served
}

#[test]
fn four_clients_at_once_against_a_pool_of_four() {
    let served = serve_clients::<4>(4, true);
    let mut ports: Vec<_> = served.iter().map(|r| r.remote.unwrap().port).collect();
    ports.sort();
    assert_eq!(ports, [40000, 40001, 40002, 40003]);
}

#[test]
fn eight_clients_one_after_another_against_a_pool_of_one() {
    let served = serve_clients::<1>(8, false);
    let ports: Vec<_> = served.iter().map(|r| r.remote.unwrap().port).collect();
    assert_eq!(ports, (40000..40008).collect::<Vec<_>>());
    assert!(
        served
            .iter()
            .all(|r| r.reply.is_thank_you() && r.bytes == 40_000)
    );
}
