//! Snapshot streaming throughput over io_uring on loopback: node 1 streams `CHUNKS` chunks of
//! `SIZE` bytes to node 2 with a window of `WINDOW` chunks in flight, each node on its thread.
//!
//! `cargo run --release -p ringraft-bench --example transport_snapshot_stream -- [CHUNKS] [SIZE] [WINDOW]`

use clap::Parser;
use std::net::SocketAddr;
use std::sync::mpsc as std_mpsc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use ringraft::raft::NodeId;
use ringraft::transport::{Incoming, Transport, TransportConfig, UringTransport};

/// Snapshot streaming throughput over io_uring on loopback.
#[derive(Parser, Debug)]
struct Args {
    /// Chunks streamed.
    #[arg(default_value_t = 1024)]
    chunks: usize,
    /// Bytes per chunk.
    #[arg(default_value_t = 1 << 20)]
    size: usize,
    /// Chunks in flight.
    #[arg(default_value_t = 8)]
    window: u32,
}

fn main() {
    let Args {
        chunks,
        size,
        window,
    } = Args::parse();
    let config = move |id| {
        let mut config = TransportConfig::new(7, NodeId(id));
        config.snapshot_chunks_inflight_max = window;
        config
    };
    let any: SocketAddr = "127.0.0.1:0".parse().expect("address");
    let (addr_tx, addr_rx) = std_mpsc::channel();
    let (peer_tx, peer_rx) = std_mpsc::channel::<SocketAddr>();
    let receiver = std::thread::spawn(move || {
        tokio_uring::start(async move {
            let (t, mut inbox) = UringTransport::start(config(2), any).expect("start");
            addr_tx.send(t.local_addr()).expect("main alive");
            t.add_peer(NodeId(1), peer_rx.recv().expect("address"))
                .expect("peer");
            let Some(Incoming::Snapshot(mut stream)) = inbox.recv().await else {
                panic!("expected a snapshot");
            };
            let start = Instant::now();
            let mut bytes = 0usize;
            while let Some(chunk) = stream.next_chunk().await.expect("intact") {
                bytes += chunk.len();
            }
            let secs = start.elapsed().as_secs_f64();
            println!(
                "snapshot: {bytes} B in {secs:.3} s = {:.0} MiB/s (window {window} x {size} B)",
                bytes as f64 / secs / f64::from(1 << 20)
            );
            // Let the last acknowledgement leave before the endpoint shuts down.
            tokio::time::sleep(Duration::from_millis(200)).await;
        });
    });
    let receiver_addr = addr_rx.recv().expect("receiver address");
    std::thread::spawn(move || {
        tokio_uring::start(async move {
            let (t, _inbox) = UringTransport::start(config(1), any).expect("start");
            peer_tx.send(t.local_addr()).expect("receiver alive");
            t.add_peer(NodeId(2), receiver_addr).expect("peer");
            let mut sender = loop {
                match t.start_snapshot(NodeId(2), Bytes::from_static(b"meta")) {
                    Ok(sender) => break sender,
                    Err(_) => tokio::time::sleep(Duration::from_millis(1)).await,
                }
            };
            let chunk = Bytes::from(vec![0x5au8; size]);
            for _ in 0..chunks {
                sender.send_chunk(chunk.clone()).await.expect("sent");
            }
            sender.finish().await.expect("finished");
            println!("sender: finished, every chunk acknowledged");
            tokio::time::sleep(Duration::from_secs(5)).await;
        });
    });
    receiver.join().expect("receiver");
    std::thread::sleep(Duration::from_millis(100));
    std::process::exit(0);
}
