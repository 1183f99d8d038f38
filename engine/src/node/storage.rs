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

/// Raft figure 13 step 6 on the stored log, once the metadata of a snapshot at (`index`,
/// `term`) is stored: if the log holds an entry with that index and term, the entries after
/// it stay; otherwise the whole log goes (its entries are covered by the snapshot or stale).
/// Then the prefix up to `index` is compacted. Each step is durable on its own, so a crash
/// may fall between them: [`load`] runs this again and finishes the job (issue 13 item 2).
/// Returns whether the suffix was kept.
pub(crate) fn keep_or_drop_suffix(log: &wal::Wal, index: u64, term: u64) -> wal::Result<bool> {
    let keep = log.last_index() >= index && log.term(index).ok() == Some(term);
    if !keep {
        let first = log.first_index();
        if log.last_index() >= first {
            log.truncate_suffix(first)?;
        }
    }
    if log.first_index() <= index {
        log.compact_prefix(index)?;
    }
    Ok(keep)
}

/// What the WAL says about this node on restart.
pub(crate) struct Stored {
    pub(crate) initial: InitialState,
    /// Index the next append must carry.
    pub(crate) wal_next: u64,
}

/// Rebuilds the core's initial state from the WAL. Without a stored snapshot the node
/// starts from the cluster's bootstrap configuration (snapshot at index 0). With one, the
/// stored log is first made to agree with it ([`keep_or_drop_suffix`]): a crash after the
/// snapshot's metadata was stored but before its install truncated a stale suffix left
/// entries older than the snapshot's term after it.
pub(crate) fn load(log: &wal::Wal, initial_voters: &[NodeId]) -> Result<Stored, String> {
    let snapshot = match log.snapshot_meta() {
        Some(m) => {
            keep_or_drop_suffix(log, m.index, m.term)
                .map_err(|e| format!("settling the log after snapshot {}: {e}", m.index))?;
            SnapshotMeta {
                index: LogIndex(m.index),
                term: Term(m.term),
                membership: Membership::decode(&m.membership)
                    .map_err(|e| format!("stored snapshot membership: {e}"))?,
            }
        }
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
    use ringraft_wal::sim::{CrashKeep, SimDisk};

    use super::*;
    use crate::raft::{Config, Instant, RawNode};

    fn sim_wal(disk: &SimDisk) -> wal::Result<wal::Wal> {
        let config = wal::Config {
            prepare_ahead: false,
            background_writer: false,
            segment_bytes: 16 << 10,
            record_bytes_max: 1 << 10,
            membership_bytes_max: 256,
            ..wal::Config::small()
        };
        wal::Wal::open_with_backend(disk.backend(), config)
    }

    const VOTERS: [NodeId; 3] = [NodeId(1), NodeId(2), NodeId(3)];

    /// A follower's stored log before the install: 1..=5 of term 1, term 2 voted.
    fn before_install(disk: &SimDisk) -> wal::Wal {
        let log = sim_wal(disk).expect("opens");
        let entries = (1..=5)
            .map(|i| {
                entry_to_wal(&Entry {
                    index: LogIndex(i),
                    term: Term(1),
                    kind: EntryKind::Normal,
                    data: command_data(TAG_COMMAND, b"v"),
                })
            })
            .collect();
        log.append(entries)
            .expect("append")
            .wait()
            .expect("durable");
        let hs = HardState {
            term: Term(2),
            vote: Some(NodeId(3)),
            commit: LogIndex(2),
        };
        log.set_hard_state(hard_state_to_wal(&hs))
            .expect("hard state")
            .wait()
            .expect("durable");
        log
    }

    /// The WAL steps of `Runner::install_snapshot` for a snapshot at 3/2, which the log
    /// (3/1) does not hold: metadata, then the suffix truncation, then compaction.
    fn install(log: &wal::Wal) -> wal::Result<()> {
        let meta = SnapshotMeta {
            index: LogIndex(3),
            term: Term(2),
            membership: Membership::with_voters(VOTERS),
        };
        let ticket = log.set_snapshot_meta(meta_to_wal(&meta))?;
        log.flush()?;
        assert!(!keep_or_drop_suffix(log, 3, 2)?, "3/1 is not 3/2: dropped");
        ticket.wait().map(|_| ())
    }

    /// Issue 13 item 2: a crash between the snapshot's metadata and the truncation of the
    /// stale suffix left entries 4 and 5 of term 1 after a snapshot of term 2; every start
    /// then panicked in `RaftLog::new` ("terms never decrease"). Power cuts at every
    /// operation of the install (with every kept prefix, and random page and sector subsets
    /// of the unsynced writes) and process crashes must all start, twice, as either the log
    /// before the install or the snapshot alone.
    #[test]
    fn item2_install_snapshot_crash_images_all_restart() {
        let probe = SimDisk::new();
        let log = before_install(&probe);
        let ops_before = probe.ops();
        install(&log).expect("install");
        let ops = probe.ops() - ops_before;
        assert!(ops >= 3, "the install takes several operations ({ops})");
        let mut images = 0;
        for cut in 0..=ops {
            let disk = SimDisk::new();
            let log = before_install(&disk);
            disk.die_after_ops(cut);
            let _ = install(&log);
            let unsynced = disk.unsynced_bytes();
            let mut keeps = vec![CrashKeep::Prefix(0), CrashKeep::Prefix(unsynced)];
            keeps.extend((0..8).map(CrashKeep::PageSubset));
            keeps.extend((0..8).map(CrashKeep::SectorSubset));
            let mut states: Vec<SimDisk> = keeps.into_iter().map(|k| disk.crash_image(k)).collect();
            states.push(disk.process_crash());
            drop(log);
            for image in states {
                images += 1;
                for start in 0..2 {
                    let log = sim_wal(&image)
                        .unwrap_or_else(|e| panic!("cut {cut}, start {start}: opens: {e}"));
                    let stored = load(&log, &VOTERS)
                        .unwrap_or_else(|e| panic!("cut {cut}, start {start}: loads: {e}"));
                    let init = &stored.initial;
                    let shape = (init.snapshot.index.0, init.entries.len(), stored.wal_next);
                    assert!(
                        shape == (0, 5, 6) || shape == (3, 0, 4),
                        "cut {cut}, start {start}: neither before nor after the install: {shape:?}"
                    );
                    RawNode::new(Config::new(NodeId(2)), stored.initial, 2, Instant(0))
                        .unwrap_or_else(|e| panic!("cut {cut}, start {start}: starts: {e}"));
                }
            }
        }
        eprintln!("{ops} operations, {images} crash images");
        assert!(images > 3 * 10, "{images} crash images");
    }

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
