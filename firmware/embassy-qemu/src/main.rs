//! halfclose's async transfer on embassy, bare-metal on an emulated LM3S6965 (Cortex-M3):
//! `embassy-executor` (thread mode), `embassy-net` on the board's Stellaris Ethernet MAC
//! (`mac.rs`), `embassy-time` on SysTick (`time.rs`), and the library's `asynch::serve` and
//! `asynch::fetch` on embassy-net's `TcpSocket`.
//!
//! First it serves its 64 KiB file to whoever connects to port 7891 (and waits for the
//! "Thank you"), then it fetches a file from 192.168.69.100:7892, checks every byte against the
//! same payload, and thanks that server: what the sync image (`firmware/cortex-m-qemu`, feature
//! `net`) does, so the two footprints compare. `scripts/firmware-async.sh` runs it against a Linux
//! network namespace over QEMU's TAP NIC. Output and the exit status go through semihosting.

#![no_std]
#![no_main]

mod mac;
mod time;

use cortex_m_rt::{ExceptionFrame, entry, exception};
use cortex_m_semihosting::hprintln;
use embassy_executor::{Executor, Spawner};
use embassy_net::tcp::TcpSocket;
use embassy_net::{Config, Ipv4Cidr, Runner, Stack, StackResources, StaticConfigV4};
use embassy_time::{Duration, Timer};
use halfclose::asynch::embassy::{EmbassyClock, accept, client_socket, connect};
use halfclose::asynch::{fetch, serve};
use halfclose::{Error, Timeouts};
use static_cell::{ConstStaticCell, StaticCell};
// The sync image's Ethernet MAC driver, its file and checking sink, its exit, and its link,
// buffers (as the sync image's: 4 KiB in the data's direction, a few bytes for the reply) and
// RAM line, shared rather than copied (`firmware/common`).
use halfclose_firmware_common::net::{
    ADDR, DATA, FETCH_PORT, LIMIT_SECS, MAC, NIC_BUFFERS, PEER, SERVE_PORT, SMALL, SMALL_BUFFERS,
    SOCKET_BUFFERS, print_ram,
};
use halfclose_firmware_common::{enet, exit, payload};

use crate::mac::Mac;

/// Each side must be over by then.
const LIMIT: Duration = Duration::from_secs(LIMIT_SECS);

static RESOURCES: ConstStaticCell<StackResources<2>> = ConstStaticCell::new(StackResources::new());
static EXECUTOR: StaticCell<Executor> = StaticCell::new();

#[entry]
fn main() -> ! {
    let Some(peripherals) = cortex_m::Peripherals::take() else {
        finish(false);
    };
    let hz = time::start(peripherals.SYST);
    hprintln!(
        "halfclose async on embassy, LM3S6965 (Cortex-M3) over its Ethernet MAC: {} at {}, SysTick at {} Hz",
        Mac6(MAC),
        ADDR,
        hz
    );
    let device = Mac::new(MAC, NIC_BUFFERS.take());
    let config = Config::ipv4_static(StaticConfigV4 {
        address: Ipv4Cidr::new(ADDR, 24),
        gateway: None,
        dns_servers: Default::default(),
    });
    let seed = u64::from(cortex_m::peripheral::SYST::get_current()) ^ 0x6861_6c66;
    let (stack, runner) = embassy_net::new(device, config, RESOURCES.take(), seed);
    EXECUTOR.init(Executor::new()).run(|spawner| {
        spawner.spawn(net_task(runner).expect("one net task"));
        spawner.spawn(transfer_task(stack, spawner).expect("one transfer task"));
    })
}

#[embassy_executor::task]
async fn net_task(mut runner: Runner<'static, Mac>) -> ! {
    runner.run().await
}

#[embassy_executor::task]
async fn transfer_task(stack: Stack<'static>, _spawner: Spawner) {
    finish(transfer(stack).await)
}

