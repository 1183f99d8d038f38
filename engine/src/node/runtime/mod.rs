//! The node thread: one event loop drives the core with the WAL, the transport and the
//! state machine.
//!
//! One loop turn: wait for anything (a request, a message, a WAL completion, a tick, a
//! snapshot event), take everything else that is already queued (up to the batch limits),
//! then turn every Ready into work. Everything proposed in a turn becomes one WAL append and
//! one AppendEntries per follower.
//!
//! The turn is split in two: an async shell (`next_input`) that only waits, and a
//! synchronous core that takes what it returned (`handle`) and then does the turn's work at
//! an instant of the injected [`Clock`] (`after_inputs`: drain, tick, process Readys). The
//! core never reads the time itself, so a simulation can drive it input by input.
//!
//! Ordering per Ready (see `crate::raft::Ready`): `messages` leave at once, so a leader's
//! AppendEntries are on the wire while its own WAL write runs; the WAL ticket is queued in
//! `inflight`; only when it completes do `persisted_messages` leave (votes, append acks: a
//! follower acknowledges after its fdatasync) and does the core hear `on_persisted` (a leader
//! counts itself toward commit only then). Tickets complete in submission order, so the
//! queue is acknowledged front to back.

mod apply;
mod backpressure;
mod clock;
mod jobs;
mod requests;
mod snapshots;

pub(crate) use clock::SystemClock;
pub use clock::{Clock, ManualClock};
pub use jobs::{Executor, Job, QueuedExecutor, ThreadExecutor};

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant as StdInstant};

use bytes::Bytes;
use ringraft_wal::{Ticket, Wal};
use tokio::sync::{mpsc, OwnedSemaphorePermit};

use crate::codec;
use crate::node::handle::{
    FollowerStatus, NodeStatus, Proposed, ReadFn, Reply, Request, Shared, STOP_ABRUPT, STOP_NONE,
};
use crate::node::metrics::Metrics;
use crate::node::storage::{self, TAG_COMMAND, TAG_PEER_ADDR};
use crate::node::{snapshot, Command, FatalError, NodeConfig, NodeError, StateMachine};
use crate::raft::{
    Entry, EntryKind, Instant, LogIndex, Message, MessageBody, NodeId, ProposeError, RawNode,
    ReadId, Ready, Role, SnapshotMeta,
};
use crate::transport::{Inbox, Incoming, SnapshotReceiver, Transport};

/// Messages taken from the inbox per loop turn before the Readys are processed, so that a
/// flood of traffic cannot starve proposals and WAL completions.
const INBOX_BATCH_MAX: usize = 4096;
/// A loop turn at least this long is logged: half the default minimum election timeout.
const LOOP_STALL_WARN: Duration = Duration::from_millis(50);
/// Snapshot streams (sent or received) reporting back to the loop at once.
pub(crate) const EVENTS_MAX: usize = 64;

/// Completions of work done off the loop (snapshot streams on their own threads).
pub(crate) enum SnapshotEvent {
    Sent {
        to: NodeId,
        ok: bool,
    },
    Received {
        from: NodeId,
        header: Bytes,
        path: Result<PathBuf, String>,
    },
    /// A snapshot written from a [`crate::node::SnapshotView`] off the loop.
    Written {
        meta: SnapshotMeta,
        path: Result<PathBuf, String>,
    },
    /// Compacted WAL segments and older snapshot files were deleted off the loop.
    Compacted {
        index: LogIndex,
        result: Result<(), ringraft_wal::Error>,
    },
}

/// A snapshot whose file is durable, on its way into the WAL (`snapshots.rs`).
struct Finishing {
    index: LogIndex,
    stage: FinishStage,
    /// The entries the core's compaction dropped, freed on the deleting thread.
    garbage: Vec<Entry>,
}

enum FinishStage {
    /// The snapshot metadata is being written.
    Meta(Ticket),
    /// The compaction marker: `None` until `index` is durable locally, then its write.
    Compact(Option<Ticket>),
    /// Segments and older snapshot files are being deleted off the loop.
    Deleting,
}

