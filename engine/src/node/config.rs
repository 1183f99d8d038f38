//! Configuration of one node, validated once at start.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crate::codec;
use crate::raft::{self, NodeId};
use crate::transport::{TransportConfig, TransportFactory};

/// The WAL's sync policy, shared by the node and its WAL so that the two cannot disagree.
/// Named in every output that reports numbers ([`Durability::name`]).
pub use ringraft_wal::Durability;

/// The I/O stack a node runs on, shared by its WAL and its transport: `Auto` is io_uring
/// (tokio-uring runtime, io_uring TCP and WAL) when the kernel allows it, else the
/// fallback with one warning per process; `IoUring` fails to start without io_uring;
/// `Thread` is the fallback (a current-thread tokio runtime, the thread-based TCP transport
/// and the WAL's pwrite/fdatasync backend), also used to test it on io_uring hosts.
pub use ringraft_wal::BackendKind;

/// Configuration of a [`crate::node::Node`]. Build with [`NodeConfig::new`], adjust, and
/// [`crate::node::Node::start`] validates it.
#[derive(Clone)]
pub struct NodeConfig {
    /// Identifier of the cluster; peers with another id are refused at the handshake.
    pub cluster_id: u64,
    /// The Raft core's configuration; `raft.id` is this node's id.
    pub raft: raft::Config,
    /// Address to listen on (port 0 picks a free port; see [`crate::node::Node::local_addr`]).
    pub listen: SocketAddr,
    /// Addresses of the other nodes known at start (this node's own id must not appear).
    pub peers: BTreeMap<NodeId, SocketAddr>,
    /// Voters of the cluster's first configuration. Every node of a cluster, including one
    /// added later, starts with the same list.
    pub initial_voters: Vec<NodeId>,
    /// Directory for the WAL (`wal/`) and snapshots (`snap/`); created if missing.
    pub data_dir: PathBuf,
    /// WAL sync policy.
    pub durability: Durability,
    /// I/O stack of the WAL and the transport.
    pub io_backend: BackendKind,
    /// WAL segment size, bytes.
    pub wal_segment_bytes: u64,
    /// Bytes the WAL may hold queued, not yet written; appends block beyond it. The node
    /// stops taking proposals once half of it is in flight (written but not yet durable,
    /// or proposed this turn), so that its loop never blocks on the WAL.
    pub wal_queue_bytes_max: usize,
    /// Proposals accepted but not yet answered, node-wide. `propose` waits beyond it and
    /// `try_propose` fails with [`crate::node::NodeError::Busy`]: this bounds the memory an
    /// overload can take.
    pub proposals_inflight_max: usize,
    /// Commands taken from the handle per loop turn: one turn's proposals form one WAL append
    /// and one AppendEntries per follower.
    pub batch_commands_max: usize,
    /// Take a snapshot once this many entries were applied since the last one.
    pub snapshot_entries_threshold: u64,
    /// Take a snapshot once this many payload bytes were applied since the last one.
    pub snapshot_bytes_threshold: u64,
    /// A read (in particular a follower read whose forward to the leader was lost) fails with
    /// [`crate::node::NodeError::Timeout`] after this long.
    pub read_timeout: Duration,
    /// Chunk size of snapshot streams, bytes.
    pub snapshot_chunk_bytes: usize,
    /// The WAL's I/O backend, for tests and custom storage; `None` (the default) means real
    /// files in `data_dir/wal`, on the backend `io_backend` selects. With a custom backend
    /// (such as [`ringraft_wal::sim::SimDisk`], which injects faults) `io_backend` still
    /// selects the runtime and transport, and snapshots are still files in `data_dir/snap`.
    pub wal_io: Option<Arc<dyn ringraft_wal::io::IoBackend>>,
    /// How the node gets its transport; `None` (the default) means TCP on `listen`, on the
    /// backend `io_backend` selects. With a factory (such as a
    /// [`crate::transport::MemoryNetwork`] shared by the nodes of one process) `io_backend`
    /// still selects the runtime, and the factory starts the endpoint on it.
    pub transport: Option<Arc<dyn TransportFactory>>,
}

