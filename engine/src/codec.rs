//! Binary encoding of the Raft core's [`Message`] for the transport payload.
//!
//! Little endian, one version byte, then a kind tag, the envelope and the body:
//!
//! ```text
//! u8 version (2) | u8 kind | u64 from | u64 to | u64 term | body
//! kind 1 RequestVote            u8 flags (1 pre_vote, 2 transfer) | u64 last_index | u64 last_term
//! kind 2 RequestVoteResponse    u8 flags (1 pre_vote, 2 granted)
//! kind 3 AppendEntries          u64 prev_index | u64 prev_term | u64 commit | u64 round |
//!                               u32 count | count x (u64 index | u64 term | u8 kind | u32 len | data)
//! kind 4 AppendEntriesResponse  u64 index | u64 round | u8 has_hint | [u64 hint index | u64 hint term]
//! kind 5 Heartbeat              u64 commit | u64 round
//! kind 6 HeartbeatResponse      u64 round
//! kind 7 InstallSnapshot        u64 index | u64 term | u64 round | u32 len | Membership::encode()
//! kind 8 TimeoutNow
//! kind 9 ReadIndex              u64 id | u8 mode (0 lease, 1 read index)
//! kind 10 ReadIndexResponse     u64 id | u8 has_index | [u64 index]
//! ```
//!
//! Decoding is strict (unknown tags, flag bits, booleans other than 0/1 and trailing bytes are
//! errors), never panics, and never allocates more than the input justifies: an entry count
//! is checked against the bytes left before anything is reserved. Entry data is decoded as
//! zero-copy slices of the input [`Bytes`].

use bytes::{BufMut, Bytes, BytesMut};

use crate::raft::{
    DecodeError, Entries, Entry, EntryKind, LogIndex, Membership, Message, MessageBody, NodeId,
    ReadId, ReadMode, RejectHint, SnapshotMeta, Term,
};

/// Version byte written first; bump on any layout change. Version 2: ReadIndex carries the
/// read mode.
const CODEC_VERSION: u8 = 2;
/// Bytes of the version, kind and envelope (from, to, term).
const ENVELOPE_BYTES: usize = 2 + 3 * 8;
/// Bytes of one entry's header (index, term, kind, length).
const ENTRY_HEADER_BYTES: usize = 8 + 8 + 1 + 4;

/// Largest term and log index a message may carry. A node adds one to both (a campaign, the
/// index after the last entry), so a value at `u64::MAX` from a faulty peer would overflow it.
/// 2^63 - 1 is out of reach of a real cluster (an election or an entry per nanosecond for
/// 292 years), so refusing more costs nothing.
pub const TERM_INDEX_MAX: u64 = i64::MAX as u64;

const FLAG_PRE_VOTE: u8 = 1;
const FLAG_SECOND: u8 = 2;

/// Why a payload is not a valid encoded [`Message`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CodecError {
    /// The input ended early.
    #[error("truncated message at offset {offset}")]
    Truncated {
        /// Offset where more bytes were needed.
        offset: usize,
    },
    /// An unknown version, kind, entry kind, flag or boolean byte.
    #[error("invalid {what} byte {value} at offset {offset}")]
    Invalid {
        /// Which field.
        what: &'static str,
        /// The byte read.
        value: u8,
        /// Its offset.
        offset: usize,
    },
    /// More entries announced than the remaining bytes can hold.
    #[error("{count} entries announced with {remaining} bytes left")]
    TooManyEntries {
        /// Count read.
        count: u32,
        /// Bytes left.
        remaining: usize,
    },
    /// A term or log index above [`TERM_INDEX_MAX`].
    #[error("{what} {value} at offset {offset} is above the maximum term and index")]
    OutOfRange {
        /// Which field.
        what: &'static str,
        /// The value read.
        value: u64,
        /// Its offset.
        offset: usize,
    },
    /// A well-framed AppendEntries whose entries could not be a leader's log: indexes not
    /// contiguous from `prev_index + 1`, terms decreasing (from `prev_term` on) or above the
    /// message's term. The core would panic on its log invariants; a peer must never make a
    /// node panic.
    #[error("inconsistent AppendEntries at entry index {index}: {what}")]
    Inconsistent {
        /// Which rule is broken.
        what: &'static str,
        /// Index of the offending entry (or `prev_index`).
        index: LogIndex,
    },
    /// The snapshot membership does not decode.
    #[error("snapshot membership: {0}")]
    Membership(#[from] DecodeError),
    /// The snapshot membership decodes but is no membership a node holds: not in the one
    /// encoding the encoder writes (ids out of order or repeated; refused so that every
    /// message has one encoding), or breaking [`Membership::assert_valid`] (a voter that is
    /// also a learner, node id 0), on which the core would panic.
    #[error("snapshot membership: {reason}")]
    BadMembership {
        /// What is wrong.
        reason: &'static str,
    },
    /// Bytes left after the message.
    #[error("{extra} trailing bytes")]
    Trailing {
        /// How many.
        extra: usize,
    },
    /// The envelope disagrees with the connection it arrived on: `from` is not the node the
    /// transport authenticated, or `to` is not this node.
    #[error("message from {from} to {to} arrived from {peer} at {local}")]
    Misaddressed {
        /// Sender named in the message.
        from: NodeId,
        /// Recipient named in the message.
        to: NodeId,
        /// Sender according to the transport.
        peer: NodeId,
        /// This node.
        local: NodeId,
    },
    /// A field too large for its length prefix (encoding only).
    #[error("{what} of {len} bytes does not fit its u32 length prefix")]
    TooLarge {
        /// Which field.
        what: &'static str,
        /// Its length.
        len: usize,
    },
}

