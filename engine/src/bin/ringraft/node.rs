//! `ringraft cluster` and `ringraft serve`: start nodes and their RESP servers, run until
//! Ctrl-C or SIGTERM, shut down cleanly (servers first, then the nodes flush their WALs).

use std::collections::BTreeMap;
use std::io::Write as _;
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::time::Duration;

use ringraft::kv::KvStateMachine;
use ringraft::node::{Durability, Node, NodeConfig};
use ringraft::raft::{NodeId, ReadMode};
use ringraft::server::{Server, ServerConfig};
use serde::Deserialize;

use crate::cli::{
    ClusterArgs, Common, DurabilityArg, ElectionTimeout, ReadModeArg, ServeArgs, TICK_MS,
};
use crate::CliError;

/// How long `cluster` and `serve` wait for a leader before reporting readiness fails.
const LEADER_WAIT: Duration = Duration::from_secs(60);
/// Cluster id when none is given.
const CLUSTER_ID_DEFAULT: u64 = 1;

type KvNode = Node<KvStateMachine>;

fn runtime() -> Result<tokio::runtime::Runtime, CliError> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("ringraft-server")
        .build()
        .map_err(CliError::Io)
}

fn durability(d: DurabilityArg) -> Durability {
    match d {
        DurabilityArg::Fdatasync => Durability::Fdatasync,
        DurabilityArg::Nosync => Durability::NoSync,
    }
}

fn read_mode(m: ReadModeArg) -> ReadMode {
    match m {
        ReadModeArg::Lease => ReadMode::Lease,
        ReadModeArg::Readindex => ReadMode::ReadIndex,
    }
}

fn bind(addr: SocketAddr) -> Result<TcpListener, CliError> {
    let l = TcpListener::bind(addr).map_err(|source| CliError::Bind { addr, source })?;
    l.set_nonblocking(true).map_err(CliError::Io)?;
    Ok(l)
}

/// A free loopback port for a raft listener: the node binds it itself, so the port is
/// found by binding port 0 and releasing it.
fn free_port() -> Result<u16, CliError> {
    let any = SocketAddr::from(([127, 0, 0, 1], 0));
    Ok(bind(any)?.local_addr().map_err(CliError::Io)?.port())
}

fn port_at(base: u16, i: u64) -> Result<u16, CliError> {
    if base == 0 {
        return Ok(0);
    }
    u16::try_from(u64::from(base) + i - 1).map_err(|_| CliError::Port { base })
}

/// Waits for a termination signal.
/// SIGINT and SIGTERM listeners, installed as soon as the runtime exists: before the
/// command prints the `ready:` line a supervisor or test acts on. Installed later, a SIGTERM
/// sent right after that line met the default action and killed the process uncleanly
/// (`server_e2e` saw "unclean exit: signal: 15" once).
struct Signals {
    interrupt: tokio::signal::unix::Signal,
    terminate: tokio::signal::unix::Signal,
}

impl Signals {
    fn install(rt: &tokio::runtime::Runtime) -> Result<Signals, CliError> {
        use tokio::signal::unix::{signal, SignalKind};
        let _in_runtime = rt.enter();
        Ok(Signals {
            interrupt: signal(SignalKind::interrupt()).map_err(CliError::Io)?,
            terminate: signal(SignalKind::terminate()).map_err(CliError::Io)?,
        })
    }

    async fn recv(&mut self) -> &'static str {
        tokio::select! {
            _ = self.interrupt.recv() => "SIGINT",
            _ = self.terminate.recv() => "SIGTERM",
        }
    }
}

