//! Wire framing: a fixed header, then the payload, protected by one CRC32.
//!
//! ```text
//! offset size field
//!      0    4 payload length, u32 little endian (<= frame_bytes_max, checked before allocating)
//!      4    1 kind (FrameKind)
//!      5    3 reserved, zero
//!      8    8 snapshot stream id (0 for messages and keepalives), u64 little endian
//!     16    4 CRC32 (IEEE, crc32fast) over bytes 0..16 and the payload
//!     20    - payload
//! ```
//!
//! The decoder is sans-I/O: the backends read into the buffer it hands out
//! ([`FrameDecoder::take_read`]) and pull whole frames out, so
//! the checks live in one place and are fuzzed once.

use bytes::Bytes;

use super::error::FrameError;

/// Size of the fixed frame header in bytes.
pub const FRAME_HEADER_BYTES: usize = 20;

/// Bytes a backend asks the kernel for per read: large enough to take many frames per
/// read (256 KiB doubled io_uring loopback throughput of 16 KiB messages against 64 KiB),
/// small enough that a connection's buffer stays a small part of its memory bound.
pub(super) const READ_CHUNK_BYTES: usize = 256 << 10;

/// Frames with at most this many payload bytes are copied out of the reused read buffer;
/// longer ones are read into a buffer of their own (see [`FrameDecoder`]). 16 KiB: copying
/// it costs about a microsecond, less than the read that brought it, while one AppendEntries
/// of a busy leader's batch (tens of KiB and more) is received without a copy.
pub(super) const FRAME_COPY_BYTES_MAX: usize = 16 << 10;

/// Size of a read right after a large frame: one header and one small frame, so that at most
/// [`FRAME_COPY_BYTES_MAX`] bytes of a large frame that follows are copied.
const READ_AFTER_LARGE_BYTES: usize = FRAME_HEADER_BYTES + FRAME_COPY_BYTES_MAX;

/// Room a read needs at the end of the read buffer; with less, the undecoded bytes move to
/// the front first.
const READ_ROOM_MIN: usize = READ_AFTER_LARGE_BYTES;

// The read buffer holds a partial small frame and still has room for a read after it.
const _: () = assert!(READ_CHUNK_BYTES >= 2 * READ_AFTER_LARGE_BYTES);

/// What a frame carries.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(super) enum FrameKind {
    /// An opaque message for the node (dialer to acceptor).
    Message = 1,
    /// Nothing: keeps an idle connection alive (both directions).
    Keepalive = 2,
    /// Opens a snapshot stream; the payload is the application's header (dialer to acceptor).
    SnapshotOpen = 3,
    /// One chunk of a snapshot stream (dialer to acceptor).
    SnapshotChunk = 4,
    /// The last frame of a snapshot stream (dialer to acceptor).
    SnapshotEnd = 5,
    /// The receiving application took chunks; payload: u32 count (acceptor to dialer).
    SnapshotAck = 6,
    /// Either side gives up on a stream (both directions).
    SnapshotAbort = 7,
}

impl FrameKind {
    fn from_u8(kind: u8) -> Result<Self, FrameError> {
        Ok(match kind {
            1 => FrameKind::Message,
            2 => FrameKind::Keepalive,
            3 => FrameKind::SnapshotOpen,
            4 => FrameKind::SnapshotChunk,
            5 => FrameKind::SnapshotEnd,
            6 => FrameKind::SnapshotAck,
            7 => FrameKind::SnapshotAbort,
            other => return Err(FrameError::UnknownKind(other)),
        })
    }

    /// Payload length this kind requires, if it is fixed.
    fn fixed_len(self) -> Option<u32> {
        match self {
            FrameKind::Keepalive | FrameKind::SnapshotEnd | FrameKind::SnapshotAbort => Some(0),
            FrameKind::SnapshotAck => Some(4),
            FrameKind::Message | FrameKind::SnapshotOpen | FrameKind::SnapshotChunk => None,
        }
    }
}

