//! The pool of server slots: a slot listens again after each connection (and only once its
//! last segment has gone), lingers in TIME-WAIT for its linger time, is taken back when the pool
//! is full and it has stalled, and a pool with no free slot refuses; where each slot's socket is
//! after it listens again.

mod common;

use std::task::Poll;

use common::pair::{
    Hosts, Loop, Pair, Served, SimNet, SimPeer, SimWire, our_server_watched_against, sim, transfer,
    wire,
};
use common::{LEN, LONG, PORT, TIMEOUTS, random_bytes, read_all, socket};
use halfclose::sim::{self, Link, Side};
use halfclose::{Error, REPLY, Timeouts, client, server};
use smoltcp::iface::SocketHandle;
use smoltcp::socket::tcp;
use smoltcp::time::{Duration, Instant};
use smoltcp::wire::{IpAddress, Ipv4Address};

const BUFFER: usize = 4096;

/// Our client (from `local_port`) fetches what `server` serves: both results, and the bytes the
/// client received.
fn serve_one(
    pair: &mut Pair<SimNet<'_>>,
    server: &mut server::Server<&[u8], 1>,
    c: SocketHandle,
    local_port: u16,
) -> (Served, Vec<u8>) {
    let to = client::Connect::to((SimNet::address(Side::Server, false), PORT))
        .from_port(local_port)
        .timeouts(TIMEOUTS);
    let mut client = pair.connect(c, to, Vec::new());
    let served = pair.serve(server, &mut client);
    (served, client.into_sink())
}

/// No segment on the loop was a reset.
fn assert_no_reset<const MTU: usize, P>(pair: &Pair<Loop<MTU>, P>) {
    assert!(
        !pair.net.trace.iter().any(|s| s.seg.rst),
        "no connection was reset"
    );
}

/// `N` sockets with 8 KiB buffers on `side`'s host.
fn sockets<const N: usize>(pair: &mut Pair<SimNet<'_>>, side: Side) -> [SocketHandle; N] {
    std::array::from_fn(|_| pair.add(side, socket(8192, 8192)))
}

/// A slot listens again once its connection is over, and not before its last segment has gone.
mod listening_again {
    use super::*;

    #[test]
    fn a_socket_closed_behind_the_pools_back_listens_again() {
        let file = random_bytes(LEN, 12);
        let mut wire = wire();
        let mut pair = sim(&mut wire);
        let s = pair.add(Side::Server, socket(8192, 8192));
        let c = pair.add(Side::Client, socket(8192, 8192));
        let mut server = pair.listen([s], &file[..], TIMEOUTS);
        // Someone else's code closes the listening socket.
        pair.net.server_sockets.get_mut::<tcp::Socket>(s).close();
        assert!(!pair.net.server_sockets.get::<tcp::Socket>(s).is_listening());
        assert!(
            server
                .poll(pair.net.now(), &mut pair.net.server_sockets)
                .is_empty()
        );
        assert!(pair.net.server_sockets.get::<tcp::Socket>(s).is_listening());

        let (t, t_received) = serve_one(&mut pair, &mut server, c, 40000);
        assert!(t.server.unwrap().reply.is_thank_you());
        assert_eq!(t.client.unwrap().bytes, LEN as u64);
        assert!(t_received == file);
    }

    /// With smoltcp's default 10 ms delayed ACK the server's last ACK (of the client's reply and
    /// FIN) is still pending when the server sees the exchange complete; the slot must not listen
    /// again before it has gone, or the client's retransmitted FIN meets a RST.
    #[test]
    fn the_last_ack_goes_out_before_the_slot_listens_again() {
        let payload = random_bytes(30_000, 5);
        let mut pair = Pair::new(Loop::<1500>::new());
        pair.net.ack_delay = Some(Duration::from_millis(10));
        let (t, received) = transfer(&mut pair, &payload, BUFFER, false);
        assert!(t.server.unwrap().reply.is_thank_you());
        assert_eq!(t.client.unwrap().bytes, payload.len() as u64);
        assert!(received == payload);
        assert_no_reset(&pair);
    }

