//! Shared by the engine's fuzz targets (`fuzz_codec.rs`, `fuzz_resp.rs`): a seeded RNG, a
//! byte mutator, the checked-in corpus, and a runner that prints the failing seed.
//!
//! The targets are ordinary deterministic tests: each seed picks a corpus input and applies a
//! few mutations; `RINGRAFT_FUZZ_SEED=n` replays one seed, `RINGRAFT_FUZZ_CASES=n` runs more
//! (a soak).
#![allow(dead_code)]

use std::path::PathBuf;

/// The seeded RNG: ringraft's one generator (SplitMix64, the same stream as the copy that
/// lived here, so recorded seeds replay unchanged).
pub use ringraft_wal::util::rng::Rng;

/// Runs `f(seed)` for `cases` seeds from `base` (or the replayed one), printing a failing
/// seed and how to replay it.
pub fn run_seeded(base: u64, cases: u64, mut f: impl FnMut(u64)) {
    let seeds: Vec<u64> = match std::env::var("RINGRAFT_FUZZ_SEED") {
        Ok(s) => vec![s.parse().expect("RINGRAFT_FUZZ_SEED must be a u64")],
        Err(_) => {
            let n = std::env::var("RINGRAFT_FUZZ_CASES")
                .ok()
                .and_then(|v| v.parse().ok())
                .unwrap_or(cases);
            (0..n).map(|i| base.wrapping_add(i)).collect()
        }
    };
    for seed in seeds {
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(seed)));
        if let Err(e) = r {
            eprintln!("failing seed: {seed} (replay with RINGRAFT_FUZZ_SEED={seed})");
            std::panic::resume_unwind(e);
        }
    }
}

/// Words worth writing into a frame: the edges of length and index arithmetic.
const EDGE_U64: [u64; 8] = [
    0,
    1,
    2,
    u32::MAX as u64,
    i64::MAX as u64,
    u64::MAX - 2,
    u64::MAX - 1,
    u64::MAX,
];

/// Bytes worth inserting into a text protocol.
const EDGE_BYTES: [&[u8]; 10] = [
    b"\r\n",
    b"\r",
    b"\n",
    b"*",
    b"$",
    b"-1",
    b"0",
    b"99999999999",
    b"\"",
    b"\x00",
];

/// Applies 1..=4 random mutations to `input`: bit flips, byte overwrites, insertions,
/// deletions, duplicated runs, splices from `donor`, little-endian edge words at any offset,
/// protocol tokens, and cuts.
pub fn mutate(rng: &mut Rng, input: &[u8], donor: &[u8]) -> Vec<u8> {
    let mut b = input.to_vec();
    for _ in 0..1 + rng.index(4) {
        let at = rng.index(b.len() + 1);
        match rng.index(9) {
            0 if !b.is_empty() => {
                let i = rng.index(b.len());
                b[i] ^= 1 << rng.index(8);
            }
            1 if !b.is_empty() => {
                let i = rng.index(b.len());
                b[i] = rng.next_u64() as u8;
            }
            2 => b.insert(at, rng.next_u64() as u8),
            3 if at < b.len() => {
                let end = (at + 1 + rng.index(16)).min(b.len());
                b.drain(at..end);
            }
            4 if at < b.len() => {
                let end = (at + 1 + rng.index(32)).min(b.len());
                let run = b[at..end].to_vec();
                b.splice(at..at, run);
            }
            5 if !donor.is_empty() => {
                let from = rng.index(donor.len());
                let end = (from + 1 + rng.index(64)).min(donor.len());
                b.splice(at..at, donor[from..end].iter().copied());
            }
            6 if b.len() >= 8 => {
                let i = rng.index(b.len() - 7);
                let w = EDGE_U64[rng.index(EDGE_U64.len())];
                let len = [1, 2, 4, 8][rng.index(4)];
                b[i..i + len].copy_from_slice(&w.to_le_bytes()[..len]);
            }
            7 => {
                let t = EDGE_BYTES[rng.index(EDGE_BYTES.len())];
                b.splice(at..at, t.iter().copied());
            }
            _ => b.truncate(at),
        }
    }
    b
}

/// `engine/tests/fuzz_corpus/<name>`.
pub fn corpus_path(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fuzz_corpus")
        .join(name)
}

/// A corpus file of one input per line, written with escapes (`\r`, `\n`, `\\`, `\xNN`) so
/// that binary and CRLF-framed inputs stay readable and diffable; `#` lines are comments.
pub fn read_escaped_lines(name: &str) -> Vec<Vec<u8>> {
    let text = std::fs::read_to_string(corpus_path(name)).expect("read the corpus");
    text.lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(unescape)
        .collect()
}

fn unescape(line: &str) -> Vec<u8> {
    let b = line.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] != b'\\' || i + 1 == b.len() {
            out.push(b[i]);
            i += 1;
            continue;
        }
        match b[i + 1] {
            b'r' => out.push(b'\r'),
            b'n' => out.push(b'\n'),
            b'x' => {
                let hex = std::str::from_utf8(&b[i + 2..i + 4]).expect("ascii");
                out.push(u8::from_str_radix(hex, 16).expect("\\xNN"));
                i += 2;
            }
            other => out.push(other),
        }
        i += 2;
    }
    out
}

/// The inverse of the corpus line format.
pub fn escape(input: &[u8]) -> String {
    let mut s = String::new();
    for &c in input {
        match c {
            b'\r' => s.push_str("\\r"),
            b'\n' => s.push_str("\\n"),
            b'\\' => s.push_str("\\\\"),
            0x20..=0x7e => s.push(char::from(c)),
            _ => s.push_str(&format!("\\x{c:02x}")),
        }
    }
    s
}