fn say(line: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

/// Why a running command stops.
enum Stop {
    /// Ctrl-C or SIGTERM: a clean stop.
    Signal(&'static str),
    /// A node's thread stopped by itself: a fatal error (a failed WAL write or fsync, which
    /// is never retried), or a panic.
    Node {
        id: NodeId,
        error: Option<ringraft::node::FatalError>,
    },
}

/// Waits for a termination signal or for the first node that stops by itself.
async fn wait_for_stop(
    mut signals: Signals,
    handles: Vec<ringraft::node::NodeHandle<KvStateMachine>>,
) -> Result<Stop, CliError> {
    let (tx, mut rx) = tokio::sync::mpsc::channel(handles.len().max(1));
    for h in handles {
        let tx = tx.clone();
        tokio::spawn(async move {
            let error = h.stopped().await;
            let _ = tx.send(Stop::Node { id: h.id(), error }).await;
        });
    }
    tokio::select! {
        s = signals.recv() => Ok(Stop::Signal(s)),
        Some(stop) = rx.recv() => Ok(stop),
    }
}

/// Runs servers and nodes until a signal, then stops them in order. A node that stops by
/// itself ends the command with an error (status 1) instead: its WAL refused a write, so it
/// can neither vote nor acknowledge appends, and answering `ERR fatal` forever would hide
/// that from a supervisor, which restarts a process that exits (etcd and TiKV exit too).
fn run_until_signal(
    rt: &tokio::runtime::Runtime,
    signals: Signals,
    servers: Vec<Server>,
    nodes: Vec<KvNode>,
) -> Result<(), CliError> {
    let handles = nodes.iter().map(Node::handle).collect();
    let stop = rt.block_on(wait_for_stop(signals, handles))?;
    match &stop {
        Stop::Signal(signal) => tracing::info!(signal, "stopping"),
        Stop::Node { id, error } => tracing::error!(
            id = %id,
            error = error.as_ref().map_or_else(|| "none".to_string(), ToString::to_string),
            "node stopped by itself; exiting with status 1 so that a supervisor restarts it"
        ),
    }
    rt.block_on(async {
        for s in servers {
            s.shutdown().await;
        }
    });
    for n in nodes {
        n.shutdown();
    }
    match stop {
        Stop::Signal(_) => {
            say("stopped cleanly");
            Ok(())
        }
        Stop::Node { id, error } => Err(CliError::NodeStopped {
            id: id.0,
            error: error.map_or_else(|| "no error recorded".to_string(), |e| e.to_string()),
        }),
    }
}

/// Applies `--election-timeout` (already validated against the tick and the heartbeat).
fn election_timeout(cfg: &mut NodeConfig, timeout: Option<ElectionTimeout>) {
    if let Some(t) = timeout {
        assert_eq!(
            cfg.raft.tick_nanos,
            TICK_MS * 1_000_000,
            "ElectionTimeout converts with the runtime's tick"
        );
        (cfg.raft.election_ticks_min, cfg.raft.election_ticks_max) = t.ticks();
    }
}

fn server_config(common: &Common, metrics_addr: Option<SocketAddr>) -> ServerConfig {
    ServerConfig {
        read_mode: read_mode(common.read_mode.unwrap_or_default()),
        forward: !common.no_forward,
        cluster_id: common.cluster_id.unwrap_or(CLUSTER_ID_DEFAULT),
        metrics_addr,
        ..ServerConfig::default()
    }
}

/// `ringraft cluster`.
pub fn cluster(args: &ClusterArgs) -> Result<(), CliError> {
    let (_temp, root) = match &args.data_dir {
        Some(d) => (None, d.clone()),
        None => {
            let t = tempfile::Builder::new()
                .prefix("ringraft-cluster-")
                .tempdir()
                .map_err(CliError::Io)?;
            let p = t.path().to_path_buf();
            (Some(t), p)
        }
    };
    let ids: Vec<NodeId> = (1..=args.nodes).map(NodeId).collect();
    let mut raft = BTreeMap::new();
    let mut clients = BTreeMap::new();
    let mut listeners = Vec::new();
    for id in &ids {
        let raft_port = match port_at(args.raft_port, id.0)? {
            0 => free_port()?,
            p => p,
        };
        raft.insert(*id, SocketAddr::from(([127, 0, 0, 1], raft_port)));
        let l = bind(SocketAddr::from((
            [127, 0, 0, 1],
            port_at(args.port, id.0)?,
        )))?;
        clients.insert(*id, l.local_addr().map_err(CliError::Io)?);
        listeners.push(l);
    }
    let common = &args.common;
    let mut nodes = Vec::new();
    for id in &ids {
        let dir = root.join(format!("node-{}", id.0));
        let mut cfg = NodeConfig::new(common.cluster_id.unwrap_or(CLUSTER_ID_DEFAULT), *id, &dir);
        cfg.listen = raft[id];
        cfg.peers = raft
            .iter()
            .filter(|(p, _)| *p != id)
            .map(|(p, a)| (*p, *a))
            .collect();
        cfg.initial_voters.clone_from(&ids);
        cfg.durability = durability(common.durability.unwrap_or_default());
        election_timeout(&mut cfg, common.election_timeout);
        nodes.push(
            Node::start(cfg, KvStateMachine::default())
                .map_err(|source| CliError::Start { id: id.0, source })?,
        );
    }
    let rt = runtime()?;
    let signals = Signals::install(&rt)?;
    let mut servers = Vec::new();
    for ((id, l), node) in ids.iter().zip(listeners).zip(&nodes) {
        let mut sc = server_config(common, if id.0 == 1 { args.metrics_addr } else { None });
        sc.peer_clients = clients
            .iter()
            .filter(|(p, _)| *p != id)
            .map(|(p, a)| (*p, *a))
            .collect();
        let server = rt.block_on(async {
            let l = tokio::net::TcpListener::from_std(l)?;
            Server::start(l, sc, node.handle()).map_err(|e| std::io::Error::other(e.to_string()))
        });
        let server = server.map_err(|source| CliError::Bind {
            addr: clients[id],
            source,
        })?;
        say(&format!(
            "node {}: raft {} client {} data {}",
            id.0,
            raft[id],
            server.local_addr(),
            root.join(format!("node-{}", id.0)).display()
        ));
        if let Some(m) = server.metrics_addr() {
            say(&format!("node {}: metrics http://{m}/metrics", id.0));
        }
        servers.push(server);
    }
    let leader = wait_for_leaders(&nodes)?;
    say(&format!(
        "ready: {} nodes, leader {} (client {}), durability {}; Ctrl-C to stop",
        nodes.len(),
        leader.0,
        clients[&leader],
        durability(common.durability.unwrap_or_default()).name()
    ));
    run_until_signal(&rt, signals, servers, nodes)
}

/// Waits until every node knows a leader; returns the one the first node knows.
fn wait_for_leaders(nodes: &[KvNode]) -> Result<NodeId, CliError> {
    let mut leader = None;
    for n in nodes {
        let l = n
            .wait_for_leader(LEADER_WAIT)
            .map_err(|_| CliError::NoLeader {
                secs: LEADER_WAIT.as_secs(),
            })?;
        leader.get_or_insert(l);
    }
    leader.ok_or(CliError::NoLeader { secs: 0 })
}

/// A peer in the config file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PeerFile {
    id: u64,
    raft_addr: SocketAddr,
    client_addr: Option<SocketAddr>,
}

/// The `serve` config file (every field optional; flags override it).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ServeFile {
    id: Option<u64>,
    cluster_id: Option<u64>,
    data_dir: Option<PathBuf>,
    raft_addr: Option<SocketAddr>,
    client_addr: Option<SocketAddr>,
    metrics_addr: Option<SocketAddr>,
    durability: Option<DurabilityArg>,
    read_mode: Option<ReadModeArg>,
    forward: Option<bool>,
    initial_voters: Option<Vec<u64>>,
    election_timeout: Option<ElectionTimeout>,
    #[serde(default)]
    peers: Vec<PeerFile>,
}

