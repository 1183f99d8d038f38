//! A node whose loop the caller runs, turn by turn, on a clock, a network, a WAL disk and a
//! background-job queue it provides: the way a simulation drives the shipped runtime
//! (issue 12) rather than a Ready driver of its own.
//!
//! Nothing runs on another thread unless a seam does: the WAL is opened without its
//! background writer and without preparing segments ahead, so an append becomes durable
//! only when the caller says ([`SteppedNode::flush_wal`], the simulated fdatasync
//! completing); background jobs wait on the caller's [`QueuedExecutor`]; time is the
//! caller's [`Clock`]. Requests go through the usual [`NodeHandle`]: its futures complete
//! when a turn answers them.

use std::sync::Arc;
use std::time::Instant as StdInstant;

use tokio::sync::{mpsc, Semaphore};

use super::handle::{NodeHandle, NodeStatus, Shared};
use super::metrics::Metrics;
pub use super::runtime::{Clock, Executor, Job, ManualClock, QueuedExecutor, ThreadExecutor};
use super::runtime::{Input, Runner};
use super::{Boot, FatalError, NodeConfig, StartError, StateMachine};
use crate::transport::{Inbox, TcpBackend, Transport};

/// What a [`SteppedNode`] runs on instead of the OS.
pub struct Seams {
    /// The loop's time: ticks, deadlines and the core's `now`.
    pub clock: Arc<dyn Clock>,
    /// Where snapshot writes, segment deletion and snapshot streams run.
    pub executor: Arc<dyn Executor>,
    /// This node's endpoint of the network, and its inbox.
    pub transport: Box<dyn Transport>,
    /// Messages and snapshot streams for this node.
    pub inbox: Inbox,
    /// The WAL's disk (for example `ringraft_wal::sim::SimDisk::backend()`).
    pub wal_io: Arc<dyn ringraft_wal::io::IoBackend>,
    /// Seed of the core's randomness (election jitter): one seed replays a run.
    pub seed: u64,
}

/// A node whose loop turns only when [`SteppedNode::turn`] is called.
pub struct SteppedNode<S> {
    runner: Runner<S>,
    handle: NodeHandle<S>,
}

impl<S: StateMachine> SteppedNode<S> {
    /// Recovers the node from its WAL disk and snapshot files, as [`super::Node::start`]
    /// does, without starting a thread, a runtime or a transport.
    ///
    /// # Errors
    /// [`StartError`]: invalid configuration, WAL or snapshot recovery failure.
    pub fn start(config: NodeConfig, state_machine: S, seams: Seams) -> Result<Self, StartError> {
        config.validate()?;
        super::snapshot::create_dir_durable(&config.data_dir.join("snap"))?;
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
        let boot = Boot {
            config,
            sm: state_machine,
            rx,
            shared,
            metrics,
            backend: TcpBackend::Thread,
        };
        let runner = boot.build_on(seams)?;
        Ok(SteppedNode { runner, handle })
    }

    /// A handle for requests; they are taken in by the next [`SteppedNode::turn`].
    #[must_use]
    pub fn handle(&self) -> NodeHandle<S> {
        self.handle.clone()
    }

    /// One loop turn at `now` on the node's clock: takes everything queued (requests,
    /// messages, job results, completed WAL writes), ticks if a tick is due, and turns every
    /// Ready into work. Never waits.
    ///
    /// # Errors
    /// The [`FatalError`] that stops the node; call [`SteppedNode::stop`] then.
    pub fn turn(&mut self, now: StdInstant) -> Result<(), FatalError> {
        self.runner.handle(Input::Wake)?;
        self.runner.after_inputs(now)
    }

    /// Makes everything the WAL accepted durable (the simulated fdatasync completes); the
    /// next turn acknowledges it. Returns the durable last index.
    ///
    /// # Errors
    /// The WAL's error if a write or sync failed (the next turn then stops the node).
    pub fn flush_wal(&self) -> Result<u64, ringraft_wal::Error> {
        self.runner.wal.flush()
    }

    /// The node's status, as [`NodeHandle::status`] reports it.
    #[must_use]
    pub fn status(&self) -> NodeStatus {
        self.runner.status()
    }

    /// Stops the node: pending requests fail (with the fatal error, if given). `abrupt`
    /// skips the final WAL flush, as a crash would.
    pub fn stop(self, fatal: Option<FatalError>, abrupt: bool) {
        self.runner.stop(fatal.map_or(Ok(()), Err), abrupt);
    }
}

