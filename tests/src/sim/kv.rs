//! The replicated key-value state machine the simulation applies committed entries to.

use std::collections::BTreeMap;
use std::sync::Arc;

use bytes::{BufMut, Bytes, BytesMut};

/// A client write, as carried in a log entry's data.
///
/// Each write has a value unique across the run, so a read identifies the write it observed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PutCommand {
    /// Issuing client.
    pub client: u64,
    /// The client's operation number (for traces).
    pub seq: u64,
    /// Register written.
    pub key: u64,
    /// Value written (unique in the run).
    pub value: u64,
}

/// Tag byte of an encoded [`PutCommand`].
const PUT_TAG: u8 = 0x50;
/// Encoded length of a [`PutCommand`].
const PUT_LEN: usize = 1 + 4 * 8;

impl PutCommand {
    /// Encodes the command as entry data.
    pub fn encode(&self) -> Bytes {
        let mut b = BytesMut::with_capacity(PUT_LEN);
        b.put_u8(PUT_TAG);
        b.put_u64_le(self.client);
        b.put_u64_le(self.seq);
        b.put_u64_le(self.key);
        b.put_u64_le(self.value);
        b.freeze()
    }

    /// Decodes entry data written by [`PutCommand::encode`]; `None` for anything else.
    pub fn decode(data: &[u8]) -> Option<PutCommand> {
        if data.len() != PUT_LEN || data[0] != PUT_TAG {
            return None;
        }
        let word = |i: usize| {
            let start = 1 + 8 * i;
            let bytes: [u8; 8] = data[start..start + 8]
                .try_into()
                .expect("slice of exactly 8 bytes");
            u64::from_le_bytes(bytes)
        };
        Some(PutCommand {
            client: word(0),
            seq: word(1),
            key: word(2),
            value: word(3),
        })
    }
}

/// A point-in-time copy of the state machine, shipped with InstallSnapshot.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KvSnapshot {
    /// Last log index the snapshot covers.
    pub index: u64,
    /// Term of that entry.
    pub term: u64,
    /// Register values at `index`.
    pub values: BTreeMap<u64, u64>,
}

/// The key-value state machine of one node.
#[derive(Clone, Debug, Default)]
pub struct KvStore {
    values: BTreeMap<u64, u64>,
    applied_index: u64,
    applied_term: u64,
}

impl KvStore {
    /// An empty store (nothing applied).
    pub fn new() -> Self {
        KvStore::default()
    }

    /// Rebuilds a store from a snapshot.
    pub fn from_snapshot(snap: &KvSnapshot) -> Self {
        KvStore {
            values: snap.values.clone(),
            applied_index: snap.index,
            applied_term: snap.term,
        }
    }

    /// Applies the entry at `index`; `data` is a [`PutCommand`] or something the store ignores
    /// (no-ops, configuration changes).
    pub fn apply(&mut self, index: u64, term: u64, data: &[u8]) -> Option<PutCommand> {
        assert_eq!(
            index,
            self.applied_index + 1,
            "entries are applied in order without gaps"
        );
        self.applied_index = index;
        self.applied_term = term;
        let cmd = PutCommand::decode(data)?;
        self.values.insert(cmd.key, cmd.value);
        Some(cmd)
    }

    /// The value of `key`, if written.
    pub fn get(&self, key: u64) -> Option<u64> {
        self.values.get(&key).copied()
    }

    /// Highest applied index.
    pub fn applied_index(&self) -> u64 {
        self.applied_index
    }

    /// A snapshot of the current state.
    pub fn snapshot(&self) -> Arc<KvSnapshot> {
        Arc::new(KvSnapshot {
            index: self.applied_index,
            term: self.applied_term,
            values: self.values.clone(),
        })
    }
}

/// A 64-bit FNV-1a digest of entry contents, to compare entries cheaply across nodes.
pub fn digest(kind: u8, data: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in std::iter::once(&kind).chain(data.iter()) {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn put_roundtrip_and_apply() {
        let cmd = PutCommand {
            client: 1,
            seq: 2,
            key: 3,
            value: 4,
        };
        assert_eq!(PutCommand::decode(&cmd.encode()), Some(cmd));
        assert_eq!(PutCommand::decode(b"noop"), None);
        let mut kv = KvStore::new();
        kv.apply(1, 1, b"");
        kv.apply(2, 1, &cmd.encode());
        assert_eq!(kv.get(3), Some(4));
        let restored = KvStore::from_snapshot(&kv.snapshot());
        assert_eq!(restored.get(3), Some(4));
        assert_eq!(restored.applied_index(), 2);
    }
}
