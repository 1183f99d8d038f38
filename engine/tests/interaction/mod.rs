//! The interaction environment: a small in-memory cluster driven by text commands, printing
//! what each core emits (in the manner of etcd's rafttest interaction env).

#![allow(dead_code)]

mod format;

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::fmt::Write as _;

use bytes::Bytes;
use ringraft::raft::{
    ConfChange, ConfChangeStep, Config, Entry, EntryKind, HardState, InitialState, Instant,
    LogIndex, Membership, Message, NodeId, RawNode, ReadId, ReadMode, Ready, SnapshotMeta, Term,
};

pub use format::fmt_msg;

/// Tick length used everywhere in transcripts.
pub const TICK_NANOS: u64 = 1_000_000;

/// What a node has made durable.
#[derive(Clone, Default)]
pub struct Stored {
    pub hard: HardState,
    pub snapshot: SnapshotMeta,
    pub entries: Vec<Entry>,
}

pub struct Node {
    pub raw: RawNode,
    pub stored: Stored,
    /// Readys produced but not yet persisted.
    pub unpersisted: VecDeque<Ready>,
    pub applied: LogIndex,
    pub cfg: Config,
}

#[derive(Default)]
pub struct Env {
    pub nodes: BTreeMap<NodeId, Node>,
    pub net: Vec<Message>,
    /// Unordered pairs that cannot talk.
    pub cut: BTreeSet<(u64, u64)>,
    pub now: u64,
    pub out: String,
    pub bootstrap: Membership,
    /// Every entry any node applied, by index: state machine safety is checked on each apply.
    pub applied_entries: BTreeMap<u64, Entry>,
    /// Reads in flight: the highest commit index any node knew when the read was requested.
    /// A read served below it would miss a write that had completed: not linearizable.
    pub read_floor: BTreeMap<(u64, u64), u64>,
    /// The highest index each node acknowledged to a leader, with the term it did so in.
    pub acked: BTreeMap<NodeId, (Term, LogIndex)>,
    /// Crash restarts so far: each boot gets a seed of its own, as the runtime draws one per
    /// boot (the ids of forwarded reads derive from it, issue 13 item 7).
    pub boots: u64,
}

fn id(s: &str) -> NodeId {
    NodeId(s.parse().expect("node id"))
}

impl Env {
    pub fn config(&self, n: NodeId, kv: &BTreeMap<String, String>) -> Config {
        let mut c = Config::new(n);
        c.election_ticks_min = 10;
        c.election_ticks_max = 20;
        c.heartbeat_ticks = 1;
        c.tick_nanos = TICK_NANOS;
        c.max_clock_drift_ppm = 10_000;
        c.lease_margin_nanos = 500_000;
        c.batch_bytes_max = kv
            .get("batch")
            .map_or(1 << 20, |v| v.parse().expect("batch"));
        c.inflight_msgs_max = kv
            .get("inflight")
            .map_or(256, |v| v.parse().expect("inflight"));
        c.proposals_pending_max = kv
            .get("pending")
            .map_or(1000, |v| v.parse().expect("pending"));
        if let Some(v) = kv.get("entry") {
            c.entry_bytes_max = v.parse().expect("entry");
        }
        c.pre_vote = kv.get("prevote").is_none_or(|v| v == "true");
        c.check_quorum = kv.get("checkquorum").is_none_or(|v| v == "true");
        #[cfg(feature = "mutations")]
        {
            use ringraft::raft::Mutation;
            c.mutation = kv.get("mutation").map(|m| match m.as_str() {
                "count-old-term" => Mutation::CountOldTermTowardCommit,
                "vote-without-log-check" => Mutation::VoteWithoutLogCheck,
                "lease-before-noop" => Mutation::LeaseReadBeforeNoopCommit,
                "ack-before-persist" => Mutation::AckAppendBeforePersist,
                "oversized" => Mutation::AcceptOversizedEntries,
                other => panic!("unknown mutation {other}"),
            });
        }
        c
    }

    fn add_node(&mut self, n: NodeId, init: InitialState, kv: &BTreeMap<String, String>) {
        self.add_node_seeded(n, init, kv, n.0);
    }

