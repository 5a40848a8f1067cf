// Paste into `mod test` at the end of smoltcp's src/socket/tcp.rs (0.14.0).
#[test]
fn upstream_sack_duplicate_acks_with_a_growing_window_start_a_fast_retransmit() {
    let mut s = socket_established();
    s.remote_has_sack = true;
    s.remote_mss = 3;
    send!(s, time 0, TcpRepr {
        seq_number: REMOTE_SEQ + 1,
        ack_number: Some(LOCAL_SEQ + 1),
        ..SEND_TEMPL
    });
    s.send_slice(b"aaaBBBcccDDD").unwrap();
    // "aaa" is lost; the three segments after it arrive.
    for (i, payload) in [&b"aaa"[..], b"BBB", b"ccc", b"DDD"].into_iter().enumerate() {
        recv!(s, time 1000, Ok(TcpRepr {
            seq_number: LOCAL_SEQ + 1 + 3 * i,
            ack_number: Some(REMOTE_SEQ + 1),
            payload,
            ..RECV_TEMPL
        }));
    }

    // Each of them brings a duplicate ACK that SACKs one more segment and, as a Linux
    // receiver's do while its receive window grows, advertises a larger window.
    for (i, window_len) in [262, 268, 274].into_iter().enumerate() {
        let sacked = (
            (LOCAL_SEQ + 1 + 3).0 as u32,
            (LOCAL_SEQ + 1 + 3 * (i + 2)).0 as u32,
        );
        send!(s, time 1005, TcpRepr {
            seq_number: REMOTE_SEQ + 1,
            ack_number: Some(LOCAL_SEQ + 1),
            window_len,
            sack_ranges: [Some(sacked), None, None],
            ..SEND_TEMPL
        });
    }

    // RFC 6675: three duplicate ACKs, so "aaa" is retransmitted at once. (Stock 0.14.0 takes
    // each for a window update and waits for its retransmission timeout, a second later.)
    recv!(s, time 1010, Ok(TcpRepr {
        seq_number: LOCAL_SEQ + 1,
        ack_number: Some(REMOTE_SEQ + 1),
        payload: &b"aaa"[..],
        ..RECV_TEMPL
    }));
}