/// One Ready whose persistence is under way.
struct InFlight {
    number: u64,
    /// The WAL request that covers everything this Ready wrote (None: it wrote nothing).
    ticket: Option<Ticket>,
    submitted: StdInstant,
    /// Set when the ticket completed.
    done: Option<Result<u64, ringraft_wal::Error>>,
    /// Leave only once this Ready is durable.
    messages: Vec<Message>,
    /// Payload bytes of the entries this Ready appended to the WAL.
    wal_bytes: u64,
}

struct PendingProposal {
    term: crate::raft::Term,
    reply: Reply<Proposed>,
    _permit: OwnedSemaphorePermit,
    at: StdInstant,
}

struct PendingRead<S> {
    f: ReadFn<S>,
    deadline: StdInstant,
}

/// Everything the node thread owns.
pub(crate) struct Runner<S> {
    pub(crate) raw: RawNode,
    pub(crate) sm: S,
    pub(crate) wal: Arc<Wal>,
    pub(crate) transport: Box<dyn Transport>,
    pub(crate) inbox: Inbox,
    pub(crate) rx: mpsc::Receiver<Request<S>>,
    pub(crate) shared: Arc<Shared>,
    pub(crate) metrics: Arc<Metrics>,
    pub(crate) config: NodeConfig,
    /// The time every loop decision is made on (ticks, deadlines, the core's `now`).
    pub(crate) clock: Arc<dyn Clock>,
    /// The clock's instant that is the core's `Instant(0)`.
    pub(crate) epoch: StdInstant,
    /// When the next tick is due, on `clock`.
    pub(crate) next_tick: StdInstant,
    pub(crate) snap_dir: PathBuf,
    /// Where snapshot writes, segment deletion and snapshot streams run (`jobs.rs`).
    pub(crate) executor: Arc<dyn Executor>,
    pub(crate) events_tx: mpsc::Sender<SnapshotEvent>,
    pub(crate) events_rx: mpsc::Receiver<SnapshotEvent>,
    /// Index the next WAL append must carry (accepted, not necessarily durable).
    pub(crate) wal_next: u64,
    pub(crate) peers: BTreeMap<NodeId, SocketAddr>,
    pub(crate) applied: LogIndex,
    pub(crate) snapshot_index: LogIndex,
    pub(crate) state: LoopState<S>,
}

/// The loop's bookkeeping of requests in progress.
pub(crate) struct LoopState<S> {
    inflight: VecDeque<InFlight>,
    proposals: BTreeMap<LogIndex, PendingProposal>,
    conf_waiters: Vec<(LogIndex, Reply<LogIndex>)>,
    transfer: Option<(NodeId, StdInstant, Reply<()>)>,
    reads: HashMap<ReadId, PendingRead<S>>,
    /// Confirmed reads waiting for `applied` to reach their index.
    reads_waiting: BTreeMap<(LogIndex, ReadId), PendingRead<S>>,
    next_read: u64,
    role: Role,
    leader: Option<NodeId>,
    sending: HashSet<NodeId>,
    receiving: HashSet<NodeId>,
    /// The verified file of the received snapshot the core accepted and will install
    /// (`RawNode::pending_snapshot`); files of the others are removed when stepped.
    received: Option<(LogIndex, PathBuf)>,
    entries_since_snapshot: u64,
    bytes_since_snapshot: u64,
    /// Index of a snapshot in progress (written off the loop, then finished), and the
    /// requests waiting for it.
    snapshot_writing: Option<LogIndex>,
    /// When a failed background snapshot is tried again.
    snapshot_retry: snapshots::SnapshotRetry,
    finishing: Option<Finishing>,
    snapshot_waiters: Vec<Reply<LogIndex>>,
    requests_closed: bool,
    inbox_closed: bool,
    /// WAL backpressure (see `backpressure.rs`).
    wal: backpressure::WalLoad,
    /// What the current loop turn did, reported if it stalls.
    turn: TurnStats,
}

/// Work done in one loop turn (wall time: a CPU-starved thread shows up here too).
#[derive(Default, Debug)]
struct TurnStats {
    requests: u32,
    messages: u32,
    events: u32,
    readies: u32,
    applied: u32,
    apply: Duration,
    snapshot: Duration,
}

