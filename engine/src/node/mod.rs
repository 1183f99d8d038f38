//! The node runtime: drives the Raft core with the WAL, the TCP transport and the
//! application's [`StateMachine`] on one OS thread, behind a [`NodeHandle`] usable from any
//! thread or async runtime.
//!
//! # Embedding
//!
//! ```
//! use std::time::Duration;
//! use ringraft::kv::{KvCommand, KvStateMachine};
//! use ringraft::node::{block_on, Node, NodeConfig};
//! use ringraft::raft::{NodeId, ReadMode};
//!
//! let dir = tempfile::tempdir()?;
//! // A one-node cluster; add `config.peers` and `config.initial_voters` for more.
//! let config = NodeConfig::new(/* cluster id */ 7, NodeId(1), dir.path());
//! let node = Node::start(config, KvStateMachine::default())?;
//! node.wait_for_leader(Duration::from_secs(10))?;
//!
//! let handle = node.handle(); // Send + Sync + Clone: give it to any thread or runtime
//! block_on(async {
//!     // Completes once the write is durable on a majority and applied.
//!     let put = handle.propose(KvCommand::set("hello", "world").encode()).await?;
//!     println!("written at index {}", put.index);
//!     // A linearizable read, served from the leader's lease.
//!     let value = handle.read(ReadMode::Lease, |kv: &KvStateMachine| kv.get(b"hello")).await?;
//!     assert_eq!(value.as_deref(), Some(&b"world"[..]));
//!     Ok::<_, ringraft::node::NodeError>(())
//! })?;
//! node.shutdown(); // flushes the WAL: the log reopens without repair
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Module layout
//! - `config`: [`NodeConfig`] and its validation; `error`: [`NodeError`], [`StartError`];
//! - `state_machine`: the [`StateMachine`] trait; `handle`: [`NodeHandle`] and requests;
//! - `runtime`: the event loop and the write path; `runtime/apply`: committed entries,
//!   proposals, membership and reads; `runtime/requests`: the handles' requests;
//!   `runtime/snapshots`: taking, streaming and installing snapshots;
//! - `storage`: the WAL adapter and restart path; `snapshot`: snapshot files;
//! - `metrics`: counters and histograms. Messages go on the wire with
//!   [`crate::codec`].

mod block_on;
mod config;
mod error;
mod handle;
mod metrics;
mod runtime;
mod snapshot;
mod state_machine;
pub mod stepped;
mod storage;

use std::net::SocketAddr;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant as StdInstant};

use tokio::sync::{mpsc, Semaphore};

pub use self::block_on::block_on;
pub use self::config::{
    BackendKind, ConfigError, Durability, NodeConfig, PROPOSALS_INFLIGHT_MAX_LIMIT,
    SNAPSHOT_CHUNK_BYTES_MAX, WAL_SEGMENT_BYTES_MAX, WAL_SEGMENT_BYTES_MIN,
};
pub use self::error::{FatalError, NodeError, StartError};
pub use self::handle::{FollowerStatus, NodeHandle, NodeStatus, Proposed};
pub use self::metrics::{
    CounterSnapshot, LatencyBuckets, LatencySummary, MetricsSnapshot, LATENCY_BUCKET_BOUNDS_MICROS,
};
pub use self::state_machine::{Command, SnapshotView, StateMachine};

use self::handle::{Shared, STOP_ABRUPT, STOP_GRACEFUL};
use self::metrics::Metrics;
use self::runtime::{Clock, Executor, LoopState, Runner, SystemClock, ThreadExecutor, EVENTS_MAX};
use crate::raft::{Instant, LogIndex, RawNode, Role};
use crate::transport::{StartedTransport, TcpBackend, ThreadTransport, UringTransport};

/// A running node: owns its thread. Dropping it shuts the node down cleanly.
pub struct Node<S: StateMachine> {
    handle: NodeHandle<S>,
    local_addr: SocketAddr,
    backend: TcpBackend,
    thread: Option<JoinHandle<()>>,
}

impl<S: StateMachine> std::fmt::Debug for Node<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Node")
            .field("id", &self.handle.id)
            .field("local_addr", &self.local_addr)
            .field("backend", &self.backend)
            .finish()
    }
}

