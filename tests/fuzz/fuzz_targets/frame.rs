//! The peer transport's frame decoder on arbitrary bytes: no panic, whole and cut in two
//! decode alike, decoded frames re-encode to their bytes, a bounded buffer.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ringraft::transport::fuzzing::{decode_stream, forge_frame, READ_CHUNK_BYTES};
use ringraft::transport::FRAME_HEADER_BYTES;

/// A small limit: lengths near it are cheap to reach.
const FRAME_BYTES_MAX: u32 = 4096;

fuzz_target!(|data: &[u8]| {
    let whole = decode_stream(FRAME_BYTES_MAX, &[data]);
    let cut = data
        .first()
        .map_or(0, |&b| usize::from(b) % (data.len() + 1));
    let split = decode_stream(FRAME_BYTES_MAX, &[&data[..cut], &data[cut..]]);
    assert_eq!((&whole.frames, &whole.error), (&split.frames, &split.error));
    let mut again = Vec::new();
    for f in &whole.frames {
        let len = u32::try_from(f.payload.len()).expect("within the limit");
        again.extend(forge_frame(len, f.kind, [0; 3], f.stream, &f.payload));
    }
    assert_eq!(&data[..again.len()], &again[..]);
    let bound = READ_CHUNK_BYTES + 2 * (FRAME_HEADER_BYTES + FRAME_BYTES_MAX as usize) + data.len();
    assert!(whole.capacity_max <= bound && split.capacity_max <= bound);
});