impl<S> Default for LoopState<S> {
    fn default() -> Self {
        LoopState {
            inflight: VecDeque::new(),
            proposals: BTreeMap::new(),
            conf_waiters: Vec::new(),
            transfer: None,
            reads: HashMap::new(),
            reads_waiting: BTreeMap::new(),
            next_read: 1,
            role: Role::Follower,
            leader: None,
            sending: HashSet::new(),
            receiving: HashSet::new(),
            received: None,
            entries_since_snapshot: 0,
            bytes_since_snapshot: 0,
            snapshot_writing: None,
            snapshot_retry: snapshots::SnapshotRetry::default(),
            finishing: None,
            snapshot_waiters: Vec::new(),
            requests_closed: false,
            inbox_closed: false,
            wal: backpressure::WalLoad::default(),
            turn: TurnStats::default(),
        }
    }
}

/// One thing the loop's async shell waited for, handed to the synchronous core.
pub(crate) enum Input<S> {
    /// A request from a handle.
    Request(Request<S>),
    /// Every handle is gone.
    RequestsClosed,
    /// A message or snapshot stream from a peer.
    Incoming(Incoming),
    /// The transport is gone.
    InboxClosed,
    /// A snapshot stream, write or deletion off the loop completed.
    Event(SnapshotEvent),
    /// The WAL ticket of the in-flight Ready at queue position `slot` completed.
    Persisted {
        slot: usize,
        result: Result<u64, ringraft_wal::Error>,
    },
    /// Woken without anything to take in: a stop request, or the tick is due.
    Wake,
}

/// Polls a ticket once without waiting.
fn poll_now(t: &mut Ticket) -> Option<Result<u64, ringraft_wal::Error>> {
    let mut cx = Context::from_waker(std::task::Waker::noop());
    match std::pin::Pin::new(t).poll(&mut cx) {
        Poll::Ready(r) => Some(r),
        Poll::Pending => None,
    }
}

use std::future::Future;

/// Waits for the first in-flight ticket that has not completed yet.
async fn next_ticket(q: &mut VecDeque<InFlight>) -> (usize, Result<u64, ringraft_wal::Error>) {
    let found = q
        .iter_mut()
        .enumerate()
        .find(|(_, f)| f.done.is_none() && f.ticket.is_some());
    match found {
        Some((i, f)) => {
            let t = f.ticket.as_mut().expect("checked above");
            (i, t.await)
        }
        None => std::future::pending().await,
    }
}

impl<S: StateMachine> Runner<S> {
    /// The core's time: nanoseconds of the loop clock since `epoch`.
    fn now(&self) -> Instant {
        let since = self.clock.now().saturating_duration_since(self.epoch);
        Instant(u64::try_from(since.as_nanos()).unwrap_or(u64::MAX))
    }

    fn tick_interval(&self) -> Duration {
        Duration::from_nanos(self.config.raft.tick_nanos)
    }

    /// Runs until shutdown or a fatal error; then releases everything.
    pub(crate) async fn run(mut self) {
        let result = loop {
            if self.shared.stop.load(Ordering::Acquire) != STOP_NONE {
                break Ok(());
            }
            let input = self.next_input().await;
            let turn = self
                .handle(input)
                .and_then(|()| self.after_inputs(self.clock.now()));
            if let Err(e) = turn {
                break Err(e);
            }
        };
        let abrupt = self.shared.stop.load(Ordering::Acquire) == STOP_ABRUPT;
        self.stop(result, abrupt);
    }

    /// The async shell: waits for the first thing to take in, and does nothing with it.
    /// The tick timer sleeps until `next_tick` on the loop clock (production's clock is the
    /// OS clock that tokio's timer runs on).
    async fn next_input(&mut self) -> Input<S> {
        let deadline = tokio::time::Instant::from_std(self.next_tick);
        let st = &mut self.state;
        tokio::select! {
            biased;
            () = self.shared.wake.notified() => Input::Wake,
            (slot, result) = next_ticket(&mut st.inflight) => Input::Persisted { slot, result },
            req = self.rx.recv(), if !st.requests_closed => {
                req.map_or(Input::RequestsClosed, Input::Request)
            }
            inc = self.inbox.recv(), if !st.inbox_closed => {
                inc.map_or(Input::InboxClosed, Input::Incoming)
            }
            ev = self.events_rx.recv() => ev.map_or(Input::Wake, Input::Event),
            () = tokio::time::sleep_until(deadline) => Input::Wake,
        }
    }

