//! [`KvCommand`]: the commands of the replicated map, and their compact encoding.
//!
//! ```text
//! command  = op:u8 body
//!   1 set       klen:varint key value*            (value: the rest)
//!   2 get       klen:varint key
//!   3 del       klen:varint key
//!   4 set-if    klen:varint key cond:u8 value*    (cond 1: only if absent, 2: only if present)
//!   5 incr-by   klen:varint key delta:i64le
//!   6 append    klen:varint key value*
//!   7 mset      n:varint (klen:varint key vlen:varint value){n}
//!   8 del-many  n:varint (klen:varint key){n}
//!   9 flush     (nothing)
//!  10 batch     n:varint (len:varint command){n}  (no batch inside a batch)
//! ```
//!
//! Ops 1 to 3 are the original encoding and keep their responses (see [`super`]); the others
//! answer with a [`KvReply`].

use bytes::{BufMut, Bytes, BytesMut};

use super::{InvalidCommand, KEY_BYTES_MAX};

const OP_SET: u8 = 1;
const OP_GET: u8 = 2;
const OP_DEL: u8 = 3;
const OP_SET_IF: u8 = 4;
const OP_INCR_BY: u8 = 5;
const OP_APPEND: u8 = 6;
const OP_MSET: u8 = 7;
const OP_DEL_MANY: u8 = 8;
const OP_FLUSH: u8 = 9;
const OP_BATCH: u8 = 10;

/// Most commands in one [`KvCommand::Batch`] or keys in one `mset`/`del-many`: a bound on
/// the vector a decode allocates, whatever a corrupt length claims.
pub const BATCH_COMMANDS_MAX: usize = 1 << 16;

/// The condition of a [`KvCommand::SetIf`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SetCondition {
    /// Only if the key is absent (Redis `SET NX`).
    IfAbsent,
    /// Only if the key is present (Redis `SET XX`).
    IfPresent,
}

/// A key-value command.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KvCommand {
    /// Sets `key` to `value`.
    Set {
        /// The key.
        key: Bytes,
        /// The value.
        value: Bytes,
    },
    /// Reads `key` through the log (a read that is also ordered with writes).
    Get {
        /// The key.
        key: Bytes,
    },
    /// Deletes `key`.
    Del {
        /// The key.
        key: Bytes,
    },
    /// Sets `key` to `value` if `cond` holds; replies [`KvReply::Int`] 1 (set) or 0.
    SetIf {
        /// The key.
        key: Bytes,
        /// The value.
        value: Bytes,
        /// When to set.
        cond: SetCondition,
    },
    /// Adds `delta` to the integer stored at `key` (absent counts as 0); replies the new
    /// value, or [`KvError::NotInteger`] / [`KvError::Overflow`] without changing anything.
    IncrBy {
        /// The key.
        key: Bytes,
        /// The increment (negative to decrement).
        delta: i64,
    },
    /// Appends `value` to the value at `key` (absent counts as empty); replies the new
    /// length, or [`KvError::TooLarge`] past [`super::VALUE_BYTES_MAX`].
    Append {
        /// The key.
        key: Bytes,
        /// The suffix.
        value: Bytes,
    },
    /// Sets every pair, in order; replies [`KvReply::Ok`].
    MSet {
        /// Key-value pairs.
        pairs: Vec<(Bytes, Bytes)>,
    },
    /// Deletes every key; replies the number that existed.
    DelMany {
        /// The keys.
        keys: Vec<Bytes>,
    },
    /// Deletes everything; replies [`KvReply::Ok`].
    Flush,
    /// Several encoded commands applied in order as one log entry (a client's pipeline);
    /// replies with each command's response (see [`decode_batch_response`]).
    Batch {
        /// The encoded commands (none of them a batch).
        commands: Vec<Bytes>,
    },
}

/// Why a command changed nothing (deterministic: every replica answers the same).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KvError {
    /// The stored value is not a decimal 64-bit integer.
    NotInteger,
    /// The result would not fit in 64 bits.
    Overflow,
    /// The result would be longer than [`super::VALUE_BYTES_MAX`].
    TooLarge,
}

/// The response of ops 4 and up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KvReply {
    /// Done.
    Ok,
    /// An integer result.
    Int(i64),
    /// Refused.
    Err(KvError),
}

