//! On-disk format: the segment header and the frame codec. Documented in docs/wal-format.md.
//!
//! All integers are little endian. Frames start at 8-byte aligned offsets and are padded with
//! zeros to a multiple of 8 bytes, so that headers are read as aligned words and a scan for
//! valid frames after a bad one steps 8 bytes at a time.

use crate::types::{HardState, SnapshotMeta};

/// Magic at the start of every segment.
pub const MAGIC: [u8; 8] = *b"RRFTWAL\0";
/// Format version written by this code: frames record the synced watermark of their write.
pub const VERSION: u32 = 2;
/// The first format version, still read: its frames carry no synced watermark (zero there).
pub const VERSION_V1: u32 = 1;
/// Bytes of the segment header; the first frame starts here.
pub const HEADER_LEN: usize = 64;
/// Bytes of a frame header.
pub const FRAME_HEADER_LEN: usize = 32;
/// Bytes of the seal frame that ends every full segment; always kept free.
pub const SEAL_LEN: usize = FRAME_HEADER_LEN;
/// Frame alignment.
pub const ALIGN: usize = 8;

const HARD_STATE_LEN: usize = 32;
const CHECKPOINT_LEN: usize = 16;

/// Frame kinds. Zero is never a valid kind, so zeroed space reads as "no frame".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Kind {
    /// A log record: index, term, payload.
    Entry = 1,
    /// Hard state: payload term, vote flag, vote, commit.
    HardState = 2,
    /// Snapshot metadata: index and term in the header, membership as payload.
    Snapshot = 3,
    /// Suffix truncation: entries from `index` on are dropped; `term` is the new last term.
    Truncate = 4,
    /// Prefix compaction: the log now starts at `index`; `term` is the term of `index - 1`.
    Compact = 5,
    /// First frame of every segment: `index` = next index, `term` = last term, payload = the
    /// first index and the term of the entry before it. Followed by the current hard state and snapshot frames, if any.
    Checkpoint = 6,
    /// Last frame of a full segment: `index` = next index. Later segments may hold frames
    /// only if this one is sealed.
    Seal = 7,
}

impl Kind {
    pub(crate) fn from_u8(v: u8) -> Option<Kind> {
        Some(match v {
            1 => Kind::Entry,
            2 => Kind::HardState,
            3 => Kind::Snapshot,
            4 => Kind::Truncate,
            5 => Kind::Compact,
            6 => Kind::Checkpoint,
            7 => Kind::Seal,
            _ => return None,
        })
    }
}

/// Bytes a frame with `payload_len` bytes of payload occupies.
pub const fn frame_len(payload_len: usize) -> usize {
    (FRAME_HEADER_LEN + payload_len + ALIGN - 1) & !(ALIGN - 1)
}

/// Upper bound of the checkpoint frames written at the start of a segment.
pub const fn checkpoint_bytes_max(membership_bytes_max: u32) -> usize {
    frame_len(CHECKPOINT_LEN) + frame_len(HARD_STATE_LEN) + frame_len(membership_bytes_max as usize)
}

/// The fields of a segment header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SegmentHeader {
    /// Segment sequence number (also its file name).
    pub seq: u64,
    /// Random salt chosen when the segment was created; seeds every frame CRC in it.
    pub salt: u64,
    /// Size of the segment file.
    pub segment_bytes: u64,
    /// Format version of the segment ([`VERSION`] or [`VERSION_V1`]).
    pub version: u32,
}

impl SegmentHeader {
    /// The CRC seed of frames in this segment: mixes sequence number and salt, so that a frame
    /// from another segment, an older incarnation of the file or another log fails its CRC.
    pub fn seed(&self) -> u32 {
        let x = self.salt ^ self.seq.wrapping_mul(0x9E37_79B9_7F4A_7C15);
        (x ^ (x >> 32)) as u32
    }

