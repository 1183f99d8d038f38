//! Transport configuration: identity, limits and timings, validated once at start.

use std::time::Duration;

use super::error::ConfigError;
use super::frame::FRAME_HEADER_BYTES;
use super::NodeId;

/// Configuration of one node's transport endpoint.
///
/// Every limit is a field so that a deployment can size it; the defaults are sized for a
/// replication pipeline of a few MiB in flight per peer.
#[derive(Clone, Debug)]
pub struct TransportConfig {
    /// Identifier of the cluster; a handshake with another cluster id is refused.
    pub cluster_id: u64,
    /// This node's id. Must not be 0 (`NodeId(0)` is never a member).
    pub node_id: NodeId,
    /// Largest payload of one frame. A peer announcing a longer frame is disconnected before
    /// anything is allocated for it. Larger than the core's `batch_bytes_max` plus headers.
    pub frame_bytes_max: u32,
    /// Messages queued per peer before new ones are dropped (Raft retransmits).
    pub send_queue_msgs_max: usize,
    /// Payload bytes queued per peer before new messages are dropped.
    pub send_queue_bytes_max: usize,
    /// Bytes coalesced into one socket write. A frame larger than this is written alone.
    pub write_batch_bytes_max: usize,
    /// Received messages waiting for the node before reading from sockets pauses (TCP then
    /// pushes back on the senders, whose queues fill and drop).
    pub inbox_msgs_max: usize,
    /// Snapshot chunks a sender may have in flight (sent, not yet taken by the receiving
    /// application). Bounds the memory a snapshot stream holds on both sides.
    pub snapshot_chunks_inflight_max: u32,
    /// Concurrent incoming snapshot streams accepted; more are refused.
    pub snapshot_streams_max: usize,
    /// First reconnect delay after a failed dial or a broken connection.
    pub reconnect_backoff_min: Duration,
    /// Upper bound of the exponential reconnect delay.
    pub reconnect_backoff_max: Duration,
    /// Time allowed to connect and to complete a handshake.
    pub handshake_timeout: Duration,
    /// A connection idle in its write direction for this long sends a keepalive frame.
    pub keepalive_interval: Duration,
    /// A connection that receives nothing (not even a keepalive) for this long is closed.
    pub idle_timeout: Duration,
    /// Seed of the reconnect jitter, so that test runs are reproducible.
    pub seed: u64,
}

/// 16 MiB: a full AppendEntries batch of the core's default 1 MiB `batch_bytes_max` fits many
/// times over, and an oversized claim costs nothing because it is checked before allocating.
const FRAME_BYTES_MAX_DEFAULT: u32 = 16 << 20;
/// Default bound of a peer's send queue in payload bytes.
const SEND_QUEUE_BYTES_MAX_DEFAULT: usize = 64 << 20;
const _: () = assert!(
    SEND_QUEUE_BYTES_MAX_DEFAULT >= FRAME_BYTES_MAX_DEFAULT as usize,
    "a default queue holds at least one maximal frame"
);
/// Hard ceiling for `frame_bytes_max`: the length prefix is 32 bits and a frame must stay
/// far below what one node may allocate for it.
pub const FRAME_BYTES_MAX_LIMIT: u32 = 1 << 30;

const _: () = assert!(
    FRAME_BYTES_MAX_DEFAULT <= FRAME_BYTES_MAX_LIMIT,
    "the default frame limit is within the hard ceiling"
);