    /// A kernel-like client (its reply and its FIN leave in separate segments, so the reply starts
    /// the server's delayed-ACK timer before the FIN arrives) and a loop that polls several times
    /// per instant, as one on a fast clock does: the exchange still ends without a reset. (The TAP
    /// capture test covers the real-clock case, where a slot that reopened before its delayed-ACK
    /// timer fired once lost the last ACK.)
    /// The raw client's round: read the file until its end and reply then; once replied, close
    /// when the server's FIN has come (write(), and later close(): two segments). Returns whether
    /// it has replied.
    fn read_then_reply_then_close(
        client: &mut tcp::Socket,
        replied: bool,
        received: &mut Vec<u8>,
    ) -> bool {
        if replied {
            if client.state() == tcp::State::CloseWait {
                client.close();
            }
            return true;
        }
        match client.recv(|b| (b.len(), b.to_vec())) {
            Ok(bytes) => received.extend(bytes),
            Err(tcp::RecvError::Finished) => {
                client.send_slice(REPLY).unwrap();
                return true;
            }
            Err(tcp::RecvError::InvalidState) => {}
        }
        false
    }

    #[test]
    fn a_busy_poll_loop_waits_for_the_delayed_ack_before_listening_again() {
        let payload = random_bytes(30_000, 9);
        let mut pair = Pair::new(Loop::<1500>::new()).with_limit(Duration::from_secs(60));
        let mut socket = |side| {
            let mut socket = socket(BUFFER, BUFFER);
            socket.set_ack_delay(Some(Duration::from_millis(10)));
            pair.add(side, socket)
        };
        let (s, c) = (socket(Side::Server), socket(Side::Client));
        let mut server = pair.listen([s], &payload[..], Timeouts::DEFAULT);
        pair.connect_raw(c, 49152);

        let mut served = None;
        let mut received = Vec::new();
        let mut replied = false;
        pair.drive(|net| {
            // Several rounds at the same instant, as a loop on a fast clock would do.
            for _ in 0..5 {
                net.poll();
                let now = net.now();
                served = server
                    .poll(now, &mut net.sockets)
                    .into_iter()
                    .next()
                    .or(served.take());
                let client = net.sockets.get_mut::<tcp::Socket>(c);
                replied = read_then_reply_then_close(client, replied, &mut received);
            }
            let closed = net.sockets.get::<tcp::Socket>(c).state() == tcp::State::Closed;
            (served.is_some() && closed, server.poll_at())
        });
        assert!(served.unwrap().unwrap().reply.is_thank_you());
        assert!(received == payload);
        assert_no_reset(&pair);
    }

    /// The loop of our programs (`examples/common/drive.rs`), as smoltcp's split poll invites:
    /// take in what arrived, run the server, then send. A pool of one whose delayed ACK of the
    /// client's FIN falls due in a pass that also takes the slot back to listen has that ACK
    /// still to send when the pool asks the socket to listen. The ACK must leave all the same,
    /// and the slot must listen when the pool says it does: the next client, let in the moment
    /// the pool listens (as a listen backlog does), is served, and nobody meets a reset.
    #[test]
    fn a_split_poll_loop_sends_the_last_ack_and_serves_the_next_client_let_in() {
        let payload = random_bytes(30_000, 11);
        let mut pair = Pair::new(Loop::<1500>::new())
            .with_limit(Duration::from_secs(60))
            .polling(Loop::ingress);
        let mut socket = |side| {
            let mut socket = socket(BUFFER, BUFFER);
            socket.set_ack_delay(Some(Duration::from_millis(10)));
            pair.add(side, socket)
        };
        let s = socket(Side::Server);
        let clients = [socket(Side::Client), socket(Side::Client)];
        let mut server = pair.listen([s], &payload[..], Timeouts::DEFAULT);
        pair.connect_raw(clients[0], 49152);

        let mut served = Vec::new();
        let mut received = [Vec::new(), Vec::new()];
        let mut replied = [false; 2];
        let mut second_connected = false;
        pair.drive(|net| {
            let now = net.now();
            served.extend(server.poll(now, &mut net.sockets));
            // The second client connects only once the pool listens again.
            if !second_connected && served.len() == 1 && server.listening() == 1 {
                let remote = (net.address(Side::Server, false), common::PORT);
                net.sockets
                    .get_mut::<tcp::Socket>(clients[1])
                    .connect(net.iface.context(), remote, 49153)
                    .unwrap();
                second_connected = true;
            }
            for (i, &c) in clients.iter().enumerate() {
                let client = net.sockets.get_mut::<tcp::Socket>(c);
                replied[i] = read_then_reply_then_close(client, replied[i], &mut received[i]);
            }
            net.egress();
            let closed = |c| net.sockets.get::<tcp::Socket>(c).state() == tcp::State::Closed;
            let done = served.len() == 2 && clients.iter().all(|&c| closed(c));
            (done, server.poll_at())
        });
        for result in served {
            assert!(result.unwrap().reply.is_thank_you());
        }
        assert!(received.iter().all(|r| *r == payload));
        assert_no_reset(&pair);
    }

