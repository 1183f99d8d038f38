//! openraft as the in-memory peer of `compare`: openraft 0.9.25 with our own in-memory log
//! store, state machine and function-call network, in the shape of openraft's
//! `benchmarks/minimal` (N nodes in one process, nothing on disk, no sockets).
//!
//! What each part does, and why it is that small:
//! - [`MemLog`]: the log and the vote in a `BTreeMap` behind one mutex. A write is "flushed" as
//!   soon as it is in the map: there is no disk, as ringraft's in-memory mode has no fsync.
//! - [`Machine`]: records the last applied log id and the last membership, nothing else. The
//!   client's value travels in every entry (replicated and applied), as ringraft's in-memory
//!   mode carries it to its no-op state machine: the pair measures replication, not a data
//!   structure. A snapshot is therefore only its metadata.
//! - [`Router`] and [`PeerLink`]: an RPC is a call of the target node's [`openraft::Raft`]
//!   handle, so the messages never leave the process and are never serialised.
//! - [`Cluster`]: starts the nodes, makes all of them voters, and proposes with
//!   `client_write` on the leader.
//!
//! openraft's own defaults are kept (election timeouts, heartbeat, batch of entries per
//! AppendEntries) except that it never snapshots on its own: there is no state worth
//! compacting, and ringraft's in-memory mode turns snapshots off for the same reason.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Debug;
use std::future::Future;
use std::io::Cursor;
use std::ops::{Bound, RangeBounds};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::Duration;

use openraft::error::{
    ClientWriteError, Fatal, InstallSnapshotError, RPCError, RaftError, RemoteError,
    ReplicationClosed, StreamingError, Unreachable,
};
use openraft::network::RPCOption;
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    SnapshotResponse, VoteRequest, VoteResponse,
};
use openraft::storage::{LogFlushed, RaftLogStorage, RaftStateMachine};
use openraft::{
    EmptyNode, EntryPayload, LogState, OptionalSend, RaftLogReader, RaftNetwork,
    RaftNetworkFactory, RaftSnapshotBuilder, ServerState, SnapshotMeta, StoredMembership,
};
use serde::{Deserialize, Serialize};

use super::inproc::ProposeFn;

/// The openraft release this module is written against (the report names it).
pub const VERSION: &str = "0.9.25";

/// How long a fresh cluster may take to elect its first leader.
const LEADER_TIMEOUT: Duration = Duration::from_secs(20);
/// How many leader hints one write follows before it fails: one hop covers a leader change
/// during the run; more than a few means the cluster has no stable leader to measure.
const LEADER_HOPS_MAX: usize = 3;

openraft::declare_raft_types!(
    /// The type configuration of the peer cluster: u64 node ids, nodes with no address (they
    /// are found by id in the [`Router`]), and a snapshot that is only its metadata.
    pub PeerTypes:
        D = Write,
        R = (),
        NodeId = u64,
        Node = EmptyNode,
        Entry = openraft::Entry<PeerTypes>,
        SnapshotData = Cursor<Vec<u8>>,
        AsyncRuntime = openraft::TokioRuntime,
);

type NodeId = u64;
type Entry = openraft::Entry<PeerTypes>;
type LogId = openraft::LogId<NodeId>;
type Vote = openraft::Vote<NodeId>;
type StorageError = openraft::StorageError<NodeId>;
type Snapshot = openraft::Snapshot<PeerTypes>;
type Raft = openraft::Raft<PeerTypes>;

/// One client write as the log carries it. Every write of a run shares one value buffer (a
/// reference count, not a copy per entry), as ringraft's in-memory proposer shares one `Bytes`.
#[derive(Clone, Serialize, Deserialize)]
pub struct Write {
    value: Arc<[u8]>,
}

impl Debug for Write {
    // openraft's traces print entries; a value of kilobytes would drown them.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Write")
            .field("value_bytes", &self.value.len())
            .finish()
    }
}

// ---------------------------------------------------------------------------------------------
// Log store

#[derive(Default)]
struct LogInner {
    vote: Option<Vote>,
    committed: Option<LogId>,
    /// The last entry removed by a purge; `None` before the first purge.
    purged: Option<LogId>,
    /// Invariant: each key is its entry's index. openraft keeps the keys contiguous and above
    /// `purged`'s index (it appends right after its last entry and truncates before rewriting).
    entries: BTreeMap<u64, Entry>,
}

