//! One conformance suite for every [`Transport`]: each test is written once against the
//! [`Harness`] trait and instantiated for io_uring, threads and (where no raw TCP is needed)
//! the in-memory transport. Real sockets on 127.0.0.1 with port 0; every wait is bounded.

use std::future::Future;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use bytes::Bytes;

use super::frame::{encode_frame, FrameKind};
use super::handshake::{Hello, HANDSHAKE_BYTES};
use super::{
    Inbox, Incoming, MemoryNetwork, MemoryTransport, NodeId, SendError, SnapshotStreamError,
    TcpBackend, ThreadTransport, Transport, TransportConfig, UringTransport,
};

const CLUSTER: u64 = 0xc1u64;
/// Upper bound of any single wait in these tests; never reached when things work.
const WAIT: Duration = Duration::from_secs(20);

fn any_port() -> SocketAddr {
    "127.0.0.1:0".parse().expect("valid address")
}

fn config(id: u64) -> TransportConfig {
    let mut config = TransportConfig::new(CLUSTER, NodeId(id));
    config.reconnect_backoff_min = Duration::from_millis(5);
    config.reconnect_backoff_max = Duration::from_millis(100);
    config.keepalive_interval = Duration::from_millis(200);
    config.idle_timeout = Duration::from_secs(5);
    config.handshake_timeout = Duration::from_secs(2);
    config
}

/// Starts endpoints of one backend.
pub(super) trait Harness {
    type T: Transport + 'static;
    /// Starts node `config.node_id` listening on `listen`; returns its address.
    fn try_start(
        &self,
        config: TransportConfig,
        listen: SocketAddr,
    ) -> Result<(Self::T, Inbox, SocketAddr), super::TransportError>;

    fn start(&self, config: TransportConfig, listen: SocketAddr) -> (Self::T, Inbox, SocketAddr) {
        self.try_start(config, listen).expect("endpoint starts")
    }
}

/// Starts an endpoint on an address whose previous listener may still be closing (its task
/// must get to run, so the retry waits asynchronously).
async fn restart<H: Harness>(
    h: &H,
    config: TransportConfig,
    listen: SocketAddr,
) -> (H::T, Inbox, SocketAddr) {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        match h.try_start(config.clone(), listen) {
            Ok(started) => return started,
            Err(error) => {
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "cannot restart: {error}"
                );
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    }
}

pub(super) struct Uring;
pub(super) struct Threads;
pub(super) struct Memory(MemoryNetwork);

impl Harness for Uring {
    type T = UringTransport;
    fn try_start(
        &self,
        config: TransportConfig,
        listen: SocketAddr,
    ) -> Result<(Self::T, Inbox, SocketAddr), super::TransportError> {
        let (t, inbox) = UringTransport::start(config, listen)?;
        let addr = t.local_addr();
        Ok((t, inbox, addr))
    }
}

impl Harness for Threads {
    type T = ThreadTransport;
    fn try_start(
        &self,
        config: TransportConfig,
        listen: SocketAddr,
    ) -> Result<(Self::T, Inbox, SocketAddr), super::TransportError> {
        let (t, inbox) = ThreadTransport::start(config, listen)?;
        let addr = t.local_addr();
        Ok((t, inbox, addr))
    }
}

impl Harness for Memory {
    type T = MemoryTransport;
    fn try_start(
        &self,
        config: TransportConfig,
        listen: SocketAddr,
    ) -> Result<(Self::T, Inbox, SocketAddr), super::TransportError> {
        let (t, inbox) = self.0.endpoint(config)?;
        Ok((t, inbox, listen))
    }
}

fn run_uring<F: Future<Output = ()>>(test: impl FnOnce(Uring) -> F) {
    assert_eq!(
        TcpBackend::detect(),
        TcpBackend::Uring,
        "io_uring must be available to this suite"
    );
    tokio_uring::start(test(Uring));
}

fn run_threads<F: Future<Output = ()>>(test: impl FnOnce(Threads) -> F) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("runtime");
    runtime.block_on(test(Threads));
}

fn run_memory<F: Future<Output = ()>>(test: impl FnOnce(Memory) -> F) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("runtime");
    runtime.block_on(test(Memory(MemoryNetwork::new())));
}

async fn recv(inbox: &mut Inbox) -> Incoming {
    tokio::time::timeout(WAIT, inbox.recv())
        .await
        .expect("received within the bound")
        .expect("inbox open")
}

