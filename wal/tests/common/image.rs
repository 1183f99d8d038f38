//! Segment files as bytes on disk, for the recovery fuzz target: read, write and re-checksum
//! them the way `docs/wal-format.md` defines the format (header CRC over bytes 0..60; frame
//! CRC seeded by the segment's seq and salt over bytes 0..4, 8..32 and the payload), so that a
//! mutation can forge a frame that verifies.

use std::path::{Path, PathBuf};

use ringraft_wal::layout::{segment_name, FRAME_HEADER_LEN, HEADER_LEN};

use super::frames;

/// A segment file of a log directory.
pub struct SegmentFile {
    pub seq: u64,
    pub path: PathBuf,
    pub bytes: Vec<u8>,
}

/// Segment files of `dir`, in sequence order.
pub fn segments(dir: &Path) -> Vec<SegmentFile> {
    let mut out: Vec<SegmentFile> = std::fs::read_dir(dir)
        .expect("list log directory")
        .filter_map(|e| {
            let path = e.expect("directory entry").path();
            let name = path.file_name()?.to_str()?.to_string();
            let seq: u64 = name.strip_suffix(".wal")?.parse().ok()?;
            (segment_name(seq) == name).then(|| SegmentFile {
                seq,
                bytes: std::fs::read(&path).expect("read segment"),
                path,
            })
        })
        .collect();
    out.sort_by_key(|s| s.seq);
    out
}

/// End (segment seq, offset after the last frame) of the written log: where the next write
/// would go, as far as the length fields tell.
pub fn log_end(dir: &Path) -> (u64, usize) {
    segments(dir)
        .iter()
        .rev()
        .find_map(|s| {
            let f = frames(&s.bytes);
            f.last().map(|&(off, len, _)| (s.seq, off + len))
        })
        .unwrap_or((0, HEADER_LEN))
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().expect("8 bytes"))
}

/// The CRC seed of the frames of a segment with this header (docs/wal-format.md).
pub fn frame_seed(header: &[u8]) -> u32 {
    let (seq, salt) = (u64_at(header, 16), u64_at(header, 24));
    let x = salt ^ seq.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    (x ^ (x >> 32)) as u32
}

/// Recomputes the header CRC of a segment image.
pub fn fix_header_crc(seg: &mut [u8]) {
    let crc = crc32fast::hash(&seg[..60]);
    seg[60..64].copy_from_slice(&crc.to_le_bytes());
}

/// Recomputes the CRC of the frame at `off` (its length field must fit the image).
pub fn fix_frame_crc(seg: &mut [u8], off: usize) {
    let seed = frame_seed(&seg[..HEADER_LEN]);
    let len = u32::from_le_bytes(seg[off..off + 4].try_into().expect("4 bytes")) as usize;
    let end = (off + FRAME_HEADER_LEN + len).min(seg.len());
    let mut c = crc32fast::Hasher::new_with_initial(seed);
    c.update(&seg[off..off + 4]);
    c.update(&seg[off + 8..end]);
    let crc = c.finalize();
    seg[off + 4..off + 8].copy_from_slice(&crc.to_le_bytes());
}

/// Gives a segment image a new sequence number: header field, header CRC, and every frame's
/// CRC under the new seed, so that the log reads the same under the new name.
pub fn renumber(seg: &mut [u8], seq: u64) {
    let offs: Vec<usize> = frames(seg).iter().map(|f| f.0).collect();
    seg[16..24].copy_from_slice(&seq.to_le_bytes());
    fix_header_crc(seg);
    for off in offs {
        fix_frame_crc(seg, off);
    }
}