    fn add_node_seeded(
        &mut self,
        n: NodeId,
        init: InitialState,
        kv: &BTreeMap<String, String>,
        seed: u64,
    ) {
        let cfg = self.config(n, kv);
        let stored = Stored {
            hard: init.hard_state,
            snapshot: init.snapshot.clone(),
            entries: init.entries.clone(),
        };
        let applied = init.applied;
        let raw = RawNode::new(cfg.clone(), init, seed, Instant(self.now)).expect("new node");
        self.nodes.insert(
            n,
            Node {
                raw,
                stored,
                unpersisted: VecDeque::new(),
                applied,
                cfg,
            },
        );
    }

    /// Runs one command and returns its output.
    pub fn run(&mut self, line: &str) -> String {
        self.out.clear();
        let mut words = line.split_whitespace();
        let cmd = words.next().unwrap_or("");
        let args: Vec<&str> = words.collect();
        let pos: Vec<&str> = args.iter().copied().filter(|a| !a.contains('=')).collect();
        let kv: BTreeMap<String, String> = args
            .iter()
            .filter_map(|a| a.split_once('='))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        match cmd {
            "add-nodes" => self.cmd_add_nodes(&pos, &kv),
            "restart" => self.cmd_restart(id(pos[0]), &kv),
            "crash" => self.cmd_crash(id(pos[0]), &kv),
            "campaign" => {
                let n = id(pos[0]);
                let now = Instant(self.now);
                self.node(n).raw.campaign(now);
            }
            "tick" => self.cmd_tick(&pos),
            "elapse" => self.now += TICK_NANOS * pos[0].parse::<u64>().expect("ticks"),
            "tick-heartbeat" => self.cmd_tick_heartbeat(id(pos[0])),
            "ready" => self.cmd_ready(id(pos[0])),
            "persist" => self.cmd_persist(id(pos[0]), usize::MAX),
            "persist-one" => self.cmd_persist(id(pos[0]), 1),
            "process" => self.cmd_process(&pos),
            "deliver" => self.cmd_deliver(&pos),
            "drop" => self.cmd_drop(&pos),
            "deliver-one" => self.cmd_deliver_one(pos[0].parse().expect("k"), false),
            "dup-one" => self.cmd_deliver_one(pos[0].parse().expect("k"), true),
            "drop-one" => {
                if !self.net.is_empty() {
                    let k = pos[0].parse::<usize>().expect("k") % self.net.len();
                    self.net.remove(k);
                }
            }
            "stabilize" => self.cmd_stabilize(&pos),
            "propose" => self.cmd_propose(id(pos[0]), pos.get(1).copied().unwrap_or("")),
            "propose-big" => self.cmd_propose_big(id(pos[0]), pos[1].parse().expect("len")),
            "forge-append" => self.cmd_forge_append(&pos),
            "propose-n" => self.cmd_propose_n(id(pos[0]), pos[1].parse().expect("count")),
            "propose-conf" => self.cmd_propose_conf(id(pos[0]), &pos[1..], &kv),
            "transfer" => self.cmd_transfer(id(pos[0]), id(pos[1])),
            "read" => self.cmd_read(id(pos[0]), pos[1], pos[2]),
            "partition" => self.cmd_partition(&args),
            "heal" => self.cut.clear(),
            "status" => self.cmd_status(id(pos[0])),
            "log" => self.cmd_log(id(pos[0])),
            "snapshot" => self.cmd_snapshot(id(pos[0]), pos[1].parse().expect("index")),
            "compact" => {
                let index = LogIndex(pos[1].parse().expect("index"));
                if let Err(e) = self.node(id(pos[0])).raw.compact_to(index) {
                    let _ = writeln!(self.out, "error: {e:?}");
                }
            }
            "report-snapshot" => {
                let ok = pos.get(2).is_none_or(|v| *v == "ok");
                self.node(id(pos[0])).raw.report_snapshot(id(pos[1]), ok);
            }
            "report-unreachable" => self.node(id(pos[0])).raw.report_unreachable(id(pos[1])),
            other => panic!("unknown command {other}"),
        }
        std::mem::take(&mut self.out)
    }

    pub fn node(&mut self, n: NodeId) -> &mut Node {
        self.nodes.get_mut(&n).expect("node exists")
    }

