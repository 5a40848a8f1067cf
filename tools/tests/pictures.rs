//! The pictures of real runs (`halfclose_tools::picture`) equal the committed, reviewed ones in
//! `docs/pictures/`, each renders (resvg), and each run is the one its picture claims: the
//! number of segments, the server's FIN before the reply, the states it went through.
//!
//! After a change that is meant to change a picture, write what is drawn now over the committed
//! ones and review the difference (`git diff docs/pictures`):
//!
//! ```text
//! PICTURES_BLESS=1 cargo test -p halfclose-tools --test pictures
//! ```
//!
//! `PICTURES_PNG=DIR` also writes each rendering to `DIR/NAME.png` (lines and arrows: the text
//! is not rendered here; a browser shows the SVG whole).

use std::path::{Path, PathBuf};
use std::process::Command;

use halfclose::sim::{self, Link, Setup, Wire};
use halfclose_tools::capture;
use halfclose_tools::picture::{self, End, Exchange, Fate};
use halfclose_tools::recorder::Recorder;
use smoltcp::socket::tcp::State;
use smoltcp::time::Duration;

const PICTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/pictures");
/// `lesson server --chunk 1000 7901 FILE` and `lesson client 127.0.0.1 7901 OUT` (the kernel's
/// TCP on both ends) sending 3000 bytes, as `tcpdump -i lo -w lesson.pcap tcp port 7901` took it.
const CAPTURE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/lesson.pcap");

/// Parse and render `svg` (its shapes: resvg's text is left out, see tools/Cargo.toml); returns
/// how many pixels are not white.
fn render(name: &str, svg: &str) -> usize {
    let options = resvg::usvg::Options::default();
    let tree = resvg::usvg::Tree::from_str(svg, &options)
        .unwrap_or_else(|e| panic!("{name} is not an SVG resvg reads: {e}"));
    let size = tree.size().to_int_size();
    let mut pixmap = resvg::tiny_skia::Pixmap::new(size.width(), size.height())
        .unwrap_or_else(|| panic!("{name}: an empty picture"));
    resvg::render(
        &tree,
        resvg::tiny_skia::Transform::default(),
        &mut pixmap.as_mut(),
    );
    if let Some(dir) = std::env::var_os("PICTURES_PNG") {
        let png = PathBuf::from(dir).join(name).with_extension("png");
        pixmap.save_png(&png).expect("the PNG written");
    }
    let drawn = pixmap.pixels().iter();
    drawn
        .filter(|p| p.red() < 250 || p.green() < 250 || p.blue() < 250)
        .count()
}

/// `svg` is the committed `docs/pictures/NAME` (or replaces it, with `PICTURES_BLESS`), and it
/// renders to more than a blank page.
fn check(name: &str, svg: &str) {
    let path = Path::new(PICTURES).join(name);
    if std::env::var_os("PICTURES_BLESS").is_some() {
        std::fs::write(&path, svg).expect("the golden written");
    }
    let golden = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e} (PICTURES_BLESS=1 writes it)", path.display()));
    assert!(
        golden == svg,
        "{name} differs from what is drawn now; if that is meant, write it with \
         PICTURES_BLESS=1 cargo test -p halfclose-tools --test pictures, and review the diff"
    );
    let drawn = render(name, svg);
    assert!(drawn > 2000, "{name}: {drawn} pixels drawn");
}

/// Each end's states in order, as the picture shows them.
fn states(exchange: &Exchange, end: End) -> Vec<State> {
    exchange.states(end)
}

/// 3000 bytes over a 10 ms link that loses a quarter of the packets each way: seed 21 loses
/// the server's FIN (and a data segment before it), and both come again a second later.
fn lost_fin() -> Exchange {
    let link = Link {
        loss_ppm: sim::percent(25),
        latency: Duration::from_millis(10),
        ..Link::clean(1500)
    };
    let mut wire = Box::new(Wire::<1500, 32>::new(21, link, link));
    let file = halfclose_tools::random_bytes(3000, 21);
    let mut sink = vec![0u8; file.len()];
    let mut buffers = vec![0u8; 4 * 4096];
    let title = "seed 21: 3000 bytes, 10 ms each way, a quarter of the packets lost";
    let mut recorder = Recorder::new(title);
    let setup = Setup::new(halfclose::Timeouts::DEFAULT);
    let outcome = sim::transfer_watched(
        &mut wire,
        &file,
        &mut sink,
        &mut buffers,
        setup,
        &mut recorder,
    );
    assert!(outcome.delivered(), "{outcome:?}");
    assert!(sink == file);
    recorder.exchange().clone()
}

