//! One simulated node: the core, its disk, its clock, its state machine, and the runtime loop
//! that acts on each Ready.

use std::collections::BTreeMap;
use std::sync::Arc;

use ringraft::raft::{
    Config, Entry, EntryKind, InitialState, Instant, LogIndex, Message, MessageBody, NodeId,
    RawNode, ReadId, ReadMode, Ready, Role,
};

use super::client::{ReadKind, Reply, Request};
use super::clock::SimClock;
use super::disk::{PendingWrite, SimDisk, StoredSnapshot};
use super::kv::{digest, KvSnapshot, KvStore, PutCommand};
use crate::invariants::{AckedWrite, ConfigView, EntryRecord, LogMirror, Observation, RoleView};
use crate::rng::Rng;

/// What the simulator must do after a node acted.
#[derive(Default, Debug)]
pub struct NodeOutput {
    /// Messages to put on the network (with snapshot data for an InstallSnapshot).
    pub sends: Vec<(Message, Option<Arc<KvSnapshot>>)>,
    /// Disk writes to complete: `(ready number, true time)`.
    pub persists: Vec<(u64, u64)>,
    /// Answers to clients: `(client, seq, reply)`.
    pub replies: Vec<(u64, u64, Reply)>,
    /// Writes acknowledged in this step.
    pub acked: Vec<AckedWrite>,
    /// Facts for the invariants.
    pub observations: Vec<Observation>,
    /// Trace lines.
    pub trace: Vec<String>,
}

/// A client request waiting in the node for its entry to apply or its read to be confirmed.
#[derive(Clone, Copy, Debug)]
struct Waiting {
    client: u64,
    seq: u64,
    key: u64,
}

/// One node of the simulated cluster.
#[derive(Debug)]
pub struct SimNode {
    /// Node id.
    pub id: u64,
    /// The core; `None` while crashed.
    pub raw: Option<RawNode>,
    /// Times (re)started.
    pub incarnation: u64,
    /// Persisted and pending state.
    pub disk: SimDisk,
    /// The node's clock.
    pub clock: SimClock,
    /// False once removed from the cluster (then stopped for good).
    pub member: bool,
    /// True once the node appeared in an applied configuration (initial voters from the
    /// start); only an admitted node can be removed.
    pub admitted: bool,
    /// Mirror of the core's log (persisted or not).
    pub log: LogMirror,
    /// Role last reported.
    pub role: Role,
    /// Leader last reported.
    pub leader: Option<u64>,
    /// Local time of the next tick.
    pub next_tick_local: u64,
    /// True time until which the process is paused (takes no input).
    pub paused_until: u64,
    kv: KvStore,
    /// Messages waiting for the persistence of a Ready, by Ready number.
    held: BTreeMap<u64, Vec<Message>>,
    /// Snapshot data received with InstallSnapshot, by (index, term).
    incoming_snapshots: BTreeMap<(u64, u64), Arc<KvSnapshot>>,
    /// Proposed writes by log index.
    puts: BTreeMap<u64, Waiting>,
    /// Reads waiting for their read index, by read id.
    reads: BTreeMap<u64, Waiting>,
    /// Reads with a read index, waiting for the state machine to reach it.
    confirmed_reads: Vec<(u64, Waiting)>,
    snapshot_every: u64,
    disk_latency_nanos: (u64, u64),
}

/// Converts the core's role.
pub fn role_view(role: Role) -> RoleView {
    match role {
        Role::Leader => RoleView::Leader,
        Role::Candidate | Role::PreCandidate => RoleView::Candidate,
        Role::Follower => RoleView::Follower,
    }
}

/// The mirror record of an entry.
pub fn record(e: &Entry) -> EntryRecord {
    let kind = match e.kind {
        EntryKind::Normal => 0,
        EntryKind::Noop => 1,
        EntryKind::ConfChange => 2,
    };
    EntryRecord {
        term: e.term.0,
        digest: digest(kind, &e.data),
    }
}

impl SimNode {
    /// A node that has never run, with an empty disk.
    pub fn new(
        id: u64,
        clock: SimClock,
        snapshot_every: u64,
        disk_latency_nanos: (u64, u64),
    ) -> Self {
        SimNode {
            id,
            raw: None,
            incarnation: 0,
            disk: SimDisk::default(),
            clock,
            member: true,
            admitted: false,
            log: LogMirror::default(),
            role: Role::Follower,
            leader: None,
            next_tick_local: 0,
            paused_until: 0,
            kv: KvStore::new(),
            held: BTreeMap::new(),
            incoming_snapshots: BTreeMap::new(),
            puts: BTreeMap::new(),
            reads: BTreeMap::new(),
            confirmed_reads: Vec::new(),
            snapshot_every,
            disk_latency_nanos,
        }
    }