    /// An empty file's FIN has no byte to travel with, so the server turns on a keep-alive until the
    /// FIN is acknowledged (see tests/smoltcp_bugs.rs). It turns it off again however the exchange
    /// ends: the socket keeps the setting when it listens again, and the next client would get it.
    #[test]
    fn an_empty_files_keep_alive_is_off_again_whether_the_exchange_ends_well_or_in_a_reset() {
        // The socket's keep-alive after each poll, the last one (the exchange over) included.
        let keep_alive_through = |client: &mut SimPeer<'_>| {
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
}

/// A finished slot lingers; a failed one waits only for its RST.
mod linger {
    use super::*;

    /// With a linger time a finished slot stays in TIME-WAIT that long (a second client meanwhile
    /// would be refused), then listens again and serves the next client. (A pool with no listening
    /// slot cuts the linger short by default; `set_reclaim(false)` keeps the full TIME-WAIT.)
    #[test]
    fn a_finished_slot_lingers_for_its_linger_time_then_serves_again() {
        let file = random_bytes(LEN, 13);
        let linger = Duration::from_secs(5);
        let mut wire = wire();
        let mut pair = sim(&mut wire);
        let s = pair.add(Side::Server, socket(8192, 8192));
        let c = pair.add(Side::Client, socket(8192, 8192));
        let timeouts = Timeouts { linger, ..TIMEOUTS };
        let mut server = pair.listen([s], &file[..], timeouts);
        server.set_reclaim(false);

        let (first, _) = serve_one(&mut pair, &mut server, c, 40000);
        let finished_at = first.server.unwrap().finished_at;
        assert_eq!(server.lingering(), 1);
        assert_eq!(server.poll_at(), Some(finished_at + linger));
        let mut listening_at = None;
        pair.drive(|net| {
            let now = net.now();
            assert!(server.poll(now, &mut net.server_sockets).is_empty());
            if server.lingering() == 0 {
                listening_at = Some(now);
            }
            (listening_at.is_some(), server.poll_at())
        });
        assert_eq!(listening_at, Some(finished_at + linger));
        assert!(pair.net.server_sockets.get::<tcp::Socket>(s).is_listening());

        let (second, second_received) = serve_one(&mut pair, &mut server, c, 40001);
        assert_eq!(second.server.unwrap().remote.unwrap().port, 40001);
        assert!(second_received == file);
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
        let mut pair = sim(&mut wire);
        let s = pair.add(Side::Server, socket(8192, 8192));
        pair.net
            .server_sockets
            .get_mut::<tcp::Socket>(s)
            .set_ack_delay(ack_delay);
        let raw = pair.add(Side::Client, socket(8192, 8192));
        let c = pair.add(Side::Client, socket(8192, 8192));
        let timeouts = Timeouts {
            linger: Duration::from_secs(60),
            ..TIMEOUTS
        };
        let mut server = pair.listen([s], &file[..], timeouts);
        pair.connect_raw(raw, 49152);
        // A raw client whose wrong reply makes the server abort the connection at its first byte.
        let mut got = Vec::new();
        let mut sent = false;
        let mut failed_at = None;
        pair.drive(|net| {
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
                .poll(pair.net.now() + later, &mut pair.net.server_sockets)
                .is_empty()
        );
        assert_eq!(server.lingering(), 1, "the RST has still to go");
        pair.net.poll();
        assert!(
            server
                .poll(pair.net.now(), &mut pair.net.server_sockets)
                .is_empty()
        );
        assert_eq!(
            server.lingering(),
            0,
            "listening again, long before the linger time"
        );
        assert!(pair.net.server_sockets.get::<tcp::Socket>(s).is_listening());
        // The RST reached the client.
        pair.drive(|net| {
            let state = net.client_sockets.get::<tcp::Socket>(raw).state();
            (state == tcp::State::Closed, None)
        });

        let (next, next_received) = serve_one(&mut pair, &mut server, c, 40001);
        assert!(next.server.unwrap().reply.is_thank_you());
        assert!(next_received == file);
    }
}

/// What the pool shows of its slots, and what it does when they are all taken.
/// A client that resets its handshake (a RST in SYN-RECEIVED) sends smoltcp's socket back to
/// LISTEN: the slot must count as listening at once, or the next client its socket takes is
/// never served.
mod reset_handshake {
    use super::*;
    use smoltcp::phy::ChecksumCapabilities;
    use smoltcp::wire::{IpProtocol, Ipv4Packet, Ipv4Repr, TcpControl, TcpPacket, TcpRepr};

