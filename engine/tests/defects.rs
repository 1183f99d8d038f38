//! Regression tests of the defects found by reading the core against its safety contract
//! (issue 13). Each test names the item it covers; each failed before its fix.

mod interaction;

use bytes::Bytes;
use interaction::Env;
use ringraft::raft::{
    Config, Entry, EntryKind, InitialState, Instant, LogIndex, Membership, Message, MessageBody,
    NodeId, ProposeError, RawNode, ReadId, ReadMode, Ready, SnapshotMeta, StepError, Term,
};

const NOW: Instant = Instant(0);

fn follower(id: u64) -> RawNode {
    let init = InitialState::bootstrap([NodeId(1), NodeId(2), NodeId(3)]);
    RawNode::new(Config::new(NodeId(id)), init, id, NOW).expect("valid config")
}

fn single_leader() -> RawNode {
    let mut n = RawNode::new(
        Config::new(NodeId(1)),
        InitialState::bootstrap([NodeId(1)]),
        1,
        NOW,
    )
    .expect("valid config");
    n.campaign(NOW);
    while n.has_ready() {
        let rd = n.ready();
        n.on_persisted(rd.number, NOW);
    }
    assert_eq!(n.status().leader, Some(NodeId(1)));
    n
}

fn entries(first: u64, term: u64, count: u64, len: usize) -> Vec<Entry> {
    (first..first + count)
        .map(|i| Entry {
            index: LogIndex(i),
            term: Term(term),
            kind: EntryKind::Normal,
            data: Bytes::from(vec![0u8; len]),
        })
        .collect()
}

fn install_snapshot(from: u64, to: u64, term: u64, at: (u64, u64)) -> Message {
    Message {
        from: NodeId(from),
        to: NodeId(to),
        term: Term(term),
        body: MessageBody::InstallSnapshot {
            meta: SnapshotMeta {
                index: LogIndex(at.0),
                term: Term(at.1),
                membership: Membership::with_voters([NodeId(1), NodeId(2), NodeId(3)]),
            },
            round: 1,
        },
    }
}

/// The highest index a Ready acknowledges to a leader (sent once the Ready is persisted).
fn acked(rd: &Ready) -> Option<LogIndex> {
    rd.persisted_messages
        .iter()
        .filter_map(|m| match m.body {
            MessageBody::AppendEntriesResponse {
                index,
                reject: None,
                ..
            } => Some(index),
            _ => None,
        })
        .max()
}

fn append(to: u64, term: u64, prev: (u64, u64), ents: Vec<Entry>, commit: u64) -> Message {
    Message {
        from: NodeId(1),
        to: NodeId(to),
        term: Term(term),
        body: MessageBody::AppendEntries {
            prev_index: LogIndex(prev.0),
            prev_term: Term(prev.1),
            entries: ents.into(),
            commit: LogIndex(commit),
            round: 1,
        },
    }
}

/// Item 1: a proposal over `entry_bytes_max` is refused with a typed error, and the leader
/// goes on accepting proposals.
#[test]
fn item1_oversized_proposal_is_refused_by_the_core() {
    let mut n = single_leader();
    let max = n.config().entry_bytes_max;
    let big = Bytes::from(vec![7u8; usize::try_from(max).expect("fits") + 1]);
    assert_eq!(
        n.propose(big),
        Err(ProposeError::TooLarge { len: max + 1, max })
    );
    let exact = Bytes::from(vec![7u8; usize::try_from(max).expect("fits")]);
    assert!(
        n.propose(exact).is_ok(),
        "an entry of exactly the maximum fits"
    );
}

