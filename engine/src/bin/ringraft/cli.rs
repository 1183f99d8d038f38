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
    /// Randomized election timeout MIN-MAX in milliseconds (multiples of the 10 ms tick;
    /// default 100-200). Raise it where nodes may be starved of CPU (a loaded machine, a
    /// benchmark): a follower that misses heartbeats for MIN starts an election. The cost is
    /// failover: a dead leader is replaced only after MIN to MAX (see docs/server.md).
    #[arg(long, value_name = "MIN-MAX", value_parser = ElectionTimeout::parse)]
    pub election_timeout: Option<ElectionTimeout>,
}

/// Nominal tick of the node runtime, in milliseconds (`raft::Config::tick_nanos` default):
/// election timeouts are whole numbers of ticks.
pub const TICK_MS: u64 = 10;
/// Shortest minimum election timeout accepted, in milliseconds: it must stay above the 20 ms
/// heartbeat with room for a late one, and above the 5 ms lease margin.
pub const ELECTION_TIMEOUT_MS_MIN: u64 = 50;
/// Longest maximum election timeout accepted, in milliseconds: past a minute a failover is
/// an outage, and the bound keeps tick arithmetic far from overflow.
pub const ELECTION_TIMEOUT_MS_MAX: u64 = 60_000;

/// A validated `--election-timeout`: `min_ms < max_ms`, both multiples of [`TICK_MS`], within
/// [`ELECTION_TIMEOUT_MS_MIN`] ..= [`ELECTION_TIMEOUT_MS_MAX`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct ElectionTimeout {
    /// Lower bound (also the lease length before drift and margin), milliseconds.
    pub min_ms: u64,
    /// Upper bound (exclusive), milliseconds.
    pub max_ms: u64,
}

impl ElectionTimeout {
    /// Parses and validates `MIN-MAX` (milliseconds).
    pub fn parse(text: &str) -> Result<Self, String> {
        let (min, max) = text
            .split_once('-')
            .ok_or_else(|| format!("expected MIN-MAX in milliseconds, got {text:?}"))?;
        let ms = |v: &str| {
            v.trim()
                .parse::<u64>()
                .map_err(|_| format!("{v:?} is not a whole number of milliseconds"))
        };
        let (min_ms, max_ms) = (ms(min)?, ms(max)?);
        if min_ms % TICK_MS != 0 || max_ms % TICK_MS != 0 {
            return Err(format!(
                "{text}: both bounds must be multiples of the {TICK_MS} ms tick"
            ));
        }
        if min_ms < ELECTION_TIMEOUT_MS_MIN {
            return Err(format!(
                "{text}: MIN must be at least {ELECTION_TIMEOUT_MS_MIN} ms"
            ));
        }
        if max_ms > ELECTION_TIMEOUT_MS_MAX {
            return Err(format!(
                "{text}: MAX must be at most {ELECTION_TIMEOUT_MS_MAX} ms"
            ));
        }
        if min_ms >= max_ms {
            // The randomized range must be non-empty, or nodes time out together and split
            // votes (Raft section 5.2).
            return Err(format!("{text}: MIN must be below MAX"));
        }
        Ok(ElectionTimeout { min_ms, max_ms })
    }

    /// The bounds in ticks of [`TICK_MS`].
    pub fn ticks(self) -> (u64, u64) {
        (self.min_ms / TICK_MS, self.max_ms / TICK_MS)
    }
}

impl TryFrom<String> for ElectionTimeout {
    type Error = String;

    fn try_from(text: String) -> Result<Self, String> {
        ElectionTimeout::parse(&text)
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn election_timeouts_are_validated() {
        let ok = ElectionTimeout::parse("500-1000").expect("valid");
        assert_eq!(ok.ticks(), (50, 100));
        assert_eq!(
            ElectionTimeout::parse(" 50 - 60 ").map(|t| t.ticks()),
            Ok((5, 6))
        );
        for bad in [
            "",
            "500",
            "a-b",
            "500-",
            "-500",
            "40-100",
            "105-200",
            "100-205",
            "200-200",
            "300-200",
            "100-60010",
            "100-70000",
        ] {
            assert!(ElectionTimeout::parse(bad).is_err(), "{bad:?} accepted");
        }
    }
}
