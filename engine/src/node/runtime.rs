//! The node thread: one event loop drives the core with the WAL, the transport and the
//! state machine.
//!
//! One loop turn: wait for anything (a request, a message, a WAL completion, a tick, a
//! snapshot event), take everything else that is already queued (up to the batch limits),
//! then turn every Ready into work. Everything proposed in a turn becomes one WAL append and
//! one AppendEntries per follower.
//!
//! Ordering per Ready (see `crate::raft::Ready`): `messages` leave at once, so a leader's
//! AppendEntries are on the wire while its own WAL write runs; the WAL ticket is queued in
//! `inflight`; only when it completes do `persisted_messages` leave (votes, append acks: a
//! follower acknowledges after its fdatasync) and does the core hear `on_persisted` (a leader
//! counts itself toward commit only then). Tickets complete in submission order, so the
//! queue is acknowledged front to back.

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

use crate::node::handle::{
    FollowerStatus, NodeStatus, Proposed, ReadFn, Reply, Request, Shared, STOP_ABRUPT, STOP_NONE,
};
use crate::node::metrics::Metrics;
use crate::node::storage::{self, TAG_COMMAND, TAG_PEER_ADDR};
use crate::node::{snapshot, Command, NodeConfig, NodeError, StateMachine};
use crate::raft::{
    Entry, EntryKind, Instant, LogIndex, Message, MessageBody, NodeId, ProposeError, RawNode,
    ReadId, Ready, Role, SnapshotMeta,
};
use crate::transport::codec;
use crate::transport::{Inbox, Incoming, SnapshotReceiver, Transport};

/// Messages taken from the inbox per loop turn before the Readys are processed, so that a
/// flood of traffic cannot starve proposals and WAL completions.
const INBOX_BATCH_MAX: usize = 4096;
/// Snapshot streams (sent or received) reporting back to the loop at once.
pub(crate) const EVENTS_MAX: usize = 64;

/// Completions of work done off the loop (snapshot streams on their own threads).
pub(crate) enum Event {
    SnapshotSent {
        to: NodeId,
        ok: bool,
    },
    SnapshotReceived {
        from: NodeId,
        header: Bytes,
        path: Result<PathBuf, String>,
    },
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
    pub(crate) wal: Wal,
    pub(crate) transport: Box<dyn Transport>,
    pub(crate) inbox: Inbox,
    pub(crate) rx: mpsc::Receiver<Request<S>>,
    pub(crate) shared: Arc<Shared>,
    pub(crate) metrics: Arc<Metrics>,
    pub(crate) config: NodeConfig,
    pub(crate) clock: StdInstant,
    pub(crate) snap_dir: PathBuf,
    pub(crate) events_tx: mpsc::Sender<Event>,
    pub(crate) events_rx: mpsc::Receiver<Event>,
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
    /// A verified snapshot file received with the InstallSnapshot just stepped.
    received: Option<(LogIndex, PathBuf)>,
    entries_since_snapshot: u64,
    bytes_since_snapshot: u64,
    requests_closed: bool,
    inbox_closed: bool,
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
            requests_closed: false,
            inbox_closed: false,
        }
    }
}

/// A fatal error: the node stops (a failed fsync is never retried).
#[derive(Debug)]
struct Fatal(String);

impl<E: std::fmt::Display> From<E> for Fatal {
    fn from(e: E) -> Self {
        Fatal(e.to_string())
    }
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
    fn now(&self) -> Instant {
        Instant(u64::try_from(self.clock.elapsed().as_nanos()).unwrap_or(u64::MAX))
    }

    /// Runs until shutdown or a fatal error; then releases everything.
    pub(crate) async fn run(mut self) {
        let tick = Duration::from_nanos(self.config.raft.tick_nanos);
        let mut next_tick = tokio::time::Instant::now() + tick;
        let result = loop {
            if self.shared.stop.load(Ordering::Acquire) != STOP_NONE {
                break Ok(());
            }
            if let Err(e) = self.turn(&mut next_tick, tick).await {
                break Err(e);
            }
        };
        let abrupt = self.shared.stop.load(Ordering::Acquire) == STOP_ABRUPT;
        self.stop(result, abrupt);
    }