impl std::fmt::Debug for NodeConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Destructured so that a new field cannot be forgotten here.
        let NodeConfig {
            cluster_id,
            raft,
            listen,
            peers,
            initial_voters,
            data_dir,
            durability,
            io_backend,
            wal_segment_bytes,
            wal_queue_bytes_max,
            proposals_inflight_max,
            batch_commands_max,
            snapshot_entries_threshold,
            snapshot_bytes_threshold,
            read_timeout,
            snapshot_chunk_bytes,
            wal_io,
            transport,
        } = self;
        f.debug_struct("NodeConfig")
            .field("cluster_id", cluster_id)
            .field("raft", raft)
            .field("listen", listen)
            .field("peers", peers)
            .field("initial_voters", initial_voters)
            .field("data_dir", data_dir)
            .field("durability", durability)
            .field("io_backend", io_backend)
            .field("wal_segment_bytes", wal_segment_bytes)
            .field("wal_queue_bytes_max", wal_queue_bytes_max)
            .field("proposals_inflight_max", proposals_inflight_max)
            .field("batch_commands_max", batch_commands_max)
            .field("snapshot_entries_threshold", snapshot_entries_threshold)
            .field("snapshot_bytes_threshold", snapshot_bytes_threshold)
            .field("read_timeout", read_timeout)
            .field("snapshot_chunk_bytes", snapshot_chunk_bytes)
            .field("wal_io", &wal_io.as_ref().map(|b| b.name()))
            .field("transport", transport)
            .finish()
    }
}

/// Largest accepted `proposals_inflight_max`: a bound that large is no bound.
pub const PROPOSALS_INFLIGHT_MAX_LIMIT: usize = 1 << 20;
/// Smallest WAL segment: one maximal WAL record (8 MiB by default) plus headers must fit.
pub const WAL_SEGMENT_BYTES_MIN: u64 = 16 << 20;
/// Largest WAL segment: the WAL indexes offsets in 32 bits.
pub const WAL_SEGMENT_BYTES_MAX: u64 = 4 << 30;
/// Largest snapshot chunk: well under the transport's default 16 MiB frame limit.
pub const SNAPSHOT_CHUNK_BYTES_MAX: usize = 8 << 20;

/// Bytes the runtime adds to an application's proposal: the tag byte of a command entry.
pub(crate) const PROPOSAL_OVERHEAD_BYTES: u64 = 1;

impl NodeConfig {
    /// Defaults for node `id` of cluster `cluster_id`, storing its files in `data_dir`.
    #[must_use]
    pub fn new(cluster_id: u64, id: NodeId, data_dir: impl Into<PathBuf>) -> Self {
        NodeConfig {
            cluster_id,
            raft: raft::Config::new(id),
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            peers: BTreeMap::new(),
            initial_voters: vec![id],
            data_dir: data_dir.into(),
            durability: Durability::Fdatasync,
            io_backend: BackendKind::Auto,
            // 64 MiB segments: rotation (one extra fdatasync) is rare.
            wal_segment_bytes: 64 << 20,
            // The WAL's own default: several group commits' worth of a saturated disk.
            wal_queue_bytes_max: 64 << 20,
            // 16 Ki proposals of typically a few hundred bytes: a few MiB at most, and far
            // more than one fsync's worth of batching.
            proposals_inflight_max: 16 << 10,
            batch_commands_max: 4096,
            snapshot_entries_threshold: 100_000,
            snapshot_bytes_threshold: 64 << 20,
            read_timeout: Duration::from_secs(5),
            snapshot_chunk_bytes: 256 << 10,
            wal_io: None,
            transport: None,
        }
    }

    /// This node's id.
    #[must_use]
    pub fn id(&self) -> NodeId {
        self.raft.id
    }

    /// Largest application proposal accepted by [`crate::node::NodeHandle::propose`], bytes:
    /// the core's `entry_bytes_max` less the runtime's tag byte.
    #[must_use]
    pub fn proposal_bytes_max(&self) -> u64 {
        self.raft
            .entry_bytes_max
            .saturating_sub(PROPOSAL_OVERHEAD_BYTES)
    }

    /// The WAL configuration this node runs with.
    pub(crate) fn wal_config(&self) -> ringraft_wal::Config {
        ringraft_wal::Config {
            segment_bytes: self.wal_segment_bytes,
            queue_bytes_max: self.wal_queue_bytes_max,
            durability: self.durability,
            backend: self.io_backend,
            ..ringraft_wal::Config::default()
        }
    }

    /// The transport configuration this node runs with.
    pub(crate) fn transport_config(&self) -> TransportConfig {
        let mut tc = TransportConfig::new(self.cluster_id, self.id());
        tc.seed ^= self.id().0;
        tc
    }

