//! openraft in the shape of its own minimal benchmark (`cluster_benchmark/` in openraft
//! 0.9, `benchmarks/minimal/` later): three nodes in this process, a log kept in a
//! `BTreeMap`, a state machine that keeps only its applied log id and membership, and a
//! "network" that calls the target node's handler directly. The store and the router are
//! adapted from openraft v0.9.25's `cluster_benchmark/tests/benchmark/{store,network}.rs`
//! (MIT OR Apache-2.0); the one change is that a request carries the workload's payload, as
//! ringraft's in-memory side does, instead of being empty.
//!
//! Built only with the `openraft` feature, so the workspace does not compile openraft.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Debug;
use std::io::Cursor;
use std::ops::RangeBounds;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use openraft::error::{InstallSnapshotError, RPCError, RaftError, RemoteError};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use openraft::storage::{
    LogFlushed, LogState, RaftLogReader, RaftLogStorage, RaftSnapshotBuilder, RaftStateMachine,
    Snapshot,
};
use openraft::{
    Config, Entry, EntryPayload, LogId, OptionalSend, Raft, RaftLogId, RaftTypeConfig,
    SnapshotMeta, StorageError, StoredMembership, Vote,
};
use serde::{Deserialize, Serialize};
use tokio::sync::RwLock;

use super::inproc::ProposeFn;

/// The openraft version this module is written against (the one `Cargo.toml` asks for).
pub const VERSION: &str = "0.9.25";
/// How long the initial membership may take to apply on every node.
const INIT_TIMEOUT: Duration = Duration::from_secs(20);

/// A write: the payload only (the state machine ignores it, as the minimal benchmark's does).
#[derive(Serialize, Deserialize, Debug, Clone)]
pub struct ClientRequest {
    /// The workload's value, shared rather than copied when the log is read.
    pub payload: Arc<Vec<u8>>,
}

/// The empty response.
#[derive(Serialize, Deserialize, Debug, Clone)]
pub struct ClientResponse {}

type NodeId = u64;

openraft::declare_raft_types!(
    /// The benchmark's type configuration.
    pub TypeConfig:
        D = ClientRequest,
        R = ClientResponse,
        Node = (),
);

type BenchRaft = Raft<TypeConfig>;

/// The log: a `BTreeMap` behind an async lock, as in the minimal benchmark.
#[derive(Default)]
pub struct LogStore {
    vote: RwLock<Option<Vote<NodeId>>>,
    log: RwLock<BTreeMap<u64, Entry<TypeConfig>>>,
    last_purged_log_id: RwLock<Option<LogId<NodeId>>>,
}

#[derive(Serialize, Deserialize, Debug, Default, Clone)]
struct SmState {
    last_applied_log: Option<LogId<NodeId>>,
    last_membership: StoredMembership<NodeId, ()>,
}

/// The latest snapshot: its metadata and bytes.
type StoredSnapshot = (SnapshotMeta<NodeId, ()>, Vec<u8>);

/// The state machine: the applied log id and the membership, nothing else.
#[derive(Default)]
pub struct StateMachineStore {
    sm: RwLock<SmState>,
    current_snapshot: RwLock<Option<StoredSnapshot>>,
}

fn io_error(e: &serde_json::Error) -> StorageError<NodeId> {
    openraft::StorageIOError::read_state_machine(e).into()
}

impl RaftLogReader<TypeConfig> for Arc<LogStore> {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry<TypeConfig>>, StorageError<NodeId>> {
        let log = self.log.read().await;
        Ok(log.range(range).map(|(_, e)| e.clone()).collect())
    }
}

impl RaftLogStorage<TypeConfig> for Arc<LogStore> {
    type LogReader = Self;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, StorageError<NodeId>> {
        let log = self.log.read().await;
        let last = log.values().next_back().map(|e| *e.get_log_id());
        let last_purged = *self.last_purged_log_id.read().await;
        Ok(LogState {
            last_purged_log_id: last_purged,
            last_log_id: last.or(last_purged),
        })
    }

    async fn save_vote(&mut self, vote: &Vote<NodeId>) -> Result<(), StorageError<NodeId>> {
        *self.vote.write().await = Some(*vote);
        Ok(())
    }

