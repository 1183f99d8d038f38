//! A small, versioned binary encoding of [`ConfChange`] (entry payloads) and [`Membership`]
//! (snapshot metadata). Little-endian `u64`s behind one tag byte each.

use std::collections::BTreeSet;

use bytes::{BufMut, Bytes, BytesMut};

use crate::raft::membership::{ConfChange, ConfChangeStep, Membership};
use crate::raft::types::NodeId;

/// Format version written first; bump it on any layout change.
const CODEC_VERSION: u8 = 1;
/// Limit on the members of one set, so a corrupt length cannot make us allocate without bound.
const SET_LEN_MAX: u64 = 1 << 16;
// Node ids are u64 but clusters are small; the limit must still allow any sane cluster.
const _: () = assert!(SET_LEN_MAX >= 1024);

/// Why bytes could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// The input ended early.
    #[error("truncated input at offset {offset}")]
    Truncated {
        /// Byte offset where more input was needed.
        offset: usize,
    },
    /// An unknown tag or version byte.
    #[error("unknown tag {tag} at offset {offset}")]
    UnknownTag {
        /// The byte read.
        tag: u8,
        /// Its offset.
        offset: usize,
    },
    /// A set longer than the decoder accepts (65,536 members).
    #[error("set length {len} over the limit")]
    TooLong {
        /// The length read.
        len: u64,
    },
    /// Bytes left after the value.
    #[error("{extra} trailing bytes")]
    Trailing {
        /// How many.
        extra: usize,
    },
}

struct Reader<'a> {
    buf: &'a [u8],
    offset: usize,
}

impl Reader<'_> {
    fn u8(&mut self) -> Result<u8, DecodeError> {
        let b = *self.buf.get(self.offset).ok_or(DecodeError::Truncated {
            offset: self.offset,
        })?;
        self.offset += 1;
        Ok(b)
    }

    fn u64(&mut self) -> Result<u64, DecodeError> {
        let end = self.offset + 8;
        let bytes = self
            .buf
            .get(self.offset..end)
            .ok_or(DecodeError::Truncated {
                offset: self.offset,
            })?;
        let mut arr = [0u8; 8];
        arr.copy_from_slice(bytes);
        self.offset = end;
        Ok(u64::from_le_bytes(arr))
    }

    fn set(&mut self) -> Result<BTreeSet<NodeId>, DecodeError> {
        let len = self.u64()?;
        if len > SET_LEN_MAX {
            return Err(DecodeError::TooLong { len });
        }
        (0..len).map(|_| self.u64().map(NodeId)).collect()
    }

    fn finish(&self) -> Result<(), DecodeError> {
        match self.buf.len() - self.offset {
            0 => Ok(()),
            extra => Err(DecodeError::Trailing { extra }),
        }
    }

    fn version(&mut self) -> Result<(), DecodeError> {
        let offset = self.offset;
        match self.u8()? {
            CODEC_VERSION => Ok(()),
            tag => Err(DecodeError::UnknownTag { tag, offset }),
        }
    }
}

fn put_set(out: &mut BytesMut, set: &BTreeSet<NodeId>) {
    out.put_u64_le(set.len() as u64);
    for id in set {
        out.put_u64_le(id.0);
    }
}

impl Membership {
    /// Encodes the configuration (for snapshot metadata).
    #[must_use]
    pub fn encode(&self) -> Bytes {
        let mut out = BytesMut::new();
        out.put_u8(CODEC_VERSION);
        put_set(&mut out, &self.voters);
        put_set(&mut out, &self.voters_outgoing);
        put_set(&mut out, &self.learners);
        out.put_u8(u8::from(self.auto_leave));
        out.freeze()
    }

    /// Decodes what [`Membership::encode`] wrote.
    pub fn decode(buf: &[u8]) -> Result<Self, DecodeError> {
        let mut r = Reader { buf, offset: 0 };
        r.version()?;
        let voters = r.set()?;
        let voters_outgoing = r.set()?;
        let learners = r.set()?;
        let auto_leave = r.u8()? != 0;
        r.finish()?;
        Ok(Membership {
            voters,
            voters_outgoing,
            learners,
            auto_leave,
        })
    }
}

const TAG_LEAVE: u8 = 0;
const TAG_ENTER: u8 = 1;
const STEP_ADD_VOTER: u8 = 1;
const STEP_ADD_LEARNER: u8 = 2;
const STEP_PROMOTE: u8 = 3;
const STEP_REMOVE: u8 = 4;

impl ConfChange {
    /// Encodes the change as an entry payload.
    #[must_use]
    pub fn encode(&self) -> Bytes {
        let mut out = BytesMut::new();
        out.put_u8(CODEC_VERSION);
        match self {
            ConfChange::Leave => out.put_u8(TAG_LEAVE),
            ConfChange::Enter { steps, auto_leave } => {
                out.put_u8(TAG_ENTER);
                out.put_u8(u8::from(*auto_leave));
                out.put_u64_le(steps.len() as u64);
                for step in steps {
                    let (tag, id) = match step {
                        ConfChangeStep::AddVoter(id) => (STEP_ADD_VOTER, id),
                        ConfChangeStep::AddLearner(id) => (STEP_ADD_LEARNER, id),
                        ConfChangeStep::PromoteLearner(id) => (STEP_PROMOTE, id),
                        ConfChangeStep::Remove(id) => (STEP_REMOVE, id),
                    };
                    out.put_u8(tag);
                    out.put_u64_le(id.0);
                }
            }
        }
        out.freeze()
    }

    /// Decodes what [`ConfChange::encode`] wrote.
    pub fn decode(buf: &[u8]) -> Result<Self, DecodeError> {
        let mut r = Reader { buf, offset: 0 };
        r.version()?;
        let offset = r.offset;
        let change = match r.u8()? {
            TAG_LEAVE => ConfChange::Leave,
            TAG_ENTER => decode_enter(&mut r)?,
            tag => return Err(DecodeError::UnknownTag { tag, offset }),
        };
        r.finish()?;
        Ok(change)
    }
}

fn decode_enter(r: &mut Reader<'_>) -> Result<ConfChange, DecodeError> {
    let auto_leave = r.u8()? != 0;
    let len = r.u64()?;
    if len > SET_LEN_MAX {
        return Err(DecodeError::TooLong { len });
    }
    let mut steps = Vec::new();
    for _ in 0..len {
        let offset = r.offset;
        let tag = r.u8()?;
        let id = NodeId(r.u64()?);
        steps.push(match tag {
            STEP_ADD_VOTER => ConfChangeStep::AddVoter(id),
            STEP_ADD_LEARNER => ConfChangeStep::AddLearner(id),
            STEP_PROMOTE => ConfChangeStep::PromoteLearner(id),
            STEP_REMOVE => ConfChangeStep::Remove(id),
            tag => return Err(DecodeError::UnknownTag { tag, offset }),
        });
    }
    Ok(ConfChange::Enter { steps, auto_leave })
}
