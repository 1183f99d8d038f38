//! WAL backpressure. The WAL blocks an append while more than its queue bound
//! (`NodeConfig::wal_queue_bytes_max`) waits to be written; on the node thread that would
//! stall everything: heartbeats, acknowledgements, reads, status (issue 13). So the loop
//! tracks the bytes it gave the WAL that are not yet durable, plus those proposed this turn,
//! and above half the bound it stops taking proposals: it holds them, in arrival order, and
//! hands them to the core as writes become durable. Everything else goes on. Held proposals
//! are bounded by the handle's permits (`proposals_inflight_max`).

use super::*;

/// Bytes given to the WAL and not yet durable, and bytes proposed since the last append.
#[derive(Debug, Default)]
pub(super) struct WalLoad {
    inflight_bytes: u64,
    proposed_bytes: u64,
    /// Proposals taken from the handle but not yet given to the core.
    held: VecDeque<Held>,
}

struct Held {
    data: Bytes,
    reply: Reply<Proposed>,
    permit: OwnedSemaphorePermit,
    at: StdInstant,
}

impl std::fmt::Debug for Held {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Held")
            .field("len", &self.data.len())
            .finish()
    }
}

impl WalLoad {
    pub(super) fn on_proposed(&mut self, bytes: u64) {
        self.proposed_bytes += bytes;
    }

    /// One Ready's entries went to the WAL: everything proposed so far is in them.
    pub(super) fn on_appended(&mut self, bytes: u64) {
        self.inflight_bytes += bytes;
        self.proposed_bytes = 0;
    }

    pub(super) fn on_durable(&mut self, bytes: u64) {
        assert!(
            bytes <= self.inflight_bytes,
            "invariant: durable bytes were in flight"
        );
        self.inflight_bytes -= bytes;
    }

    /// Whether a proposal of `len` bytes must wait. With nothing in flight it never does:
    /// a single proposal (at most `proposal_bytes_max`) always makes progress.
    fn over(&self, len: u64, limit: u64) -> bool {
        let load = self.inflight_bytes + self.proposed_bytes;
        load > 0 && load + len > limit
    }
}

impl<S: StateMachine> Runner<S> {
    /// Half the WAL's queue bound: one more turn's append still fits below it.
    fn wal_hold_bytes(&self) -> u64 {
        self.config.wal_queue_bytes_max as u64 / 2
    }

    /// A proposal from the handle: to the core now, or held behind earlier held ones.
    pub(super) fn hold_or_propose(
        &mut self,
        data: Bytes,
        reply: Reply<Proposed>,
        permit: OwnedSemaphorePermit,
        at: StdInstant,
    ) {
        let limit = self.wal_hold_bytes();
        let load = &mut self.state.wal;
        if !load.held.is_empty() || load.over(data.len() as u64, limit) {
            Metrics::inc(&self.metrics.counters.proposals_held, 1);
            load.held.push_back(Held {
                data,
                reply,
                permit,
                at,
            });
            return;
        }
        self.on_propose(&data, reply, permit, at);
    }