impl LogInner {
    fn last_log_id(&self) -> Option<LogId> {
        self.entries
            .last_key_value()
            .map(|(_, e)| e.log_id)
            .or(self.purged)
    }
}

/// The log and the vote of one node, in memory. Clones share the same log: the clone handed
/// out as the log reader sees every append as soon as `append` returns.
///
/// # Correctness
/// Writes are serialised by the one mutex, and none is reported flushed before it is readable
/// (openraft's `RaftLogStorage` contract). Nothing survives the process: this store is for a
/// cluster that lives exactly as long as one benchmark run.
#[derive(Clone, Default)]
pub struct MemLog {
    inner: Arc<Mutex<LogInner>>,
}

impl MemLog {
    fn lock(&self) -> MutexGuard<'_, LogInner> {
        self.inner
            .lock()
            .expect("no code panics while it holds the log lock")
    }
}

/// `range` as a half-open `[start, end)`, `end == None` meaning unbounded.
fn half_open(range: &impl RangeBounds<u64>) -> (u64, Option<u64>) {
    let start = match range.start_bound() {
        Bound::Included(&s) => s,
        Bound::Excluded(&s) => s.saturating_add(1),
        Bound::Unbounded => 0,
    };
    let end = match range.end_bound() {
        Bound::Included(&e) => e.checked_add(1),
        Bound::Excluded(&e) => Some(e),
        Bound::Unbounded => None,
    };
    (start, end)
}

impl RaftLogReader<PeerTypes> for MemLog {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry>, StorageError> {
        let log = self.lock();
        // `BTreeMap::range` panics on an inverted range; openraft may ask for an empty one.
        let entries = match half_open(&range) {
            (start, Some(end)) if end <= start => Vec::new(),
            (start, Some(end)) => log
                .entries
                .range(start..end)
                .map(|(_, e)| e.clone())
                .collect(),
            (start, None) => log.entries.range(start..).map(|(_, e)| e.clone()).collect(),
        };
        Ok(entries)
    }
}

impl RaftLogStorage<PeerTypes> for MemLog {
    type LogReader = MemLog;

    async fn get_log_state(&mut self) -> Result<LogState<PeerTypes>, StorageError> {
        let log = self.lock();
        Ok(LogState {
            last_purged_log_id: log.purged,
            last_log_id: log.last_log_id(),
        })
    }

    async fn get_log_reader(&mut self) -> MemLog {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote) -> Result<(), StorageError> {
        self.lock().vote = Some(*vote);
        Ok(())
    }

    async fn read_vote(&mut self) -> Result<Option<Vote>, StorageError> {
        Ok(self.lock().vote)
    }

    async fn save_committed(&mut self, committed: Option<LogId>) -> Result<(), StorageError> {
        self.lock().committed = committed;
        Ok(())
    }

    async fn read_committed(&mut self) -> Result<Option<LogId>, StorageError> {
        Ok(self.lock().committed)
    }

