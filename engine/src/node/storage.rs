//! Adapts the WAL (which knows nothing of Raft) to the core: entry kinds, hard state,
//! snapshot metadata, and the restart path.
//!
//! WAL payload of an entry: a [`EntryKind::Normal`] entry is stored as its data, whose first
//! byte is a runtime tag below 0x80 ([`TAG_COMMAND`] or [`TAG_PEER_ADDR`]); a no-op is the
//! single byte 0x80; a membership change is 0x81 followed by its encoding. So a command is
//! written without an extra copy and read back as a zero-copy slice of the WAL's map.

use std::net::SocketAddr;

use bytes::{BufMut, Bytes, BytesMut};
use ringraft_wal as wal;

use crate::raft::{
    Entry, EntryKind, HardState, InitialState, LogIndex, Membership, NodeId, SnapshotMeta, Term,
};

/// First byte of a normal entry holding an application command.
pub(crate) const TAG_COMMAND: u8 = 0;
/// First byte of a normal entry announcing a peer's address (before it joins).
pub(crate) const TAG_PEER_ADDR: u8 = 1;
const WAL_NOOP: u8 = 0x80;
const WAL_CONF_CHANGE: u8 = 0x81;

/// A stored entry that does not decode.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("bad stored entry at index {index}: {reason}")]
pub(crate) struct BadEntry {
    pub(crate) index: u64,
    pub(crate) reason: &'static str,
}

/// The data of a command entry: the tag, then the application's bytes (one copy, here).
pub(crate) fn command_data(tag: u8, payload: &[u8]) -> Bytes {
    let mut b = BytesMut::with_capacity(1 + payload.len());
    b.put_u8(tag);
    b.put_slice(payload);
    b.freeze()
}

/// The data of a peer-address announcement.
pub(crate) fn peer_addr_data(id: NodeId, addr: SocketAddr) -> Bytes {
    let text = addr.to_string();
    let mut b = BytesMut::with_capacity(9 + text.len());
    b.put_u8(TAG_PEER_ADDR);
    b.put_u64_le(id.0);
    b.put_slice(text.as_bytes());
    b.freeze()
}

/// Parses a peer-address announcement (after its tag byte).
pub(crate) fn parse_peer_addr(body: &[u8]) -> Option<(NodeId, SocketAddr)> {
    let id = u64::from_le_bytes(body.get(..8)?.try_into().ok()?);
    let addr = std::str::from_utf8(body.get(8..)?).ok()?.parse().ok()?;
    Some((NodeId(id), addr))
}

/// Checks the entries of an AppendEntries from a peer before the core takes them: a normal
/// entry this runtime did not tag would panic [`entry_to_wal`] (an invariant for entries
/// proposed here, but not something a peer may trigger).
pub(crate) fn check_peer_entries(entries: &[Entry]) -> Result<(), BadEntry> {
    match entries
        .iter()
        .find(|e| e.kind == EntryKind::Normal && e.data.first().is_none_or(|t| *t >= WAL_NOOP))
    {
        Some(e) => Err(BadEntry {
            index: e.index.0,
            reason: "normal entry without a runtime tag",
        }),
        None => Ok(()),
    }
}

pub(crate) fn entry_to_wal(e: &Entry) -> wal::Entry {
    let payload = match e.kind {
        EntryKind::Normal => {
            assert!(
                e.data.first().is_some_and(|t| *t < WAL_NOOP),
                "invariant: the runtime tags every normal entry it proposes"
            );
            e.data.clone()
        }
        EntryKind::Noop => Bytes::from_static(&[WAL_NOOP]),
        EntryKind::ConfChange => {
            let mut b = BytesMut::with_capacity(1 + e.data.len());
            b.put_u8(WAL_CONF_CHANGE);
            b.put_slice(&e.data);
            b.freeze()
        }
    };
    wal::Entry {
        index: e.index.0,
        term: e.term.0,
        payload,
    }
}

pub(crate) fn entry_from_wal(e: wal::Entry) -> Result<Entry, BadEntry> {
    let bad = |reason| BadEntry {
        index: e.index,
        reason,
    };
    let (kind, data) = match e.payload.first() {
        None => return Err(bad("empty payload")),
        Some(&WAL_NOOP) => (EntryKind::Noop, Bytes::new()),
        Some(&WAL_CONF_CHANGE) => (EntryKind::ConfChange, e.payload.slice(1..)),
        Some(t) if *t < WAL_NOOP => (EntryKind::Normal, e.payload.clone()),
        Some(_) => return Err(bad("unknown kind byte")),
    };
    Ok(Entry {
        index: LogIndex(e.index),
        term: Term(e.term),
        kind,
        data,
    })
}