    fn cmd_add_nodes(&mut self, pos: &[&str], kv: &BTreeMap<String, String>) {
        let count: u64 = pos[0].parse().expect("count");
        let voters: Vec<NodeId> = match kv.get("voters") {
            Some(v) => v.split(',').map(id).collect(),
            None => (1..=count).map(NodeId).collect(),
        };
        if self.bootstrap.voters.is_empty() {
            self.bootstrap = Membership::with_voters(voters);
        }
        let first = self.nodes.keys().last().map_or(1, |k| k.0 + 1);
        for n in first..first + count {
            let mut init = InitialState::bootstrap([]);
            init.snapshot.membership = self.bootstrap.clone();
            self.add_node(NodeId(n), init, kv);
            let _ = writeln!(self.out, "added {n}");
        }
    }

    /// Restarts a node from a scripted durable state: `term=T vote=V log=1,1,4 commit=C`.
    fn cmd_restart(&mut self, n: NodeId, kv: &BTreeMap<String, String>) {
        let terms: Vec<u64> = kv.get("log").map_or(Vec::new(), |v| {
            v.split(',')
                .filter(|s| !s.is_empty())
                .map(|t| t.parse().expect("term"))
                .collect()
        });
        let entries: Vec<Entry> = terms
            .iter()
            .enumerate()
            .map(|(i, t)| Entry {
                index: LogIndex(i as u64 + 1),
                term: Term(*t),
                kind: EntryKind::Normal,
                data: Bytes::new(),
            })
            .collect();
        let get = |k: &str| kv.get(k).map_or(0, |v| v.parse::<u64>().expect("number"));
        let vote = kv.get("vote").map(|v| id(v));
        let mut init = InitialState::bootstrap([]);
        init.snapshot.membership = self.bootstrap.clone();
        init.entries = entries;
        init.hard_state = HardState {
            term: Term(get("term")),
            vote,
            commit: LogIndex(get("commit")),
        };
        init.applied = init.hard_state.commit;
        self.add_node(n, init, kv);
        let _ = writeln!(self.out, "restarted {n}");
    }

    /// Loses everything not persisted and restarts from the stored state.
    fn cmd_crash(&mut self, n: NodeId, kv: &BTreeMap<String, String>) {
        let node = self.nodes.remove(&n).expect("node exists");
        let init = InitialState {
            hard_state: node.stored.hard,
            snapshot: node.stored.snapshot.clone(),
            entries: node.stored.entries.clone(),
            applied: node.stored.snapshot.index,
        };
        self.net.retain(|m| m.from != n && m.to != n);
        self.boots += 1;
        self.add_node_seeded(n, init, kv, n.0 + (self.boots << 32));
        let _ = writeln!(self.out, "crashed and restarted {n}");
    }

    fn cmd_tick(&mut self, pos: &[&str]) {
        let count: u64 = pos.get(1).map_or(1, |v| v.parse().expect("count"));
        let which: Vec<NodeId> = if pos.is_empty() || pos[0] == "all" {
            self.nodes.keys().copied().collect()
        } else {
            vec![id(pos[0])]
        };
        for _ in 0..count {
            self.now += TICK_NANOS;
            for n in &which {
                let now = Instant(self.now);
                self.node(*n).raw.tick(now);
            }
        }
    }

    fn cmd_tick_heartbeat(&mut self, n: NodeId) {
        let ticks = self.node(n).cfg.heartbeat_ticks;
        for _ in 0..ticks {
            self.now += TICK_NANOS;
            let now = Instant(self.now);
            self.node(n).raw.tick(now);
        }
    }

    /// Takes a Ready without persisting it; `messages` go to the network now.
    fn cmd_ready(&mut self, n: NodeId) {
        if !self.node(n).raw.has_ready() {
            let _ = writeln!(self.out, "{n}: no ready");
            return;
        }
        let mut rd = self.node(n).raw.ready();
        for r in &rd.read_states {
            if let Some(floor) = self.read_floor.remove(&(n.0, r.id.0)) {
                assert!(
                    r.index.0 >= floor,
                    "stale read {} on {n}: index {} below commit {floor} known at request",
                    r.id.0,
                    r.index.0
                );
            }
        }
        let text = format::fmt_ready(n, &rd);
        self.out.push_str(&text);
        self.net.append(&mut rd.messages);
        self.node(n).unpersisted.push_back(rd);
    }