    /// True while running.
    pub fn is_alive(&self) -> bool {
        self.raw.is_some()
    }

    /// The core; panics if crashed (a simulator bug).
    pub fn raw(&mut self) -> &mut RawNode {
        self.raw
            .as_mut()
            .expect("simulator only drives running nodes")
    }

    /// The local clock reading at true time `now`.
    pub fn local_now(&self, now: u64) -> Instant {
        Instant(self.clock.local(now))
    }

    /// Starts (or restarts) the node from its durable state alone. `bootstrap` is the state of
    /// a node that never ran.
    pub fn start(&mut self, config: Config, bootstrap: InitialState, seed: u64, now: u64) {
        assert!(self.raw.is_none(), "node {} started twice", self.id);
        let d = &self.disk.durable;
        let fresh = d.hard_state.term.0 == 0 && d.snapshot.is_none() && d.entries.is_empty();
        let initial = if fresh {
            bootstrap
        } else {
            let snapshot = d
                .snapshot
                .as_ref()
                .map_or_else(|| bootstrap.snapshot.clone(), |s| s.meta.clone());
            let mut hard_state = d.hard_state;
            // A snapshot holds committed state only, so the commit index is at least its index.
            hard_state.commit = hard_state.commit.max(snapshot.index);
            InitialState {
                hard_state,
                applied: snapshot.index,
                snapshot,
                entries: d.entries.clone(),
            }
        };
        // The state machine is volatile: rebuilt from the durable snapshot, the core hands out
        // the committed entries after it again.
        self.kv = match &self.disk.durable.snapshot {
            Some(s) => KvStore::from_snapshot(&s.data),
            None => KvStore::new(),
        };
        self.log = LogMirror {
            snapshot_index: initial.snapshot.index.0,
            snapshot_term: initial.snapshot.term.0,
            entries: initial.entries.iter().map(record).collect(),
        };
        let raw = RawNode::new(config, initial, seed, self.local_now(now))
            .expect("the simulator builds valid configs and initial states");
        self.role = raw.status().role;
        self.leader = None;
        self.raw = Some(raw);
        self.incarnation += 1;
        self.next_tick_local = self.clock.local(now);
    }

    /// Crashes the node: everything volatile and every write not yet durable is lost.
    pub fn crash(&mut self) {
        self.raw = None;
        self.disk.crash();
        self.held.clear();
        self.incoming_snapshots.clear();
        self.puts.clear();
        self.reads.clear();
        self.confirmed_reads.clear();
        self.role = Role::Follower;
        self.leader = None;
        self.paused_until = 0;
    }

    /// The membership the node acts on, in ids.
    pub fn config_view(&self) -> ConfigView {
        match &self.raw {
            Some(raw) => {
                let m = raw.status().membership;
                ConfigView {
                    voters: m.voters.iter().map(|n| n.0).collect(),
                    voters_outgoing: m.voters_outgoing.iter().map(|n| n.0).collect(),
                }
            }
            None => ConfigView::default(),
        }
    }

    /// State machine applied index.
    pub fn applied(&self) -> u64 {
        self.kv.applied_index()
    }

    /// Receives a message (with snapshot data for an InstallSnapshot).
    pub fn receive(&mut self, msg: Message, snapshot: Option<Arc<KvSnapshot>>, now: u64) {
        if let (MessageBody::InstallSnapshot { meta, .. }, Some(data)) = (&msg.body, snapshot) {
            self.incoming_snapshots
                .insert((meta.index.0, meta.term.0), data);
        }
        let local = self.local_now(now);
        if let Err(e) = self.raw().step(msg, local) {
            panic!("node rejected a message the simulator delivered: {e:?}");
        }
    }

