//! The two-host simulation with raw smoltcp sockets playing the peer: what the tests of
//! misbehaving peers and of the exchange's edges share.

use halfclose::sim::{Link, Network, Side, Wire};
use smoltcp::iface::SocketSet;
use smoltcp::socket::tcp;
use smoltcp::time::{Duration, Instant};

/// The wire: MTU 1500, 16 packets in flight each way.
pub type SimWire = Wire<1500, 16>;
/// Both hosts on that wire.
pub type Net<'a> = Network<'a, 'static, 1500, 16>;

/// A clean wire both ways.
pub fn wire() -> Box<SimWire> {
    Box::new(SimWire::new(1, Link::clean(1500), Link::clean(1500)))
}

/// Both hosts on `wire`, with empty socket sets.
pub fn network(wire: &mut SimWire) -> Net<'_> {
    Network::new(wire, SocketSet::new(vec![]), SocketSet::new(vec![]))
}

/// The server host's address.
pub fn server_addr() -> smoltcp::wire::IpAddress {
    Net::address(Side::Server, false)
}

/// Step both hosts until `step` says done; every loop ends by the simulated deadline, or after
/// a million steps should the clock crawl (a deadline left in the past moves it a microsecond
/// at a time).
pub fn drive(net: &mut Net<'_>, mut step: impl FnMut(&mut Net<'_>) -> (bool, Option<Instant>)) {
    let end = net.now() + Duration::from_secs(600);
    for _ in 0..1_000_000 {
        net.poll();
        let (done, deadline) = step(net);
        if done {
            return;
        }
        net.advance([deadline, Some(end)]);
        assert!(net.now() < end, "no end within 600 simulated seconds");
    }
    panic!("no end after a million steps, at {}", net.now());
}

/// Read everything that arrived; `true` once the peer's FIN has been read.
pub fn read_all(socket: &mut tcp::Socket, got: &mut Vec<u8>) -> bool {
    loop {
        match socket.recv(|b| (b.len(), b.to_vec())) {
            Ok(bytes) if bytes.is_empty() => return false,
            Ok(bytes) => got.extend(bytes),
            Err(tcp::RecvError::Finished) => return true,
            Err(tcp::RecvError::InvalidState) => return false,
        }
    }
}