    /// Persists the oldest `count` taken Readys of `n`; then their persisted messages leave
    /// and it applies.
    fn cmd_persist(&mut self, n: NodeId, count: usize) {
        let now = Instant(self.now);
        for _ in 0..count {
            let Some(mut rd) = self.node(n).unpersisted.pop_front() else {
                break;
            };
            let node = self.node(n);
            // The runtime's WAL refuses records over its limit, which the runtime sizes to
            // `entry_bytes_max`: such an entry here would stop the node.
            let max = node.cfg.entry_bytes_max;
            for e in rd.entries.iter() {
                assert!(
                    e.data.len() as u64 <= max,
                    "node {n}: storage refuses entry {} of {} bytes (max {max}): the node stops",
                    e.index,
                    e.data.len()
                );
            }
            persist(&mut node.stored, &rd);
            node.raw.on_persisted(rd.number, now);
            let mut msgs = std::mem::take(&mut rd.persisted_messages);
            for e in rd.committed_entries.iter() {
                match self.applied_entries.get(&e.index.0) {
                    Some(prev) => assert_eq!(prev, e, "state machine safety at {}", e.index),
                    None => {
                        self.applied_entries.insert(e.index.0, e.clone());
                    }
                }
            }
            let node = self.node(n);
            let last = rd.committed_entries.last().map(|e| e.index);
            if let Some(last) = last {
                node.raw.on_applied(last).expect("apply");
                node.applied = last;
            }
            self.note_acks(n, &msgs);
            self.net.append(&mut msgs);
            let _ = writeln!(self.out, "{n}: persisted ready #{}", rd.number);
        }
    }

    fn note_acks(&mut self, n: NodeId, msgs: &[Message]) {
        for m in msgs {
            if let ringraft::raft::MessageBody::AppendEntriesResponse {
                index,
                reject: None,
                ..
            } = m.body
            {
                let mark = self.acked.entry(n).or_insert((m.term, index));
                if m.term > mark.0 || (m.term == mark.0 && index > mark.1) {
                    *mark = (m.term, index);
                }
            }
        }
    }

    /// Durability invariants of every node (the Ready contract, issue 13 items 0 and 4):
    /// the core's persisted mark covers only entries storage holds as the core does, and a
    /// node's log holds every index it acknowledged in its current term (a leader counted it
    /// for them). Returns the first violation.
    pub fn check_durability(&self) -> Result<(), String> {
        for (id, node) in &self.nodes {
            let st = node.raw.status();
            for i in st.first_index.0..=st.persisted.0 {
                let core = node.raw.term_at(LogIndex(i));
                let stored = node.stored.entries.iter().find(|e| e.index.0 == i);
                if i > node.stored.snapshot.index.0 && stored.map(|e| e.term) != core {
                    return Err(format!(
                        "node {id}: persisted {} covers {i} ({core:?}) but storage holds {:?}",
                        st.persisted,
                        stored.map(|e| e.term)
                    ));
                }
            }
            if let Some((term, index)) = self.acked.get(id) {
                let held =
                    *index <= node.raw.snapshot_index() || node.raw.term_at(*index).is_some();
                if *term == st.term && !held {
                    return Err(format!(
                        "node {id}: acknowledged {index} in term {} but its log ends at {}",
                        term.0, st.last_index
                    ));
                }
            }
        }
        Ok(())
    }

    fn cmd_process(&mut self, pos: &[&str]) {
        let which: Vec<NodeId> = if pos.is_empty() {
            self.nodes.keys().copied().collect()
        } else {
            pos.iter().map(|p| id(p)).collect()
        };
        for n in which {
            while self.node(n).raw.has_ready() {
                self.cmd_ready(n);
                self.cmd_persist_quiet(n);
            }
        }
    }

    fn cmd_persist_quiet(&mut self, n: NodeId) {
        let saved = std::mem::take(&mut self.out);
        self.cmd_persist(n, usize::MAX);
        self.out = saved;
    }

    fn blocked(&self, m: &Message) -> bool {
        let (a, b) = (m.from.0.min(m.to.0), m.from.0.max(m.to.0));
        self.cut.contains(&(a, b))
    }

    /// Delivers queued messages (to the listed nodes only, if any), printing each.
    fn cmd_deliver(&mut self, pos: &[&str]) {
        let to: BTreeSet<NodeId> = pos.iter().map(|p| id(p)).collect();
        let (now_msgs, keep): (Vec<Message>, Vec<Message>) = std::mem::take(&mut self.net)
            .into_iter()
            .partition(|m| to.is_empty() || to.contains(&m.to));
        self.net = keep;
        for m in now_msgs {
            if self.blocked(&m) || !self.nodes.contains_key(&m.to) {
                let _ = writeln!(self.out, "dropped {}", fmt_msg(&m));
                continue;
            }
            let _ = writeln!(self.out, "{}", fmt_msg(&m));
            let now = Instant(self.now);
            let to = m.to;
            self.node(to).raw.step(m, now).expect("step");
        }
    }