async fn recv_message(inbox: &mut Inbox) -> (NodeId, Bytes) {
    match recv(inbox).await {
        Incoming::Message { from, payload } => (from, payload),
        Incoming::Snapshot(_) => panic!("unexpected snapshot"),
    }
}

/// Polls `condition` every 5 ms until it holds (bounded by [`WAIT`]).
async fn eventually(what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + WAIT;
    while !condition() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

struct Cluster<T> {
    nodes: Vec<T>,
    inboxes: Vec<Inbox>,
    addrs: Vec<SocketAddr>,
}

/// Starts nodes 1..=n, each a peer of every other.
fn cluster<H: Harness>(h: &H, n: u64, tweak: impl Fn(&mut TransportConfig)) -> Cluster<H::T> {
    let mut c = Cluster {
        nodes: Vec::new(),
        inboxes: Vec::new(),
        addrs: Vec::new(),
    };
    for id in 1..=n {
        let mut cfg = config(id);
        tweak(&mut cfg);
        let (t, inbox, addr) = h.start(cfg, any_port());
        c.nodes.push(t);
        c.inboxes.push(inbox);
        c.addrs.push(addr);
    }
    for (i, node) in c.nodes.iter().enumerate() {
        for (j, addr) in c.addrs.iter().enumerate() {
            if i != j {
                node.add_peer(NodeId(j as u64 + 1), *addr)
                    .expect("add peer");
            }
        }
    }
    c
}

async fn round_trip_three_nodes<H: Harness>(h: H) {
    let mut c = cluster(&h, 3, |_| {});
    for (i, node) in c.nodes.iter().enumerate() {
        for j in 0..3u64 {
            if j != i as u64 {
                let payload = Bytes::from(format!("{}->{}", i + 1, j + 1));
                node.send(NodeId(j + 1), payload).expect("queued");
            }
        }
    }
    for (j, inbox) in c.inboxes.iter_mut().enumerate() {
        let mut got = Vec::new();
        for _ in 0..2 {
            let (from, payload) = recv_message(inbox).await;
            assert_eq!(payload, Bytes::from(format!("{from}->{}", j + 1)));
            got.push(from.0);
        }
        got.sort_unstable();
        let want: Vec<u64> = (1..=3).filter(|&k| k != j as u64 + 1).collect();
        assert_eq!(got, want);
    }
    let metrics = c.nodes[0].metrics();
    assert_eq!(metrics.msgs_queued, 2);
    assert_eq!(c.nodes[1].metrics().msgs_delivered, 2);
    for node in &c.nodes {
        node.shutdown();
    }
}

async fn ordering_per_connection<H: Harness>(h: H) {
    const N: u32 = 5000;
    let mut c = cluster(&h, 2, |cfg| {
        // The memory transport's send queue is the receiver's inbox.
        cfg.send_queue_msgs_max = N as usize;
        cfg.inbox_msgs_max = N as usize;
    });
    for seq in 0..N {
        c.nodes[0]
            .send(NodeId(2), Bytes::copy_from_slice(&seq.to_le_bytes()))
            .expect("queue holds them all");
    }
    for want in 0..N {
        let (from, payload) = recv_message(&mut c.inboxes[1]).await;
        assert_eq!(from, NodeId(1));
        let got = u32::from_le_bytes(payload[..].try_into().expect("4 bytes"));
        assert_eq!(got, want, "FIFO, no loss, no duplicates on one connection");
    }
    for node in &c.nodes {
        node.shutdown();
    }
}

async fn reconnect_after_restart<H: Harness>(h: H) {
    let mut c = cluster(&h, 2, |_| {});
    c.nodes[0]
        .send(NodeId(2), Bytes::from_static(b"before"))
        .expect("queued");
    assert_eq!(
        recv_message(&mut c.inboxes[1]).await.1,
        Bytes::from_static(b"before")
    );
    // Restart node 2 on the same address.
    let old = c.nodes.pop().expect("node 2");
    old.shutdown();
    drop(old);
    drop(c.inboxes.pop());
    let (node2, mut inbox2, _) = restart(&h, config(2), c.addrs[1]).await;
    node2.add_peer(NodeId(1), c.addrs[0]).expect("add peer");
    // Raft retransmits; so does this test until the new connection carries a message.
    let mut unreachable_seen = false;
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let _ = c.nodes[0].send(NodeId(2), Bytes::from_static(b"after"));
        unreachable_seen |= c.nodes[0].take_unreachable().contains(&NodeId(2));
        match tokio::time::timeout(Duration::from_millis(50), inbox2.recv()).await {
            Ok(Some(Incoming::Message { from, payload })) => {
                assert_eq!((from, payload), (NodeId(1), Bytes::from_static(b"after")));
                break;
            }
            Ok(_) => panic!("unexpected inbox item or end"),
            Err(_) => assert!(tokio::time::Instant::now() < deadline, "no reconnect"),
        }
    }
    // The old connection was declared down before the dialer made the new one.
    unreachable_seen |= c.nodes[0].take_unreachable().contains(&NodeId(2));
    let metrics = c.nodes[0].metrics();
    if metrics.connects > 0 {
        // TCP backends: the dialer reconnected and reported the peer in between.
        assert!(metrics.reconnects >= 1, "{metrics:?}");
        assert!(unreachable_seen, "peer 2 reported unreachable while down");
    }
    c.nodes[0].shutdown();
    node2.shutdown();
}

