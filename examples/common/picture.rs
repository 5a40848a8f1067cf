//! Pictures of one TCP connection, drawn from a real run as SVG: a ladder diagram (every segment
//! an arrow between the two ends, each socket's state beside it) and a time-sequence graph in the
//! style of tcptrace's and Wireshark's Stevens graphs (the sender's sequence numbers, the
//! acknowledged edge and the receive window over time).
//!
//! A run is recorded as an [`Exchange`]: the loopback example records the segments it delivers,
//! the maintainers' `soak --seed N` what the simulated wire did with each packet, and their
//! `draw` program the segments of a pcap capture. The SVG is written by hand (lines, arrows and
//! text are all these pictures need) with fixed-precision numbers and nothing from the wall
//! clock, so the same run always gives the same bytes. This file is also the tools crate's
//! `halfclose_tools::picture` (one copy of the code, included by path).

use std::fmt::Write as _;
use std::path::Path;

use halfclose::segment::Segment;
use smoltcp::socket::tcp::State;
use smoltcp::time::Instant;
use smoltcp::wire::{IpProtocol, Ipv4Packet, TcpOption, TcpPacket};

/// One end of the connection: the server (left in the ladder) or the client (right).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum End {
    /// The end that accepted the connection (received the first SYN).
    Server,
    /// The end that opened it.
    Client,
}

impl End {
    /// The end at the other side of the connection.
    pub fn other(self) -> End {
        match self {
            End::Server => End::Client,
            End::Client => End::Server,
        }
    }
}

/// What became of a segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fate {
    /// Sent, and not seen arriving (still on its way when the run ended).
    Pending,
    /// It arrived (or was seen on the wire, for a capture).
    Arrived,
    /// It arrived with a bit flipped: the receiver's checksum dropped it.
    Corrupted,
    /// Lost on the way (by the link's loss rate, or too long for its MTU).
    Lost,
    /// Dropped by a full queue.
    Overflowed,
    /// Dropped by a cut link.
    Cut,
}

/// One segment of the exchange.
#[derive(Debug, Clone)]
pub struct Packet {
    /// Who sent it.
    pub from: End,
    /// Its TCP header fields.
    pub segment: Segment,
    /// The window scale option, on a SYN that carries one.
    pub window_scale: Option<u8>,
    /// When it left (for a capture or the loopback: the one instant it was seen).
    pub sent: Instant,
    /// When it arrived; `None` if it never did.
    pub arrived: Option<Instant>,
    /// What became of it.
    pub fate: Fate,
    /// An extra copy the network made of an earlier segment.
    pub copy: bool,
    /// Both sockets' states (server, client) right after it arrived, if the source knows them.
    pub states: Option<(State, State)>,
    /// Both sockets' states right after it was sent, if the source knows them.
    pub sent_states: Option<(State, State)>,
}

/// A step of the run, in the order it happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Packet number `n` left its sender.
    Sent(usize),
    /// Packet number `n` arrived.
    Arrived(usize),
}

/// The segments of one connection, in the order they happened.
#[derive(Debug, Clone)]
pub struct Exchange {
    /// A line that says what run this is.
    pub title: String,
    /// The two ends' names (server, client), e.g. `server 127.0.0.1:7891`.
    pub ends: (String, String),
    /// Every segment, numbered in the order it was sent (a copy the network made right after
    /// its original).
    pub packets: Vec<Packet>,
    /// Sends and arrivals, in the order they happened.
    pub steps: Vec<Step>,
    /// Whether the times mean anything: in memory, where a simulated clock moves by a
    /// microsecond at a time, only the order does, and the pictures show that.
    pub timed: bool,
    /// Whether the states were inferred from the segments ([`infer_states`](Exchange::infer_states))
    /// rather than read from the sockets.
    pub inferred: bool,
}

impl Exchange {
    /// An empty exchange between two named ends.
    pub fn new(
        title: impl Into<String>,
        server: impl Into<String>,
        client: impl Into<String>,
    ) -> Self {
        Exchange {
            title: title.into(),
            ends: (server.into(), client.into()),
            packets: Vec::new(),
            steps: Vec::new(),
            timed: true,
            inferred: false,
        }
    }

    /// `from` sent `segment` at `at` (`window_scale`: the option on a SYN); returns the number
    /// its arrival is recorded under.
    pub fn sent(
        &mut self,
        at: Instant,
        from: End,
        segment: Segment,
        window_scale: Option<u8>,
    ) -> usize {
        let n = self.packets.len();
        self.packets.push(Packet {
            from,
            segment,
            window_scale,
            sent: at,
            arrived: None,
            fate: Fate::Pending,
            copy: false,
            states: None,
            sent_states: None,
        });
        self.steps.push(Step::Sent(n));
        n
    }

    /// Both sockets' states right after the last segment was sent.
    pub fn sent_states(&mut self, states: (State, State)) {
        if let Some(&Step::Sent(n)) = self.steps.last() {
            self.packets[n].sent_states = Some(states);
        }
    }

    /// Packet `n` did not arrive, or arrived unusable: `fate` says which.
    pub fn dropped(&mut self, n: usize, fate: Fate) {
        if let Some(packet) = self.packets.get_mut(n) {
            packet.fate = fate;
        }
    }