    /// A RST from the client host's `port` to the server, at sequence number `seq`.
    fn inject_rst(wire: &mut SimWire, port: u16, seq: u32) {
        let (IpAddress::Ipv4(src), IpAddress::Ipv4(dst)) = (
            SimNet::address(Side::Client, false),
            SimNet::address(Side::Server, false),
        ) else {
            unreachable!("the sim's addresses are IPv4")
        };
        let tcp = TcpRepr {
            src_port: port,
            dst_port: PORT,
            control: TcpControl::Rst,
            seq_number: smoltcp::wire::TcpSeqNumber(seq as i32),
            ack_number: None,
            window_len: 0,
            window_scale: None,
            max_seg_size: None,
            sack_permitted: false,
            sack_ranges: [None; 3],
            timestamp: None,
            payload: &[],
        };
        let ip = Ipv4Repr {
            src_addr: src,
            dst_addr: dst,
            next_header: IpProtocol::Tcp,
            payload_len: tcp.buffer_len(),
            hop_limit: 64,
        };
        let caps = ChecksumCapabilities::default();
        wire.inject(Side::Client, ip.buffer_len() + tcp.buffer_len(), |buf| {
            ip.emit(&mut Ipv4Packet::new_unchecked(&mut buf[..]), &caps);
            tcp.emit(
                &mut TcpPacket::new_unchecked(&mut buf[ip.buffer_len()..]),
                &IpAddress::Ipv4(src),
                &IpAddress::Ipv4(dst),
                &caps,
            );
        });
    }