    async fn append<I>(
        &mut self,
        entries: I,
        callback: LogFlushed<PeerTypes>,
    ) -> Result<(), StorageError>
    where
        I: IntoIterator<Item = Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        {
            let mut log = self.lock();
            // A plain map by index: an entry replaces one at its index or extends the log.
            // Keeping the log free of holes is openraft's side of the contract (it appends
            // only after the last entry it kept), and openraft's storage suite appends
            // sparse logs on purpose, so the store does not police it.
            for entry in entries {
                log.entries.insert(entry.log_id.index, entry);
            }
        }
        // Nothing to flush: the entries are durable, for this store, once they are readable.
        callback.log_io_completed(Ok(()));
        Ok(())
    }

    async fn truncate(&mut self, log_id: LogId) -> Result<(), StorageError> {
        // Dropping the suffix from `log_id.index` on keeps the keys contiguous.
        let mut log = self.lock();
        drop(log.entries.split_off(&log_id.index));
        Ok(())
    }

    async fn purge(&mut self, log_id: LogId) -> Result<(), StorageError> {
        let mut log = self.lock();
        if log.purged.is_some_and(|p| p.index >= log_id.index) {
            return Ok(());
        }
        let kept = log.entries.split_off(&(log_id.index + 1));
        log.entries = kept;
        log.purged = Some(log_id);
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------
// State machine

/// What the state machine knows, and all that a snapshot of it holds.
#[derive(Clone, Debug, Default)]
struct Applied {
    last: Option<LogId>,
    membership: StoredMembership<NodeId, EmptyNode>,
}

/// A snapshot: its metadata says everything, so its data is always empty.
fn snapshot_of(meta: SnapshotMeta<NodeId, EmptyNode>) -> Snapshot {
    Snapshot {
        meta,
        snapshot: Box::new(Cursor::new(Vec::new())),
    }
}

/// The state machine of one node: the last applied log id and the last membership. Values
/// are dropped once applied (the comparison measures replication).
///
/// # Correctness
/// It records every applied entry's log id and every membership entry, in order, and the
/// snapshot it reports as current is the last one built or installed (openraft's
/// `RaftStateMachine` contract).
#[derive(Default)]
pub struct Machine {
    applied: Applied,
    /// The current snapshot; shared with the builders, which set it when they finish.
    current: Arc<Mutex<Option<SnapshotMeta<NodeId, EmptyNode>>>>,
    /// Snapshots begun so far, to give each a distinct id.
    builders: u64,
}

/// Builds a snapshot of a [`Machine`] as it was when the builder was taken.
pub struct MachineSnapshot {
    applied: Applied,
    id: String,
    current: Arc<Mutex<Option<SnapshotMeta<NodeId, EmptyNode>>>>,
}

fn lock_current(
    current: &Mutex<Option<SnapshotMeta<NodeId, EmptyNode>>>,
) -> MutexGuard<'_, Option<SnapshotMeta<NodeId, EmptyNode>>> {
    current
        .lock()
        .expect("no code panics while it holds the snapshot lock")
}

impl RaftSnapshotBuilder<PeerTypes> for MachineSnapshot {
    async fn build_snapshot(&mut self) -> Result<Snapshot, StorageError> {
        let meta = SnapshotMeta {
            last_log_id: self.applied.last,
            last_membership: self.applied.membership.clone(),
            snapshot_id: self.id.clone(),
        };
        *lock_current(&self.current) = Some(meta.clone());
        Ok(snapshot_of(meta))
    }
}

impl RaftStateMachine<PeerTypes> for Machine {
    type SnapshotBuilder = MachineSnapshot;

    async fn applied_state(
        &mut self,
    ) -> Result<(Option<LogId>, StoredMembership<NodeId, EmptyNode>), StorageError> {
        Ok((self.applied.last, self.applied.membership.clone()))
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<()>, StorageError>
    where
        I: IntoIterator<Item = Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let mut replies = Vec::new();
        for entry in entries {
            self.applied.last = Some(entry.log_id);
            if let EntryPayload::Membership(m) = entry.payload {
                self.applied.membership = StoredMembership::new(Some(entry.log_id), m);
            }
            // openraft pairs replies with entries one to one, blank and membership included.
            replies.push(());
        }
        Ok(replies)
    }

    async fn get_snapshot_builder(&mut self) -> MachineSnapshot {
        self.builders += 1;
        let last = self.applied.last.map_or(0, |id| id.index);
        MachineSnapshot {
            applied: self.applied.clone(),
            id: format!("{last}-{}", self.builders),
            current: Arc::clone(&self.current),
        }
    }

