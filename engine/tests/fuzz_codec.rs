//! Fuzz target: the peer wire codec (`ringraft::codec`) on mutated frames, and a
//! follower's core on whatever the codec accepts (issue 13 item 6: no input from a peer may
//! panic a node).
//!
//! Each case takes an encoded message from the checked-in corpus (`fuzz_corpus/codec.txt`:
//! one of each kind, sent by node 1 to the follower, node 2, plus inputs that once found a
//! bug), mutates it and decodes it. Checked: no panic; a typed error, or a message that
//! re-encodes to exactly the input bytes (decoding is strict, so there is one encoding per
//! message); and a decoded message from node 1 to node 2, stepped into a follower with a
//! log (and, sent the other way, into the leader) and driven through its `Ready`s and ticks,
//! never panics it (a refusal is a typed `StepError`). `RINGRAFT_FUZZ_SEED=n` replays one case; `RINGRAFT_FUZZ_REGEN=1` rewrites
//! the seed part of the corpus.

mod fuzz_common;

use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use fuzz_common::{escape, mutate, read_escaped_lines, run_seeded, Rng};
use ringraft::codec::{decode, decode_from, encode};
use ringraft::raft::{
    Config, Entry, EntryKind, HardState, InitialState, Instant, LogIndex, Membership, Message,
    MessageBody, NodeId, RawNode, ReadId, ReadMode, RejectHint, SnapshotMeta, Term,
};

/// Cases per run: a few seconds in a debug build.
const CASES: u64 = 100_000;

const LEADER: NodeId = NodeId(1);
const FOLLOWER: NodeId = NodeId(2);

fn entry(index: u64, term: u64, kind: EntryKind, data: &'static [u8]) -> Entry {
    Entry {
        index: LogIndex(index),
        term: Term(term),
        kind,
        data: Bytes::from_static(data),
    }
}

/// Node `id` of a 3-node cluster: entries 1..=5 (terms 1, 1, 2, 2, 2), term 2, commit 3.
fn follower_as(id: NodeId) -> RawNode {
    let mut init = InitialState::bootstrap([LEADER, FOLLOWER, NodeId(3)]);
    init.entries = [(1, 1), (2, 1), (3, 2), (4, 2), (5, 2)]
        .into_iter()
        .map(|(i, t)| entry(i, t, EntryKind::Normal, b"v"))
        .collect();
    init.hard_state = HardState {
        term: Term(2),
        vote: Some(LEADER),
        commit: LogIndex(3),
    };
    RawNode::new(Config::new(id), init, 7, Instant(0)).expect("valid node")
}

/// One message of each kind from the leader, with fields near the follower's state.
fn seed_messages() -> Vec<Message> {
    let msg = |term: u64, body| Message {
        from: LEADER,
        to: FOLLOWER,
        term: Term(term),
        body,
    };
    let append = |prev: (u64, u64), entries: Vec<Entry>, commit: u64| MessageBody::AppendEntries {
        prev_index: LogIndex(prev.0),
        prev_term: Term(prev.1),
        entries: entries.into(),
        commit: LogIndex(commit),
        round: 9,
    };
    vec![
        msg(
            3,
            MessageBody::RequestVote {
                pre_vote: false,
                last_index: LogIndex(5),
                last_term: Term(2),
                transfer: false,
            },
        ),
        msg(
            3,
            MessageBody::RequestVoteResponse {
                pre_vote: true,
                granted: true,
            },
        ),
        msg(
            2,
            append(
                (5, 2),
                vec![
                    entry(6, 2, EntryKind::Normal, b"six"),
                    entry(7, 2, EntryKind::Noop, b""),
                ],
                6,
            ),
        ),
        msg(
            3,
            append((3, 2), vec![entry(4, 3, EntryKind::Normal, b"conflict")], 4),
        ),
        msg(2, append((5, 2), vec![], 5)),
        msg(
            2,
            MessageBody::AppendEntriesResponse {
                index: LogIndex(5),
                reject: Some(RejectHint {
                    index: LogIndex(3),
                    term: Term(2),
                }),
                round: 4,
            },
        ),
        msg(
            2,
            MessageBody::Heartbeat {
                commit: LogIndex(5),
                round: 3,
            },
        ),
        msg(2, MessageBody::HeartbeatResponse { round: 3 }),
        msg(
            3,
            MessageBody::InstallSnapshot {
                meta: SnapshotMeta {
                    index: LogIndex(9),
                    term: Term(3),
                    membership: Membership::with_voters([LEADER, FOLLOWER, NodeId(3)]),
                },
                round: 1,
            },
        ),
        msg(2, MessageBody::TimeoutNow),
        msg(
            2,
            MessageBody::ReadIndex {
                id: ReadId(1),
                mode: ReadMode::Lease,
            },
        ),
        msg(
            2,
            MessageBody::ReadIndex {
                id: ReadId(2),
                mode: ReadMode::ReadIndex,
            },
        ),
        msg(
            2,
            MessageBody::ReadIndexResponse {
                id: ReadId(1),
                index: Some(LogIndex(5)),
            },
        ),
    ]
}

const CORPUS: &str = "codec.txt";

