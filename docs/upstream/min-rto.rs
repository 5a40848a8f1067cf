// Paste into `mod test` at the end of smoltcp's src/socket/tcp.rs (0.14.0).
// New API: Socket::set_min_rto, which stock smoltcp 0.14.0 does not have.
#[test]
fn upstream_min_rto_bounds_the_retransmission_timeout() {
    let mut s = socket_established();
    s.set_min_rto(Duration::from_millis(200));
    assert_eq!(s.min_rto(), Duration::from_millis(200));
    // A round trip of 10 ms, measured once.
    s.send_slice(b"abc").unwrap();
    recv!(s, time 1000, Ok(TcpRepr {
        seq_number: LOCAL_SEQ + 1,
        ack_number: Some(REMOTE_SEQ + 1),
        payload: &b"abc"[..],
        ..RECV_TEMPL
    }));
    send!(s, time 1010, TcpRepr {
        seq_number: REMOTE_SEQ + 1,
        ack_number: Some(LOCAL_SEQ + 1 + 3),
        ..SEND_TEMPL
    });

    // The next segment is lost: it is retransmitted when the RTO, raised to the 200 ms
    // minimum, expires (the stock minimum, one second, cannot be changed).
    s.send_slice(b"def").unwrap();
    recv!(s, time 1020, Ok(TcpRepr {
        seq_number: LOCAL_SEQ + 1 + 3,
        ack_number: Some(REMOTE_SEQ + 1),
        payload: &b"def"[..],
        ..RECV_TEMPL
    }));
    recv_nothing!(s, time 1219);
    recv!(s, time 1220, Ok(TcpRepr {
        seq_number: LOCAL_SEQ + 1 + 3,
        ack_number: Some(REMOTE_SEQ + 1),
        payload: &b"def"[..],
        ..RECV_TEMPL
    }));

    // The setting outlives the connection, as the other settings do.
    s.abort();
    assert_eq!(s.min_rto(), Duration::from_millis(200));
}
