// Paste into `mod test` at the end of smoltcp's src/socket/tcp.rs (0.14.0).
#[test]
fn upstream_fast_retransmit_resends_a_lone_fin() {
    let mut s = socket_established();
    s.send_slice(b"abc").unwrap();
    recv!(s, time 1000, Ok(TcpRepr {
        seq_number: LOCAL_SEQ + 1,
        ack_number: Some(REMOTE_SEQ + 1),
        payload: &b"abc"[..],
        ..RECV_TEMPL
    }));
    send!(s, time 1005, TcpRepr {
        seq_number: REMOTE_SEQ + 1,
        ack_number: Some(LOCAL_SEQ + 1 + 3),
        ..SEND_TEMPL
    });

    // The data is acknowledged; now the FIN goes, alone, and is lost.
    s.close();
    recv!(s, time 1010, Ok(TcpRepr {
        control: TcpControl::Fin,
        seq_number: LOCAL_SEQ + 1 + 3,
        ack_number: Some(REMOTE_SEQ + 1),
        ..RECV_TEMPL
    }));

    // Three late duplicates of the last ACK (a duplicating or reordering path).
    for t in [1020, 1025, 1030] {
        send!(s, time t, TcpRepr {
            seq_number: REMOTE_SEQ + 1,
            ack_number: Some(LOCAL_SEQ + 1 + 3),
            ..SEND_TEMPL
        });
    }

    // Fast retransmit: the FIN goes again. (Stock 0.14.0 sends nothing, now or ever: the
    // retransmission timer has been idled and nothing re-arms it.)
    recv!(s, time 1035, Ok(TcpRepr {
        control: TcpControl::Fin,
        seq_number: LOCAL_SEQ + 1 + 3,
        ack_number: Some(REMOTE_SEQ + 1),
        ..RECV_TEMPL
    }));
}