    /// An entry the core accepts must fit one WAL record, and an AppendEntries of a full
    /// batch (or of one maximal entry) must fit one transport frame: otherwise an entry the
    /// leader accepted stops the leader at its WAL append, and each follower at its own.
    fn validate_size_limits(&self) -> Result<(), ConfigError> {
        let entry = self.raft.entry_bytes_max;
        // The WAL payload of an entry is its data (commands) or a kind byte and its data.
        let record = entry + 1;
        let record_max = u64::from(self.wal_config().record_bytes_max);
        if record > record_max {
            return Err(ConfigError::Limits {
                what: "raft.entry_bytes_max + 1 (WAL record)",
                need: record,
                max: record_max,
            });
        }
        let frame = codec::append_entries_bytes_max(self.raft.batch_bytes_max, entry);
        let frame_max = u64::from(self.transport_config().frame_bytes_max);
        if frame > frame_max {
            return Err(ConfigError::Limits {
                what: "largest AppendEntries (transport frame)",
                need: frame,
                max: frame_max,
            });
        }
        Ok(())
    }

    /// Checks every field and the relations between them.
    ///
    /// # Errors
    /// The first problem found, as a [`ConfigError`].
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.raft.validate().map_err(ConfigError::Raft)?;
        let id = self.id();
        if self.initial_voters.is_empty() || self.initial_voters.contains(&NodeId(0)) {
            return Err(ConfigError::InitialVoters);
        }
        for (peer, addr) in &self.peers {
            if *peer == id || peer.0 == 0 {
                return Err(ConfigError::Peer { id: *peer });
            }
            if addr.port() == 0 || addr.ip().is_unspecified() {
                return Err(ConfigError::PeerAddress {
                    id: *peer,
                    addr: *addr,
                });
            }
        }
        let zero = |field: &'static str, v: u64| (v == 0).then_some(ConfigError::Zero { field });
        let checks = [
            zero("proposals_inflight_max", self.proposals_inflight_max as u64),
            zero("batch_commands_max", self.batch_commands_max as u64),
            zero("wal_queue_bytes_max", self.wal_queue_bytes_max as u64),
            zero(
                "snapshot_entries_threshold",
                self.snapshot_entries_threshold,
            ),
            zero("snapshot_bytes_threshold", self.snapshot_bytes_threshold),
            zero("snapshot_chunk_bytes", self.snapshot_chunk_bytes as u64),
            zero("read_timeout", u64::from(!self.read_timeout.is_zero())),
        ];
        if let Some(e) = checks.into_iter().flatten().next() {
            return Err(e);
        }
        if self.proposals_inflight_max > PROPOSALS_INFLIGHT_MAX_LIMIT {
            return Err(ConfigError::TooLarge {
                field: "proposals_inflight_max",
                max: PROPOSALS_INFLIGHT_MAX_LIMIT as u64,
            });
        }
        let segment = self.wal_segment_bytes;
        if !(WAL_SEGMENT_BYTES_MIN..WAL_SEGMENT_BYTES_MAX).contains(&segment)
            || !segment.is_multiple_of(4096)
        {
            return Err(ConfigError::WalSegment { bytes: segment });
        }
        if self.snapshot_chunk_bytes > SNAPSHOT_CHUNK_BYTES_MAX {
            return Err(ConfigError::TooLarge {
                field: "snapshot_chunk_bytes",
                max: SNAPSHOT_CHUNK_BYTES_MAX as u64,
            });
        }
        self.validate_size_limits()?;
        if self.data_dir.as_os_str().is_empty() || self.data_dir.is_file() {
            return Err(ConfigError::DataDir {
                path: self.data_dir.clone(),
            });
        }
        Ok(())
    }
}

