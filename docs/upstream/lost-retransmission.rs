// Paste into `mod test` at the end of smoltcp's src/socket/tcp.rs (0.14.0).
#[test]
fn upstream_a_lost_retransmission_and_the_next_hole_are_resent_within_round_trips() {
    let mut s = socket_established();
    s.remote_has_sack = true;
    s.remote_mss = 3;
    // One round trip of 10 ms measured: the probe timeout is two of them and 2 ms, 22 ms.
    s.send_slice(b"xyz").unwrap();
    recv!(s, time 1000, Ok(TcpRepr {
        seq_number: LOCAL_SEQ + 1,
        ack_number: Some(REMOTE_SEQ + 1),
        payload: &b"xyz"[..],
        ..RECV_TEMPL
    }));
    send!(s, time 1010, TcpRepr {
        seq_number: REMOTE_SEQ + 1,
        ack_number: Some(LOCAL_SEQ + 1 + 3),
        ..SEND_TEMPL
    });
    let una = LOCAL_SEQ + 1 + 3;
    let sack = |left: usize, right: usize| Some(((una + left).0 as u32, (una + right).0 as u32));

    // "aaa" and "ccc" are lost, "BBB", "DDD" and "eee" arrive.
    s.send_slice(b"aaaBBBcccDDDeee").unwrap();
    for (i, payload) in [&b"aaa"[..], b"BBB", b"ccc", b"DDD", b"eee"].into_iter().enumerate() {
        recv!(s, time 1020, Ok(TcpRepr {
            seq_number: una + 3 * i,
            ack_number: Some(REMOTE_SEQ + 1),
            payload,
            ..RECV_TEMPL
        }));
    }
    for sacked in [[sack(3, 6), None, None], [sack(9, 12), sack(3, 6), None], [sack(9, 15), sack(3, 6), None]] {
        send!(s, time 1030, TcpRepr {
            seq_number: REMOTE_SEQ + 1,
            ack_number: Some(una),
            sack_ranges: sacked,
            ..SEND_TEMPL
        });
    }
    // The fast retransmission of "aaa" is lost too.
    recv!(s, time 1030, Ok(TcpRepr {
        seq_number: una,
        ack_number: Some(REMOTE_SEQ + 1),
        payload: &b"aaa"[..],
        ..RECV_TEMPL
    }));

    // RFC 8985 (7.2): it is resent after the probe timeout, two round trips, not after the
    // RTO (a second, here; stock 0.14.0 waits that long).
    recv_nothing!(s, time 1051);
    recv!(s, time 1052, Ok(TcpRepr {
        seq_number: una,
        ack_number: Some(REMOTE_SEQ + 1),
        payload: &b"aaa"[..],
        ..RECV_TEMPL
    }));

    // Its ACK stops at the next hole, "ccc", with the data above it SACKed: RFC 6582 (3.2)
    // and RFC 6675 (5) resend the hole at once. (Stock 0.14.0 waits for three more
    // duplicate ACKs, which will not come: nothing more is in flight.)
    send!(s, time 1060, TcpRepr {
        seq_number: REMOTE_SEQ + 1,
        ack_number: Some(una + 6),
        sack_ranges: [sack(9, 15), None, None],
        ..SEND_TEMPL
    });
    recv!(s, time 1060, Ok(TcpRepr {
        seq_number: una + 6,
        ack_number: Some(REMOTE_SEQ + 1),
        payload: &b"ccc"[..],
        ..RECV_TEMPL
    }));
    send!(s, time 1070, TcpRepr {
        seq_number: REMOTE_SEQ + 1,
        ack_number: Some(una + 15),
        ..SEND_TEMPL
    });
    recv_nothing!(s, time 1075);

    // A lone last segment, lost, and the path dead from then on: the probe timer resends it
    // (two round trips and 2 ms, and 200 ms for a receiver that delays the ACK of a single
    // segment), probes once more, then leaves it to the RTO, backed off each time.
    s.send_slice(b"fff").unwrap();
    for (i, t) in [1080, 1302, 1524, 2524, 4524].into_iter().enumerate() {
        if i > 0 {
            recv_nothing!(s, time t - 1);
        }
        recv!(s, time t, Ok(TcpRepr {
            seq_number: una + 15,
            ack_number: Some(REMOTE_SEQ + 1),
            payload: &b"fff"[..],
            ..RECV_TEMPL
        }));
    }
}
