//! [`Entries`]: a shared, immutable run of log entries.

use std::fmt;
use std::ops::Deref;
use std::sync::Arc;

use crate::raft::types::{Entry, LogIndex};

/// A contiguous run of entries behind one reference count: cloning it, or handing the same
/// batch to the WAL, to two followers and to the state machine, costs one atomic increment per
/// batch instead of one per entry. Dereferences to `[Entry]`.
#[derive(Clone, Default)]
pub struct Entries {
    buf: Option<Arc<[Entry]>>,
    start: usize,
    end: usize,
}

impl Entries {
    /// Copies `entries` into a new shared buffer.
    #[must_use]
    pub fn from_slice(entries: &[Entry]) -> Self {
        if entries.is_empty() {
            return Entries::default();
        }
        let buf: Arc<[Entry]> = Arc::from(entries);
        let end = buf.len();
        Entries {
            buf: Some(buf),
            start: 0,
            end,
        }
    }

    /// The sub-run of entries with indexes in `[lo, hi]`, if this run covers it.
    #[must_use]
    pub(crate) fn sub(&self, lo: LogIndex, hi: LogIndex) -> Option<Entries> {
        let first = self.first()?.index;
        let last = self.last()?.index;
        if lo < first || hi > last || lo > hi {
            return None;
        }
        let offset = |i: LogIndex| usize::try_from(i.0 - first.0).ok();
        Some(Entries {
            buf: self.buf.clone(),
            start: self.start + offset(lo)?,
            end: self.start + offset(hi)? + 1,
        })
    }

    /// An owned copy of the entries.
    #[must_use]
    pub fn to_vec(&self) -> Vec<Entry> {
        self.deref().to_vec()
    }
}

impl Deref for Entries {
    type Target = [Entry];

    fn deref(&self) -> &[Entry] {
        match &self.buf {
            Some(buf) => &buf[self.start..self.end],
            None => &[],
        }
    }
}

impl From<Vec<Entry>> for Entries {
    fn from(v: Vec<Entry>) -> Self {
        if v.is_empty() {
            return Entries::default();
        }
        let buf: Arc<[Entry]> = Arc::from(v);
        let end = buf.len();
        Entries {
            buf: Some(buf),
            start: 0,
            end,
        }
    }
}

impl From<Entries> for Vec<Entry> {
    fn from(e: Entries) -> Self {
        e.to_vec()
    }
}

impl PartialEq for Entries {
    fn eq(&self, other: &Self) -> bool {
        self.deref() == other.deref()
    }
}

impl Eq for Entries {}

impl fmt::Debug for Entries {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

impl<'a> IntoIterator for &'a Entries {
    type Item = &'a Entry;
    type IntoIter = std::slice::Iter<'a, Entry>;

    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

impl IntoIterator for Entries {
    type Item = Entry;
    type IntoIter = std::vec::IntoIter<Entry>;

    /// Clones the entries out (the buffer may be shared).
    fn into_iter(self) -> Self::IntoIter {
        self.to_vec().into_iter()
    }
}
