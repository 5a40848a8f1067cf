//! `loopback --trace`: every segment in two columns (server | client), sequence numbers relative
//! to each side's SYN, and both TCP states right after it. The same segments make the pictures
//! of `--svg` and `--graph` (see `picture`).

use halfclose::device::Loopback;
use halfclose::segment::Segment;
use smoltcp::iface::{Interface, SocketHandle, SocketSet};
use smoltcp::phy::Medium;
use smoltcp::socket::tcp;
use smoltcp::time::Instant;
use smoltcp::wire::IpAddress;

use super::picture::{self, End, Exchange};

/// Prints segments in two columns (if asked to), sequence numbers relative to each side's SYN,
/// and records them for the pictures.
pub struct Trace {
    server: SocketHandle,
    client: SocketHandle,
    port: u16,
    print: bool,
    server_isn: Option<u32>,
    client_isn: Option<u32>,
    count: usize,
    exchange: Exchange,
}

impl Trace {
    /// A trace of a server at `addr:port` and a client at `addr:client_port`, titled `title`;
    /// with `print`, the header is printed now and a line per segment as it arrives.
    pub fn new(
        server: SocketHandle,
        client: SocketHandle,
        (addr, port): (IpAddress, u16),
        client_port: u16,
        print: bool,
        title: String,
    ) -> Self {
        let (left, right) = (
            format!("server {addr}:{port}"),
            format!("client {addr}:{client_port}"),
        );
        if print {
            println!(
                "{:>4}  {left:<36} {right:<36}  {:<13} client state",
                "#", "server state"
            );
        }
        Trace {
            server,
            client,
            port,
            print,
            server_isn: None,
            client_isn: None,
            count: 0,
            exchange: Exchange {
                // The loopback's clock moves only to a timer: what counts is the order.
                timed: false,
                ..Exchange::new(title, left, right)
            },
        }
    }

    /// The segments so far.
    pub fn exchange(&self) -> &Exchange {
        &self.exchange
    }

    /// `Interface::poll`, delivering packets one by one so each line shows both TCP states
    /// right after it.
    pub fn poll<const MTU: usize, const SLOTS: usize>(
        &mut self,
        now: Instant,
        iface: &mut Interface,
        device: &mut Loopback<MTU, SLOTS>,
        sockets: &mut SocketSet<'_>,
    ) {
        while let Some(packet) = device.peek() {
            let segment = Segment::parse(Medium::Ip, packet);
            let scale = picture::window_scale(packet);
            iface.poll_ingress_single(now, device, sockets);
            if let Some(segment) = segment {
                self.line(now, &segment, scale, sockets);
            }
        }
        iface.poll_egress(now, device, sockets);
    }

    fn line(&mut self, now: Instant, seg: &Segment, scale: Option<u8>, sockets: &SocketSet<'_>) {
        let from_server = seg.src.port == self.port;
        let states = (
            sockets.get::<tcp::Socket>(self.server).state(),
            sockets.get::<tcp::Socket>(self.client).state(),
        );
        let from = if from_server {
            End::Server
        } else {
            End::Client
        };
        self.exchange.seen(now, from, *seg, scale, Some(states));
        if !self.print {
            return;
        }
        let (own, peer) = if from_server {
            (&mut self.server_isn, self.client_isn)
        } else {
            (&mut self.client_isn, self.server_isn)
        };
        if seg.syn {
            *own = Some(seg.seq);
        }
        let rel = |n: u32, isn: Option<u32>| n.wrapping_sub(isn.unwrap_or(n));
        let mut text = format!("{} seq {}", seg.flags(), rel(seg.seq, *own));
        if let Some(ack) = seg.ack {
            text += &format!(" ack {}", rel(ack, peer));
        }
        text += &format!(" len {}", seg.len());
        let (left, right) = if from_server {
            (format!("{text} -->"), String::new())
        } else {
            (String::new(), format!("<-- {text}"))
        };
        self.count += 1;
        println!(
            "{:>4}  {:<36} {:<36}  {:<13} {}",
            self.count,
            left,
            right,
            states.0.to_string(),
            states.1,
        );
    }
}