type Started = Result<SocketAddr, StartError>;

impl<S: StateMachine> Node<S> {
    /// Validates `config`, recovers the node's state from its data directory (WAL and latest
    /// snapshot), and starts its thread: a tokio-uring runtime with the io_uring TCP
    /// transport, or, where io_uring is unavailable, a current-thread tokio runtime with the
    /// thread-based TCP transport (a warning says so once per process). With
    /// `config.transport` set, that factory's endpoint replaces the TCP transport.
    ///
    /// # Errors
    /// [`StartError`]: invalid configuration, WAL or snapshot recovery failure, bind failure.
    pub fn start(config: NodeConfig, state_machine: S) -> Result<Self, StartError> {
        config.validate()?;
        if config.wal_io.is_none() {
            snapshot::create_dir_durable(&config.data_dir.join("wal"))?;
        }
        snapshot::create_dir_durable(&config.data_dir.join("snap"))?;
        let metrics = Arc::new(Metrics::new(config.durability));
        let shared = Arc::new(Shared::new(Arc::clone(&metrics)));
        let (tx, rx) = mpsc::channel(config.batch_commands_max);
        let handle = NodeHandle {
            tx,
            permits: Arc::new(Semaphore::new(config.proposals_inflight_max)),
            shared: Arc::clone(&shared),
            id: config.id(),
            proposal_bytes_max: config.proposal_bytes_max(),
        };
        let backend = match config.io_backend {
            BackendKind::Auto => TcpBackend::detect(),
            BackendKind::IoUring => TcpBackend::Uring,
            BackendKind::Thread => TcpBackend::Thread,
        };
        let (started_tx, started_rx) = std::sync::mpsc::sync_channel::<Started>(1);
        let name = format!("ringraft-node-{}", config.id());
        let thread = std::thread::Builder::new().name(name).spawn(move || {
            let _stopped = StoppedGuard(Arc::clone(&shared));
            let boot = Boot {
                config,
                sm: state_machine,
                rx,
                shared: Arc::clone(&shared),
                metrics,
                backend,
            };
            match backend {
                TcpBackend::Uring => match tokio_uring::Runtime::new(&tokio_uring::builder()) {
                    Ok(rt) => rt.block_on(boot.run(started_tx)),
                    Err(e) => {
                        let _ = started_tx.send(Err(StartError::Io(e)));
                    }
                },
                TcpBackend::Thread => match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(rt) => rt.block_on(boot.run(started_tx)),
                    Err(e) => {
                        let _ = started_tx.send(Err(StartError::Io(e)));
                    }
                },
            }
        })?;
        let local_addr = match started_rx.recv() {
            Ok(Ok(addr)) => addr,
            Ok(Err(e)) => {
                let _ = thread.join();
                return Err(e);
            }
            Err(_) => {
                let _ = thread.join();
                return Err(StartError::Recovery("node thread died at start".into()));
            }
        };
        Ok(Node {
            handle,
            local_addr,
            backend,
            thread: Some(thread),
        })
    }

    /// A handle on the node.
    #[must_use]
    pub fn handle(&self) -> NodeHandle<S> {
        self.handle.clone()
    }

    /// The address the node listens on (resolves port 0).
    #[must_use]
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Whether the node runs on io_uring (`true`) or on the fallback runtime and transport.
    #[must_use]
    pub fn uses_io_uring(&self) -> bool {
        self.backend == TcpBackend::Uring
    }

    /// Blocks until some node is known as leader (by this node), and returns it.
    ///
    /// # Errors
    /// [`NodeError::Timeout`] after `timeout`, or [`NodeError::Stopped`].
    pub fn wait_for_leader(&self, timeout: Duration) -> Result<crate::raft::NodeId, NodeError> {
        let deadline = StdInstant::now() + timeout;
        loop {
            let st = block_on(self.handle.status())?;
            if let Some(leader) = st.leader {
                if leader != st.id || st.role == Role::Leader {
                    return Ok(leader);
                }
            }
            if StdInstant::now() >= deadline {
                return Err(NodeError::Timeout);
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Stops the node cleanly and waits for its thread: the WAL is flushed and closed.
    pub fn shutdown(mut self) {
        self.stop(STOP_GRACEFUL);
    }

    /// Stops the node abruptly, as close to a crash as a process can get for one of its
    /// threads: no final flush, pending requests fail, connections drop. What the WAL had
    /// not synced may or may not survive; the log still reopens (torn tails are cut).
    pub fn kill(mut self) {
        self.stop(STOP_ABRUPT);
    }

    fn stop(&mut self, how: u8) {
        if let Some(t) = self.thread.take() {
            self.handle.shared.request_stop(how);
            let _ = t.join();
        }
    }
}

impl<S: StateMachine> Drop for Node<S> {
    fn drop(&mut self) {
        self.stop(STOP_GRACEFUL);
    }
}

/// Marks the node stopped when the node thread ends, after its runtime is gone, also when it
/// ends by a panic: a handle waiting in `shutdown` or `stopped` must not wait forever for a
/// thread that no longer runs, and a panic must read as a fatal error, not a clean stop.
struct StoppedGuard(Arc<Shared>);

impl Drop for StoppedGuard {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.0
                .fatal
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .get_or_insert(FatalError::Panicked);
        }
        self.0.stopped.send_replace(true);
    }
}