fn kind_tag(body: &MessageBody) -> u8 {
    match body {
        MessageBody::RequestVote { .. } => 1,
        MessageBody::RequestVoteResponse { .. } => 2,
        MessageBody::AppendEntries { .. } => 3,
        MessageBody::AppendEntriesResponse { .. } => 4,
        MessageBody::Heartbeat { .. } => 5,
        MessageBody::HeartbeatResponse { .. } => 6,
        MessageBody::InstallSnapshot { .. } => 7,
        MessageBody::TimeoutNow => 8,
        MessageBody::ReadIndex { .. } => 9,
        MessageBody::ReadIndexResponse { .. } => 10,
    }
}

fn flags(first: bool, second: bool) -> u8 {
    (if first { FLAG_PRE_VOTE } else { 0 }) | (if second { FLAG_SECOND } else { 0 })
}

fn entry_kind_tag(kind: EntryKind) -> u8 {
    match kind {
        EntryKind::Normal => 0,
        EntryKind::Noop => 1,
        EntryKind::ConfChange => 2,
    }
}

fn len_u32(what: &'static str, len: usize) -> Result<u32, CodecError> {
    u32::try_from(len).map_err(|_| CodecError::TooLarge { what, len })
}

/// Bytes of the AppendEntries fields before its entries (prev index and term, commit, round,
/// entry count).
const APPEND_FIELDS_BYTES: usize = 4 * 8 + 4;

/// Upper bound of an encoded AppendEntries from a core with these limits: the core fills a
/// message up to `batch_bytes_max` of [`crate::raft::Entry::size_bytes`] (which counts more
/// header bytes per entry than the encoding), and sends one entry alone when it is larger.
#[must_use]
pub fn append_entries_bytes_max(batch_bytes_max: u64, entry_bytes_max: u64) -> u64 {
    let one_entry = entry_bytes_max.saturating_add(ENTRY_HEADER_BYTES as u64 + 3);
    let entries = batch_bytes_max.max(one_entry);
    ((ENVELOPE_BYTES + APPEND_FIELDS_BYTES) as u64).saturating_add(entries)
}

/// Bytes [`encode`] will produce for `msg` (exact, except for snapshot membership).
#[must_use]
pub fn encoded_len_hint(msg: &Message) -> usize {
    let body = match &msg.body {
        MessageBody::AppendEntries { entries, .. } => {
            APPEND_FIELDS_BYTES
                + entries
                    .iter()
                    .map(|e| ENTRY_HEADER_BYTES + e.data.len())
                    .sum::<usize>()
        }
        MessageBody::InstallSnapshot { .. } => 64,
        _ => 24,
    };
    ENVELOPE_BYTES + body
}

/// Encodes `msg` into a transport payload.
///
/// # Errors
/// [`CodecError::TooLarge`] if an entry's data or the entry count exceeds `u32::MAX`.
pub fn encode(msg: &Message) -> Result<Bytes, CodecError> {
    let mut out = BytesMut::with_capacity(encoded_len_hint(msg));
    encode_into(msg, &mut out)?;
    Ok(out.freeze())
}