    /// Delivers the `k`-th queued message (mod the queue length), keeping a copy if `dup`.
    fn cmd_deliver_one(&mut self, k: usize, dup: bool) {
        if self.net.is_empty() {
            return;
        }
        let k = k % self.net.len();
        let m = if dup {
            self.net[k].clone()
        } else {
            self.net.remove(k)
        };
        if self.blocked(&m) || !self.nodes.contains_key(&m.to) {
            return;
        }
        let now = Instant(self.now);
        let to = m.to;
        self.node(to).raw.step(m, now).expect("step");
    }

    fn cmd_drop(&mut self, pos: &[&str]) {
        let to: BTreeSet<NodeId> = pos.iter().map(|p| id(p)).collect();
        let before = self.net.len();
        self.net.retain(|m| !(to.is_empty() || to.contains(&m.to)));
        let _ = writeln!(self.out, "dropped {} messages", before - self.net.len());
    }

    /// Processes and delivers until nothing moves.
    fn cmd_stabilize(&mut self, pos: &[&str]) {
        let only: BTreeSet<NodeId> = pos.iter().map(|p| id(p)).collect();
        let counts = |n: &NodeId| only.is_empty() || only.contains(n);
        for _ in 0..1000 {
            let any_ready = self
                .nodes
                .iter()
                .any(|(i, n)| counts(i) && n.raw.has_ready());
            let any_msg = self.net.iter().any(|m| counts(&m.to));
            if !any_ready && !any_msg {
                return;
            }
            self.cmd_process(pos);
            self.cmd_deliver(pos);
        }
        panic!("stabilize did not converge");
    }

    fn cmd_propose(&mut self, n: NodeId, data: &str) {
        let res = self
            .node(n)
            .raw
            .propose(Bytes::copy_from_slice(data.as_bytes()));
        match res {
            Ok(i) => {
                let _ = writeln!(self.out, "proposed at {i}");
            }
            Err(e) => {
                let _ = writeln!(self.out, "error: {e:?}");
            }
        }
    }

    fn cmd_propose_big(&mut self, n: NodeId, len: usize) {
        match self.node(n).raw.propose(Bytes::from(vec![b'x'; len])) {
            Ok(i) => {
                let _ = writeln!(self.out, "proposed at {i}");
            }
            Err(e) => {
                let _ = writeln!(self.out, "error: {e:?}");
            }
        }
    }

    /// `forge-append TO FROM TERM PREV_INDEX PREV_TERM COMMIT [INDEX/TERM ...]`: a well-framed
    /// AppendEntries with arbitrary fields, as a faulty peer could send, through the wire
    /// codec (which must refuse what the core cannot take) and then the core. It is stepped
    /// into a scratch copy of `TO` restarted from its stored state, so that a forged entry the
    /// core takes cannot pollute the cluster's history (that would be a Byzantine fault, which
    /// Raft does not tolerate); only a panic counts.
    fn cmd_forge_append(&mut self, pos: &[&str]) {
        let num = |i: usize| pos[i].parse::<u64>().expect("number");
        let entries: Vec<Entry> = pos[6..]
            .iter()
            .map(|w| {
                let (i, t) = w.split_once('/').expect("INDEX/TERM");
                Entry {
                    index: LogIndex(i.parse().expect("index")),
                    term: Term(t.parse().expect("term")),
                    kind: EntryKind::Normal,
                    data: Bytes::from_static(b"forged"),
                }
            })
            .collect();
        let (to, from) = (NodeId(num(0)), NodeId(num(1)));
        let m = Message {
            from,
            to,
            term: Term(num(2)),
            body: ringraft::raft::MessageBody::AppendEntries {
                prev_index: LogIndex(num(3)),
                prev_term: Term(num(4)),
                entries: entries.into(),
                commit: LogIndex(num(5)),
                round: 0,
            },
        };
        let wire = ringraft::codec::encode(&m).expect("encodes");
        let m = match ringraft::codec::decode_from(from, to, wire) {
            Ok(m) => m,
            Err(e) => {
                let _ = writeln!(self.out, "refused by the codec: {e}");
                return;
            }
        };
        let now = Instant(self.now);
        let node = self.node(to);
        let init = InitialState {
            hard_state: node.stored.hard,
            snapshot: node.stored.snapshot.clone(),
            entries: node.stored.entries.clone(),
            applied: node.stored.snapshot.index,
        };
        let mut scratch = RawNode::new(node.cfg.clone(), init, to.0, now).expect("restart");
        match scratch.step(m, now) {
            Ok(()) => {
                let s = scratch.status();
                let _ = writeln!(self.out, "taken: last={} commit={}", s.last_index, s.commit);
            }
            Err(e) => {
                let _ = writeln!(self.out, "refused by the core: {e}");
            }
        }
    }

