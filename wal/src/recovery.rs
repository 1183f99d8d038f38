//! Recovery on open: replay every segment's frames, verify checksums and index continuity,
//! cut an unsynced tail, report anything else as corruption.
//!
//! The rule that tells the two apart (docs/wal-format.md, "Recovery"): every frame records
//! the synced watermark of the write that carried it. A bad frame at offset `p` of a segment
//! is damage to durable data, and refused, if any valid frame in that segment records a
//! watermark above `p`, or if any later segment was written at all (a segment is written only
//! after its predecessor's last write was synced), or if it lies in the last write group
//! (whose sync no frame can prove) and none of its sectors reads as unwritten (see
//! `looks_unpersisted`). Otherwise it lies in the tail that was being written when power was
//! cut, in which a later page may have reached the disk before an earlier one, and the tail
//! is cut there.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::config::{Config, RecoveryMode};
use crate::error::{CorruptionKind, Error, Result};
use crate::format::{
    decode_checkpoint, decode_frame, find_valid_after, u32_at, Decoded, Decoder, Frame, Kind,
    StreamState, ALIGN, FRAME_HEADER_LEN, HEADER_LEN, VERSION_V1,
};
use crate::index::PosIndex;
use crate::io::IoBackend;
use crate::segment::{self, Segment};
use crate::transition::{FramePos, Transition};

/// The state recovery hands to the log.
pub(crate) struct Recovered {
    pub(crate) index: PosIndex,
    pub(crate) stream: StreamState,
    pub(crate) segments: BTreeMap<u64, Arc<Segment>>,
    pub(crate) active: Arc<Segment>,
    pub(crate) write_off: u64,
    pub(crate) needs_checkpoint: bool,
    pub(crate) spares: Vec<Arc<Segment>>,
    pub(crate) next_seq: u64,
    /// In [`RecoveryMode::TruncateAtCorruption`], when the oldest entries the log claims are
    /// in no segment: the first index that is, and the term of the entry before it. The log
    /// must write a compaction marker to that point before anything else, so that the
    /// checkpoint of the next segment agrees with the frames before it.
    pub(crate) missing_prefix: Option<(u64, u64)>,
}

/// Highest segment sequence number recovery accepts. Segments are numbered from 1 and one
/// is added per rotation, so a larger number (2^63 rotations) comes only from a damaged or
/// foreign file name, and refusing it keeps `seq + 1` from overflowing.
const SEQ_MAX: u64 = u64::MAX / 2;

/// How one segment's scan ended.
struct SegEnd {
    frames: usize,
    sealed: bool,
    /// Offset where the next frame would go (end of valid data).
    end: u64,
    /// The scan stopped at a damaged (not all-zero) frame header.
    bad: bool,
    /// End of the last non-zero byte at or after `end` (8-byte aligned), if any: the cut tail
    /// that must be zeroed before writing resumes at `end`.
    dirty_end: Option<u64>,
}

struct Replay {
    index: PosIndex,
    stream: StreamState,
    started: bool,
    /// Term of the entry before the first one that has a position (`index.positions_start()
    /// - 1`), recorded when a position is pushed into an empty index.
    positions_prev_term: u64,
}

fn corrupt(kind: CorruptionKind, segment: u64, offset: u64, index: Option<u64>) -> Error {
    Error::Corruption {
        kind,
        segment,
        offset,
        index,
    }
}

/// Recovers the log, repairing corruption first if the recovery mode says so.
pub(crate) fn recover(backend: &dyn IoBackend, config: &Config) -> Result<Recovered> {
    // Every repair deletes a segment or zeroes part of one, so this terminates; the bound is
    // a safety net.
    for _ in 0..10_000 {
        match recover_once(backend, config) {
            Err(Error::Corruption {
                segment,
                offset,
                kind,
                ..
            }) if config.recovery == RecoveryMode::TruncateAtCorruption => {
                tracing::warn!(
                    segment,
                    offset,
                    ?kind,
                    "WAL corruption: truncating the log there"
                );
                repair(backend, segment, offset)?;
            }
            other => return other,
        }
    }
    Err(Error::InvalidConfig {
        reason: "corruption repair did not converge",
    })
}