    async fn begin_receiving_snapshot(&mut self) -> Result<Box<Cursor<Vec<u8>>>, StorageError> {
        Ok(Box::new(Cursor::new(Vec::new())))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta<NodeId, EmptyNode>,
        _data: Box<Cursor<Vec<u8>>>,
    ) -> Result<(), StorageError> {
        // The metadata is the whole state (the data of our snapshots is empty).
        self.applied = Applied {
            last: meta.last_log_id,
            membership: meta.last_membership.clone(),
        };
        *lock_current(&self.current) = Some(meta.clone());
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot>, StorageError> {
        Ok(lock_current(&self.current).clone().map(snapshot_of))
    }
}

// ---------------------------------------------------------------------------------------------
// Network

/// The target of an RPC is not (yet) a node of this process's cluster.
#[derive(Debug, thiserror::Error)]
#[error("node {0} is not a node of this in-process cluster")]
pub struct NotInCluster(NodeId);

/// The cluster's address book: node `id` is `nodes[id - 1]`. It is filled once, after every
/// node has been created (a node needs the router before the others exist), and never changes
/// again, so an RPC finds its target without taking a lock.
#[derive(Clone, Default)]
pub struct Router {
    nodes: Arc<OnceLock<Vec<Raft>>>,
}

impl Router {
    fn node(&self, id: NodeId) -> Result<&Raft, NotInCluster> {
        let index = usize::try_from(id.wrapping_sub(1)).map_err(|_| NotInCluster(id))?;
        self.nodes
            .get()
            .and_then(|nodes| nodes.get(index))
            .ok_or(NotInCluster(id))
    }
}

impl RaftNetworkFactory<PeerTypes> for Router {
    type Network = PeerLink;

    async fn new_client(&mut self, target: NodeId, _node: &EmptyNode) -> PeerLink {
        PeerLink {
            target,
            router: self.clone(),
        }
    }
}

/// One node's connection to `target`: each RPC is a direct call of the target's handle.
pub struct PeerLink {
    target: NodeId,
    router: Router,
}

impl PeerLink {
    /// The target's handle, or why it cannot be reached (both RPC error types take it).
    fn target(&self) -> Result<&Raft, Unreachable> {
        self.router
            .node(self.target)
            .map_err(|e| Unreachable::new(&e))
    }

    fn remote<E: std::error::Error>(&self, e: E) -> RPCError<NodeId, EmptyNode, E> {
        RPCError::RemoteError(RemoteError::new(self.target, e))
    }
}

type RpcResult<T, E = openraft::error::Infallible> =
    Result<T, RPCError<NodeId, EmptyNode, RaftError<NodeId, E>>>;

impl RaftNetwork<PeerTypes> for PeerLink {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<PeerTypes>,
        _option: RPCOption,
    ) -> RpcResult<AppendEntriesResponse<NodeId>> {
        let target = self.target()?;
        target.append_entries(rpc).await.map_err(|e| self.remote(e))
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<PeerTypes>,
        _option: RPCOption,
    ) -> RpcResult<InstallSnapshotResponse<NodeId>, InstallSnapshotError> {
        let target = self.target()?;
        target
            .install_snapshot(rpc)
            .await
            .map_err(|e| self.remote(e))
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<NodeId>,
        _option: RPCOption,
    ) -> RpcResult<VoteResponse<NodeId>> {
        let target = self.target()?;
        target.vote(rpc).await.map_err(|e| self.remote(e))
    }

    /// Hands the whole snapshot over in one call: in one process there is nothing to gain
    /// from the default's chunking, which exists for size limits of real transports.
    async fn full_snapshot(
        &mut self,
        vote: Vote,
        snapshot: Snapshot,
        _cancel: impl Future<Output = ReplicationClosed> + OptionalSend + 'static,
        _option: RPCOption,
    ) -> Result<SnapshotResponse<NodeId>, StreamingError<PeerTypes, Fatal<NodeId>>> {
        let target = self.target()?;
        target
            .install_full_snapshot(vote, snapshot)
            .await
            .map_err(|e| StreamingError::RemoteError(RemoteError::new(self.target, e)))
    }
}

// ---------------------------------------------------------------------------------------------
// Cluster

/// A running openraft cluster inside this process. Stop it with [`Cluster::shutdown`].
pub struct Cluster {
    router: Router,
    /// The node that was leader when [`Cluster::start`] returned.
    leader: NodeId,
}

impl Debug for Cluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cluster")
            .field("nodes", &self.nodes().len())
            .field("leader", &self.leader)
            .finish()
    }
}

