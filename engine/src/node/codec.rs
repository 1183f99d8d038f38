//! Wire encoding of [`Message`]: versioned, little-endian, bounds-checked.
//!
//! ```text
//! message  = version:u8 tag:u8 from:u64 to:u64 term:u64 body
//! entry    = index:u64 term:u64 kind:u8 len:u32 data[len]
//! entries  = count:u32 entry*count
//! bool     = u8 (0 or 1; anything else is an error)
//! option   = u8 (0 none, 1 some) value?
//! member.  = len:u32 bytes[len]            (Membership::encode)
//! ```
//!
//! Decoding never panics and never allocates more than the input justifies: every count and
//! length is checked against the bytes left before anything is reserved. Entry payloads are
//! zero-copy slices of the received buffer. Trailing bytes are an error, so a frame is either
//! exactly one message or garbage.

use bytes::{BufMut, Bytes, BytesMut};

use crate::raft::{
    Entry, EntryKind, LogIndex, Membership, Message, MessageBody, NodeId, ReadId, RejectHint,
    SnapshotMeta, Term,
};

/// Version of the encoding; a peer speaking another version is refused per message.
pub const CODEC_VERSION: u8 = 1;

/// Bytes of an encoded entry besides its payload.
const ENTRY_HEADER_BYTES: usize = 8 + 8 + 1 + 4;

/// A message that does not decode.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CodecError {
    /// The input ended before the field at `offset`.
    #[error("truncated message at offset {offset}")]
    Truncated {
        /// Offset of the missing field.
        offset: usize,
    },
    /// Another codec version.
    #[error("unsupported codec version {version} (this node speaks {CODEC_VERSION})")]
    Version {
        /// The version byte received.
        version: u8,
    },
    /// An unknown tag (message kind, entry kind, bool or option flag) at `offset`.
    #[error("invalid tag {tag} at offset {offset}")]
    Tag {
        /// The byte received.
        tag: u8,
        /// Its offset.
        offset: usize,
    },
    /// The membership blob does not decode.
    #[error("invalid membership at offset {offset}")]
    Membership {
        /// Offset of the blob.
        offset: usize,
    },
    /// Bytes after the end of the message.
    #[error("{extra} trailing bytes")]
    Trailing {
        /// How many.
        extra: usize,
    },
}

mod tag {
    pub(super) const REQUEST_VOTE: u8 = 1;
    pub(super) const REQUEST_VOTE_RESPONSE: u8 = 2;
    pub(super) const APPEND_ENTRIES: u8 = 3;
    pub(super) const APPEND_ENTRIES_RESPONSE: u8 = 4;
    pub(super) const HEARTBEAT: u8 = 5;
    pub(super) const HEARTBEAT_RESPONSE: u8 = 6;
    pub(super) const INSTALL_SNAPSHOT: u8 = 7;
    pub(super) const TIMEOUT_NOW: u8 = 8;
    pub(super) const READ_INDEX: u8 = 9;
    pub(super) const READ_INDEX_RESPONSE: u8 = 10;
}

/// Encodes `msg` into one buffer (entry payloads are copied once, into the frame).
#[must_use]
pub fn encode(msg: &Message) -> Bytes {
    let mut out = BytesMut::with_capacity(encoded_len_hint(msg));
    out.put_u8(CODEC_VERSION);
    out.put_u8(body_tag(&msg.body));
    out.put_u64_le(msg.from.0);
    out.put_u64_le(msg.to.0);
    out.put_u64_le(msg.term.0);
    encode_body(&mut out, &msg.body);
    out.freeze()
}

fn encoded_len_hint(msg: &Message) -> usize {
    let entries = match &msg.body {
        MessageBody::AppendEntries { entries, .. } => entries
            .iter()
            .map(|e| ENTRY_HEADER_BYTES + e.data.len())
            .sum(),
        _ => 0,
    };
    64 + entries
}

fn body_tag(body: &MessageBody) -> u8 {
    match body {
        MessageBody::RequestVote { .. } => tag::REQUEST_VOTE,
        MessageBody::RequestVoteResponse { .. } => tag::REQUEST_VOTE_RESPONSE,
        MessageBody::AppendEntries { .. } => tag::APPEND_ENTRIES,
        MessageBody::AppendEntriesResponse { .. } => tag::APPEND_ENTRIES_RESPONSE,
        MessageBody::Heartbeat { .. } => tag::HEARTBEAT,
        MessageBody::HeartbeatResponse { .. } => tag::HEARTBEAT_RESPONSE,
        MessageBody::InstallSnapshot { .. } => tag::INSTALL_SNAPSHOT,
        MessageBody::TimeoutNow => tag::TIMEOUT_NOW,
        MessageBody::ReadIndex { .. } => tag::READ_INDEX,
        MessageBody::ReadIndexResponse { .. } => tag::READ_INDEX_RESPONSE,
    }
}