#[cfg(test)]
mod tests {
    use std::future::Future;
    use std::net::SocketAddr;
    use std::task::{Context, Poll};
    use std::time::Duration;

    use super::*;
    use crate::kv::{KvCommand, KvStateMachine};
    use crate::node::{NodeError, Proposed, WAL_SEGMENT_BYTES_MIN};
    use crate::raft::{NodeId, Role};
    use crate::transport::MemoryNetwork;

    const VOTERS: [u64; 3] = [1, 2, 3];

    /// A proposal's future, polled by hand between rounds.
    type Pending = std::pin::Pin<Box<dyn Future<Output = Result<Proposed, NodeError>>>>;
    /// Rounds (one tick of the clock each) the cluster gets to elect and apply: far more
    /// than an election and a commit take without faults.
    const ROUNDS_MAX: u32 = 500;

    fn node(
        dir: &std::path::Path,
        id: u64,
        net: &MemoryNetwork,
        clock: &Arc<ManualClock>,
        seed: u64,
    ) -> SteppedNode<KvStateMachine> {
        let addr = SocketAddr::from(([127, 0, 0, 1], 1));
        let mut config = NodeConfig::new(7, NodeId(id), dir.join(format!("n{id}")));
        config.initial_voters = VOTERS.iter().map(|v| NodeId(*v)).collect();
        config.peers = VOTERS
            .iter()
            .filter(|v| **v != id)
            .map(|v| (NodeId(*v), addr))
            .collect();
        config.wal_segment_bytes = WAL_SEGMENT_BYTES_MIN;
        let (transport, inbox) = net.endpoint(config.transport_config()).expect("endpoint");
        let seams = Seams {
            clock: Arc::clone(clock) as Arc<dyn Clock>,
            executor: Arc::new(QueuedExecutor::default()),
            transport: Box::new(transport),
            inbox,
            wal_io: ringraft_wal::sim::SimDisk::new().backend(),
            seed: seed ^ id,
        };
        SteppedNode::start(config, KvStateMachine::default(), seams).expect("start")
    }

    /// Runs one cluster from `seed` until a write is applied; returns the leader that
    /// answered, its term and the rounds it took.
    fn run(seed: u64) -> (NodeId, u64, u32) {
        let dir = tempfile::tempdir().expect("tempdir");
        let net = MemoryNetwork::new();
        let clock = Arc::new(ManualClock::new(StdInstant::now()));
        let mut nodes: Vec<_> = VOTERS
            .iter()
            .map(|id| node(dir.path(), *id, &net, &clock, seed))
            .collect();
        let tick = Duration::from_nanos(nodes[0].runner.config.raft.tick_nanos);
        let mut cx = Context::from_waker(std::task::Waker::noop());
        let mut write: Option<Pending> = None;
        for round in 0..ROUNDS_MAX {
            clock.advance(tick);
            for n in &mut nodes {
                n.turn(clock.now()).expect("no fatal error");
                n.flush_wal().expect("flush");
            }
            let leader = nodes.iter().find(|n| n.status().role == Role::Leader);
            if let (None, Some(l)) = (&write, leader) {
                let h = l.handle();
                let cmd = KvCommand::set("k", "v").encode();
                write = Some(Box::pin(async move { h.propose(cmd).await }));
            }
            if let Some(w) = write.as_mut() {
                if let Poll::Ready(r) = w.as_mut().poll(&mut cx) {
                    let applied = r.expect("the write is applied");
                    let st = nodes.iter().find(|n| n.status().role == Role::Leader);
                    let st = st.expect("a leader answered").status();
                    assert!(applied.index > crate::raft::LogIndex(0));
                    return (st.id, st.term.0, round);
                }
            }
        }
        panic!("seed {seed}: no write applied in {ROUNDS_MAX} rounds");
    }

    /// Issue 12: the shipped loop runs whole clusters on one thread from one seed, over a
    /// memory network, simulated WAL disks, one hand-moved clock and queued jobs: a leader
    /// is elected and a write applied, and the same seed replays the same run.
    #[test]
    fn three_stepped_nodes_elect_apply_and_replay() {
        for seed in [1, 2, 3] {
            let first = run(seed);
            let (leader, term, rounds) = first;
            eprintln!("seed {seed}: leader {leader} of term {term} applied after {rounds} rounds");
            assert_eq!(run(seed), first, "seed {seed} replays");
        }
    }
}
