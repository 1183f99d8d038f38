//! Compact text forms of entries, messages and Readys for transcripts.

use std::fmt::Write as _;

use ringraft::raft::{DisplayEntries, Message, NodeId, Ready};

pub fn fmt_msg(m: &Message) -> String {
    m.to_string()
}

pub fn fmt_ready(n: NodeId, rd: &Ready) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "> {n} ready #{}", rd.number);
    if let Some(ss) = rd.soft_state {
        let _ = writeln!(
            s,
            "  state: {:?} leader={:?}",
            ss.role,
            ss.leader.map(|l| l.0)
        );
    }
    if let Some(hs) = rd.hard_state {
        let _ = writeln!(
            s,
            "  hard state: term={} vote={:?} commit={}",
            hs.term.0,
            hs.vote.map(|v| v.0),
            hs.commit.0
        );
    }
    if let Some(snap) = &rd.snapshot {
        let _ = writeln!(s, "  snapshot: {}/{}", snap.index.0, snap.term.0);
    }
    if !rd.entries.is_empty() {
        let _ = writeln!(s, "  entries: {}", DisplayEntries(&rd.entries));
    }
    if !rd.committed_entries.is_empty() {
        let _ = writeln!(s, "  committed: {}", DisplayEntries(&rd.committed_entries));
    }
    for m in &rd.messages {
        let _ = writeln!(s, "  send: {}", fmt_msg(m));
    }
    for m in &rd.persisted_messages {
        let _ = writeln!(s, "  send after persist: {}", fmt_msg(m));
    }
    for r in &rd.read_states {
        let _ = writeln!(s, "  read ready: id={} index={}", r.id.0, r.index.0);
    }
    for (id, e) in &rd.failed_reads {
        let _ = writeln!(s, "  read failed: id={} {e:?}", id.0);
    }
    s
}
