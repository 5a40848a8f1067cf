// Paste into `mod test` at the end of smoltcp's src/socket/tcp.rs (0.14.0).
#[test]
fn upstream_fast_retransmit_survives_a_full_device() {
    let mut s = socket_established();
    s.remote_mss = 3;
    send!(s, time 0, TcpRepr {
        seq_number: REMOTE_SEQ + 1,
        ack_number: Some(LOCAL_SEQ + 1),
        ..SEND_TEMPL
    });

    // Four segments, all in flight; the first is lost.
    s.send_slice(b"aaaBBBcccDDD").unwrap();
    for (i, payload) in [b"aaa", b"BBB", b"ccc", b"DDD"].into_iter().enumerate() {
        recv!(s, time 1000, Ok(TcpRepr {
            seq_number: LOCAL_SEQ + 1 + 3 * i,
            ack_number: Some(REMOTE_SEQ + 1),
            payload: &payload[..],
            ..RECV_TEMPL
        }));
    }

    // Three duplicate ACKs: fast retransmit.
    for t in [1050, 1055, 1060] {
        send!(s, time t, TcpRepr {
            seq_number: REMOTE_SEQ + 1,
            ack_number: Some(LOCAL_SEQ + 1),
            ..SEND_TEMPL
        });
    }

    // The device's transmit queue is full at that moment: `Device::transmit` returns `None`,
    // so the interface's `emit` fails and the segment does not leave.
    s.cx.set_now(Instant::from_millis(1065));
    assert_eq!(s.socket.dispatch(&mut s.cx, |_, _, _| Err(())), Err(()));

    // At the next opportunity the lost segment goes. (Stock 0.14.0 sends nothing, now or ever:
    // the pending fast retransmit was cleared and the retransmission timer idled before the
    // device was asked for room.)
    recv!(s, time 1070, Ok(TcpRepr {
        seq_number: LOCAL_SEQ + 1,
        ack_number: Some(REMOTE_SEQ + 1),
        payload: &b"aaa"[..],
        ..RECV_TEMPL
    }));
}
