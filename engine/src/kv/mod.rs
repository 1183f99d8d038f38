//! An example replicated key-value store: commands `set`, `get` and `del`, encoded compactly,
//! and the [`StateMachine`] that applies them. Used by the tests, the benchmark and the
//! README example.
//!
//! ```text
//! command  = op:u8 klen:varint key[klen] value*      (op 1 set, 2 get, 3 del; value: set only)
//! response = set: empty | get: 0 (absent) or 1 value | del: 0 (absent) or 1 (deleted)
//!            | 0xff: the command did not decode (applied as a no-op on every replica)
//! ```

use std::collections::BTreeMap;
use std::io::{self, BufReader, Read, Write};

use bytes::{BufMut, Bytes, BytesMut};

use crate::node::{Command, SnapshotView, StateMachine};

const OP_SET: u8 = 1;
const OP_GET: u8 = 2;
const OP_DEL: u8 = 3;
/// Response to a command that does not decode.
pub const RESPONSE_INVALID: u8 = 0xff;
/// Longest key accepted, bytes: keys are indexed in memory.
pub const KEY_BYTES_MAX: usize = 64 << 10;

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
}

/// A command that does not decode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("invalid kv command")]
pub struct InvalidCommand;

fn put_varint(out: &mut BytesMut, mut v: u64) {
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

    /// The command's bytes, to pass to [`crate::node::NodeHandle::propose`].
    #[must_use]
    pub fn encode(&self) -> Bytes {
        let (op, key, value) = match self {
            KvCommand::Set { key, value } => (OP_SET, key, &value[..]),
            KvCommand::Get { key } => (OP_GET, key, &[][..]),
            KvCommand::Del { key } => (OP_DEL, key, &[][..]),
        };
        let mut out = BytesMut::with_capacity(1 + 5 + key.len() + value.len());
        out.put_u8(op);
        put_varint(&mut out, key.len() as u64);
        out.put_slice(key);
        out.put_slice(value);
        out.freeze()
    }

    /// Decodes a command; the key and value are zero-copy slices of `buf`.
    ///
    /// # Errors
    /// [`InvalidCommand`] for an unknown op, a bad length, or trailing bytes after a get/del.
    pub fn decode(buf: &Bytes) -> Result<Self, InvalidCommand> {
        let op = *buf.first().ok_or(InvalidCommand)?;
        let (klen, n) = get_varint(&buf[1..]).ok_or(InvalidCommand)?;
        let klen = usize::try_from(klen).map_err(|_| InvalidCommand)?;
        if klen > KEY_BYTES_MAX || 1 + n + klen > buf.len() {
            return Err(InvalidCommand);
        }
        let key = buf.slice(1 + n..1 + n + klen);
        let rest = buf.slice(1 + n + klen..);
        match op {
            OP_SET => Ok(KvCommand::Set { key, value: rest }),
            OP_GET if rest.is_empty() => Ok(KvCommand::Get { key }),
            OP_DEL if rest.is_empty() => Ok(KvCommand::Del { key }),
            _ => Err(InvalidCommand),
        }
    }
}

/// Decodes the response to a `get` (or `del`): the value if the key was present.
#[must_use]
pub fn decode_get_response(response: &Bytes) -> Option<Bytes> {
    match response.first() {
        Some(1) => Some(response.slice(1..)),
        _ => None,
    }
}

/// The replicated map.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct KvStateMachine {
    map: BTreeMap<Bytes, Bytes>,
}

impl KvStateMachine {
    /// The value of `key`.
    #[must_use]
    pub fn get(&self, key: &[u8]) -> Option<Bytes> {
        self.map.get(key).cloned()
    }

    /// Number of keys.
    #[must_use]
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Whether the map is empty.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// The whole map (tests compare replicas with it).
    #[must_use]
    pub fn entries(&self) -> &BTreeMap<Bytes, Bytes> {
        &self.map
    }

    fn apply_one(&mut self, data: &Bytes) -> Bytes {
        match KvCommand::decode(data) {
            Ok(KvCommand::Set { key, value }) => {
                // Copy out of the log's buffer: a map entry must not pin a WAL segment.
                self.map
                    .insert(Bytes::copy_from_slice(&key), Bytes::copy_from_slice(&value));
                Bytes::new()
            }
            Ok(KvCommand::Get { key }) => match self.map.get(&key) {
                Some(v) => {
                    let mut out = BytesMut::with_capacity(1 + v.len());
                    out.put_u8(1);
                    out.put_slice(v);
                    out.freeze()
                }
                None => Bytes::from_static(&[0]),
            },
            Ok(KvCommand::Del { key }) => {
                let existed = self.map.remove(&key).is_some();
                Bytes::from_static(if existed { &[1] } else { &[0] })
            }
            Err(InvalidCommand) => Bytes::from_static(&[RESPONSE_INVALID]),
        }
    }
}

fn read_varint(r: &mut impl Read) -> io::Result<Option<u64>> {
    let mut v = 0u64;
    for i in 0..10 {
        let mut b = [0u8; 1];
        if r.read(&mut b)? == 0 {
            return if i == 0 {
                Ok(None)
            } else {
                Err(io::ErrorKind::UnexpectedEof.into())
            };
        }
        v |= u64::from(b[0] & 0x7f) << (7 * i);
        if b[0] & 0x80 == 0 {
            return Ok(Some(v));
        }
    }
    Err(io::Error::new(
        io::ErrorKind::InvalidData,
        "varint too long",
    ))
}