/// Appends the encoding of `msg` to `out`.
///
/// # Errors
/// As [`encode`].
pub fn encode_into(msg: &Message, out: &mut BytesMut) -> Result<(), CodecError> {
    out.put_u8(CODEC_VERSION);
    out.put_u8(kind_tag(&msg.body));
    out.put_u64_le(msg.from.0);
    out.put_u64_le(msg.to.0);
    out.put_u64_le(msg.term.0);
    match &msg.body {
        MessageBody::RequestVote {
            pre_vote,
            last_index,
            last_term,
            transfer,
        } => {
            out.put_u8(flags(*pre_vote, *transfer));
            out.put_u64_le(last_index.0);
            out.put_u64_le(last_term.0);
        }
        MessageBody::RequestVoteResponse { pre_vote, granted } => {
            out.put_u8(flags(*pre_vote, *granted));
        }
        MessageBody::AppendEntries {
            prev_index,
            prev_term,
            entries,
            commit,
            round,
        } => {
            for value in [prev_index.0, prev_term.0, commit.0, *round] {
                out.put_u64_le(value);
            }
            out.put_u32_le(len_u32("entry count", entries.len())?);
            for entry in entries {
                out.put_u64_le(entry.index.0);
                out.put_u64_le(entry.term.0);
                out.put_u8(entry_kind_tag(entry.kind));
                out.put_u32_le(len_u32("entry data", entry.data.len())?);
                out.put_slice(&entry.data);
            }
        }
        MessageBody::AppendEntriesResponse {
            index,
            reject,
            round,
        } => {
            out.put_u64_le(index.0);
            out.put_u64_le(*round);
            out.put_u8(u8::from(reject.is_some()));
            if let Some(hint) = reject {
                out.put_u64_le(hint.index.0);
                out.put_u64_le(hint.term.0);
            }
        }
        MessageBody::Heartbeat { commit, round } => {
            out.put_u64_le(commit.0);
            out.put_u64_le(*round);
        }
        MessageBody::HeartbeatResponse { round } => out.put_u64_le(*round),
        MessageBody::InstallSnapshot { meta, round } => {
            out.put_u64_le(meta.index.0);
            out.put_u64_le(meta.term.0);
            out.put_u64_le(*round);
            let membership = meta.membership.encode();
            out.put_u32_le(len_u32("membership", membership.len())?);
            out.put_slice(&membership);
        }
        MessageBody::TimeoutNow => {}
        MessageBody::ReadIndex { id, mode } => {
            out.put_u64_le(id.0);
            out.put_u8(match mode {
                ReadMode::Lease => 0,
                ReadMode::ReadIndex => 1,
            });
        }
        MessageBody::ReadIndexResponse { id, index } => {
            out.put_u64_le(id.0);
            out.put_u8(u8::from(index.is_some()));
            if let Some(index) = index {
                out.put_u64_le(index.0);
            }
        }
    }
    Ok(())
}

/// A cursor over the input that never reads past its end.
struct Reader {
    buf: Bytes,
    offset: usize,
}

impl Reader {
    /// Advances over `len` bytes; returns where they start.
    fn advance(&mut self, len: usize) -> Result<usize, CodecError> {
        let start = self.offset;
        let end = start
            .checked_add(len)
            .filter(|&end| end <= self.buf.len())
            .ok_or(CodecError::Truncated { offset: start })?;
        self.offset = end;
        Ok(start)
    }

    /// The next `len` bytes as a zero-copy slice of the input (for entry data only: each
    /// slice costs a reference count).
    fn take(&mut self, len: usize) -> Result<Bytes, CodecError> {
        let start = self.advance(len)?;
        Ok(self.buf.slice(start..self.offset))
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], CodecError> {
        let start = self.advance(N)?;
        let mut arr = [0u8; N];
        arr.copy_from_slice(&self.buf[start..self.offset]);
        Ok(arr)
    }

    fn u8(&mut self) -> Result<u8, CodecError> {
        Ok(self.array::<1>()?[0])
    }

    fn u32(&mut self) -> Result<u32, CodecError> {
        Ok(u32::from_le_bytes(self.array()?))
    }

