//! Simulated clients: each runs one operation at a time against the cluster and records it in
//! the history.

/// How a read is confirmed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReadKind {
    /// Leader lease (falls back to ReadIndex in the core when the lease lapsed).
    Lease,
    /// ReadIndex, on the leader or through a follower.
    ReadIndex,
}

/// A client request as it travels to a node.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Request {
    /// Write `value` to `key`.
    Put {
        /// Register.
        key: u64,
        /// Unique value.
        value: u64,
    },
    /// Read `key`.
    Get {
        /// Register.
        key: u64,
        /// Lease or ReadIndex.
        kind: ReadKind,
    },
}

/// A node's answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reply {
    /// The write is committed and applied.
    PutOk,
    /// The value read.
    GetOk(Option<u64>),
    /// Refused before taking any effect; the node's leader hint if it had one.
    Refused {
        /// Leader the node believes in.
        leader_hint: Option<u64>,
    },
}

/// The operation a client waits for.
#[derive(Clone, Copy, Debug)]
pub struct Outstanding {
    /// Client-local sequence number.
    pub seq: u64,
    /// Handle in the history.
    pub handle: usize,
    /// Node it was sent to.
    pub target: u64,
    /// What was asked.
    pub request: Request,
}

/// One client.
#[derive(Clone, Debug)]
pub struct Client {
    /// Client id.
    pub id: u64,
    /// Node believed to lead.
    pub leader_hint: Option<u64>,
    /// The operation in flight, if any.
    pub outstanding: Option<Outstanding>,
    /// Next sequence number.
    pub next_seq: u64,
}

impl Client {
    /// A fresh client.
    pub fn new(id: u64) -> Self {
        Client {
            id,
            leader_hint: None,
            outstanding: None,
            next_seq: 1,
        }
    }
}
