// smoltcp: src/iface/interface/tests/ipv4.rs
#[test]
#[cfg(all(feature = "medium-ethernet", feature = "socket-tcp"))]
fn upstream_a_relistened_socket_answers_a_resolved_client_at_once() {
    use crate::socket::tcp;

    let (mut iface, mut sockets, mut device) = setup(Medium::Ethernet);
    let our_mac = EthernetAddress([0x02, 0x02, 0x02, 0x02, 0x02, 0x02]);
    let ours = Ipv4Address::new(192, 168, 1, 1);
    let client = (Ipv4Address::new(192, 168, 1, 2), EthernetAddress([0x02, 0, 0, 0, 0, 0x02]));
    // Nobody answers ARP for this one.
    let forged = (Ipv4Address::new(192, 168, 1, 99), EthernetAddress([0x02, 0, 0, 0, 0, 0x66]));

    let arp = ArpRepr::EthernetIpv4 {
        operation: ArpOperation::Request,
        source_hardware_addr: client.1,
        source_protocol_addr: client.0,
        target_hardware_addr: EthernetAddress::default(),
        target_protocol_addr: ours,
    };
    let mut frame = vec![0u8; 14 + arp.buffer_len()];
    let mut eth = EthernetFrame::new_unchecked(&mut frame[..]);
    eth.set_dst_addr(EthernetAddress::BROADCAST);
    eth.set_src_addr(client.1);
    eth.set_ethertype(EthernetProtocol::Arp);
    arp.emit(&mut ArpPacket::new_unchecked(eth.payload_mut()));
    device.rx_queue.push_back(frame);

    let syn = |(src, mac): (Ipv4Address, EthernetAddress)| {
        let tcp = TcpRepr {
            src_port: 40000,
            dst_port: 7,
            control: TcpControl::Syn,
            seq_number: TcpSeqNumber(1000),
            ack_number: None,
            window_len: 1024,
            window_scale: None,
            max_seg_size: Some(1460),
            sack_permitted: false,
            sack_ranges: [None; 3],
            timestamp: None,
            payload: &[],
        };
        let ip = Ipv4Repr {
            src_addr: src,
            dst_addr: ours,
            next_header: IpProtocol::Tcp,
            payload_len: tcp.buffer_len(),
            hop_limit: 64,
        };
        let mut frame = vec![0u8; 14 + ip.buffer_len() + tcp.buffer_len()];
        let mut eth = EthernetFrame::new_unchecked(&mut frame[..]);
        eth.set_dst_addr(our_mac);
        eth.set_src_addr(mac);
        eth.set_ethertype(EthernetProtocol::Ipv4);
        let caps = ChecksumCapabilities::default();
        let mut packet = Ipv4Packet::new_unchecked(eth.payload_mut());
        ip.emit(&mut packet, &caps);
        let mut segment = TcpPacket::new_unchecked(packet.payload_mut());
        tcp.emit(&mut segment, &src.into(), &ours.into(), &caps);
        frame
    };
    let syn_ack_to = |frames: &mut std::collections::VecDeque<Vec<u8>>, to: Ipv4Address| {
        frames.drain(..).any(|frame| {
            let eth = EthernetFrame::new_checked(&frame[..]).unwrap();
            if eth.ethertype() != EthernetProtocol::Ipv4 {
                return false;
            }
            let ip = Ipv4Packet::new_checked(eth.payload()).unwrap();
            let tcp = TcpPacket::new_checked(ip.payload()).unwrap();
            ip.dst_addr() == to && tcp.syn() && tcp.ack()
        })
    };

    let buffer = || tcp::SocketBuffer::new(vec![0; 1024]);
    let handle = sockets.add(tcp::Socket::new(buffer(), buffer()));
    sockets.get_mut::<tcp::Socket>(handle).listen(7).unwrap();

    // A forged SYN: its SYN-ACK waits for an ARP answer that never comes, and the socket is
    // silenced for DISCOVERY_SILENT_TIME.
    device.rx_queue.push_back(syn(forged));
    iface.poll(Instant::from_millis(0), &mut device, &mut sockets);
    assert_eq!(sockets.get::<tcp::Socket>(handle).state(), tcp::State::SynReceived);

    // The application takes the socket back and listens again; the real client's SYN comes.
    let socket = sockets.get_mut::<tcp::Socket>(handle);
    socket.abort();
    socket.listen(7).unwrap();
    device.tx_queue.clear();
    device.rx_queue.push_back(syn(client));
    iface.poll(Instant::from_millis(10), &mut device, &mut sockets);

    // RFC 9293, 3.10.7.2: a SYN in LISTEN is answered with a SYN-ACK. The client's address is
    // in the neighbor cache; RFC 1122, 2.3.2.1 rate-limits ARP per destination, and nothing
    // here is sent to the forged one.
    assert!(
        syn_ack_to(&mut device.tx_queue, client.0),
        "the resolved client's SYN-ACK waited for the forged peer's ARP silence"
    );
}