/// One decoded frame.
#[derive(Clone, PartialEq, Eq, Debug)]
pub(super) struct Frame {
    pub(super) kind: FrameKind,
    pub(super) stream: u64,
    pub(super) payload: Bytes,
}

/// The header of a frame carrying `payload` (the CRC covers both).
///
/// The caller guarantees `payload.len() <= frame_bytes_max` (checked when queued).
pub(super) fn frame_header(
    kind: FrameKind,
    stream: u64,
    payload: &[u8],
) -> [u8; FRAME_HEADER_BYTES] {
    let len = u32::try_from(payload.len()).expect("payload length checked against frame_bytes_max");
    let mut header = [0u8; FRAME_HEADER_BYTES];
    header[0..4].copy_from_slice(&len.to_le_bytes());
    header[4] = kind as u8;
    header[8..16].copy_from_slice(&stream.to_le_bytes());
    let mut crc = crc32fast::Hasher::new();
    crc.update(&header[0..16]);
    crc.update(payload);
    header[16..20].copy_from_slice(&crc.finalize().to_le_bytes());
    header
}

/// Appends one frame to `out` (tests build wire images with it).
#[cfg(test)]
pub(super) fn encode_frame(out: &mut Vec<u8>, kind: FrameKind, stream: u64, payload: &[u8]) {
    out.extend_from_slice(&frame_header(kind, stream, payload));
    out.extend_from_slice(payload);
}

/// Incremental frame decoder over a byte stream.
///
/// Every delivered payload owns an allocation of exactly its own size, so a frame that
/// outlives the read (log entries a follower keeps, values a state machine keeps) pins only
/// its own bytes, never a whole read buffer with other frames in it:
/// - a frame of at most [`FRAME_COPY_BYTES_MAX`] is copied out of the reused read buffer
///   (one small allocation and a copy that costs less than the read that brought it);
/// - a larger frame gets a buffer of exactly its length as soon as its header is decoded,
///   and the rest of it is read straight into that buffer. Only the part that arrived in
///   the same read as what came before it is copied, and reads after a large frame are
///   sized so that this part is at most [`FRAME_COPY_BYTES_MAX`] bytes.
#[derive(Debug)]
pub(super) struct FrameDecoder {
    /// The reused read buffer. Invariant: `len() == READ_CHUNK_BYTES` for reads (only
    /// [`FrameDecoder::push`] grows it), fully initialised; `pending.start..pending.end`
    /// holds the received bytes not yet decoded.
    buffer: Vec<u8>,
    pending: std::ops::Range<usize>,
    /// A frame longer than [`FRAME_COPY_BYTES_MAX`] being received into its own buffer.
    /// Invariant: while it is incomplete, `pending` is empty (its bytes come first).
    large: Option<LargeFrame>,
    /// Whether the last frame started was large: the next read of `buffer` is then sized
    /// to one header and one small frame (see the type's documentation).
    after_large: bool,
    frame_bytes_max: u32,
}

/// A frame received into a buffer of exactly its payload's length.
#[derive(Debug)]
struct LargeFrame {
    header: [u8; FRAME_HEADER_BYTES],
    kind: FrameKind,
    /// Invariant: `payload.len() <= total` bytes received so far, capacity `total`.
    payload: Vec<u8>,
    total: usize,
}

/// Where the next read goes, for owned-buffer I/O (io_uring): fill `range` of the buffer
/// [`FrameDecoder::take_read`] returned with it, then hand both back with
/// [`FrameDecoder::restore_read`].
#[derive(Debug)]
pub(super) struct ReadTarget {
    pub(super) range: std::ops::Range<usize>,
    /// Whether the buffer is the large frame's rather than the read buffer.
    large: bool,
}

impl FrameDecoder {
    pub(super) fn new(frame_bytes_max: u32) -> Self {
        FrameDecoder {
            buffer: vec![0; READ_CHUNK_BYTES],
            pending: 0..0,
            large: None,
            after_large: false,
            frame_bytes_max,
        }
    }