    /// Accepts a client request. Returns a reply when it is refused at once.
    pub fn request(
        &mut self,
        client: u64,
        seq: u64,
        req: Request,
        read_id: u64,
        now: u64,
    ) -> Option<Reply> {
        let local = self.local_now(now);
        let hint = self.leader;
        match req {
            Request::Put { key, value } => {
                let cmd = PutCommand {
                    client,
                    seq,
                    key,
                    value,
                };
                match self.raw().propose(cmd.encode()) {
                    Ok(index) => {
                        self.puts.insert(index.0, Waiting { client, seq, key });
                        None
                    }
                    Err(_) => Some(Reply::Refused { leader_hint: hint }),
                }
            }
            Request::Get { key, kind } => {
                let mode = match kind {
                    ReadKind::Lease => ReadMode::Lease,
                    ReadKind::ReadIndex => ReadMode::ReadIndex,
                };
                match self.raw().read_index(ReadId(read_id), mode, local) {
                    Ok(()) => {
                        self.reads.insert(read_id, Waiting { client, seq, key });
                        None
                    }
                    Err(_) => Some(Reply::Refused { leader_hint: hint }),
                }
            }
        }
    }

    /// A disk write completed: make it durable, tell the core and release the messages that
    /// waited for it. Nothing happens if the write was lost in a crash in between.
    pub fn persisted(&mut self, number: u64, now: u64, out: &mut NodeOutput) {
        let Some(shrunk) = self.disk.complete(number) else {
            return;
        };
        if shrunk {
            out.observations
                .push(Observation::DurableShrunkOrConfigChanged);
        }
        let local = self.local_now(now);
        self.raw().on_persisted(number, local);
        let later = self.held.split_off(&(number + 1));
        for (_, msgs) in std::mem::replace(&mut self.held, later) {
            out.sends.extend(msgs.into_iter().map(|m| (m, None)));
        }
    }

    /// Acts on every Ready the core has.
    pub fn drain_ready(&mut self, rng: &mut Rng, now: u64, out: &mut NodeOutput) {
        while self.raw.as_ref().is_some_and(|r| r.has_ready()) {
            let rd = self.raw().ready();
            self.handle_ready(rd, rng, now, out);
        }
    }

    fn handle_ready(&mut self, rd: Ready, rng: &mut Rng, now: u64, out: &mut NodeOutput) {
        if let Some(ss) = rd.soft_state {
            self.role = ss.role;
            self.leader = ss.leader.map(|n| n.0);
            let term = self.raw().status().term.0;
            out.trace.push(format!(
                "n{} role {:?} term {term} leader {:?}",
                self.id, ss.role, self.leader
            ));
            if ss.role == Role::Leader {
                out.observations.push(Observation::BecameLeader {
                    node: self.id,
                    term,
                });
            }
        }
        for m in rd.messages {
            let data = self.snapshot_data_for(&m);
            out.sends.push((m, data));
        }
        let snapshot = rd.snapshot.map(|meta| {
            let data = self
                .incoming_snapshots
                .remove(&(meta.index.0, meta.term.0))
                .expect("a snapshot to install arrived with its data");
            self.kv = KvStore::from_snapshot(&data);
            let over_held_suffix = self.log.term_at(meta.index.0) == Some(meta.term.0)
                && self.log.last_index() > meta.index.0
                && self.disk.durable.mirror.last_index() < self.log.last_index();
            self.log.install_snapshot(meta.index.0, meta.term.0);
            out.observations.push(Observation::SnapshotInstalled {
                node: self.id,
                index: meta.index.0,
                over_held_suffix,
            });
            out.trace.push(format!(
                "n{} installs snapshot at {}/{}",
                self.id, meta.index.0, meta.term.0
            ));
            self.incoming_snapshots
                .retain(|(i, _), _| *i > meta.index.0);
            StoredSnapshot { meta, data }
        });
        if let Some(first) = rd.entries.first() {
            let records: Vec<EntryRecord> = rd.entries.iter().map(record).collect();
            let dropped = self.log.append(first.index.0, &records);
            out.observations.push(Observation::Appended {
                node: self.id,
                first_index: first.index.0,
                count: records.len() as u64,
            });
            if dropped > 0 {
                out.trace.push(format!(
                    "n{} truncates {dropped} entries from {}",
                    self.id, first.index.0
                ));
            }
        }
        let must_persist = rd.hard_state.is_some() || !rd.entries.is_empty() || snapshot.is_some();
        let latency = rng.range(self.disk_latency_nanos.0, self.disk_latency_nanos.1);
        let at = self.disk.submit(PendingWrite {
            number: rd.number,
            hard_state: rd.hard_state,
            entries: rd.entries.to_vec(),
            snapshot,
            complete_at: now + if must_persist { latency } else { 0 },
        });
        out.persists.push((rd.number, at));
        if !rd.persisted_messages.is_empty() {
            self.held.insert(rd.number, rd.persisted_messages);
        }
        self.apply(&rd.committed_entries, out);
        for rs in rd.read_states {
            if let Some(w) = self.reads.remove(&rs.id.0) {
                self.confirmed_reads.push((rs.index.0, w));
            }
        }
        for (id, _) in rd.failed_reads {
            if let Some(w) = self.reads.remove(&id.0) {
                out.replies.push((
                    w.client,
                    w.seq,
                    Reply::Refused {
                        leader_hint: self.leader,
                    },
                ));
            }
        }
        self.serve_reads(out);
        self.maybe_snapshot(out);
    }