    fn u64(&mut self) -> Result<u64, CodecError> {
        Ok(u64::from_le_bytes(self.array()?))
    }

    fn bounded(&mut self, what: &'static str) -> Result<u64, CodecError> {
        let offset = self.offset;
        let value = self.u64()?;
        if value > TERM_INDEX_MAX {
            return Err(CodecError::OutOfRange {
                what,
                value,
                offset,
            });
        }
        Ok(value)
    }

    fn term(&mut self) -> Result<Term, CodecError> {
        self.bounded("term").map(Term)
    }

    fn index(&mut self) -> Result<LogIndex, CodecError> {
        self.bounded("index").map(LogIndex)
    }

    fn invalid(&self, what: &'static str, value: u8) -> CodecError {
        CodecError::Invalid {
            what,
            value,
            offset: self.offset - 1,
        }
    }

    fn bool(&mut self) -> Result<bool, CodecError> {
        match self.u8()? {
            0 => Ok(false),
            1 => Ok(true),
            other => Err(self.invalid("boolean", other)),
        }
    }

    fn flags(&mut self) -> Result<(bool, bool), CodecError> {
        let value = self.u8()?;
        if value & !(FLAG_PRE_VOTE | FLAG_SECOND) != 0 {
            return Err(self.invalid("flags", value));
        }
        Ok((value & FLAG_PRE_VOTE != 0, value & FLAG_SECOND != 0))
    }

    fn remaining(&self) -> usize {
        self.buf.len() - self.offset
    }
}

/// Decodes a transport payload produced by [`encode`]. Entry data are slices of `buf`.
///
/// # Errors
/// [`CodecError`] for anything but a complete, valid encoding.
pub fn decode(buf: Bytes) -> Result<Message, CodecError> {
    let mut r = Reader { buf, offset: 0 };
    let version = r.u8()?;
    if version != CODEC_VERSION {
        return Err(r.invalid("version", version));
    }
    let kind = r.u8()?;
    let from = NodeId(r.u64()?);
    let to = NodeId(r.u64()?);
    let term = r.term()?;
    let body = decode_body(&mut r, kind, term)?;
    match r.remaining() {
        0 => Ok(Message {
            from,
            to,
            term,
            body,
        }),
        extra => Err(CodecError::Trailing { extra }),
    }
}

/// Decodes a payload received from `peer` (as reported by the transport) at `local`, and
/// checks that the message's envelope names them: a node cannot speak for another one.
///
/// # Errors
/// As [`decode`], and [`CodecError::Misaddressed`].
pub fn decode_from(peer: NodeId, local: NodeId, buf: Bytes) -> Result<Message, CodecError> {
    let msg = decode(buf)?;
    if msg.from != peer || msg.to != local {
        return Err(CodecError::Misaddressed {
            from: msg.from,
            to: msg.to,
            peer,
            local,
        });
    }
    Ok(msg)
}

fn decode_body(r: &mut Reader, kind: u8, term: Term) -> Result<MessageBody, CodecError> {
    Ok(match kind {
        1 => {
            let (pre_vote, transfer) = r.flags()?;
            MessageBody::RequestVote {
                pre_vote,
                last_index: r.index()?,
                last_term: r.term()?,
                transfer,
            }
        }
        2 => {
            let (pre_vote, granted) = r.flags()?;
            MessageBody::RequestVoteResponse { pre_vote, granted }
        }
        3 => decode_append(r, term)?,
        4 => {
            let index = r.index()?;
            let round = r.u64()?;
            let reject = if r.bool()? {
                Some(RejectHint {
                    index: r.index()?,
                    term: r.term()?,
                })
            } else {
                None
            };
            MessageBody::AppendEntriesResponse {
                index,
                reject,
                round,
            }
        }
        5 => MessageBody::Heartbeat {
            commit: r.index()?,
            round: r.u64()?,
        },
        6 => MessageBody::HeartbeatResponse { round: r.u64()? },
        7 => {
            let index = r.index()?;
            let term = r.term()?;
            let round = r.u64()?;
            let len = r.u32()? as usize;
            let start = r.advance(len)?;
            let raw = &r.buf[start..r.offset];
            let membership = Membership::decode(raw)?;
            check_membership(&membership, raw)?;
            MessageBody::InstallSnapshot {
                meta: SnapshotMeta {
                    index,
                    term,
                    membership,
                },
                round,
            }
        }
        8 => MessageBody::TimeoutNow,
        9 => MessageBody::ReadIndex {
            id: ReadId(r.u64()?),
            mode: if r.bool()? {
                ReadMode::ReadIndex
            } else {
                ReadMode::Lease
            },
        },
        10 => {
            let id = ReadId(r.u64()?);
            let index = if r.bool()? { Some(r.index()?) } else { None };
            MessageBody::ReadIndexResponse { id, index }
        }
        other => return Err(r.invalid("message kind", other)),
    })
}

