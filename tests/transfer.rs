//! Whole transfers in memory, our server to our client: sizes at the buffers' edges and up to
//! megabytes, IPv4 and IPv6, small MTUs and tiny buffers, the pool serving several clients, and
//! how the states and reports read.

mod common;

use std::task::Poll;

use common::pair::{Hosts, Loop, Pair, SimWire, our_server_watched_against, transfer};
use common::{LEN, PORT, SERVER_V4, TIMEOUTS, random_bytes, read_all, socket};
use halfclose::server::ReplyTiming;
use halfclose::sim::Side;
use halfclose::{Error, REPLY, Timeouts, client, server};
use smoltcp::iface::SocketSet;
use smoltcp::socket::tcp;
use smoltcp::time::{Duration, Instant};

const BUFFER: usize = 4096;

/// Serve `payload` on a fresh loopback of `MTU` (see [`transfer`]) and check that it arrived
/// byte exact, with the reply.
fn assert_delivered<const MTU: usize>(payload: &[u8], buffer: usize, v6: bool) {
    let (t, received) = transfer(&mut Pair::new(Loop::<MTU>::new()), payload, buffer, v6);
    let served = t.server.expect("server report");
    let got = t.client.expect("client report");
    assert_eq!(received.len(), payload.len(), "length");
    assert!(received == payload, "received bytes differ from the file");
    assert_eq!(served.bytes, payload.len() as u64);
    assert_eq!(got.bytes, payload.len() as u64);
    assert!(served.reply.is_thank_you(), "reply was {}", served.reply);
}

#[test]
fn every_edge_size_arrives_byte_exact_with_the_reply() {
    for len in [0, 1, BUFFER - 1, BUFFER, BUFFER + 1, 1 << 20] {
        let payload = random_bytes(len, len as u64);
        assert_delivered::<1500>(&payload, BUFFER, false);
    }
}

#[test]
fn random_three_mebibytes_arrive_byte_exact() {
    let payload = random_bytes(3 << 20, 0xfeed);
    assert_delivered::<1500>(&payload, 64 * 1024, false);
}

#[test]
fn the_transfer_works_over_ipv6() {
    let payload = random_bytes(100_000, 6);
    assert_delivered::<1500>(&payload, BUFFER, true);
}

