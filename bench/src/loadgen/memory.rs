//! ringraft's in-memory mode for the comparison with openraft's `benchmarks/minimal`: three
//! nodes in this process, no fsync, their WALs on tmpfs (`/dev/shm`) when the machine has
//! one, and a state machine that keeps nothing (as the minimal benchmark's does). The nodes
//! talk over the in-process transport ([`MemoryNetwork`]: a message is handed to the peer's
//! bounded inbox, no socket, no copy), as the minimal benchmark's function-call router does,
//! so the pair measures the same thing: the Raft engines, not a network.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use ringraft::node::{Command, Durability, Node, NodeConfig, NodeHandle, StateMachine};
use ringraft::raft::NodeId;
use ringraft::transport::MemoryNetwork;

use super::inproc::ProposeFn;

/// How long the in-process cluster may take to elect its first leader.
const LEADER_TIMEOUT: Duration = Duration::from_secs(20);
/// tmpfs on Linux: where the WALs go so that no write touches a disk.
const TMPFS: &str = "/dev/shm";

/// A state machine that stores nothing and answers every command with an empty response:
/// the in-memory comparison measures replication, not a data structure.
#[derive(Debug, Default)]
pub struct NoopStateMachine;

impl StateMachine for NoopStateMachine {
    fn apply(&mut self, batch: &[Command]) -> Vec<Bytes> {
        vec![Bytes::new(); batch.len()]
    }

    fn snapshot(&self, _out: &mut dyn Write) -> std::io::Result<()> {
        Ok(())
    }

    fn restore(&mut self, _input: &mut dyn Read) -> std::io::Result<()> {
        Ok(())
    }
}

/// Failed to start the in-memory cluster.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MemoryError {
    /// The WAL directory.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: &'static str,
        /// Why it failed.
        source: std::io::Error,
    },
    /// A node did not start.
    #[error("node {id} did not start: {source}")]
    Start {
        /// The node.
        id: u64,
        /// Why.
        source: ringraft::node::StartError,
    },
    /// No leader in time.
    #[error("no leader elected within {} s: {source}", LEADER_TIMEOUT.as_secs())]
    NoLeader {
        /// Why.
        source: ringraft::node::NodeError,
    },
}

/// A running in-memory cluster; dropping it shuts every node down and removes the WALs.
pub struct MemoryCluster {
    nodes: Vec<Node<NoopStateMachine>>,
    leader: NodeHandle<NoopStateMachine>,
    /// Where the WALs are (for the report).
    pub wal_dir: PathBuf,
    _dir: tempfile::TempDir,
}

impl std::fmt::Debug for MemoryCluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryCluster")
            .field("nodes", &self.nodes.len())
            .field("wal_dir", &self.wal_dir)
            .finish_non_exhaustive()
    }
}

/// The directory the in-memory WALs go to: tmpfs if there is one, else `fallback`.
#[must_use]
pub fn wal_root(fallback: &Path) -> PathBuf {
    let tmpfs = Path::new(TMPFS);
    if tmpfs.is_dir() {
        tmpfs.to_path_buf()
    } else {
        fallback.to_path_buf()
    }
}

/// The address a node is known by: only a name on the in-process network (nothing listens).
fn node_addr(id: NodeId) -> SocketAddr {
    let port = u16::try_from(id.0).expect("a benchmark cluster has a few nodes");
    SocketAddr::from(([127, 0, 0, 1], port))
}

impl MemoryCluster {
    /// Starts `nodes` nodes with no fsync and waits for a leader.
    ///
    /// # Errors
    /// See [`MemoryError`].
    pub fn start(nodes: usize, root: &Path) -> Result<Self, MemoryError> {
        let dir = tempfile::Builder::new()
            .prefix("ringraft-bench-memory-")
            .tempdir_in(root)
            .map_err(|source| MemoryError::Io {
                what: "create the WAL directory",
                source,
            })?;
        let ids: Vec<NodeId> = (1..=nodes as u64).map(NodeId).collect();
        let addrs: BTreeMap<NodeId, SocketAddr> =
            ids.iter().map(|id| (*id, node_addr(*id))).collect();
        let network = Arc::new(MemoryNetwork::new());
        let mut started = Vec::with_capacity(nodes);
        for id in &ids {
            let mut cfg = NodeConfig::new(1, *id, dir.path().join(format!("node-{}", id.0)));
            cfg.listen = addrs[id];
            cfg.initial_voters.clone_from(&ids);
            cfg.peers = addrs
                .iter()
                .filter(|(p, _)| *p != id)
                .map(|(p, a)| (*p, *a))
                .collect();
            cfg.durability = Durability::NoSync;
            cfg.transport = Some(Arc::clone(&network) as _);
            // A state machine with no data: snapshots would measure nothing but the trigger.
            cfg.snapshot_entries_threshold = u64::MAX / 4;
            cfg.snapshot_bytes_threshold = u64::MAX / 4;
            let node = Node::start(cfg, NoopStateMachine)
                .map_err(|source| MemoryError::Start { id: id.0, source })?;
            started.push(node);
        }
        let leader_id = started[0]
            .wait_for_leader(LEADER_TIMEOUT)
            .map_err(|source| MemoryError::NoLeader { source })?;
        let leader = started
            .iter()
            .map(Node::handle)
            .find(|h| h.id() == leader_id)
            .expect("wait_for_leader names a member of this cluster");
        Ok(Self {
            nodes: started,
            leader,
            wal_dir: dir.path().to_path_buf(),
            _dir: dir,
        })
    }

    /// A write of `value_bytes` bytes through the leader, for [`super::inproc::run`].
    #[must_use]
    pub fn proposer(&self, value_bytes: usize) -> ProposeFn {
        let leader = self.leader.clone();
        let value = Bytes::from(vec![b'v'; value_bytes]);
        Arc::new(move |_client, _seq| {
            let (leader, value) = (leader.clone(), value.clone());
            Box::pin(async move {
                leader
                    .propose(value)
                    .await
                    .map(|_| ())
                    .map_err(|e| e.to_string())
            })
        })
    }
}

impl Drop for MemoryCluster {
    fn drop(&mut self) {
        for node in self.nodes.drain(..) {
            node.shutdown();
        }
    }
}
