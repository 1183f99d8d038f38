//! Recovery on open: replay every segment's frames, verify checksums and index continuity,
//! cut a torn tail, report anything else as corruption.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::config::{Config, RecoveryMode};
use crate::error::{CorruptionKind, Error, Result};
use crate::format::{
    decode_checkpoint, decode_frame, decode_hard_state, find_valid_after, Decoded, Frame, Kind,
    StreamState, HEADER_LEN,
};
use crate::index::PosIndex;
use crate::io::IoBackend;
use crate::segment::{self, Segment};
use crate::types::SnapshotMeta;

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
}

/// How one segment's scan ended.
struct SegEnd {
    frames: usize,
    sealed: bool,
    /// Offset where the next frame would go (end of valid data).
    end: u64,
}

struct Replay {
    index: PosIndex,
    stream: StreamState,
    started: bool,
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
    for s in seqs {
        backend
            .remove(&segment::seg_name(s))
            .map_err(|e| Error::io("remove segment", e))?;
    }
    backend
        .sync_dir()
        .map_err(|e| Error::io("sync directory", e))?;
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
    for w in seqs.windows(2) {
        if w[1] != w[0] + 1 {
            return Err(corrupt(CorruptionKind::MissingSegment, w[0] + 1, 0, None));
        }
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
    };
    let mut ends: Vec<SegEnd> = Vec::with_capacity(segs.len());
    for seg in &segs {
        // A segment gets frames only after its predecessor was sealed and synced; an unsealed
        // predecessor followed by frames is damage there, not a torn tail.
        if let Some(prev) = ends.last().filter(|p| !p.sealed) {
            if has_frames(seg, payload_max)? {
                let (seq, next) = (seg.seq - 1, rep.stream.next_index);
                return Err(corrupt(
                    CorruptionKind::MissingSeal,
                    seq,
                    prev.end,
                    Some(next),
                ));
            }
        }
        ends.push(rep.scan(seg, payload_max)?);
    }
    finish(rep, segs, ends, backend, config)
}

fn has_frames(seg: &Segment, payload_max: usize) -> Result<bool> {
    let data = seg
        .io
        .read(0, seg.io.size() as usize)
        .map_err(|e| Error::io("read segment", e))?;
    Ok(matches!(
        decode_frame(&data, HEADER_LEN, seg.seed, payload_max),
        Decoded::Frame(_)
    ) || find_valid_after(&data, HEADER_LEN, seg.seed, payload_max).is_some())
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
    }
}

fn finish(
    mut rep: Replay,
    segs: Vec<Arc<Segment>>,
    ends: Vec<SegEnd>,
    backend: &dyn IoBackend,
    config: &Config,
) -> Result<Recovered> {
    let next_seq = segs.last().map_or(1, |s| s.seq + 1);
    let Some(tail) = ends.iter().rposition(|e| e.frames > 0) else {
        let mut it = segs.into_iter();
        let active = it.next().expect("at least one segment exists");
        return Ok(fresh(active, BTreeMap::new(), it.collect(), next_seq));
    };
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
        rep.stream.first_index = rep.index.positions_start();
    }
    let mut segments = BTreeMap::new();
    for s in &segs[..=tail] {
        segments.insert(s.seq, s.clone());
    }
    let mut rest = segs[tail + 1..].iter().cloned();
    let (active, write_off, needs_checkpoint, next_seq) = if ends[tail].sealed {
        match rest.next() {
            Some(s) => (s, HEADER_LEN as u64, true, next_seq),
            None => (
                segment::prepare(backend, next_seq, config.segment_bytes)?,
                HEADER_LEN as u64,
                true,
                next_seq + 1,
            ),
        }
    } else {
        (segs[tail].clone(), ends[tail].end, false, next_seq)
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
    })
}

impl Replay {
    /// Replays one segment; returns how it ended.
    fn scan(&mut self, seg: &Segment, payload_max: usize) -> Result<SegEnd> {
        let len = seg.io.size() as usize;
        let data = seg
            .io
            .read(0, len)
            .map_err(|e| Error::io("read segment", e))?;
        let mut off = HEADER_LEN;
        let mut frames = 0;
        loop {
            match decode_frame(&data, off, seg.seed, payload_max) {
                Decoded::Frame(f) => {
                    self.apply(seg, off as u64, &f, frames == 0)?;
                    frames += 1;
                    off += f.len;
                    if f.kind == Kind::Seal {
                        return Ok(SegEnd {
                            frames,
                            sealed: true,
                            end: off as u64,
                        });
                    }
                }
                Decoded::Zero | Decoded::Bad => {
                    // A torn tail has nothing valid after it; anything valid after the first
                    // bad frame means damage in the middle of the log.
                    if find_valid_after(&data, off + 8, seg.seed, payload_max).is_some() {
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
                    });
                }
            }
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
            Kind::Entry => {
                if f.index != s.next_index {
                    return Err(err(CorruptionKind::IndexGap));
                }
                if f.term < s.last_term {
                    return Err(err(CorruptionKind::TermRegression));
                }
                let off32 = u32::try_from(off).expect("segments are at most 4 GiB");
                self.index.push(seg.seq, f.index, off32);
                s.next_index += 1;
                s.last_term = f.term;
            }
            Kind::HardState => {
                s.hard_state = Some(
                    decode_hard_state(f.payload).ok_or_else(|| err(CorruptionKind::BadFrame))?,
                );
            }
            Kind::Snapshot => {
                s.snapshot = Some(SnapshotMeta {
                    index: f.index,
                    term: f.term,
                    membership: bytes::Bytes::copy_from_slice(f.payload),
                });
            }
            Kind::Truncate => {
                if f.index < s.first_index || f.index > s.next_index {
                    return Err(err(CorruptionKind::BadMarker));
                }
                self.index.truncate(f.index);
                s.next_index = f.index;
                s.last_term = f.term;
            }
            Kind::Compact => {
                if f.index < s.first_index {
                    return Err(err(CorruptionKind::BadMarker));
                }
                self.index.compact(f.index);
                s.first_index = f.index;
                s.prev_term = f.term;
                if f.index > s.next_index {
                    s.next_index = f.index;
                    s.last_term = f.term;
                }
            }
            Kind::Seal => {
                if f.index != s.next_index {
                    return Err(err(CorruptionKind::BadCheckpoint));
                }
            }
        }
        Ok(())
    }
}