async fn stalled_receiver_bounds_the_queue<H: Harness>(h: H) {
    const QUEUE: usize = 32;
    let mut c = cluster(&h, 2, |cfg| {
        cfg.send_queue_msgs_max = QUEUE;
        cfg.inbox_msgs_max = 8;
    });
    // Node 2 never reads: its inbox fills, then its socket, then node 1's queue.
    let payload = Bytes::from(vec![7u8; 64 << 10]);
    let mut refused = 0u64;
    let mut accepted = 0u64;
    for i in 0..4000u32 {
        match c.nodes[0].send(NodeId(2), payload.clone()) {
            Ok(()) => accepted += 1,
            Err(SendError::QueueFull(to)) => {
                assert_eq!(to, NodeId(2));
                refused += 1;
            }
            Err(other) => panic!("unexpected {other}"),
        }
        if i.is_multiple_of(64) {
            // Let the connection make progress where it can.
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }
    let metrics = c.nodes[0].metrics();
    assert!(refused > 0, "a stalled receiver must make the sender drop");
    assert_eq!(metrics.drops_queue_full, refused);
    assert_eq!(metrics.msgs_queued, accepted);
    // The receiver wakes up: what arrives is in order and without duplicates.
    let mut delivered = 0;
    while let Ok(Some(item)) =
        tokio::time::timeout(Duration::from_millis(300), c.inboxes[1].recv()).await
    {
        assert!(matches!(item, Incoming::Message { .. }));
        delivered += 1;
    }
    assert!(
        delivered >= 8 && delivered <= accepted,
        "{delivered} of {accepted}"
    );
    for node in &c.nodes {
        node.shutdown();
    }
}

async fn snapshot_stream_with_flow_control<H: Harness>(h: H) {
    const WINDOW: u32 = 4;
    const CHUNKS: usize = 64;
    let mut c = cluster(&h, 2, |cfg| cfg.snapshot_chunks_inflight_max = WINDOW);
    // The stream needs an established connection; messages prove it is up.
    let mut sender = loop {
        match c.nodes[0].start_snapshot(NodeId(2), Bytes::from_static(b"meta")) {
            Ok(sender) => break sender,
            Err(SnapshotStreamError::Unreachable(_)) => {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            Err(other) => panic!("{other}"),
        }
    };
    let Incoming::Snapshot(mut receiver) = recv(&mut c.inboxes[1]).await else {
        panic!("expected a snapshot stream");
    };
    assert_eq!(
        (receiver.from(), &receiver.header()[..]),
        (NodeId(1), &b"meta"[..])
    );
    let chunk = |i: usize| Bytes::from(vec![i as u8; 1000 + i]);
    // The window fills without the receiver doing anything...
    for i in 0..WINDOW as usize {
        tokio::time::timeout(WAIT, sender.send_chunk(chunk(i)))
            .await
            .expect("within the window")
            .expect("sent");
    }
    // ...and the next chunk waits for an acknowledgement (no credit can appear by itself).
    let blocked =
        tokio::time::timeout(Duration::from_millis(100), sender.send_chunk(chunk(99))).await;
    assert!(blocked.is_err(), "a full window must block the sender");
    // Receiver takes chunks while the sender streams the rest.
    let send = async {
        for i in WINDOW as usize..CHUNKS {
            sender.send_chunk(chunk(i)).await.expect("sent");
        }
        tokio::time::timeout(WAIT, sender.finish())
            .await
            .expect("finished in time")
    };
    let receive = async {
        let mut got = Vec::new();
        while let Some(data) = tokio::time::timeout(WAIT, receiver.next_chunk())
            .await
            .expect("chunk in time")
            .expect("stream intact")
        {
            got.push(data);
        }
        got
    };
    let (finished, got) = tokio::join!(send, receive);
    finished.expect("receiver took everything");
    let want: Vec<Bytes> = (0..CHUNKS).map(chunk).collect();
    assert_eq!(got, want, "every chunk, in order, once");
    assert_eq!(c.nodes[1].metrics().snapshots_completed, 1);
    for node in &c.nodes {
        node.shutdown();
    }
}

async fn snapshot_receiver_drop_aborts_sender<H: Harness>(h: H) {
    let mut c = cluster(&h, 2, |cfg| cfg.snapshot_chunks_inflight_max = 2);
    let mut sender = loop {
        match c.nodes[0].start_snapshot(NodeId(2), Bytes::new()) {
            Ok(sender) => break sender,
            Err(_) => tokio::time::sleep(Duration::from_millis(5)).await,
        }
    };
    let Incoming::Snapshot(receiver) = recv(&mut c.inboxes[1]).await else {
        panic!("expected a snapshot stream");
    };
    drop(receiver);
    let result = tokio::time::timeout(WAIT, async {
        loop {
            if let Err(error) = sender.send_chunk(Bytes::from_static(b"x")).await {
                return error;
            }
        }
    })
    .await
    .expect("the abort reaches the sender");
    assert!(
        matches!(result, SnapshotStreamError::Aborted { .. }),
        "{result}"
    );
    for node in &c.nodes {
        node.shutdown();
    }
}

async fn removed_peer_is_dropped<H: Harness>(h: H) {
    let mut c = cluster(&h, 2, |_| {});
    c.nodes[0]
        .send(NodeId(2), Bytes::from_static(b"one"))
        .expect("queued");
    recv_message(&mut c.inboxes[1]).await;
    c.nodes[0].remove_peer(NodeId(2));
    assert_eq!(
        c.nodes[0].send(NodeId(2), Bytes::from_static(b"two")),
        Err(SendError::UnknownPeer(NodeId(2)))
    );
    assert!(
        c.nodes[0].add_peer(NodeId(1), c.addrs[0]).is_err(),
        "self is no peer"
    );
    for node in &c.nodes {
        node.shutdown();
    }
}

// ---- raw-socket attacks (TCP backends only) ----

/// Runs a raw client on its own thread: connects, writes `bytes`, returns what it reads
/// until the server closes the connection (or a 10 s bound).
async fn raw_client(addr: SocketAddr, bytes: Vec<u8>) -> Vec<u8> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    std::thread::spawn(move || {
        let mut got = Vec::new();
        if let Ok(mut stream) = TcpStream::connect(addr) {
            let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
            let _ = stream.write_all(&bytes);
            let _ = stream.read_to_end(&mut got);
        }
        let _ = tx.send(got);
    });
    tokio::time::timeout(WAIT, rx)
        .await
        .expect("raw client ends")
        .expect("result")
}

async fn hostile_peers_are_refused<H: Harness>(h: H) {
    // Nodes 1 and 2 run; node 3 is a member that never comes up, impersonated below.
    let mut c = cluster(&h, 2, |cfg| cfg.frame_bytes_max = 4096);
    c.nodes[1]
        .add_peer(NodeId(3), any_port())
        .expect("add peer");
    let target = c.addrs[1];
    let valid = |from: u64| {
        Hello::new(CLUSTER, NodeId(from), NodeId(2))
            .encode()
            .to_vec()
    };
    let frame = |payload: &[u8]| {
        let mut out = Vec::new();
        encode_frame(&mut out, FrameKind::Message, 0, payload);
        out
    };
    let mut oversized = valid(3);
    let mut header = frame(b"");
    header[0..4].copy_from_slice(&u32::MAX.to_le_bytes());
    oversized.extend(header);
    let mut bad_crc = valid(3);
    let mut corrupted = frame(b"hello");
    let last = corrupted.len() - 1;
    corrupted[last] ^= 0x55;
    bad_crc.extend(corrupted);
    let cases: Vec<(&str, Vec<u8>, bool)> = vec![
        (
            "garbage",
            b"GET / HTTP/1.1\r\nHost: x\r\n\r\n0123456789".to_vec(),
            false,
        ),
        (
            "other cluster",
            Hello::new(CLUSTER + 1, NodeId(3), NodeId(2))
                .encode()
                .to_vec(),
            false,
        ),
        ("unknown node", valid(9), false),
        (
            "bad version",
            Hello {
                version: 9,
                ..Hello::new(CLUSTER, NodeId(3), NodeId(2))
            }
            .encode()
            .to_vec(),
            false,
        ),
        ("oversized length prefix", oversized, true),
        ("bad crc", bad_crc, true),
    ];
    for (round, (what, bytes, handshake_ok)) in cases.into_iter().enumerate() {
        let before = c.nodes[1].metrics();
        let reply = raw_client(target, bytes).await;
        let after = c.nodes[1].metrics();
        if handshake_ok {
            assert_eq!(
                reply.len(),
                HANDSHAKE_BYTES,
                "{what}: accepted, then closed"
            );
            assert_eq!(
                after.frames_malformed,
                before.frames_malformed + 1,
                "{what}"
            );
        } else {
            assert!(reply.len() <= HANDSHAKE_BYTES, "{what}: at most a refusal");
            assert_eq!(
                after.handshakes_refused,
                before.handshakes_refused + 1,
                "{what}"
            );
        }
        assert_eq!(
            after.msgs_delivered, before.msgs_delivered,
            "{what}: nothing delivered"
        );
        // The honest connection is unaffected.
        let payload = Bytes::from(format!("still working {round}"));
        c.nodes[0].send(NodeId(2), payload.clone()).expect("queued");
        assert_eq!(
            recv_message(&mut c.inboxes[1]).await,
            (NodeId(1), payload),
            "{what}"
        );
    }
    for node in &c.nodes {
        node.shutdown();
    }
}

async fn dialer_refused_by_other_cluster<H: Harness>(h: H) {
    // Node 2 of another cluster listens where node 1 expects its peer.
    let (node1, _inbox1, _) = h.start(config(1), any_port());
    let mut foreign = config(2);
    foreign.cluster_id = CLUSTER + 1;
    let (node2, _inbox2, addr2) = h.start(foreign, any_port());
    node1.add_peer(NodeId(2), addr2).expect("add peer");
    eventually("refusals", || node2.metrics().handshakes_refused >= 1).await;
    eventually("dial failures", || node1.metrics().dial_failures >= 1).await;
    assert_eq!(node1.metrics().connects, 0);
    assert!(node1.take_unreachable().contains(&NodeId(2)));
    node1.shutdown();
    node2.shutdown();
}

async fn silent_client_is_refused_after_the_handshake_timeout<H: Harness>(h: H) {
    let mut cfg = config(1);
    cfg.handshake_timeout = Duration::from_millis(200);
    let (node, _inbox, addr) = h.start(cfg, any_port());
    // Connects, sends half a handshake and waits: the server must give up and close.
    let reply = raw_client(
        addr,
        Hello::new(CLUSTER, NodeId(2), NodeId(1)).encode()[..10].to_vec(),
    )
    .await;
    assert!(reply.is_empty());
    eventually("refusal", || node.metrics().handshakes_refused == 1).await;
    node.shutdown();
}

/// Two raw connections both claim node 3: once the second is accepted, the first can no
/// longer deliver (the ordering guarantee across reconnects).
async fn superseded_connection_never_delivers<H: Harness>(h: H) {
    let mut c = cluster(&h, 1, |_| {});
    c.nodes[0]
        .add_peer(NodeId(3), any_port())
        .expect("add peer");
    let addr = c.addrs[0];
    let (tx, rx) = tokio::sync::oneshot::channel();
    let (done_tx, done_rx) = std::sync::mpsc::channel::<()>();
    std::thread::spawn(move || {
        let hello = Hello::new(CLUSTER, NodeId(3), NodeId(1)).encode();
        let connect = || {
            let mut s = TcpStream::connect(addr).expect("connect");
            s.set_read_timeout(Some(WAIT)).expect("timeout");
            s.write_all(&hello).expect("hello");
            let mut reply = [0u8; HANDSHAKE_BYTES];
            s.read_exact(&mut reply).expect("accepted");
            s
        };
        let mut first = connect();
        let mut second = connect();
        let frame = |payload: &[u8]| {
            let mut out = Vec::new();
            encode_frame(&mut out, FrameKind::Message, 0, payload);
            out
        };
        let _ = first.write_all(&frame(b"old"));
        second.write_all(&frame(b"new")).expect("write");
        let _ = tx.send(());
        // Keep both open until the test is done.
        let _ = done_rx.recv_timeout(WAIT);
    });
    tokio::time::timeout(WAIT, rx)
        .await
        .expect("raw clients")
        .expect("ran");
    assert_eq!(
        recv_message(&mut c.inboxes[0]).await,
        (NodeId(3), Bytes::from_static(b"new"))
    );
    // The superseded connection's frame, sent after the new connection was accepted, never
    // arrives (it would come right away if it could).
    let late = tokio::time::timeout(Duration::from_millis(300), c.inboxes[0].recv()).await;
    assert!(late.is_err(), "superseded connection delivered {late:?}");
    let _ = done_tx.send(());
    c.nodes[0].shutdown();
}

async fn address_change_redials<H: Harness>(h: H) {
    let mut c = cluster(&h, 2, |_| {});
    c.nodes[0]
        .send(NodeId(2), Bytes::from_static(b"old"))
        .expect("queued");
    recv_message(&mut c.inboxes[1]).await;
    // Node 2 moves: a new endpoint elsewhere, while the old one still runs.
    let (moved, mut moved_inbox, moved_addr) = h.start(config(2), any_port());
    moved.add_peer(NodeId(1), c.addrs[0]).expect("peer");
    c.nodes[0]
        .add_peer(NodeId(2), moved_addr)
        .expect("address update");
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let _ = c.nodes[0].send(NodeId(2), Bytes::from_static(b"new"));
        match tokio::time::timeout(Duration::from_millis(50), moved_inbox.recv()).await {
            Ok(Some(Incoming::Message { from, payload })) => {
                assert_eq!((from, payload), (NodeId(1), Bytes::from_static(b"new")));
                break;
            }
            Ok(_) => panic!("unexpected inbox item or end"),
            Err(_) => assert!(tokio::time::Instant::now() < deadline, "never redialed"),
        }
    }
    moved.shutdown();
    for node in &c.nodes {
        node.shutdown();
    }
}