fn load_file(path: &Path) -> Result<ServeFile, CliError> {
    let text = std::fs::read_to_string(path).map_err(|source| CliError::ConfigRead {
        path: path.to_path_buf(),
        source,
    })?;
    toml::from_str(&text).map_err(|e| CliError::ConfigParse {
        path: path.to_path_buf(),
        message: e.to_string(),
    })
}

/// `ID=RAFT[,CLIENT]`.
fn parse_peer(spec: &str) -> Result<PeerFile, CliError> {
    let bad = || CliError::Peer(spec.to_string());
    let (id, addrs) = spec.split_once('=').ok_or_else(bad)?;
    let id = id.trim().parse::<u64>().map_err(|_| bad())?;
    let mut parts = addrs.split(',');
    let raft_addr = parts
        .next()
        .ok_or_else(bad)?
        .trim()
        .parse()
        .map_err(|_| bad())?;
    let client_addr = parts
        .next()
        .map(|c| c.trim().parse().map_err(|_| bad()))
        .transpose()?;
    if parts.next().is_some() {
        return Err(bad());
    }
    Ok(PeerFile {
        id,
        raft_addr,
        client_addr,
    })
}

/// `ringraft serve`.
pub fn serve(args: &ServeArgs) -> Result<(), CliError> {
    let file = match &args.config {
        Some(p) => load_file(p)?,
        None => ServeFile::default(),
    };
    let id = args.id.or(file.id).ok_or(CliError::Missing("id"))?;
    if id == 0 {
        return Err(CliError::Missing("id (> 0)"));
    }
    let data_dir = args
        .data_dir
        .clone()
        .or(file.data_dir)
        .ok_or(CliError::Missing("data-dir"))?;
    let raft_addr = args
        .raft_addr
        .or(file.raft_addr)
        .ok_or(CliError::Missing("raft-addr"))?;
    let client_addr = args
        .client_addr
        .or(file.client_addr)
        .ok_or(CliError::Missing("client-addr"))?;
    let peers = if args.peers.is_empty() {
        file.peers
    } else {
        args.peers
            .iter()
            .map(|p| parse_peer(p))
            .collect::<Result<_, _>>()?
    };
    let common = Common {
        cluster_id: args.common.cluster_id.or(file.cluster_id),
        durability: args.common.durability.or(file.durability),
        read_mode: args.common.read_mode.or(file.read_mode),
        no_forward: args.common.no_forward || file.forward == Some(false),
        election_timeout: args.common.election_timeout.or(file.election_timeout),
    };
    let mut cfg = NodeConfig::new(
        common.cluster_id.unwrap_or(CLUSTER_ID_DEFAULT),
        NodeId(id),
        &data_dir,
    );
    cfg.listen = raft_addr;
    cfg.peers = peers.iter().map(|p| (NodeId(p.id), p.raft_addr)).collect();
    cfg.initial_voters = if args.initial_voters.is_empty() {
        file.initial_voters.unwrap_or_else(|| {
            std::iter::once(id)
                .chain(peers.iter().map(|p| p.id))
                .collect()
        })
    } else {
        args.initial_voters.clone()
    }
    .into_iter()
    .map(NodeId)
    .collect();
    cfg.durability = durability(common.durability.unwrap_or_default());
    election_timeout(&mut cfg, common.election_timeout);
    let listener = bind(client_addr)?;
    let node = Node::start(cfg, KvStateMachine::default())
        .map_err(|source| CliError::Start { id, source })?;
    let rt = runtime()?;
    let signals = Signals::install(&rt)?;
    let mut sc = server_config(&common, args.metrics_addr.or(file.metrics_addr));
    sc.peer_clients = peers
        .iter()
        .filter_map(|p| Some((NodeId(p.id), p.client_addr?)))
        .collect();
    let server = rt
        .block_on(async {
            let l = tokio::net::TcpListener::from_std(listener)?;
            Server::start(l, sc, node.handle()).map_err(|e| std::io::Error::other(e.to_string()))
        })
        .map_err(|source| CliError::Bind {
            addr: client_addr,
            source,
        })?;
    say(&format!(
        "node {id}: raft {} client {} data {}",
        node.local_addr(),
        server.local_addr(),
        data_dir.display()
    ));
    if let Some(m) = server.metrics_addr() {
        say(&format!("node {id}: metrics http://{m}/metrics"));
    }
    // A lone `serve` may wait for its peers to start: report readiness without blocking the
    // signal handling.
    let handle = node.handle();
    rt.spawn(async move {
        loop {
            match handle.status().await {
                Ok(st) if st.leader.is_some() => {
                    say(&format!("ready: leader {}", st.leader.map_or(0, |l| l.0)));
                    return;
                }
                Ok(_) => tokio::time::sleep(Duration::from_millis(20)).await,
                Err(_) => return,
            }
        }
    });
    run_until_signal(&rt, signals, vec![server], vec![node])
}
