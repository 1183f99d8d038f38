//! Loopback throughput of the TCP transport: two nodes, each on its own thread (as a node runs
//! in ringraft), node 1 streams `COUNT` messages of `SIZE` bytes to node 2.
//!
//! `cargo run --release -p ringraft-bench --example transport_loopback -- [uring|thread] [COUNT] [SIZE]`
//!
//! The sender retries on a full queue (yielding), so every message arrives; the number
//! printed is end to end: from the first send until node 2 received the last message.

use clap::{Parser, ValueEnum};
use std::net::SocketAddr;
use std::sync::mpsc as std_mpsc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use ringraft::raft::NodeId;
use ringraft::transport::{
    Inbox, SendError, ThreadTransport, Transport, TransportConfig, UringTransport,
};

fn config(id: u64) -> TransportConfig {
    let mut config = TransportConfig::new(7, NodeId(id));
    config.reconnect_backoff_min = Duration::from_millis(1);
    config
}

fn any_port() -> SocketAddr {
    "127.0.0.1:0".parse().expect("address")
}

fn start(uring: bool, id: u64) -> (Box<dyn Transport>, Inbox, SocketAddr) {
    if uring {
        let (t, inbox) = UringTransport::start(config(id), any_port()).expect("start");
        let addr = t.local_addr();
        (Box::new(t), inbox, addr)
    } else {
        let (t, inbox) = ThreadTransport::start(config(id), any_port()).expect("start");
        let addr = t.local_addr();
        (Box::new(t), inbox, addr)
    }
}

/// Runs `f` on a fresh node thread with the runtime of the chosen backend.
fn node_thread<F, Fut>(uring: bool, f: F) -> std::thread::JoinHandle<()>
where
    F: FnOnce() -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()>,
{
    std::thread::spawn(move || {
        if uring {
            tokio_uring::start(f());
        } else {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_time()
                .build()
                .expect("runtime");
            rt.block_on(f());
        }
    })
}

/// Which transport backend each node runs.
#[derive(Clone, Copy, Debug, ValueEnum)]
enum Backend {
    /// io_uring on a tokio-uring runtime.
    Uring,
    /// Blocking sockets on threads.
    Thread,
}

/// Loopback throughput of the TCP transport between two nodes.
#[derive(Parser, Debug)]
struct Args {
    /// Transport backend.
    #[arg(value_enum, default_value_t = Backend::Uring)]
    backend: Backend,
    /// Messages node 1 streams to node 2.
    #[arg(default_value_t = 1_000_000)]
    count: u64,
    /// Bytes per message.
    #[arg(default_value_t = 128)]
    size: usize,
}

fn main() {
    let args = Args::parse();
    let uring = matches!(args.backend, Backend::Uring);
    let (count, size) = (args.count, args.size);

    let (addr_tx, addr_rx) = std_mpsc::channel();
    let (peer_tx, peer_rx) = std_mpsc::channel::<SocketAddr>();
    let receiver = node_thread(uring, move || async move {
        let (t, mut inbox, addr) = start(uring, 2);
        addr_tx.send(addr).expect("main alive");
        let sender_addr = peer_rx.recv().expect("sender address");
        t.add_peer(NodeId(1), sender_addr).expect("peer");
        let mut got = 0u64;
        let mut first = None;
        let mut batch = Vec::with_capacity(1024);
        while got < count {
            // One wake-up per batch, as a node loop drains its inbox.
            let n = inbox.recv_many(&mut batch, 1024).await;
            assert!(n > 0, "inbox open");
            first.get_or_insert_with(Instant::now);
            got += n as u64;
            batch.clear();
        }
        let elapsed = first.map_or(Duration::ZERO, |f| f.elapsed());
        println!("receiver: {got} messages, last {elapsed:?} after the first");
        println!("receiver metrics: {:?}", t.metrics());
        t.shutdown();
    });
    let receiver_addr = addr_rx.recv().expect("receiver address");
    let sender = node_thread(uring, move || async move {
        let (t, _inbox, addr) = start(uring, 1);
        peer_tx.send(addr).expect("receiver alive");
        t.add_peer(NodeId(2), receiver_addr).expect("peer");
        let payload = Bytes::from(vec![0xabu8; size]);
        // Warm up: wait for the connection.
        while t.send(NodeId(2), payload.clone()).is_err() {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        let start = Instant::now();
        let mut sent = 1u64;
        let mut full = 0u64;
        while sent < count {
            match t.send(NodeId(2), payload.clone()) {
                Ok(()) => sent += 1,
                Err(SendError::QueueFull(_)) => {
                    full += 1;
                    // Not `yield_now`: tokio-uring submits queued operations only when the
                    // thread parks, so a task that keeps yielding starves the socket I/O.
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
                Err(other) => panic!("{other}"),
            }
        }
        println!(
            "sender: {sent} queued in {:?} ({full} full-queue retries)",
            start.elapsed()
        );
        // Keep the endpoint alive until the receiver is done.
        tokio::time::sleep(Duration::from_secs(30)).await;
    });
    let start = Instant::now();
    receiver.join().expect("receiver");
    let secs = start.elapsed().as_secs_f64();
    let bytes = count as f64 * size as f64;
    println!(
        "{} backend: {count} x {size} B in {secs:.3} s = {:.0} msg/s, {:.1} MiB/s",
        if uring { "io_uring" } else { "thread" },
        count as f64 / secs,
        bytes / secs / (1 << 20) as f64
    );
    drop(sender);
    std::process::exit(0);
}
