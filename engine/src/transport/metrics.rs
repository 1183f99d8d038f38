//! Counters of one transport endpoint. Relaxed atomics: they are statistics, not
//! synchronisation.

use std::sync::atomic::{AtomicU64, Ordering};

macro_rules! counters {
    ($($(#[$doc:meta])* $name:ident),* $(,)?) => {
        /// Live counters, shared by the endpoint's tasks or threads.
        #[derive(Debug, Default)]
        pub(super) struct Metrics {
            $(pub(super) $name: AtomicU64,)*
        }

        /// A point-in-time copy of an endpoint's counters.
        #[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
        pub struct MetricsSnapshot {
            $($(#[$doc])* pub $name: u64,)*
        }

        impl Metrics {
            pub(super) fn snapshot(&self) -> MetricsSnapshot {
                MetricsSnapshot {
                    $($name: self.$name.load(Ordering::Relaxed),)*
                }
            }
        }
    };
}

counters!(
    /// Frames written to sockets (messages, snapshot and control frames).
    frames_sent,
    /// Bytes written to sockets, headers included.
    bytes_sent,
    /// Frames received and verified.
    frames_received,
    /// Bytes of verified frames received, headers included.
    bytes_received,
    /// Messages accepted into a send queue.
    msgs_queued,
    /// Messages delivered to this node's inbox.
    msgs_delivered,
    /// Messages dropped because a peer's send queue was full.
    drops_queue_full,
    /// Messages dropped because the peer is unknown, its link is down, or they were queued on
    /// a connection that broke before they were written.
    drops_link,
    /// Outbound connections established (the first one and every reconnect).
    connects,
    /// Outbound connections re-established after a failure.
    reconnects,
    /// Dial or outbound handshake failures.
    dial_failures,
    /// Inbound connections refused at the handshake.
    handshakes_refused,
    /// Connections closed because of a malformed or oversized frame.
    frames_malformed,
    /// Snapshot streams completed by the receiving application.
    snapshots_completed,
    /// Snapshot streams aborted.
    snapshots_aborted,
);

impl Metrics {
    pub(super) fn add(counter: &AtomicU64, value: u64) {
        counter.fetch_add(value, Ordering::Relaxed);
    }

    pub(super) fn inc(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }
}
