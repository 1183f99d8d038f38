//! ringraft-wal: a segmented, memory-mapped, checksummed write-ahead log.
//!
//! The log stores records `(index, term, payload)`, a hard state ([`HardState`]) and snapshot
//! metadata ([`SnapshotMeta`]). It knows nothing of Raft.
//!
//! # Guarantees
//! - **Durability.** A [`Ticket`] completes with `Ok` only after the write that carries its
//!   request and an `fdatasync` of every segment it touched returned (in
//!   [`Durability::Fdatasync`], the default). [`Durability::NoSync`] skips the sync and is for
//!   experiments only.
//! - **Group commit.** Requests queued while a commit runs go together into the next single
//!   write and single fdatasync (per segment touched), without a timer. A lone appender that
//!   blocks in [`Ticket::wait`] commits on its own thread.
//! - **Ordering.** Requests become durable in the order they were accepted; the durable index
//!   only grows contiguously, so a completed ticket implies every earlier request is durable.
//!   Hard state and snapshot metadata are ordered with entries and can share their fdatasync.
//! - **Reads** ([`Wal::entry`], [`Wal::entries`]) see durable records only, as zero-copy
//!   [`bytes::Bytes`] slices of a read-only memory map that stay valid after compaction.
//! - **Truncation and compaction** are durable markers in the frame stream: after a crash the
//!   log is in the state before or after, and truncated entries never reappear.
//! - **Recovery** ([`RecoveryMode`]) verifies every frame's CRC and index continuity, and
//!   tells an unsynced tail from damage to durable data by what the disk proves. Every frame
//!   (format version 2) records the synced watermark `w` of its write: every byte before `w`
//!   was covered by a returned fdatasync. A bad frame at offset `p` is refused as
//!   [`Error::Corruption`] (segment, offset, index) if (a) a later valid frame of its segment
//!   records `w > p`, or (b) a later segment was written at all (it is written only after
//!   its predecessor's seal was synced), or (c) it lies in the last write group, whose sync
//!   no frame can prove, and none of its 512-byte sectors reads as unwritten (zero from the
//!   frame to the sector's end): a write lost in a power cut leaves zero sectors over the
//!   zero-filled segment, so a frame with none reached the disk whole and its bad checksum is
//!   media damage. Anything else is the unsynced tail of a power cut (later pages may have
//!   reached the disk before earlier ones) and is cut, zeroed and synced, without operator
//!   action. So an acknowledged record is never silently cut, and nothing is deleted for real
//!   corruption unless the operator opens with [`RecoveryMode::TruncateAtCorruption`]. The
//!   proof and its residual cases are in `docs/wal-format.md`, "Recovery".
//! - **Fatal errors.** A failed write or fdatasync poisons the log: every later append fails
//!   with [`Error::Fatal`], the sync is never retried. Reopen to recover.
//! - **Full disk.** Segments are allocated in full (zero-filled) before use, so ENOSPC shows
//!   up as [`Error::NoSpace`] when a segment is prepared; nothing of the rejected requests is
//!   written and appends succeed again once space is back.
//! - **Memory.** The log keeps 4 bytes per live entry (its offset) plus a few words per
//!   segment, never record data.
//!
//! The log's files must not be modified by other processes while it is open (they are mapped).
//! The format is described in `docs/wal-format.md`.
//!
//! # Example
//! ```
//! use ringraft_wal::{Config, Entry, HardState, Wal};
//!
//! let dir = tempfile::tempdir()?;
//! let config = Config { segment_bytes: 1 << 20, record_bytes_max: 64 << 10, ..Config::default() };
//! let wal = Wal::open(dir.path(), config)?;
//! // Hard state and entries queued together share one write and one fdatasync.
//! let vote = wal.set_hard_state(HardState { term: 1, vote: Some(3), commit: 0 })?;
//! let batch = wal.append(vec![Entry::new(1, 1, "hello"), Entry::new(2, 1, "world")])?;
//! assert_eq!(batch.wait()?, 2); // or `.await` on any runtime
//! vote.wait()?;
//! assert_eq!(&wal.entry(2)?.payload[..], b"world");
//! wal.truncate_suffix(2)?; // entry 2 is gone, durably
//! assert_eq!(wal.last_index(), 1);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod commit;
mod completion;
mod config;
mod error;
mod format;
mod index;
pub mod io;
mod prepare;
mod publish;
mod queue;
mod recovery;
mod segment;
mod shared;
pub mod sim;
mod ticket;
mod transition;
mod types;
pub mod util;
mod wal;

pub use config::{BackendKind, Config, Durability, RecoveryMode};
pub use error::{CorruptionKind, Error, Result};
#[cfg(feature = "mutations")]
pub use recovery::mutation;
pub use ticket::Ticket;
pub use types::{Entry, HardState, SnapshotMeta};
pub use wal::Wal;

/// Format constants, for tools and tests that inspect segment files.
pub mod layout {
    pub use crate::format::{FRAME_HEADER_LEN, HEADER_LEN, SEAL_LEN};

    /// File name of segment `seq`.
    pub fn segment_name(seq: u64) -> String {
        crate::segment::seg_name(seq)
    }
}