    /// Encodes the header.
    pub fn encode(&self) -> [u8; HEADER_LEN] {
        let mut b = [0u8; HEADER_LEN];
        b[0..8].copy_from_slice(&MAGIC);
        b[8..12].copy_from_slice(&self.version.to_le_bytes());
        b[12..16].copy_from_slice(&(HEADER_LEN as u32).to_le_bytes());
        b[16..24].copy_from_slice(&self.seq.to_le_bytes());
        b[24..32].copy_from_slice(&self.salt.to_le_bytes());
        b[32..40].copy_from_slice(&self.segment_bytes.to_le_bytes());
        let crc = crc32fast::hash(&b[..60]);
        b[60..64].copy_from_slice(&crc.to_le_bytes());
        b
    }

    /// Decodes and verifies a header; `None` if anything is off. A header that verifies but
    /// names a version this code does not read is returned too: the caller reports it.
    pub fn decode(b: &[u8]) -> Option<SegmentHeader> {
        if b.len() < HEADER_LEN || b[0..8] != MAGIC {
            return None;
        }
        if crc32fast::hash(&b[..60]) != u32_at(b, 60) || u32_at(b, 12) != HEADER_LEN as u32 {
            return None;
        }
        Some(SegmentHeader {
            seq: u64_at(b, 16),
            salt: u64_at(b, 24),
            segment_bytes: u64_at(b, 32),
            version: u32_at(b, 8),
        })
    }
}

pub(crate) fn u32_at(b: &[u8], at: usize) -> u32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(&b[at..at + 4]);
    u32::from_le_bytes(a)
}

pub(crate) fn u64_at(b: &[u8], at: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(a)
}

/// Where a frame is written: the CRC seed of its segment and the synced watermark of the write
/// that carries it (see [`Frame::synced`]; zero in version 1 segments).
#[derive(Debug, Clone, Copy)]
pub struct FrameCtx {
    /// CRC seed of the segment.
    pub seed: u32,
    /// Synced watermark recorded in the frame.
    pub synced: u32,
}

/// Appends one frame to `out` (which must be 8-byte aligned in length relative to the
/// segment) and returns the number of bytes added.
pub fn encode_frame(
    out: &mut Vec<u8>,
    ctx: FrameCtx,
    kind: Kind,
    index: u64,
    term: u64,
    payload: &[u8],
) -> usize {
    let start = out.len();
    let len =
        u32::try_from(payload.len()).expect("payload length checked against record_bytes_max");
    let mut h = [0u8; FRAME_HEADER_LEN];
    h[0..4].copy_from_slice(&len.to_le_bytes());
    h[8..16].copy_from_slice(&index.to_le_bytes());
    h[16..24].copy_from_slice(&term.to_le_bytes());
    h[24] = kind as u8;
    h[28..32].copy_from_slice(&ctx.synced.to_le_bytes());
    let total = frame_len(payload.len());
    out.reserve(total);
    out.extend_from_slice(&h);
    out.extend_from_slice(payload);
    // Checksummed where it lies in `out`: header and payload are one contiguous run there.
    let crc = frame_crc(
        ctx.seed,
        &out[start..start + FRAME_HEADER_LEN + payload.len()],
    );
    out[start + 4..start + 8].copy_from_slice(&crc.to_le_bytes());
    out.resize(start + total, 0);
    total
}

/// CRC of a frame's header and payload (`frame` = bytes `0..32 + len`, padding excluded):
/// bytes 0..4, then 8..32 and the payload as one run (the CRC field 4..8 is skipped).
fn frame_crc(seed: u32, frame: &[u8]) -> u32 {
    let mut crc = crc32fast::Hasher::new_with_initial(seed);
    crc.update(&frame[0..4]);
    crc.update(&frame[8..]);
    crc.finalize()
}

/// A decoded frame borrowing its payload.
#[derive(Debug, Clone, Copy)]
pub struct Frame<'a> {
    /// Kind of frame.
    pub kind: Kind,
    /// Index field.
    pub index: u64,
    /// Term field.
    pub term: u64,
    /// Payload.
    pub payload: &'a [u8],
    /// Total bytes including header and padding.
    pub len: usize,
    /// Synced watermark: when the frame was written, every earlier segment and every byte of
    /// this segment before this offset were durable (an fdatasync covering them had
    /// returned). It is the start of the write that carries the frame, so it is a frame
    /// boundary at or before the frame. Zero in version 1 segments (no claim).
    pub synced: u64,
}

