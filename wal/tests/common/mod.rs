//! Shared test helpers: a Vec model of the log, a seeded RNG and workload steps.
#![allow(dead_code)]

pub mod image;

use std::sync::Arc;

use bytes::Bytes;
use ringraft_wal::io::IoBackend;
use ringraft_wal::{Config, Entry, HardState, SnapshotMeta, Wal};

/// The seeded RNG: ringraft's one generator (SplitMix64). Stream change (session 8): this was
/// a xorshift64* here, so seeds recorded before then select different runs now.
pub use ringraft_wal::util::rng::Rng;

/// Seeds for a seeded test: `WAL_SEED` replays one, else `n` (or `WAL_SEEDS`, for soak runs)
/// derived from `base`.
pub fn seeds(base: u64, n: u64) -> Vec<u64> {
    if let Ok(s) = std::env::var("WAL_SEED") {
        return vec![s.parse().expect("WAL_SEED must be a u64")];
    }
    let n = std::env::var("WAL_SEEDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(n);
    (0..n).map(|i| base.wrapping_add(i)).collect()
}

/// Runs `f(seed)` for each seed, printing the seed of a failure.
pub fn run_seeded(base: u64, n: u64, f: impl Fn(u64)) {
    for seed in seeds(base, n) {
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(seed)));
        if let Err(e) = r {
            eprintln!("failing seed: {seed} (replay with WAL_SEED={seed})");
            std::panic::resume_unwind(e);
        }
    }
}

/// What the log should contain.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Model {
    pub first: u64,
    pub entries: Vec<(u64, Bytes)>,
    pub prev_term: u64,
    pub hard_state: Option<HardState>,
    pub snapshot: Option<SnapshotMeta>,
}

impl Model {
    pub fn new() -> Model {
        Model {
            first: 1,
            ..Model::default()
        }
    }
    pub fn next_index(&self) -> u64 {
        self.first + self.entries.len() as u64
    }
    pub fn last_term(&self) -> u64 {
        self.entries.last().map_or(self.prev_term, |e| e.0)
    }
    pub fn append(&mut self, term: u64, payload: Bytes) {
        self.entries.push((term, payload));
    }
    pub fn truncate(&mut self, from: u64) {
        self.entries.truncate((from - self.first) as usize);
    }
    pub fn compact(&mut self, up_to: u64) {
        let first = up_to + 1;
        let drop = (first - self.first).min(self.entries.len() as u64) as usize;
        if drop > 0 {
            self.prev_term = self.entries[drop - 1].0;
        } else if first > self.next_index() {
            self.prev_term = 0;
        }
        self.entries.drain(..drop);
        self.first = first;
    }

    /// The model as read back from a log.
    pub fn read(wal: &Wal) -> Model {
        let first = wal.first_index();
        let last = wal.last_index();
        let entries = wal
            .entries(first..last + 1)
            .expect("read all entries")
            .into_iter()
            .map(|e| (e.term, e.payload))
            .collect();
        Model {
            first,
            entries,
            prev_term: 0,
            hard_state: wal.hard_state(),
            snapshot: wal.snapshot_meta(),
        }
    }

    /// Equality ignoring `prev_term` (not observable when unknown).
    pub fn same(&self, other: &Model) -> bool {
        self.first == other.first
            && self.entries == other.entries
            && self.hard_state == other.hard_state
            && self.snapshot == other.snapshot
    }
}

/// One step of a workload.
#[derive(Clone, Debug)]
pub enum Step {
    Append(Vec<(u64, Bytes)>),
    Truncate(u64),
    Compact(u64),
    HardState(HardState),
    Snapshot(SnapshotMeta),
}

pub fn payload(rng: &mut Rng, max: usize) -> Bytes {
    let len = rng.below(max as u64 + 1) as usize;
    let b: u8 = rng.next_u64() as u8;
    Bytes::from(
        (0..len)
            .map(|i| b.wrapping_add(i as u8))
            .collect::<Vec<u8>>(),
    )
}

/// A random valid step for the model (which it applies).
pub fn random_step(rng: &mut Rng, m: &mut Model, payload_max: usize, term: &mut u64) -> Step {
    let r = rng.below(100);
    if r < 70 || m.entries.is_empty() {
        if rng.below(10) == 0 {
            *term += 1;
        }
        let n = 1 + rng.below(6);
        let batch: Vec<_> = (0..n).map(|_| (*term, payload(rng, payload_max))).collect();
        for (t, p) in &batch {
            m.append(*t, p.clone());
        }
        Step::Append(batch)
    } else if r < 80 {
        let from = m.first + rng.below(m.entries.len() as u64 + 1);
        m.truncate(from);
        *term += 1;
        Step::Truncate(from)
    } else if r < 88 {
        let up_to = m.first - 1 + rng.below(m.entries.len() as u64 + 1);
        m.compact(up_to);
        Step::Compact(up_to)
    } else if r < 95 {
        let hs = HardState {
            term: *term,
            vote: rng.below(2).checked_sub(1).map(|_| rng.below(5)),
            commit: m.first,
        };
        m.hard_state = Some(hs);
        Step::HardState(hs)
    } else {
        let s = SnapshotMeta {
            index: m.first.saturating_sub(1),
            term: m.prev_term,
            membership: payload(rng, 40),
        };
        m.snapshot = Some(s.clone());
        Step::Snapshot(s)
    }
}

/// Applies a step to a log, waiting for durability.
pub fn apply(wal: &Wal, m: &Model, step: &Step) -> ringraft_wal::Result<()> {
    match step {
        Step::Append(batch) => {
            let start = m.next_index() - batch.len() as u64;
            let entries = batch
                .iter()
                .enumerate()
                .map(|(i, (t, p))| Entry::new(start + i as u64, *t, p.clone()))
                .collect();
            wal.append(entries)?.wait().map(|_| ())
        }
        Step::Truncate(from) => wal.truncate_suffix(*from),
        Step::Compact(up_to) => wal.compact_prefix(*up_to),
        Step::HardState(hs) => wal.set_hard_state(*hs)?.wait().map(|_| ()),
        Step::Snapshot(s) => wal.set_snapshot_meta(s.clone())?.wait().map(|_| ()),
    }
}

/// A deterministic small config: no background threads, 8 KiB segments so that workloads
/// rotate, compact and delete segments often.
pub fn sim_config() -> Config {
    Config {
        prepare_ahead: false,
        background_writer: false,
        segment_bytes: 8 << 10,
        record_bytes_max: 1 << 10,
        membership_bytes_max: 256,
        ..Config::small()
    }
}

pub fn open(backend: &Arc<dyn IoBackend>, config: &Config) -> ringraft_wal::Result<Wal> {
    Wal::open_with_backend(backend.clone(), config.clone())
}

/// Frames (offset, total length, kind byte) of a segment image, walking the length fields from
/// the header to the first all-zero frame header or a frame that runs past the end.
pub fn frames(file: &[u8]) -> Vec<(usize, usize, u8)> {
    use ringraft_wal::layout::{FRAME_HEADER_LEN, HEADER_LEN};
    let mut out = Vec::new();
    let mut off = HEADER_LEN;
    while off + FRAME_HEADER_LEN <= file.len() {
        let h = &file[off..off + FRAME_HEADER_LEN];
        if h.iter().all(|&b| b == 0) {
            break;
        }
        let len = u32::from_le_bytes(h[0..4].try_into().expect("4 bytes")) as usize;
        let total = (FRAME_HEADER_LEN + len + 7) & !7;
        if off + total > file.len() {
            break;
        }
        out.push((off, total, h[24]));
        off += total;
    }
    out
}