    /// Makes room at the end of `buffer` for a read: the undecoded bytes (less than one
    /// header and one small frame, see the invariants) move to the front.
    fn compact(&mut self) {
        if self.pending.is_empty() {
            self.pending = 0..0;
        } else if self.pending.start > 0 && self.buffer.len() - self.pending.end < READ_ROOM_MIN {
            let len = self.pending.len();
            self.buffer.copy_within(self.pending.clone(), 0);
            self.pending = 0..len;
        }
    }

    /// The range of `buffer` the next read may fill.
    fn read_range(&mut self) -> std::ops::Range<usize> {
        self.compact();
        let end = if self.after_large {
            (self.pending.end + READ_AFTER_LARGE_BYTES).min(self.buffer.len())
        } else {
            self.buffer.len()
        };
        // Compacted, the buffer holds less than a header and a small frame (the backends
        // decode every whole frame after each read), so a read always has room.
        assert!(
            end > self.pending.end,
            "the read buffer has room for a read"
        );
        self.pending.end..end
    }

    /// Takes the buffer the next read must fill (owned-buffer I/O such as io_uring). If the
    /// read fails the buffer may be lost with it; the connection then closes, and so does
    /// the decoder.
    pub(super) fn take_read(&mut self) -> (Vec<u8>, ReadTarget) {
        if let Some(large) = self.large.as_mut().filter(|l| l.payload.len() < l.total) {
            let range = large.payload.len()..large.total;
            let buffer = std::mem::take(&mut large.payload);
            return (buffer, ReadTarget { range, large: true });
        }
        let range = self.read_range();
        let buffer = std::mem::take(&mut self.buffer);
        (
            buffer,
            ReadTarget {
                range,
                large: false,
            },
        )
    }

    /// Returns the buffer of [`FrameDecoder::take_read`] after a read of `read` bytes into
    /// the start of its range.
    pub(super) fn restore_read(&mut self, mut buffer: Vec<u8>, target: ReadTarget, read: usize) {
        assert!(read <= target.range.len(), "a read fills at most its range");
        let end = target.range.start + read;
        if target.large {
            let large = self
                .large
                .as_mut()
                .expect("a large frame's buffer was taken, so the frame is pending");
            // Owned-buffer reads mark what they wrote as initialised (tokio-uring's
            // `set_init` on a Vec sets its length), so `end` bytes are initialised here.
            assert_eq!(buffer.len(), end, "the read's bytes are initialised");
            buffer.truncate(end);
            large.payload = buffer;
        } else {
            assert_eq!(target.range.start, self.pending.end, "reads append");
            self.buffer = buffer;
            self.pending.end = end;
        }
    }

    /// Appends received bytes (tests and fuzz targets; the buffer grows as needed).
    pub(super) fn push(&mut self, mut bytes: &[u8]) {
        if let Some(large) = self.large.as_mut() {
            let take = (large.total - large.payload.len()).min(bytes.len());
            large.payload.extend_from_slice(&bytes[..take]);
            bytes = &bytes[take..];
        }
        self.compact();
        let room = self.buffer.len() - self.pending.end;
        if room < bytes.len() {
            self.buffer.resize(self.pending.end + bytes.len(), 0);
        }
        let end = self.pending.end + bytes.len();
        self.buffer[self.pending.end..end].copy_from_slice(bytes);
        self.pending.end = end;
    }

