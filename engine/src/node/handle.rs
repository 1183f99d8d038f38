//! The application's side: [`NodeHandle`], usable from any thread or async runtime.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant as StdInstant;

use bytes::Bytes;
use tokio::sync::{mpsc, oneshot, watch, Notify, OwnedSemaphorePermit, Semaphore};

use crate::node::metrics::{Metrics, MetricsSnapshot};
use crate::node::{Durability, FatalError, NodeError};
use crate::raft::{
    ConfChange, ConfChangeStep, LogIndex, Membership, NodeId, ProgressState, ProposeError,
    ReadMode, Role, Term,
};

/// The answer to a proposal: where it landed and what the state machine returned.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Proposed {
    /// Log index of the entry.
    pub index: LogIndex,
    /// The state machine's response to it.
    pub response: Bytes,
}

/// A follower's replication state as seen by the leader.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FollowerStatus {
    /// Highest index known durable and matching on the follower.
    pub match_index: LogIndex,
    /// Next index the leader sends it.
    pub next: LogIndex,
    /// Probe, replicate or snapshot.
    pub state: ProgressState,
    /// Entries the follower is behind the leader's last index.
    pub lag: u64,
}

/// A node's state, from [`NodeHandle::status`].
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct NodeStatus {
    /// This node.
    pub id: NodeId,
    /// Role.
    pub role: Role,
    /// Current term.
    pub term: Term,
    /// Known leader.
    pub leader: Option<NodeId>,
    /// Commit index.
    pub commit: LogIndex,
    /// Applied index (the state machine's).
    pub applied: LogIndex,
    /// Durable index of the local log.
    pub durable: LogIndex,
    /// Last index of the local log.
    pub last_index: LogIndex,
    /// Index of the latest snapshot.
    pub snapshot_index: LogIndex,
    /// Applied membership.
    pub membership: Membership,
    /// Followers' progress (leader only).
    pub followers: BTreeMap<NodeId, FollowerStatus>,
    /// The WAL sync policy.
    pub durability: Durability,
}

pub(crate) type ReadFn<S> = Box<dyn FnOnce(Result<(&S, LogIndex), NodeError>) + Send>;
pub(crate) type Reply<T> = oneshot::Sender<Result<T, NodeError>>;

/// A request from a handle to the node thread.
pub(crate) enum Request<S> {
    Propose {
        data: Bytes,
        reply: Reply<Proposed>,
        permit: OwnedSemaphorePermit,
        at: StdInstant,
    },
    Read {
        mode: ReadMode,
        f: ReadFn<S>,
    },
    ConfChange {
        change: ConfChange,
        announce: Option<(NodeId, SocketAddr)>,
        reply: Reply<LogIndex>,
    },
    Transfer {
        to: NodeId,
        reply: Reply<()>,
    },
    Snapshot {
        reply: Reply<LogIndex>,
    },
    Status {
        reply: Reply<NodeStatus>,
    },
}

/// How the node was asked to stop.
pub(crate) const STOP_NONE: u8 = 0;
pub(crate) const STOP_GRACEFUL: u8 = 1;
pub(crate) const STOP_ABRUPT: u8 = 2;

/// State shared by the handles and the node thread.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) stop: AtomicU8,
    pub(crate) wake: Notify,
    /// True once the node thread has released everything (WAL closed, transport down).
    pub(crate) stopped: watch::Sender<bool>,
    pub(crate) fatal: Mutex<Option<FatalError>>,
    pub(crate) metrics: Arc<Metrics>,
}

impl Shared {
    pub(crate) fn new(metrics: Arc<Metrics>) -> Self {
        Shared {
            stop: AtomicU8::new(STOP_NONE),
            wake: Notify::new(),
            stopped: watch::channel(false).0,
            fatal: Mutex::new(None),
            metrics,
        }
    }

    pub(crate) fn request_stop(&self, how: u8) {
        self.stop.fetch_max(how, Ordering::AcqRel);
        self.wake.notify_one();
    }

    fn stopped_error(&self) -> NodeError {
        let fatal = self
            .fatal
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone();
        fatal.map_or(NodeError::Stopped, NodeError::Fatal)
    }
}

/// A cheap, cloneable handle on a running node: `Send + Sync`, usable from any thread and
/// any async runtime (its futures need no particular executor).
pub struct NodeHandle<S> {
    pub(crate) tx: mpsc::Sender<Request<S>>,
    pub(crate) permits: Arc<Semaphore>,
    pub(crate) shared: Arc<Shared>,
    pub(crate) id: NodeId,
    /// [`crate::node::NodeConfig::proposal_bytes_max`].
    pub(crate) proposal_bytes_max: u64,
}

