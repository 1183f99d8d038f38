//! The RESP request parser and reply parser on arbitrary bytes: no panic; the request parser
//! fed the input whole and in two pieces agrees.
#![no_main]

use bytes::{Bytes, BytesMut};
use libfuzzer_sys::fuzz_target;
use ringraft::kv::resp::{parse_reply, RequestParser, Requests, RespError};

fn parse(chunks: &[&[u8]]) -> Result<(Vec<Vec<Bytes>>, usize), RespError> {
    let mut p = RequestParser::default();
    let mut buf = BytesMut::new();
    let mut out = Requests::default();
    for c in chunks {
        buf.extend_from_slice(c);
        p.parse(&mut buf, &mut out, usize::MAX)?;
    }
    Ok((
        (0..out.len()).map(|i| out.get(i).to_vec()).collect(),
        buf.len(),
    ))
}

fuzz_target!(|data: &[u8]| {
    let cut = data
        .first()
        .map_or(0, |&b| usize::from(b) % (data.len() + 1));
    let whole = parse(&[data]);
    let split = parse(&[&data[..cut], &data[cut..]]);
    assert_eq!(whole.is_ok(), split.is_ok());
    if let (Ok(w), Ok(s)) = (whole, split) {
        assert_eq!(w, s);
    }
    let _ = parse_reply(&Bytes::copy_from_slice(data));
});