    /// The next whole frame, `None` if more bytes are needed.
    ///
    /// # Errors
    /// A [`FrameError`] for an oversized length, a bad checksum, an unknown kind or nonzero
    /// reserved bytes. The stream cannot be resynchronised after one: close the connection.
    pub(super) fn next_frame(&mut self) -> Result<Option<Frame>, FrameError> {
        if let Some(large) = &self.large {
            if large.payload.len() < large.total {
                return Ok(None);
            }
            let large = self.large.take().expect("checked just above");
            let payload = Bytes::from(large.payload);
            return finish(large.header, large.kind, payload).map(Some);
        }
        let pending = &self.buffer[self.pending.clone()];
        let Some(header) = pending.get(..FRAME_HEADER_BYTES) else {
            return Ok(None);
        };
        let header: [u8; FRAME_HEADER_BYTES] = header.try_into().expect("sliced to the length");
        let (kind, len) = check_header(&header, self.frame_bytes_max)?;
        let total = FRAME_HEADER_BYTES + len;
        if len > FRAME_COPY_BYTES_MAX {
            // Its own buffer, of exactly its length; the bytes already here move into it.
            let here = pending.len().min(total);
            let mut payload = Vec::with_capacity(len);
            payload.extend_from_slice(&pending[FRAME_HEADER_BYTES..here]);
            self.pending.start += here;
            self.after_large = true;
            self.large = Some(LargeFrame {
                header,
                kind,
                payload,
                total: len,
            });
            return self.next_frame();
        }
        if pending.len() < total {
            return Ok(None);
        }
        let payload = Bytes::copy_from_slice(&pending[FRAME_HEADER_BYTES..total]);
        self.pending.start += total;
        self.after_large = false;
        finish(header, kind, payload).map(Some)
    }

    /// Bytes buffered and not yet decoded.
    pub(super) fn buffered(&self) -> usize {
        self.pending.len()
            + self
                .large
                .as_ref()
                .map_or(0, |l| FRAME_HEADER_BYTES + l.payload.len())
    }

    /// Bytes the decoder's buffers have room for (the fuzz targets bound it).
    pub(super) fn capacity(&self) -> usize {
        self.buffer.capacity() + self.large.as_ref().map_or(0, |l| l.payload.capacity())
    }
}

/// Checks a frame header; its kind and payload length.
fn check_header(
    header: &[u8; FRAME_HEADER_BYTES],
    frame_bytes_max: u32,
) -> Result<(FrameKind, usize), FrameError> {
    let len = u32::from_le_bytes([header[0], header[1], header[2], header[3]]);
    // The length is checked before anything is reserved for the payload.
    if len > frame_bytes_max {
        return Err(FrameError::TooLarge {
            len,
            max: frame_bytes_max,
        });
    }
    let kind = FrameKind::from_u8(header[4])?;
    if header[5..8] != [0, 0, 0] {
        return Err(FrameError::Reserved);
    }
    if kind.fixed_len().is_some_and(|fixed| fixed != len) {
        return Err(FrameError::Snapshot {
            stream: 0,
            reason: "control frame with a wrong payload length",
        });
    }
    Ok((kind, len as usize))
}

