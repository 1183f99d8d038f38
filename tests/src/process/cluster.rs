//! A cluster of `ringraft serve` processes on loopback with a [`Proxy`] on every directed
//! peer link, and the operations a fault run needs: find the leader, kill, pause, restart,
//! partition, heal, wait for convergence, read every replica.
//!
//! Node `i` is given, for peer `j`, the address of the proxy `i -> j`, which forwards to
//! `j`'s raft port; so cutting proxies partitions the peer traffic without root. Client
//! traffic (and a follower's forwarding of writes to the leader's client port) does not go
//! through the proxies: a partition cuts the Raft links, as a partition between replicas
//! that clients can still reach.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::client::Client;
use super::proxy::Proxy;
use super::supervisor::{Proc, ProcError, ProcSpec};
use super::tools::free_port;

/// How to start the cluster.
#[derive(Clone, Debug)]
pub struct ClusterSpec {
    /// The `ringraft` binary.
    pub binary: PathBuf,
    /// Number of nodes (ids `1..=nodes`).
    pub nodes: u64,
    /// Read mode: `lease` or `readindex`.
    pub read_mode: &'static str,
    /// Where the nodes' data directories and logs go.
    pub dir: PathBuf,
    /// Per node: a data directory other than `dir/n<id>` (a small tmpfs for the full disk).
    pub data_dirs: BTreeMap<u64, PathBuf>,
    /// Per node: extra environment (a skewed clock).
    pub env: BTreeMap<u64, Vec<(String, String)>>,
}

impl ClusterSpec {
    /// `nodes` nodes under `dir`, lease reads.
    pub fn new(binary: PathBuf, nodes: u64, dir: &Path) -> ClusterSpec {
        ClusterSpec {
            binary,
            nodes,
            read_mode: "lease",
            dir: dir.to_path_buf(),
            data_dirs: BTreeMap::new(),
            env: BTreeMap::new(),
        }
    }
}

/// One node of the cluster.
#[derive(Debug)]
pub struct Node {
    /// Its id.
    pub id: u64,
    /// Its process.
    pub proc: Proc,
    /// Its data directory (the WAL is in `wal/`).
    pub data_dir: PathBuf,
    /// Its raft listen address.
    pub raft: SocketAddr,
    /// Its client (RESP) address.
    pub client: SocketAddr,
}

/// The running cluster.
#[derive(Debug)]
pub struct Cluster {
    nodes: BTreeMap<u64, Node>,
    /// `(from, to)` -> the proxy on the link.
    links: BTreeMap<(u64, u64), Proxy>,
}

