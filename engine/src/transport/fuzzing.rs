//! Entry points for fuzz targets (`engine/tests/fuzz_frame.rs`, and `fuzz/` under
//! cargo-fuzz): the sans-I/O frame decoder, which is otherwise private to the transport.
//! Not part of the supported API.

use bytes::Bytes;

use super::error::FrameError;
use super::frame::{FrameDecoder, FRAME_HEADER_BYTES};

/// One decoded frame.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DecodedFrame {
    /// The kind byte.
    pub kind: u8,
    /// The snapshot stream id.
    pub stream: u64,
    /// The payload.
    pub payload: Bytes,
}

/// What one decoder made of a byte stream.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decoded {
    /// Frames decoded, in order.
    pub frames: Vec<DecodedFrame>,
    /// The error that ended the stream, if any (a connection is closed on one).
    pub error: Option<FrameError>,
    /// Bytes left buffered at the end (an incomplete frame).
    pub buffered: usize,
    /// Most bytes the decoder's buffer held (capacity) after any chunk.
    pub capacity_max: usize,
}

/// Feeds `chunks` one after the other to one decoder with `frame_bytes_max`, taking every
/// whole frame after each, as the transport's read loops do.
pub fn decode_stream(frame_bytes_max: u32, chunks: &[&[u8]]) -> Decoded {
    let mut dec = FrameDecoder::new(frame_bytes_max);
    let mut out = Decoded {
        frames: Vec::new(),
        error: None,
        buffered: 0,
        capacity_max: 0,
    };
    for chunk in chunks {
        dec.push(chunk);
        loop {
            match dec.next_frame() {
                Ok(Some(f)) => out.frames.push(DecodedFrame {
                    kind: f.kind as u8,
                    stream: f.stream,
                    payload: f.payload,
                }),
                Ok(None) => break,
                Err(e) => {
                    out.error = Some(e);
                    out.buffered = dec.buffered();
                    out.capacity_max = out.capacity_max.max(dec.capacity());
                    return out;
                }
            }
        }
        out.capacity_max = out.capacity_max.max(dec.capacity());
    }
    out.buffered = dec.buffered();
    out
}

/// The wire bytes of a frame with any header fields (an unknown kind, reserved bytes, a
/// length that disagrees with the payload) and a checksum that matches them: a fuzzer's
/// way past the CRC.
pub fn forge_frame(len: u32, kind: u8, reserved: [u8; 3], stream: u64, payload: &[u8]) -> Vec<u8> {
    let mut header = [0u8; FRAME_HEADER_BYTES];
    header[0..4].copy_from_slice(&len.to_le_bytes());
    header[4] = kind;
    header[5..8].copy_from_slice(&reserved);
    header[8..16].copy_from_slice(&stream.to_le_bytes());
    let mut crc = crc32fast::Hasher::new();
    crc.update(&header[0..16]);
    crc.update(payload);
    header[16..20].copy_from_slice(&crc.finalize().to_le_bytes());
    let mut out = header.to_vec();
    out.extend_from_slice(payload);
    out
}

/// Bytes a read asks the kernel for: the decoder's buffer starts this large.
pub const READ_CHUNK_BYTES: usize = super::frame::READ_CHUNK_BYTES;