    fn cmd_propose_n(&mut self, n: NodeId, count: u64) {
        let mut last = None;
        for i in 0..count {
            match self.node(n).raw.propose(Bytes::from(format!("p{i}"))) {
                Ok(idx) => last = Some(idx),
                Err(e) => {
                    let _ = writeln!(self.out, "error: {e:?}");
                    return;
                }
            }
        }
        let _ = writeln!(self.out, "proposed {count}, last at {last:?}");
    }

    /// `propose-conf 1 add-voter 4 remove 2 ... [auto=false] [leave]`
    fn cmd_propose_conf(&mut self, n: NodeId, words: &[&str], kv: &BTreeMap<String, String>) {
        let change = if words == ["leave"] {
            ConfChange::Leave
        } else {
            let steps = words
                .chunks(2)
                .map(|c| {
                    let who = id(c[1]);
                    match c[0] {
                        "add-voter" => ConfChangeStep::AddVoter(who),
                        "add-learner" => ConfChangeStep::AddLearner(who),
                        "promote" => ConfChangeStep::PromoteLearner(who),
                        "remove" => ConfChangeStep::Remove(who),
                        other => panic!("unknown step {other}"),
                    }
                })
                .collect();
            ConfChange::Enter {
                steps,
                auto_leave: kv.get("auto").is_none_or(|v| v == "true"),
            }
        };
        match self.node(n).raw.propose_conf_change(&change) {
            Ok(i) => {
                let _ = writeln!(self.out, "proposed conf change at {i}");
            }
            Err(e) => {
                let _ = writeln!(self.out, "error: {e:?}");
            }
        }
    }

    fn cmd_transfer(&mut self, from: NodeId, to: NodeId) {
        let now = Instant(self.now);
        if let Err(e) = self.node(from).raw.transfer_leadership(to, now) {
            let _ = writeln!(self.out, "error: {e:?}");
        }
    }

    fn cmd_read(&mut self, n: NodeId, mode: &str, rid: &str) {
        let mode = if mode == "lease" {
            ReadMode::Lease
        } else {
            ReadMode::ReadIndex
        };
        let now = Instant(self.now);
        let rid = ReadId(rid.parse().expect("read id"));
        let floor = self
            .nodes
            .values()
            .map(|x| x.raw.commit().0)
            .max()
            .unwrap_or(0);
        self.read_floor.insert((n.0, rid.0), floor);
        if let Err(e) = self.node(n).raw.read_index(rid, mode, now) {
            let _ = writeln!(self.out, "error: {e:?}");
        }
    }

    /// `partition 1 / 2 3` cuts every link between the groups.
    fn cmd_partition(&mut self, args: &[&str]) {
        let groups: Vec<Vec<u64>> = args
            .split(|a| *a == "/")
            .map(|g| g.iter().map(|s| s.parse().expect("id")).collect())
            .collect();
        for (i, a) in groups.iter().enumerate() {
            for b in &groups[i + 1..] {
                for x in a {
                    for y in b {
                        self.cut.insert(((*x).min(*y), (*x).max(*y)));
                    }
                }
            }
        }
    }

