//! The hostile peers ([`Attack`]) against `halfclose::asynch::serve` on tokio, over the kernel's
//! TCP on 127.0.0.1, where they apply: clients that never read, and replies trickled a byte at
//! a time. (The kernel does the handshake, so forged SYNs never reach `serve`; it keeps its
//! own TIME-WAIT, so there is no linger to test; and it reopens a closed window only for a
//! reader that frees a whole segment's worth, so a reader of a byte at a time is cut by the
//! idle limit, not the rate floor.) The server serves one connection at a time; the scenario
//! and its results are the embassy runs' ([`Scenario`], [`Run`]), without the link's trace.

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::pin::{Pin, pin};
use std::task::Poll;
use std::time::{Duration, Instant};

use halfclose::REPLY;
use halfclose::asynch::tokio::{Stream, TokioClock};
use halfclose::asynch::{fetch, serve};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use super::Attack;
use super::embassy::{Fault, Run, Scenario, Served, file};

/// Run `scenario` on a tokio runtime of its own, until the legitimate client is done and the
/// server has finished with its connection (without the client: the server's first
/// connection, or `client_until`). Panics after `scenario.limit` of wall time.
pub fn run(scenario: Scenario) -> Run {
    assert_eq!(
        scenario.fault,
        Fault::None,
        "the kernel's loopback loses nothing"
    );
    assert!(!scenario.client_resets_at_eof, "not on tokio");
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(async {
            tokio::time::timeout(scenario.limit, run_in(scenario))
                .await
                .unwrap_or_else(|_| panic!("the run did not end within {:?}", scenario.limit))
        })
}

async fn run_in(scenario: Scenario) -> Run {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let file = file(scenario.file_len);
    let timeouts = scenario.timeouts;
    // The server's clock starts with the run: its deadlines are times since then.
    let clock = TokioClock::new();
    let started = Instant::now();
    let served = RefCell::new(Vec::<Served>::new());
    let client_result = RefCell::new(None);
    let client_port = Cell::new(None);
    let client_connected = Cell::new(None);
    let client_done = Cell::new(None);
    let received = RefCell::new(Vec::new());

    let server = pin!(async {
        loop {
            let (stream, remote) = listener.accept().await.unwrap();
            let accepted = started.elapsed();
            let result = serve(&mut Stream(stream), &file[..], &clock, timeouts).await;
            served.borrow_mut().push(Served {
                remote_port: Some(remote.port()),
                result,
                accepted,
                ended: started.elapsed(),
            });
        }
    });
    let legit = pin!(async {
        if !scenario.client {
            return;
        }
        tokio::time::sleep(scenario.client_from).await;
        let stream = TcpStream::connect(addr).await.unwrap();
        client_port.set(Some(stream.local_addr().unwrap().port()));
        client_connected.set(Some(started.elapsed()));
        let mut got = Vec::new();
        let result = fetch(
            &mut Stream(stream),
            halfclose::io::FromStd(&mut got),
            &TokioClock::new(),
            timeouts,
        )
        .await;
        *received.borrow_mut() = got;
        *client_result.borrow_mut() = Some(result);
        client_done.set(Some(started.elapsed()));
    });
    let attackers = pin!(async {
        tokio::time::sleep(scenario.attack_from).await;
        attack(addr, scenario.attack, scenario.second).await
    });
    let mut tasks: [Pin<&mut dyn Future<Output = ()>>; 3] = [server, legit, attackers];
    until(&mut tasks, || {
        if !scenario.client {
            return !served.borrow().is_empty() || started.elapsed() >= scenario.client_until;
        }
        let port = client_port.get();
        client_done.get().is_some()
            && served
                .borrow()
                .iter()
                .any(|s| s.remote_port.is_some() && s.remote_port == port)
    })
    .await;
    Run {
        served: served.take(),
        client: client_result.take(),
        attempts: u32::from(client_connected.get().is_some()),
        client_connected: client_connected.get(),
        client_done: client_done.get(),
        client_port: client_port.get(),
        received: received.take(),
        trace: Vec::new(),
        accept_sleeps: 0,
    }
}

/// Poll `tasks` until `done()` holds (looked at after each round, and every 10 ms).
async fn until(tasks: &mut [Pin<&mut dyn Future<Output = ()>>], done: impl Fn() -> bool) {
    let mut finished = vec![false; tasks.len()];
    let mut tick = tokio::time::interval(Duration::from_millis(10));
    std::future::poll_fn(|cx| {
        let _ = tick.poll_tick(cx);
        let unfinished = tasks.iter_mut().zip(&mut finished).filter(|(_, f)| !**f);
        for (task, finished) in unfinished {
            *finished = task.as_mut().poll(cx).is_ready();
        }
        if done() {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    })
    .await
}

/// One hostile peer's connection.
type Peer = Pin<Box<dyn Future<Output = ()>>>;

/// The hostile peers of `attack`, each on a connection of its own, for ever (the run ends
/// without them).
async fn attack(addr: std::net::SocketAddr, attack: Attack, second: Duration) {
    let scaled = |seconds: u64| second * seconds as u32;
    let (count, peer): (usize, Box<dyn Fn() -> Peer>) = match attack {
        Attack::None => (0, Box::new(|| Box::pin(async {}) as _)),
        Attack::ForgedSyns(_) => panic!("the kernel does the handshake: no SYN reaches serve"),
        Attack::NeverRead => (4, Box::new(move || Box::pin(never_read(addr)) as _)),
        Attack::SlowReaders { clients, every } => (
            clients,
            Box::new(move || Box::pin(read_slowly(addr, scaled(every))) as _),
        ),
        Attack::TrickledReply { clients, wrong } => {
            let reply: &'static [u8] = if wrong { b"Xhank you\0" } else { &REPLY[..] };
            (
                clients,
                Box::new(move || Box::pin(trickle_reply(addr, reply, scaled(100))) as _),
            )
        }
    };
    let mut peers: Vec<_> = (0..count).map(|_| peer()).collect();
    std::future::poll_fn(|cx| {
        for peer in &mut peers {
            let _ = peer.as_mut().poll(cx);
        }
        Poll::<()>::Pending
    })
    .await
}

/// Connect, and never read.
async fn never_read(addr: std::net::SocketAddr) {
    let _held = TcpStream::connect(addr).await;
    std::future::pending::<()>().await;
}

/// Connect, and read a byte every `gap` until the connection ends.
async fn read_slowly(addr: std::net::SocketAddr, gap: Duration) {
    let Ok(mut stream) = TcpStream::connect(addr).await else {
        return;
    };
    let mut byte = [0u8; 1];
    while let Ok(1) = stream.read(&mut byte).await {
        tokio::time::sleep(gap).await;
    }
}

/// Connect, read the file to its end, then write `reply` a byte at a time, `gap` apart, and
/// close.
async fn trickle_reply(addr: std::net::SocketAddr, reply: &[u8], gap: Duration) {
    let Ok(mut stream) = TcpStream::connect(addr).await else {
        return;
    };
    let mut sink = Vec::new();
    if stream.read_to_end(&mut sink).await.is_err() {
        return;
    }
    for byte in reply.chunks(1) {
        if stream.write_all(byte).await.is_err() {
            return;
        }
        tokio::time::sleep(gap).await;
    }
    let _ = stream.shutdown().await;
}