/// Cuts the log at `offset` of segment `seq`: later segments are deleted (newest first, so a
/// crash leaves a prefix), then the rest of the segment is zeroed and synced.
fn repair(backend: &dyn IoBackend, seq: u64, offset: u64) -> Result<()> {
    let mut seqs = list_segments(backend)?;
    seqs.retain(|&s| s > seq || (s == seq && offset < HEADER_LEN as u64));
    seqs.sort_unstable_by(|a, b| b.cmp(a));
    // One directory sync per removal: a crash then leaves a contiguous prefix of segments
    // even on a file system that persists unsynced directory operations in any order.
    for s in seqs {
        backend
            .remove(&segment::seg_name(s))
            .map_err(|e| Error::io("remove segment", e))?;
        backend
            .sync_dir()
            .map_err(|e| Error::io("sync directory", e))?;
    }
    if offset >= HEADER_LEN as u64 {
        if let Ok(io) = backend.open(&segment::seg_name(seq)) {
            let zeros = vec![0u8; (io.size() - offset) as usize];
            io.write_all_and_sync(offset, &zeros, true)
                .map_err(|e| Error::io("zero segment", e))?;
        }
    }
    Ok(())
}

fn list_segments(backend: &dyn IoBackend) -> Result<Vec<u64>> {
    let names = backend.list().map_err(|e| Error::io("list directory", e))?;
    Ok(names
        .iter()
        .filter_map(|n| segment::parse_name(n))
        .collect())
}

fn remove_tmp_files(backend: &dyn IoBackend) -> Result<()> {
    let names = backend.list().map_err(|e| Error::io("list directory", e))?;
    let tmps: Vec<_> = names.into_iter().filter(|n| segment::is_tmp(n)).collect();
    for n in &tmps {
        backend
            .remove(n)
            .map_err(|e| Error::io("remove temporary segment", e))?;
    }
    if !tmps.is_empty() {
        backend
            .sync_dir()
            .map_err(|e| Error::io("sync directory", e))?;
    }
    Ok(())
}

fn recover_once(backend: &dyn IoBackend, config: &Config) -> Result<Recovered> {
    remove_tmp_files(backend)?;
    let mut seqs = list_segments(backend)?;
    seqs.sort_unstable();
    if seqs.is_empty() {
        let seg = segment::prepare(backend, 1, config.segment_bytes)?;
        return Ok(fresh(seg, BTreeMap::new(), Vec::new(), 2));
    }
    if let Some(&last) = seqs.last().filter(|&&s| s > SEQ_MAX) {
        return Err(corrupt(CorruptionKind::BadHeader, last, 0, None));
    }
    for w in seqs.windows(2) {
        if w[1] != w[0] + 1 {
            return Err(corrupt(CorruptionKind::MissingSegment, w[0] + 1, 0, None));
        }
    }
    drop_blank_last_segment(backend, &mut seqs)?;
    if seqs.is_empty() {
        let seg = segment::prepare(backend, 1, config.segment_bytes)?;
        return Ok(fresh(seg, BTreeMap::new(), Vec::new(), 2));
    }
    let mut segs = Vec::with_capacity(seqs.len());
    for &s in &seqs {
        segs.push(segment::open(backend, &segment::seg_name(s), s)?);
    }
    let payload_max = config.record_bytes_max.max(config.membership_bytes_max) as usize;
    let mut rep = Replay {
        index: PosIndex::new(1),
        stream: StreamState::default(),
        started: false,
        positions_prev_term: 0,
    };
    let mut ends: Vec<SegEnd> = Vec::with_capacity(segs.len());
    for seg in &segs {
        // A segment is written only after its predecessor's last write (the seal) was
        // synced, so any write here proves an unsealed predecessor damaged, not torn.
        if let Some(prev) = ends.last().filter(|p| !p.sealed) {
            if written_after_header(seg)? {
                let kind = if prev.bad {
                    CorruptionKind::BadFrame
                } else {
                    CorruptionKind::MissingSeal
                };
                let next = rep.stream.next_index;
                return Err(corrupt(kind, seg.seq - 1, prev.end, Some(next)));
            }
        }
        ends.push(rep.scan(seg, payload_max)?);
    }
    finish(rep, segs, ends, backend, config)
}