fn loopback(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

/// The `ringraft serve` command line of node `id`; `peers` maps each other node to the
/// address this node dials for it and that node's client address.
fn serve_args(
    id: u64,
    spec: &ClusterSpec,
    data_dir: &Path,
    raft: SocketAddr,
    client: SocketAddr,
    peers: &[(u64, SocketAddr, SocketAddr)],
) -> Vec<String> {
    let mut args = vec![
        "serve".to_string(),
        "--id".into(),
        id.to_string(),
        "--data-dir".into(),
        data_dir.display().to_string(),
        "--raft-addr".into(),
        raft.to_string(),
        "--client-addr".into(),
        client.to_string(),
        "--cluster-id".into(),
        "7".into(),
        "--read-mode".into(),
        spec.read_mode.into(),
    ];
    for (peer, raft, client) in peers {
        args.push("--peer".into());
        args.push(format!("{peer}={raft},{client}"));
    }
    args
}

impl Cluster {
    /// Starts every node.
    ///
    /// # Errors
    /// If a proxy or a process cannot be started.
    pub fn start(spec: &ClusterSpec) -> Result<Cluster, ProcError> {
        let ids: Vec<u64> = (1..=spec.nodes).collect();
        let addrs: BTreeMap<u64, (SocketAddr, SocketAddr)> = ids
            .iter()
            .map(|&id| (id, (loopback(free_port()), loopback(free_port()))))
            .collect();
        let mut links = BTreeMap::new();
        for &from in &ids {
            for &to in ids.iter().filter(|&&to| to != from) {
                let proxy = Proxy::start(addrs[&to].0).map_err(|source| ProcError::Io {
                    what: "start proxy",
                    source,
                })?;
                links.insert((from, to), proxy);
            }
        }
        let mut nodes = BTreeMap::new();
        for &id in &ids {
            let data_dir = spec
                .data_dirs
                .get(&id)
                .cloned()
                .unwrap_or_else(|| spec.dir.join(format!("n{id}")));
            let peers: Vec<_> = ids
                .iter()
                .filter(|&&p| p != id)
                .map(|&p| (p, links[&(id, p)].addr(), addrs[&p].1))
                .collect();
            let (raft, client) = addrs[&id];
            let proc_spec = ProcSpec {
                program: spec.binary.clone(),
                args: serve_args(id, spec, &data_dir, raft, client, &peers),
                env: spec.env.get(&id).cloned().unwrap_or_default(),
                log: spec.dir.join(format!("n{id}.log")),
            };
            let proc = Proc::spawn(&format!("node {id}"), proc_spec)?;
            nodes.insert(
                id,
                Node {
                    id,
                    proc,
                    data_dir,
                    raft,
                    client,
                },
            );
        }
        Ok(Cluster { nodes, links })
    }

    /// Node ids.
    pub fn ids(&self) -> Vec<u64> {
        self.nodes.keys().copied().collect()
    }

    /// A node.
    pub fn node(&self, id: u64) -> &Node {
        &self.nodes[&id]
    }

    /// A node, mutably (to signal its process).
    pub fn node_mut(&mut self, id: u64) -> &mut Node {
        self.nodes.get_mut(&id).expect("a node of the cluster")
    }

    /// Client addresses of every node.
    pub fn client_addrs(&self) -> Vec<SocketAddr> {
        self.nodes.values().map(|n| n.client).collect()
    }

    /// `INFO raft` of node `id` as a map, if it answers within `timeout`.
    pub fn info(&self, id: u64, timeout: Duration) -> Option<BTreeMap<String, String>> {
        let n = &self.nodes[&id];
        if !n.proc.is_running() || n.proc.is_stopped() {
            return None;
        }
        let mut c = Client::new(n.client, timeout);
        c.info("raft").ok().map(|v| v.into_iter().collect())
    }

    /// The node that says it leads, among running ones, with its term: the one of the highest
    /// term when several say so (an old leader that has not yet heard of the new term).
    pub fn leader(&self) -> Option<(u64, u64)> {
        self.ids()
            .into_iter()
            .filter_map(|id| {
                let info = self.info(id, Duration::from_millis(500))?;
                let term = info.get("raft_term")?.parse().ok()?;
                (info.get("raft_role")? == "leader").then_some((id, term))
            })
            .max_by_key(|&(_, term)| term)
    }

    /// Waits up to `timeout` for a leader that is not in `excluded` (polling, a safety net).
    pub fn wait_leader(&self, excluded: &[u64], timeout: Duration) -> Option<(u64, u64)> {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Some((id, term)) = self.leader() {
                if !excluded.contains(&id) {
                    return Some((id, term));
                }
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        None
    }

    /// The `match` index of follower `f` on leader `leader` (its `INFO raft` line
    /// `raft_follower_<f>:match=M,...`): the highest index `f` acknowledged as durable.
    pub fn follower_match(&self, leader: u64, f: u64) -> Option<u64> {
        let info = self.info(leader, Duration::from_secs(2))?;
        let line = info.get(&format!("raft_follower_{f}"))?;
        line.split(',')
            .find_map(|kv| kv.strip_prefix("match="))
            .and_then(|m| m.parse().ok())
    }

    /// Cuts the link `from -> to`.
    pub fn cut(&self, from: u64, to: u64) {
        self.links[&(from, to)].cut();
    }

    /// Cuts both directions between every node of `a` and every node of `b`.
    pub fn partition(&self, a: &[u64], b: &[u64]) {
        for &x in a {
            for &y in b {
                self.cut(x, y);
                self.cut(y, x);
            }
        }
    }

    /// Cuts `id` off from every other node.
    pub fn isolate(&self, id: u64) {
        let others: Vec<u64> = self.ids().into_iter().filter(|&o| o != id).collect();
        self.partition(&[id], &others);
    }

    /// Heals every link.
    pub fn heal(&self) {
        for p in self.links.values() {
            p.heal();
        }
    }

    /// Bytes the proxies dropped while links were cut (proof that a partition happened).
    pub fn dropped_bytes(&self) -> u64 {
        self.links.values().map(|p| p.stats().dropped).sum()
    }

    /// Fails if a process ended by itself or logged a panic.
    ///
    /// # Errors
    /// The first such process, with its log tail.
    pub fn check_processes(&mut self) -> Result<(), String> {
        for n in self.nodes.values_mut() {
            n.proc.check().map_err(|e| e.to_string())?;
            if n.proc.panicked() {
                return Err(format!(
                    "{} panicked:\n{}",
                    n.proc.name(),
                    n.proc.log_tail(4096)
                ));
            }
        }
        Ok(())
    }

    /// Waits up to `timeout` until the nodes `ids` (the ones that are meant to be up) report
    /// the same commit and applied index, and returns that index.
    ///
    /// # Errors
    /// The last indexes seen.
    pub fn wait_converged(&self, ids: &[u64], timeout: Duration) -> Result<u64, String> {
        let deadline = Instant::now() + timeout;
        let mut last = Vec::new();
        while Instant::now() < deadline {
            last = ids
                .iter()
                .map(|&id| {
                    let info = self.info(id, Duration::from_millis(500));
                    let get = |f: &str| {
                        info.as_ref()
                            .and_then(|i| i.get(f))
                            .and_then(|v| v.parse::<u64>().ok())
                    };
                    (id, get("raft_commit"), get("raft_applied"))
                })
                .collect();
            let first = last[0];
            let same = last
                .iter()
                .all(|&(_, c, a)| c.is_some() && c == first.1 && a == first.1);
            if same {
                return Ok(first.1.unwrap_or(0));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Err(format!("(node, commit, applied) never agreed: {last:?}"))
    }

    /// Reads `keys` on the nodes `ids` (a follower serves them from its own state machine
    /// once it applied the leader's read index) and fails if two replicas differ.
    ///
    /// # Errors
    /// The first difference, or a node that does not answer.
    pub fn replicas_agree(&self, ids: &[u64], keys: &[String]) -> Result<(), String> {
        let mut first: Option<(u64, Vec<Option<Vec<u8>>>)> = None;
        for &id in ids {
            let mut c = Client::new(self.nodes[&id].client, Duration::from_secs(5));
            let mut values = Vec::with_capacity(keys.len());
            for k in keys {
                match c.get(k) {
                    Ok(Ok(v)) => values.push(v),
                    other => return Err(format!("node {id}: GET {k}: {other:?}")),
                }
            }
            match &first {
                None => first = Some((id, values)),
                Some((f, want)) => {
                    if let Some(i) = (0..keys.len()).find(|&i| want[i] != values[i]) {
                        return Err(format!(
                            "nodes {f} and {id} differ at {}: {:?} vs {:?}",
                            keys[i], want[i], values[i]
                        ));
                    }
                }
            }
        }
        Ok(())
    }

    /// Stops every node with SIGTERM (SIGKILL after `grace`); fails if one did not exit
    /// cleanly.
    ///
    /// # Errors
    /// The nodes that needed SIGKILL or exited with an error.
    pub fn shutdown(&mut self, grace: Duration) -> Result<(), String> {
        let mut bad = Vec::new();
        for n in self.nodes.values_mut() {
            if !n.proc.is_running() {
                continue;
            }
            match n.proc.terminate(grace) {
                Ok((_, true)) => {}
                Ok((status, false)) => bad.push(format!("{}: {status}", n.proc.name())),
                Err(e) => bad.push(e.to_string()),
            }
        }
        if bad.is_empty() {
            Ok(())
        } else {
            Err(bad.join("; "))
        }
    }

    /// Data directories of every node.
    pub fn data_dirs(&self) -> Vec<&Path> {
        self.nodes.values().map(|n| n.data_dir.as_path()).collect()
    }
}