    /// A second copy of packet `n`, made by the network as it was sent; returns its number.
    pub fn copied(&mut self, n: usize) -> Option<usize> {
        let mut copy = self.packets.get(n)?.clone();
        copy.copy = true;
        copy.arrived = None;
        // A copy of a corrupted packet carries the same flipped bit.
        if copy.fate != Fate::Corrupted {
            copy.fate = Fate::Pending;
        }
        self.packets.push(copy);
        let copy = self.packets.len() - 1;
        self.steps.push(Step::Sent(copy));
        Some(copy)
    }

    /// Packet `n` arrived at `at`; `states` are both sockets' states right after it.
    pub fn arrived(&mut self, n: usize, at: Instant, states: Option<(State, State)>) {
        let Some(packet) = self.packets.get_mut(n) else {
            return;
        };
        packet.arrived = Some(at);
        if packet.fate != Fate::Corrupted {
            packet.fate = Fate::Arrived;
        }
        packet.states = states;
        self.steps.push(Step::Arrived(n));
    }

    /// A segment seen at one instant on its way (a capture, or a loopback with no latency).
    pub fn seen(
        &mut self,
        at: Instant,
        from: End,
        segment: Segment,
        window_scale: Option<u8>,
        states: Option<(State, State)>,
    ) {
        let n = self.sent(at, from, segment, window_scale);
        self.arrived(n, at, states);
    }

    /// The initial sequence number of each end (server, client): its SYN's, or the first
    /// sequence number it was seen with.
    fn isns(&self) -> (u32, u32) {
        let isn = |end: End| {
            let mut of_end = self.packets.iter().filter(|p| p.from == end);
            let first = of_end.clone().next().map_or(0, |p| p.segment.seq);
            of_end
                .find(|p| p.segment.syn)
                .map_or(first, |p| p.segment.seq)
        };
        (isn(End::Server), isn(End::Client))
    }

    /// `packet`'s sequence number relative to its sender's, and its acknowledgement relative to
    /// the peer's.
    pub fn relative(&self, packet: &Packet) -> (u32, Option<u32>) {
        let (server, client) = self.isns();
        let (own, peer) = match packet.from {
            End::Server => (server, client),
            End::Client => (client, server),
        };
        let seq = packet.segment.seq.wrapping_sub(own);
        (seq, packet.segment.ack.map(|a| a.wrapping_sub(peer)))
    }

    /// The packet number of `end`'s first FIN.
    pub fn first_fin(&self, end: End) -> Option<usize> {
        self.packets
            .iter()
            .position(|p| p.from == end && p.segment.fin)
    }

    /// The packet number of the first segment from the client with data after the server's
    /// first FIN: the reply.
    pub fn reply(&self) -> Option<usize> {
        let fin = self.first_fin(End::Server)?;
        (fin..self.packets.len()).find(|&n| {
            let p = &self.packets[n];
            p.from == End::Client && !p.segment.is_empty() && !p.copy
        })
    }

    /// Each end's states as RFC 9293's state diagram (section 3.3.2) has them go through the
    /// segments seen, for a source that cannot read the sockets (a capture): the states after
    /// each segment is sent and after it arrives. A capture taken at one end or on a loopback
    /// sees what both ends see; segments it missed leave the states where they were.
    pub fn infer_states(&mut self) {
        use State::*;
        let mut state = [Listen, Closed];
        // Where each end's FIN is in its sequence space, once sent: an ACK past it
        // acknowledges it.
        let mut fin_end: [Option<u32>; 2] = [None, None];
        let at = |end: End| if end == End::Server { 0 } else { 1 };
        for i in 0..self.steps.len() {
            let (n, arrival) = match self.steps[i] {
                Step::Sent(n) => (n, false),
                Step::Arrived(n) => (n, true),
            };
            let p = &self.packets[n];
            let s = p.segment;
            // The end this step changes: the sender's when sent, the receiver's on arrival.
            let me = at(if arrival { p.from.other() } else { p.from });
            let fin_acked = s
                .ack
                .is_some_and(|a| fin_end[me].is_some_and(|f| a.wrapping_sub(f) as i32 > 0));
            state[me] = match (arrival, state[me]) {
                _ if s.rst => Closed,
                // What an end's own segment does to it.
                (false, _) if s.syn && s.ack.is_none() => SynSent,
                (false, Established | SynReceived) if s.fin => FinWait1,
                (false, CloseWait) if s.fin => LastAck,
                (false, now) => now,
                // What an arriving segment does to its receiver: its ACK first, then its FIN.
                (true, Listen) if s.syn && s.ack.is_none() => SynReceived,
                (true, SynSent) if s.syn && s.ack.is_some() => Established,
                (true, SynReceived) if s.ack.is_some() && !s.syn && s.fin => CloseWait,
                (true, SynReceived) if s.ack.is_some() && !s.syn => Established,
                (true, Established) if s.fin => CloseWait,
                (true, FinWait1) if fin_acked && s.fin => TimeWait,
                (true, FinWait1) if fin_acked => FinWait2,
                (true, FinWait1) if s.fin => Closing,
                (true, FinWait2) if s.fin => TimeWait,
                (true, Closing) if fin_acked => TimeWait,
                (true, LastAck) if fin_acked => Closed,
                (true, now) => now,
            };
            if !arrival && s.fin {
                fin_end[me] = Some(s.seq.wrapping_add(s.len() as u32));
            }
            let states = Some((state[0], state[1]));
            let p = &mut self.packets[n];
            if arrival {
                p.states = states;
            } else {
                p.sent_states = states;
            }
        }
        self.inferred = true;
    }