impl Cluster {
    /// Starts `nodes` openraft nodes (ids `1..=nodes`), initialises them as one cluster with
    /// every node a voter, and waits until one of them leads.
    ///
    /// # Errors
    /// A node that does not start, an initialisation openraft refuses, or no leader within
    /// `LEADER_TIMEOUT`.
    pub async fn start(nodes: usize) -> Result<Cluster, String> {
        if nodes == 0 {
            return Err("an openraft cluster needs at least one node".into());
        }
        let config = openraft::Config {
            cluster_name: "ringraft-bench-openraft".into(),
            snapshot_policy: openraft::SnapshotPolicy::Never,
            ..openraft::Config::default()
        };
        let config = Arc::new(
            config
                .validate()
                .map_err(|e| format!("openraft config: {e}"))?,
        );
        let router = Router::default();
        let mut started = Vec::with_capacity(nodes);
        for id in 1..=nodes as NodeId {
            let raft = Raft::new(
                id,
                Arc::clone(&config),
                router.clone(),
                MemLog::default(),
                Machine::default(),
            )
            .await
            .map_err(|e| format!("openraft node {id} did not start: {e}"))?;
            started.push(raft);
        }
        if router.nodes.set(started).is_err() {
            unreachable!("the router of a new cluster is filled only here");
        }
        let cluster = Cluster { router, leader: 1 };
        let voters: BTreeSet<NodeId> = (1..=nodes as NodeId).collect();
        let first = cluster.node(1)?;
        first
            .initialize(voters)
            .await
            .map_err(|e| format!("initialise the openraft cluster: {e}"))?;
        let leader = wait_for_leader(first, &cluster.router).await?;
        Ok(Cluster { leader, ..cluster })
    }

    fn nodes(&self) -> &[Raft] {
        self.router.nodes.get().map_or(&[], Vec::as_slice)
    }

    fn node(&self, id: NodeId) -> Result<&Raft, String> {
        self.router.node(id).map_err(|e| e.to_string())
    }

    /// A write of `value_bytes` bytes through the leader, for [`super::inproc::run`]. The
    /// client and sequence number are not written: like ringraft's in-memory mode, every
    /// entry carries the same value.
    #[must_use]
    pub fn proposer(&self, value_bytes: usize) -> ProposeFn {
        self.proposer_via(self.leader, value_bytes)
    }

    /// [`Cluster::proposer`], sending each write first to node `first` (and then wherever the
    /// leader hints lead).
    fn proposer_via(&self, first: NodeId, value_bytes: usize) -> ProposeFn {
        let router = self.router.clone();
        let leader = Arc::new(AtomicU64::new(first));
        let write = Write {
            value: vec![b'v'; value_bytes].into(),
        };
        Arc::new(move |_client, _seq| {
            let (router, leader, write) = (router.clone(), Arc::clone(&leader), write.clone());
            Box::pin(async move { propose(&router, &leader, write).await })
        })
    }

    /// Stops every node and waits for their tasks to end.
    pub async fn shutdown(self) {
        for raft in self.nodes() {
            // An error means the node's core task had already ended (it panicked or stopped
            // on a fatal error); it has nothing left to stop, and the run's errors show why.
            let _ = raft.shutdown().await;
        }
    }
}

/// Waits until `first` names a leader and that leader knows it leads; returns its id.
async fn wait_for_leader(first: &Raft, router: &Router) -> Result<NodeId, String> {
    let metrics = first
        .wait(Some(LEADER_TIMEOUT))
        .metrics(|m| m.current_leader.is_some(), "a leader is known")
        .await
        .map_err(|e| format!("openraft elected no leader: {e}"))?;
    let leader = metrics
        .current_leader
        .expect("the wait above returns only once a leader is known");
    router
        .node(leader)
        .map_err(|e| e.to_string())?
        .wait(Some(LEADER_TIMEOUT))
        .state(ServerState::Leader, "the leader leads")
        .await
        .map_err(|e| format!("openraft node {leader} did not take the lead: {e}"))?;
    Ok(leader)
}