#[test]
fn tiny_buffers_and_a_small_mtu_still_deliver_byte_exact() {
    let payload = random_bytes(20_000, 64);
    // 64-byte socket buffers, and an MTU that leaves 64 bytes of TCP payload per segment.
    assert_delivered::<{ 20 + 20 + 64 }>(&payload, 64, false);
    assert_delivered::<{ 40 + 20 + 64 }>(&payload, 64, true);
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

/// A pool serving several clients, at once or one after another.
mod several_clients {
    use super::*;

    /// Poll the client in `slot`, if any; once it has fetched `payload` (checked), take it out
    /// and say so (`i` names it).
    fn client_done(
        slot: &mut Option<client::Client<Vec<u8>>>,
        now: Instant,
        sockets: &mut SocketSet<'static>,
        payload: &[u8],
        i: usize,
    ) -> bool {
        let Some(Poll::Ready(r)) = slot.as_mut().map(|c| c.poll(now, sockets)) else {
            return false;
        };
        r.expect("client side");
        assert!(
            slot.take().unwrap().into_sink() == payload,
            "client {i} bytes"
        );
        true
    }

    fn serve_clients<const N: usize>(clients: usize, at_once: bool) -> Vec<server::Report> {
        let payload = random_bytes(40_000, 3);
        let mut pair = Pair::new(Loop::<1500>::new());
        let handles = core::array::from_fn(|_| pair.add(Side::Server, socket(BUFFER, BUFFER)));
        let mut server = pair.listen::<_, N>(handles, &payload[..], Timeouts::DEFAULT);
        let client_sockets: Vec<_> = (0..clients)
            .map(|_| pair.add(Side::Client, socket(BUFFER, BUFFER)))
            .collect();
        let mut clients_running: Vec<Option<client::Client<Vec<u8>>>> =
            (0..clients).map(|_| None).collect();
        let mut finished = Vec::new();
        let mut served = Vec::new();
        let mut next = 0;
        let mut max_busy = 0;

        pair.drive(|net| {
            let now = net.now();
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
            let done = clients_running.iter_mut().enumerate();
            finished.extend(done.filter_map(|(i, slot)| {
                client_done(slot, now, &mut net.sockets, &payload, i).then_some(i)
            }));
            let wake = clients_running
                .iter()
                .flatten()
                .map(|c| c.deadline())
                // A client still to start starts in the next round.
                .chain([server.poll_at(), (next < clients).then_some(now)])
                .flatten()
                .min();
            (served.len() == clients && finished.len() == clients, wake)
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
}

/// What the logs and summaries print.
mod reports {
    use super::*;

    use std::cell::RefCell;
    use std::sync::Once;

    std::thread_local! {
        /// The messages this crate logged on this thread, while a test records them.
        static LOGGED: RefCell<Option<Vec<String>>> = const { RefCell::new(None) };
    }

    /// Records what this crate logs, on the threads that asked for it ([`logged_during`]), so
    /// that tests running at the same time do not see each other's lines.
    struct Recorder;

    impl log::Log for Recorder {
        fn enabled(&self, metadata: &log::Metadata) -> bool {
            metadata.target().starts_with("halfclose")
                && LOGGED.with(|logged| logged.borrow().is_some())
        }

        fn log(&self, record: &log::Record) {
            if self.enabled(record.metadata()) {
                let line = record.args().to_string();
                LOGGED.with(|logged| logged.borrow_mut().as_mut().map(|l| l.push(line)));
            }
        }

        fn flush(&self) {}
    }

    /// What this crate logged at debug level or more while `run` ran on this thread.
    fn logged_during(run: impl FnOnce()) -> Vec<String> {
        static INSTALL: Once = Once::new();
        INSTALL.call_once(|| {
            log::set_logger(&Recorder).unwrap();
            log::set_max_level(log::LevelFilter::Debug);
        });
        LOGGED.with(|logged| *logged.borrow_mut() = Some(Vec::new()));
        run();
        LOGGED.with(|logged| logged.borrow_mut().take().unwrap())
    }

    /// Each end logs each change of its state once, as `old=>new` by the states' names (the
    /// byte counts left out here), and nothing for a state that only counts on.
    #[test]
    fn each_end_logs_each_change_of_state_once() {
        let file = random_bytes(LEN, 11);
        let logged = logged_during(|| {
            let (t, received) = transfer(&mut Pair::new(Loop::<1500>::new()), &file, BUFFER, false);
            assert!(t.server.is_ok() && t.client.is_ok() && received == file);
        });
        let changes = |end: &str| -> Vec<String> {
            let prefix = format!("halfclose {end}: ");
            logged
                .iter()
                .filter_map(|line| line.strip_prefix(&prefix))
                .filter(|line| line.contains("=>"))
                .map(|line| {
                    // `sending(4096)=>half-closed(20000)`: `sending=>half-closed`.
                    let names = line
                        .split("=>")
                        .map(|state| state.split('(').next().unwrap());
                    names.collect::<Vec<_>>().join("=>")
                })
                .collect()
        };
        assert_eq!(
            changes("server"),
            [
                "accepting=>sending",
                "sending=>half-closed",
                "half-closed=>done"
            ]
        );
        assert_eq!(
            changes("client"),
            [
                "connecting=>receiving",
                "receiving=>replying",
                "replying=>done"
            ]
        );
    }

    /// The client's report times the handshake: over a link of 10 ms each way, the connection
    /// is established one round trip (SYN, then SYN-ACK) after the client started, and the
    /// file ends after that.
    #[test]
    fn a_client_report_is_connected_one_round_trip_after_it_started() {
        use halfclose::sim::{self, Link, Setup, Wire};
        let latency = Duration::from_millis(10);
        let link = Link {
            latency,
            ..Link::clean(1500)
        };
        let mut wire = Box::new(Wire::<1500, 16>::new(3, link, link));
        let file = random_bytes(20 * 1024, 3);
        let mut sink = vec![0u8; file.len()];
        let mut buffers = vec![0u8; 4 * 4096];
        let outcome = sim::transfer(
            &mut wire,
            &file,
            &mut sink,
            &mut buffers,
            Setup::new(TIMEOUTS),
        );
        assert!(outcome.delivered(), "{outcome:?}");
        let report = outcome.client.unwrap().unwrap();
        let handshake = report.connected_at - report.started_at;
        assert!(
            handshake >= latency * 2 && handshake < latency * 3,
            "connected {handshake} after the start, over a round trip of {}",
            latency * 2
        );
        assert!(report.connected_at < report.eof_at, "{report:?}");
        assert_eq!(report.transfer_time(), report.eof_at - report.connected_at);
    }

    /// A client's report in the units a person reads: size, server, the whole exchange, the
    /// file alone and the handshake.
    #[test]
    fn a_client_report_reads_as_one_line_in_human_units() {
        let report = client::Report {
            remote: (SERVER_V4, PORT).into(),
            bytes: 3 << 20,
            started_at: Instant::from_millis(1000),
            connected_at: Instant::from_millis(1010),
            eof_at: Instant::from_millis(3400),
            finished_at: Instant::from_millis(3420),
        };
        assert_eq!(
            report.to_string(),
            "3.00 MiB from 10.0.0.1:7891 in 2.42 s (the file in 2.39 s, connected after 10.0 ms)"
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
            remote: (SERVER_V4, PORT).into(),
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
}