/// Item 1, follower side: an AppendEntries carrying an entry over this node's bound (a leader
/// configured differently) is refused whole; nothing reaches the node's storage.
#[test]
fn item1_oversized_entry_from_a_leader_is_refused_by_the_follower() {
    let mut f = follower(2);
    let max = f.config().entry_bytes_max;
    let len = usize::try_from(max).expect("fits") + 1;
    let m = append(2, 1, (0, 0), entries(1, 1, 1, len), 0);
    assert_eq!(
        f.step(m, NOW),
        Err(StepError::EntryTooLarge {
            index: LogIndex(1),
            len: max + 1,
            max
        })
    );
    assert_eq!(f.status().last_index, LogIndex(0));
}

/// Delivers every queued message addressed to `to` and returns what `to` sends right away in
/// its next Ready (its own Ready is left unpersisted).
fn deliver_and_collect(env: &mut Env, to: u64) -> Vec<MessageBody> {
    env.run(&format!("deliver {to}"));
    let before = env.net.len();
    env.run(&format!("ready {to}"));
    env.net[before..].iter().map(|m| m.body.clone()).collect()
}

/// Item 3: a follower forwarded every read with the lease mode, so a caller who asked for
/// `ReadMode::ReadIndex` (not to depend on clocks) was served from the leader's lease. The
/// mode now travels in the message: with a valid lease the leader answers a forwarded lease
/// read at once, but confirms a forwarded ReadIndex read with a heartbeat round first.
#[test]
fn item3_forwarded_read_index_is_not_served_from_the_lease() {
    let mut env = Env::default();
    env.run("add-nodes 3");
    env.run("campaign 1");
    env.run("stabilize");
    // A heartbeat round acknowledged by both followers starts the lease.
    env.run("tick-heartbeat 1");
    env.run("stabilize");
    assert!(
        env.node(NodeId(1)).raw.status().lease_until.is_some(),
        "the leader holds a lease"
    );
    let answered_at_once = |bodies: &[MessageBody]| {
        bodies
            .iter()
            .any(|b| matches!(b, MessageBody::ReadIndexResponse { index: Some(_), .. }))
    };

    env.run("read 2 lease 1");
    env.run("process 2");
    let lease = deliver_and_collect(&mut env, 1);
    assert!(
        answered_at_once(&lease),
        "a lease read is served from the lease: {lease:?}"
    );
    env.run("stabilize");

    env.run("read 2 index 2");
    env.run("process 2");
    let index = deliver_and_collect(&mut env, 1);
    assert!(
        !answered_at_once(&index),
        "a ReadIndex read waits for a quorum round: {index:?}"
    );
    assert!(
        index
            .iter()
            .any(|b| matches!(b, MessageBody::Heartbeat { .. })),
        "the leader confirms it with a heartbeat round: {index:?}"
    );
    let out = env.run("stabilize");
    assert!(
        out.contains("read ready: id=2"),
        "then it is served:\n{out}"
    );
}

/// Item 0 (found by the simulation's snapshot profile, seeds 1161363 and 1179161): a follower
/// took entries 1..3 and queued their acknowledgement behind their write; a snapshot at 2/1
/// arrived before that write was durable, and `RaftLog::restore` discarded the whole log,
/// entry 3 included, although the acknowledgement of 3 still left. The leader then counted
/// this node for an entry its log no longer held: it could win an election without it, and
/// an acknowledged write was lost. Raft figure 13 step 6: the log holds the snapshot's last
/// entry, so the entries after it stay.
#[test]
fn item0_snapshot_over_unpersisted_matching_entries_keeps_the_suffix() {
    let mut f = follower(2);
    f.step(append(2, 1, (0, 0), entries(1, 1, 3, 1), 0), NOW)
        .expect("append");
    let first = f.ready();
    assert_eq!(
        acked(&first),
        Some(LogIndex(3)),
        "the ack of 3 waits for the write"
    );
    f.step(install_snapshot(1, 2, 1, (2, 1)), NOW)
        .expect("snapshot");
    let st = f.status();
    assert_eq!(
        (st.first_index, st.last_index, f.term_at(LogIndex(3))),
        (LogIndex(3), LogIndex(3), Some(Term(1))),
        "entry 3 follows the snapshot's last entry and stays"
    );
    let second = f.ready();
    assert!(second.snapshot.is_some());
    f.on_persisted(first.number, NOW);
    f.on_persisted(second.number, NOW);
    let acked_max = [acked(&first), acked(&second)].into_iter().flatten().max();
    let st = f.status();
    assert!(
        acked_max <= Some(st.persisted) && st.persisted <= st.last_index,
        "every acknowledged index is durable and in the log: acked {acked_max:?}, {st:?}"
    );
}