macro_rules! conformance {
    ($($test:ident: $($runner:ident),+;)*) => {
        $(mod $test {
            $(#[test]
            fn $runner() {
                super::$runner(super::$test);
            })+
        })*
    };
}

conformance! {
    round_trip_three_nodes: run_uring, run_threads, run_memory;
    ordering_per_connection: run_uring, run_threads, run_memory;
    reconnect_after_restart: run_uring, run_threads, run_memory;
    stalled_receiver_bounds_the_queue: run_uring, run_threads, run_memory;
    snapshot_stream_with_flow_control: run_uring, run_threads, run_memory;
    snapshot_receiver_drop_aborts_sender: run_uring, run_threads, run_memory;
    removed_peer_is_dropped: run_uring, run_threads, run_memory;
    hostile_peers_are_refused: run_uring, run_threads;
    dialer_refused_by_other_cluster: run_uring, run_threads;
    silent_client_is_refused_after_the_handshake_timeout: run_uring, run_threads;
    superseded_connection_never_delivers: run_uring, run_threads;
    snapshot_aborts_when_the_connection_breaks: run_uring, run_threads;
    receiver_shutdown_aborts_the_sender: run_uring, run_threads;
    address_change_redials: run_uring, run_threads;
}

/// The two TCP backends speak the same protocol: an io_uring node and a thread node talk.
#[test]
fn uring_and_thread_backends_interoperate() {
    run_uring(|_| async {
        let (a, mut inbox_a) = UringTransport::start(config(1), any_port()).expect("start");
        let (b, mut inbox_b) = ThreadTransport::start(config(2), any_port()).expect("start");
        a.add_peer(NodeId(2), b.local_addr()).expect("peer");
        b.add_peer(NodeId(1), a.local_addr()).expect("peer");
        a.send(NodeId(2), Bytes::from_static(b"to thread"))
            .expect("queued");
        b.send(NodeId(1), Bytes::from_static(b"to uring"))
            .expect("queued");
        assert_eq!(
            recv_message(&mut inbox_b).await,
            (NodeId(1), Bytes::from_static(b"to thread"))
        );
        assert_eq!(
            recv_message(&mut inbox_a).await,
            (NodeId(2), Bytes::from_static(b"to uring"))
        );
        a.shutdown();
        b.shutdown();
    });
}