/// Result of decoding at one offset.
#[derive(Debug)]
pub enum Decoded<'a> {
    /// A valid frame.
    Frame(Frame<'a>),
    /// An all-zero frame header: unwritten space.
    Zero,
    /// Anything else.
    Bad,
}

/// How frames of one segment are decoded: its CRC seed, its format version and the largest
/// payload accepted.
#[derive(Debug, Clone, Copy)]
pub struct Decoder {
    /// CRC seed of the segment.
    pub seed: u32,
    /// Format version of the segment.
    pub version: u32,
    /// Largest payload a frame may declare.
    pub payload_max: usize,
}

/// True if the reserved bytes 25..32 of a frame header (25..28 in version 2, where 28..32 is
/// the synced watermark) are zero.
fn reserved_zero(h: &[u8], version: u32) -> bool {
    let end = if version == VERSION_V1 { 32 } else { 28 };
    h[25..end].iter().all(|&b| b == 0)
}

/// Decodes the frame at `off` (8-byte aligned) of a segment image.
pub fn decode_frame(seg: &[u8], off: usize, d: Decoder) -> Decoded<'_> {
    let Decoder {
        seed,
        version,
        payload_max,
    } = d;
    if off + FRAME_HEADER_LEN > seg.len() {
        return Decoded::Bad;
    }
    let h = &seg[off..off + FRAME_HEADER_LEN];
    if u64_at(h, 0) == 0 && u64_at(h, 24) == 0 && u64_at(h, 8) == 0 && u64_at(h, 16) == 0 {
        return Decoded::Zero;
    }
    let len = u32_at(h, 0) as usize;
    let Some(kind) = Kind::from_u8(h[24]) else {
        return Decoded::Bad;
    };
    if !reserved_zero(h, version) || len > payload_max || off + frame_len(len) > seg.len() {
        return Decoded::Bad;
    }
    let payload = &seg[off + FRAME_HEADER_LEN..off + FRAME_HEADER_LEN + len];
    // Padding is not checksummed but must be zero, so that every bit of a frame is checked.
    if seg[off + FRAME_HEADER_LEN + len..off + frame_len(len)]
        .iter()
        .any(|&b| b != 0)
    {
        return Decoded::Bad;
    }
    if frame_crc(seed, &seg[off..off + FRAME_HEADER_LEN + len]) != u32_at(h, 4) {
        return Decoded::Bad;
    }
    let synced = u64::from(u32_at(h, 28));
    // A watermark is the start of a write at or before the frame; the writer never records
    // anything else, so a checksummed frame that claims more is corrupt (or not ours).
    if version != VERSION_V1 && (synced < HEADER_LEN as u64 || synced > off as u64) {
        return Decoded::Bad;
    }
    Decoded::Frame(Frame {
        kind,
        index: u64_at(h, 8),
        term: u64_at(h, 16),
        payload,
        len: frame_len(len),
        synced,
    })
}

/// Looks for the first valid frame at an aligned offset in `seg[from..]`; returns its offset
/// and the frame. Used to learn what lies after a bad frame.
pub fn find_valid_after(seg: &[u8], from: usize, d: Decoder) -> Option<(usize, Frame<'_>)> {
    let mut off = (from + ALIGN - 1) & !(ALIGN - 1);
    while off + FRAME_HEADER_LEN <= seg.len() {
        // Cheap filter first: a frame header has a known kind byte and zero reserved bytes.
        let kind = seg[off + 24];
        if (1..=7).contains(&kind) && reserved_zero(&seg[off..off + FRAME_HEADER_LEN], d.version) {
            if let Decoded::Frame(f) = decode_frame(seg, off, d) {
                return Some((off, f));
            }
        }
        off += ALIGN;
    }
    None
}

/// Encodes a hard state payload.
pub fn encode_hard_state(hs: &HardState) -> [u8; HARD_STATE_LEN] {
    let mut b = [0u8; HARD_STATE_LEN];
    b[0..8].copy_from_slice(&hs.term.to_le_bytes());
    b[8..16].copy_from_slice(&u64::from(hs.vote.is_some()).to_le_bytes());
    b[16..24].copy_from_slice(&hs.vote.unwrap_or(0).to_le_bytes());
    b[24..32].copy_from_slice(&hs.commit.to_le_bytes());
    b
}