/// Deletes the newest segment if its header is bad and nothing after the header was ever
/// written: a segment prepared ahead (or just rotated to) whose header the media damaged.
///
/// Safe because such a file holds no log data at all: the header carries none, and the
/// zero body shows no frame was written (every frame, the first checkpoint included, is
/// non-zero). Its header was synced before the file got its name, so no crash produces
/// this; a header that is bad on a segment holding data stays `BadHeader`.
fn drop_blank_last_segment(backend: &dyn IoBackend, seqs: &mut Vec<u64>) -> Result<()> {
    let Some(&last) = seqs.last() else {
        return Ok(());
    };
    let name = segment::seg_name(last);
    match segment::open(backend, &name, last) {
        Err(Error::Corruption {
            kind: CorruptionKind::BadHeader,
            ..
        }) => {}
        _ => return Ok(()),
    }
    let io = backend
        .open(&name)
        .map_err(|e| Error::io("open segment", e))?;
    let size = io.size() as usize;
    if size < HEADER_LEN {
        return Ok(());
    }
    let body = io
        .read(HEADER_LEN, size - HEADER_LEN)
        .map_err(|e| Error::io("read segment", e))?;
    if body.iter().any(|&b| b != 0) {
        return Ok(());
    }
    tracing::warn!(
        segment = last,
        "WAL: newest segment has a bad header and was never written; deleting it"
    );
    backend
        .remove(&name)
        .map_err(|e| Error::io("remove segment", e))?;
    backend
        .sync_dir()
        .map_err(|e| Error::io("sync directory", e))?;
    seqs.pop();
    Ok(())
}

/// True if any byte after the header is non-zero: the segment was written (prepared segments
/// are zero-filled and synced, and nothing but the log's writes changes them).
fn written_after_header(seg: &Segment) -> Result<bool> {
    let data = seg
        .io
        .read(0, seg.io.size() as usize)
        .map_err(|e| Error::io("read segment", e))?;
    Ok(data[HEADER_LEN..].iter().any(|&b| b != 0))
}

/// End (8-byte aligned) of the last non-zero byte of `data` at or after `from`, if any.
fn nonzero_end(data: &[u8], from: usize) -> Option<u64> {
    let last = data.iter().rposition(|&b| b != 0)?;
    (last >= from).then(|| ((last + ALIGN) & !(ALIGN - 1)) as u64)
}

/// Why the damaged or zero frame at `off` must be refused rather than cut, if it must: a
/// later frame records it as synced, or it is a bad frame in the last write group whose damage
/// does not look like sectors that never reached the disk (see `looks_unpersisted`), so it may
/// be an acknowledged record that rotted. `None` means an unsynced tail, cut safely.
fn refusal(
    data: &[u8],
    off: usize,
    dec: Decoder,
    bad: bool,
    dirty_end: Option<u64>,
) -> Option<String> {
    if mutation::cut_refused() {
        return None;
    }
    if dirty_end.is_some() {
        if let Some(at) = proof_of_sync(data, off, dec) {
            return Some(format!(
                "damaged frame that a later frame (offset {at}) records as synced"
            ));
        }
    }
    (bad && !looks_unpersisted(data, off, dec))
        .then(|| "damaged frame in the last write group with no unwritten sector".to_owned())
}

/// Offset of a valid frame after the bad frame at `bad` whose synced watermark shows that
/// an fdatasync covering `bad` returned before it was written, if there is one.
///
/// Watermarks are lower bounds (what the writer knew), so every valid frame after `bad` is
/// examined, not only the first: the rest of the lost write records a watermark at or before
/// `bad`, a later write one after it. Version 1 frames record no watermark; there any valid
/// frame after a bad one counts as proof (the version 1 rule).
fn proof_of_sync(data: &[u8], bad: usize, dec: Decoder) -> Option<usize> {
    let mut from = bad + ALIGN;
    while let Some((at, f)) = find_valid_after(data, from, dec) {
        if dec.version == VERSION_V1 || f.synced > bad as u64 {
            return Some(at);
        }
        from = at + f.len;
    }
    None
}

/// Sector size the recovery rule assumes the device persists atomically: after a power cut
/// each 512-byte sector holds its old or its new contents, never a mix (NVMe's atomic write
/// unit on power fail is at least one logical block; SATA drives give the same per sector).
pub(crate) const ATOMIC_SECTOR_BYTES: usize = 512;