#[test]
fn a_lost_fin_is_drawn_as_the_simulated_run_had_it() {
    let exchange = lost_fin();
    assert_eq!(exchange.packets.len(), 14);
    let fins: Vec<&picture::Packet> = exchange
        .packets
        .iter()
        .filter(|p| p.from == End::Server && p.segment.fin)
        .collect();
    assert_eq!(fins.len(), 2, "the FIN, and the FIN again");
    assert_eq!(fins[0].fate, Fate::Lost);
    assert_eq!(fins[1].fate, Fate::Arrived);
    assert!(
        fins[1].sent.total_millis() - fins[0].sent.total_millis() >= 1000,
        "after the RTO"
    );
    let fin = exchange.first_fin(End::Server).expect("a FIN");
    let reply = exchange.reply().expect("a reply");
    assert!(fin < reply);
    assert_eq!(exchange.packets[reply].segment.len(), 10);
    // The server is in FIN-WAIT-1 from its (lost) FIN until the FIN is acknowledged; the reply
    // comes with the client's FIN, after which it waits in TIME-WAIT.
    assert_eq!(
        states(&exchange, End::Server),
        [
            State::Listen,
            State::SynReceived,
            State::Established,
            State::FinWait1,
            State::TimeWait
        ]
    );
    assert_eq!(
        states(&exchange, End::Client),
        [
            State::SynSent,
            State::Established,
            State::CloseWait,
            State::LastAck,
            State::Closed
        ]
    );
    let ladder = picture::ladder(&exchange);
    for words in [
        "FIN-WAIT-1",
        "TIME-WAIT",
        "half-close",
        "the reply",
        ">lost<",
    ] {
        assert!(ladder.contains(words), "the ladder shows {words}");
    }
    check("lost-fin.svg", &ladder);
    let graph = picture::graph(&exchange);
    assert!(graph.contains(">R FIN<"), "the FIN retransmitted, marked");
    check("lost-fin-graph.svg", &graph);
}

#[test]
fn a_kernel_capture_is_drawn_as_tcpdump_took_it() {
    let bytes = std::fs::read(CAPTURE).expect("the committed capture");
    let connections = capture::connections(&bytes).expect("a pcap capture");
    assert_eq!(connections.len(), 1);
    let connection = &connections[0];
    assert!(connection.has_port(7901));
    assert_eq!(
        connection.server.port, 7901,
        "the SYN's receiver is the server"
    );
    // As `draw tools/tests/data/lesson.pcap` draws it (CI's soak job compares the two).
    let exchange = connection.exchange("lesson.pcap");
    assert_eq!(exchange.packets.len(), 14);
    let fin = exchange.first_fin(End::Server).expect("a FIN");
    let reply = exchange.reply().expect("a reply");
    let client_fin = exchange.first_fin(End::Client).expect("the client's FIN");
    assert!(
        fin < reply && reply < client_fin,
        "FIN, then the reply, then the client's FIN"
    );
    assert_eq!(exchange.packets[reply].segment.len(), 10);
    let data: usize = exchange.packets[..fin]
        .iter()
        .map(|p| p.segment.len())
        .sum();
    assert_eq!(data, 3000, "the whole file before the FIN");
    // Linux scales its windows (RFC 7323): both SYNs carry the option.
    assert!(
        exchange.packets[..2]
            .iter()
            .all(|p| p.window_scale.is_some())
    );
    // A capture holds no socket's state: these are what the segments imply (RFC 9293).
    assert!(exchange.inferred);
    assert_eq!(
        states(&exchange, End::Server),
        [
            State::Listen,
            State::SynReceived,
            State::Established,
            State::FinWait1,
            State::FinWait2,
            State::TimeWait
        ]
    );
    assert_eq!(
        states(&exchange, End::Client),
        [
            State::SynSent,
            State::Established,
            State::CloseWait,
            State::LastAck,
            State::Closed
        ]
    );
    // The reply arrives while the server is in FIN-WAIT-2, its output closed.
    assert_eq!(
        exchange.packets[reply].states.map(|s| s.0),
        Some(State::FinWait2)
    );
    check("kernel.svg", &picture::ladder(&exchange));
    check("kernel-graph.svg", &picture::graph(&exchange));
}

/// `soak --seed N --svg PATH --graph PATH` draws the seed's run: seed 484 is 4027 bytes under
/// 30 % loss each way.
#[test]
fn soak_draws_a_replayed_seed() {
    let dir = tempdir();
    let (ladder, graph) = (dir.join("ladder.svg"), dir.join("graph.svg"));
    let out = Command::new(env!("CARGO_BIN_EXE_soak"))
        .args(["--seed", "484", "--svg"])
        .arg(&ladder)
        .arg("--graph")
        .arg(&graph)
        .output()
        .expect("soak runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    assert!(stdout.contains("seed 484 (loss 30%)") && stdout.contains("4027 B file"));
    let ladder = std::fs::read_to_string(&ladder).expect("the ladder");
    assert!(ladder.matches(">lost<").count() >= 5, "the losses drawn");
    check("soak-484.svg", &ladder);
    check(
        "soak-484-graph.svg",
        &std::fs::read_to_string(&graph).expect("the graph"),
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// Every committed picture renders, the README's (the loopback example's) included.
#[test]
fn every_committed_picture_renders() {
    let mut names: Vec<PathBuf> = std::fs::read_dir(PICTURES)
        .expect("docs/pictures")
        .map(|entry| entry.expect("an entry").path())
        .filter(|path| path.extension().is_some_and(|e| e == "svg"))
        .collect();
    names.sort();
    assert!(names.len() >= 8, "{names:?}");
    for path in names {
        let svg = std::fs::read_to_string(&path).expect("a picture");
        let name = path.file_name().expect("a name").to_string_lossy();
        let drawn = render(&name, &svg);
        assert!(drawn > 2000, "{name}: {drawn} pixels drawn");
    }
}

/// A fresh directory under the target directory's temporary space.
fn tempdir() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!(
        "pictures-{}-{:?}",
        std::process::id(),
        std::thread::current().id()
    ));
    std::fs::create_dir_all(&dir).expect("a temporary directory");
    dir
}