    /// A pool of two: a first peer's SYN takes the first slot, and its SYN-ACK is answered with a
    /// RST (the peer's handshake reset); then our client connects, and its SYN finds that slot's
    /// socket listening first in the set. It is served.
    #[test]
    fn after_a_reset_handshake_the_next_client_on_that_socket_is_served() {
        let file = random_bytes(LEN, 41);
        let mut wire = wire();
        let mut pair = sim(&mut wire);
        let handles: [_; 2] = sockets(&mut pair, Side::Server);
        // The default linger (8 s): a slot that lingers keeps its socket from the pool that long.
        let mut server = pair.listen(handles, &file[..], Timeouts::DEFAULT);
        let peer = pair.add(Side::Client, socket(BUFFER, BUFFER));
        pair.connect_raw(peer, 40000);
        // The peer's SYN, then, once the server has answered it, a RST in its place.
        let (mut isn, mut reset, mut ended) = (None, false, Vec::new());
        pair.drive(|net| {
            let now = net.now();
            ended.extend(server.poll(now, &mut net.server_sockets));
            isn = isn.or_else(|| {
                net.wire
                    .in_flight(Side::Server)
                    .map(|p| halfclose::segment::Segment::parse(smoltcp::phy::Medium::Ip, p))
                    .find_map(|s| s.filter(|s| s.syn).map(|s| s.seq))
            });
            let syn_ack = net.wire.lose_in_flight(Side::Client, |_| true) > 0;
            if syn_ack && !reset {
                net.client_sockets.get_mut::<tcp::Socket>(peer).abort();
                inject_rst(net.wire, 40000, isn.unwrap().wrapping_add(1));
                reset = true;
            }
            (reset && !ended.is_empty(), server.poll_at())
        });
        assert!(matches!(ended[..], [Err(Error::Reset { .. })]), "{ended:?}");
        assert_eq!(
            server.listening(),
            2,
            "the slot whose handshake was reset listens"
        );

        let c = pair.add(Side::Client, socket(BUFFER, BUFFER));
        let to = client::Connect::to((SimNet::address(Side::Server, false), PORT))
            .from_port(40001)
            .timeouts(TIMEOUTS);
        let mut client = pair.connect(c, to, Vec::new());
        let (mut served, mut fetched) = (None, None);
        pair.drive(|net| {
            let now = net.now();
            if let Some(r) = server.poll(now, &mut net.server_sockets).into_iter().next() {
                served = Some(r);
            }
            if let Poll::Ready(r) = client.poll(now, &mut net.client_sockets) {
                fetched = Some(r);
            }
            let wake = [server.poll_at(), client.deadline()]
                .into_iter()
                .flatten()
                .min();
            (served.is_some() && fetched.is_some(), wake)
        });
        assert!(matches!(served, Some(Ok(_))), "{served:?}");
        assert!(matches!(fetched, Some(Ok(_))), "{fetched:?}");
        assert!(client.sink() == &file);
    }
}

mod full {
    use super::*;

