//! Compact one-line text forms of entries and messages, for logs, transcripts and traces.
//!
//! The forms are stable enough to be checked in: the core's transcript tests
//! (`engine/tests/testdata`) print messages with them.

use std::fmt;

use crate::raft::membership::ConfChange;
use crate::raft::message::{Message, MessageBody};
use crate::raft::types::{Entry, EntryKind};

/// Runs of entries longer than this print only their first and last entry.
const ENTRIES_SHOWN_MAX: usize = 6;

impl fmt::Display for Entry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (index, term) = (self.index.0, self.term.0);
        match self.kind {
            EntryKind::Noop => write!(f, "{index}/{term} noop"),
            EntryKind::Normal => {
                write!(
                    f,
                    "{index}/{term} {:?}",
                    String::from_utf8_lossy(&self.data)
                )
            }
            EntryKind::ConfChange => {
                write!(
                    f,
                    "{index}/{term} conf {:?}",
                    ConfChange::decode(&self.data)
                )
            }
        }
    }
}

/// Displays a run of entries as `[a, b, c]`, or `[first .. last (n entries)]` when long.
#[derive(Clone, Copy, Debug)]
pub struct DisplayEntries<'a>(pub &'a [Entry]);

impl fmt::Display for DisplayEntries<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let es = self.0;
        match (es.first(), es.last()) {
            (Some(first), Some(last)) if es.len() > ENTRIES_SHOWN_MAX => {
                write!(f, "[{first} .. {last} ({} entries)]", es.len())
            }
            _ => {
                f.write_str("[")?;
                for (i, e) in es.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{e}")?;
                }
                f.write_str("]")
            }
        }
    }
}

impl fmt::Display for Message {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}->{} t{} ", self.from.0, self.to.0, self.term.0)?;
        fmt_body(&self.body, f)
    }
}

fn vote_kind(pre_vote: bool) -> &'static str {
    if pre_vote {
        "PreVote"
    } else {
        "Vote"
    }
}

fn fmt_body(body: &MessageBody, f: &mut fmt::Formatter<'_>) -> fmt::Result {
    match body {
        MessageBody::RequestVote {
            pre_vote,
            last_index,
            last_term,
            transfer,
        } => write!(
            f,
            "{} last={}/{}{}",
            vote_kind(*pre_vote),
            last_index.0,
            last_term.0,
            if *transfer { " transfer" } else { "" }
        ),
        MessageBody::RequestVoteResponse { pre_vote, granted } => write!(
            f,
            "{}Resp {}",
            vote_kind(*pre_vote),
            if *granted { "granted" } else { "REJECTED" }
        ),
        MessageBody::AppendEntries {
            prev_index,
            prev_term,
            entries,
            commit,
            round,
        } => write!(
            f,
            "App prev={}/{} commit={} round={round} {}",
            prev_index.0,
            prev_term.0,
            commit.0,
            DisplayEntries(entries)
        ),
        MessageBody::AppendEntriesResponse {
            index,
            reject: None,
            round,
        } => write!(f, "AppResp ok index={} round={round}", index.0),
        MessageBody::AppendEntriesResponse {
            index,
            reject: Some(h),
            round,
        } => write!(
            f,
            "AppResp REJECT index={} hint={}/{} round={round}",
            index.0, h.index.0, h.term.0
        ),
        MessageBody::Heartbeat { commit, round } => {
            write!(f, "Heartbeat commit={} round={round}", commit.0)
        }
        MessageBody::HeartbeatResponse { round } => write!(f, "HeartbeatResp round={round}"),
        MessageBody::InstallSnapshot { meta, round } => {
            let voters: Vec<u64> = meta.membership.voters.iter().map(|v| v.0).collect();
            write!(
                f,
                "InstallSnapshot {}/{} voters={voters:?} round={round}",
                meta.index.0, meta.term.0
            )
        }
        MessageBody::TimeoutNow => f.write_str("TimeoutNow"),
        MessageBody::ReadIndex { id, mode } => write!(f, "ReadIndex id={} mode={mode:?}", id.0),
        MessageBody::ReadIndexResponse { id, index } => {
            write!(
                f,
                "ReadIndexResp id={} index={:?}",
                id.0,
                index.map(|i| i.0)
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;
    use crate::raft::types::{LogIndex, NodeId, Term};

    fn entry(index: u64, data: &'static str) -> Entry {
        Entry {
            index: LogIndex(index),
            term: Term(2),
            kind: EntryKind::Normal,
            data: Bytes::from_static(data.as_bytes()),
        }
    }

    #[test]
    fn entries_and_messages_print_compactly() {
        let short: Vec<Entry> = (1..=2).map(|i| entry(i, "x")).collect();
        assert_eq!(DisplayEntries(&short).to_string(), r#"[1/2 "x", 2/2 "x"]"#);
        let long: Vec<Entry> = (1..=9).map(|i| entry(i, "y")).collect();
        assert_eq!(
            DisplayEntries(&long).to_string(),
            r#"[1/2 "y" .. 9/2 "y" (9 entries)]"#
        );
        let m = Message {
            from: NodeId(1),
            to: NodeId(2),
            term: Term(3),
            body: MessageBody::Heartbeat {
                commit: LogIndex(4),
                round: 5,
            },
        };
        assert_eq!(m.to_string(), "1->2 t3 Heartbeat commit=4 round=5");
    }
}