impl TransportConfig {
    /// A configuration with default limits for `node_id` in `cluster_id`.
    #[must_use]
    pub fn new(cluster_id: u64, node_id: NodeId) -> Self {
        TransportConfig {
            cluster_id,
            node_id,
            frame_bytes_max: FRAME_BYTES_MAX_DEFAULT,
            // 4096 messages or 64 MiB (4 maximal frames): a few election timeouts of a
            // pipelined leader.
            send_queue_msgs_max: 4096,
            send_queue_bytes_max: SEND_QUEUE_BYTES_MAX_DEFAULT,
            // 256 KiB per write: many small messages per syscall, bounded latency per write.
            write_batch_bytes_max: 256 << 10,
            inbox_msgs_max: 4096,
            // 8 chunks of (typically) 1 MiB: enough to cover the round trip on a LAN.
            snapshot_chunks_inflight_max: 8,
            snapshot_streams_max: 4,
            reconnect_backoff_min: Duration::from_millis(10),
            reconnect_backoff_max: Duration::from_secs(1),
            handshake_timeout: Duration::from_secs(5),
            keepalive_interval: Duration::from_secs(1),
            idle_timeout: Duration::from_secs(10),
            seed: 0x5eed,
        }
    }

    /// Checks the relations between the limits.
    ///
    /// # Errors
    /// [`ConfigError`] naming the first field that is out of range.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let fail = |field: &'static str, reason: &'static str| Err(ConfigError { field, reason });
        if self.node_id.0 == 0 {
            return fail("node_id", "0 is never a valid member");
        }
        if self.frame_bytes_max == 0 || self.frame_bytes_max > FRAME_BYTES_MAX_LIMIT {
            return fail("frame_bytes_max", "must be in 1..=1 GiB");
        }
        if self.send_queue_msgs_max == 0 || self.send_queue_bytes_max == 0 {
            return fail(
                "send_queue_msgs_max",
                "queues must hold at least one message",
            );
        }
        if self.send_queue_bytes_max < self.frame_bytes_max as usize {
            return fail(
                "send_queue_bytes_max",
                "must hold one frame of frame_bytes_max",
            );
        }
        if self.write_batch_bytes_max < FRAME_HEADER_BYTES {
            return fail(
                "write_batch_bytes_max",
                "must hold at least one frame header",
            );
        }
        if self.inbox_msgs_max == 0 {
            return fail("inbox_msgs_max", "must be at least 1");
        }
        if self.snapshot_chunks_inflight_max == 0 || self.snapshot_streams_max == 0 {
            return fail("snapshot_chunks_inflight_max", "must be at least 1");
        }
        if self.reconnect_backoff_min.is_zero()
            || self.reconnect_backoff_min > self.reconnect_backoff_max
        {
            return fail(
                "reconnect_backoff_min",
                "must be > 0 and <= reconnect_backoff_max",
            );
        }
        if self.keepalive_interval.is_zero() || self.keepalive_interval >= self.idle_timeout {
            return fail("keepalive_interval", "must be > 0 and < idle_timeout");
        }
        if self.handshake_timeout.is_zero() {
            return fail("handshake_timeout", "must be > 0");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_each_relation_is_checked() {
        let ok = TransportConfig::new(1, NodeId(1));
        assert_eq!(ok.validate(), Ok(()));
        type Breaker = fn(&mut TransportConfig);
        let cases: Vec<(&str, Breaker)> = vec![
            ("node_id", |c| c.node_id = NodeId(0)),
            ("frame_bytes_max", |c| {
                c.frame_bytes_max = FRAME_BYTES_MAX_LIMIT + 1
            }),
            ("send_queue_msgs_max", |c| c.send_queue_msgs_max = 0),
            ("send_queue_bytes_max", |c| c.send_queue_bytes_max = 1024),
            ("write_batch_bytes_max", |c| c.write_batch_bytes_max = 1),
            ("inbox_msgs_max", |c| c.inbox_msgs_max = 0),
            ("snapshot_chunks_inflight_max", |c| {
                c.snapshot_chunks_inflight_max = 0
            }),
            ("reconnect_backoff_min", |c| {
                c.reconnect_backoff_min = Duration::from_secs(9)
            }),
            ("keepalive_interval", |c| {
                c.keepalive_interval = c.idle_timeout
            }),
            ("handshake_timeout", |c| {
                c.handshake_timeout = Duration::ZERO
            }),
        ];
        for (field, break_it) in cases {
            let mut config = ok.clone();
            break_it(&mut config);
            assert_eq!(config.validate().map_err(|e| e.field), Err(field));
        }
    }
}
