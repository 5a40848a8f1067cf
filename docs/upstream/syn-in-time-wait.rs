// Paste into `mod test` at the end of smoltcp's src/socket/tcp.rs (0.14.0).
#[test]
fn upstream_a_syn_in_time_wait_is_answered_with_a_challenge_ack() {
    let mut s = socket_time_wait(false);
    recv!(
        s,
        [TcpRepr {
            seq_number: LOCAL_SEQ + 1 + 1,
            ack_number: Some(REMOTE_SEQ + 1 + 1),
            ..RECV_TEMPL
        }]
    );
    // The peer opens a new connection from the same port: a SYN, no ACK, a new initial
    // sequence number. RFC 9293 3.10.7.4 and RFC 5961 4: a challenge ACK, not silence.
    send!(s, time 1_000, TcpRepr {
        control: TcpControl::Syn,
        seq_number: REMOTE_SEQ + 1 + 1 + 100_000,
        ack_number: None,
        ..SEND_TEMPL
    }, Some(TcpRepr {
        seq_number: LOCAL_SEQ + 1 + 1,
        ack_number: Some(REMOTE_SEQ + 1 + 1),
        ..RECV_TEMPL
    }));
    assert_eq!(s.state, State::TimeWait);
}
