//! Cluster tests: real nodes (their own threads and runtimes) over real TCP on 127.0.0.1 and
//! real WAL files in temporary directories. Outcomes are deterministic (what must hold after
//! the scenario), every wait is bounded, and nothing asserts on speed.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use bytes::Bytes;
use ringraft::kv::{KvCommand, KvStateMachine};
use ringraft::node::{block_on, Node, NodeConfig, NodeError, NodeHandle};
use ringraft::raft::{LogIndex, NodeId, ReadMode, Role};
use tempfile::TempDir;

const CLUSTER_ID: u64 = 0x005e_edc1;
/// Generous bound for anything that must eventually happen (elections, catch-up).
const PATIENCE: Duration = Duration::from_secs(20);

type Handle = NodeHandle<KvStateMachine>;

/// A loopback address for a node, its port below the ephemeral range: one from `bind(0)`,
/// released for the node to bind, could meanwhile be taken by any outgoing connection.
fn free_addr() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], ringraft_tests::process::tools::free_port()))
}

struct Member {
    dir: TempDir,
    addr: SocketAddr,
    node: Option<Node<KvStateMachine>>,
}

struct Cluster {
    members: BTreeMap<NodeId, Member>,
    initial_voters: Vec<NodeId>,
    tweak: fn(&mut NodeConfig),
}

fn default_tweak(_: &mut NodeConfig) {}

impl Cluster {
    fn new(n: u64) -> Self {
        Cluster::with(n, default_tweak)
    }

    fn with(n: u64, tweak: fn(&mut NodeConfig)) -> Self {
        let ids: Vec<NodeId> = (1..=n).map(NodeId).collect();
        let mut c = Cluster {
            members: BTreeMap::new(),
            initial_voters: ids.clone(),
            tweak,
        };
        for id in &ids {
            c.members.insert(
                *id,
                Member {
                    dir: tempfile::tempdir().expect("tempdir"),
                    addr: free_addr(),
                    node: None,
                },
            );
        }
        for id in ids {
            c.start(id);
        }
        c
    }

    fn config(&self, id: NodeId) -> NodeConfig {
        let m = &self.members[&id];
        let mut cfg = NodeConfig::new(CLUSTER_ID, id, m.dir.path());
        cfg.listen = m.addr;
        cfg.initial_voters = self.initial_voters.clone();
        for (other, om) in &self.members {
            if *other != id {
                cfg.peers.insert(*other, om.addr);
            }
        }
        (self.tweak)(&mut cfg);
        cfg
    }

    fn start(&mut self, id: NodeId) {
        let cfg = self.config(id);
        let node = Node::start(cfg, KvStateMachine::default()).expect("node starts");
        self.members.get_mut(&id).expect("member").node = Some(node);
    }

    /// Adds a member's directory and address without starting it.
    fn prepare(&mut self, id: NodeId) -> SocketAddr {
        let addr = free_addr();
        self.members.insert(
            id,
            Member {
                dir: tempfile::tempdir().expect("tempdir"),
                addr,
                node: None,
            },
        );
        addr
    }

    fn handle(&self, id: NodeId) -> Handle {
        self.members[&id].node.as_ref().expect("running").handle()
    }

    fn handles(&self) -> Vec<Handle> {
        self.members
            .values()
            .filter_map(|m| m.node.as_ref().map(Node::handle))
            .collect()
    }

    fn running(&self) -> Vec<NodeId> {
        self.members
            .iter()
            .filter(|(_, m)| m.node.is_some())
            .map(|(id, _)| *id)
            .collect()
    }

    fn kill(&mut self, id: NodeId) {
        if let Some(n) = self.members.get_mut(&id).and_then(|m| m.node.take()) {
            n.kill();
        }
    }

    fn shutdown(&mut self, id: NodeId) {
        if let Some(n) = self.members.get_mut(&id).and_then(|m| m.node.take()) {
            n.shutdown();
        }
    }

