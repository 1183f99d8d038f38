//! Regression tests of the defects found by reading the core against its safety contract
//! (issue 13). Each test names the item it covers; each failed before its fix.

use bytes::Bytes;
use ringraft::raft::{
    Config, Entry, EntryKind, InitialState, Instant, LogIndex, Message, MessageBody, NodeId,
    ProposeError, RawNode, StepError, Term,
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