/// True if the bad frame at `off` shows the mark of a write that did not fully reach the
/// disk: for some 512-byte sector that its extent (header and declared payload, clamped to
/// the segment; the header alone if the header itself is implausible) touches, the bytes
/// from the frame's part of it to the sector's end are all zero; and it is not a whole frame
/// with one bit of its length flipped ([`length_bit_flipped`]).
///
/// Why that is the test (docs/wal-format.md, "The last write group"): a bad frame that no
/// later frame proves synced lies in the last write group. Its bytes were written over
/// zeros (segments are zero-filled and never recycled; a cut tail is zeroed before writing
/// resumes), so if power was cut before the group's fdatasync returned, every sector of it
/// that did not reach the disk reads as zeros. A frame whose every sector holds non-zero
/// data therefore reached the disk whole; if it fails its checksum, the media changed it
/// after the fact, and it may hold an acknowledged record: refuse. The residual ambiguity:
/// a synced frame whose payload really is zero over the rest of a sector (for example the
/// last frame of the log ending in zero bytes just past a sector boundary), or whose length
/// field takes damage of more than one bit that reaches the zeros after the log, is cut.
/// Only media damage in the one last write group can hit it.
fn looks_unpersisted(data: &[u8], off: usize, dec: Decoder) -> bool {
    let h = &data[off..(off + FRAME_HEADER_LEN).min(data.len())];
    let len = if h.len() == FRAME_HEADER_LEN {
        u32_at(h, 0) as usize
    } else {
        0
    };
    let kind_ok = h.len() == FRAME_HEADER_LEN && Kind::from_u8(h[24]).is_some();
    let extent = if kind_ok && len <= dec.payload_max {
        FRAME_HEADER_LEN + len
    } else {
        FRAME_HEADER_LEN
    };
    if kind_ok && length_bit_flipped(data, off, dec) {
        return false;
    }
    let end = (off + extent).min(data.len());
    let mut start = off;
    let mut unwritten = false;
    while start < end {
        let piece_end = ((start / ATOMIC_SECTOR_BYTES) + 1) * ATOMIC_SECTOR_BYTES;
        // The whole rest of the sector, not only the frame's part: a sector that never
        // reached the disk is zero from the frame to its end (the write began at or before
        // the frame), while a short run of zero payload bytes is usually followed by data.
        let piece = &data[start..piece_end.min(data.len())];
        if piece.iter().all(|&b| b == 0) {
            unwritten = true;
        }
        start = piece_end;
    }
    unwritten
}

/// True if the frame at `off` verifies once one bit of its length field is flipped back: the
/// frame reached the disk whole and the media changed its length. Without this a longer
/// damaged length could reach the zeros after the log and pass for an unwritten sector. A
/// write cut short never verifies this way (but for a 2^-32 checksum collision). 32
/// checksums of at most one payload, once per open.
fn length_bit_flipped(data: &[u8], off: usize, dec: Decoder) -> bool {
    let h = &data[off..off + FRAME_HEADER_LEN];
    let (len, crc) = (u32_at(h, 0), u32_at(h, 4));
    (0..32).any(|bit| {
        let fixed = len ^ (1 << bit);
        let end = off + FRAME_HEADER_LEN + fixed as usize;
        if fixed as usize > dec.payload_max || end > data.len() {
            return false;
        }
        let mut c = crc32fast::Hasher::new_with_initial(dec.seed);
        c.update(&fixed.to_le_bytes());
        c.update(&h[8..]);
        c.update(&data[off + FRAME_HEADER_LEN..end]);
        c.finalize() == crc
    })
}

/// Test-only mutations of recovery, to show that the crash tests catch them. Compiled in only
/// with the `mutations` cargo feature; switched on per thread (recovery runs on the thread
/// that opens the log), so other tests of the same binary are unaffected.
pub mod mutation {
    #[cfg(feature = "mutations")]
    thread_local! {
        static CUT_REFUSED: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
    }

    /// Switches on (or off) on this thread: recovery cuts a damaged last write group that
    /// it would refuse (the bit-flip tests must then fail).
    #[cfg(feature = "mutations")]
    pub fn set_cut_refused(on: bool) {
        CUT_REFUSED.with(|c| c.set(on));
    }

    /// Whether the cut-instead-of-refuse mutation is on (always false without the feature).
    pub(crate) fn cut_refused() -> bool {
        #[cfg(feature = "mutations")]
        {
            CUT_REFUSED.with(|c| c.get())
        }
        #[cfg(not(feature = "mutations"))]
        {
            false
        }
    }
}