/// Item 4: a Ready handed out before a snapshot discarded the whole log named entry 3/3; the
/// snapshot's install truncated that write, and an entry 3/3 came back in a later Ready.
/// The completion of the old Ready matched it by (index, term) and marked it persisted while
/// its write was still pending (a leader would count itself for it). Records from before the
/// discard are now ignored. The two leaders here break log matching between them (2/1 then
/// 2/2 under the same 3/3), which a faulty peer can do with messages each valid on its own.
#[test]
fn item4_ready_from_before_a_restore_confirms_nothing_after_it() {
    let mut f = follower(2);
    let mut ents = entries(1, 1, 2, 1);
    ents.extend(entries(3, 3, 1, 1));
    f.step(append(2, 3, (0, 0), ents, 0), NOW).expect("append");
    let old = f.ready();
    // A snapshot at 2/2: the log has 2/1, so all of it goes.
    f.step(install_snapshot(3, 2, 4, (2, 2)), NOW)
        .expect("snapshot");
    assert_eq!(f.status().last_index, LogIndex(2));
    let mut again = append(2, 4, (2, 2), entries(3, 3, 1, 1), 2);
    again.from = NodeId(3);
    f.step(again, NOW).expect("append after the snapshot");
    let new = f.ready();
    assert_eq!(new.last_entry_index(), Some(LogIndex(3)));
    f.on_persisted(old.number, NOW);
    assert_eq!(
        f.status().persisted,
        LogIndex(2),
        "3/3 of the later Ready is not durable yet"
    );
    f.on_persisted(new.number, NOW);
    assert_eq!(f.status().persisted, LogIndex(3));
}

/// A follower of leader 1 in term 1 that knows entry 1 committed, booted with `seed` (the
/// runtime draws a new one at every boot).
fn follower_of_1(seed: u64) -> RawNode {
    let init = InitialState::bootstrap([NodeId(1), NodeId(2), NodeId(3)]);
    let mut f = RawNode::new(Config::new(NodeId(2)), init, seed, NOW).expect("valid config");
    f.step(append(2, 1, (0, 0), entries(1, 1, 1, 1), 1), NOW)
        .expect("append");
    let rd = f.ready();
    f.on_persisted(rd.number, NOW);
    f
}

/// Forwards read `id` and returns the id it carries on the wire.
fn forward_read(f: &mut RawNode, id: u64) -> ReadId {
    f.read_index(ReadId(id), ReadMode::ReadIndex, NOW)
        .expect("forwarded");
    let rd = f.ready();
    rd.messages
        .iter()
        .find_map(|m| match m.body {
            MessageBody::ReadIndex { id, .. } if m.to == NodeId(1) => Some(id),
            _ => None,
        })
        .expect("the read goes to the leader")
}

fn read_answer(wire: ReadId, index: u64) -> Message {
    Message {
        from: NodeId(1),
        to: NodeId(2),
        term: Term(1),
        body: MessageBody::ReadIndexResponse {
            id: wire,
            index: Some(LogIndex(index)),
        },
    }
}