    /// Each socket's states in the order it went through them (from what the source knows).
    pub fn states(&self, end: End) -> Vec<State> {
        let mut seen: Vec<State> = Vec::new();
        for step in &self.steps {
            let states = match *step {
                Step::Sent(n) => self.packets[n].sent_states,
                Step::Arrived(n) => self.packets[n].states,
            };
            let Some((server, client)) = states else {
                continue;
            };
            let state = if end == End::Server { server } else { client };
            if seen.last() != Some(&state) {
                seen.push(state);
            }
        }
        seen
    }
}

/// The window scale option of the TCP segment in `ip` (an IPv4 or IPv6 packet), if it has one.
pub fn window_scale(ip: &[u8]) -> Option<u8> {
    let tcp = match ip.first()? >> 4 {
        4 => {
            let packet = Ipv4Packet::new_checked(ip).ok()?;
            let header = usize::from(packet.header_len());
            (packet.next_header() == IpProtocol::Tcp).then(|| ip.get(header..))??
        }
        // The fixed 40-byte header, by hand: smoltcp's `Ipv6Packet` exists only with its
        // `proto-ipv6` feature, which the loopback example does without.
        6 => (ip.get(6) == Some(&u8::from(IpProtocol::Tcp))).then(|| ip.get(40..))??,
        _ => return None,
    };
    let tcp = TcpPacket::new_checked(tcp).ok()?;
    let mut options = tcp.options();
    // Each option takes at least one byte: at most as many steps as the options have bytes.
    for _ in 0..options.len() {
        let (rest, option) = TcpOption::parse(options).ok()?;
        match option {
            TcpOption::WindowScale(scale) => return Some(scale),
            TcpOption::EndOfList => return None,
            _ => options = rest,
        }
        if options.is_empty() {
            break;
        }
    }
    None
}

/// Draw `exchange` as a ladder diagram to `ladder_path` and as a time-sequence graph to
/// `graph_path`, each if given: the programs' `--svg PATH` and `--graph PATH`.
pub fn draw(
    exchange: &Exchange,
    ladder_path: Option<&Path>,
    graph_path: Option<&Path>,
) -> Result<(), String> {
    if let Some(path) = ladder_path {
        save(path, &ladder(exchange))?;
    }
    if let Some(path) = graph_path {
        save(path, &graph(exchange))?;
    }
    Ok(())
}

/// Refuses a picture's path that names one of `files` (the program's input or output): a
/// picture never replaces the file it was drawn from. Paths that do not exist yet are new files.
pub fn check_paths(pictures: &[Option<&Path>], files: &[&Path]) -> Result<(), String> {
    let same = |a: &Path, b: &Path| match (a.canonicalize(), b.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    };
    for picture in pictures.iter().flatten() {
        if let Some(file) = files.iter().find(|file| same(picture, file)) {
            return Err(format!(
                "{} is {}: a picture would replace it",
                picture.display(),
                file.display()
            ));
        }
    }
    Ok(())
}

/// Write `svg` to `path` whole or not at all: into `PATH.partial`, renamed over `path` once
/// written.
pub fn save(path: &Path, svg: &str) -> Result<(), String> {
    let mut partial = path.as_os_str().to_owned();
    partial.push(".partial");
    let partial = std::path::PathBuf::from(partial);
    let written = std::fs::write(&partial, svg).and_then(|()| std::fs::rename(&partial, path));
    written.map_err(|e| {
        let _ = std::fs::remove_file(&partial);
        format!("cannot write {}: {e}", path.display())
    })
}

/// A small SVG writer: the few shapes these pictures use, numbers at one decimal.
struct Svg {
    out: String,
}

impl Svg {
    fn new(width: f64, height: f64, style: &str) -> Svg {
        let mut out = String::new();
        let _ = write!(
            out,
            "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width:.0}\" height=\"{height:.0}\" viewBox=\"0 0 {width:.0} {height:.0}\" font-family=\"DejaVu Sans Mono, Menlo, Consolas, monospace\" font-size=\"12\">\n<style>{style}</style>\n<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n"
        );
        Svg { out }
    }

    fn line(&mut self, (x1, y1): (f64, f64), (x2, y2): (f64, f64), class: &str) {
        let _ = writeln!(
            self.out,
            "<line x1=\"{x1:.1}\" y1=\"{y1:.1}\" x2=\"{x2:.1}\" y2=\"{y2:.1}\" class=\"{class}\"/>"
        );
    }

    /// A line from `a` to `b` with an arrowhead at `b`.
    fn arrow(&mut self, a: (f64, f64), b: (f64, f64), class: &str) {
        self.line(a, b, class);
        let (dx, dy) = (b.0 - a.0, b.1 - a.1);
        let len = (dx * dx + dy * dy).sqrt().max(1e-9);
        let (ux, uy) = (dx / len, dy / len);
        let base = (b.0 - 9.0 * ux, b.1 - 9.0 * uy);
        let points = [
            b,
            (base.0 - 3.5 * uy, base.1 + 3.5 * ux),
            (base.0 + 3.5 * uy, base.1 - 3.5 * ux),
        ];
        self.polygon(&points, class);
    }

    fn polygon(&mut self, points: &[(f64, f64)], class: &str) {
        self.out += "<polygon points=\"";
        self.points(points);
        let _ = writeln!(self.out, "\" class=\"{class} head\"/>");
    }

    fn polyline(&mut self, points: &[(f64, f64)], class: &str) {
        if points.is_empty() {
            return;
        }
        self.out += "<polyline points=\"";
        self.points(points);
        let _ = writeln!(self.out, "\" class=\"{class}\"/>");
    }