    /// Waits until a running node is leader and every running voter knows it.
    fn wait_leader(&self) -> NodeId {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let statuses: Vec<_> = self
                .handles()
                .iter()
                .filter_map(|h| block_on(h.status()).ok())
                .collect();
            let leaders: BTreeSet<NodeId> = statuses
                .iter()
                .filter(|s| s.role == Role::Leader)
                .map(|s| s.id)
                .collect();
            if let Some(&l) = leaders.iter().next() {
                let agreed = statuses
                    .iter()
                    .filter(|s| s.membership.is_voter(s.id))
                    .all(|s| s.leader == Some(l));
                if leaders.len() == 1 && agreed {
                    return l;
                }
            }
            assert!(Instant::now() < deadline, "no leader within {PATIENCE:?}");
            thread::sleep(Duration::from_millis(10));
        }
    }

    /// Waits until every running node has applied at least `index`.
    fn wait_applied(&self, index: LogIndex) {
        let deadline = Instant::now() + PATIENCE;
        for h in self.handles() {
            loop {
                let st = block_on(h.status()).expect("status");
                if st.applied >= index {
                    break;
                }
                assert!(
                    Instant::now() < deadline,
                    "node {} stuck at applied {} < {index}",
                    h.id(),
                    st.applied
                );
                thread::sleep(Duration::from_millis(10));
            }
        }
    }

    /// Every running node's state, read linearizably (ReadIndex through the leader).
    fn states(&self) -> BTreeMap<NodeId, BTreeMap<Bytes, Bytes>> {
        self.handles()
            .iter()
            .map(|h| (h.id(), read_all(h)))
            .collect()
    }
}

fn read_all(h: &Handle) -> BTreeMap<Bytes, Bytes> {
    let deadline = Instant::now() + PATIENCE;
    loop {
        match block_on(h.read(ReadMode::ReadIndex, |kv: &KvStateMachine| {
            kv.entries().clone()
        })) {
            Ok(m) => return m,
            Err(e) => {
                assert!(Instant::now() < deadline, "read on {} failed: {e}", h.id());
                thread::sleep(Duration::from_millis(20));
            }
        }
    }
}

/// Proposes on whichever node leads, retrying on leader changes, until acknowledged.
/// Returns the index, or None if `give_up` is reached without an acknowledgement.
fn propose_somewhere(handles: &[Handle], data: &Bytes, give_up: Instant) -> Option<LogIndex> {
    let mut target = 0;
    loop {
        if Instant::now() >= give_up {
            return None;
        }
        let h = &handles[target % handles.len()];
        match block_on(h.propose(data.clone())) {
            Ok(p) => return Some(p.index),
            Err(NodeError::NotLeader { leader: Some(l) }) => {
                target = handles
                    .iter()
                    .position(|h| h.id() == l)
                    .unwrap_or(target + 1);
                thread::sleep(Duration::from_millis(1));
            }
            Err(_) => {
                target += 1;
                thread::sleep(Duration::from_millis(5));
            }
        }
    }
}

fn key(writer: u64, i: u64) -> Bytes {
    Bytes::from(format!("w{writer}-k{i:06}"))
}

/// Background writers: each sets its own keys in sequence and records the acknowledged ones.
struct Load {
    handles: Arc<Mutex<Vec<Handle>>>,
    stop: Arc<AtomicBool>,
    acked: Arc<Mutex<BTreeMap<Bytes, Bytes>>>,
    count: Arc<AtomicU64>,
    threads: Vec<thread::JoinHandle<()>>,
}

impl Load {
    fn start(handles: &[Handle], writers: u64) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let acked = Arc::new(Mutex::new(BTreeMap::new()));
        let count = Arc::new(AtomicU64::new(0));
        let shared = Arc::new(Mutex::new(handles.to_vec()));
        let threads = (0..writers)
            .map(|w| {
                let (stop, acked, count) = (stop.clone(), acked.clone(), count.clone());
                let shared = shared.clone();
                thread::spawn(move || {
                    let mut i = 0;
                    while !stop.load(Ordering::Relaxed) {
                        let handles = shared.lock().expect("lock").clone();
                        let (k, v) = (key(w, i), Bytes::from(format!("v{i}")));
                        let cmd = KvCommand::set(k.clone(), v.clone()).encode();
                        let give_up = Instant::now() + Duration::from_secs(2);
                        if propose_somewhere(&handles, &cmd, give_up).is_some() {
                            acked.lock().expect("lock").insert(k, v);
                            count.fetch_add(1, Ordering::Relaxed);
                        }
                        i += 1;
                    }
                })
            })
            .collect();
        Load {
            handles: shared,
            stop,
            acked,
            count,
            threads,
        }
    }

    /// Lets the writers use a node started after the load.
    fn add(&self, h: Handle) {
        self.handles.lock().expect("lock").push(h);
    }

    /// Waits until `n` more writes were acknowledged (bounded).
    fn wait_more(&self, n: u64) {
        let start = self.count.load(Ordering::Relaxed);
        let deadline = Instant::now() + PATIENCE;
        while self.count.load(Ordering::Relaxed) < start + n {
            assert!(Instant::now() < deadline, "load made no progress");
            thread::sleep(Duration::from_millis(5));
        }
    }

    fn stop(self) -> BTreeMap<Bytes, Bytes> {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads {
            t.join().expect("writer thread");
        }
        let acked = self.acked.lock().expect("lock").clone();
        acked
    }
}