fn corpus() -> Vec<Vec<u8>> {
    if std::env::var("RINGRAFT_FUZZ_REGEN").is_ok() {
        let path = fuzz_common::corpus_path(CORPUS);
        let old = std::fs::read_to_string(&path).unwrap_or_default();
        let found: Vec<&str> = old
            .lines()
            .skip_while(|l| !l.starts_with("# Found"))
            .collect();
        let mut text = String::from(
            "# Encoded messages for engine/tests/fuzz_codec.rs, one per line, with \\r \\n \\\\ \\xNN\n\
             # escapes. The lines before '# Found' are regenerated by RINGRAFT_FUZZ_REGEN=1.\n",
        );
        for m in seed_messages() {
            text.push_str(&escape(&encode(&m).expect("encodes")));
            text.push('\n');
        }
        for l in found {
            text.push_str(l);
            text.push('\n');
        }
        std::fs::write(&path, text).expect("write the corpus");
    }
    read_escaped_lines(CORPUS)
}

/// The leader of the same cluster at term 3, its log 1..=5 plus its term's no-op.
fn leader() -> RawNode {
    let mut l = follower_as(LEADER);
    l.campaign(Instant(0));
    let mut now = Instant(0);
    for _ in 0..4 {
        while l.has_ready() {
            let rd = l.ready();
            for m in rd.messages.iter().chain(&rd.persisted_messages) {
                if let MessageBody::RequestVote { pre_vote, .. } = m.body {
                    let granted = Message {
                        from: m.to,
                        to: LEADER,
                        term: m.term,
                        body: MessageBody::RequestVoteResponse {
                            pre_vote,
                            granted: true,
                        },
                    };
                    l.step(granted, now).expect("a vote");
                }
            }
            l.on_persisted(rd.number, now);
        }
        now = Instant(now.0 + 1);
    }
    assert_eq!(l.status().leader, Some(LEADER), "elected");
    l
}

/// Messages a node took (`step` returned `Ok`), for the summary line.
static TAKEN: AtomicU64 = AtomicU64::new(0);

/// Steps `m` into `node` and drives it: every `Ready` persisted and applied, a few ticks.
/// Only a panic fails.
fn step_and_drive(mut node: RawNode, m: Message) {
    let mut now = Instant(100);
    if node.step(m, now).is_err() {
        return;
    }
    TAKEN.fetch_add(1, Ordering::Relaxed);
    for _ in 0..8 {
        while node.has_ready() {
            let rd = node.ready();
            if let Some(last) = rd.committed_entries.last() {
                let _ = node.on_applied(last.index);
            }
            node.on_persisted(rd.number, now);
        }
        now = Instant(now.0 + 10);
        node.tick(now);
    }
}

fn check(input: &[u8]) {
    let bytes = Bytes::copy_from_slice(input);
    let Ok(m) = decode(bytes.clone()) else {
        return;
    };
    let again = encode(&m).expect("a decoded message encodes");
    assert_eq!(&again[..], input, "decoded {m:?} re-encodes differently");
    if let Ok(m) = decode_from(LEADER, FOLLOWER, bytes) {
        // What a follower sends, the other way round, exercises the leader's handlers. (A
        // leader's own messages claiming the leader's term from another node would be a
        // second leader in the term: the core stops on that broken safety invariant by
        // design, as Raft does not tolerate Byzantine peers.)
        let from_follower = matches!(
            m.body,
            MessageBody::AppendEntriesResponse { .. }
                | MessageBody::HeartbeatResponse { .. }
                | MessageBody::RequestVote { .. }
                | MessageBody::RequestVoteResponse { .. }
                | MessageBody::ReadIndex { .. }
        );
        if from_follower {
            let back = Message {
                from: FOLLOWER,
                to: LEADER,
                ..m.clone()
            };
            step_and_drive(leader(), back);
        }
        step_and_drive(follower_as(FOLLOWER), m);
    }
}

#[test]
fn mutated_frames() {
    let corpus = corpus();
    assert!(corpus.len() >= seed_messages().len());
    let mut decoded = 0u64;
    run_seeded(0xC0DE_0000, CASES, |seed| {
        let mut rng = Rng::new(seed);
        let base = &corpus[rng.below(corpus.len())];
        let donor = &corpus[rng.below(corpus.len())];
        let input = mutate(&mut rng, base, donor);
        if std::env::var("RINGRAFT_FUZZ_SEED").is_ok() {
            eprintln!("input {:?}", escape(&input));
        }
        if decode(Bytes::copy_from_slice(&input)).is_ok() {
            decoded += 1;
        }
        check(&input);
    });
    let taken = TAKEN.load(Ordering::Relaxed);
    println!("{decoded} mutated frames decoded, the rest refused; {taken} taken by a node");
    assert!(
        decoded > 0,
        "every mutation was refused: the core was never reached"
    );
}

/// The corpus decodes whole and each message passes the checks.
#[test]
fn the_corpus_passes_unmutated() {
    let corpus = corpus();
    for m in seed_messages() {
        let wire = encode(&m).expect("encodes");
        assert!(corpus.contains(&wire.to_vec()), "corpus is stale: {m:?}");
    }
    for input in corpus {
        check(&input);
    }
}
