//! An in-process 3-node key-value cluster over real TCP (127.0.0.1) and real WAL files in
//! temporary directories, with snapshots kept out of the way: the start-up the `cluster`
//! criterion bench and the `allocs_per_proposal` example share.

use std::collections::BTreeMap;
use std::net::{SocketAddr, TcpListener};
use std::time::Duration;

use ringraft::kv::KvStateMachine;
use ringraft::node::{block_on, Durability, Node, NodeConfig, NodeHandle};
use ringraft::raft::{NodeId, Role};

/// Nodes of the cluster.
pub const NODES: u64 = 3;
/// How long the nodes may take to elect a leader.
const LEADER_WAIT: Duration = Duration::from_secs(20);
/// Snapshot thresholds no measurement reaches (a quarter of the range so that the node's
/// own arithmetic on them cannot overflow).
const SNAPSHOT_NEVER: u64 = u64::MAX / 4;

/// A running cluster; its directories are removed on drop, after [`LocalCluster::shutdown`].
pub struct LocalCluster {
    /// Every node, in id order.
    pub nodes: Vec<Node<KvStateMachine>>,
    /// The leader's handle, once elected.
    pub leader: NodeHandle<KvStateMachine>,
    _dirs: Vec<tempfile::TempDir>,
}

fn free_addr() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral loopback port");
    l.local_addr().expect("a bound listener has an address")
}

impl LocalCluster {
    /// Starts the nodes and waits for a leader.
    ///
    /// # Panics
    /// A node does not start or no leader is elected: a benchmark cannot go on without one.
    #[must_use]
    pub fn start(durability: Durability) -> LocalCluster {
        let ids: Vec<NodeId> = (1..=NODES).map(NodeId).collect();
        let addrs: BTreeMap<NodeId, SocketAddr> = ids.iter().map(|id| (*id, free_addr())).collect();
        let dirs: Vec<_> = ids
            .iter()
            .map(|_| tempfile::tempdir().expect("a temporary directory"))
            .collect();
        let nodes: Vec<_> = ids
            .iter()
            .zip(&dirs)
            .map(|(id, dir)| {
                let mut cfg = NodeConfig::new(1, *id, dir.path());
                cfg.listen = addrs[id];
                cfg.initial_voters.clone_from(&ids);
                cfg.peers = addrs
                    .iter()
                    .filter(|(p, _)| *p != id)
                    .map(|(p, a)| (*p, *a))
                    .collect();
                cfg.durability = durability;
                cfg.snapshot_entries_threshold = SNAPSHOT_NEVER;
                cfg.snapshot_bytes_threshold = SNAPSHOT_NEVER;
                Node::start(cfg, KvStateMachine::default()).expect("node starts")
            })
            .collect();
        let leader_id = nodes[0]
            .wait_for_leader(LEADER_WAIT)
            .expect("a leader is elected");
        let leader = nodes
            .iter()
            .map(Node::handle)
            .find(|h| h.id() == leader_id)
            .expect("the leader is one of the nodes");
        assert_eq!(
            block_on(leader.status()).expect("the leader answers").role,
            Role::Leader,
            "the node that won the election still leads"
        );
        LocalCluster {
            nodes,
            leader,
            _dirs: dirs,
        }
    }

    /// Stops every node (each flushes its WAL).
    pub fn shutdown(self) {
        for n in self.nodes {
            n.shutdown();
        }
    }
}