fn read_blob(r: &mut impl Read, len: u64, max: u64) -> io::Result<Bytes> {
    if len > max {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "length too large",
        ));
    }
    let mut v = vec![0u8; len as usize];
    r.read_exact(&mut v)?;
    Ok(Bytes::from(v))
}

fn write_map(map: &BTreeMap<Bytes, Bytes>, out: &mut dyn Write) -> io::Result<()> {
    let mut buf = BytesMut::new();
    for (k, v) in map {
        buf.clear();
        put_varint(&mut buf, k.len() as u64);
        buf.put_slice(k);
        put_varint(&mut buf, v.len() as u64);
        out.write_all(&buf)?;
        out.write_all(v)?;
    }
    Ok(())
}

/// A copy of the map taken at snapshot time.
struct KvView(BTreeMap<Bytes, Bytes>);

impl SnapshotView for KvView {
    fn write_to(self: Box<Self>, out: &mut dyn Write) -> io::Result<()> {
        write_map(&self.0, out)
    }
}

/// Largest value accepted from a snapshot (the WAL's default record limit).
const VALUE_BYTES_MAX: u64 = 8 << 20;

impl StateMachine for KvStateMachine {
    fn apply(&mut self, batch: &[Command]) -> Vec<Bytes> {
        batch.iter().map(|c| self.apply_one(&c.data)).collect()
    }

    fn snapshot(&self, out: &mut dyn Write) -> io::Result<()> {
        write_map(&self.map, out)
    }

    fn snapshot_view(&self) -> Option<Box<dyn SnapshotView>> {
        // Keys and values are reference-counted: the copy costs a pointer per entry, and the
        // serialization runs on the snapshot thread.
        Some(Box::new(KvView(self.map.clone())))
    }

    fn restore(&mut self, input: &mut dyn Read) -> io::Result<()> {
        let mut r = BufReader::new(input);
        let mut map = BTreeMap::new();
        while let Some(klen) = read_varint(&mut r)? {
            let key = read_blob(&mut r, klen, KEY_BYTES_MAX as u64)?;
            let vlen = read_varint(&mut r)?.ok_or(io::ErrorKind::UnexpectedEof)?;
            let value = read_blob(&mut r, vlen, VALUE_BYTES_MAX)?;
            map.insert(key, value);
        }
        self.map = map;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::raft::{LogIndex, Term};
    use proptest::prelude::*;

    fn cmd(i: u64, c: &KvCommand) -> Command {
        Command {
            index: LogIndex(i),
            term: Term(1),
            data: c.encode(),
        }
    }

    #[test]
    fn set_get_del() {
        let mut kv = KvStateMachine::default();
        let out = kv.apply(&[
            cmd(1, &KvCommand::set("a", "1")),
            cmd(2, &KvCommand::get("a")),
            cmd(3, &KvCommand::del("a")),
            cmd(4, &KvCommand::get("a")),
        ]);
        assert_eq!(decode_get_response(&out[1]).as_deref(), Some(&b"1"[..]));
        assert_eq!(out[2], Bytes::from_static(&[1]));
        assert_eq!(decode_get_response(&out[3]), None);
        let bad = kv.apply(&[Command {
            index: LogIndex(5),
            term: Term(1),
            data: Bytes::from_static(&[9, 9]),
        }]);
        assert_eq!(bad[0], Bytes::from_static(&[RESPONSE_INVALID]));
    }

    proptest! {
        #[test]
        fn commands_round_trip(op in 0u8..3, k in proptest::collection::vec(any::<u8>(), 0..300),
                               v in proptest::collection::vec(any::<u8>(), 0..50)) {
            let c = match op {
                0 => KvCommand::set(k, v),
                1 => KvCommand::get(k),
                _ => KvCommand::del(k),
            };
            prop_assert_eq!(KvCommand::decode(&c.encode()), Ok(c));
        }

        #[test]
        fn garbage_commands_never_panic(b in proptest::collection::vec(any::<u8>(), 0..40)) {
            let _ = KvCommand::decode(&Bytes::from(b));
        }

        #[test]
        fn snapshot_restore_replaces_state(
            a in proptest::collection::btree_map(any::<Vec<u8>>(), any::<Vec<u8>>(), 0..20),
            b in proptest::collection::btree_map(any::<Vec<u8>>(), any::<Vec<u8>>(), 0..20),
        ) {
            let mut src = KvStateMachine::default();
            let mut dst = KvStateMachine::default();
            for (i, (k, v)) in a.iter().enumerate() {
                src.apply(&[cmd(i as u64, &KvCommand::set(k.clone(), v.clone()))]);
            }
            for (i, (k, v)) in b.iter().enumerate() {
                dst.apply(&[cmd(i as u64, &KvCommand::set(k.clone(), v.clone()))]);
            }
            let mut buf = Vec::new();
            src.snapshot(&mut buf).expect("snapshot");
            let mut from_view = Vec::new();
            src.snapshot_view().expect("view").write_to(&mut from_view).expect("view");
            prop_assert_eq!(&from_view, &buf);
            dst.restore(&mut &buf[..]).expect("restore");
            prop_assert_eq!(dst, src);
        }
    }
}