    /// Takes in one input, without waiting and without reading the time.
    pub(crate) fn handle(&mut self, input: Input<S>) -> Result<(), FatalError> {
        match input {
            Input::Request(req) => self.on_request(req)?,
            Input::RequestsClosed => self.state.requests_closed = true,
            Input::Incoming(inc) => self.on_incoming(inc),
            Input::InboxClosed => self.state.inbox_closed = true,
            Input::Event(ev) => self.on_event(ev)?,
            Input::Persisted { slot, result } => self.state.inflight[slot].done = Some(result),
            Input::Wake => {}
        }
        Ok(())
    }

    /// The rest of a turn at `now` on the loop clock: takes whatever else is queued, ticks
    /// if a tick is due, and turns every Ready into work. Never waits.
    pub(crate) fn after_inputs(&mut self, now: StdInstant) -> Result<(), FatalError> {
        let started = StdInstant::now();
        self.state.turn = TurnStats::default();
        self.drain()?;
        let drained = started.elapsed();
        // Ticks are checked on every turn, not only when the timer wins: a steady stream of
        // requests or messages must not starve heartbeats and elections.
        self.maybe_tick(now);
        // A failed snapshot is retried on time, not only when more entries apply: on a
        // near-full disk the writes that would trigger it may have stopped.
        if self.state.snapshot_retry.due(now) {
            self.maybe_snapshot()?;
        }
        let r = self.process_readies();
        let took = started.elapsed();
        if took >= LOOP_STALL_WARN {
            // A turn this long delays heartbeats and acknowledgements by as much: say where
            // the time went (wall time: a starved CPU shows up here too).
            tracing::warn!(
                id = %self.config.id(),
                drain_us = u64::try_from(drained.as_micros()).unwrap_or(u64::MAX),
                total_us = u64::try_from(took.as_micros()).unwrap_or(u64::MAX),
                turn = ?self.state.turn,
                "node loop turn stalled"
            );
        }
        r
    }

    /// Ticks the core once if a tick is due at `now`.
    fn maybe_tick(&mut self, now: StdInstant) {
        if now < self.next_tick {
            return;
        }
        let late = now - self.next_tick;
        if late >= LOOP_STALL_WARN {
            // The loop did not run for this long (starved of CPU, or a long turn).
            tracing::debug!(
                id = %self.config.id(),
                late_us = u64::try_from(late.as_micros()).unwrap_or(u64::MAX),
                role = ?self.state.role,
                "tick late"
            );
        }
        self.on_tick(now);
        // After a stall, resume the cadence from now rather than firing a burst.
        self.next_tick = (self.next_tick + self.tick_interval()).max(now);
    }

    /// Takes whatever else is queued, without waiting.
    fn drain(&mut self) -> Result<(), FatalError> {
        for _ in 0..self.config.batch_commands_max {
            match self.rx.try_recv() {
                Ok(req) => self.on_request(req)?,
                Err(_) => break,
            }
        }
        for _ in 0..INBOX_BATCH_MAX {
            match self.inbox.try_recv() {
                Some(inc) => self.on_incoming(inc),
                None => break,
            }
        }
        while let Ok(ev) = self.events_rx.try_recv() {
            self.on_event(ev)?;
        }
        Ok(())
    }

    fn process_readies(&mut self) -> Result<(), FatalError> {
        loop {
            self.reap()?;
            if !self.raw.has_ready() {
                break;
            }
            let rd = self.raw.ready();
            self.handle_ready(rd)?;
        }
        if let Some((_, path)) = self.state.received.take() {
            // The core did not install it (stale by the time it was stepped).
            let _ = std::fs::remove_file(path);
        }
        if let Some(e) = self.wal.fatal_error() {
            return Err(FatalError::Wal(e));
        }
        Ok(())
    }