    async fn read_vote(&mut self) -> Result<Option<Vote<NodeId>>, StorageError<NodeId>> {
        Ok(*self.vote.read().await)
    }

    async fn truncate(&mut self, log_id: LogId<NodeId>) -> Result<(), StorageError<NodeId>> {
        self.log.write().await.split_off(&log_id.index);
        Ok(())
    }

    async fn purge(&mut self, log_id: LogId<NodeId>) -> Result<(), StorageError<NodeId>> {
        *self.last_purged_log_id.write().await = Some(log_id);
        let mut log = self.log.write().await;
        *log = log.split_off(&(log_id.index + 1));
        Ok(())
    }

    async fn append<I>(
        &mut self,
        entries: I,
        callback: LogFlushed<TypeConfig>,
    ) -> Result<(), StorageError<NodeId>>
    where
        I: IntoIterator<Item = Entry<TypeConfig>> + Send,
    {
        self.log
            .write()
            .await
            .extend(entries.into_iter().map(|e| (e.get_log_id().index, e)));
        // In memory: the entries are "flushed" as soon as they are in the map.
        callback.log_io_completed(Ok(()));
        Ok(())
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }
}

impl RaftSnapshotBuilder<TypeConfig> for Arc<StateMachineStore> {
    async fn build_snapshot(&mut self) -> Result<Snapshot<TypeConfig>, StorageError<NodeId>> {
        let sm = self.sm.read().await.clone();
        let data = serde_json::to_vec(&sm).map_err(|e| io_error(&e))?;
        let meta = SnapshotMeta {
            last_log_id: sm.last_applied_log,
            last_membership: sm.last_membership,
            snapshot_id: format!("{:?}", sm.last_applied_log),
        };
        *self.current_snapshot.write().await = Some((meta.clone(), data.clone()));
        Ok(Snapshot {
            meta,
            snapshot: Box::new(Cursor::new(data)),
        })
    }
}

impl RaftStateMachine<TypeConfig> for Arc<StateMachineStore> {
    type SnapshotBuilder = Self;

    async fn applied_state(
        &mut self,
    ) -> Result<(Option<LogId<NodeId>>, StoredMembership<NodeId, ()>), StorageError<NodeId>> {
        let sm = self.sm.read().await;
        Ok((sm.last_applied_log, sm.last_membership.clone()))
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<ClientResponse>, StorageError<NodeId>>
    where
        I: IntoIterator<Item = Entry<TypeConfig>> + Send,
    {
        let mut sm = self.sm.write().await;
        let mut out = Vec::new();
        for entry in entries {
            sm.last_applied_log = Some(entry.log_id);
            if let EntryPayload::Membership(ref m) = entry.payload {
                sm.last_membership = StoredMembership::new(Some(entry.log_id), m.clone());
            }
            out.push(ClientResponse {});
        }
        Ok(out)
    }

    async fn begin_receiving_snapshot(
        &mut self,
    ) -> Result<Box<<TypeConfig as RaftTypeConfig>::SnapshotData>, StorageError<NodeId>> {
        Ok(Box::new(Cursor::new(Vec::new())))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta<NodeId, ()>,
        snapshot: Box<<TypeConfig as RaftTypeConfig>::SnapshotData>,
    ) -> Result<(), StorageError<NodeId>> {
        let data = snapshot.into_inner();
        let sm: SmState = serde_json::from_slice(&data).map_err(|e| io_error(&e))?;
        *self.sm.write().await = sm;
        *self.current_snapshot.write().await = Some((meta.clone(), data));
        Ok(())
    }

    async fn get_current_snapshot(
        &mut self,
    ) -> Result<Option<Snapshot<TypeConfig>>, StorageError<NodeId>> {
        Ok(self
            .current_snapshot
            .read()
            .await
            .as_ref()
            .map(|(meta, data)| Snapshot {
                meta: meta.clone(),
                snapshot: Box::new(Cursor::new(data.clone())),
            }))
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        self.clone()
    }
}

/// The function-call network: every node's handle by id.
#[derive(Clone, Default)]
pub struct Router {
    table: Arc<Mutex<BTreeMap<NodeId, BenchRaft>>>,
}

impl Router {
    fn get(&self, id: NodeId) -> BenchRaft {
        self.table
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(&id)
            .expect("the router holds every member before any node sends")
            .clone()
    }
}

/// One node's link to another: calls its handlers.
pub struct Network {
    target: NodeId,
    raft: BenchRaft,
}

impl RaftNetworkFactory<TypeConfig> for Router {
    type Network = Network;