/// Decodes a hard state payload.
pub fn decode_hard_state(b: &[u8]) -> Option<HardState> {
    if b.len() != HARD_STATE_LEN {
        return None;
    }
    let vote = match u64_at(b, 8) {
        0 => None,
        1 => Some(u64_at(b, 16)),
        _ => return None,
    };
    Some(HardState {
        term: u64_at(b, 0),
        vote,
        commit: u64_at(b, 24),
    })
}

/// Encodes the checkpoint frames (checkpoint, hard state, snapshot) that open a segment.
pub fn encode_checkpoint(out: &mut Vec<u8>, ctx: FrameCtx, stream: &StreamState) -> usize {
    let mut cp = [0u8; CHECKPOINT_LEN];
    cp[0..8].copy_from_slice(&stream.first_index.to_le_bytes());
    cp[8..16].copy_from_slice(&stream.prev_term.to_le_bytes());
    let mut n = encode_frame(
        out,
        ctx,
        Kind::Checkpoint,
        stream.next_index,
        stream.last_term,
        &cp,
    );
    if let Some(hs) = &stream.hard_state {
        n += encode_frame(out, ctx, Kind::HardState, 0, 0, &encode_hard_state(hs));
    }
    if let Some(s) = &stream.snapshot {
        n += encode_frame(out, ctx, Kind::Snapshot, s.index, s.term, &s.membership);
    }
    n
}

/// Bytes [`encode_checkpoint`] writes for `stream`.
pub fn checkpoint_len(stream: &StreamState) -> usize {
    frame_len(CHECKPOINT_LEN)
        + stream.hard_state.map_or(0, |_| frame_len(HARD_STATE_LEN))
        + stream
            .snapshot
            .as_ref()
            .map_or(0, |s| frame_len(s.membership.len()))
}

/// The logical state at a point of the frame stream; what a checkpoint records.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StreamState {
    /// First index in the log (after compaction).
    pub first_index: u64,
    /// Index the next entry must carry.
    pub next_index: u64,
    /// Term of entry `next_index - 1` (0 if unknown).
    pub last_term: u64,
    /// Term of entry `first_index - 1`, the last compacted one (0 if unknown).
    pub prev_term: u64,
    /// Latest hard state.
    pub hard_state: Option<HardState>,
    /// Latest snapshot metadata.
    pub snapshot: Option<SnapshotMeta>,
}