pub(crate) fn hard_state_to_wal(h: &HardState) -> wal::HardState {
    wal::HardState {
        term: h.term.0,
        vote: h.vote.map(|v| v.0),
        commit: h.commit.0,
    }
}

pub(crate) fn meta_to_wal(m: &SnapshotMeta) -> wal::SnapshotMeta {
    wal::SnapshotMeta {
        index: m.index.0,
        term: m.term.0,
        membership: m.membership.encode(),
    }
}

/// What the WAL says about this node on restart.
pub(crate) struct Stored {
    pub(crate) initial: InitialState,
    /// Index the next append must carry.
    pub(crate) wal_next: u64,
}

/// Rebuilds the core's initial state from the WAL. Without a stored snapshot the node
/// starts from the cluster's bootstrap configuration (snapshot at index 0).
pub(crate) fn load(log: &wal::Wal, initial_voters: &[NodeId]) -> Result<Stored, String> {
    let snapshot = match log.snapshot_meta() {
        Some(m) => SnapshotMeta {
            index: LogIndex(m.index),
            term: Term(m.term),
            membership: Membership::decode(&m.membership)
                .map_err(|e| format!("stored snapshot membership: {e}"))?,
        },
        None => InitialState::bootstrap(initial_voters.iter().copied()).snapshot,
    };
    let hs = log.hard_state().unwrap_or_default();
    let first = snapshot.index.0 + 1;
    let last = log.last_index();
    if log.first_index() > first && last >= log.first_index() {
        return Err(format!(
            "log starts at {} but the snapshot ends at {}",
            log.first_index(),
            snapshot.index
        ));
    }
    let stored = if last >= first {
        log.entries(first..last + 1).map_err(|e| e.to_string())?
    } else {
        Vec::new()
    };
    let entries = stored
        .into_iter()
        .map(entry_from_wal)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| e.to_string())?;
    let last_index = snapshot.index.0 + entries.len() as u64;
    // A snapshot is committed by definition; the stored commit may lag it (it is written
    // with the next hard state change), and cannot exceed the stored log.
    let commit = LogIndex(hs.commit.max(snapshot.index.0).min(last_index));
    let applied = snapshot.index;
    let initial = InitialState {
        hard_state: HardState {
            term: Term(hs.term),
            vote: hs.vote.map(NodeId),
            commit,
        },
        snapshot,
        entries,
        applied,
    };
    Ok(Stored {
        initial,
        wal_next: last_index + 1,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_round_trip_through_wal_payloads() {
        let cases = [
            (EntryKind::Normal, command_data(TAG_COMMAND, b"hello")),
            (EntryKind::Normal, command_data(TAG_COMMAND, b"")),
            (EntryKind::Noop, Bytes::new()),
            (EntryKind::ConfChange, Bytes::from_static(b"\x01\x02\x03")),
        ];
        for (i, (kind, data)) in cases.into_iter().enumerate() {
            let e = Entry {
                index: LogIndex(i as u64 + 1),
                term: Term(3),
                kind,
                data,
            };
            assert_eq!(entry_from_wal(entry_to_wal(&e)), Ok(e));
        }
    }

    #[test]
    fn unknown_kind_bytes_are_errors() {
        for payload in [&[][..], &[0x90][..], &[0xff, 1][..]] {
            let e = wal::Entry::new(4, 1, Bytes::copy_from_slice(payload));
            assert!(entry_from_wal(e).is_err());
        }
    }

    /// Issue 13 item 6 (runtime side): an untagged normal entry from a peer used to reach
    /// `entry_to_wal` and panic the node on its assertion.
    #[test]
    fn item6_untagged_entries_from_peers_are_refused() {
        let e = |data: &'static [u8]| Entry {
            index: LogIndex(5),
            term: Term(1),
            kind: EntryKind::Normal,
            data: Bytes::from_static(data),
        };
        assert!(check_peer_entries(&[e(b"\x00cmd"), e(b"\x01addr")]).is_ok());
        for bad in [&b""[..], &b"\x80"[..], &b"\xffx"[..]] {
            let bad = Entry {
                data: Bytes::copy_from_slice(bad),
                ..e(b"")
            };
            assert!(check_peer_entries(std::slice::from_ref(&bad)).is_err());
        }
    }

    #[test]
    fn peer_addresses_round_trip() {
        let addr: SocketAddr = "127.0.0.1:4567".parse().expect("addr");
        let data = peer_addr_data(NodeId(9), addr);
        assert_eq!(data[0], TAG_PEER_ADDR);
        assert_eq!(parse_peer_addr(&data[1..]), Some((NodeId(9), addr)));
        assert_eq!(parse_peer_addr(&data[1..5]), None);
    }
}