fn fresh(
    active: Arc<Segment>,
    mut segments: BTreeMap<u64, Arc<Segment>>,
    spares: Vec<Arc<Segment>>,
    next_seq: u64,
) -> Recovered {
    segments.insert(active.seq, active.clone());
    let stream = StreamState {
        first_index: 1,
        next_index: 1,
        ..StreamState::default()
    };
    Recovered {
        index: PosIndex::new(1),
        stream,
        segments,
        active,
        write_off: HEADER_LEN as u64,
        needs_checkpoint: true,
        spares,
        next_seq,
        missing_prefix: None,
    }
}

fn finish(
    rep: Replay,
    segs: Vec<Arc<Segment>>,
    ends: Vec<SegEnd>,
    backend: &dyn IoBackend,
    config: &Config,
) -> Result<Recovered> {
    let next_seq = segs.last().map_or(1, |s| s.seq + 1);
    let Some(tail) = ends.iter().rposition(|e| e.frames > 0) else {
        settle(backend, &segs[0], ends[0].end, ends[0].dirty_end, None)?;
        let mut it = segs.into_iter();
        let active = it.next().expect("at least one segment exists");
        return Ok(fresh(active, BTreeMap::new(), it.collect(), next_seq));
    };
    let mut missing_prefix = None;
    if rep.stream.first_index < rep.index.positions_start() {
        if config.recovery == RecoveryMode::Strict {
            let seg = segs[0].seq;
            return Err(corrupt(
                CorruptionKind::MissingEntries,
                seg,
                HEADER_LEN as u64,
                Some(rep.stream.first_index),
            ));
        }
        tracing::warn!(
            first = rep.stream.first_index,
            "WAL misses its oldest entries; moving the first index"
        );
        // Not moved here: the stream stays as the frames on disk say until the compaction
        // marker that moves it is durable (`Wal::open_with_backend` writes it first).
        let start = rep.index.positions_start();
        // With no position at all, `start` is the next index and `last_term` its
        // predecessor's term.
        let prev_term = if start == rep.index.next_index() {
            rep.stream.last_term
        } else {
            rep.positions_prev_term
        };
        missing_prefix = Some((start, prev_term));
    }
    let mut segments = BTreeMap::new();
    for s in &segs[..=tail] {
        segments.insert(s.seq, s.clone());
    }
    let mut rest = segs[tail + 1..].iter().cloned();
    let (active, write_off, needs_checkpoint, next_seq) = if ends[tail].sealed {
        match rest.next() {
            Some(s) => {
                let e = &ends[tail + 1];
                settle(backend, &s, e.end, e.dirty_end, Some(&segs[tail]))?;
                (s, HEADER_LEN as u64, true, next_seq)
            }
            None => {
                settle(backend, &segs[tail], ends[tail].end, None, None)?;
                (
                    segment::prepare(backend, next_seq, config.segment_bytes)?,
                    HEADER_LEN as u64,
                    true,
                    next_seq + 1,
                )
            }
        }
    } else {
        let e = &ends[tail];
        settle(backend, &segs[tail], e.end, e.dirty_end, None)?;
        (segs[tail].clone(), e.end, false, next_seq)
    };
    segments.insert(active.seq, active.clone());
    Ok(Recovered {
        index: rep.index,
        stream: rep.stream,
        segments,
        active,
        write_off,
        needs_checkpoint,
        spares: rest.collect(),
        next_seq,
        missing_prefix,
    })
}

/// Makes the recovered state durable before the log writes on top of it: zeroes the cut tail
/// `resume..dirty_end` of the segment where writing resumes, and fdatasyncs it, the sealed
/// segment before it (`sealed`) and the directory.
///
/// Zeroing matters because the cut tail may hold valid frames (a later page of the lost write
/// that reached the disk): left there, a shorter new write could end right before one of them
/// and a later recovery would read it as a continuation of the log. The syncs matter after a
/// process crash, when the bytes recovery read may still be only in the page cache: the next
/// write's frames record them as durable.
fn settle(
    backend: &dyn IoBackend,
    seg: &Segment,
    resume: u64,
    dirty_end: Option<u64>,
    sealed: Option<&Segment>,
) -> Result<()> {
    if let Some(s) = sealed {
        s.io.sync_data()
            .map_err(|e| Error::io("sync recovered segment", e))?;
    }
    match dirty_end {
        Some(end) if end > resume => {
            tracing::info!(
                segment = seg.seq,
                offset = resume,
                bytes = end - resume,
                "WAL: cutting the unsynced tail of the last write"
            );
            let zeros = vec![0u8; (end - resume) as usize];
            seg.io
                .write_all_and_sync(resume, &zeros, true)
                .map_err(|e| Error::io("zero the cut tail", e))?;
        }
        _ => seg
            .io
            .sync_data()
            .map_err(|e| Error::io("sync recovered segment", e))?,
    }
    backend
        .sync_dir()
        .map_err(|e| Error::io("sync directory", e))
}

