//! The peer wire codec on arbitrary bytes: a typed error, or a message that re-encodes to
//! exactly the input (decoding is strict: one encoding per message).
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use ringraft::codec::{decode, encode};

fuzz_target!(|data: &[u8]| {
    if let Ok(m) = decode(Bytes::copy_from_slice(data)) {
        let again = encode(&m).expect("a decoded message encodes");
        assert_eq!(&again[..], data);
    }
});