/// Item 7: read ids restart at 1 at every boot and the answer was matched on the id alone,
/// while the leader's send queue survives reconnects: the late answer to read 1 of the
/// previous boot (an older read index) completed read 1 of this boot, a stale read. The
/// forwarded id is now unique across incarnations, and only the leader asked may answer.
#[test]
fn item7_an_answer_to_a_read_of_an_earlier_boot_completes_nothing() {
    let mut before = follower_of_1(11);
    let stale_wire = forward_read(&mut before, 1);
    drop(before); // the node crashes; the leader answers later, at index 1
    let mut f = follower_of_1(12);
    let wire = forward_read(&mut f, 1);
    assert_ne!(wire, stale_wire, "wire ids differ across boots");
    f.step(read_answer(stale_wire, 1), NOW).expect("step");
    let mut from_other = read_answer(wire, 1);
    from_other.from = NodeId(3);
    f.step(from_other, NOW).expect("step");
    assert!(
        !f.has_ready() || f.ready().read_states.is_empty(),
        "neither the old boot's answer nor another node's completes the read"
    );
    f.step(read_answer(wire, 5), NOW).expect("step");
    let served: Vec<_> = f
        .ready()
        .read_states
        .iter()
        .map(|r| (r.id, r.index))
        .collect();
    assert_eq!(served, vec![(ReadId(1), LogIndex(5))]);
}

/// Issue 13, smaller: the automatic leave of a joint configuration was proposed only after
/// an apply. Refused then (a leadership transfer was running), it waited for the next apply,
/// which an idle cluster never has: the cluster stayed joint. The leader retries on tick.
#[test]
fn auto_leave_refused_during_a_transfer_is_retried_on_tick() {
    let mut env = Env::default();
    env.run("add-nodes 4 voters=1,2,3");
    env.run("campaign 1");
    env.run("stabilize");
    let out = env.run("propose-conf 1 add-voter 4 remove 3");
    assert!(out.contains("proposed conf change"), "{out}");
    // The transferee is cut off: the transfer waits for it to catch up, then times out.
    env.run("partition 2 / 1 3 4");
    env.run("transfer 1 2");
    env.run("stabilize");
    let leader = |env: &mut Env| env.node(NodeId(1)).raw.membership().clone();
    assert!(leader(&mut env).is_joint(), "joint configuration applied");
    assert!(
        env.node(NodeId(1)).raw.status().transferee.is_some(),
        "the transfer still runs, so the leave was refused"
    );
    for _ in 0..30 {
        env.run("tick 1");
        env.run("stabilize 1 3 4");
    }
    let m = leader(&mut env);
    assert!(
        !m.is_joint(),
        "the leader left the joint configuration: {m:?}"
    );
    assert_eq!(
        m.voters,
        [NodeId(1), NodeId(2), NodeId(4)].into_iter().collect()
    );
}

/// Item 4 through a truncation (found by `fuzz_peers.rs`): a Ready wrote 1/1 2/3; the leader
/// of term 5 replaced both with 1/2 2/3 (breaking log matching, as a faulty peer can); the
/// completion of the first Ready matched 2/3 by (index, term) and marked it persisted while
/// 1/2 was still pending. A Ready now confirms only what is below every later truncation.
#[test]
fn item4_ready_from_before_a_truncation_confirms_nothing_after_it() {
    let mut f = follower(2);
    let mut ents = entries(1, 1, 1, 1);
    ents.extend(entries(2, 3, 1, 1));
    f.step(append(2, 3, (0, 0), ents, 0), NOW).expect("append");
    let old = f.ready();
    let mut ents = entries(1, 2, 1, 1);
    ents.extend(entries(2, 3, 1, 1));
    let mut again = append(2, 5, (0, 0), ents, 0);
    again.from = NodeId(1);
    f.step(again, NOW).expect("conflicting append");
    let new = f.ready();
    assert_eq!(new.entries.first().map(|e| e.index), Some(LogIndex(1)));
    f.on_persisted(old.number, NOW);
    assert_eq!(
        f.status().persisted,
        LogIndex(0),
        "1/2 and 2/3 of the later Ready are not durable yet"
    );
    f.on_persisted(new.number, NOW);
    assert_eq!(f.status().persisted, LogIndex(2));
}
