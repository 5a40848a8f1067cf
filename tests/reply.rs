//! The reply: `"Thank you\0"` and what the server makes of anything else (one byte off, one
//! byte long, at `REPLY_MAX`), when it comes relative to our FIN, and a reply taken a few bytes
//! at a time.

mod common;

use common::pair::{Hosts, Loop, Pair, our_client_against, our_server_against, transfer, wire};
use std::task::Poll;

use common::{LEN, LONG, PORT, SERVER_V4, TIMEOUTS, random_bytes, read_all, socket};
use halfclose::server::ReplyTiming;
use halfclose::sim::{self, Side};
use halfclose::{Error, Phase, REPLY, REPLY_MAX, client, server};
use smoltcp::socket::tcp;
use smoltcp::time::{Duration, Instant};

const BUFFER: usize = 4096;

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

/// A reply that is not `"Thank you\\0"`: the server stops at the first byte that rules it out.
mod wrong_or_too_long {
    use super::*;

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

    #[test]
    fn client_replies_something_else_server_reports_the_wrong_reply() {
        let file = random_bytes(LONG, 3);
        let mut got = Vec::new();
        let mut sent = false;
        let r = our_server_against(&file, TIMEOUTS, &mut |sock, _, _| {
            if read_all(sock, &mut got) && !sent {
                sock.send_slice(b"Thanks!").unwrap();
                sock.close();
                sent = true;
            }
            None
        });
        match r.unwrap_err() {
            Error::WrongReply { reply, bytes } => {
                // Read up to the first byte that cannot be "Thank you\0"'s: the 's'.
                assert_eq!(reply.kept(), b"Thanks");
                assert_eq!(bytes, LONG as u64);
            }
            e => panic!("{e:?}"),
        }
    }

    /// The first byte already rules out `"Thank you\0"`: the server does not read on to 1024.
    #[test]
    fn client_replies_2000_wrong_bytes_server_stops_at_the_first() {
        let file = random_bytes(LONG, 4);
        let long = [b'x'; 2000];
        let mut got = Vec::new();
        let mut queued = 0;
        let r = our_server_against(&file, TIMEOUTS, &mut |sock, _, _| {
            if read_all(sock, &mut got) && queued < long.len() && sock.may_send() {
                queued += sock.send_slice(&long[queued..]).unwrap();
            }
            None
        });
        match r.unwrap_err() {
            Error::WrongReply { reply, bytes } => {
                assert_eq!(reply.kept(), b"x", "read up to the first wrong byte");
                assert_eq!(bytes, LONG as u64);
            }
            e => panic!("{e:?}"),
        }
    }

    #[test]
    fn client_replies_thank_you_and_more_server_stops_at_the_first_extra_byte() {
        let file = random_bytes(LONG, 13);
        let mut got = Vec::new();
        let mut sent = false;
        let r = our_server_against(&file, TIMEOUTS, &mut |sock, _, _| {
            if read_all(sock, &mut got) && !sent {
                sock.send_slice(b"Thank you\0 and goodbye").unwrap();
                sent = true;
            }
            None
        });
        match r.unwrap_err() {
            Error::ReplyTooLong { reply, bytes } => {
                assert_eq!(reply.kept(), b"Thank you\0 ");
                assert_eq!(bytes, LONG as u64);
            }
            e => panic!("{e:?}"),
        }
    }

    /// The client's FIN comes first and leaves it no way to reply: the server still sends the whole
    /// file (the client can still read), then reports the empty reply.
    #[test]
    fn client_half_closes_first_server_sends_everything_and_reports_an_empty_reply() {
        let file = random_bytes(LONG, 11);
        let mut got = Vec::new();
        let mut closed = false;
        let r = our_server_against(&file, TIMEOUTS, &mut |sock, _, _| {
            if !closed && sock.may_send() {
                sock.close();
                closed = true;
            }
            read_all(sock, &mut got);
            None
        });
        match r.unwrap_err() {
            Error::WrongReply { reply, bytes } => {
                assert!(reply.is_empty());
                assert_eq!(bytes, LONG as u64);
            }
            e => panic!("{e:?}"),
        }
        assert!(got == file);
    }
}

/// When the reply comes relative to our FIN, and what the server reports of it.
mod order {
    use super::*;

    #[test]
    fn server_receives_reply_after_its_fin() {
        let payload = random_bytes(50_000, 1);
        let mut pair = Pair::new(Loop::<1500>::new());
        let (t, _) = transfer(&mut pair, &payload, BUFFER, false);
        let served = t.server.unwrap();
        t.client.unwrap();
        let net = &pair.net;

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

    /// Queue what fits of `rest`, and close once it is all queued: whether it closed.
    fn send_then_close(socket: &mut tcp::Socket, rest: &mut &[u8]) -> bool {
        let n = socket.send_slice(rest).unwrap();
        *rest = &rest[n..];
        if rest.is_empty() {
            socket.close();
        }
        rest.is_empty()
    }

    /// The lesson's contrast: a server that closes its socket fully (no half-close) refuses
    /// whatever arrives afterwards with a RST, as a kernel does, and so never reads the reply.
    #[test]
    fn a_server_that_closes_fully_never_gets_the_reply() {
        let payload = random_bytes(10_000, 2);
        let mut pair = Pair::new(Loop::<1500>::new());
        let s = pair.add(Side::Server, socket(BUFFER, BUFFER));
        let c = pair.add(Side::Client, socket(BUFFER, BUFFER));
        pair.tcp(Side::Server, s).listen(PORT).unwrap();
        let to = client::Connect::to((SERVER_V4, PORT)).from_port(49152);
        let mut client = pair.connect(c, to, Vec::new());

        let mut rest: &[u8] = &payload;
        let mut closed = false;
        let mut reply_bytes_read = 0;
        let mut outcome = None;
        pair.drive(|net| {
            let now = net.now();
            let socket = net.sockets.get_mut::<tcp::Socket>(s);
            if socket.may_send() && !closed {
                closed = send_then_close(socket, &mut rest);
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
            (outcome.is_some(), client.deadline())
        });
        let net = &pair.net;

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

    /// A BSD server would read these bytes after its shutdown, as the reply: so does ours.
    #[test]
    fn client_sends_the_reply_before_the_file_ends_and_it_counts_as_the_reply() {
        let file = random_bytes(LONG, 5);
        let mut got = Vec::new();
        let (mut sent, mut closed) = (false, false);
        let r = our_server_against(&file, TIMEOUTS, &mut |sock, _, _| {
            if !sent && sock.may_send() {
                sock.send_slice(REPLY).unwrap();
                sent = true;
            }
            if read_all(sock, &mut got) && !closed {
                sock.close();
                closed = true;
            }
            None
        });
        let report = r.unwrap();
        assert!(report.reply.is_thank_you());
        assert!(
            report.reply_at < report.fin_queued_at,
            "the reply came first"
        );
        assert!(got == file);
    }
}

/// A reply the server takes a few bytes at a time.
mod trickled {
    use super::*;

    /// A server with a 4-byte receive buffer that reads it every 6 s takes the reply a few bytes at
    /// a time: the reply phase lasts longer than the reply limit, but each acknowledgement is
    /// progress, so the client waits it out.
    #[test]
    fn a_server_that_takes_the_reply_a_few_bytes_at_a_time_is_waited_for() {
        let file = random_bytes(1000, 16);
        let mut sent = false;
        let mut reply = Vec::new();
        let mut next_read = Instant::ZERO;
        let (r, got) = our_client_against(4, true, &mut |sock, now, _| {
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
}