#[test]
fn memory_partition_drops_and_reports() {
    run_memory(|h: Memory| async move {
        let net = h.0.clone();
        let mut c = cluster(&h, 3, |_| {});
        net.cut(NodeId(1), NodeId(2));
        assert_eq!(
            c.nodes[0].send(NodeId(2), Bytes::from_static(b"lost")),
            Err(SendError::LinkDown(NodeId(2)))
        );
        c.nodes[0]
            .send(NodeId(3), Bytes::from_static(b"kept"))
            .expect("other link up");
        assert_eq!(
            recv_message(&mut c.inboxes[2]).await.1,
            Bytes::from_static(b"kept")
        );
        assert_eq!(c.nodes[0].take_unreachable(), vec![NodeId(2)]);
        net.heal_all();
        c.nodes[0]
            .send(NodeId(2), Bytes::from_static(b"back"))
            .expect("healed");
        assert_eq!(
            recv_message(&mut c.inboxes[1]).await.1,
            Bytes::from_static(b"back")
        );
        assert_eq!(c.nodes[0].metrics().drops_link, 1);
        net.lose_next(NodeId(1), NodeId(2), 2);
        for payload in [&b"a"[..], b"b", b"c"] {
            c.nodes[0]
                .send(NodeId(2), Bytes::from(payload))
                .expect("loss is silent");
        }
        assert_eq!(
            recv_message(&mut c.inboxes[1]).await.1,
            Bytes::from_static(b"c")
        );
        assert_eq!(c.nodes[0].metrics().drops_link, 3);
    });
}