/// The loop's clock, job executor and core seed: the OS's in production, the caller's for a
/// [`stepped::SteppedNode`].
struct LoopSeams {
    clock: Arc<dyn Clock>,
    executor: Arc<dyn Executor>,
    seed: u64,
}

/// What the node thread starts from.
struct Boot<S> {
    config: NodeConfig,
    sm: S,
    rx: mpsc::Receiver<handle::Request<S>>,
    shared: Arc<Shared>,
    metrics: Arc<Metrics>,
    backend: TcpBackend,
}

impl<S: StateMachine> Boot<S> {
    async fn run(self, started: std::sync::mpsc::SyncSender<Started>) {
        match self.build() {
            Ok((runner, addr)) => {
                let _ = started.send(Ok(addr));
                runner.run().await;
            }
            Err(e) => {
                let _ = started.send(Err(e));
            }
        }
    }

    /// The configured transport factory's endpoint, or TCP on the runtime's backend.
    fn start_transport(
        config: &NodeConfig,
        backend: TcpBackend,
    ) -> Result<StartedTransport, StartError> {
        let tc = config.transport_config();
        let listen = config.listen;
        if let Some(factory) = &config.transport {
            return Ok(factory.start(tc, listen)?);
        }
        Ok(match backend {
            TcpBackend::Uring => {
                let (t, inbox) = UringTransport::start(tc, listen)?;
                let addr = t.local_addr();
                StartedTransport::new(Box::new(t), inbox, addr)
            }
            TcpBackend::Thread => {
                let (t, inbox) = ThreadTransport::start(tc, listen)?;
                let addr = t.local_addr();
                StartedTransport::new(Box::new(t), inbox, addr)
            }
        })
    }

    fn build(self) -> Result<(Runner<S>, SocketAddr), StartError> {
        let cfg = &self.config;
        let wal_config = cfg.wal_config();
        let wal = match &cfg.wal_io {
            Some(io) => ringraft_wal::Wal::open_with_backend(Arc::clone(io), wal_config)?,
            None => ringraft_wal::Wal::open(cfg.data_dir.join("wal"), wal_config)?,
        };
        let seed = cfg.id().0.wrapping_mul(0x9e37_79b9_7f4a_7c15)
            ^ u64::try_from(std::time::UNIX_EPOCH.elapsed().map_or(0, |d| d.as_nanos()))
                .unwrap_or(0);
        let backend = self.backend;
        let loop_seams = LoopSeams {
            clock: Arc::new(SystemClock),
            executor: Arc::new(ThreadExecutor),
            seed,
        };
        self.assemble(wal, loop_seams, |cfg| Self::start_transport(cfg, backend))
    }

