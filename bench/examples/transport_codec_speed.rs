//! Encode and decode speed of the Raft message codec for one AppendEntries of `N` entries of
//! `SIZE` bytes: `cargo run --release -p ringraft-bench --example transport_codec_speed -- [N] [SIZE]`.

use clap::Parser;
use std::hint::black_box;
use std::time::Instant;

use bytes::Bytes;
use ringraft::codec;
use ringraft::raft::{Entry, EntryKind, LogIndex, Message, MessageBody, NodeId, Term};

/// Encode and decode speed of one AppendEntries.
#[derive(Parser, Debug)]
struct Args {
    /// Entries in the message.
    #[arg(default_value_t = 64)]
    n: u64,
    /// Bytes per entry.
    #[arg(default_value_t = 128)]
    size: usize,
}

fn main() {
    let Args { n, size } = Args::parse();
    let data = Bytes::from(vec![1u8; size]);
    let entries: Vec<Entry> = (1..=n)
        .map(|i| Entry {
            index: LogIndex(i),
            term: Term(1),
            kind: EntryKind::Normal,
            data: data.clone(),
        })
        .collect();
    let msg = Message {
        from: NodeId(1),
        to: NodeId(2),
        term: Term(1),
        body: MessageBody::AppendEntries {
            prev_index: LogIndex(0),
            prev_term: Term(0),
            entries: entries.into(),
            commit: LogIndex(0),
            round: 1,
        },
    };
    let rounds = 20_000u64;
    let start = Instant::now();
    let mut bytes = Bytes::new();
    for _ in 0..rounds {
        bytes = codec::encode(black_box(&msg)).expect("encodes");
    }
    let encode = start.elapsed();
    let start = Instant::now();
    for _ in 0..rounds {
        black_box(codec::decode(black_box(bytes.clone())).expect("decodes"));
    }
    let decode = start.elapsed();
    let per = |d: std::time::Duration| d.as_nanos() as f64 / rounds as f64;
    let entries_per_sec = |d: std::time::Duration| (rounds * n) as f64 / d.as_secs_f64();
    println!(
        "AppendEntries of {n} x {size} B ({} B encoded): encode {:.0} ns ({:.1} M entries/s), decode {:.0} ns ({:.1} M entries/s)",
        bytes.len(),
        per(encode),
        entries_per_sec(encode) / 1e6,
        per(decode),
        entries_per_sec(decode) / 1e6
    );
}
