// Paste into `mod test` at the end of smoltcp's src/socket/tcp.rs (0.14.0).
#[test]
fn upstream_listen_from_time_wait_does_not_drop_the_delayed_ack_of_the_fin() {
    let mut s = socket_fin_wait_2();
    s.set_ack_delay(Some(ACK_DELAY_DEFAULT));

    // The peer's last data and its FIN, in one segment: TIME-WAIT, the ACK delayed.
    send!(s, time 0, TcpRepr {
        control: TcpControl::Fin,
        seq_number: REMOTE_SEQ + 1,
        ack_number: Some(LOCAL_SEQ + 1 + 1),
        payload: &b"abc"[..],
        ..SEND_TEMPL
    });
    assert_eq!(s.state, State::TimeWait);
    assert_eq!(s.recv_slice(&mut [0; 3]), Ok(3));
    recv_nothing!(s, time 1);

    // The application reuses the socket, as `is_open() == false` in TIME-WAIT invites it to.
    // Whatever listen() does, the FIN must still be acknowledged (RFC 9293 §3.10.7.4): either
    // listen() waits for the ACK, or the ACK goes out first.
    let listened = s.listen(LOCAL_PORT);
    let mut acked = false;
    for t in 1..=20 {
        s.cx.set_now(Instant::from_millis(t));
        let _ = s.socket.dispatch(&mut s.cx, |_, _, (_, r)| {
            acked |= r.ack_number == Some(REMOTE_SEQ + 1 + 3 + 1);
            Ok::<(), ()>(())
        });
    }
    assert!(acked, "the FIN was never acknowledged (listen: {listened:?})");
    if listened.is_err() {
        assert_eq!(s.listen(LOCAL_PORT), Ok(()));
    }
}