    fn points(&mut self, points: &[(f64, f64)]) {
        for (i, (x, y)) in points.iter().enumerate() {
            let sep = if i == 0 { "" } else { " " };
            let _ = write!(self.out, "{sep}{x:.1},{y:.1}");
        }
    }

    fn circle(&mut self, (x, y): (f64, f64), r: f64, class: &str) {
        let _ = writeln!(
            self.out,
            "<circle cx=\"{x:.1}\" cy=\"{y:.1}\" r=\"{r:.1}\" class=\"{class}\"/>"
        );
    }

    /// Text at `(x, y)`, anchored `start`, `middle` or `end`.
    fn text(&mut self, (x, y): (f64, f64), anchor: &str, class: &str, text: &str) {
        if text.is_empty() {
            return;
        }
        let _ = write!(
            self.out,
            "<text x=\"{x:.1}\" y=\"{y:.1}\" text-anchor=\"{anchor}\" class=\"{class}\">"
        );
        for c in text.chars() {
            match c {
                '<' => self.out += "&lt;",
                '>' => self.out += "&gt;",
                '&' => self.out += "&amp;",
                '"' => self.out += "&quot;",
                c => self.out.push(c),
            }
        }
        self.out += "</text>\n";
    }

    fn finish(mut self) -> String {
        self.out += "</svg>\n";
        self.out
    }
}

/// The colours: one class per kind of segment, shared by both pictures.
const STYLE: &str = "line,polyline{stroke-width:1.2;fill:none}\
.axis{stroke:#444}.grid{stroke:#ddd}.life{stroke:#888;stroke-width:2}\
.syn{stroke:#1f5fbf}.data{stroke:#222}.ack{stroke:#999}.fin{stroke:#c0392b;stroke-width:2}\
.reply{stroke:#1e8449;stroke-width:2}.rst{stroke:#8e44ad}.drop{stroke:#e67e22;stroke-dasharray:5 3}\
.retx{stroke:#c0392b}.win{stroke:#b7950b}.acked{stroke:#1e8449}\
.head{stroke-width:1}polygon.syn{fill:#1f5fbf}polygon.data{fill:#222}polygon.ack{fill:#999}\
polygon.fin{fill:#c0392b}polygon.reply{fill:#1e8449}polygon.rst{fill:#8e44ad}polygon.drop{fill:#e67e22}\
circle.fin{fill:#c0392b;stroke:none}circle.dup{fill:#e67e22;stroke:none}\
text{fill:#222}text.state{fill:#1f5fbf;font-weight:bold}text.note{fill:#c0392b;font-weight:bold}\
text.dim{fill:#777}text.title{font-size:14px;font-weight:bold}text.drop{fill:#e67e22}";

/// The segment's kind, for its colour: SYN, RST, FIN, the reply, data or a bare ACK.
fn class(exchange: &Exchange, n: usize) -> &'static str {
    let p = &exchange.packets[n];
    let s = &p.segment;
    match () {
        _ if p.fate != Fate::Arrived => "drop",
        _ if s.rst => "rst",
        _ if s.syn => "syn",
        _ if p.from == End::Client && !s.is_empty() => "reply",
        _ if s.fin => "fin",
        _ if !s.is_empty() => "data",
        _ => "ack",
    }
}