/// Every acknowledged write is present, with its value, on every running node.
fn assert_no_acked_write_lost(c: &Cluster, acked: &BTreeMap<Bytes, Bytes>) {
    assert!(!acked.is_empty(), "the load acknowledged nothing");
    let states = c.states();
    for (id, state) in &states {
        for (k, v) in acked {
            assert_eq!(
                state.get(k),
                Some(v),
                "node {id} lost acknowledged write {k:?}"
            );
        }
    }
    let first = states.values().next().expect("a running node");
    for (id, state) in &states {
        assert_eq!(state, first, "node {id} diverged");
    }
}

#[test]
fn three_nodes_elect_commit_and_apply_in_order() {
    let c = Cluster::new(3);
    let io_uring = c.members[&NodeId(1)].node.as_ref().map(Node::uses_io_uring);
    eprintln!("runtime and transport on io_uring: {io_uring:?}");
    let leader = c.wait_leader();
    let h = c.handle(leader);
    let mut last = LogIndex(0);
    for i in 0..100 {
        let cmd = KvCommand::set(key(0, i), format!("v{i}")).encode();
        let p = block_on(h.propose(cmd)).expect("propose on the leader");
        assert!(p.index > last, "indexes increase in proposal order");
        last = p.index;
    }
    // A get through the log sees every earlier set.
    let get = block_on(h.propose(KvCommand::get(key(0, 99)).encode())).expect("get");
    assert_eq!(
        ringraft::kv::decode_get_response(&get.response).as_deref(),
        Some(&b"v99"[..])
    );
    c.wait_applied(get.index);
    let states = c.states();
    for (id, s) in &states {
        assert_eq!(s.len(), 100, "node {id} applied every write");
    }
    // Followers refuse proposals and name the leader.
    let follower = c
        .running()
        .into_iter()
        .find(|id| *id != leader)
        .expect("a follower");
    let err = block_on(c.handle(follower).propose(Bytes::from_static(b"x"))).expect_err("refused");
    assert!(
        matches!(err, NodeError::NotLeader { leader: Some(l) } if l == leader),
        "{err:?}"
    );
    // Lease and ReadIndex reads on the leader, ReadIndex on a follower.
    for (id, mode) in [
        (leader, ReadMode::Lease),
        (leader, ReadMode::ReadIndex),
        (follower, ReadMode::ReadIndex),
        (follower, ReadMode::Lease),
    ] {
        let k = key(0, 42);
        let v = block_on(
            c.handle(id)
                .read(mode, move |kv: &KvStateMachine| kv.get(&k)),
        )
        .expect("read");
        assert_eq!(
            v.as_deref(),
            Some(&b"v42"[..]),
            "read on {id} with {mode:?}"
        );
    }
    // A snapshot on the leader compacts the WAL but does not push near followers onto
    // snapshots: the core retains the entries they still need.
    let snap = block_on(h.snapshot()).expect("snapshot");
    assert!(snap >= get.index);
    for i in 100..110 {
        let cmd = KvCommand::set(key(0, i), "after-snapshot").encode();
        block_on(h.propose(cmd)).expect("propose");
    }
    let st = block_on(h.status()).expect("status");
    c.wait_applied(st.commit);
    for id in c.running() {
        let installed = c.handle(id).metrics().counters.snapshots_installed;
        assert_eq!(installed, 0, "node {id} needed no snapshot");
    }
    assert_eq!(st.snapshot_index, snap);
    assert_eq!(st.role, Role::Leader);
    assert_eq!(st.followers.len(), 2);
    assert!(st.commit >= get.index && st.durable >= get.index);
    let m = h.metrics();
    assert!(m.counters.proposals_applied >= 111);
    assert!(m.propose_to_apply.count >= 111 && m.fsync.count > 0 && m.apply_batch.count > 0);
}

#[test]
fn every_node_restarted_from_disk_keeps_every_acknowledged_write() {
    restart_all_keeps_acknowledged_writes(default_tweak);
}

/// The same with a snapshot every 64 entries: restart restores snapshots and replays logs.
#[test]
fn every_node_restarted_with_frequent_snapshots_keeps_every_acknowledged_write() {
    restart_all_keeps_acknowledged_writes(small_snapshots);
}

