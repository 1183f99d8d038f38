//! Fuzz target: the RESP2 request parser and reply parser (`ringraft::kv::resp`) on mutated
//! pipelines from the checked-in corpus (`fuzz_corpus/resp_*.txt`).
//!
//! Checked for every input: no panic; parsing the whole buffer and parsing it in two pieces
//! (every request cut anywhere, as reads from a socket arrive) agree; a parsed request
//! re-encodes to a pipeline that parses to the same arguments; a parsed reply re-encodes to
//! bytes that parse to the same reply, and the streaming reader fed one byte at a time agrees.
//! `RINGRAFT_FUZZ_SEED=n` replays one case.

mod fuzz_common;

use bytes::{BufMut, Bytes, BytesMut};
use fuzz_common::{escape, mutate, read_escaped_lines, run_seeded, Rng};
use ringraft::kv::resp::{parse_reply, put_request, Reply, ReplyReader, RequestParser, Requests};

/// Cases per target: a few seconds in a debug build.
const CASES: u64 = 100_000;

type Parsed = Vec<Vec<Bytes>>;

/// Parses `chunks` fed one after the other into one parser: the requests and the bytes left
/// unparsed, or the first error.
fn parse_chunks(chunks: &[&[u8]]) -> Result<(Parsed, usize), ringraft::kv::resp::RespError> {
    let mut p = RequestParser::default();
    let mut buf = BytesMut::new();
    let mut out = Requests::default();
    for c in chunks {
        buf.extend_from_slice(c);
        p.parse(&mut buf, &mut out, usize::MAX)?;
    }
    let reqs = (0..out.len()).map(|i| out.get(i).to_vec()).collect();
    Ok((reqs, buf.len()))
}

fn check_request_input(input: &[u8], cut: usize) {
    let whole = parse_chunks(&[input]);
    let split = parse_chunks(&[&input[..cut], &input[cut..]]);
    assert_eq!(
        whole.is_ok(),
        split.is_ok(),
        "whole {whole:?} vs cut at {cut} {split:?}"
    );
    let Ok((reqs, left)) = whole else { return };
    assert_eq!(
        split.as_ref().ok(),
        Some(&(reqs.clone(), left)),
        "cut at {cut}"
    );
    assert!(
        reqs.iter().all(|r| !r.is_empty()),
        "a request has a command"
    );
    let mut again = BytesMut::new();
    for r in &reqs {
        put_request(&mut again, r);
    }
    assert_eq!(parse_chunks(&[&again]), Ok((reqs, 0)), "re-encoded");
}

/// The RESP2 encoding of a reply (simple strings and errors carry raw bytes here, which the
/// server's writers never produce with CR or LF; the parser takes whatever precedes CRLF).
fn encode_reply(r: &Reply, out: &mut BytesMut) {
    match r {
        Reply::Simple(s) | Reply::Error(s) => {
            out.put_u8(if matches!(r, Reply::Simple(_)) {
                b'+'
            } else {
                b'-'
            });
            out.put_slice(s);
            out.put_slice(b"\r\n");
        }
        Reply::Int(v) => out.put_slice(format!(":{v}\r\n").as_bytes()),
        Reply::Bulk(None) => out.put_slice(b"$-1\r\n"),
        Reply::Bulk(Some(b)) => {
            out.put_slice(format!("${}\r\n", b.len()).as_bytes());
            out.put_slice(b);
            out.put_slice(b"\r\n");
        }
        Reply::Array(None) => out.put_slice(b"*-1\r\n"),
        Reply::Array(Some(items)) => {
            out.put_slice(format!("*{}\r\n", items.len()).as_bytes());
            for i in items {
                encode_reply(i, out);
            }
        }
    }
}

fn check_reply_input(input: &[u8]) {
    let buf = Bytes::copy_from_slice(input);
    let parsed = parse_reply(&buf);
    let mut reader = ReplyReader::default();
    let mut streamed = Ok(None);
    for &b in input {
        reader.buffer().extend_from_slice(&[b]);
        streamed = reader
            .next_reply()
            .map(|r| r.map(|(reply, raw)| (reply, raw.len())));
        if !matches!(streamed, Ok(None)) {
            break;
        }
    }
    assert_eq!(parsed, streamed, "whole vs one byte at a time");
    let Ok(Some((reply, len))) = parsed else {
        return;
    };
    assert!(len <= input.len());
    let mut again = BytesMut::new();
    encode_reply(&reply, &mut again);
    let again = again.freeze();
    assert_eq!(
        parse_reply(&again),
        Ok(Some((reply, again.len()))),
        "re-encoded"
    );
}

fn pick<'a>(rng: &mut Rng, corpus: &'a [Vec<u8>]) -> &'a [u8] {
    &corpus[rng.index(corpus.len())]
}

#[test]
fn mutated_request_pipelines() {
    let corpus = read_escaped_lines("resp_requests.txt");
    assert!(!corpus.is_empty());
    run_seeded(0x5E5_0000, CASES, |seed| {
        let mut rng = Rng::new(seed);
        let (base, donor) = (pick(&mut rng, &corpus), pick(&mut rng, &corpus));
        let input = mutate(&mut rng, base, donor);
        let cut = rng.index(input.len() + 1);
        if std::env::var("RINGRAFT_FUZZ_SEED").is_ok() {
            eprintln!("input {:?} cut {cut}", escape(&input));
        }
        check_request_input(&input, cut);
    });
}

#[test]
fn mutated_replies() {
    let corpus = read_escaped_lines("resp_replies.txt");
    assert!(!corpus.is_empty());
    run_seeded(0x5E6_0000, CASES, |seed| {
        let mut rng = Rng::new(seed);
        let (base, donor) = (pick(&mut rng, &corpus), pick(&mut rng, &corpus));
        let input = mutate(&mut rng, base, donor);
        if std::env::var("RINGRAFT_FUZZ_SEED").is_ok() {
            eprintln!("input {:?}", escape(&input));
        }
        check_reply_input(&input);
    });
}

/// The corpus itself passes the checks unmutated (and each line is a real case: the
/// escapes parse).
#[test]
fn the_corpus_passes_unmutated() {
    for input in read_escaped_lines("resp_requests.txt") {
        for cut in 0..=input.len() {
            check_request_input(&input, cut);
        }
    }
    for input in read_escaped_lines("resp_replies.txt") {
        check_reply_input(&input);
    }
}