const REPLY_OK: u8 = 0x10;
const REPLY_INT: u8 = 0x11;
const REPLY_ERR: u8 = 0x12;

impl KvReply {
    /// The reply's bytes.
    #[must_use]
    pub fn encode(self) -> Bytes {
        match self {
            KvReply::Ok => Bytes::from_static(&[REPLY_OK]),
            KvReply::Int(v) => {
                let mut out = BytesMut::with_capacity(9);
                out.put_u8(REPLY_INT);
                out.put_i64_le(v);
                out.freeze()
            }
            KvReply::Err(e) => {
                let code = match e {
                    KvError::NotInteger => 1,
                    KvError::Overflow => 2,
                    KvError::TooLarge => 3,
                };
                Bytes::from(vec![REPLY_ERR, code])
            }
        }
    }

    /// Decodes a reply written by [`KvReply::encode`]; `None` for anything else.
    #[must_use]
    pub fn decode(buf: &[u8]) -> Option<KvReply> {
        match buf {
            [REPLY_OK] => Some(KvReply::Ok),
            [REPLY_INT, rest @ ..] => Some(KvReply::Int(i64::from_le_bytes(rest.try_into().ok()?))),
            [REPLY_ERR, 1] => Some(KvReply::Err(KvError::NotInteger)),
            [REPLY_ERR, 2] => Some(KvReply::Err(KvError::Overflow)),
            [REPLY_ERR, 3] => Some(KvReply::Err(KvError::TooLarge)),
            _ => None,
        }
    }
}

pub(crate) fn put_varint(out: &mut BytesMut, mut v: u64) {
    while v >= 0x80 {
        out.put_u8((v as u8) | 0x80);
        v >>= 7;
    }
    out.put_u8(v as u8);
}

fn get_varint(buf: &[u8]) -> Option<(u64, usize)> {
    let mut v = 0u64;
    for (i, b) in buf.iter().enumerate().take(10) {
        v |= u64::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            return Some((v, i + 1));
        }
    }
    None
}

/// A cursor over an encoded command; every read is bounds-checked.
struct Reader<'a> {
    buf: &'a Bytes,
    at: usize,
}

impl Reader<'_> {
    fn varint(&mut self) -> Result<usize, InvalidCommand> {
        let (v, n) = get_varint(&self.buf[self.at..]).ok_or(InvalidCommand)?;
        self.at += n;
        usize::try_from(v).map_err(|_| InvalidCommand)
    }

    fn blob(&mut self, len: usize) -> Result<Bytes, InvalidCommand> {
        let end = self.at.checked_add(len).ok_or(InvalidCommand)?;
        if end > self.buf.len() {
            return Err(InvalidCommand);
        }
        let out = self.buf.slice(self.at..end);
        self.at = end;
        Ok(out)
    }

    fn key(&mut self) -> Result<Bytes, InvalidCommand> {
        let len = self.varint()?;
        if len > KEY_BYTES_MAX {
            return Err(InvalidCommand);
        }
        self.blob(len)
    }

    fn u8(&mut self) -> Result<u8, InvalidCommand> {
        Ok(self.blob(1)?[0])
    }

    fn count(&mut self) -> Result<usize, InvalidCommand> {
        let n = self.varint()?;
        if n > BATCH_COMMANDS_MAX {
            return Err(InvalidCommand);
        }
        Ok(n)
    }

    fn rest(&mut self) -> Bytes {
        let out = self.buf.slice(self.at..);
        self.at = self.buf.len();
        out
    }

    fn done(&self) -> Result<(), InvalidCommand> {
        if self.at == self.buf.len() {
            Ok(())
        } else {
            Err(InvalidCommand)
        }
    }
}

fn put_blob(out: &mut BytesMut, b: &[u8]) {
    put_varint(out, b.len() as u64);
    out.put_slice(b);
}

impl KvCommand {
    /// `set key value`.
    pub fn set(key: impl Into<Bytes>, value: impl Into<Bytes>) -> Self {
        KvCommand::Set {
            key: key.into(),
            value: value.into(),
        }
    }

    /// `get key`.
    pub fn get(key: impl Into<Bytes>) -> Self {
        KvCommand::Get { key: key.into() }
    }