fn restart_all_keeps_acknowledged_writes(tweak: fn(&mut NodeConfig)) {
    let mut c = Cluster::with(3, tweak);
    c.wait_leader();
    let load = Load::start(&c.handles(), 4);
    load.wait_more(300);
    let acked = load.stop();
    for id in c.running() {
        c.shutdown(id);
    }
    for id in [NodeId(1), NodeId(2), NodeId(3)] {
        c.start(id);
    }
    c.wait_leader();
    assert_no_acked_write_lost(&c, &acked);
    // And the restarted cluster takes new writes.
    let give_up = Instant::now() + PATIENCE;
    let cmd = KvCommand::set("after", "restart").encode();
    assert!(propose_somewhere(&c.handles(), &cmd, give_up).is_some());
}

#[test]
fn leader_killed_under_load_loses_no_acknowledged_write() {
    leader_killed_under_load(default_tweak);
}

fn fallback_io(cfg: &mut NodeConfig) {
    cfg.io_backend = ringraft::node::BackendKind::Thread;
}

/// The same scenario on the fallback stack (no io_uring anywhere).
#[test]
fn leader_killed_under_load_on_the_fallback_io_stack() {
    leader_killed_under_load(fallback_io);
}

fn leader_killed_under_load(tweak: fn(&mut NodeConfig)) {
    let mut c = Cluster::with(3, tweak);
    let old = c.wait_leader();
    let load = Load::start(&c.handles(), 4);
    load.wait_more(200);
    let killed_at = Instant::now();
    c.kill(old);
    let new = c.wait_leader();
    let elected_after = killed_at.elapsed();
    assert_ne!(new, old);
    // The election bound: CheckQuorum/stickiness (election_ticks_min) plus the randomized
    // timeout (< election_ticks_max) plus a pre-vote and a vote round; 10x that is a liveness
    // bound, not a speed assertion.
    let cfg = c.config(new).raft;
    let bound = Duration::from_nanos(cfg.tick_nanos * cfg.election_ticks_max * 10);
    assert!(
        elected_after < bound,
        "no new leader within {bound:?}: {elected_after:?}"
    );
    load.wait_more(200);
    let acked = load.stop();
    assert_no_acked_write_lost(&c, &acked);
    // The old leader comes back as a follower and converges.
    c.start(old);
    c.wait_leader();
    assert_no_acked_write_lost(&c, &acked);
}

fn small_snapshots(cfg: &mut NodeConfig) {
    cfg.snapshot_entries_threshold = 64;
    // A follower more than 8 entries behind at a snapshot gets the snapshot, not the log.
    cfg.raft.log_retain_entries_max = 8;
}

#[test]
fn a_follower_far_behind_catches_up_through_a_snapshot() {
    follower_catches_up_through_a_snapshot(small_snapshots);
}

#[test]
fn a_follower_far_behind_catches_up_through_a_snapshot_on_the_fallback_io_stack() {
    fn tweak(cfg: &mut NodeConfig) {
        small_snapshots(cfg);
        fallback_io(cfg);
    }
    follower_catches_up_through_a_snapshot(tweak);
}

fn follower_catches_up_through_a_snapshot(tweak: fn(&mut NodeConfig)) {
    let mut c = Cluster::with(3, tweak);
    let leader = c.wait_leader();
    let lagging = c
        .running()
        .into_iter()
        .find(|id| *id != leader)
        .expect("follower");
    c.shutdown(lagging);
    let load = Load::start(&c.handles(), 2);
    load.wait_more(400);
    let acked = load.stop();
    let h = c.handle(c.wait_leader());
    let snap = block_on(h.snapshot()).expect("snapshot");
    let st = block_on(h.status()).expect("status");
    assert!(st.snapshot_index >= snap && snap > LogIndex(0));
    c.start(lagging);
    c.wait_applied(st.commit);
    assert_no_acked_write_lost(&c, &acked);
    let m = c.handle(lagging).metrics();
    assert!(
        m.counters.snapshots_installed >= 1,
        "caught up through a snapshot: {m:?}"
    );
    // The follower restarts from its installed snapshot.
    c.shutdown(lagging);
    c.start(lagging);
    c.wait_leader();
    assert_no_acked_write_lost(&c, &acked);
}