    /// Builds the runner on a caller's seams (see `stepped.rs`): its WAL commits only when
    /// flushed and prepares segments on the committing thread, so nothing runs elsewhere.
    fn build_on(self, seams: stepped::Seams) -> Result<Runner<S>, StartError> {
        let mut wal_config = self.config.wal_config();
        wal_config.background_writer = false;
        wal_config.prepare_ahead = false;
        let wal = ringraft_wal::Wal::open_with_backend(seams.wal_io, wal_config)?;
        let addr = self.config.listen;
        let (transport, inbox) = (seams.transport, seams.inbox);
        let loop_seams = LoopSeams {
            clock: seams.clock,
            executor: seams.executor,
            seed: seams.seed,
        };
        let started = StartedTransport::new(transport, inbox, addr);
        let (runner, _) = self.assemble(wal, loop_seams, move |_| Ok(started))?;
        Ok(runner)
    }

    /// Recovers the state machine and the core from `wal` and the snapshot files, then
    /// starts the transport and assembles the runner.
    fn assemble(
        self,
        wal: ringraft_wal::Wal,
        seams: LoopSeams,
        start_transport: impl FnOnce(&NodeConfig) -> Result<StartedTransport, StartError>,
    ) -> Result<(Runner<S>, SocketAddr), StartError> {
        let mut sm = self.sm;
        let cfg = &self.config;
        // Shared with the thread that deletes compacted segments off the loop.
        let wal = Arc::new(wal);
        let stored = storage::load(&wal, &cfg.initial_voters).map_err(StartError::Recovery)?;
        let snap_dir = cfg.data_dir.join("snap");
        let snapshot_index = stored.initial.snapshot.index;
        let mut peers = cfg.peers.clone();
        if snapshot_index > LogIndex(0) {
            let path = snap_dir.join(snapshot::file_name(snapshot_index));
            let (header, mut data) = snapshot::open(&path)?;
            if header.meta != stored.initial.snapshot {
                return Err(StartError::Recovery(format!(
                    "snapshot file {path:?} does not match the WAL's snapshot metadata"
                )));
            }
            sm.restore(&mut data)?;
            for (id, addr) in header.peers {
                peers.entry(id).or_insert(addr);
            }
        }
        snapshot::prune_at_start(&snap_dir, snapshot_index)?;
        peers.remove(&cfg.id());
        let LoopSeams {
            clock,
            executor,
            seed,
        } = seams;
        let epoch = clock.now();
        let next_tick = epoch + Duration::from_nanos(cfg.raft.tick_nanos);
        let raw = RawNode::new(cfg.raft.clone(), stored.initial, seed, Instant(0))
            .map_err(|e| StartError::Recovery(e.to_string()))?;
        let StartedTransport {
            transport,
            inbox,
            local_addr: addr,
            ..
        } = start_transport(&self.config)?;
        for (id, a) in &peers {
            transport.add_peer(*id, *a)?;
        }
        let (events_tx, events_rx) = mpsc::channel(EVENTS_MAX);
        let runner = Runner {
            raw,
            sm,
            wal,
            transport,
            inbox,
            rx: self.rx,
            shared: self.shared,
            metrics: self.metrics,
            config: self.config,
            clock,
            epoch,
            next_tick,
            snap_dir,
            executor,
            events_tx,
            events_rx,
            wal_next: stored.wal_next,
            peers,
            applied: snapshot_index,
            snapshot_index,
            state: LoopState::default(),
        };
        Ok((runner, addr))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kv::{KvCommand, KvStateMachine};
    use crate::raft::{NodeId, ReadMode};

    fn start(dir: &std::path::Path, tweak: impl FnOnce(&mut NodeConfig)) -> Node<KvStateMachine> {
        let mut cfg = NodeConfig::new(3, NodeId(1), dir);
        tweak(&mut cfg);
        let node = Node::start(cfg, KvStateMachine::default()).expect("start");
        node.wait_for_leader(Duration::from_secs(20))
            .expect("leader");
        node
    }

    fn set(h: &NodeHandle<KvStateMachine>, i: u32) -> LogIndex {
        let cmd = KvCommand::set(format!("k{i}"), format!("v{i}")).encode();
        block_on(h.propose(cmd)).expect("propose").index
    }

    #[test]
    fn a_cluster_runs_over_an_in_process_transport() {
        let net = crate::transport::MemoryNetwork::new();
        let ids: Vec<NodeId> = (1..=3).map(NodeId).collect();
        // Addresses only name the peers: nothing listens on them.
        let addr = |id: NodeId| SocketAddr::from(([127, 0, 0, 1], 1 + id.0 as u16));
        let dirs: Vec<_> = ids
            .iter()
            .map(|_| tempfile::tempdir().expect("tempdir"))
            .collect();
        let nodes: Vec<_> = ids
            .iter()
            .zip(&dirs)
            .map(|(id, dir)| {
                let mut cfg = NodeConfig::new(3, *id, dir.path());
                cfg.listen = addr(*id);
                cfg.initial_voters.clone_from(&ids);
                cfg.peers = ids
                    .iter()
                    .filter(|p| *p != id)
                    .map(|p| (*p, addr(*p)))
                    .collect();
                cfg.transport = Some(Arc::new(net.clone()));
                Node::start(cfg, KvStateMachine::default()).expect("start")
            })
            .collect();
        assert_eq!(nodes[1].local_addr(), addr(NodeId(2)));
        let leader = nodes[0]
            .wait_for_leader(Duration::from_secs(20))
            .expect("leader");
        let handle = nodes
            .iter()
            .map(Node::handle)
            .find(|h| h.id() == leader)
            .expect("the leader is one of the nodes");
        let mut last = LogIndex(0);
        for i in 0..20 {
            last = set(&handle, i);
        }
        // Every node applies the writes: replication went through the in-process network.
        for node in &nodes {
            let deadline = StdInstant::now() + Duration::from_secs(20);
            while block_on(node.handle().status()).expect("status").applied < last {
                assert!(
                    StdInstant::now() < deadline,
                    "node {} did not apply",
                    node.handle().id()
                );
                std::thread::sleep(Duration::from_millis(5));
            }
        }
        for node in nodes {
            node.shutdown();
        }
    }

    #[test]
    fn clean_shutdown_leaves_a_log_that_reopens_without_repair() {
        let dir = tempfile::tempdir().expect("tempdir");
        let node = start(dir.path(), |_| {});
        let mut last = LogIndex(0);
        for i in 0..20 {
            last = set(&node.handle(), i);
        }
        node.shutdown();
        let cfg = ringraft_wal::Config {
            recovery: ringraft_wal::RecoveryMode::Strict,
            ..ringraft_wal::Config::default()
        };
        let wal = ringraft_wal::Wal::open(dir.path().join("wal"), cfg).expect("strict reopen");
        assert!(wal.last_index() >= last.0);
        assert!(wal.hard_state().is_some_and(|h| h.commit >= last.0));
    }

    #[test]
    fn restart_replays_the_log_after_the_latest_snapshot() {
        let dir = tempfile::tempdir().expect("tempdir");
        let node = start(dir.path(), |c| c.snapshot_entries_threshold = 8);
        let h = node.handle();
        for i in 0..30 {
            set(&h, i);
        }
        // Threshold snapshots are written off the loop: wait for one to complete.
        let deadline = StdInstant::now() + Duration::from_secs(20);
        while block_on(h.status()).expect("status").snapshot_index == LogIndex(0) {
            assert!(
                StdInstant::now() < deadline,
                "no threshold snapshot completed"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
        assert!(h.metrics().counters.snapshots_taken >= 1);
        node.shutdown();
        let node = start(dir.path(), |c| c.snapshot_entries_threshold = 8);
        let h = node.handle();
        let all =
            block_on(h.read(ReadMode::ReadIndex, |kv: &KvStateMachine| kv.len())).expect("read");
        assert_eq!(all, 30);
        node.kill();
    }

    /// Issue 9: a snapshot is finished in stages that never block the loop (metadata, the
    /// compaction marker once the index is durable, segment deletion on another thread).
    /// Threshold and requested snapshots both complete, the WAL's old segments go, and the
    /// log reopens at the compacted first index.
    #[test]
    fn snapshots_compact_the_wal_off_the_loop() {
        let dir = tempfile::tempdir().expect("tempdir");
        let node = start(dir.path(), |c| {
            c.snapshot_entries_threshold = 64;
            c.wal_segment_bytes = WAL_SEGMENT_BYTES_MIN;
        });
        let h = node.handle();
        // 400 x 64 KiB: more than one 16 MiB segment.
        let value = vec![7u8; 64 << 10];
        let mut last = LogIndex(0);
        for i in 0..400 {
            let cmd = KvCommand::set(format!("k{i}"), value.clone()).encode();
            last = block_on(h.propose(cmd)).expect("propose").index;
        }
        let deadline = StdInstant::now() + Duration::from_secs(30);
        // A request made while a threshold snapshot is in progress gets that one's index.
        while block_on(h.snapshot()).expect("snapshot") < last {
            assert!(StdInstant::now() < deadline, "no snapshot reached {last}");
            std::thread::sleep(Duration::from_millis(5));
        }
        assert!(block_on(h.status()).expect("status").snapshot_index >= last);
        assert!(h.metrics().counters.snapshots_taken >= 2);
        node.shutdown();
        let first_segment = dir
            .path()
            .join("wal")
            .join(ringraft_wal::layout::segment_name(1));
        assert!(!first_segment.exists(), "the compacted segment was deleted");
        let wal = ringraft_wal::Wal::open(dir.path().join("wal"), ringraft_wal::Config::default())
            .expect("reopen");
        assert!(
            wal.first_index() > last.0 - 64,
            "first index {}",
            wal.first_index()
        );
        assert!(wal.snapshot_meta().is_some_and(|m| m.index >= last.0));
    }

    /// Issue 13 item 1: a proposal over the WAL's record limit used to reach the WAL, which
    /// refused it and stopped the node (`Fatal("record 3 has 9437185 bytes ...")`).
    #[test]
    fn item1_oversized_proposal_is_refused_and_the_node_goes_on() {
        let dir = tempfile::tempdir().expect("tempdir");
        let node = start(dir.path(), |_| {});
        let h = node.handle();
        let max = NodeConfig::new(3, NodeId(1), dir.path()).proposal_bytes_max();
        for len in [9 << 20, max + 1] {
            let big = bytes::Bytes::from(vec![0u8; usize::try_from(len).expect("fits")]);
            let err = block_on(h.propose(big.clone())).expect_err("oversized");
            let want = crate::raft::ProposeError::TooLarge { len, max };
            assert!(
                matches!(&err, NodeError::Propose(e) if *e == want),
                "{err:?}"
            );
            let err = block_on(h.try_propose(big)).expect_err("oversized");
            assert!(
                matches!(&err, NodeError::Propose(e) if *e == want),
                "{err:?}"
            );
        }
        // The largest accepted proposal goes through the WAL and the state machine.
        let exact = bytes::Bytes::from(vec![0u8; usize::try_from(max).expect("fits")]);
        block_on(h.propose(exact)).expect("a proposal of exactly the maximum");
        set(&h, 1);
        assert!(h.fatal_error().is_none());
        node.shutdown();
    }

    #[test]
    fn handles_are_send_sync_clone() {
        fn check<T: Send + Sync + Clone + 'static>() {}
        check::<NodeHandle<KvStateMachine>>();
        fn send<T: Send>(_: &T) {}
        let dir = tempfile::tempdir().expect("tempdir");
        let node = start(dir.path(), |_| {});
        let h = node.handle();
        // The handle's futures are Send too, so any multi-threaded runtime can spawn them.
        send(&h.propose(bytes::Bytes::new()));
        send(&h.read(ReadMode::Lease, |kv: &KvStateMachine| kv.len()));
        send(&h.status());
        node.shutdown();
    }

    #[test]
    fn invalid_configuration_is_refused_at_start() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut cfg = NodeConfig::new(3, NodeId(1), dir.path());
        cfg.raft.election_ticks_max = cfg.raft.election_ticks_min;
        let err = Node::start(cfg, KvStateMachine::default()).expect_err("invalid");
        assert!(matches!(err, StartError::Config(ConfigError::Raft(_))));
    }
}