    /// Writes became durable: hand held proposals to the core while they fit.
    pub(super) fn release_held(&mut self) {
        let limit = self.wal_hold_bytes();
        loop {
            let load = &mut self.state.wal;
            let fits = load
                .held
                .front()
                .is_some_and(|h| !load.over(h.data.len() as u64, limit));
            if !fits {
                return;
            }
            let h = load.held.pop_front().expect("front checked above");
            self.on_propose(&h.data, h.reply, h.permit, h.at);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io;
    use std::sync::{Arc, Condvar, Mutex};
    use std::time::Duration;
    use std::time::Instant as StdInstant;

    use ringraft_wal::io::{IoBackend, SegmentIo};
    use ringraft_wal::sim::SimDisk;

    use crate::kv::{KvCommand, KvStateMachine};
    use crate::node::{block_on, Node, NodeConfig, WAL_SEGMENT_BYTES_MIN};
    use crate::raft::NodeId;

    /// Safety net only: nothing here waits on a timing assumption.
    const PATIENCE: Duration = Duration::from_secs(30);

    /// Holds every fdatasync while closed: a disk that stopped completing writes.
    #[derive(Default)]
    struct Gate {
        closed: Mutex<bool>,
        cv: Condvar,
    }

    impl Gate {
        fn set(&self, closed: bool) {
            *self.closed.lock().expect("gate lock") = closed;
            self.cv.notify_all();
        }

        fn pass(&self) {
            let mut closed = self.closed.lock().expect("gate lock");
            while *closed {
                closed = self.cv.wait(closed).expect("gate lock");
            }
        }
    }

    /// Opens the gate when dropped, so that a failing assertion ends the test instead of
    /// leaving the node blocked on a disk that never completes.
    struct OpenOnDrop(Arc<Gate>);

    impl Drop for OpenOnDrop {
        fn drop(&mut self) {
            self.0.set(false);
        }
    }

    struct Gated {
        inner: Arc<dyn IoBackend>,
        gate: Arc<Gate>,
    }

    struct GatedSegment {
        inner: Arc<dyn SegmentIo>,
        gate: Arc<Gate>,
    }

    impl IoBackend for Gated {
        fn list(&self) -> io::Result<Vec<String>> {
            self.inner.list()
        }
        fn allocate(&self, name: &str, len: u64) -> io::Result<()> {
            self.inner.allocate(name, len)
        }
        fn open(&self, name: &str) -> io::Result<Arc<dyn SegmentIo>> {
            Ok(Arc::new(GatedSegment {
                inner: self.inner.open(name)?,
                gate: Arc::clone(&self.gate),
            }))
        }
        fn rename(&self, from: &str, to: &str) -> io::Result<()> {
            self.inner.rename(from, to)
        }
        fn remove(&self, name: &str) -> io::Result<()> {
            self.inner.remove(name)
        }
        fn sync_dir(&self) -> io::Result<()> {
            self.inner.sync_dir()
        }
        fn name(&self) -> &'static str {
            "gated-sim"
        }
    }

    impl SegmentIo for GatedSegment {
        fn size(&self) -> u64 {
            self.inner.size()
        }
        fn write_at(&self, offset: u64, buf: &[u8]) -> io::Result<usize> {
            self.inner.write_at(offset, buf)
        }
        fn sync_data(&self) -> io::Result<()> {
            self.gate.pass();
            self.inner.sync_data()
        }
        fn read(&self, offset: usize, len: usize) -> io::Result<bytes::Bytes> {
            self.inner.read(offset, len)
        }
    }

    fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
        let deadline = StdInstant::now() + PATIENCE;
        while !done() {
            assert!(
                StdInstant::now() < deadline,
                "{what}: not within {PATIENCE:?}"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Issue 13, smaller: with more than the WAL's queue bound waiting to be written, the
    /// WAL blocked the append on the node thread, and with it the whole loop (no status,
    /// no heartbeats, no acknowledgements) until the disk caught up. Now the loop holds
    /// proposals above half the bound and stays responsive; the held proposals complete,
    /// in order, once the disk moves again.
    #[test]
    fn a_stalled_disk_holds_proposals_not_the_loop() {
        let dir = tempfile::tempdir().expect("tempdir");
        let gate = Arc::new(Gate::default());
        let mut cfg = NodeConfig::new(3, NodeId(1), dir.path());
        cfg.wal_segment_bytes = WAL_SEGMENT_BYTES_MIN;
        cfg.wal_queue_bytes_max = 256 << 10;
        cfg.wal_io = Some(Arc::new(Gated {
            inner: SimDisk::new().backend(),
            gate: Arc::clone(&gate),
        }));
        let node = Node::start(cfg, KvStateMachine::default()).expect("start");
        node.wait_for_leader(PATIENCE).expect("leader");
        let h = node.handle();
        gate.set(true);
        let _open = OpenOnDrop(Arc::clone(&gate));
        // 64 proposals of 16 KiB: 1 MiB, four times the WAL's queue bound.
        let writers: Vec<_> = (0..64)
            .map(|i| {
                let h = h.clone();
                std::thread::spawn(move || {
                    let cmd = KvCommand::set(format!("k{i}"), "v".repeat(16 << 10)).encode();
                    block_on(h.propose(cmd)).map(|p| p.index)
                })
            })
            .collect();
        wait_until("proposals held", || h.metrics().counters.proposals_held > 0);
        // The loop still answers while the disk is stalled.
        let (tx, rx) = std::sync::mpsc::channel();
        let status = h.clone();
        std::thread::spawn(move || {
            let _ = tx.send(block_on(status.status()).is_ok());
        });
        assert_eq!(
            rx.recv_timeout(PATIENCE),
            Ok(true),
            "the loop answers status"
        );
        gate.set(false);
        let mut indexes: Vec<_> = writers
            .into_iter()
            .map(|w| w.join().expect("writer").expect("proposal committed"))
            .collect();
        indexes.sort();
        indexes.dedup();
        assert_eq!(indexes.len(), 64, "every proposal committed once");
        node.shutdown();
    }
}