impl Replay {
    /// Replays one segment; returns how it ended.
    fn scan(&mut self, seg: &Segment, payload_max: usize) -> Result<SegEnd> {
        let len = seg.io.size() as usize;
        let data = seg
            .io
            .read(0, len)
            .map_err(|e| Error::io("read segment", e))?;
        let dec = seg.decoder(payload_max);
        let mut off = HEADER_LEN;
        let mut frames = 0;
        loop {
            let bad = match decode_frame(&data, off, dec) {
                Decoded::Frame(f) => {
                    self.apply(seg, off as u64, &f, frames == 0)?;
                    frames += 1;
                    off += f.len;
                    if f.kind == Kind::Seal {
                        return Ok(SegEnd {
                            frames,
                            sealed: true,
                            end: off as u64,
                            bad: false,
                            dirty_end: None,
                        });
                    }
                    continue;
                }
                Decoded::Zero => false,
                Decoded::Bad => true,
            };
            let dirty_end = nonzero_end(&data, off);
            if let Some(reason) = refusal(&data, off, dec, bad, dirty_end) {
                tracing::error!(segment = seg.seq, offset = off, "WAL: {reason}");
                let index = Some(self.stream.next_index);
                return Err(corrupt(
                    CorruptionKind::BadFrame,
                    seg.seq,
                    off as u64,
                    index,
                ));
            }
            return Ok(SegEnd {
                frames,
                sealed: false,
                end: off as u64,
                bad,
                dirty_end,
            });
        }
    }

    fn apply(&mut self, seg: &Segment, off: u64, f: &Frame<'_>, first_in_seg: bool) -> Result<()> {
        let s = &mut self.stream;
        let err = |kind| corrupt(kind, seg.seq, off, Some(s.next_index));
        if first_in_seg != (f.kind == Kind::Checkpoint) {
            return Err(err(CorruptionKind::BadCheckpoint));
        }
        match f.kind {
            Kind::Checkpoint => {
                let (first, prev_term) = decode_checkpoint(f.payload)
                    .ok_or_else(|| err(CorruptionKind::BadCheckpoint))?;
                // A log's range is `first..next` with `1 <= first <= next`: a checkpoint that
                // claims otherwise was never written by this code.
                if first == 0 || first > f.index {
                    return Err(err(CorruptionKind::BadCheckpoint));
                }
                // An empty log (`first == next`) has one last entry, the compacted one: the
                // writer keeps `last_term == prev_term` there. A checkpoint that says
                // otherwise would recover a log that refuses its next append.
                if first == f.index && f.term != prev_term {
                    return Err(err(CorruptionKind::BadCheckpoint));
                }
                if !self.started {
                    *s = StreamState {
                        first_index: first,
                        next_index: f.index,
                        last_term: f.term,
                        prev_term,
                        ..StreamState::default()
                    };
                    self.index = PosIndex::new(f.index);
                    self.started = true;
                } else if f.index != s.next_index || first != s.first_index {
                    return Err(err(CorruptionKind::BadCheckpoint));
                }
            }
            Kind::Seal => {
                if f.index != s.next_index {
                    return Err(err(CorruptionKind::BadCheckpoint));
                }
            }
            _ => {
                let t = Transition::from_frame(f)
                    .map_err(err)?
                    .expect("every frame but a checkpoint or a seal is a transition");
                if let Some(kind) = s.refusal(&t) {
                    return Err(err(kind));
                }
                let appends_to_empty = self.index.positions_start() == self.index.next_index();
                if matches!(t, Transition::Append { .. }) && appends_to_empty {
                    self.positions_prev_term = s.last_term;
                }
                let at = FramePos {
                    seq: seg.seq,
                    off: u32::try_from(off).expect("segments are at most 4 GiB"),
                };
                self.index.apply(&t, at);
                s.apply(&t);
            }
        }
        Ok(())
    }
}