/// Decodes a checkpoint payload into (first index, term of the entry before it).
pub fn decode_checkpoint(b: &[u8]) -> Option<(u64, u64)> {
    (b.len() == CHECKPOINT_LEN).then(|| (u64_at(b, 0), u64_at(b, 8)))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The CRC as docs/wal-format.md defines it, computed piece by piece: initial value
    /// `seed`, over bytes 0..4, then 8..32, then the payload.
    #[test]
    fn crc_matches_the_documented_definition() {
        for len in [0usize, 1, 7, 8, 255, 256, 4096] {
            let payload: Vec<u8> = (0..len).map(|i| (i * 31 + 7) as u8).collect();
            let mut out = vec![0u8; 8];
            let ctx = FrameCtx {
                seed: 0xDEAD_BEEF,
                synced: 64,
            };
            encode_frame(&mut out, ctx, Kind::Entry, 42, 7, &payload);
            let f = &out[8..];
            let mut crc = crc32fast::Hasher::new_with_initial(0xDEAD_BEEF);
            crc.update(&f[0..4]);
            crc.update(&f[8..32]);
            crc.update(&payload);
            assert_eq!(u32_at(f, 4), crc.finalize(), "payload {len} B");
            assert_eq!(u32_at(f, 28), 64, "synced watermark at bytes 28..32");
            assert_eq!(&f[32..32 + len], &payload[..]);
            assert!(f[32 + len..].iter().all(|&b| b == 0), "zero padding");
        }
    }

    #[test]
    fn frame_roundtrip_and_seed() {
        let mut buf = vec![0u8; HEADER_LEN];
        let ctx = FrameCtx {
            seed: 7,
            synced: HEADER_LEN as u32,
        };
        let n = encode_frame(&mut buf, ctx, Kind::Entry, 5, 2, b"hello");
        assert_eq!(n, 40);
        let dec = |seed, payload_max| Decoder {
            seed,
            version: VERSION,
            payload_max,
        };
        match decode_frame(&buf, HEADER_LEN, dec(7, 100)) {
            Decoded::Frame(f) => {
                assert_eq!(
                    (f.kind, f.index, f.term, f.payload, f.synced),
                    (Kind::Entry, 5, 2, &b"hello"[..], HEADER_LEN as u64)
                );
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            decode_frame(&buf, HEADER_LEN, dec(8, 100)),
            Decoded::Bad
        ));
        assert!(matches!(
            decode_frame(&buf, HEADER_LEN, dec(7, 4)),
            Decoded::Bad
        ));
        for bit in 0..(n * 8) {
            let mut b = buf.clone();
            b[HEADER_LEN + bit / 8] ^= 1 << (bit % 8);
            assert!(
                !matches!(decode_frame(&b, HEADER_LEN, dec(7, 100)), Decoded::Frame(_)),
                "bit {bit}"
            );
        }
        let zeros = vec![0u8; 128];
        assert!(matches!(
            decode_frame(&zeros, 64, dec(7, 100)),
            Decoded::Zero
        ));
        let found = find_valid_after(&buf, 0, dec(7, 100)).map(|(at, _)| at);
        assert_eq!(found, Some(HEADER_LEN));
    }

    /// A watermark is the start of a write at or before the frame: a checksummed frame that
    /// records one after itself (or inside the header) is not a frame this code wrote.
    #[test]
    fn watermark_beyond_the_frame_is_bad() {
        for (synced, ok) in [
            (0u32, false),
            (63, false),
            (64, true),
            (128, true),
            (136, false),
        ] {
            let mut buf = vec![0u8; 128];
            let ctx = FrameCtx { seed: 9, synced };
            encode_frame(&mut buf, ctx, Kind::Entry, 1, 1, b"x");
            let d = Decoder {
                seed: 9,
                version: VERSION,
                payload_max: 10,
            };
            let got = matches!(decode_frame(&buf, 128, d), Decoded::Frame(_));
            assert_eq!(got, ok, "synced {synced}");
        }
    }

    /// Version 1 frames carry zeros where version 2 records the watermark, and nothing else.
    #[test]
    fn version_1_frames_need_zero_reserved_bytes() {
        let mut buf = vec![0u8; HEADER_LEN];
        let ctx = FrameCtx { seed: 3, synced: 0 };
        encode_frame(&mut buf, ctx, Kind::Entry, 1, 1, b"v1");
        let d = Decoder {
            seed: 3,
            version: VERSION_V1,
            payload_max: 10,
        };
        match decode_frame(&buf, HEADER_LEN, d) {
            Decoded::Frame(f) => assert_eq!(f.synced, 0),
            other => panic!("{other:?}"),
        }
        let ctx = FrameCtx {
            seed: 3,
            synced: 64,
        };
        let mut buf = vec![0u8; HEADER_LEN];
        encode_frame(&mut buf, ctx, Kind::Entry, 1, 1, b"v1");
        assert!(matches!(decode_frame(&buf, HEADER_LEN, d), Decoded::Bad));
    }

    #[test]
    fn header_roundtrip() {
        let h = SegmentHeader {
            seq: 9,
            salt: 0xdead_beef_0102,
            segment_bytes: 65536,
            version: VERSION,
        };
        let b = h.encode();
        assert_eq!(SegmentHeader::decode(&b), Some(h));
        let mut c = b;
        c[20] ^= 1;
        assert_eq!(SegmentHeader::decode(&c), None);
    }

    #[test]
    fn hard_state_roundtrip() {
        for hs in [
            HardState::default(),
            HardState {
                term: 3,
                vote: Some(0),
                commit: 9,
            },
        ] {
            assert_eq!(decode_hard_state(&encode_hard_state(&hs)), Some(hs));
        }
    }
}