fn decode_append(r: &mut Reader, term: Term) -> Result<MessageBody, CodecError> {
    let prev_index = r.index()?;
    let prev_term = r.term()?;
    let commit = r.index()?;
    let round = r.u64()?;
    let count = r.u32()?;
    // Each entry takes at least its header: a larger count is a lie, refused before the
    // vector is reserved.
    if count as usize > r.remaining() / ENTRY_HEADER_BYTES {
        return Err(CodecError::TooManyEntries {
            count,
            remaining: r.remaining(),
        });
    }
    let mut entries = Vec::with_capacity(count as usize);
    for _ in 0..count {
        let index = r.index()?;
        let term = r.term()?;
        let kind = match r.u8()? {
            0 => EntryKind::Normal,
            1 => EntryKind::Noop,
            2 => EntryKind::ConfChange,
            other => return Err(r.invalid("entry kind", other)),
        };
        let len = r.u32()? as usize;
        let data = r.take(len)?;
        entries.push(Entry {
            index,
            term,
            kind,
            data,
        });
    }
    check_append(term, prev_index, prev_term, &entries)?;
    Ok(MessageBody::AppendEntries {
        prev_index,
        prev_term,
        entries: Entries::from(entries),
        commit,
        round,
    })
}

/// A snapshot membership from a peer must be one a node could hold (see
/// [`CodecError::BadMembership`]).
fn check_membership(m: &Membership, raw: &[u8]) -> Result<(), CodecError> {
    let bad = |reason| Err(CodecError::BadMembership { reason });
    if m.encode() != raw {
        return bad("not in canonical form");
    }
    if !m.voters.is_disjoint(&m.learners) {
        return bad("a voter is also a learner");
    }
    if m.voters.contains(&NodeId(0)) || m.learners.contains(&NodeId(0)) {
        return bad("node id 0 is a member");
    }
    Ok(())
}