    /// Acknowledges completed Readys, front to back.
    fn reap(&mut self) -> Result<(), FatalError> {
        while let Some(front) = self.state.inflight.front_mut() {
            if front.done.is_none() {
                if let Some(t) = front.ticket.as_mut() {
                    front.done = poll_now(t);
                }
            }
            match (&front.ticket, &front.done) {
                (Some(_), None) => break,
                (_, Some(Err(e))) => return Err(FatalError::Wal(e.clone())),
                _ => {}
            }
            let f = self
                .state
                .inflight
                .pop_front()
                .expect("front exists: checked above");
            if f.ticket.is_some() {
                self.metrics.record_fsync(f.submitted.elapsed());
            }
            for m in f.messages {
                self.send(m);
            }
            let now = self.now();
            self.raw.on_persisted(f.number, now);
            self.state.wal.on_durable(f.wal_bytes);
        }
        self.release_held();
        self.advance_finish()
    }

    /// The failure of an append still in flight, if one already completed with an error.
    /// The WAL refuses a request whose segment cannot be prepared (a full disk) without
    /// writing anything, and rolls its log end back to before it, so the next append fails
    /// as non-consecutive: the cause to report is the earlier failure, not that symptom.
    fn earlier_wal_failure(&mut self) -> Option<FatalError> {
        self.state.inflight.iter_mut().find_map(|f| {
            if f.done.is_none() {
                f.done = f.ticket.as_mut().and_then(poll_now);
            }
            match &f.done {
                Some(Err(e)) => Some(FatalError::Wal(e.clone())),
                _ => None,
            }
        })
    }

    fn handle_ready(&mut self, rd: Ready) -> Result<(), FatalError> {
        Metrics::inc(&self.metrics.counters.readies, 1);
        self.state.turn.readies += 1;
        if let Some(ss) = rd.soft_state {
            self.on_soft_state(ss.role, ss.leader);
        }
        for m in rd.messages {
            self.send(m);
        }
        let mut ticket = None;
        let mut wal_bytes = 0;
        if let Some(meta) = rd.snapshot {
            ticket = Some(self.install_snapshot(&meta)?);
        }
        if let Some(last) = rd.entries.last() {
            let first = rd.entries[0].index.0;
            if first < self.wal_next {
                // A follower's conflicting suffix (Raft paper 5.3): drop it first.
                self.wal.truncate_suffix(first)?;
                self.wal_next = first;
            }
            assert_eq!(
                first, self.wal_next,
                "invariant: entries follow the stored log"
            );
            self.wal_next = last.index.0 + 1;
            let batch: Vec<_> = rd.entries.iter().map(storage::entry_to_wal).collect();
            wal_bytes = batch.iter().map(|e| e.payload.len() as u64).sum();
            ticket = Some(
                self.wal
                    .append(batch)
                    .map_err(|e| self.earlier_wal_failure().unwrap_or(FatalError::Wal(e)))?,
            );
            self.state.wal.on_appended(wal_bytes);
            Metrics::inc(&self.metrics.counters.wal_appends, 1);
        }
        if let Some(hs) = rd.hard_state {
            ticket = Some(self.wal.set_hard_state(storage::hard_state_to_wal(&hs))?);
        }
        self.state.inflight.push_back(InFlight {
            number: rd.number,
            ticket,
            submitted: StdInstant::now(),
            done: None,
            messages: rd.persisted_messages,
            wal_bytes,
        });
        if !rd.committed_entries.is_empty() {
            self.apply(&rd.committed_entries)?;
        }
        for rs in rd.read_states {
            if let Some(r) = self.state.reads.remove(&rs.id) {
                self.state.reads_waiting.insert((rs.index, rs.id), r);
            }
        }
        for (id, e) in rd.failed_reads {
            if let Some(r) = self.state.reads.remove(&id) {
                Metrics::inc(&self.metrics.counters.reads_failed, 1);
                (r.f)(Err(NodeError::Read(e)));
            }
        }
        self.serve_reads();
        Ok(())
    }

    fn on_soft_state(&mut self, role: Role, leader: Option<NodeId>) {
        let was_leader = self.state.role == Role::Leader;
        self.state.role = role;
        self.state.leader = leader;
        if was_leader && role != Role::Leader {
            self.fail_leader_requests(&NodeError::LeadershipLost);
        }
        if let Some((to, _, _)) = &self.state.transfer {
            if leader == Some(*to) {
                if let Some((_, _, reply)) = self.state.transfer.take() {
                    let _ = reply.send(Ok(()));
                }
            }
        }
        tracing::debug!(id = %self.config.id(), ?role, ?leader, "role changed");
    }