async fn snapshot_aborts_when_the_connection_breaks<H: Harness>(h: H) {
    let mut c = cluster(&h, 2, |cfg| cfg.snapshot_chunks_inflight_max = 2);
    let mut sender = loop {
        match c.nodes[0].start_snapshot(NodeId(2), Bytes::new()) {
            Ok(sender) => break sender,
            Err(_) => tokio::time::sleep(Duration::from_millis(5)).await,
        }
    };
    let Incoming::Snapshot(mut receiver) = recv(&mut c.inboxes[1]).await else {
        panic!("expected a snapshot stream");
    };
    sender
        .send_chunk(Bytes::from_static(b"first"))
        .await
        .expect("sent");
    let first = tokio::time::timeout(WAIT, receiver.next_chunk())
        .await
        .expect("in time");
    assert_eq!(first, Ok(Some(Bytes::from_static(b"first"))));
    // The sending node goes away mid-stream: the receiver learns it, and so does the sender.
    c.nodes[0].shutdown();
    let next = tokio::time::timeout(WAIT, receiver.next_chunk())
        .await
        .expect("in time");
    assert!(
        matches!(next, Err(SnapshotStreamError::Aborted { .. })),
        "{next:?}"
    );
    let more = tokio::time::timeout(WAIT, sender.send_chunk(Bytes::from_static(b"x"))).await;
    assert!(
        matches!(more, Ok(Err(SnapshotStreamError::Aborted { .. }))),
        "{more:?}"
    );
    c.nodes[1].shutdown();
}

async fn receiver_shutdown_aborts_the_sender<H: Harness>(h: H) {
    let mut c = cluster(&h, 2, |cfg| cfg.snapshot_chunks_inflight_max = 2);
    let mut sender = loop {
        match c.nodes[0].start_snapshot(NodeId(2), Bytes::new()) {
            Ok(sender) => break sender,
            Err(_) => tokio::time::sleep(Duration::from_millis(5)).await,
        }
    };
    let Incoming::Snapshot(receiver) = recv(&mut c.inboxes[1]).await else {
        panic!("expected a snapshot stream");
    };
    // The receiving node goes away (its application still holds the stream).
    c.nodes[1].shutdown();
    let result = tokio::time::timeout(WAIT, async {
        loop {
            if let Err(error) = sender.send_chunk(Bytes::from_static(b"x")).await {
                return error;
            }
        }
    })
    .await
    .expect("the broken connection reaches the sender");
    assert!(
        matches!(result, SnapshotStreamError::Aborted { .. }),
        "{result}"
    );
    drop(receiver);
    c.nodes[0].shutdown();
}