fn encode_body(out: &mut BytesMut, body: &MessageBody) {
    match body {
        MessageBody::RequestVote {
            pre_vote,
            last_index,
            last_term,
            transfer,
        } => {
            out.put_u8(u8::from(*pre_vote));
            out.put_u64_le(last_index.0);
            out.put_u64_le(last_term.0);
            out.put_u8(u8::from(*transfer));
        }
        MessageBody::RequestVoteResponse { pre_vote, granted } => {
            out.put_u8(u8::from(*pre_vote));
            out.put_u8(u8::from(*granted));
        }
        MessageBody::AppendEntries {
            prev_index,
            prev_term,
            entries,
            commit,
            round,
        } => {
            out.put_u64_le(prev_index.0);
            out.put_u64_le(prev_term.0);
            out.put_u64_le(commit.0);
            out.put_u64_le(*round);
            let count = u32::try_from(entries.len()).expect("AppendEntries batches are bounded");
            out.put_u32_le(count);
            for e in entries {
                encode_entry(out, e);
            }
        }
        MessageBody::AppendEntriesResponse {
            index,
            reject,
            round,
        } => {
            out.put_u64_le(index.0);
            out.put_u64_le(*round);
            match reject {
                None => out.put_u8(0),
                Some(h) => {
                    out.put_u8(1);
                    out.put_u64_le(h.index.0);
                    out.put_u64_le(h.term.0);
                }
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
            let m = meta.membership.encode();
            let len = u32::try_from(m.len()).expect("memberships are small");
            out.put_u32_le(len);
            out.put_slice(&m);
            out.put_u64_le(*round);
        }
        MessageBody::TimeoutNow => {}
        MessageBody::ReadIndex { id } => out.put_u64_le(id.0),
        MessageBody::ReadIndexResponse { id, index } => {
            out.put_u64_le(id.0);
            match index {
                None => out.put_u8(0),
                Some(i) => {
                    out.put_u8(1);
                    out.put_u64_le(i.0);
                }
            }
        }
    }
}

fn encode_entry(out: &mut BytesMut, e: &Entry) {
    out.put_u64_le(e.index.0);
    out.put_u64_le(e.term.0);
    out.put_u8(match e.kind {
        EntryKind::Normal => 0,
        EntryKind::Noop => 1,
        EntryKind::ConfChange => 2,
    });
    let len = u32::try_from(e.data.len()).expect("entries are bounded by the WAL record size");
    out.put_u32_le(len);
    out.put_slice(&e.data);
}

/// Decodes one message from `buf`; entry payloads are zero-copy slices of `buf`.
///
/// # Errors
/// [`CodecError`] for anything that is not exactly one well-formed message.
pub fn decode(buf: &Bytes) -> Result<Message, CodecError> {
    let mut r = Reader { buf, offset: 0 };
    let version = r.u8()?;
    if version != CODEC_VERSION {
        return Err(CodecError::Version { version });
    }
    let tag_offset = r.offset;
    let tag = r.u8()?;
    let from = NodeId(r.u64()?);
    let to = NodeId(r.u64()?);
    let term = Term(r.u64()?);
    let body = decode_body(&mut r, tag, tag_offset)?;
    let extra = buf.len() - r.offset;
    if extra != 0 {
        return Err(CodecError::Trailing { extra });
    }
    Ok(Message {
        from,
        to,
        term,
        body,
    })
}

fn decode_body(r: &mut Reader<'_>, tag: u8, offset: usize) -> Result<MessageBody, CodecError> {
    Ok(match tag {
        tag::REQUEST_VOTE => MessageBody::RequestVote {
            pre_vote: r.bool()?,
            last_index: LogIndex(r.u64()?),
            last_term: Term(r.u64()?),
            transfer: r.bool()?,
        },
        tag::REQUEST_VOTE_RESPONSE => MessageBody::RequestVoteResponse {
            pre_vote: r.bool()?,
            granted: r.bool()?,
        },
        tag::APPEND_ENTRIES => {
            let prev_index = LogIndex(r.u64()?);
            let prev_term = Term(r.u64()?);
            let commit = LogIndex(r.u64()?);
            let round = r.u64()?;
            let entries = r.entries()?;
            MessageBody::AppendEntries {
                prev_index,
                prev_term,
                entries: entries.into(),
                commit,
                round,
            }
        }
        tag::APPEND_ENTRIES_RESPONSE => {
            let index = LogIndex(r.u64()?);
            let round = r.u64()?;
            let reject = if r.bool()? {
                Some(RejectHint {
                    index: LogIndex(r.u64()?),
                    term: Term(r.u64()?),
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
        tag::HEARTBEAT => MessageBody::Heartbeat {
            commit: LogIndex(r.u64()?),
            round: r.u64()?,
        },
        tag::HEARTBEAT_RESPONSE => MessageBody::HeartbeatResponse { round: r.u64()? },
        tag::INSTALL_SNAPSHOT => {
            let index = LogIndex(r.u64()?);
            let term = Term(r.u64()?);
            let membership = r.membership()?;
            MessageBody::InstallSnapshot {
                meta: SnapshotMeta {
                    index,
                    term,
                    membership,
                },
                round: r.u64()?,
            }
        }
        tag::TIMEOUT_NOW => MessageBody::TimeoutNow,
        tag::READ_INDEX => MessageBody::ReadIndex {
            id: ReadId(r.u64()?),
        },
        tag::READ_INDEX_RESPONSE => {
            let id = ReadId(r.u64()?);
            let index = if r.bool()? {
                Some(LogIndex(r.u64()?))
            } else {
                None
            };
            MessageBody::ReadIndexResponse { id, index }
        }
        other => return Err(CodecError::Tag { tag: other, offset }),
    })
}

struct Reader<'a> {
    buf: &'a Bytes,
    offset: usize,
}

impl Reader<'_> {
    fn take(&mut self, n: usize) -> Result<&[u8], CodecError> {
        let end = self
            .offset
            .checked_add(n)
            .filter(|&end| end <= self.buf.len())
            .ok_or(CodecError::Truncated {
                offset: self.offset,
            })?;
        let s = &self.buf[self.offset..end];
        self.offset = end;
        Ok(s)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], CodecError> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.take(N)?);
        Ok(a)
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

    fn bool(&mut self) -> Result<bool, CodecError> {
        let offset = self.offset;
        match self.u8()? {
            0 => Ok(false),
            1 => Ok(true),
            tag => Err(CodecError::Tag { tag, offset }),
        }
    }

    fn bytes(&mut self, len: usize) -> Result<Bytes, CodecError> {
        let start = self.offset;
        self.take(len)?;
        Ok(self.buf.slice(start..start + len))
    }

    fn entries(&mut self) -> Result<Vec<Entry>, CodecError> {
        let count = self.u32()? as usize;
        // Every entry takes at least its header: a count the input cannot hold is garbage,
        // rejected before reserving memory for it.
        let left = self.buf.len() - self.offset;
        if count > left / ENTRY_HEADER_BYTES {
            return Err(CodecError::Truncated {
                offset: self.offset,
            });
        }
        let mut entries = Vec::with_capacity(count);
        for _ in 0..count {
            let index = LogIndex(self.u64()?);
            let term = Term(self.u64()?);
            let offset = self.offset;
            let kind = match self.u8()? {
                0 => EntryKind::Normal,
                1 => EntryKind::Noop,
                2 => EntryKind::ConfChange,
                tag => return Err(CodecError::Tag { tag, offset }),
            };
            let len = self.u32()? as usize;
            let data = self.bytes(len)?;
            entries.push(Entry {
                index,
                term,
                kind,
                data,
            });
        }
        Ok(entries)
    }

    fn membership(&mut self) -> Result<Membership, CodecError> {
        let len = self.u32()? as usize;
        let offset = self.offset;
        let blob = self.take(len)?;
        Membership::decode(blob).map_err(|_| CodecError::Membership { offset })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn entry() -> impl Strategy<Value = Entry> {
        (
            any::<u64>(),
            any::<u64>(),
            0u8..3,
            proptest::collection::vec(any::<u8>(), 0..64),
        )
            .prop_map(|(i, t, k, d)| Entry {
                index: LogIndex(i),
                term: Term(t),
                kind: [EntryKind::Normal, EntryKind::Noop, EntryKind::ConfChange][k as usize],
                data: Bytes::from(d),
            })
    }

    fn membership() -> impl Strategy<Value = Membership> {
        proptest::collection::btree_set(1u64..10, 1..4)
            .prop_map(|v| Membership::with_voters(v.into_iter().map(NodeId)))
    }

    fn body() -> impl Strategy<Value = MessageBody> {
        let u = any::<u64>;
        prop_oneof![
            (any::<bool>(), u(), u(), any::<bool>()).prop_map(|(p, i, t, x)| {
                MessageBody::RequestVote {
                    pre_vote: p,
                    last_index: LogIndex(i),
                    last_term: Term(t),
                    transfer: x,
                }
            }),
            (any::<bool>(), any::<bool>()).prop_map(|(p, g)| MessageBody::RequestVoteResponse {
                pre_vote: p,
                granted: g
            }),
            (u(), u(), proptest::collection::vec(entry(), 0..5), u(), u()).prop_map(
                |(pi, pt, entries, c, r)| MessageBody::AppendEntries {
                    prev_index: LogIndex(pi),
                    prev_term: Term(pt),
                    entries: entries.into(),
                    commit: LogIndex(c),
                    round: r,
                }
            ),
            (u(), proptest::option::of((u(), u())), u()).prop_map(|(i, h, r)| {
                MessageBody::AppendEntriesResponse {
                    index: LogIndex(i),
                    reject: h.map(|(i, t)| RejectHint {
                        index: LogIndex(i),
                        term: Term(t),
                    }),
                    round: r,
                }
            }),
            (u(), u()).prop_map(|(c, r)| MessageBody::Heartbeat {
                commit: LogIndex(c),
                round: r
            }),
            u().prop_map(|r| MessageBody::HeartbeatResponse { round: r }),
            (u(), u(), membership(), u()).prop_map(|(i, t, m, r)| {
                MessageBody::InstallSnapshot {
                    meta: SnapshotMeta {
                        index: LogIndex(i),
                        term: Term(t),
                        membership: m,
                    },
                    round: r,
                }
            }),
            Just(MessageBody::TimeoutNow),
            u().prop_map(|i| MessageBody::ReadIndex { id: ReadId(i) }),
            (u(), proptest::option::of(u())).prop_map(|(i, x)| {
                MessageBody::ReadIndexResponse {
                    id: ReadId(i),
                    index: x.map(LogIndex),
                }
            }),
        ]
    }

    fn message() -> impl Strategy<Value = Message> {
        (any::<u64>(), any::<u64>(), any::<u64>(), body()).prop_map(|(f, t, term, body)| Message {
            from: NodeId(f),
            to: NodeId(t),
            term: Term(term),
            body,
        })
    }

    proptest! {
        #[test]
        fn round_trip(msg in message()) {
            let wire = encode(&msg);
            prop_assert_eq!(decode(&wire), Ok(msg));
        }

        #[test]
        fn garbage_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
            let _ = decode(&Bytes::from(bytes));
        }

        #[test]
        fn every_prefix_and_extension_is_rejected(msg in message(), extra in 1usize..4) {
            let wire = encode(&msg);
            for cut in 0..wire.len() {
                prop_assert!(decode(&wire.slice(..cut)).is_err());
            }
            let mut longer = BytesMut::from(&wire[..]);
            longer.put_bytes(0, extra);
            prop_assert_eq!(decode(&longer.freeze()), Err(CodecError::Trailing { extra }));
        }

        #[test]
        fn flipped_bytes_never_panic(msg in message(), at in any::<usize>(), x in 1u8..) {
            let mut wire = BytesMut::from(&encode(&msg)[..]);
            let at = at % wire.len();
            wire[at] ^= x;
            let _ = decode(&wire.freeze());
        }
    }

    #[test]
    fn huge_entry_count_is_rejected_before_allocating() {
        let msg = Message {
            from: NodeId(1),
            to: NodeId(2),
            term: Term(1),
            body: MessageBody::AppendEntries {
                prev_index: LogIndex(0),
                prev_term: Term(0),
                entries: Vec::new().into(),
                commit: LogIndex(0),
                round: 0,
            },
        };
        let mut wire = BytesMut::from(&encode(&msg)[..]);
        let n = wire.len();
        wire[n - 4..].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(matches!(
            decode(&wire.freeze()),
            Err(CodecError::Truncated { .. })
        ));
    }

    #[test]
    fn other_versions_are_refused() {
        let wire = Bytes::from_static(&[2, 8]);
        assert_eq!(decode(&wire), Err(CodecError::Version { version: 2 }));
    }
}
