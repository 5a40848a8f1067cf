//! A program on smoltcp 0.14's default features adds halfclose with its own defaults and moves a
//! file in memory: halfclose's `Server` on `device::Loopback`, and as the client a plain smoltcp
//! socket that reads to end-of-file, replies "Thank you\0" and closes.

use halfclose::device::Loopback;
use halfclose::server::Server;
use halfclose::{DEFAULT_PORT, REPLY, Timeouts};
use smoltcp::iface::{Config, Interface, SocketSet};
use smoltcp::phy::Medium;
use smoltcp::socket::tcp::{self, RecvError};
use smoltcp::time::{Duration, Instant};
use smoltcp::wire::{HardwareAddress, IpAddress, IpCidr};

fn main() {
    let file: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
    let address = IpAddress::v4(127, 0, 0, 1);

    let mut device = Loopback::<1500, 8>::new(Medium::Ip);
    let mut now = Instant::ZERO;
    let mut iface = Interface::new(Config::new(HardwareAddress::Ip), &mut device, now);
    iface.update_ip_addrs(|a| a.push(IpCidr::new(address, 8)).expect("one address"));

    // smoltcp's defaults include `alloc`: sockets on Vec storage.
    let socket = || {
        tcp::Socket::new(
            tcp::SocketBuffer::new(vec![0; 16 * 1024]),
            tcp::SocketBuffer::new(vec![0; 16 * 1024]),
        )
    };
    let mut sockets = SocketSet::new(vec![]);
    let server_socket = sockets.add(socket());
    let client_socket = sockets.add(socket());

    let mut server = Server::listen(
        &mut sockets,
        [server_socket],
        DEFAULT_PORT,
        &file[..],
        Timeouts::DEFAULT,
    )
    .expect("the server listens");
    sockets
        .get_mut::<tcp::Socket>(client_socket)
        .connect(iface.context(), (address, DEFAULT_PORT), 49152)
        .expect("the client connects");

    let mut copy = Vec::new();
    let mut replied = false;
    let report = loop {
        iface.poll(now, &mut device, &mut sockets);
        if let Some(result) = server.poll(now, &mut sockets).into_iter().next() {
            break result.expect("the transfer succeeds");
        }
        let client = sockets.get_mut::<tcp::Socket>(client_socket);
        // Read once connected, until the reply is sent.
        while !replied && client.state() != tcp::State::SynSent {
            match client.recv(|bytes| (bytes.len(), bytes.to_vec())) {
                Ok(bytes) if bytes.is_empty() => break,
                Ok(bytes) => copy.extend(bytes),
                Err(RecvError::Finished) => {
                    // End of file: the server half-closed. Reply, then close our side.
                    client.send_slice(REPLY).expect("room for the reply");
                    client.close();
                    replied = true;
                }
                Err(RecvError::InvalidState) => panic!("the client's connection was reset"),
            }
        }
        now += Duration::from_millis(1);
        assert!(
            now < Instant::from_secs(60),
            "no end after a minute of simulated time"
        );
    };

    assert_eq!(copy, file, "the copy differs from the file");
    println!(
        "consumer smoltcp-defaults: {} bytes served, {} received, reply {:?}, {} ms simulated",
        report.bytes,
        copy.len(),
        report.reply,
        now.total_millis()
    );
}
