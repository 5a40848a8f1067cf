// Paste into `mod test` at the end of smoltcp's src/socket/tcp.rs (0.14.0).
#[test]
fn upstream_fin_on_a_segment_trimmed_to_a_shrunk_scaled_window_is_ignored() {
    // 64 KiB receive buffer: window scale 1, so the advertised window is rounded down to even.
    let mut s = socket_established_with_buffer_sizes(64, 65536);
    assert_eq!(s.remote_win_shift, 1);
    assert_eq!(s.remote_last_win, 32768); // right edge: REMOTE_SEQ + 1 + 65536

    send(&mut s, Instant::from_millis(0), &TcpRepr {
        seq_number: REMOTE_SEQ + 1,
        ack_number: Some(LOCAL_SEQ + 1),
        payload: &b"abc"[..],
        ..SEND_TEMPL
    });
    // 65533 bytes free, advertised as 32766 << 1 = 65532: the right edge moves back by one.
    recv(&mut s, Instant::from_millis(0), |r| {
        let r = r.unwrap();
        assert_eq!(r.ack_number, Some(REMOTE_SEQ + 1 + 3));
        assert_eq!(r.window_len, 32766);
    });

    // Sent before that ACK arrived: the rest of the previous window, with the FIN.
    let rest = vec![b'x'; 65533];
    send(&mut s, Instant::from_millis(1), &TcpRepr {
        control: TcpControl::Fin,
        seq_number: REMOTE_SEQ + 1 + 3,
        ack_number: Some(LOCAL_SEQ + 1),
        payload: &rest,
        ..SEND_TEMPL
    });
    // The segment is trimmed to the window (its last byte dropped), so its FIN was not
    // received: RCV.NXT stops before the dropped byte and the stream has not ended.
    assert_eq!(s.recv_queue(), 3 + 65532);
    assert_eq!(s.state, State::Established, "FIN accepted with a byte missing");
}