/// The ladder diagram: the server's line on the left, the client's on the right, time going
/// down; each segment an arrow from its sending to its arrival (a dropped one ends in a cross
/// halfway), labelled with flags, relative sequence and acknowledgement numbers and length;
/// each socket's state beside its line whenever it changes.
pub fn ladder(exchange: &Exchange) -> String {
    const ROW: f64 = 22.0;
    const TOP: f64 = 78.0;
    const LEFT: f64 = 260.0;
    const RIGHT: f64 = 800.0;
    const WIDTH: f64 = 1000.0;

    // A row per step, except that an arrival right after its own sending shares its row (a
    // horizontal arrow: no time passed, or nothing else happened meanwhile).
    let mut rows = Vec::with_capacity(exchange.steps.len());
    let mut row = 0usize;
    for (i, step) in exchange.steps.iter().enumerate() {
        let shares = matches!((i.checked_sub(1).map(|j| exchange.steps[j]), step),
            (Some(Step::Sent(a)), Step::Arrived(b)) if a == *b);
        if i > 0 && !shares {
            row += 1;
        }
        rows.push(row);
    }
    let rows_used = rows.last().map_or(0, |r| r + 1);
    let height = TOP + ROW * (rows_used as f64 + 1.5) + 30.0;
    let y = |row: usize| TOP + ROW * (row as f64 + 0.5);
    let timed = timed(exchange);

    let mut svg = Svg::new(WIDTH, height, STYLE);
    svg.text((WIDTH / 2.0, 22.0), "middle", "title", &exchange.title);
    svg.text((LEFT, 48.0), "middle", "", &exchange.ends.0);
    svg.text((RIGHT, 48.0), "middle", "", &exchange.ends.1);
    if timed {
        svg.text((8.0, 48.0), "start", "dim", "ms");
    }
    let bottom = height - 40.0;
    svg.line((LEFT, 58.0), (LEFT, bottom), "life");
    svg.line((RIGHT, 58.0), (RIGHT, bottom), "life");

    let x_of = |end: End| if end == End::Server { LEFT } else { RIGHT };
    let (server_fin, client_fin, reply) = (
        exchange.first_fin(End::Server),
        exchange.first_fin(End::Client),
        exchange.reply(),
    );
    let mut sent_row = vec![0usize; exchange.packets.len()];
    let mut labels: Vec<(usize, End, State)> = Vec::new();
    let mut last_time_row = None;
    for (step, &row) in exchange.steps.iter().zip(&rows) {
        let (n, at) = match *step {
            Step::Sent(n) => (n, exchange.packets[n].sent),
            Step::Arrived(n) => (
                n,
                exchange.packets[n]
                    .arrived
                    .unwrap_or(exchange.packets[n].sent),
            ),
        };
        if timed && last_time_row != Some(row) {
            let ms = at.total_micros() as f64 / 1000.0;
            svg.text((8.0, y(row) + 4.0), "start", "dim", &format!("{ms:.3}"));
            last_time_row = Some(row);
        }
        let p = &exchange.packets[n];
        let class = class(exchange, n);
        match *step {
            Step::Sent(n) => {
                sent_row[n] = row;
                let (from, to) = (x_of(p.from), x_of(p.from.other()));
                let (seq, ack) = exchange.relative(p);
                let mut label = format!("{} seq {seq}", p.segment.flags());
                if let Some(ack) = ack {
                    let _ = write!(label, " ack {ack}");
                }
                let _ = write!(label, " len {}", p.segment.len());
                let note = match () {
                    _ if Some(n) == server_fin => "half-close: close(), FIN",
                    _ if Some(n) == reply && Some(n) == client_fin => "the reply, and FIN",
                    _ if Some(n) == reply => "the reply",
                    _ if Some(n) == client_fin => "the client's FIN",
                    _ if p.copy => "a copy",
                    _ => "",
                };
                let (anchor, tx, note_anchor, note_x) = if from < to {
                    ("start", from + 10.0, "end", to - 14.0)
                } else {
                    ("end", from - 10.0, "start", to + 14.0)
                };
                svg.text((tx, y(row) - 4.0), anchor, "", &label);
                if !note.is_empty() {
                    svg.text((note_x, y(row) - 4.0), note_anchor, "note", note);
                }
                if p.fate != Fate::Arrived && p.fate != Fate::Corrupted {
                    // Dropped on the way: the arrow stops halfway, at a cross.
                    let mid = ((from + to) / 2.0, y(row) + ROW * 0.3);
                    svg.line((from, y(row)), mid, "drop");
                    svg.line(
                        (mid.0 - 5.0, mid.1 - 5.0),
                        (mid.0 + 5.0, mid.1 + 5.0),
                        "drop",
                    );
                    svg.line(
                        (mid.0 - 5.0, mid.1 + 5.0),
                        (mid.0 + 5.0, mid.1 - 5.0),
                        "drop",
                    );
                    let why = match p.fate {
                        Fate::Overflowed => "queue full",
                        Fate::Cut => "link cut",
                        Fate::Lost => "lost",
                        Fate::Pending | Fate::Arrived | Fate::Corrupted => "not arrived",
                    };
                    svg.text((mid.0 + 9.0, mid.1 + 4.0), "start", "drop", why);
                }
            }
            Step::Arrived(n) => {
                let (from, to) = (x_of(p.from), x_of(p.from.other()));
                svg.arrow((from, y(sent_row[n])), (to, y(row)), class);
                let (tx, anchor) = if to > from {
                    (to - 12.0, "end")
                } else {
                    (to + 12.0, "start")
                };
                if p.fate == Fate::Corrupted {
                    svg.text((tx, y(row) + 13.0), anchor, "drop", "corrupted: dropped");
                }
            }
        }
        let states = match *step {
            Step::Sent(_) => p.sent_states,
            Step::Arrived(_) => p.states,
        };
        for (end, state) in states
            .into_iter()
            .flat_map(|(s, c)| [(End::Server, s), (End::Client, c)])
        {
            let last = labels.iter().rev().find(|l| l.1 == end).map(|l| l.2);
            if last != Some(state) {
                // Two changes on one row: the later one is what the row shows.
                labels.retain(|l| (l.0, l.1) != (row, end));
                labels.push((row, end, state));
            }
        }
    }
    for (row, end, state) in labels {
        let (x, anchor) = match end {
            End::Server => (LEFT - 14.0, "end"),
            End::Client => (RIGHT + 14.0, "start"),
        };
        svg.text((x, y(row) + 4.0), anchor, "state", &state.to_string());
    }
    let footnote = if exchange.inferred {
        "sequence numbers relative to each end's SYN; states inferred from the segments"
    } else {
        "sequence numbers relative to each end's SYN; each state where it begins"
    };
    svg.text((WIDTH / 2.0, height - 14.0), "middle", "dim", footnote);
    svg.finish()
}

/// Whether time passes in the run, and means something.
fn timed(exchange: &Exchange) -> bool {
    if !exchange.timed {
        return false;
    }
    let mut times = exchange
        .packets
        .iter()
        .flat_map(|p| [Some(p.sent), p.arrived])
        .flatten();
    let first = times.next();
    times.any(|t| Some(t) != first)
}

/// Numbers for an axis from 0 to `max`: a step of 1, 2 or 5 times a power of ten giving about
/// `count` ticks; and the decimals that step needs.
fn ticks(max: f64, count: f64) -> (Vec<f64>, usize) {
    if max <= 0.0 || !max.is_finite() {
        return (vec![0.0], 0);
    }
    let raw = max / count;
    let exponent = raw.log10().floor();
    let power = 10f64.powf(exponent);
    let step = [1.0, 2.0, 5.0, 10.0]
        .into_iter()
        .map(|m| m * power)
        .find(|&s| s >= raw)
        .unwrap_or(10.0 * power);
    let decimals = (-exponent).max(0.0) as usize;
    // At most count * 2.5 + 1 ticks: the step is at least max / count.
    let ticks = (0..=(max / step + 1e-9).floor() as usize)
        .map(|i| i as f64 * step)
        .collect();
    (ticks, decimals)
}

