// smoltcp: src/socket/tcp/congestion/reno.rs
#[cfg(test)]
#[test]
fn upstream_reno_congestion_avoidance_grows_a_segment_per_window_acknowledged() {
    // RFC 5681 section 3.1: in congestion avoidance cwnd grows by about one SMSS per round trip,
    // and "the RECOMMENDED way to increase cwnd during congestion avoidance is to count the
    // number of bytes that have been acknowledged by ACKs for new data". A receiver with
    // delayed ACKs (RFC 1122, RFC 5681 section 4.2) acknowledges every other segment: counted
    // per ACK, the growth is half that.
    let mss = 1000;
    let rtt = RttEstimator::default();
    let now = Instant::from_millis(0);
    let mut reno = Reno::new();
    reno.set_mss(mss);
    reno.set_remote_window(1 << 20);
    // Into congestion avoidance at 20 segments: a loss with 40 in flight, then the ACK that
    // ends the recovery.
    reno.on_loss(now, 40 * mss);
    reno.on_ack(now, mss, 0, &rtt);
    assert_eq!(reno.window(), 20 * mss);
    // One round trip: the window's 20 segments acknowledged two at a time.
    for _ in 0..10 {
        reno.on_ack(now, 2 * mss, 0, &rtt);
    }
    assert_eq!(reno.window(), 21 * mss, "one segment more per window acknowledged");
    // The next round trip, at 21 segments: one more segment once 21 have been acknowledged.
    for _ in 0..10 {
        reno.on_ack(now, 2 * mss, 0, &rtt);
    }
    assert_eq!(reno.window(), 21 * mss, "20 of 21 segments acknowledged");
    reno.on_ack(now, mss, 0, &rtt);
    assert_eq!(reno.window(), 22 * mss);
}