/// Verifies the checksum of a whole frame and builds it.
fn finish(
    header: [u8; FRAME_HEADER_BYTES],
    kind: FrameKind,
    payload: Bytes,
) -> Result<Frame, FrameError> {
    let stored = u32::from_le_bytes([header[16], header[17], header[18], header[19]]);
    let mut crc = crc32fast::Hasher::new();
    crc.update(&header[0..16]);
    crc.update(&payload);
    let computed = crc.finalize();
    if stored != computed {
        return Err(FrameError::Checksum { stored, computed });
    }
    let stream = u64::from_le_bytes(header[8..16].try_into().expect("8 bytes"));
    Ok(Frame {
        kind,
        stream,
        payload,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn encode(kind: FrameKind, stream: u64, payload: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        encode_frame(&mut out, kind, stream, payload);
        out
    }

    #[test]
    fn round_trip_byte_by_byte() {
        let mut wire = encode(FrameKind::Message, 0, b"hello");
        wire.extend(encode(FrameKind::SnapshotChunk, 7, &[9; 300]));
        let mut dec = FrameDecoder::new(1024);
        let mut frames = Vec::new();
        for byte in wire {
            dec.push(&[byte]);
            while let Some(frame) = dec.next_frame().unwrap() {
                frames.push(frame);
            }
        }
        assert_eq!(frames.len(), 2);
        assert_eq!(frames[0].payload, Bytes::from_static(b"hello"));
        assert_eq!(
            (frames[1].kind, frames[1].stream),
            (FrameKind::SnapshotChunk, 7)
        );
        assert_eq!(dec.buffered(), 0);
    }

    #[test]
    fn oversized_length_is_refused_before_allocating() {
        let mut dec = FrameDecoder::new(1024);
        let mut header = encode(FrameKind::Message, 0, &[]);
        header[0..4].copy_from_slice(&u32::MAX.to_le_bytes());
        dec.push(&header);
        let err = dec.next_frame().unwrap_err();
        assert_eq!(
            err,
            FrameError::TooLarge {
                len: u32::MAX,
                max: 1024
            }
        );
        assert!(
            dec.capacity() < 1 << 20,
            "no allocation for the claimed length"
        );
    }

    #[test]
    fn corrupted_payload_fails_the_checksum() {
        let mut wire = encode(FrameKind::Message, 0, b"payload");
        let last = wire.len() - 1;
        wire[last] ^= 1;
        let mut dec = FrameDecoder::new(1024);
        dec.push(&wire);
        assert!(matches!(dec.next_frame(), Err(FrameError::Checksum { .. })));
    }

    #[test]
    fn unknown_kind_and_reserved_bytes_are_refused() {
        let mut wire = encode(FrameKind::Message, 0, b"x");
        wire[4] = 99;
        let mut dec = FrameDecoder::new(1024);
        dec.push(&wire);
        assert_eq!(dec.next_frame(), Err(FrameError::UnknownKind(99)));
        let mut wire = encode(FrameKind::Message, 0, b"x");
        wire[6] = 1;
        let mut dec = FrameDecoder::new(1024);
        dec.push(&wire);
        assert_eq!(dec.next_frame(), Err(FrameError::Reserved));
    }

    /// Whether `payload` lies inside `buffer`'s allocation.
    fn inside(payload: &[u8], buffer: &[u8]) -> bool {
        let range = buffer.as_ptr_range();
        range.contains(&payload.as_ptr())
    }

    #[test]
    fn small_frames_are_copied_out_of_the_reused_read_buffer() {
        let mut wire = encode(FrameKind::Message, 0, b"first");
        wire.extend(encode(FrameKind::Message, 0, &[7; 300]));
        let mut dec = FrameDecoder::new(1 << 20);
        let (mut buffer, target) = dec.take_read();
        buffer[..wire.len()].copy_from_slice(&wire);
        dec.restore_read(buffer, target, wire.len());
        let first = dec.next_frame().unwrap().unwrap();
        let second = dec.next_frame().unwrap().unwrap();
        assert_eq!(first.payload, Bytes::from_static(b"first"));
        assert_eq!(second.payload.len(), 300);
        // Neither pins the read buffer, which is reused as it is: no new allocation.
        assert!(!inside(&first.payload, &dec.buffer));
        assert!(!inside(&second.payload, &dec.buffer));
        assert_eq!(dec.buffer.len(), READ_CHUNK_BYTES);
        assert_eq!(dec.buffered(), 0);
    }

    #[test]
    fn a_large_frame_is_read_into_a_buffer_of_exactly_its_size() {
        let len = FRAME_COPY_BYTES_MAX * 4;
        let payload: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
        let wire = encode(FrameKind::Message, 0, &payload);
        let mut dec = FrameDecoder::new(1 << 20);
        // The first read brings the header and a little of the payload.
        let (mut buffer, target) = dec.take_read();
        assert_eq!(target.range, 0..READ_CHUNK_BYTES);
        let first = FRAME_HEADER_BYTES + 100;
        buffer[..first].copy_from_slice(&wire[..first]);
        dec.restore_read(buffer, target, first);
        assert_eq!(dec.next_frame().unwrap(), None);
        // The rest goes straight into the frame's own buffer, exactly what is missing.
        let (mut buffer, target) = dec.take_read();
        assert_eq!(target.range, 100..len);
        assert_eq!(buffer.capacity(), len);
        let address = buffer.as_ptr();
        buffer.extend_from_slice(&wire[first..]);
        dec.restore_read(buffer, target, wire.len() - first);
        let frame = dec.next_frame().unwrap().unwrap();
        assert_eq!(frame.payload, payload);
        assert_eq!(
            frame.payload.as_ptr(),
            address,
            "received in place, not copied"
        );
        // The next read is sized so that little of a following large frame is copied.
        let (buffer, target) = dec.take_read();
        assert_eq!(target.range.len(), READ_AFTER_LARGE_BYTES);
        dec.restore_read(buffer, target, 0);
    }

    proptest! {
        /// Frames of every size across the copy threshold, read in pieces of any size, come
        /// out whole, in order, and never inside the read buffer.
        #[test]
        fn frames_round_trip_through_both_read_paths(
            sizes in proptest::collection::vec(
                prop_oneof![0usize..64, 16_000usize..16_800, 30_000usize..70_000], 1..8),
            reads in proptest::collection::vec(1usize..40_000, 1..64)) {
            let mut wire = Vec::new();
            for (i, size) in sizes.iter().enumerate() {
                encode_frame(&mut wire, FrameKind::SnapshotChunk, i as u64, &vec![i as u8; *size]);
            }
            let mut dec = FrameDecoder::new(1 << 20);
            let mut got = Vec::new();
            let (mut sent, mut turn) = (0, 0);
            while sent < wire.len() {
                let want = reads[turn % reads.len()];
                turn += 1;
                let (mut buffer, target) = dec.take_read();
                let n = want.min(target.range.len()).min(wire.len() - sent);
                let at = target.range.start;
                // A large frame's buffer grows as a read initialises it (as io_uring's does).
                if buffer.len() < at + n {
                    buffer.resize(at + n, 0);
                }
                buffer[at..at + n].copy_from_slice(&wire[sent..sent + n]);
                dec.restore_read(buffer, target, n);
                sent += n;
                while let Some(frame) = dec.next_frame().unwrap() {
                    prop_assert!(!inside(&frame.payload, &dec.buffer) || frame.payload.is_empty());
                    got.push((frame.stream, frame.payload.len()));
                }
            }
            let want: Vec<_> = sizes.iter().enumerate().map(|(i, s)| (i as u64, *s)).collect();
            prop_assert_eq!(got, want);
            prop_assert_eq!(dec.buffered(), 0);
        }
    }

    proptest! {
        #[test]
        fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..4096)) {
            let mut dec = FrameDecoder::new(2048);
            dec.push(&bytes);
            // Either frames, a clean error or a request for more bytes; never a panic and
            // never a buffer beyond one maximal frame plus what was pushed.
            for _ in 0..bytes.len() + 1 {
                match dec.next_frame() {
                    Ok(Some(_)) => continue,
                    Ok(None) | Err(_) => break,
                }
            }
            prop_assert!(dec.capacity() <= READ_CHUNK_BYTES + 4096 + 2048 + 64);
        }

        #[test]
        fn frames_round_trip(payloads in proptest::collection::vec(
            (any::<u64>(), proptest::collection::vec(any::<u8>(), 0..512)), 0..20),
            split in 1usize..64) {
            let mut wire = Vec::new();
            for (stream, payload) in &payloads {
                encode_frame(&mut wire, FrameKind::SnapshotChunk, *stream, payload);
            }
            let mut dec = FrameDecoder::new(512);
            let mut got = Vec::new();
            for piece in wire.chunks(split) {
                dec.push(piece);
                while let Some(frame) = dec.next_frame().unwrap() {
                    got.push((frame.stream, frame.payload.to_vec()));
                }
            }
            prop_assert_eq!(got, payloads);
        }
    }
}
