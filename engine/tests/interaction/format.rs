//! Compact text forms of entries, messages and Readys for transcripts.

use std::fmt::Write as _;

use ringraft::raft::{Entry, EntryKind, Message, MessageBody, NodeId, Ready};

pub fn fmt_entry(e: &Entry) -> String {
    match e.kind {
        EntryKind::Noop => format!("{}/{} noop", e.index.0, e.term.0),
        EntryKind::Normal => {
            format!(
                "{}/{} {:?}",
                e.index.0,
                e.term.0,
                String::from_utf8_lossy(&e.data)
            )
        }
        EntryKind::ConfChange => {
            let cc = ringraft::raft::ConfChange::decode(&e.data);
            format!("{}/{} conf {:?}", e.index.0, e.term.0, cc)
        }
    }
}

fn fmt_entries(es: &[Entry]) -> String {
    if es.len() > 6 {
        let first = fmt_entry(&es[0]);
        let last = fmt_entry(&es[es.len() - 1]);
        return format!("[{first} .. {last} ({} entries)]", es.len());
    }
    let v: Vec<String> = es.iter().map(fmt_entry).collect();
    format!("[{}]", v.join(", "))
}

pub fn fmt_msg(m: &Message) -> String {
    let body = match &m.body {
        MessageBody::RequestVote {
            pre_vote,
            last_index,
            last_term,
            transfer,
        } => format!(
            "{} last={}/{}{}",
            if *pre_vote { "PreVote" } else { "Vote" },
            last_index.0,
            last_term.0,
            if *transfer { " transfer" } else { "" }
        ),
        MessageBody::RequestVoteResponse { pre_vote, granted } => format!(
            "{}Resp {}",
            if *pre_vote { "PreVote" } else { "Vote" },
            if *granted { "granted" } else { "REJECTED" }
        ),
        MessageBody::AppendEntries {
            prev_index,
            prev_term,
            entries,
            commit,
            round,
        } => format!(
            "App prev={}/{} commit={} round={} {}",
            prev_index.0,
            prev_term.0,
            commit.0,
            round,
            fmt_entries(entries)
        ),
        MessageBody::AppendEntriesResponse {
            index,
            reject,
            round,
        } => match reject {
            None => format!("AppResp ok index={} round={round}", index.0),
            Some(h) => format!(
                "AppResp REJECT index={} hint={}/{} round={round}",
                index.0, h.index.0, h.term.0
            ),
        },
        MessageBody::Heartbeat { commit, round } => {
            format!("Heartbeat commit={} round={round}", commit.0)
        }
        MessageBody::HeartbeatResponse { round } => format!("HeartbeatResp round={round}"),
        MessageBody::InstallSnapshot { meta, round } => format!(
            "InstallSnapshot {}/{} voters={:?} round={round}",
            meta.index.0,
            meta.term.0,
            meta.membership
                .voters
                .iter()
                .map(|v| v.0)
                .collect::<Vec<_>>()
        ),
        MessageBody::TimeoutNow => "TimeoutNow".to_string(),
        MessageBody::ReadIndex { id } => format!("ReadIndex id={}", id.0),
        MessageBody::ReadIndexResponse { id, index } => {
            format!("ReadIndexResp id={} index={:?}", id.0, index.map(|i| i.0))
        }
    };
    format!("{}->{} t{} {}", m.from.0, m.to.0, m.term.0, body)
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
        let _ = writeln!(s, "  entries: {}", fmt_entries(&rd.entries));
    }
    if !rd.committed_entries.is_empty() {
        let _ = writeln!(s, "  committed: {}", fmt_entries(&rd.committed_entries));
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