/// What the sender of the data sees: its own segments as it sends them (`true`), the
/// receiver's as they arrive (`false`), each at its x (milliseconds, or the step's number in
/// a run where no time passes).
fn sender_view(exchange: &Exchange, sender: End) -> Vec<(f64, usize, bool)> {
    let timed = timed(exchange);
    let mut events = Vec::new();
    for (i, step) in exchange.steps.iter().enumerate() {
        let x = |t: Instant| {
            if timed {
                t.total_micros() as f64 / 1000.0
            } else {
                i as f64
            }
        };
        let (n, from_sender) = match *step {
            Step::Sent(n) => (n, true),
            Step::Arrived(n) => (n, false),
        };
        let p = &exchange.packets[n];
        match (from_sender, p.from == sender) {
            // A copy the network made is not the sender's doing.
            (true, true) if !p.copy => events.push((x(p.sent), n, true)),
            (false, false) if p.fate == Fate::Arrived => {
                events.push((x(p.arrived.unwrap_or(p.sent)), n, false));
            }
            _ => {}
        }
    }
    events
}

/// The time-sequence graph of the direction that carries the most data: each segment sent as
/// a vertical bar over the sequence numbers it covers (a retransmission in red, a dropped one
/// dashed), the receiver's acknowledged edge and the edge of its window as they reach the
/// sender, duplicate ACKs as dots, the FIN and the reply marked. Time is the x axis; in a run
/// where no time passes, the steps' order is.
pub fn graph(exchange: &Exchange) -> String {
    const WIDTH: f64 = 1000.0;
    const HEIGHT: f64 = 600.0;
    const X0: f64 = 90.0;
    const X1: f64 = WIDTH - 30.0;
    const Y0: f64 = HEIGHT - 60.0;
    const Y1: f64 = 80.0;

    let sent_by = |end: End| {
        exchange
            .packets
            .iter()
            .filter(|p| p.from == end && !p.copy)
            .map(|p| p.segment.len())
            .sum::<usize>()
    };
    let sender = if sent_by(End::Client) > sent_by(End::Server) {
        End::Client
    } else {
        End::Server
    };
    let receiver = sender.other();
    // The receiver's window is scaled when both SYNs carry the option (RFC 7323 section 2.2).
    let scale = |end: End| {
        let syn = exchange
            .packets
            .iter()
            .find(|p| p.from == end && p.segment.syn);
        syn.and_then(|p| p.window_scale)
    };
    let shift = match (scale(sender), scale(receiver)) {
        (Some(_), Some(r)) => u32::from(r.min(14)),
        _ => 0,
    };
    let window_edge = |p: &Packet| {
        let window = u32::from(p.segment.window) << shift;
        exchange.relative(p).1.map(|a| a.saturating_add(window))
    };

    let events = sender_view(exchange, sender);
    // From the start of the run (or the first step).
    let x_min = 0.0;
    let x_max = events.iter().map(|e| e.0).fold(x_min, f64::max);
    // The data fills most of the height; a window edge far above it is cut off at the top.
    let data_max = exchange
        .packets
        .iter()
        .filter(|p| p.from == sender)
        .map(|p| exchange.relative(p).0.saturating_add(p.segment.seq_len()))
        .max()
        .unwrap_or(1)
        .max(1);
    let window_max = exchange
        .packets
        .iter()
        .filter(|p| p.from == receiver)
        .filter_map(window_edge)
        .max()
        .unwrap_or(0);
    let seq_max = f64::from(
        window_max
            .min(data_max.saturating_add(data_max / 4))
            .max(data_max),
    );
    let clipped = f64::from(window_max) > seq_max;
    let span = (x_max - x_min).max(1e-9);
    let px = |x: f64| X0 + (x - x_min) / span * (X1 - X0);
    let py = |s: f64| Y0 - s.min(seq_max) / seq_max * (Y0 - Y1);

    let mut svg = Svg::new(WIDTH, HEIGHT, STYLE);
    svg.text((WIDTH / 2.0, 22.0), "middle", "title", &exchange.title);
    let (from_name, to_name) = match sender {
        End::Server => (&exchange.ends.0, &exchange.ends.1),
        End::Client => (&exchange.ends.1, &exchange.ends.0),
    };
    let subtitle = format!("{from_name} to {to_name}, as the sender sees it");
    svg.text((WIDTH / 2.0, 42.0), "middle", "dim", &subtitle);
    for s in ticks(seq_max, 8.0).0 {
        svg.line((X0, py(s)), (X1, py(s)), "grid");
        svg.text((X0 - 6.0, py(s) + 4.0), "end", "dim", &format!("{s:.0}"));
    }
    let (times, decimals) = ticks(x_max - x_min, 10.0);
    for t in times {
        let x = px(t + x_min);
        svg.line((x, Y0), (x, Y0 + 5.0), "axis");
        let label = format!("{:.*}", decimals, t + x_min);
        svg.text((x, Y0 + 18.0), "middle", "dim", &label);
    }
    svg.line((X0, Y0), (X1, Y0), "axis");
    svg.line((X0, Y0), (X0, Y1), "axis");
    let x_label = if timed(exchange) {
        "time (ms)"
    } else {
        "step (no time passes in memory)"
    };
    svg.text(((X0 + X1) / 2.0, HEIGHT - 20.0), "middle", "", x_label);
    svg.text((X0 - 6.0, Y1 - 22.0), "end", "", "sequence");

    let (reply, peer_fin) = (exchange.reply(), exchange.first_fin(receiver));
    let mut acked: Vec<(f64, f64)> = Vec::new();
    let mut window: Vec<(f64, f64)> = Vec::new();
    let mut highest = 0u32;
    let mut last_ack: Option<(u32, u16)> = None;
    let mut marks = Vec::new();
    let mut last_mark = None;
    for &(x, n, from_sender) in &events {
        let p = &exchange.packets[n];
        let (seq, ack) = exchange.relative(p);
        let x = px(x);
        if from_sender {
            let end = seq.saturating_add(p.segment.seq_len());
            if end == seq {
                continue;
            }
            let class = match () {
                _ if p.fate != Fate::Arrived => "drop",
                _ if end <= highest || p.copy => "retx",
                _ => "data",
            };
            highest = highest.max(end);
            let (lo, hi) = (py(f64::from(seq)), py(f64::from(end)));
            svg.line((x, lo), (x, hi), class);
            svg.line((x - 3.0, lo), (x + 3.0, lo), class);
            svg.line((x - 3.0, hi), (x + 3.0, hi), class);
            let mark = match (p.segment.fin, class == "retx") {
                (true, true) => "R FIN",
                (true, false) => "FIN",
                (false, true) => "R",
                (false, false) => "",
            };
            // A mark where the last one still stands would only blot it out; one that would
            // leave the picture on the right goes left of its bar.
            let width = 7.3 * mark.len() as f64;
            let room =
                last_mark.is_none_or(|(end, y): (f64, f64)| x > end || (hi - y).abs() > 12.0);
            let (tx, anchor) = if x + 4.0 + width > WIDTH - 2.0 {
                (x - 4.0, "end")
            } else {
                (x + 4.0, "start")
            };
            if room && !mark.is_empty() {
                svg.text((tx, hi - 3.0), anchor, "note", mark);
                last_mark = Some((x + 4.0 + width, hi));
            }
            continue;
        }
        let (Some(ack), Some(edge)) = (ack, window_edge(p)) else {
            continue;
        };
        let (ya, yw) = (py(f64::from(ack)), py(f64::from(edge)));
        // Steps: an edge holds until the next ACK moves it.
        for (line, y) in [(&mut acked, ya), (&mut window, yw)] {
            if let Some(&(_, before)) = line.last() {
                line.push((x, before));
            }
            line.push((x, y));
        }
        let s = &p.segment;
        if s.is_empty() && !s.syn && !s.fin && last_ack == Some((ack, s.window)) {
            svg.circle((x, ya), 2.5, "dup");
        }
        last_ack = Some((ack, s.window));
        let mark = match (Some(n) == reply, Some(n) == peer_fin) {
            (true, true) => "the reply, and FIN",
            (true, false) => "the reply",
            (false, true) => "the peer's FIN",
            (false, false) => continue,
        };
        marks.push(((x, ya), mark));
    }
    for line in [&mut acked, &mut window] {
        if let Some(&(_, y)) = line.last() {
            line.push((px(x_max), y));
        }
    }
    svg.polyline(&window, "win");
    svg.polyline(&acked, "acked");
    for (i, ((x, y), what)) in marks.into_iter().enumerate() {
        svg.circle((x, y), 3.5, "fin");
        svg.text((x - 6.0, y + 16.0 + 14.0 * i as f64), "end", "note", what);
    }

    // The legend, one entry after another.
    let window_entry = if clipped {
        "window edge (cut off at the top)"
    } else {
        "window edge"
    };
    let legend = [
        ("data", "sent"),
        ("retx", "retransmitted"),
        ("drop", "dropped"),
        ("acked", "acknowledged"),
        ("win", window_entry),
        ("dup", "duplicate ACK"),
    ];
    let (mut x, y) = (X0 + 12.0, Y1 - 22.0);
    for (class, what) in legend {
        if class == "dup" {
            svg.circle((x + 11.0, y), 2.5, class);
        } else {
            svg.line((x, y), (x + 22.0, y), class);
        }
        svg.text((x + 28.0, y + 4.0), "start", "", what);
        // About the width of a monospace glyph at 12 px.
        x += 28.0 + 7.3 * what.len() as f64 + 24.0;
    }
    svg.finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use smoltcp::phy::ChecksumCapabilities;
    use smoltcp::wire::{
        IpEndpoint, IpRepr, Ipv4Address, Ipv4Repr, TcpControl, TcpRepr, TcpSeqNumber,
    };

    const SERVER: IpEndpoint = IpEndpoint::new(smoltcp::wire::IpAddress::v4(10, 0, 0, 1), 7891);
    const CLIENT: IpEndpoint = IpEndpoint::new(smoltcp::wire::IpAddress::v4(10, 0, 0, 2), 49152);

    /// An IPv4 packet holding a TCP segment from `from`, with `payload` bytes.
    fn packet(
        from: End,
        control: TcpControl,
        seq: u32,
        ack: Option<u32>,
        payload: usize,
    ) -> Vec<u8> {
        let (src, dst) = match from {
            End::Server => (SERVER, CLIENT),
            End::Client => (CLIENT, SERVER),
        };
        let data = vec![b'x'; payload];
        let tcp = TcpRepr {
            src_port: src.port,
            dst_port: dst.port,
            control,
            seq_number: TcpSeqNumber(seq as i32),
            ack_number: ack.map(|a| TcpSeqNumber(a as i32)),
            window_len: 1000,
            window_scale: (control == TcpControl::Syn).then_some(7),
            max_seg_size: None,
            sack_permitted: false,
            sack_ranges: [None; 3],
            timestamp: None,
            payload: &data,
        };
        let v4 = |a| match a {
            smoltcp::wire::IpAddress::Ipv4(a) => a,
            #[allow(unreachable_patterns)]
            _ => Ipv4Address::UNSPECIFIED,
        };
        let ip = IpRepr::Ipv4(Ipv4Repr {
            src_addr: v4(src.addr),
            dst_addr: v4(dst.addr),
            next_header: IpProtocol::Tcp,
            payload_len: tcp.buffer_len(),
            hop_limit: 64,
        });
        let mut buf = vec![0u8; ip.header_len() + tcp.buffer_len()];
        let caps = ChecksumCapabilities::default();
        ip.emit(&mut buf[..], &caps);
        let mut segment = TcpPacket::new_unchecked(&mut buf[ip.header_len()..]);
        tcp.emit(&mut segment, &src.addr, &dst.addr, &caps);
        buf
    }

    /// Record `packet` as sent by `from` at `ms` milliseconds.
    fn send(exchange: &mut Exchange, ms: i64, from: End, packet: &[u8]) -> usize {
        let segment = Segment::parse(smoltcp::phy::Medium::Ip, packet).expect("a TCP segment");
        exchange.sent(
            Instant::from_millis(ms),
            from,
            segment,
            window_scale(packet),
        )
    }

    /// A handshake, a first data segment that is lost and sent again, a copy of the
    /// retransmission, and the ACK.
    fn lossy() -> Exchange {
        let mut e = Exchange::new("t", "server", "client");
        let syn = send(
            &mut e,
            0,
            End::Client,
            &packet(End::Client, TcpControl::Syn, 100, None, 0),
        );
        e.arrived(syn, Instant::from_millis(10), None);
        let syn_ack = send(
            &mut e,
            10,
            End::Server,
            &packet(End::Server, TcpControl::Syn, 500, Some(101), 0),
        );
        e.arrived(syn_ack, Instant::from_millis(20), None);
        let lost = send(
            &mut e,
            20,
            End::Server,
            &packet(End::Server, TcpControl::None, 501, Some(101), 1000),
        );
        e.dropped(lost, Fate::Lost);
        let again = send(
            &mut e,
            1020,
            End::Server,
            &packet(End::Server, TcpControl::None, 501, Some(101), 1000),
        );
        let copy = e.copied(again).expect("a copy");
        e.arrived(again, Instant::from_millis(1030), None);
        e.arrived(copy, Instant::from_millis(1031), None);
        let ack = send(
            &mut e,
            1031,
            End::Client,
            &packet(End::Client, TcpControl::None, 101, Some(1501), 0),
        );
        e.arrived(ack, Instant::from_millis(1041), None);
        e
    }

    #[test]
    fn window_scale_is_read_from_a_syn_and_nothing_else() {
        let syn = packet(End::Client, TcpControl::Syn, 1, None, 0);
        assert_eq!(window_scale(&syn), Some(7));
        assert_eq!(
            window_scale(&packet(End::Client, TcpControl::None, 1, Some(1), 3)),
            None
        );
        assert_eq!(window_scale(&syn[..30]), None, "cut short");
        assert_eq!(window_scale(&[0x60; 10]), None, "an IPv6 header cut short");
    }

    #[test]
    fn a_lost_segment_ends_in_a_cross_and_its_retransmission_and_copy_are_marked() {
        let e = lossy();
        assert_eq!(
            e.relative(&e.packets[2]),
            (1, Some(1)),
            "sequence numbers from each SYN"
        );
        let ladder = ladder(&e);
        assert_eq!(ladder.matches(">lost<").count(), 1);
        assert_eq!(ladder.matches(">a copy<").count(), 1);
        // The copy's arrow starts on its own row, not at the top of the picture.
        let rows: Vec<&str> = ladder
            .lines()
            .filter(|l| l.contains("class=\"data\""))
            .collect();
        assert!(rows.iter().all(|l| !l.contains("y1=\"89.0\"")), "{rows:#?}");
        let graph = graph(&e);
        assert_eq!(
            graph.matches(">R<").count(),
            1,
            "the retransmission, not the copy"
        );
        assert_eq!(
            graph.matches("class=\"drop\"").count(),
            3 + 1,
            "the lost bar and the legend"
        );
        assert!(graph.contains(">time (ms)<"));
        // The same run draws the same bytes.
        assert_eq!(ladder, super::ladder(&lossy()));
    }

    #[test]
    fn axis_ticks_are_round_numbers_with_the_decimals_they_need() {
        let (ticks_of_bytes, decimals) = ticks(7574.0, 8.0);
        assert_eq!(
            ticks_of_bytes,
            [0.0, 1000.0, 2000.0, 3000.0, 4000.0, 5000.0, 6000.0, 7000.0]
        );
        assert_eq!(decimals, 0);
        let (ms, decimals) = ticks(0.02, 10.0);
        assert_eq!((ms.len(), decimals), (11, 3));
        assert_eq!(ticks(0.0, 10.0), (vec![0.0], 0));
    }
}