    /// The pool tells which slot does what: one entry per slot, in the order of its handles.
    #[test]
    fn the_pool_shows_each_slots_state_in_the_order_of_its_handles() {
        let file = random_bytes(LEN, 17);
        let mut wire = wire();
        let mut pair = sim(&mut wire);
        let handles: [_; 2] = sockets(&mut pair, Side::Server);
        let c = pair.add(Side::Client, socket(8192, 8192));
        let mut server = pair.listen(handles, &file[..], TIMEOUTS);
        assert_eq!(server.handles(), &handles);
        assert_eq!(server.states().collect::<Vec<_>>(), [None, None]);
        assert_eq!((server.busy(), server.listening()), (0, 2));
        assert_eq!(server.poll_at(), None);

        let to = client::Connect::to((SimNet::address(Side::Server, false), PORT))
            .from_port(40000)
            .timeouts(TIMEOUTS);
        let mut client = pair.connect(c, to, Vec::new());
        let mut seen = Vec::new();
        pair.drive(|net| {
            let now = net.now();
            assert!(server.poll(now, &mut net.server_sockets).is_empty());
            let _ = client.poll(now, &mut net.client_sockets);
            let states: Vec<_> = server.states().collect();
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

    #[test]
    fn a_second_syn_to_a_busy_pool_of_one_is_refused_and_the_first_client_is_served() {
        let file = random_bytes(LONG, 12);
        let mut wire = wire();
        let mut pair = sim(&mut wire);
        let s = pair.add(Side::Server, socket(8192, 8192));
        let (a, b) = (
            pair.add(Side::Client, socket(8192, 8192)),
            pair.add(Side::Client, socket(8192, 8192)),
        );
        let mut server = pair.listen([s], &file[..], TIMEOUTS);
        let to =
            client::Connect::to((SimNet::address(Side::Server, false), PORT)).timeouts(TIMEOUTS);
        let mut first = pair.connect(a, to.from_port(40001), Vec::new());
        let mut second = None;
        let (mut first_result, mut second_result, mut served) = (None, None, None);
        pair.drive(|net| {
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
                        to.from_port(40002),
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
        assert_eq!(first_result.unwrap().unwrap().bytes, LONG as u64);
        assert!(served.unwrap().unwrap().reply.is_thank_you());
    }

    /// The `n`th forged SYN, from an address on the link that no host owns: its SYN-ACK goes
    /// nowhere.
    fn forge(wire: &mut SimWire, n: u16) {
        let IpAddress::Ipv4(dst) = SimNet::address(Side::Server, false) else {
            unreachable!("the sim's server address is IPv4")
        };
        let src = (Ipv4Address::new(10, 0, 0, 200), 1024 + n);
        wire.inject(Side::Client, sim::FORGED_SYN_LEN, |buf| {
            sim::forged_syn(buf, src, (dst, PORT), u32::from(n));
        });
    }

    /// Forged SYNs (never completed) whenever the pool of two has a listener, on a link with
    /// `latency` each way, after a real client (one that connects and never reads) has taken one
    /// slot, if `real_first`: the times at which the pool took a forged one back.
    fn reclaims_of_a_flood(latency: Duration, real_first: bool, count: usize) -> Vec<Duration> {
        let file = random_bytes(LONG, 23);
        let link = Link {
            latency,
            ..Link::clean(1500)
        };
        let mut wire = Box::new(SimWire::new(1, link, link));
        let mut pair = sim(&mut wire);
        let handles: [_; 2] = sockets(&mut pair, Side::Server);
        let mut server = pair.listen(handles, &file[..], TIMEOUTS);
        if real_first {
            let reader = pair.add(Side::Client, socket(BUFFER, BUFFER));
            pair.connect_raw(reader, 40000);
        }
        let (mut at, mut forged) = (Vec::new(), 0u16);
        pair.drive(|net| {
            let now = net.now();
            for result in server.poll(now, &mut net.server_sockets) {
                assert!(matches!(result, Err(Error::TimedOut { .. })), "{result:?}");
                at.push(now - Instant::ZERO);
            }
            let real_in = server
                .states()
                .any(|s| matches!(s, Some(server::State::Sending { .. })));
            // An event loop sleeps until `poll_at`: it is never in the past.
            if let Some(t) = server.poll_at() {
                assert!(t >= now, "poll_at {t} at {now}");
            }
            let free = if real_in || !real_first {
                server.listening()
            } else {
                0
            };
            for _ in 0..free {
                forged += 1;
                forge(net.wire, forged);
            }
            (at.len() >= count, server.poll_at())
        });
        at
    }

    /// Before any client has completed a handshake, the pool does not know the link's round
    /// trip: it lets a half-open connection wait 151 ms (one and a half times
    /// `FIRST_HANDSHAKE`, and a millisecond), and halves its guess with each one it takes back,
    /// so that a SYN flood that comes first is soon met at a LAN's pace.
    #[test]
    fn before_any_handshake_a_flood_is_taken_back_sooner_each_time() {
        let at = reclaims_of_a_flood(Duration::from_millis(1), false, 16);
        // The first two forged SYNs came at 0 (and reach the server 1 ms later).
        let first = Duration::from_millis(1) + server::FIRST_HANDSHAKE * 3 / 2;
        assert!(at[0] >= first + Duration::from_millis(1), "{at:?}");
        assert!(at[0] <= first + Duration::from_millis(2), "{at:?}");
        // Then each slot in turn: taken back (1.5 g + 1 ms) after its SYN came, g halving from
        // 50 ms; its new forged SYN arrives a millisecond after it listens again.
        let rounds: Vec<_> = at.windows(3).step_by(2).map(|w| w[2] - w[0]).collect();
        assert!(
            rounds.windows(2).all(|w| w[1] <= w[0]),
            "the waits shrink: {rounds:?}"
        );
        assert!(
            rounds[rounds.len() - 1] <= Duration::from_millis(3),
            "{rounds:?}"
        );
    }

    /// Once a real client has completed its handshake, the pool knows the link: over 10 ms each
    /// way that took 20 ms, so each forged SYN keeps its slot 31 ms (1.5 times that, and a
    /// millisecond), every time, and is taken back 10 ms after the slot listened again.
    #[test]
    fn after_a_real_handshake_a_half_open_slot_waits_one_and_a_half_of_it() {
        let at = reclaims_of_a_flood(Duration::from_millis(10), true, 8);
        let gaps: Vec<_> = at.windows(2).map(|w| w[1] - w[0]).collect();
        assert!(
            gaps.iter().all(|&g| g == Duration::from_millis(41)),
            "{at:?}"
        );
    }

    /// A pool of two held by two clients that never read: once one has moved nothing for `stall`,
    /// the pool takes it back (a RST) so that a new client can connect.
    #[test]
    fn a_full_pool_of_two_takes_back_a_stalled_connection() {
        let file = random_bytes(LEN, 19);
        let mut wire = wire();
        let mut pair = sim(&mut wire);
        let handles: [_; 2] = sockets(&mut pair, Side::Server);
        let readers: [_; 2] = sockets(&mut pair, Side::Client);
        let mut server = pair.listen(handles, &file[..], TIMEOUTS);
        for (i, &r) in readers.iter().enumerate() {
            pair.connect_raw(r, 40000 + i as u16);
        }
        let (mut full_at, mut reclaimed) = (None, Vec::new());
        pair.drive(|net| {
            let now = net.now();
            reclaimed.extend(server.poll(now, &mut net.server_sockets));
            if full_at.is_none() && server.busy() == 2 {
                full_at = Some(now);
            }
            let done = server.listening() > 0 && full_at.is_some();
            (done, server.poll_at())
        });
        let full_at = full_at.unwrap();
        let now = pair.net.now();
        assert!(now >= full_at + TIMEOUTS.stall, "taken back at {now}");
        assert!(
            now < full_at + TIMEOUTS.idle,
            "taken back at {now}, not by the idle limit"
        );
        assert_eq!(reclaimed.len(), 1, "{reclaimed:?}");
        assert!(reclaimed[0].is_err());
        assert_eq!(server.busy(), 1);
    }
}

/// Where a slot's socket is after it listens again. In a pool of two or more it has left the
/// `SocketSet` and come back, for a fresh start (smoltcp's per-socket ARP silence, which
/// `listen()` keeps: `docs/upstream/neighbor-silence.md`), so it takes a free place before its
/// own; `Server::handles` says where. A pool of one keeps its handle.
mod handles {
    use super::*;

    /// A pool of `N` on the simulated wire, with a free place in the server's set before its
    /// sockets, serves one client and lets every slot listen again. The handles before and after.
    fn after_one_client<const N: usize>() -> ([SocketHandle; N], [SocketHandle; N], SocketHandle) {
        let file = random_bytes(LEN, 40);
        let mut wire = wire();
        let mut pair = sim(&mut wire);
        let hole = pair.add(Side::Server, socket(64, 64));
        let pool = sockets::<N>(&mut pair, Side::Server);
        let _ = pair.net.server_sockets.remove(hole);
        let c = pair.add(Side::Client, socket(8192, 8192));
        let mut server = pair.listen(pool, &file[..], TIMEOUTS);
        let to = client::Connect::to((SimNet::address(Side::Server, false), PORT)).from_port(40000);
        let mut client = pair.connect(c, to, Vec::new());
        let served = pair.serve(&mut server, &mut client);
        assert!(served.server.unwrap().reply.is_thank_you());
        pair.drive(|net| {
            let _ = server.poll(net.now(), &mut net.server_sockets);
            (server.listening() == N, server.poll_at())
        });
        for &h in server.handles() {
            assert!(pair.net.server_sockets.get::<tcp::Socket>(h).is_listening());
        }
        (pool, *server.handles(), hole)
    }

    #[test]
    fn a_pool_of_two_moves_a_socket_that_listens_again_into_a_free_place_and_says_so() {
        let (before, after, hole) = after_one_client::<2>();
        assert_ne!(before, after);
        assert!(
            after.contains(&hole),
            "{after:?} lists the socket in its new place"
        );
    }

    #[test]
    fn a_pool_of_one_keeps_its_sockets_handle() {
        let (before, after, _) = after_one_client::<1>();
        assert_eq!(before, after);
    }
}