    async fn new_client(&mut self, target: NodeId, _node: &()) -> Self::Network {
        Network {
            target,
            raft: self.get(target),
        }
    }
}

impl RaftNetwork<TypeConfig> for Network {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        _option: RPCOption,
    ) -> Result<AppendEntriesResponse<NodeId>, RPCError<NodeId, (), RaftError<NodeId>>> {
        let target = self.target;
        self.raft
            .append_entries(rpc)
            .await
            .map_err(|e| RemoteError::new(target, e).into())
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<TypeConfig>,
        _option: RPCOption,
    ) -> Result<
        InstallSnapshotResponse<NodeId>,
        RPCError<NodeId, (), RaftError<NodeId, InstallSnapshotError>>,
    > {
        let target = self.target;
        self.raft
            .install_snapshot(rpc)
            .await
            .map_err(|e| RemoteError::new(target, e).into())
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<NodeId>,
        _option: RPCOption,
    ) -> Result<VoteResponse<NodeId>, RPCError<NodeId, (), RaftError<NodeId>>> {
        let target = self.target;
        self.raft
            .vote(rpc)
            .await
            .map_err(|e| RemoteError::new(target, e).into())
    }
}

/// A running in-process openraft cluster.
pub struct Cluster {
    rafts: Vec<BenchRaft>,
}

impl Cluster {
    /// Starts `nodes` nodes (ids 0..nodes), initializes them from node 0 and waits until the
    /// initial membership is applied everywhere. Call from inside a tokio runtime.
    ///
    /// # Errors
    /// openraft refused the config, the start or the initialization.
    pub async fn start(nodes: usize) -> Result<Self, String> {
        // The minimal benchmark's settings.
        let config = Config {
            election_timeout_min: 200,
            election_timeout_max: 2000,
            purge_batch_size: 1024,
            ..Default::default()
        }
        .validate()
        .map_err(|e| format!("openraft config: {e}"))?;
        let config = Arc::new(config);
        let router = Router::default();
        let ids: BTreeSet<NodeId> = (0..nodes as u64).collect();
        let mut rafts = Vec::new();
        for id in &ids {
            let log = Arc::new(LogStore::default());
            let sm = Arc::new(StateMachineStore::default());
            let raft = Raft::new(*id, Arc::clone(&config), router.clone(), log, sm)
                .await
                .map_err(|e| format!("openraft node {id}: {e}"))?;
            rafts.push(raft);
        }
        {
            let mut table = router
                .table
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            for (id, raft) in ids.iter().zip(&rafts) {
                table.insert(*id, raft.clone());
            }
        }
        rafts[0]
            .initialize(ids.clone())
            .await
            .map_err(|e| format!("openraft initialize: {e}"))?;
        for r in &rafts {
            // Log index 1 is the initial membership.
            r.wait(Some(INIT_TIMEOUT))
                .applied_index(Some(1), "init")
                .await
                .map_err(|e| format!("openraft init: {e}"))?;
        }
        Ok(Self { rafts })
    }

    /// A write of `value_bytes` bytes through node 0 (the leader after initialization), for
    /// [`super::inproc::run`].
    #[must_use]
    pub fn proposer(&self, value_bytes: usize) -> ProposeFn {
        let leader = self.rafts[0].clone();
        let payload = Arc::new(vec![b'v'; value_bytes]);
        Arc::new(move |_client, _seq| {
            let leader = leader.clone();
            let req = ClientRequest {
                payload: Arc::clone(&payload),
            };
            Box::pin(async move {
                leader
                    .client_write(req)
                    .await
                    .map(|_| ())
                    .map_err(|e| e.to_string())
            })
        })
    }

    /// Stops every node.
    pub async fn shutdown(self) {
        for r in self.rafts {
            let _ = r.shutdown().await;
        }
    }
}