/// The entries of an AppendEntries in `term` must extend (`prev_index`, `prev_term`) the way
/// a leader's log does (Raft paper 5.3): contiguous indexes, terms that never decrease and
/// never exceed the leader's term.
fn check_append(
    term: Term,
    prev_index: LogIndex,
    prev_term: Term,
    entries: &[Entry],
) -> Result<(), CodecError> {
    let bad = |what, index| Err(CodecError::Inconsistent { what, index });
    if prev_term > term {
        return bad("prev_term above the message's term", prev_index);
    }
    let (mut index, mut last_term) = (prev_index, prev_term);
    for e in entries {
        if index.0.checked_add(1) != Some(e.index.0) {
            return bad("index does not follow the previous one", e.index);
        }
        if e.term < last_term {
            return bad("term below the previous entry's", e.index);
        }
        if e.term > term {
            return bad("term above the message's term", e.index);
        }
        (index, last_term) = (e.index, e.term);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::collection::{btree_set, vec};
    use proptest::prelude::*;
    use std::collections::BTreeSet;

    fn node() -> impl Strategy<Value = NodeId> {
        any::<u64>().prop_map(NodeId)
    }

    fn entry() -> impl Strategy<Value = Entry> {
        let kind = prop_oneof![
            Just(EntryKind::Normal),
            Just(EntryKind::Noop),
            Just(EntryKind::ConfChange)
        ];
        (any::<u64>(), any::<u64>(), kind, vec(any::<u8>(), 0..64)).prop_map(
            |(index, term, kind, data)| Entry {
                index: LogIndex(index),
                term: Term(term),
                kind,
                data: Bytes::from(data),
            },
        )
    }

    fn membership() -> impl Strategy<Value = Membership> {
        let set = || btree_set(node(), 0..6);
        (set(), set(), set(), any::<bool>()).prop_map(
            |(voters, voters_outgoing, learners, auto_leave)| {
                // A membership a node holds: no node 0, voters and learners disjoint.
                let voters: BTreeSet<NodeId> = voters.into_iter().filter(|n| n.0 != 0).collect();
                let learners = learners
                    .into_iter()
                    .filter(|n| n.0 != 0 && !voters.contains(n))
                    .collect();
                Membership {
                    voters,
                    voters_outgoing,
                    learners,
                    auto_leave,
                }
            },
        )
    }

    fn body() -> impl Strategy<Value = MessageBody> {
        // Terms and indexes stay within the decoder's bound (rounds and ids could take any
        // value; one range keeps the generator short).
        let (u, b) = (|| 0..=TERM_INDEX_MAX, any::<bool>);
        prop_oneof![
            (b(), u(), u(), b()).prop_map(|(pre_vote, i, t, transfer)| MessageBody::RequestVote {
                pre_vote,
                last_index: LogIndex(i),
                last_term: Term(t),
                transfer,
            }),
            (b(), b()).prop_map(|(pre_vote, granted)| MessageBody::RequestVoteResponse {
                pre_vote,
                granted
            }),
            (
                0..TERM_INDEX_MAX / 2,
                0..TERM_INDEX_MAX / 2,
                vec((entry(), 0u64..3), 0..8),
                u(),
                u()
            )
                .prop_map(|(pi, pt, entries, c, round)| {
                    // A leader's run: contiguous from pi + 1, terms never decreasing from pt.
                    let mut term = pt;
                    let entries: Vec<Entry> = entries
                        .into_iter()
                        .zip(1..)
                        .map(|((e, step), i)| {
                            term += step;
                            Entry {
                                index: LogIndex(pi + i),
                                term: Term(term),
                                ..e
                            }
                        })
                        .collect();
                    MessageBody::AppendEntries {
                        prev_index: LogIndex(pi),
                        prev_term: Term(pt),
                        entries: entries.into(),
                        commit: LogIndex(c),
                        round,
                    }
                }),
            (u(), proptest::option::of((u(), u())), u()).prop_map(|(i, hint, round)| {
                MessageBody::AppendEntriesResponse {
                    index: LogIndex(i),
                    reject: hint.map(|(index, term)| RejectHint {
                        index: LogIndex(index),
                        term: Term(term),
                    }),
                    round,
                }
            }),
            (u(), u()).prop_map(|(c, round)| MessageBody::Heartbeat {
                commit: LogIndex(c),
                round
            }),
            u().prop_map(|round| MessageBody::HeartbeatResponse { round }),
            (u(), u(), membership(), u()).prop_map(|(i, t, membership, round)| {
                MessageBody::InstallSnapshot {
                    meta: SnapshotMeta {
                        index: LogIndex(i),
                        term: Term(t),
                        membership,
                    },
                    round,
                }
            }),
            Just(MessageBody::TimeoutNow),
            (u(), any::<bool>()).prop_map(|(id, index)| MessageBody::ReadIndex {
                id: ReadId(id),
                mode: if index {
                    ReadMode::ReadIndex
                } else {
                    ReadMode::Lease
                },
            }),
            (u(), proptest::option::of(u())).prop_map(|(id, index)| {
                MessageBody::ReadIndexResponse {
                    id: ReadId(id),
                    index: index.map(LogIndex),
                }
            }),
        ]
    }

    fn message() -> impl Strategy<Value = Message> {
        (node(), node(), 0..=TERM_INDEX_MAX, body()).prop_map(|(from, to, term, body)| {
            // An AppendEntries carries no term above its sender's.
            let floor = match &body {
                MessageBody::AppendEntries {
                    prev_term, entries, ..
                } => entries.last().map_or(*prev_term, |e| e.term),
                _ => Term(0),
            };
            Message {
                from,
                to,
                term: Term(term).max(floor),
                body,
            }
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        #[test]
        fn every_kind_round_trips(msg in message()) {
            let bytes = encode(&msg).unwrap();
            prop_assert_eq!(decode(bytes).unwrap(), msg);
        }

        #[test]
        fn random_bytes_never_panic(bytes in vec(any::<u8>(), 0..512)) {
            let _ = decode(Bytes::from(bytes));
        }

        #[test]
        fn truncations_and_bit_flips_never_panic(msg in message(), cut in any::<usize>(),
                                                 flip in any::<usize>(), bit in 0u8..8) {
            let bytes = encode(&msg).unwrap();
            let cut = cut % (bytes.len() + 1);
            if cut < bytes.len() {
                prop_assert!(decode(bytes.slice(..cut)).is_err(), "a prefix is never whole");
            }
            let mut flipped = bytes.to_vec();
            let at = flip % flipped.len();
            flipped[at] ^= 1 << bit;
            let _ = decode(Bytes::from(flipped));
        }

        #[test]
        fn random_tail_after_valid_prefix_never_panics(kind in 0u8..12,
                                                       tail in vec(any::<u8>(), 0..256)) {
            let mut bytes = vec![CODEC_VERSION, kind];
            bytes.extend_from_slice(&[0; 24]);
            bytes.extend(tail);
            let _ = decode(Bytes::from(bytes));
        }
    }

    #[test]
    fn envelope_must_match_the_connection() {
        let msg = Message {
            from: NodeId(1),
            to: NodeId(2),
            term: Term(1),
            body: MessageBody::TimeoutNow,
        };
        let bytes = encode(&msg).unwrap();
        assert_eq!(decode_from(NodeId(1), NodeId(2), bytes.clone()), Ok(msg));
        assert!(matches!(
            decode_from(NodeId(3), NodeId(2), bytes),
            Err(CodecError::Misaddressed { .. })
        ));
    }

    /// Issue 13 item 6: a well-framed AppendEntries whose entries could not be a leader's
    /// log used to decode, and then panicked the follower's core (`Entries::sub`, `extend`,
    /// `commit_to`).
    #[test]
    fn item6_inconsistent_append_entries_are_refused() {
        let e = |index: u64, term: u64| Entry {
            index: LogIndex(index),
            term: Term(term),
            kind: EntryKind::Normal,
            data: Bytes::new(),
        };
        let append = |term: u64, prev: (u64, u64), entries: Vec<Entry>| Message {
            from: NodeId(1),
            to: NodeId(2),
            term: Term(term),
            body: MessageBody::AppendEntries {
                prev_index: LogIndex(prev.0),
                prev_term: Term(prev.1),
                entries: entries.into(),
                commit: LogIndex(0),
                round: 0,
            },
        };
        let bad = |what, index| {
            Err(CodecError::Inconsistent {
                what,
                index: LogIndex(index),
            })
        };
        let follows = "index does not follow the previous one";
        let cases = [
            (append(2, (0, 0), vec![e(0, 1)]), bad(follows, 0)),
            (append(2, (3, 1), vec![e(5, 1)]), bad(follows, 5)),
            (append(2, (3, 1), vec![e(4, 1), e(4, 1)]), bad(follows, 4)),
            (append(2, (3, 1), vec![e(4, 1), e(6, 1)]), bad(follows, 6)),
            (
                append(2, (TERM_INDEX_MAX, 1), vec![e(0, 1)]),
                bad(follows, 0),
            ),
            // Above the bound the index is refused before the entries are looked at.
            (
                append(2, (u64::MAX, 1), vec![e(0, 1)]),
                Err(CodecError::OutOfRange {
                    what: "index",
                    value: u64::MAX,
                    offset: 26,
                }),
            ),
            (
                append(2, (3, 2), vec![e(4, 1)]),
                bad("term below the previous entry's", 4),
            ),
            (
                append(2, (3, 1), vec![e(4, 2), e(5, 1)]),
                bad("term below the previous entry's", 5),
            ),
            (
                append(2, (3, 1), vec![e(4, 3)]),
                bad("term above the message's term", 4),
            ),
            (
                append(2, (3, 3), vec![]),
                bad("prev_term above the message's term", 3),
            ),
        ];
        for (msg, want) in cases {
            let wire = encode(&msg).unwrap();
            assert_eq!(decode(wire).map(|_| ()), want, "{msg:?}");
        }
        let fine = append(2, (3, 1), vec![e(4, 1), e(5, 2)]);
        assert_eq!(decode(encode(&fine).unwrap()), Ok(fine));
    }

    /// Found by `engine/tests/fuzz_codec.rs`: a TimeoutNow (or any message) at term
    /// `u64::MAX` made the follower adopt the term and overflow it when it campaigned; an
    /// index at `u64::MAX` overflows `last + 1` the same way.
    #[test]
    fn terms_and_indexes_above_the_bound_are_refused() {
        let at = |term: u64, body| Message {
            from: NodeId(1),
            to: NodeId(2),
            term: Term(term),
            body,
        };
        let heartbeat = |commit: u64| MessageBody::Heartbeat {
            commit: LogIndex(commit),
            round: u64::MAX,
        };
        let out = |what, value, offset| {
            Err(CodecError::OutOfRange {
                what,
                value,
                offset,
            })
        };
        for (msg, want) in [
            (
                at(u64::MAX, MessageBody::TimeoutNow),
                out("term", u64::MAX, 18),
            ),
            (
                at(TERM_INDEX_MAX + 1, MessageBody::TimeoutNow),
                out("term", TERM_INDEX_MAX + 1, 18),
            ),
            (
                at(1, heartbeat(u64::MAX - 1)),
                out("index", u64::MAX - 1, 26),
            ),
        ] {
            assert_eq!(decode(encode(&msg).unwrap()), want, "{msg:?}");
        }
        let edge = at(TERM_INDEX_MAX, heartbeat(TERM_INDEX_MAX));
        assert_eq!(decode(encode(&edge).unwrap()), Ok(edge));
    }

    /// Found by `engine/tests/fuzz_codec.rs`: a snapshot whose membership names node 0 (or a
    /// voter that is also a learner) decoded, and the follower's core panicked on the
    /// membership invariant when it installed it.
    #[test]
    fn snapshot_memberships_a_node_cannot_hold_are_refused() {
        let snap = |membership| Message {
            from: NodeId(1),
            to: NodeId(2),
            term: Term(3),
            body: MessageBody::InstallSnapshot {
                meta: SnapshotMeta {
                    index: LogIndex(9),
                    term: Term(3),
                    membership,
                },
                round: 1,
            },
        };
        let bad = |reason| Err(CodecError::BadMembership { reason });
        let zero = Membership::with_voters([NodeId(0), NodeId(1)]);
        let mut both = Membership::with_voters([NodeId(1), NodeId(2)]);
        both.learners.insert(NodeId(2));
        for (m, want) in [
            (zero, bad("node id 0 is a member")),
            (both, bad("a voter is also a learner")),
        ] {
            assert_eq!(decode(encode(&snap(m.clone())).unwrap()), want, "{m:?}");
        }
        let fine = snap(Membership::with_voters([NodeId(1), NodeId(2)]));
        assert_eq!(decode(encode(&fine).unwrap()), Ok(fine));
    }

    #[test]
    fn huge_entry_count_is_refused_without_allocating() {
        let msg = Message {
            from: NodeId(1),
            to: NodeId(2),
            term: Term(3),
            body: MessageBody::AppendEntries {
                prev_index: LogIndex(0),
                prev_term: Term(0),
                entries: Entries::default(),
                commit: LogIndex(0),
                round: 0,
            },
        };
        let mut bytes = encode(&msg).unwrap().to_vec();
        let count_at = bytes.len() - 4;
        bytes[count_at..].copy_from_slice(&u32::MAX.to_le_bytes());
        let err = decode(Bytes::from(bytes)).unwrap_err();
        assert_eq!(
            err,
            CodecError::TooManyEntries {
                count: u32::MAX,
                remaining: 0
            }
        );
    }

    #[test]
    fn entry_data_is_a_zero_copy_slice() {
        let data = Bytes::from_static(b"payload");
        let msg = Message {
            from: NodeId(1),
            to: NodeId(2),
            term: Term(1),
            body: MessageBody::AppendEntries {
                prev_index: LogIndex(0),
                prev_term: Term(0),
                entries: vec![Entry {
                    index: LogIndex(1),
                    term: Term(1),
                    kind: EntryKind::Normal,
                    data,
                }]
                .into(),
                commit: LogIndex(0),
                round: 7,
            },
        };
        let bytes = encode(&msg).unwrap();
        let range = bytes.as_ptr_range();
        let MessageBody::AppendEntries { entries, .. } = decode(bytes.clone()).unwrap().body else {
            panic!("kind");
        };
        assert!(range.contains(&entries[0].data.as_ptr()));
        assert_eq!(encoded_len_hint(&msg), bytes.len());
    }
}
