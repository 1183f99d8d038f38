//! Segment files: naming, preparation (allocate in full, header, durable rename).

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::io;
use std::sync::Arc;

use crate::error::{Error, Result};
use crate::format::{Decoder, FrameCtx, SegmentHeader, HEADER_LEN, VERSION, VERSION_V1};
use crate::io::{IoBackend, SegmentIo};

/// An open segment.
pub(crate) struct Segment {
    pub(crate) seq: u64,
    pub(crate) seed: u32,
    /// Format version of the segment's header and frames.
    pub(crate) version: u32,
    pub(crate) io: Arc<dyn SegmentIo>,
    pub(crate) name: String,
}

impl Segment {
    /// How frames of this segment are decoded.
    pub(crate) fn decoder(&self, payload_max: usize) -> Decoder {
        Decoder {
            seed: self.seed,
            version: self.version,
            payload_max,
        }
    }

    /// How frames of a write starting at `synced` are encoded: version 1 segments record no
    /// watermark (zero, as that version requires).
    pub(crate) fn frame_ctx(&self, synced: u64) -> FrameCtx {
        let synced = if self.version == VERSION_V1 {
            0
        } else {
            u32::try_from(synced).expect("segments are at most 4 GiB")
        };
        FrameCtx {
            seed: self.seed,
            synced,
        }
    }
}

const SUFFIX: &str = ".wal";
const TMP_SUFFIX: &str = ".wal.tmp";

pub(crate) fn seg_name(seq: u64) -> String {
    format!("{seq:020}{SUFFIX}")
}

/// Sequence number of a segment file name, or `None` for other files.
pub(crate) fn parse_name(name: &str) -> Option<u64> {
    let stem = name.strip_suffix(SUFFIX)?;
    if stem.len() != 20 || !stem.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    stem.parse().ok()
}

pub(crate) fn is_tmp(name: &str) -> bool {
    name.ends_with(TMP_SUFFIX)
}

fn random_salt(seq: u64) -> u64 {
    let mut h = RandomState::new().build_hasher();
    h.write_u64(seq);
    h.finish()
}

fn is_no_space(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::ENOSPC) | Some(libc::EDQUOT))
}

/// Creates segment `seq`: a zero-filled file of `len` bytes under a temporary name, with its
/// header written and synced, then renamed into place and the directory synced. A crash at
/// any point leaves either no segment `seq` or a complete, empty one (plus maybe a temporary
/// file that the next open removes).
pub(crate) fn prepare(backend: &dyn IoBackend, seq: u64, len: u64) -> Result<Arc<Segment>> {
    let tmp = format!("{seq:020}{TMP_SUFFIX}");
    let name = seg_name(seq);
    let header = SegmentHeader {
        seq,
        salt: random_salt(seq),
        segment_bytes: len,
        version: VERSION,
    };
    let fail = |op: &'static str, e: io::Error| {
        if is_no_space(&e) {
            Error::NoSpace {
                segment: seq,
                source: Arc::new(e),
            }
        } else {
            Error::io(op, e)
        }
    };
    let io = match backend
        .allocate(&tmp, len)
        .and_then(|()| backend.open(&tmp))
    {
        Ok(io) => io,
        Err(e) => {
            // Best effort: a leftover temporary file is also removed at the next open.
            let _ = backend.remove(&tmp);
            return Err(fail("allocate segment", e));
        }
    };
    io.write_all_and_sync(0, &header.encode(), true)
        .map_err(|e| fail("write segment header", e))?;
    backend
        .rename(&tmp, &name)
        .map_err(|e| fail("rename segment", e))?;
    backend.sync_dir().map_err(|e| fail("sync directory", e))?;
    Ok(Arc::new(Segment {
        seq,
        seed: header.seed(),
        version: VERSION,
        io,
        name,
    }))
}

/// Opens segment file `name` and checks its header.
pub(crate) fn open(backend: &dyn IoBackend, name: &str, seq: u64) -> Result<Arc<Segment>> {
    let io = backend
        .open(name)
        .map_err(|e| Error::io("open segment", e))?;
    let bad = || Error::Corruption {
        kind: crate::error::CorruptionKind::BadHeader,
        segment: seq,
        offset: 0,
        index: None,
    };
    let head = io.read(0, HEADER_LEN).map_err(|_| bad())?;
    let h = SegmentHeader::decode(&head).ok_or_else(bad)?;
    if h.seq != seq || h.segment_bytes != io.size() {
        return Err(bad());
    }
    if h.version != VERSION && h.version != VERSION_V1 {
        return Err(Error::UnsupportedVersion {
            segment: seq,
            version: h.version,
        });
    }
    Ok(Arc::new(Segment {
        seq,
        seed: h.seed(),
        version: h.version,
        io,
        name: name.to_string(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert_eq!(parse_name(&seg_name(42)), Some(42));
        assert_eq!(parse_name("00000000000000000042.wal.tmp"), None);
        assert_eq!(parse_name("x.wal"), None);
        assert!(is_tmp("00000000000000000042.wal.tmp"));
    }
}