#[test]
fn add_remove_and_transfer_under_load() {
    let mut c = Cluster::new(3);
    let leader = c.wait_leader();
    let load = Load::start(&c.handles(), 2);
    load.wait_more(50);

    // Add node 4 as a voter.
    let addr4 = c.prepare(NodeId(4));
    c.start(NodeId(4));
    load.add(c.handle(NodeId(4)));
    let h = c.handle(leader);
    block_on(h.add_voter(NodeId(4), addr4)).expect("add voter 4");
    let st = block_on(h.status()).expect("status");
    assert!(st.membership.is_voter(NodeId(4)) && !st.membership.is_joint());
    c.wait_applied(st.commit);
    load.wait_more(50);

    // Add node 5 as a learner, then promote it.
    let addr5 = c.prepare(NodeId(5));
    c.start(NodeId(5));
    load.add(c.handle(NodeId(5)));
    let leader = c.wait_leader();
    block_on(c.handle(leader).add_learner(NodeId(5), addr5)).expect("add learner 5");
    block_on(c.handle(leader).promote(NodeId(5))).expect("promote 5");
    load.wait_more(50);

    // Transfer leadership to node 4.
    let leader = c.wait_leader();
    if leader != NodeId(4) {
        block_on(c.handle(leader).transfer_leadership(NodeId(4))).expect("transfer");
    }
    assert_eq!(c.wait_leader(), NodeId(4));
    load.wait_more(50);

    // Remove node 1 (maybe the original leader) and stop it.
    block_on(c.handle(NodeId(4)).remove(NodeId(1))).expect("remove 1");
    let st = block_on(c.handle(NodeId(4)).status()).expect("status");
    assert!(!st.membership.contains(NodeId(1)));
    c.shutdown(NodeId(1));
    load.wait_more(50);
    let acked = load.stop();
    c.wait_leader();
    assert_no_acked_write_lost(&c, &acked);
}

#[test]
fn garbage_and_foreign_peers_leave_the_cluster_unharmed() {
    let c = Cluster::new(3);
    let leader = c.wait_leader();
    let target = c.members[&leader].addr;
    // Raw garbage, a plausible-looking header with a huge length, and a flood of zeros.
    for junk in [
        &b"GET / HTTP/1.1\r\n\r\n"[..],
        &[0xff; 64][..],
        &[0u8; 4096][..],
    ] {
        if let Ok(mut s) = TcpStream::connect(target) {
            let _ = s.write_all(junk);
        }
    }
    // A node of another cluster claiming a member's id, and an unknown node id of ours. The
    // claimed member is not the leader: a transport cannot add its own id as a peer.
    use ringraft::transport::{ThreadTransport, Transport, TransportConfig};
    let claimed = *c
        .members
        .keys()
        .find(|&&id| id != leader)
        .expect("a 3-node cluster has a follower");
    for (cluster, id) in [(CLUSTER_ID + 1, claimed), (CLUSTER_ID, NodeId(99))] {
        let (t, _inbox) =
            ThreadTransport::start(TransportConfig::new(cluster, id), free_addr()).expect("start");
        t.add_peer(leader, target).expect("add peer");
        for _ in 0..20 {
            let _ = t.send(leader, Bytes::from_static(b"\x01\x03garbage"));
        }
        thread::sleep(Duration::from_millis(50));
        t.shutdown();
    }
    let still = c.wait_leader();
    let give_up = Instant::now() + PATIENCE;
    let handles = c.handles();
    for i in 0..50 {
        let cmd = KvCommand::set(key(9, i), "ok").encode();
        assert!(propose_somewhere(&handles, &cmd, give_up).is_some());
    }
    let states = c.states();
    for (id, s) in &states {
        assert_eq!(s.len(), 50, "node {id}");
    }
    assert_eq!(
        block_on(c.handle(still).status()).expect("status").role,
        Role::Leader
    );
}

#[test]
fn try_propose_reports_busy_and_shutdown_fails_pending_requests() {
    fn tiny(cfg: &mut NodeConfig) {
        cfg.proposals_inflight_max = 1;
    }
    let c = Cluster::with(1, tiny);
    let leader = c.wait_leader();
    let h = c.handle(leader);
    // Hold the only permit with a proposal on another thread while trying a second.
    let busy = Arc::new(AtomicBool::new(false));
    let stop = Arc::new(AtomicBool::new(false));
    let t = {
        let (h, stop) = (h.clone(), stop.clone());
        thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                let _ = block_on(h.propose(KvCommand::set("a", "b").encode()));
            }
        })
    };
    let deadline = Instant::now() + PATIENCE;
    while !busy.load(Ordering::Relaxed) && Instant::now() < deadline {
        if matches!(
            block_on(h.try_propose(KvCommand::set("c", "d").encode())),
            Err(NodeError::Busy)
        ) {
            busy.store(true, Ordering::Relaxed);
        }
    }
    stop.store(true, Ordering::Relaxed);
    t.join().expect("thread");
    assert!(
        busy.load(Ordering::Relaxed),
        "try_propose never saw the bound"
    );
    block_on(h.shutdown());
    let r = block_on(h.propose(Bytes::from_static(b"x")));
    assert!(matches!(r, Err(NodeError::Stopped)), "{r:?}");
}
