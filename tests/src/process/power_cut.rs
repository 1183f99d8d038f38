//! A simulated power cut of a killed node: of its WAL's newest write, the only one an
//! fdatasync may not have covered, a seeded subset of pages is lost.
//!
//! Why that is the whole space of a real power cut: the WAL issues a write only after the
//! previous one's fdatasync returned (one write, then one fdatasync, per segment, in order),
//! and every frame records the offset where its write began (the synced watermark,
//! `docs/wal-format.md`). So when the process dies, everything before the newest frame's
//! watermark is durable, and of the newest write the disk may have persisted any subset of
//! pages, in any order. The write is certainly durable when it carries an entry the node
//! acknowledged to its leader (acknowledgements leave only after the fdatasync), so the
//! caller passes the highest index the leader saw acknowledged (its `match`, read after the
//! node died, so final).

use std::path::{Path, PathBuf};

use crate::rng::Rng;

/// Bytes of a page: a power cut loses or keeps each page written since the last fdatasync.
pub const PAGE_BYTES: usize = 4096;

/// A frame of a segment file: offset, end (aligned), kind, index, synced watermark.
type FrameInfo = (usize, usize, u8, u64, usize);

/// The newest segment of `wal` that holds frames: its path, its bytes and its frames.
///
/// # Panics
/// If the directory or a segment cannot be read, or no segment holds a frame.
pub fn newest_frames(wal: &Path) -> (PathBuf, Vec<u8>, Vec<FrameInfo>) {
    use ringraft_wal::layout::{FRAME_HEADER_LEN, HEADER_LEN};
    let mut segs: Vec<PathBuf> = std::fs::read_dir(wal)
        .expect("wal dir")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "wal"))
        .collect();
    segs.sort();
    for path in segs.into_iter().rev() {
        let b = std::fs::read(&path).expect("read segment");
        let mut frames = Vec::new();
        let mut off = HEADER_LEN;
        while off + FRAME_HEADER_LEN <= b.len() {
            let h = &b[off..off + FRAME_HEADER_LEN];
            if h.iter().all(|&x| x == 0) {
                break;
            }
            let word = |at: usize| u32::from_le_bytes(h[at..at + 4].try_into().expect("4"));
            let len = word(0) as usize;
            let index = u64::from_le_bytes(h[8..16].try_into().expect("8 bytes"));
            let end = (off + FRAME_HEADER_LEN + len + 7) & !7;
            frames.push((off, end, h[24], index, word(28) as usize));
            off = end;
        }
        if !frames.is_empty() {
            return (path, b, frames);
        }
    }
    panic!("no segment with frames in {}", wal.display());
}

/// `(term, has_vote, vote)` of the HardState frame at `off`.
fn term_vote(b: &[u8], off: usize) -> Option<[u64; 3]> {
    let p = off + ringraft_wal::layout::FRAME_HEADER_LEN;
    let word = |i: usize| -> Option<u64> {
        let bytes = b.get(p + 8 * i..p + 8 * i + 8)?;
        Some(u64::from_le_bytes(bytes.try_into().ok()?))
    };
    Some([word(0)?, word(1)?, word(2)?])
}

/// Whether the write starting at `watermark` holds a HardState whose term or vote differs from
/// the last one before it in the segment (or there is none before it to compare with).
fn votes_changed(b: &[u8], frames: &[FrameInfo], watermark: usize) -> bool {
    const HARD_STATE: u8 = 2;
    let hard = |f: &&FrameInfo| f.2 == HARD_STATE;
    let before = frames
        .iter()
        .rev()
        .filter(|f| f.0 < watermark)
        .find(hard)
        .and_then(|f| term_vote(b, f.0));
    frames
        .iter()
        .filter(|f| f.0 >= watermark)
        .filter(hard)
        .any(|f| before.is_none() || term_vote(b, f.0) != before)
}

/// Simulates a power cut of the killed node whose WAL directory is `wal` and whose leader
/// saw it acknowledge entries up to `acked`: loses a seeded subset of the pages of its newest
/// write, the first page always, unless that write carries an acknowledged entry. Returns
/// the bytes zeroed and a line saying what was cut.
///
/// # Panics
/// If the WAL cannot be read or written (a test setup error).
pub fn power_cut(wal: &Path, acked: u64, rng: &mut Rng) -> (usize, String) {
    let (path, mut b, frames) = newest_frames(wal);
    let written = frames.last().map_or(0, |f| f.1).min(b.len());
    let watermark = frames.iter().map(|f| f.4).max().unwrap_or(0);
    let acked_end = frames
        .iter()
        .filter(|f| f.2 == 1 && f.3 <= acked)
        .map(|f| f.1)
        .max()
        .unwrap_or(0);
    // An acknowledged entry in the newest write: its fdatasync returned, nothing is unsynced.
    // A vote or term in it that the node may have sent out (a vote reply leaves after its
    // fdatasync too) is kept the same way: losing it would be a disk that lies.
    let promised = acked_end > watermark || votes_changed(&b, &frames, watermark);
    let cut = if promised { written } else { watermark };
    let mut lost = 0;
    let mut page = cut / PAGE_BYTES * PAGE_BYTES;
    while page < written {
        let (from, to) = (page.max(cut), (page + PAGE_BYTES).min(written));
        if page <= cut || rng.below(2) == 0 {
            b[from..to].fill(0);
            lost += to - from;
        }
        page += PAGE_BYTES;
    }
    std::fs::write(&path, &b).expect("write segment");
    let what = format!(
        "{}: newest write at {watermark}, acknowledged through index {acked} (byte {acked_end}), \
         written to {written}; {lost} bytes lost from {cut}",
        path.display()
    );
    (lost, what)
}
