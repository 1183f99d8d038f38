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
//! The decoder is sans-I/O: the backends append received bytes to [`FrameDecoder::buffer`] and
//! pull whole frames out, so the checks live in one place and are fuzzed once.

use bytes::{Buf, Bytes, BytesMut};

use super::error::FrameError;

/// Size of the fixed frame header in bytes.
pub const FRAME_HEADER_BYTES: usize = 20;

/// Bytes a backend asks the kernel for per read: large enough to take many frames per
/// read (256 KiB doubled io_uring loopback throughput of 16 KiB messages against 64 KiB),
/// small enough that a connection's buffer stays a small part of its memory bound.
pub(super) const READ_CHUNK_BYTES: usize = 256 << 10;

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
#[derive(Debug)]
pub(super) struct FrameDecoder {
    /// Received bytes not yet decoded. Invariant: holds at most one frame header, one payload
    /// of at most `frame_bytes_max` and one read chunk.
    buffer: BytesMut,
    frame_bytes_max: u32,
}

impl FrameDecoder {
    pub(super) fn new(frame_bytes_max: u32) -> Self {
        FrameDecoder {
            buffer: BytesMut::with_capacity(READ_CHUNK_BYTES),
            frame_bytes_max,
        }
    }

    /// Takes the buffer out (for owned-buffer I/O such as io_uring); put it back with
    /// [`FrameDecoder::restore`].
    pub(super) fn take_buffer(&mut self) -> BytesMut {
        self.buffer.reserve(READ_CHUNK_BYTES);
        std::mem::take(&mut self.buffer)
    }

    /// Returns the buffer taken by [`FrameDecoder::take_buffer`].
    pub(super) fn restore(&mut self, buffer: BytesMut) {
        self.buffer = buffer;
    }

    /// Appends received bytes (for readers that read into their own buffer).
    pub(super) fn push(&mut self, bytes: &[u8]) {
        self.buffer.extend_from_slice(bytes);
    }

    /// The next whole frame, `None` if more bytes are needed.
    ///
    /// # Errors
    /// A [`FrameError`] for an oversized length, a bad checksum, an unknown kind or nonzero
    /// reserved bytes. The stream cannot be resynchronised after one: close the connection.
    pub(super) fn next_frame(&mut self) -> Result<Option<Frame>, FrameError> {
        if self.buffer.len() < FRAME_HEADER_BYTES {
            return Ok(None);
        }
        let header: [u8; FRAME_HEADER_BYTES] = self.buffer[..FRAME_HEADER_BYTES]
            .try_into()
            .expect("length checked above");
        let len = u32::from_le_bytes([header[0], header[1], header[2], header[3]]);
        // The length is checked before anything is reserved for the payload.
        if len > self.frame_bytes_max {
            return Err(FrameError::TooLarge {
                len,
                max: self.frame_bytes_max,
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
        let total = FRAME_HEADER_BYTES + len as usize;
        if self.buffer.len() < total {
            self.buffer.reserve(total - self.buffer.len());
            return Ok(None);
        }
        let mut frame = self.buffer.split_to(total);
        let stored = u32::from_le_bytes([header[16], header[17], header[18], header[19]]);
        let mut crc = crc32fast::Hasher::new();
        crc.update(&header[0..16]);
        crc.update(&frame[FRAME_HEADER_BYTES..]);
        let computed = crc.finalize();
        if stored != computed {
            return Err(FrameError::Checksum { stored, computed });
        }
        let stream = u64::from_le_bytes(header[8..16].try_into().expect("8 bytes"));
        frame.advance(FRAME_HEADER_BYTES);
        Ok(Some(Frame {
            kind,
            stream,
            payload: frame.freeze(),
        }))
    }

    /// Bytes buffered and not yet decoded.
    pub(super) fn buffered(&self) -> usize {
        self.buffer.len()
    }

    /// Bytes the buffer has room for (the fuzz targets bound it).
    pub(super) fn capacity(&self) -> usize {
        self.buffer.capacity()
    }
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
            dec.buffer.capacity() < 1 << 20,
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
            prop_assert!(dec.buffer.capacity() <= READ_CHUNK_BYTES + 4096 + 2048 + 64);
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