    /// `del key`.
    pub fn del(key: impl Into<Bytes>) -> Self {
        KvCommand::Del { key: key.into() }
    }

    /// Upper bound of the encoded length, for buffer sizing.
    fn encoded_len_hint(&self) -> usize {
        let pairs = |p: &[(Bytes, Bytes)]| p.iter().map(|(k, v)| 20 + k.len() + v.len()).sum();
        16 + match self {
            KvCommand::Set { key, value }
            | KvCommand::SetIf { key, value, .. }
            | KvCommand::Append { key, value } => key.len() + value.len(),
            KvCommand::Get { key } | KvCommand::Del { key } | KvCommand::IncrBy { key, .. } => {
                key.len()
            }
            KvCommand::MSet { pairs: p } => pairs(p),
            KvCommand::DelMany { keys } => keys.iter().map(|k| 10 + k.len()).sum(),
            KvCommand::Flush => 0,
            KvCommand::Batch { commands } => commands.iter().map(|c| 10 + c.len()).sum(),
        }
    }

    /// Appends the command's bytes to `out`.
    pub fn encode_into(&self, out: &mut BytesMut) {
        match self {
            KvCommand::Set { key, value } => Self::put_key_op(out, OP_SET, key, value),
            KvCommand::Get { key } => Self::put_key_op(out, OP_GET, key, &[]),
            KvCommand::Del { key } => Self::put_key_op(out, OP_DEL, key, &[]),
            KvCommand::Append { key, value } => Self::put_key_op(out, OP_APPEND, key, value),
            KvCommand::SetIf { key, value, cond } => {
                let c = match cond {
                    SetCondition::IfAbsent => 1,
                    SetCondition::IfPresent => 2,
                };
                Self::put_key_op(out, OP_SET_IF, key, &[c]);
                out.put_slice(value);
            }
            KvCommand::IncrBy { key, delta } => {
                Self::put_key_op(out, OP_INCR_BY, key, &delta.to_le_bytes());
            }
            KvCommand::MSet { pairs } => {
                out.put_u8(OP_MSET);
                put_varint(out, pairs.len() as u64);
                for (k, v) in pairs {
                    put_blob(out, k);
                    put_blob(out, v);
                }
            }
            KvCommand::DelMany { keys } => {
                out.put_u8(OP_DEL_MANY);
                put_varint(out, keys.len() as u64);
                keys.iter().for_each(|k| put_blob(out, k));
            }
            KvCommand::Flush => out.put_u8(OP_FLUSH),
            KvCommand::Batch { commands } => {
                out.put_u8(OP_BATCH);
                put_varint(out, commands.len() as u64);
                commands.iter().for_each(|c| put_blob(out, c));
            }
        }
    }

    fn put_key_op(out: &mut BytesMut, op: u8, key: &[u8], rest: &[u8]) {
        out.put_u8(op);
        put_blob(out, key);
        out.put_slice(rest);
    }

    /// The command's bytes, to pass to [`crate::node::NodeHandle::propose`].
    #[must_use]
    pub fn encode(&self) -> Bytes {
        let mut out = BytesMut::with_capacity(self.encoded_len_hint());
        self.encode_into(&mut out);
        out.freeze()
    }

    /// Decodes a command; keys and values are zero-copy slices of `buf`.
    ///
    /// # Errors
    /// [`InvalidCommand`] for an unknown op, a bad length, trailing bytes, or a batch inside
    /// a batch.
    pub fn decode(buf: &Bytes) -> Result<Self, InvalidCommand> {
        let mut r = Reader { buf, at: 1 };
        let op = *buf.first().ok_or(InvalidCommand)?;
        let cmd = match op {
            OP_SET => KvCommand::Set {
                key: r.key()?,
                value: r.rest(),
            },
            OP_GET => KvCommand::Get { key: r.key()? },
            OP_DEL => KvCommand::Del { key: r.key()? },
            OP_SET_IF => {
                let key = r.key()?;
                let cond = match r.u8()? {
                    1 => SetCondition::IfAbsent,
                    2 => SetCondition::IfPresent,
                    _ => return Err(InvalidCommand),
                };
                KvCommand::SetIf {
                    key,
                    cond,
                    value: r.rest(),
                }
            }
            OP_INCR_BY => {
                let key = r.key()?;
                let delta = r.blob(8)?;
                let delta = i64::from_le_bytes(delta[..].try_into().map_err(|_| InvalidCommand)?);
                KvCommand::IncrBy { key, delta }
            }
            OP_APPEND => KvCommand::Append {
                key: r.key()?,
                value: r.rest(),
            },
            OP_MSET => Self::decode_mset(&mut r)?,
            OP_DEL_MANY => {
                let n = r.count()?;
                let keys = (0..n).map(|_| r.key()).collect::<Result<_, _>>()?;
                KvCommand::DelMany { keys }
            }
            OP_FLUSH => KvCommand::Flush,
            OP_BATCH => Self::decode_batch(&mut r)?,
            _ => return Err(InvalidCommand),
        };
        r.done()?;
        Ok(cmd)
    }