    fn snapshot_data_for(&self, m: &Message) -> Option<Arc<KvSnapshot>> {
        let MessageBody::InstallSnapshot { meta, .. } = &m.body else {
            return None;
        };
        let stored = self
            .disk
            .pending
            .iter()
            .rev()
            .filter_map(|w| w.snapshot.as_ref())
            .chain(self.disk.durable.snapshot.as_ref())
            .find(|s| (s.meta.index, s.meta.term) == (meta.index, meta.term))
            .expect("InstallSnapshot names a snapshot this node stored or is storing");
        Some(stored.data.clone())
    }

    fn apply(&mut self, entries: &[Entry], out: &mut NodeOutput) {
        let Some(last) = entries.last() else {
            return;
        };
        for e in entries {
            if e.index.0 <= self.kv.applied_index() {
                continue; // covered by an installed snapshot
            }
            let rec = record(e);
            let cmd = match e.kind {
                EntryKind::Normal => self.kv.apply(e.index.0, e.term.0, &e.data),
                _ => self.kv.apply(e.index.0, e.term.0, &[]),
            };
            out.observations.push(Observation::Applied {
                node: self.id,
                index: e.index.0,
                term: e.term.0,
                digest: rec.digest,
            });
            if e.kind == EntryKind::ConfChange {
                out.observations
                    .push(Observation::DurableShrunkOrConfigChanged);
            }
            if let Some(w) = self.puts.remove(&e.index.0) {
                if let Some(cmd) = cmd.filter(|c| c.client == w.client && c.seq == w.seq) {
                    out.replies.push((w.client, w.seq, Reply::PutOk));
                    out.acked.push(AckedWrite {
                        index: e.index.0,
                        term: e.term.0,
                        digest: rec.digest,
                        key: cmd.key,
                        value: cmd.value,
                        // Filled in by the simulator, which knows the configurations.
                        configs: Vec::new(),
                    });
                }
            }
        }
        let raw = self.raw.as_mut().expect("applying on a running node");
        if let Err(err) = raw.on_applied(LogIndex(last.index.0.max(self.kv.applied_index()))) {
            panic!("on_applied refused: {err:?}");
        }
    }

    fn serve_reads(&mut self, out: &mut NodeOutput) {
        let applied = self.kv.applied_index();
        let kv = &self.kv;
        self.confirmed_reads.retain(|(index, w)| {
            if *index > applied {
                return true;
            }
            out.replies
                .push((w.client, w.seq, Reply::GetOk(kv.get(w.key))));
            false
        });
    }

    fn maybe_snapshot(&mut self, out: &mut NodeOutput) {
        let applied = self.kv.applied_index();
        if applied < self.log.snapshot_index + self.snapshot_every {
            return;
        }
        let data = self.kv.snapshot();
        let meta = match self.raw().on_snapshot_created(LogIndex(applied)) {
            Ok(meta) => meta,
            Err(e) => panic!("on_snapshot_created({applied}) refused: {e:?}"),
        };
        self.log.compact(meta.index.0, meta.term.0);
        out.trace.push(format!(
            "n{} snapshot at {}/{}",
            self.id, meta.index.0, meta.term.0
        ));
        // Creating a snapshot writes and syncs a file before the log is compacted.
        let shrunk = self
            .disk
            .durable
            .store_snapshot(StoredSnapshot { meta, data });
        assert!(
            !shrunk,
            "a snapshot of the applied state matches the local log"
        );
    }

    /// Node id as the core spells it.
    pub fn node_id(&self) -> NodeId {
        NodeId(self.id)
    }
}