impl<S> Clone for NodeHandle<S> {
    fn clone(&self) -> Self {
        NodeHandle {
            tx: self.tx.clone(),
            permits: Arc::clone(&self.permits),
            shared: Arc::clone(&self.shared),
            id: self.id,
            proposal_bytes_max: self.proposal_bytes_max,
        }
    }
}

impl<S> std::fmt::Debug for NodeHandle<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeHandle").field("id", &self.id).finish()
    }
}

impl<S: 'static> NodeHandle<S> {
    /// The node's id.
    #[must_use]
    pub fn id(&self) -> NodeId {
        self.id
    }

    async fn call<T>(&self, make: impl FnOnce(Reply<T>) -> Request<S>) -> Result<T, NodeError> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(make(reply))
            .await
            .map_err(|_| self.shared.stopped_error())?;
        rx.await.map_err(|_| self.shared.stopped_error())?
    }

    /// Refuses a proposal that the core would refuse for its size, before it takes a permit
    /// or a place in the node's queue.
    fn check_size(&self, data: &Bytes) -> Result<(), NodeError> {
        let (len, max) = (data.len() as u64, self.proposal_bytes_max);
        if len > max {
            return Err(NodeError::Propose(ProposeError::TooLarge { len, max }));
        }
        Ok(())
    }

    async fn propose_with(
        &self,
        data: Bytes,
        permit: OwnedSemaphorePermit,
    ) -> Result<Proposed, NodeError> {
        let at = StdInstant::now();
        self.call(|reply| Request::Propose {
            data,
            reply,
            permit,
            at,
        })
        .await
    }

    /// Replicates `data` and completes once it is committed (durable on a majority) and
    /// applied here, with its index and the state machine's response. Must be called on the
    /// leader ([`NodeError::NotLeader`] otherwise). Waits while `proposals_inflight_max`
    /// proposals are in flight (backpressure).
    ///
    /// # Errors
    /// [`NodeError::NotLeader`], [`NodeError::LeadershipLost`] (outcome unknown),
    /// [`NodeError::Stopped`], [`NodeError::Fatal`] (the node stopped on a failed WAL write
    /// or fsync; outcome unknown), [`NodeError::Propose`] (with
    /// [`ProposeError::TooLarge`] for data over [`crate::node::NodeConfig::proposal_bytes_max`]).
    pub async fn propose(&self, data: impl Into<Bytes>) -> Result<Proposed, NodeError> {
        let data = data.into();
        self.check_size(&data)?;
        let permit = Arc::clone(&self.permits)
            .acquire_owned()
            .await
            .map_err(|_| self.shared.stopped_error())?;
        self.propose_with(data, permit).await
    }

    /// Like [`NodeHandle::propose`], but fails at once with [`NodeError::Busy`] instead of
    /// waiting when too many proposals are in flight.
    ///
    /// # Errors
    /// As [`NodeHandle::propose`], plus [`NodeError::Busy`].
    pub async fn try_propose(&self, data: impl Into<Bytes>) -> Result<Proposed, NodeError> {
        let data = data.into();
        self.check_size(&data)?;
        let permit = Arc::clone(&self.permits)
            .try_acquire_owned()
            .map_err(|_| NodeError::Busy)?;
        self.propose_with(data, permit).await
    }

    /// A linearizable read: runs `f` on the state machine once it has applied everything
    /// committed before the read was issued, and returns its result. Works on the leader and
    /// on followers (which ask the leader for the read index). [`ReadMode::Lease`] is served
    /// by the leader from its lease when it holds one and falls back to ReadIndex otherwise.
    ///
    /// `f` runs on the node thread: keep it short.
    ///
    /// # Errors
    /// [`NodeError::Read`] (no leader, leadership lost), [`NodeError::Timeout`],
    /// [`NodeError::Stopped`], [`NodeError::Fatal`].
    pub async fn read<R, F>(&self, mode: ReadMode, f: F) -> Result<R, NodeError>
    where
        R: Send + 'static,
        F: FnOnce(&S) -> R + Send + 'static,
    {
        let (tx, rx) = oneshot::channel();
        let f: ReadFn<S> = Box::new(move |r| {
            let _ = tx.send(r.map(|(sm, _)| f(sm)));
        });
        self.tx
            .send(Request::Read { mode, f })
            .await
            .map_err(|_| self.shared.stopped_error())?;
        rx.await.map_err(|_| self.shared.stopped_error())?
    }

    /// A linearizable read barrier: returns the applied index once it is safe to read local
    /// state that the application keeps in sync with its state machine.
    ///
    /// # Errors
    /// As [`NodeHandle::read`].
    pub async fn read_index(&self, mode: ReadMode) -> Result<LogIndex, NodeError> {
        let (tx, rx) = oneshot::channel();
        let f: ReadFn<S> = Box::new(move |r| {
            let _ = tx.send(r.map(|(_, index)| index));
        });
        self.tx
            .send(Request::Read { mode, f })
            .await
            .map_err(|_| self.shared.stopped_error())?;
        rx.await.map_err(|_| self.shared.stopped_error())?
    }

    async fn change(
        &self,
        change: ConfChange,
        announce: Option<(NodeId, SocketAddr)>,
    ) -> Result<LogIndex, NodeError> {
        self.call(|reply| Request::ConfChange {
            change,
            announce,
            reply,
        })
        .await
    }

    /// Adds `id` (listening on `addr`) as a voter, through a joint configuration. Completes
    /// once the change is applied here and the configuration is no longer joint. On the
    /// leader only; one change at a time.
    ///
    /// # Errors
    /// [`NodeError::ConfChange`], [`NodeError::NotLeader`], [`NodeError::LeadershipLost`].
    pub async fn add_voter(&self, id: NodeId, addr: SocketAddr) -> Result<LogIndex, NodeError> {
        let change = ConfChange::auto(vec![ConfChangeStep::AddVoter(id)]);
        self.change(change, Some((id, addr))).await
    }

    /// Adds `id` (listening on `addr`) as a learner: it receives the log but does not vote.
    ///
    /// # Errors
    /// As [`NodeHandle::add_voter`].
    pub async fn add_learner(&self, id: NodeId, addr: SocketAddr) -> Result<LogIndex, NodeError> {
        let change = ConfChange::auto(vec![ConfChangeStep::AddLearner(id)]);
        self.change(change, Some((id, addr))).await
    }

    /// Promotes learner `id` to voter.
    ///
    /// # Errors
    /// As [`NodeHandle::add_voter`].
    pub async fn promote(&self, id: NodeId) -> Result<LogIndex, NodeError> {
        let change = ConfChange::auto(vec![ConfChangeStep::PromoteLearner(id)]);
        self.change(change, None).await
    }

    /// Removes `id` (voter or learner) from the cluster.
    ///
    /// # Errors
    /// As [`NodeHandle::add_voter`].
    pub async fn remove(&self, id: NodeId) -> Result<LogIndex, NodeError> {
        let change = ConfChange::auto(vec![ConfChangeStep::Remove(id)]);
        self.change(change, None).await
    }

    /// Hands leadership to voter `to`; completes once this node sees `to` as leader.
    ///
    /// # Errors
    /// [`NodeError::Transfer`], [`NodeError::Timeout`] (the transfer was abandoned).
    pub async fn transfer_leadership(&self, to: NodeId) -> Result<(), NodeError> {
        self.call(|reply| Request::Transfer { to, reply }).await
    }

    /// Takes a snapshot of the state machine now and compacts the log behind it; returns
    /// its index.
    ///
    /// # Errors
    /// [`NodeError::Snapshot`] if the state machine or the disk failed.
    pub async fn snapshot(&self) -> Result<LogIndex, NodeError> {
        self.call(|reply| Request::Snapshot { reply }).await
    }

    /// The node's role, indexes and followers' progress.
    ///
    /// # Errors
    /// [`NodeError::Stopped`].
    pub async fn status(&self) -> Result<NodeStatus, NodeError> {
        self.call(|reply| Request::Status { reply }).await
    }

    /// Counters and latency histograms (no round trip to the node thread).
    #[must_use]
    pub fn metrics(&self) -> MetricsSnapshot {
        self.shared.metrics.snapshot()
    }

    /// The fatal error that stopped the node, if any (a failed WAL write or fsync, which is
    /// never retried). Once set, every request fails with [`NodeError::Fatal`].
    #[must_use]
    pub fn fatal_error(&self) -> Option<FatalError> {
        self.shared
            .fatal
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Waits until the node thread has stopped for any reason (a shutdown, a fatal error, a
    /// panic of the node thread), and returns the fatal error that stopped it, if any. A
    /// server awaits it so that a node that died ends the process (a supervisor restarts it)
    /// instead of serving `ERR fatal` forever.
    pub async fn stopped(&self) -> Option<FatalError> {
        let mut rx = self.shared.stopped.subscribe();
        let _ = rx.wait_for(|stopped| *stopped).await;
        self.fatal_error()
    }

    /// Stops the node cleanly: pending requests fail with [`NodeError::Stopped`], the WAL is
    /// flushed and closed (it reopens without repair), the transport shuts down. Completes
    /// once the node thread has released everything.
    pub async fn shutdown(&self) {
        self.shared.request_stop(STOP_GRACEFUL);
        let mut rx = self.shared.stopped.subscribe();
        let _ = rx.wait_for(|stopped| *stopped).await;
    }
}