    fn decode_mset(r: &mut Reader<'_>) -> Result<Self, InvalidCommand> {
        let n = r.count()?;
        let mut pairs = Vec::with_capacity(n.min(1024));
        for _ in 0..n {
            let key = r.key()?;
            let len = r.varint()?;
            pairs.push((key, r.blob(len)?));
        }
        Ok(KvCommand::MSet { pairs })
    }

    fn decode_batch(r: &mut Reader<'_>) -> Result<Self, InvalidCommand> {
        let n = r.count()?;
        let mut commands = Vec::with_capacity(n.min(1024));
        for _ in 0..n {
            let len = r.varint()?;
            let c = r.blob(len)?;
            if c.first() == Some(&OP_BATCH) {
                return Err(InvalidCommand);
            }
            commands.push(c);
        }
        Ok(KvCommand::Batch { commands })
    }
}

/// Builds a [`KvCommand::Batch`] encoding incrementally, without a vector of commands.
#[derive(Debug, Default)]
pub struct BatchBuilder {
    body: BytesMut,
    scratch: BytesMut,
    count: usize,
}

impl BatchBuilder {
    /// Adds one command (it must not be a batch).
    pub fn push(&mut self, cmd: &KvCommand) {
        assert!(
            !matches!(cmd, KvCommand::Batch { .. }),
            "a batch holds no batch"
        );
        self.scratch.clear();
        cmd.encode_into(&mut self.scratch);
        put_blob(&mut self.body, &self.scratch);
        self.count += 1;
    }

    /// Commands added.
    #[must_use]
    pub fn len(&self) -> usize {
        self.count
    }

    /// Whether no command was added.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Encoded bytes so far.
    #[must_use]
    pub fn bytes(&self) -> usize {
        self.body.len()
    }

    /// The encoded batch; the builder is empty again.
    pub fn finish(&mut self) -> Bytes {
        let mut out = BytesMut::with_capacity(self.body.len() + 11);
        out.put_u8(OP_BATCH);
        put_varint(&mut out, self.count as u64);
        out.put_slice(&self.body);
        self.body.clear();
        self.count = 0;
        out.freeze()
    }
}

/// Encodes the response of a batch: `n:varint (len:varint response){n}`.
pub(crate) fn encode_batch_response(responses: &[Bytes]) -> Bytes {
    let len = responses.iter().map(|r| r.len() + 5).sum::<usize>() + 5;
    let mut out = BytesMut::with_capacity(len);
    put_varint(&mut out, responses.len() as u64);
    responses.iter().for_each(|r| put_blob(&mut out, r));
    out.freeze()
}

/// Splits the response of a [`KvCommand::Batch`] into its commands' responses (zero-copy).
///
/// # Errors
/// [`InvalidCommand`] if `buf` is not a batch response (such as the single
/// [`super::RESPONSE_INVALID`] byte of a batch that did not decode).
pub fn decode_batch_response(buf: &Bytes) -> Result<Vec<Bytes>, InvalidCommand> {
    let mut r = Reader { buf, at: 0 };
    let n = r.count()?;
    let mut out = Vec::with_capacity(n.min(1024));
    for _ in 0..n {
        let len = r.varint()?;
        out.push(r.blob(len)?);
    }
    r.done()?;
    Ok(out)
}