    async fn turn(
        &mut self,
        next_tick: &mut tokio::time::Instant,
        tick: Duration,
    ) -> Result<(), Fatal> {
        let deadline = *next_tick;
        let st = &mut self.state;
        tokio::select! {
            biased;
            () = self.shared.wake.notified() => {}
            (i, r) = next_ticket(&mut st.inflight) => st.inflight[i].done = Some(r),
            req = self.rx.recv(), if !st.requests_closed => match req {
                Some(req) => self.on_request(req)?,
                None => self.state.requests_closed = true,
            },
            inc = self.inbox.recv(), if !st.inbox_closed => match inc {
                Some(inc) => self.on_incoming(inc),
                None => self.state.inbox_closed = true,
            },
            ev = self.events_rx.recv() => if let Some(ev) = ev { self.on_event(ev)? },
            () = tokio::time::sleep_until(deadline) => {}
        }
        self.drain()?;
        // Ticks are checked on every turn, not only when the timer branch wins: a steady
        // stream of requests or messages must not starve heartbeats and elections.
        let now = tokio::time::Instant::now();
        if now >= *next_tick {
            self.on_tick();
            // After a stall, resume the cadence from now rather than firing a burst.
            *next_tick = (*next_tick + tick).max(now);
        }
        self.process_readies()
    }

    /// Takes whatever else is queued, without waiting.
    fn drain(&mut self) -> Result<(), Fatal> {
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

    fn process_readies(&mut self) -> Result<(), Fatal> {
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
            return Err(Fatal(format!("wal: {e}")));
        }
        Ok(())
    }