/// A configuration that cannot work.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The Raft core's configuration (timeouts, drift bound, windows) is invalid.
    #[error("raft: {0}")]
    Raft(#[source] raft::ConfigError),
    /// `initial_voters` is empty or holds node 0.
    #[error("initial_voters must be non-empty and must not contain node 0")]
    InitialVoters,
    /// A peer is this node itself or node 0.
    #[error("invalid peer id {id}")]
    Peer {
        /// The peer.
        id: NodeId,
    },
    /// A peer's address cannot be dialed.
    #[error("peer {id} has an undialable address {addr}")]
    PeerAddress {
        /// The peer.
        id: NodeId,
        /// Its address.
        addr: SocketAddr,
    },
    /// A limit that must be positive is zero.
    #[error("{field} must be > 0")]
    Zero {
        /// The field.
        field: &'static str,
    },
    /// A limit is above its ceiling.
    #[error("{field} must be <= {max}")]
    TooLarge {
        /// The field.
        field: &'static str,
        /// The ceiling.
        max: u64,
    },
    /// The WAL segment size is out of range or not a multiple of 4096.
    #[error("wal_segment_bytes {bytes} must be a multiple of 4096 in [16 MiB, 4 GiB)")]
    WalSegment {
        /// The configured size.
        bytes: u64,
    },
    /// Two size limits do not nest (entry < WAL record < transport frame).
    #[error("{what} needs {need} bytes, over the limit of {max}")]
    Limits {
        /// Which relation.
        what: &'static str,
        /// Bytes the larger side needs.
        need: u64,
        /// The limit it must fit.
        max: u64,
    },
    /// The data directory is empty or names a file.
    #[error("invalid data directory {path:?}")]
    DataDir {
        /// The path.
        path: PathBuf,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> NodeConfig {
        NodeConfig::new(7, NodeId(1), "/tmp/ringraft-config-test")
    }

    #[test]
    fn defaults_are_valid() {
        assert_eq!(cfg().validate(), Ok(()));
    }

    #[test]
    fn a_custom_wal_backend_is_valid_and_named_in_debug() {
        let mut c = cfg();
        assert!(format!("{c:?}").contains("wal_io: None"));
        c.wal_io = Some(ringraft_wal::sim::SimDisk::new().backend());
        assert_eq!(c.validate(), Ok(()));
        assert!(format!("{c:?}").contains("wal_io: Some(\"sim\")"));
    }

    type Mutate = Box<dyn Fn(&mut NodeConfig)>;

    #[test]
    fn each_bad_field_is_named() {
        let cases: Vec<(Mutate, ConfigError)> = vec![
            (
                Box::new(|c| c.initial_voters.clear()),
                ConfigError::InitialVoters,
            ),
            (
                Box::new(|c| {
                    c.peers
                        .insert(NodeId(1), "127.0.0.1:1".parse().expect("addr"));
                }),
                ConfigError::Peer { id: NodeId(1) },
            ),
            (
                Box::new(|c| {
                    c.peers
                        .insert(NodeId(2), "0.0.0.0:5".parse().expect("addr"));
                }),
                ConfigError::PeerAddress {
                    id: NodeId(2),
                    addr: "0.0.0.0:5".parse().expect("addr"),
                },
            ),
            (
                Box::new(|c| c.proposals_inflight_max = 0),
                ConfigError::Zero {
                    field: "proposals_inflight_max",
                },
            ),
            (
                Box::new(|c| c.read_timeout = Duration::ZERO),
                ConfigError::Zero {
                    field: "read_timeout",
                },
            ),
            (
                Box::new(|c| c.wal_segment_bytes = (64 << 20) + 1),
                ConfigError::WalSegment {
                    bytes: (64 << 20) + 1,
                },
            ),
            (
                Box::new(|c| c.snapshot_chunk_bytes = 1 << 30),
                ConfigError::TooLarge {
                    field: "snapshot_chunk_bytes",
                    max: SNAPSHOT_CHUNK_BYTES_MAX as u64,
                },
            ),
            (
                Box::new(|c| c.raft.entry_bytes_max = 8 << 20),
                ConfigError::Limits {
                    what: "raft.entry_bytes_max + 1 (WAL record)",
                    need: (8 << 20) + 1,
                    max: 8 << 20,
                },
            ),
            (
                Box::new(|c| {
                    c.raft.batch_bytes_max = 16 << 20;
                    c.raft.inflight_bytes_max = 16 << 20;
                }),
                ConfigError::Limits {
                    what: "largest AppendEntries (transport frame)",
                    need: (16 << 20) + 62,
                    max: 16 << 20,
                },
            ),
            (
                Box::new(|c| c.data_dir = PathBuf::new()),
                ConfigError::DataDir {
                    path: PathBuf::new(),
                },
            ),
            (
                Box::new(|c| c.raft.max_clock_drift_ppm = 1_000_000),
                ConfigError::Raft(raft::ConfigError::ClockDrift { ppm: 1_000_000 }),
            ),
            (
                Box::new(|c| c.raft.heartbeat_ticks = 50),
                ConfigError::Raft(raft::ConfigError::ElectionTicks {
                    heartbeat: 50,
                    min: 10,
                    max: 20,
                }),
            ),
        ];
        for (mutate, want) in cases {
            let mut c = cfg();
            mutate(&mut c);
            assert_eq!(c.validate(), Err(want));
        }
    }
}