    fn fail_leader_requests(&mut self, e: &NodeError) {
        let failed = self.state.proposals.len() as u64;
        for (_, p) in std::mem::take(&mut self.state.proposals) {
            let _ = p.reply.send(Err(e.clone()));
        }
        Metrics::inc(&self.metrics.counters.proposals_failed, failed);
        for (_, reply) in self.state.conf_waiters.drain(..) {
            let _ = reply.send(Err(e.clone()));
        }
    }

    fn send(&mut self, m: Message) {
        if let MessageBody::InstallSnapshot { .. } = &m.body {
            self.send_snapshot(m);
            return;
        }
        match codec::encode(&m) {
            Ok(payload) => {
                Metrics::inc(&self.metrics.counters.messages_sent, 1);
                // Loss is fine (Raft retransmits); unreachable peers are reported on the
                // next tick.
                let _ = self.transport.send(m.to, payload);
            }
            Err(e) => tracing::error!(to = %m.to, error = %e, "message cannot be encoded"),
        }
    }

    fn on_tick(&mut self, t: StdInstant) {
        let now = self.now();
        self.raw.tick(now);
        for id in self.transport.take_unreachable() {
            self.raw.report_unreachable(id);
        }
        let expired: Vec<ReadId> = self
            .state
            .reads
            .iter()
            .filter(|(_, r)| r.deadline <= t)
            .map(|(id, _)| *id)
            .collect();
        for id in expired {
            if let Some(r) = self.state.reads.remove(&id) {
                Metrics::inc(&self.metrics.counters.reads_failed, 1);
                (r.f)(Err(NodeError::Timeout));
            }
        }
        if self
            .state
            .transfer
            .as_ref()
            .is_some_and(|(_, d, _)| *d <= t)
        {
            if let Some((_, _, reply)) = self.state.transfer.take() {
                let _ = reply.send(Err(NodeError::Timeout));
            }
        }
    }

    fn on_incoming(&mut self, inc: Incoming) {
        self.state.turn.messages += 1;
        match inc {
            Incoming::Message { from, payload } => self.on_message(from, payload),
            Incoming::Snapshot(rx) => self.receive_snapshot(rx),
        }
    }

    fn on_message(&mut self, from: NodeId, payload: Bytes) {
        let me = self.config.id();
        let msg = match codec::decode_from(from, me, payload) {
            Ok(m) => m,
            Err(e) => {
                tracing::warn!(%from, error = %e, "undecodable message");
                Metrics::inc(&self.metrics.counters.messages_rejected, 1);
                return;
            }
        };
        if let MessageBody::AppendEntries { entries, .. } = &msg.body {
            if let Err(e) = storage::check_peer_entries(entries) {
                tracing::warn!(%from, error = %e, "append refused");
                Metrics::inc(&self.metrics.counters.messages_rejected, 1);
                return;
            }
        }
        // A snapshot's metadata is only believed together with its data (a stream).
        if let MessageBody::InstallSnapshot { .. } = msg.body {
            Metrics::inc(&self.metrics.counters.messages_rejected, 1);
            return;
        }
        Metrics::inc(&self.metrics.counters.messages_received, 1);
        let now = self.now();
        if let Err(e) = self.raw.step(msg, now) {
            tracing::warn!(%from, error = %e, "message refused by the core");
            Metrics::inc(&self.metrics.counters.messages_rejected, 1);
        }
    }