    /// Acknowledges completed Readys, front to back.
    fn reap(&mut self) -> Result<(), Fatal> {
        while let Some(front) = self.state.inflight.front_mut() {
            if front.done.is_none() {
                if let Some(t) = front.ticket.as_mut() {
                    front.done = poll_now(t);
                }
            }
            match (&front.ticket, &front.done) {
                (Some(_), None) => break,
                (_, Some(Err(e))) => return Err(Fatal(format!("wal write failed: {e}"))),
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
        }
        Ok(())
    }

    fn handle_ready(&mut self, rd: Ready) -> Result<(), Fatal> {
        Metrics::inc(&self.metrics.counters.readies, 1);
        if let Some(ss) = rd.soft_state {
            self.on_soft_state(ss.role, ss.leader);
        }
        for m in rd.messages {
            self.send(m);
        }
        let mut ticket = None;
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
            let batch = rd.entries.iter().map(storage::entry_to_wal).collect();
            ticket = Some(self.wal.append(batch)?);
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

    /// Applies committed entries: commands in one batch to the state machine, address
    /// announcements to the transport, membership changes through the core.
    fn apply(&mut self, entries: &[Entry]) -> Result<(), Fatal> {
        let last = entries
            .last()
            .map(|e| e.index)
            .expect("called with entries");
        let mut commands = Vec::with_capacity(entries.len());
        let mut conf_changed = false;
        for e in entries {
            match e.kind {
                EntryKind::Normal => match e.data.first() {
                    Some(&TAG_COMMAND) => commands.push(Command {
                        index: e.index,
                        term: e.term,
                        data: e.data.slice(1..),
                    }),
                    Some(&TAG_PEER_ADDR) => {
                        if let Some((id, addr)) = storage::parse_peer_addr(&e.data[1..]) {
                            self.learn_peer(id, addr);
                        }
                    }
                    _ => return Err(Fatal(format!("entry {} has an unknown tag", e.index))),
                },
                EntryKind::ConfChange => conf_changed = true,
                EntryKind::Noop => {}
            }
        }
        if !commands.is_empty() {
            let t0 = StdInstant::now();
            let responses = self.sm.apply(&commands);
            self.metrics.record_apply(t0.elapsed());
            assert_eq!(
                responses.len(),
                commands.len(),
                "StateMachine::apply must return one response per command"
            );
            Metrics::inc(
                &self.metrics.counters.entries_applied,
                commands.len() as u64,
            );
            self.state.entries_since_snapshot += commands.len() as u64;
            self.state.bytes_since_snapshot +=
                commands.iter().map(|c| c.data.len() as u64).sum::<u64>();
            self.complete_proposals(&commands, responses);
        }
        let members_before = conf_changed.then(|| self.raw.membership().members());
        self.raw.on_applied(last)?;
        self.applied = last;
        self.fail_overtaken_proposals();
        if let Some(before) = members_before {
            self.after_conf_change(&before);
        }
        self.complete_conf_waiters();
        self.maybe_snapshot()
    }

    fn complete_proposals(&mut self, commands: &[Command], responses: Vec<Bytes>) {
        let mut ok = 0;
        for (c, response) in commands.iter().zip(responses) {
            if let Some(p) = self.state.proposals.remove(&c.index) {
                if p.term == c.term {
                    self.metrics.record_propose(p.at.elapsed());
                    ok += 1;
                    let _ = p.reply.send(Ok(Proposed {
                        index: c.index,
                        response,
                    }));
                } else {
                    let _ = p.reply.send(Err(NodeError::LeadershipLost));
                }
            }
        }
        Metrics::inc(&self.metrics.counters.proposals_applied, ok);
    }

    /// Proposals whose index was applied with another entry were overwritten.
    fn fail_overtaken_proposals(&mut self) {
        while let Some(entry) = self.state.proposals.first_entry() {
            if *entry.key() > self.applied {
                break;
            }
            let p = entry.remove();
            Metrics::inc(&self.metrics.counters.proposals_failed, 1);
            let _ = p.reply.send(Err(NodeError::LeadershipLost));
        }
    }

    fn complete_conf_waiters(&mut self) {
        if self.state.conf_waiters.is_empty() {
            return;
        }
        let joint = self.raw.membership().is_joint();
        let applied = self.applied;
        let (done, keep): (Vec<_>, Vec<_>) = std::mem::take(&mut self.state.conf_waiters)
            .into_iter()
            .partition(|(i, _)| *i <= applied && !joint);
        self.state.conf_waiters = keep;
        for (i, reply) in done {
            let _ = reply.send(Ok(i));
        }
    }

    fn learn_peer(&mut self, id: NodeId, addr: SocketAddr) {
        if id == self.config.id() {
            return;
        }
        self.peers.insert(id, addr);
        if let Err(e) = self.transport.add_peer(id, addr) {
            tracing::warn!(%id, %addr, error = %e, "cannot add peer");
        }
    }

    /// Disconnects nodes that left the membership.
    fn after_conf_change(&mut self, before: &std::collections::BTreeSet<NodeId>) {
        let after = self.raw.membership().members();
        for gone in before.difference(&after) {
            if *gone != self.config.id() {
                self.transport.remove_peer(*gone);
                self.peers.remove(gone);
            }
        }
    }

    fn serve_reads(&mut self) {
        while let Some(entry) = self.state.reads_waiting.first_entry() {
            if entry.key().0 > self.applied {
                break;
            }
            let r = entry.remove();
            Metrics::inc(&self.metrics.counters.reads_served, 1);
            (r.f)(Ok((&self.sm, self.applied)));
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

    fn on_tick(&mut self) {
        let now = self.now();
        self.raw.tick(now);
        for id in self.transport.take_unreachable() {
            self.raw.report_unreachable(id);
        }
        let t = StdInstant::now();
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

    fn on_request(&mut self, req: Request<S>) -> Result<(), Fatal> {
        match req {
            Request::Propose {
                data,
                reply,
                permit,
                at,
            } => self.on_propose(&data, reply, permit, at),
            Request::Read { mode, f } => {
                let id = ReadId(self.state.next_read);
                self.state.next_read += 1;
                let now = self.now();
                match self.raw.read_index(id, mode, now) {
                    Ok(()) => {
                        let deadline = StdInstant::now() + self.config.read_timeout;
                        self.state.reads.insert(id, PendingRead { f, deadline });
                    }
                    Err(e) => f(Err(NodeError::Read(e))),
                }
            }
            Request::ConfChange {
                change,
                announce,
                reply,
            } => self.on_conf_change(&change, announce, reply),
            Request::Transfer { to, reply } => {
                let now = self.now();
                match self.raw.transfer_leadership(to, now) {
                    Ok(()) => {
                        // The core abandons a transfer after an election timeout.
                        let ticks = self.config.raft.election_ticks_max * 2;
                        let wait = Duration::from_nanos(self.config.raft.tick_nanos * ticks);
                        self.state.transfer = Some((to, StdInstant::now() + wait, reply));
                    }
                    Err(e) => {
                        let _ = reply.send(Err(e.into()));
                    }
                }
            }
            Request::Snapshot { reply } => {
                let r = self
                    .take_snapshot()
                    .map_err(|Fatal(e)| NodeError::Snapshot(e));
                let _ = reply.send(r);
            }
            Request::Status { reply } => {
                let _ = reply.send(Ok(self.status()));
            }
        }
        Ok(())
    }

    fn on_propose(
        &mut self,
        data: &[u8],
        reply: Reply<Proposed>,
        permit: OwnedSemaphorePermit,
        at: StdInstant,
    ) {
        // The core decides (its role may have changed since the last Ready was handled).
        match self.raw.propose(storage::command_data(TAG_COMMAND, data)) {
            Ok(index) => {
                // The entry's term is the current term (no step between the two calls).
                let term = self.raw.term();
                self.state.proposals.insert(
                    index,
                    PendingProposal {
                        term,
                        reply,
                        _permit: permit,
                        at,
                    },
                );
            }
            Err(e) => {
                Metrics::inc(&self.metrics.counters.proposals_failed, 1);
                let _ = reply.send(Err(propose_error(e)));
            }
        }
    }

    fn on_conf_change(
        &mut self,
        change: &crate::raft::ConfChange,
        announce: Option<(NodeId, SocketAddr)>,
        reply: Reply<LogIndex>,
    ) {
        // The address is committed before the change, so that every node (including a
        // future leader) can reach the new member once the change applies.
        if let Some((id, addr)) = announce {
            if let Err(e) = self.raw.propose(storage::peer_addr_data(id, addr)) {
                let _ = reply.send(Err(propose_error(e)));
                return;
            }
        }
        match self.raw.propose_conf_change(change) {
            Ok(index) => self.state.conf_waiters.push((index, reply)),
            Err(e) => {
                let _ = reply.send(Err(propose_error(e)));
            }
        }
    }

    fn status(&self) -> NodeStatus {
        let st = self.raw.status();
        let followers = st
            .progress
            .iter()
            .filter(|(id, _)| **id != st.id)
            .map(|(id, p)| {
                let f = FollowerStatus {
                    match_index: p.match_index,
                    next: p.next,
                    state: p.state,
                    lag: st.last_index.0.saturating_sub(p.match_index.0),
                };
                (*id, f)
            })
            .collect();
        NodeStatus {
            id: st.id,
            role: st.role,
            term: st.term,
            leader: st.leader,
            commit: st.commit,
            applied: self.applied,
            durable: st.persisted,
            last_index: st.last_index,
            snapshot_index: self.snapshot_index,
            membership: st.membership,
            followers,
            durability: self.config.durability,
        }
    }

    fn on_incoming(&mut self, inc: Incoming) {
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

    fn on_event(&mut self, ev: Event) -> Result<(), Fatal> {
        match ev {
            Event::SnapshotSent { to, ok } => {
                self.state.sending.remove(&to);
                if ok {
                    Metrics::inc(&self.metrics.counters.snapshots_sent, 1);
                }
                self.raw.report_snapshot(to, ok);
            }
            Event::SnapshotReceived { from, header, path } => {
                self.state.receiving.remove(&from);
                match path {
                    Ok(path) => self.step_snapshot(from, &header, path),
                    Err(e) => tracing::warn!(%from, error = %e, "snapshot stream failed"),
                }
            }
        }
        Ok(())
    }

    /// Steps an InstallSnapshot whose data arrived complete and verified.
    fn step_snapshot(&mut self, from: NodeId, header: &Bytes, path: PathBuf) {
        let me = self.config.id();
        let verified = codec::decode(header.clone())
            .ok()
            .and_then(|m| match &m.body {
                MessageBody::InstallSnapshot { meta, .. } if m.from == from && m.to == me => {
                    let (h, _) = snapshot::open(&path).ok()?;
                    (h.meta == *meta).then_some(m)
                }
                _ => None,
            });
        let Some(msg) = verified else {
            Metrics::inc(&self.metrics.counters.messages_rejected, 1);
            let _ = std::fs::remove_file(&path);
            return;
        };
        if let MessageBody::InstallSnapshot { meta, .. } = &msg.body {
            self.state.received = Some((meta.index, path));
        }
        let now = self.now();
        if let Err(e) = self.raw.step(msg, now) {
            tracing::warn!(%from, error = %e, "snapshot refused by the core");
        }
    }

    fn stop(mut self, result: Result<(), Fatal>, abrupt: bool) {
        let error = match &result {
            Ok(()) => NodeError::Stopped,
            Err(Fatal(e)) => {
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
        self.rx.close();
        while let Ok(req) = self.rx.try_recv() {
            fail_request(req, &error);
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

fn propose_error(e: ProposeError) -> NodeError {
    match e {
        ProposeError::NotLeader { leader } => NodeError::NotLeader { leader },
        ProposeError::ConfChange(e) => NodeError::ConfChange(e),
        e => NodeError::Propose(e),
    }
}

fn fail_request<S>(req: Request<S>, e: &NodeError) {
    match req {
        Request::Propose { reply, .. } => {
            let _ = reply.send(Err(e.clone()));
        }
        Request::Read { f, .. } => f(Err(e.clone())),
        Request::ConfChange { reply, .. } | Request::Snapshot { reply } => {
            let _ = reply.send(Err(e.clone()));
        }
        Request::Transfer { reply, .. } => {
            let _ = reply.send(Err(e.clone()));
        }
        Request::Status { reply } => {
            let _ = reply.send(Err(e.clone()));
        }
    }
}

/// Snapshots: taking them, streaming them to followers, installing received ones.
impl<S: StateMachine> Runner<S> {
    fn maybe_snapshot(&mut self) -> Result<(), Fatal> {
        let entries = self.state.entries_since_snapshot;
        let bytes = self.state.bytes_since_snapshot;
        let (te, tb) = (
            self.config.snapshot_entries_threshold,
            self.config.snapshot_bytes_threshold,
        );
        if entries < te && bytes < tb {
            return Ok(());
        }
        // The core keeps the entries near followers still need (log_retain_entries_max), so
        // a threshold snapshot does not push healthy followers onto snapshots.
        self.take_snapshot().map(|_| ())
    }

    /// Writes a snapshot at the applied index, then tells the core, stores the metadata in
    /// the WAL, and compacts the WAL prefix once that metadata is durable.
    fn take_snapshot(&mut self) -> Result<LogIndex, Fatal> {
        let index = self.applied;
        if index <= self.snapshot_index {
            return Ok(self.snapshot_index);
        }
        let term = self
            .raw
            .term_at(index)
            .ok_or_else(|| Fatal(format!("no term for applied index {index}")))?;
        let meta = SnapshotMeta {
            index,
            term,
            membership: self.raw.membership().clone(),
        };
        let sm = &self.sm;
        let path = snapshot::write(&self.snap_dir, &meta, &self.peers, |w| sm.snapshot(w))?;
        let core_meta = self.raw.on_snapshot_created(index)?;
        assert_eq!(
            core_meta, meta,
            "the core's snapshot metadata matches the file's"
        );
        self.wal
            .set_snapshot_meta(storage::meta_to_wal(&meta))?
            .wait()?;
        self.wal.compact_prefix(index.0)?;
        snapshot::prune(&self.snap_dir, index)?;
        tracing::debug!(id = %self.config.id(), %index, ?path, "snapshot taken");
        self.snapshot_index = index;
        self.state.entries_since_snapshot = 0;
        self.state.bytes_since_snapshot = 0;
        Metrics::inc(&self.metrics.counters.snapshots_taken, 1);
        Ok(index)
    }

    /// Streams the snapshot file to `m.to` on a thread of its own; the outcome comes back as
    /// [`Event::SnapshotSent`].
    fn send_snapshot(&mut self, m: Message) {
        let MessageBody::InstallSnapshot { meta, .. } = &m.body else {
            unreachable!("called for InstallSnapshot only");
        };
        let to = m.to;
        if !self.state.sending.insert(to) {
            return;
        }
        let path = self.snap_dir.join(snapshot::file_name(meta.index));
        let file = match std::fs::File::open(&path) {
            Ok(f) => f,
            Err(e) => {
                tracing::error!(%to, ?path, error = %e, "snapshot file missing");
                self.state.sending.remove(&to);
                self.raw.report_snapshot(to, false);
                return;
            }
        };
        let header = match codec::encode(&m) {
            Ok(h) => h,
            Err(e) => {
                tracing::error!(%to, error = %e, "snapshot header cannot be encoded");
                self.state.sending.remove(&to);
                self.raw.report_snapshot(to, false);
                return;
            }
        };
        let sender = match self.transport.start_snapshot(to, header) {
            Ok(s) => s,
            Err(e) => {
                tracing::debug!(%to, error = %e, "cannot open a snapshot stream");
                self.state.sending.remove(&to);
                self.raw.report_snapshot(to, false);
                return;
            }
        };
        let events = self.events_tx.clone();
        let chunk = self.config.snapshot_chunk_bytes;
        let spawned = std::thread::Builder::new()
            .name(format!("ringraft-snap-send-{to}"))
            .spawn(move || {
                let ok = crate::node::block_on(stream_file(file, sender, chunk)).is_ok();
                let _ = events.blocking_send(Event::SnapshotSent { to, ok });
            });
        if spawned.is_err() {
            self.state.sending.remove(&to);
            self.raw.report_snapshot(to, false);
        }
    }

    /// Receives a snapshot stream into a file on a thread of its own; the verified file
    /// comes back as [`Event::SnapshotReceived`].
    fn receive_snapshot(&mut self, mut rx: SnapshotReceiver) {
        let from = rx.from();
        if !self.state.receiving.insert(from) {
            return; // dropping the receiver aborts the duplicate stream
        }
        let path = self
            .snap_dir
            .join(format!("recv-{from}-{}.recv", rx.stream_id()));
        let events = self.events_tx.clone();
        let spawned = std::thread::Builder::new()
            .name(format!("ringraft-snap-recv-{from}"))
            .spawn(move || {
                let header = rx.header().clone();
                let r = crate::node::block_on(receive_file(&mut rx, &path));
                let path = match r {
                    Ok(()) => Ok(path),
                    Err(e) => {
                        let _ = std::fs::remove_file(&path);
                        Err(e)
                    }
                };
                let _ = events.blocking_send(Event::SnapshotReceived { from, header, path });
            });
        if spawned.is_err() {
            self.state.receiving.remove(&from);
        }
    }

    /// Installs the snapshot the core accepted: restore the state machine, keep the file,
    /// store the metadata, and replace the stored log (keeping entries after the snapshot
    /// only if the log holds the snapshot's last entry with its term).
    fn install_snapshot(&mut self, meta: &SnapshotMeta) -> Result<Ticket, Fatal> {
        let (index, path) = self
            .state
            .received
            .take()
            .expect("invariant: the core installs only snapshots stepped with their data");
        assert_eq!(
            index, meta.index,
            "the installed snapshot is the one received"
        );
        let (header, mut data) = snapshot::open(&path)?;
        self.sm.restore(&mut data)?;
        drop(data);
        let final_path = self.snap_dir.join(snapshot::file_name(index));
        std::fs::rename(&path, &final_path)?;
        snapshot::sync_dir(&self.snap_dir)?;
        for (id, addr) in header.peers {
            self.learn_peer(id, addr);
        }
        let ticket = self.wal.set_snapshot_meta(storage::meta_to_wal(meta))?;
        self.wal.flush()?;
        let keep =
            self.wal.last_index() >= index.0 && self.wal.term(index.0).ok() == Some(meta.term.0);
        if !keep {
            let first = self.wal.first_index();
            if self.wal.last_index() >= first {
                self.wal.truncate_suffix(first)?;
            }
            self.wal_next = index.0 + 1;
        }
        self.wal.compact_prefix(index.0)?;
        self.wal_next = self.wal_next.max(index.0 + 1);
        snapshot::prune(&self.snap_dir, index)?;
        self.applied = index;
        self.snapshot_index = index;
        self.state.entries_since_snapshot = 0;
        self.state.bytes_since_snapshot = 0;
        self.fail_overtaken_proposals();
        self.serve_reads();
        Metrics::inc(&self.metrics.counters.snapshots_installed, 1);
        tracing::debug!(id = %self.config.id(), %index, "snapshot installed");
        Ok(ticket)
    }
}

async fn stream_file(
    mut file: std::fs::File,
    mut sender: crate::transport::SnapshotSender,
    chunk: usize,
) -> Result<(), String> {
    use std::io::Read;
    loop {
        let mut buf = vec![0u8; chunk];
        let n = file.read(&mut buf).map_err(|e| e.to_string())?;
        if n == 0 {
            break;
        }
        buf.truncate(n);
        sender
            .send_chunk(Bytes::from(buf))
            .await
            .map_err(|e| e.to_string())?;
    }
    sender.finish().await.map_err(|e| e.to_string())
}

async fn receive_file(rx: &mut SnapshotReceiver, path: &std::path::Path) -> Result<(), String> {
    use std::io::Write;
    let file = std::fs::File::create(path).map_err(|e| e.to_string())?;
    let mut w = std::io::BufWriter::new(file);
    while let Some(chunk) = rx.next_chunk().await.map_err(|e| e.to_string())? {
        w.write_all(&chunk).map_err(|e| e.to_string())?;
    }
    let file = w.into_inner().map_err(|e| e.to_string())?;
    file.sync_data().map_err(|e| e.to_string())?;
    snapshot::open(path).map_err(|e| e.to_string())?;
    Ok(())
}