    fn cmd_status(&mut self, n: NodeId) {
        let s = self.node(n).raw.status();
        let _ = writeln!(
            self.out,
            "{n}: {:?} term={} vote={:?} leader={:?} commit={} applied={} persisted={} first={} last={}",
            s.role, s.term.0, s.vote.map(|v| v.0), s.leader.map(|v| v.0), s.commit.0,
            s.applied.0, s.persisted.0, s.first_index.0, s.last_index.0
        );
        let m = &s.membership;
        let _ = writeln!(
            self.out,
            "  voters={:?} outgoing={:?} learners={:?} auto_leave={}",
            m.voters.iter().map(|v| v.0).collect::<Vec<_>>(),
            m.voters_outgoing.iter().map(|v| v.0).collect::<Vec<_>>(),
            m.learners.iter().map(|v| v.0).collect::<Vec<_>>(),
            m.auto_leave
        );
        for (id, p) in &s.progress {
            let _ = writeln!(
                self.out,
                "  {id}: match={} next={} {:?} inflight={}",
                p.match_index.0, p.next.0, p.state, p.inflight_msgs
            );
        }
        if let Some(t) = s.transferee {
            let _ = writeln!(self.out, "  transferee={t}");
        }
        if let Some(l) = s.lease_until {
            let _ = writeln!(self.out, "  lease_until={} (now {})", l.0, self.now);
        }
    }

    fn cmd_log(&mut self, n: NodeId) {
        let s = self.node(n).raw.status();
        let mut terms = Vec::new();
        for i in s.first_index.0..=s.last_index.0 {
            let e = self.node(n).raw.entry(LogIndex(i)).expect("entry");
            terms.push(format!("{}/{}", e.index.0, e.term.0));
        }
        let _ = writeln!(self.out, "{n}: [{}] commit={}", terms.join(" "), s.commit.0);
    }

    fn cmd_snapshot(&mut self, n: NodeId, index: u64) {
        match self.node(n).raw.on_snapshot_created(LogIndex(index)) {
            Ok(meta) => {
                let node = self.node(n);
                node.stored.entries.retain(|e| e.index > meta.index);
                node.stored.snapshot = meta.clone();
                let _ = writeln!(
                    self.out,
                    "{n}: snapshot at {}/{}",
                    meta.index.0, meta.term.0
                );
            }
            Err(e) => {
                let _ = writeln!(self.out, "error: {e:?}");
            }
        }
    }
}

/// Applies a Ready's writes to the stored state, as a WAL would.
pub fn persist(stored: &mut Stored, rd: &Ready) {
    if let Some(snap) = &rd.snapshot {
        // Keep the stored suffix only if the stored log holds the snapshot's last entry.
        let holds = stored
            .entries
            .iter()
            .any(|e| e.index == snap.index && e.term == snap.term);
        stored.entries.retain(|e| holds && e.index > snap.index);
        stored.snapshot = snap.clone();
    }
    if let Some(first) = rd.entries.first() {
        stored.entries.retain(|e| e.index < first.index);
        stored.entries.extend(rd.entries.iter().cloned());
    }
    if let Some(hs) = rd.hard_state {
        stored.hard = hs;
    }
}

/// Runs a transcript file: blocks of `command` lines, `----`, expected output, blank line.
pub fn run_file(path: &std::path::Path) {
    let text = std::fs::read_to_string(path).expect("read testdata");
    let regen = std::env::var("RINGRAFT_REGEN").is_ok_and(|v| v == "1");
    let mut env = Env::default();
    let mut out = String::new();
    let mut lines = text.lines().peekable();
    let mut failures = Vec::new();
    while let Some(line) = lines.next() {
        if line.trim().is_empty() || line.starts_with('#') {
            out.push_str(line);
            out.push('\n');
            continue;
        }
        let cmd = line.to_string();
        assert_eq!(lines.next(), Some("----"), "expected ---- after {cmd}");
        let mut expected = String::new();
        while let Some(l) = lines.peek() {
            if l.is_empty() {
                break;
            }
            expected.push_str(l);
            expected.push('\n');
            lines.next();
        }
        let mut got = env.run(&cmd);
        if got.is_empty() {
            got = "ok\n".to_string();
        }
        if got != expected {
            failures.push(format!(
                "command: {cmd}\n--- expected\n{expected}--- got\n{got}"
            ));
        }
        out.push_str(&cmd);
        out.push_str("\n----\n");
        out.push_str(&got);
    }
    if regen {
        std::fs::write(path, out).expect("write testdata");
        return;
    }
    assert!(
        failures.is_empty(),
        "{}: {} mismatches (RINGRAFT_REGEN=1 to rewrite)\n{}",
        path.display(),
        failures.len(),
        failures.join("\n")
    );
}
