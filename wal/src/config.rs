//! Configuration of a write-ahead log.

use crate::error::{Error, Result};
use crate::format::{checkpoint_bytes_max, frame_len, HEADER_LEN, SEAL_LEN};

/// When an append counts as durable.
///
/// Exhaustive: the engine shares this enum with its node configuration and maps every mode,
/// so a new one must be a compile error there until it is handled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Durability {
    /// One `fdatasync` per group commit (the default, and the only crash-safe mode).
    #[default]
    Fdatasync,
    /// Write but never sync; tickets complete after the write. For experiments only: a power
    /// failure loses an arbitrary suffix. Benchmarks name this mode in their output.
    NoSync,
}

impl Durability {
    /// Short name for reports: `fdatasync` or `nosync`.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Durability::Fdatasync => "fdatasync",
            Durability::NoSync => "nosync",
        }
    }
}

/// What recovery does with damage that is not a torn tail.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum RecoveryMode {
    /// Cut a torn tail; fail with [`Error::Corruption`] on anything else. Deletes nothing.
    #[default]
    Strict,
    /// Operator override: cut the log at the first corruption (later segments are deleted,
    /// the rest of the damaged segment is zeroed). Entries after that point are lost.
    TruncateAtCorruption,
}

/// Which I/O backend a log on a real directory uses.
///
/// Exhaustive: the engine shares this enum with its node configuration and picks the
/// transport for every backend, so a new one must be a compile error there until it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum BackendKind {
    /// io_uring if a ring can be created, else the thread backend (with one warning).
    #[default]
    Auto,
    /// io_uring only; opening fails if a ring cannot be created.
    IoUring,
    /// Plain `pwrite` + `fdatasync` on the committing thread.
    Thread,
}

/// Configuration of a [`crate::Wal`].
#[derive(Debug, Clone)]
pub struct Config {
    /// Size of every segment file, bytes. 64 MiB by default: large enough that rotation (and
    /// its extra fdatasync) is rare, small enough that compaction frees space promptly.
    pub segment_bytes: u64,
    /// Largest record payload accepted, bytes.
    pub record_bytes_max: u32,
    /// Largest snapshot membership blob accepted, bytes.
    pub membership_bytes_max: u32,
    /// Bytes of queued, not yet written appends after which `append` blocks (backpressure).
    pub queue_bytes_max: usize,
    /// Sync policy.
    pub durability: Durability,
    /// Recovery policy.
    pub recovery: RecoveryMode,
    /// I/O backend for [`crate::Wal::open`].
    pub backend: BackendKind,
    /// Prepare the next segment on a background thread (default). When false, a segment is
    /// prepared on the committing thread at rotation (deterministic, used by simulations).
    pub prepare_ahead: bool,
    /// Run a background log-writer thread that commits queued appends (default). When false,
    /// appends are committed only by [`crate::Ticket::wait`] and [`crate::Wal::flush`]; futures
    /// then never complete on their own. Used by deterministic simulations.
    pub background_writer: bool,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            segment_bytes: 64 << 20,
            record_bytes_max: 8 << 20,
            membership_bytes_max: 64 << 10,
            queue_bytes_max: 64 << 20,
            durability: Durability::Fdatasync,
            recovery: RecoveryMode::Strict,
            backend: BackendKind::Auto,
            prepare_ahead: true,
            background_writer: true,
        }
    }
}

impl Config {
    /// A small configuration for tests: 64 KiB segments, 8 KiB records.
    pub fn small() -> Self {
        Config {
            segment_bytes: 64 << 10,
            record_bytes_max: 8 << 10,
            membership_bytes_max: 1 << 10,
            queue_bytes_max: 1 << 20,
            ..Config::default()
        }
    }

    /// Checks that one maximal record always fits in a fresh segment.
    pub(crate) fn validate(&self) -> Result<()> {
        let need = HEADER_LEN as u64
            + checkpoint_bytes_max(self.membership_bytes_max) as u64
            + frame_len(self.record_bytes_max as usize) as u64
            + SEAL_LEN as u64;
        if self.segment_bytes < need {
            return Err(Error::InvalidConfig {
                reason: "segment_bytes too small for record_bytes_max and membership_bytes_max",
            });
        }
        if self.segment_bytes > u32::MAX as u64 {
            // Offsets in the in-memory index are u32.
            return Err(Error::InvalidConfig {
                reason: "segment_bytes over 4 GiB",
            });
        }
        if !self.segment_bytes.is_multiple_of(4096) {
            return Err(Error::InvalidConfig {
                reason: "segment_bytes not a multiple of 4096",
            });
        }
        if self.queue_bytes_max == 0 {
            return Err(Error::InvalidConfig {
                reason: "queue_bytes_max is zero",
            });
        }
        Ok(())
    }
}
