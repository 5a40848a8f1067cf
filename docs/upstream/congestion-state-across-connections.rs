// Paste into `mod test` at the end of smoltcp's src/socket/tcp.rs (0.14.0); it needs the
// `socket-tcp-reno` feature.
#[cfg(feature = "socket-tcp-reno")]
#[test]
fn upstream_a_new_connection_starts_with_a_fresh_congestion_window() {
    let mut s = socket_established();
    s.set_congestion_control(CongestionControl::Reno);
    let initial = s.congestion_controller.inner().window();
    // The connection's ACKs open its window (slow start: up to a segment per ACK)...
    let rtte = RttEstimator::default();
    for _ in 0..10 {
        s.congestion_controller
            .inner_mut()
            .on_ack(Instant::from_millis(0), 1000, 0, &rtte);
    }
    assert!(s.congestion_controller.inner().window() > initial);
    // ...and the connection ends. RFC 5681 section 3.1: the socket's next connection, to any
    // peer, starts at the initial window, with an arbitrarily high ssthresh.
    s.abort();
    s.listen(LOCAL_PORT).unwrap();
    assert_eq!(s.congestion_controller.inner().window(), initial);
    assert_eq!(s.congestion_control(), CongestionControl::Reno);
}