/// Proposes `write` to the node `leader` names, following at most `LEADER_HOPS_MAX` hints
/// to a new leader (and remembering the last one for the next write).
async fn propose(router: &Router, leader: &AtomicU64, write: Write) -> Result<(), String> {
    for _ in 0..LEADER_HOPS_MAX {
        let id = leader.load(Ordering::Relaxed);
        let raft = router.node(id).map_err(|e| e.to_string())?;
        match raft.client_write(write.clone()).await {
            Ok(_) => return Ok(()),
            Err(RaftError::APIError(ClientWriteError::ForwardToLeader(forward))) => {
                match forward.leader_id {
                    Some(next) => leader.store(next, Ordering::Relaxed),
                    None => return Err(format!("node {id} knows no leader")),
                }
            }
            Err(e) => return Err(e.to_string()),
        }
    }
    Err(format!(
        "the leader moved {LEADER_HOPS_MAX} times during one write"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    use openraft::testing::{StoreBuilder, Suite};

    /// Builds an empty store for each case of openraft's storage conformance suite.
    struct Fresh;

    impl StoreBuilder<PeerTypes, MemLog, Machine> for Fresh {
        async fn build(&self) -> Result<((), MemLog, Machine), StorageError> {
            Ok(((), MemLog::default(), Machine::default()))
        }
    }

    #[test]
    fn log_store_and_state_machine_pass_openraft_conformance_suite() {
        Suite::test_all(Fresh).expect("every case of openraft's storage suite passes");
    }

    #[test]
    fn an_empty_or_inverted_range_reads_nothing() {
        let runtime = runtime();
        runtime.block_on(async {
            let mut log = MemLog::default();
            assert_eq!(half_open(&(3..3)), (3, Some(3)));
            assert_eq!(half_open(&(2..=u64::MAX)), (2, None));
            #[allow(clippy::reversed_empty_ranges)]
            let inverted = log.try_get_log_entries(5..2).await.expect("read");
            assert!(inverted.is_empty());
        });
    }

    fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("test runtime")
    }

    /// Every node's state machine, once it has caught up with `index`.
    async fn applied_everywhere(cluster: &Cluster, index: u64) -> Vec<Option<LogId>> {
        let mut applied = Vec::new();
        for raft in cluster.nodes() {
            let m = raft
                .wait(Some(LEADER_TIMEOUT))
                .applied_index_at_least(Some(index), "caught up")
                .await
                .expect("every node applies what the leader committed");
            applied.push(m.last_applied);
        }
        applied
    }

    #[test]
    fn writes_commit_and_apply_on_every_node() {
        const WRITES: u64 = 40;
        let runtime = runtime();
        runtime.block_on(async {
            let cluster = Cluster::start(3).await.expect("cluster starts");
            let propose = cluster.proposer(64);
            // Half one after another, half concurrently.
            for seq in 0..WRITES / 2 {
                propose(0, seq).await.expect("write commits");
            }
            let batch: Vec<_> = (WRITES / 2..WRITES).map(|seq| propose(1, seq)).collect();
            for write in batch {
                write.await.expect("concurrent write commits");
            }
            let leader = cluster.node(cluster.leader).expect("leader is a node");
            let last = leader
                .metrics()
                .borrow()
                .last_applied
                .expect("the leader applied the writes");
            // Initial membership, the leader's blank entry, then the writes.
            assert!(
                last.index >= WRITES,
                "last applied {last} after {WRITES} writes"
            );
            let applied = applied_everywhere(&cluster, last.index).await;
            assert_eq!(applied.len(), 3);
            for a in applied {
                assert!(
                    a.is_some_and(|a| a.index >= last.index),
                    "{a:?} behind {last}"
                );
            }
            cluster.shutdown().await;
        });
    }

    #[test]
    fn a_write_sent_to_a_follower_follows_the_leader_hint() {
        let runtime = runtime();
        runtime.block_on(async {
            let cluster = Cluster::start(3).await.expect("cluster starts");
            let follower = (1..=3)
                .find(|id| *id != cluster.leader)
                .expect("3 nodes have a follower");
            let propose = cluster.proposer_via(follower, 8);
            propose(0, 0).await.expect("the write reaches the leader");
            propose(0, 1)
                .await
                .expect("the next write goes to the leader");
            cluster.shutdown().await;
        });
    }

    #[test]
    fn zero_nodes_is_refused() {
        let runtime = runtime();
        let refused = runtime.block_on(Cluster::start(0));
        assert!(refused.is_err());
    }
}