    pub(crate) fn stop(mut self, result: Result<(), FatalError>, abrupt: bool) {
        let error = match &result {
            Ok(()) => NodeError::Stopped,
            Err(e) => {
                tracing::error!(id = %self.config.id(), error = %e, "node stopped on a fatal error");
                *self
                    .shared
                    .fatal
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(e.clone());
                NodeError::Fatal(e.clone())
            }
        };
        self.fail_leader_requests(&error);
        for (_, r) in self.state.reads.drain() {
            (r.f)(Err(error.clone()));
        }
        for (_, r) in std::mem::take(&mut self.state.reads_waiting) {
            (r.f)(Err(error.clone()));
        }
        if let Some((_, _, reply)) = self.state.transfer.take() {
            let _ = reply.send(Err(error.clone()));
        }
        for reply in self.state.snapshot_waiters.drain(..) {
            let _ = reply.send(Err(error.clone()));
        }
        self.rx.close();
        while let Ok(req) = self.rx.try_recv() {
            requests::fail_request(req, &error);
        }
        self.transport.shutdown();
        if !abrupt && result.is_ok() {
            // Everything accepted becomes durable; the log reopens without repair.
            if let Err(e) = self.wal.flush() {
                tracing::error!(error = %e, "final wal flush failed");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Issue 12 item 2: the synchronous core ticks on the injected clock only. A follower
    /// whose clock stands still never times out however many turns it runs; moved on by the
    /// maximum election timeout, it campaigns, with no wall-clock timer involved.
    #[test]
    fn the_loop_ticks_on_the_injected_clock_only() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut runner = snapshots::tests::follower(dir.path());
        let clock = Arc::new(ManualClock::new(runner.epoch));
        runner.clock = Arc::clone(&clock) as Arc<dyn Clock>;
        let tick = runner.tick_interval();
        runner.next_tick = runner.epoch + tick;
        let election_ticks_max = runner.config.raft.election_ticks_max;
        for _ in 0..election_ticks_max * 4 {
            runner.handle(Input::Wake).expect("no fatal error");
            runner.after_inputs(clock.now()).expect("no fatal error");
        }
        assert_eq!(
            runner.raw.status().role,
            Role::Follower,
            "no tick without time"
        );
        assert_eq!(runner.now(), Instant(0));
        // The randomized election timeout lies below `election_ticks_max` ticks.
        for _ in 0..election_ticks_max {
            clock.advance(tick);
            runner.after_inputs(clock.now()).expect("no fatal error");
        }
        assert_ne!(
            runner.raw.status().role,
            Role::Follower,
            "campaigned on the clock"
        );
        let elapsed = u64::try_from(tick.as_nanos()).expect("fits") * election_ticks_max;
        assert_eq!(
            runner.now(),
            Instant(elapsed),
            "the core's time is the loop clock's"
        );
    }

    /// Issue 12 item 2: background jobs run where the executor says. On a queue run by
    /// hand, finishing a snapshot stops at the deletion of compacted segments, with the job
    /// queued and the snapshot not yet counted; once the job ran, the next turn counts it.
    #[test]
    fn snapshot_finish_waits_for_its_deletion_job_on_the_executor() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut runner = snapshots::tests::built(dir.path(), &[1]);
        let clock = Arc::new(ManualClock::new(runner.epoch));
        runner.clock = Arc::clone(&clock) as Arc<dyn Clock>;
        let tick = runner.tick_interval();
        runner.next_tick = runner.epoch + tick;
        let jobs = Arc::new(QueuedExecutor::default());
        runner.executor = Arc::clone(&jobs) as Arc<dyn Executor>;
        // A single voter elects itself and applies its first entry, the WAL made durable
        // between turns (flush commits on this thread).
        for _ in 0..runner.config.raft.election_ticks_max * 4 {
            if runner.applied > LogIndex(0) {
                break;
            }
            clock.advance(tick);
            runner.after_inputs(clock.now()).expect("no fatal error");
            runner.wal.flush().expect("flush");
        }
        assert!(
            runner.applied > LogIndex(0),
            "the leader applied its first entry"
        );
        assert_eq!(runner.take_snapshot().expect("snapshot"), None, "finishing");
        // The metadata, then the compaction marker, each durable on the next turn.
        for _ in 0..4 {
            runner.wal.flush().expect("flush");
            runner.after_inputs(clock.now()).expect("no fatal error");
        }
        let job = format!("ringraft-compact-{}", runner.config.id());
        assert_eq!(jobs.queued(), vec![job]);
        assert_eq!(
            runner.snapshot_index,
            LogIndex(0),
            "not counted before its deletion"
        );
        assert!(jobs.run_next());
        runner.after_inputs(clock.now()).expect("no fatal error");
        assert_eq!(
            runner.snapshot_index, runner.applied,
            "counted once deleted"
        );
        assert!(jobs.queued().is_empty());
    }
}
