//! The command line: subcommands and their flags (clap).

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};
use serde::Deserialize;

/// ringraft: a durable, pipelined Raft log-replication engine with a Redis-compatible server.
#[derive(Debug, Parser)]
#[command(name = "ringraft", version, about, long_about = None)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run N nodes in this process on 127.0.0.1 (a temporary data directory unless
    /// --data-dir is given) until Ctrl-C or SIGTERM.
    Cluster(ClusterArgs),
    /// Run one node (from flags, a TOML config file, or both: flags win).
    Serve(ServeArgs),
    /// SET a key (through the cluster's log).
    Put {
        /// The key.
        key: String,
        /// The value.
        value: String,
        #[command(flatten)]
        target: Target,
    },
    /// GET a key (a linearizable read).
    Get {
        /// The key.
        key: String,
        #[command(flatten)]
        target: Target,
    },
    /// DEL a key.
    Del {
        /// The key.
        key: String,
        #[command(flatten)]
        target: Target,
    },
    /// Show a node's role, term, leader, commit/applied/durable and followers' progress.
    Status {
        #[command(flatten)]
        target: Target,
    },
    /// Add a voter (through a joint configuration).
    AddVoter(MemberArgs),
    /// Add a learner (receives the log, does not vote).
    AddLearner(MemberArgs),
    /// Promote a learner to voter.
    Promote(IdArgs),
    /// Remove a voter or learner.
    Remove(IdArgs),
    /// Hand leadership to a voter.
    TransferLeader(IdArgs),
    /// Take a snapshot on the leader now and compact its log.
    Snapshot {
        #[command(flatten)]
        target: Target,
    },
}

/// Which node a client subcommand talks to (it follows `-MOVED` to the leader).
#[derive(Debug, Args)]
pub struct Target {
    /// A node's client (RESP) address.
    #[arg(short, long, default_value = "127.0.0.1:6379")]
    pub addr: String,
}

/// A member to add.
#[derive(Debug, Args)]
pub struct MemberArgs {
    /// The new node's id.
    pub id: u64,
    /// Its raft address.
    pub raft_addr: std::net::SocketAddr,
    /// Its client address (lets this node forward writes and redirect to it).
    pub client_addr: Option<std::net::SocketAddr>,
    #[command(flatten)]
    pub target: Target,
}

/// A node id.
#[derive(Debug, Args)]
pub struct IdArgs {
    /// The node's id.
    pub id: u64,
    #[command(flatten)]
    pub target: Target,
}

/// WAL sync policy.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DurabilityArg {
    /// One fdatasync per group commit (crash-safe).
    #[default]
    Fdatasync,
    /// No sync: experiments only.
    Nosync,
}

/// Read mode of client connections.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ReadModeArg {
    /// Leader lease, ReadIndex when it has lapsed (and on followers).
    #[default]
    Lease,
    /// A quorum-confirmed ReadIndex for every read.
    Readindex,
}

/// Flags shared by `cluster` and `serve`.
#[derive(Debug, Args)]
pub struct Common {
    /// Identifier of the cluster (nodes of another cluster are refused).
    #[arg(long)]
    pub cluster_id: Option<u64>,
    /// WAL sync policy.
    #[arg(long, value_enum)]
    pub durability: Option<DurabilityArg>,
    /// Default read mode of client connections.
    #[arg(long, value_enum)]
    pub read_mode: Option<ReadModeArg>,
    /// Answer writes on a follower with -MOVED instead of forwarding them to the leader.
    #[arg(long)]
    pub no_forward: bool,
}

/// `ringraft cluster`.
#[derive(Debug, Args)]
pub struct ClusterArgs {
    /// Number of nodes (1 to 9).
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u64).range(1..=9))]
    pub nodes: u64,
    /// Data directory (node i keeps its files in node-i/); a temporary one if absent.
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// First client port (node i listens on PORT + i - 1); 0 picks free ports.
    #[arg(long, default_value_t = 6379)]
    pub port: u16,
    /// First raft port (node i listens on PORT + i - 1); 0 picks free ports.
    #[arg(long, default_value_t = 0)]
    pub raft_port: u16,
    /// Serve Prometheus metrics of node 1 here (GET /metrics).
    #[arg(long)]
    pub metrics_addr: Option<std::net::SocketAddr>,
    #[command(flatten)]
    pub common: Common,
}

/// `ringraft serve`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// A TOML file with the same settings (see docs/server.md); flags override it.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// This node's id (> 0).
    #[arg(long)]
    pub id: Option<u64>,
    /// Directory of this node's WAL and snapshots.
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Address for the other nodes (raft traffic).
    #[arg(long)]
    pub raft_addr: Option<std::net::SocketAddr>,
    /// Address for clients (RESP).
    #[arg(long)]
    pub client_addr: Option<std::net::SocketAddr>,
    /// Another node: ID=RAFT_ADDR[,CLIENT_ADDR]; repeat for each.
    #[arg(long = "peer", value_name = "ID=RAFT[,CLIENT]")]
    pub peers: Vec<String>,
    /// Voters of the cluster's first configuration (default: this node and every peer).
    #[arg(long, value_delimiter = ',')]
    pub initial_voters: Vec<u64>,
    /// Serve Prometheus metrics here (GET /metrics).
    #[arg(long)]
    pub metrics_addr: Option<std::net::SocketAddr>,
    #[command(flatten)]
    pub common: Common,
}