/// Serve, then fetch. Returns whether both went as the protocol says.
async fn transfer(stack: Stack<'static>) -> bool {
    let [server_tx, client_rx] = SOCKET_BUFFERS.take();
    let [server_rx, client_tx] = SMALL_BUFFERS.take();
    let clock = EmbassyClock;
    let mut passed = true;

    // 1. Serve the file to the Linux client. Linger (8 s by default) is cut to 50 ms: enough for
    //    the ACK of the client's FIN (smoltcp may delay it 10 ms) before the socket is dropped.
    let timeouts = Timeouts {
        linger: smoltcp::time::Duration::from_millis(50),
        ..Timeouts::DEFAULT
    };
    {
        let mut socket = TcpSocket::new(stack, server_rx, server_tx);
        let served = embassy_time::with_timeout(LIMIT, async {
            accept(&mut socket, SERVE_PORT, &clock, timeouts).await?;
            serve(&mut socket, &payload::PAYLOAD[..], &clock, timeouts).await
        })
        .await;
        match served {
            Ok(Ok(report)) => {
                let ms = report.duration().total_millis().max(1);
                hprintln!(
                    "server: sent {} bytes in {} ms ({} KB/s); FIN acknowledged: {}; reply {} {} ms after our FIN",
                    report.bytes,
                    ms,
                    report.bytes / ms,
                    report.fin_acked_at.is_some(),
                    report.reply,
                    (report.reply_at - report.fin_queued_at).total_millis(),
                );
                passed &= report.reply.is_thank_you() && report.bytes == payload::LEN as u64;
            }
            Ok(Err(e)) => {
                hprintln!("server: error: {}", e);
                abort(&mut socket).await;
                passed = false;
            }
            Err(_) => {
                hprintln!("server: not done within {} s", LIMIT.as_secs());
                abort(&mut socket).await;
                passed = false;
            }
        }
    }

    // 2. Fetch a file from the Linux server and thank it. The socket's receive window is never
    //    scaled (`client_socket`), so smoltcp cannot end the file short at a window edge.
    let mut socket = client_socket(stack, client_rx, client_tx);
    let mut check = payload::Check::new();
    let timeouts = Timeouts::DEFAULT;
    let fetched = embassy_time::with_timeout(LIMIT, async {
        let remote = (PEER, FETCH_PORT);
        let mut connected = connect(&mut socket, remote, &clock, timeouts).await;
        // The Linux server may not listen yet: a refused socket is CLOSED and may try again.
        while connected == Err(Error::Refused) {
            Timer::after(Duration::from_millis(200)).await;
            connected = connect(&mut socket, remote, &clock, timeouts).await;
        }
        connected?;
        fetch(&mut socket, &mut check, &clock, timeouts).await
    })
    .await;
    match fetched {
        Ok(Ok(report)) => {
            let ms = report.transfer_time().total_millis().max(1);
            hprintln!(
                "client: received {} bytes in {} ms ({} KB/s), crc32 {:08x}, {}; replied \"Thank you\\0\", acknowledged",
                report.bytes,
                ms,
                report.bytes / ms,
                check.crc(),
                check.verdict(),
            );
            passed &= check.is_payload();
        }
        Ok(Err(e)) => {
            hprintln!("client: error: {} ({} bytes checked)", e, check.bytes());
            abort(&mut socket).await;
            passed = false;
        }
        Err(_) => {
            hprintln!("client: not done within {} s", LIMIT.as_secs());
            abort(&mut socket).await;
            passed = false;
        }
    }
    print_ram(2 * (DATA + SMALL));
    passed
}

/// Reset the connection and let the RST leave.
async fn abort(socket: &mut TcpSocket<'_>) {
    socket.abort();
    let _ = embassy_time::with_timeout(Duration::from_secs(1), socket.flush()).await;
}

/// A MAC address as `02-00-00-00-00-01`.
struct Mac6([u8; 6]);

impl core::fmt::Display for Mac6 {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let m = self.0;
        write!(
            f,
            "{:02x}-{:02x}-{:02x}-{:02x}-{:02x}-{:02x}",
            m[0], m[1], m[2], m[3], m[4], m[5]
        )
    }
}

fn finish(passed: bool) -> ! {
    hprintln!("result: {}", if passed { "PASS" } else { "FAIL" });
    exit(passed)
}

/// A fault ends the run as a failure at once, instead of leaving QEMU to its timeout.
#[exception]
unsafe fn HardFault(frame: &ExceptionFrame) -> ! {
    hprintln!("hard fault at pc {:#010x}", frame.pc());
    finish(false)
}

#[panic_handler]
fn panic(info: &core::panic::PanicInfo) -> ! {
    hprintln!("panic: {}", info);
    finish(false)
}
